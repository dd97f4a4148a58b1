#!/bin/bash
# Runs every test of gnrev and prints "N passed, N failed, N skipped" last.
# C tests (build/tests/test_*) run under mpirun at each rank count their source declares in a
# "// NP: ..." line; shell tests (tests/test_*.sh) and Python tests (tests/test_*.py) run as they
# are. Each speaks a subset of TAP: a plan "1..N" (the number of checks it will run) as its first
# or last result line, then "ok - name", "not ok - name" or "ok - name # SKIP reason" per check;
# "Bail out! reason" stops it. A skipped check counts as skipped, never as passed ("1..0 # SKIP
# reason" skips a whole program). A program fails, counting one failure beyond its own "not ok"
# lines, when it prints no plan (or several, or one between its checks), runs a number of checks
# other than its plan (it stopped early, or skipped some silently), bails out, or exits non-zero
# or times out without a "not ok". ONLY="a b" that matches no test is a failure too.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
MPIRUN=${MPIRUN:-mpirun}
if [ "$(id -u)" = 0 ]; then ROOTFLAG=--allow-run-as-root; else ROOTFLAG=; fi
MPIFLAGS=${MPIFLAGS:---oversubscribe $ROOTFLAG}
PYTHON=${PYTHON:-/usr/bin/python3}
TIMEOUT=${TEST_TIMEOUT:-300}
ONLY=${ONLY:-}
# SANITIZE=1 (make check SANITIZE=1): leaks inside Open MPI and OpenBLAS are suppressed
# (tests/lsan.supp), any sanitizer report fails the program, and every rank gets the options.
if [ "${SANITIZE:-0}" = 1 ]; then
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:fast_unwind_on_malloc=0}
  export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  MPIFLAGS="$MPIFLAGS -x ASAN_OPTIONS -x LSAN_OPTIONS -x UBSAN_OPTIONS"
  TIMEOUT=${TEST_TIMEOUT:-900}  # sanitized programs run several times slower
fi
export OPENBLAS_NUM_THREADS=1 GNREV_ROOT="$PWD" BUILD MPIRUN MPIFLAGS PYTHON
passed=0
failed=0
skipped=0
programs=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# TAP counts of a log: plans planned plan_skip pass skip fail bail misplaced, where misplaced is 1
# when the (single) plan sits between result lines.
tap_counts() {
  awk '
    /^1\.\.[0-9]+/ { plans++; if (plans == 1) { planned = substr($1, 4) + 0; plan_at = NR;
                         plan_skip = ($0 ~ /#[ \t]*[Ss][Kk][Ii][Pp]/) } ; next }
    /^not ok( |$)/    { fail++; last = NR; if (!first) first = NR; next }
    /^ok( |$)/        { if ($0 ~ /#[ \t]*[Ss][Kk][Ii][Pp]([ \t]|$)/) skip++; else pass++
                        last = NR; if (!first) first = NR; next }
    /^Bail out!/      { bail++ }
    END { misplaced = (plans == 1 && first && plan_at > first && plan_at < last)
          printf "%d %d %d %d %d %d %d %d\n", plans, planned, plan_skip, pass, skip, fail, bail, misplaced }
  ' "$1"
}

run_one() {  # label, command...
  local label=$1; shift
  local t0=$SECONDS
  programs=$((programs + 1))
  timeout -k 10 "$TIMEOUT" "$@" >"$log" 2>&1
  local rc=$?
  local plans planned plan_skip p s f bail misplaced why=""
  read -r plans planned plan_skip p s f bail misplaced < <(tap_counts "$log")
  local ran=$((p + s + f))
  if [ "$plans" -eq 0 ]; then
    why="printed no plan (1..N)"
  elif [ "$plans" -gt 1 ]; then
    why="printed $plans plans"
  elif [ "$misplaced" -eq 1 ]; then
    why="printed its plan between its checks"
  elif [ "$ran" -ne "$planned" ]; then
    why="planned $planned checks but ran $ran"
  elif [ "$planned" -eq 0 ] && [ "$plan_skip" -eq 1 ]; then
    s=1  # the whole program is skipped, its reason on the plan line
  elif [ "$planned" -eq 0 ]; then
    why="ran no check"
  fi
  if [ "$bail" -gt 0 ]; then
    why="${why:+$why; }bailed out: $(grep -m 1 '^Bail out!' "$log" | cut -c 11-)"
  fi
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    why="${why:+$why; }exited with status $rc$([ $rc -eq 124 ] && echo ' (timeout)')"
  fi
  if [ -n "$why" ]; then
    f=$((f + 1))
    echo "not ok - $label $why" >>"$log"
  fi
  passed=$((passed + p))
  failed=$((failed + f))
  skipped=$((skipped + s))
  if [ "$f" -gt 0 ]; then
    echo "FAIL $label ($p passed, $f failed, $s skipped, $((SECONDS - t0))s)"
    sed 's/^/    /' "$log" | tail -n 60
  else
    echo "PASS $label ($p checks$([ "$s" -gt 0 ] && echo ", $s skipped"), $((SECONDS - t0))s)"
    grep -iE '^(ok - .*|1\.\.0 *)#[[:space:]]*skip([[:space:]]|$)' "$log" | sed 's/^/    /'
  fi
}

# ONLY="a b": run just the tests whose names contain one of the words.
selected() {
  [ -z "$ONLY" ] && return 0
  local w
  for w in $ONLY; do [[ "$1" == *"$w"* ]] && return 0; done
  return 1
}

for src in tests/test_*.c; do
  [ -e "$src" ] || continue
  name=$(basename "$src" .c)
  selected "$name" || continue
  nps=$(sed -n 's|^// NP:||p' "$src" | head -n 1)
  [ -n "$nps" ] || nps=1
  for np in $nps; do
    run_one "$name np=$np" "$MPIRUN" $MPIFLAGS -np "$np" "$BUILD/tests/$name"
  done
done
for src in tests/test_*.sh; do
  [ -e "$src" ] || continue
  name=$(basename "$src" .sh)
  selected "$name" || continue
  run_one "$name" bash "$src"
done
for src in tests/test_*.py; do
  [ -e "$src" ] || continue
  name=$(basename "$src" .py)
  selected "$name" || continue
  run_one "$name" "$PYTHON" "$src"
done
if [ -n "$ONLY" ] && [ "$programs" -eq 0 ]; then
  echo "FAIL ONLY='$ONLY' matches no test"
  failed=$((failed + 1))
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
