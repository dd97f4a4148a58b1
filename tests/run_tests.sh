#!/bin/bash
# Runs every test of gnrev and prints "N passed, N failed" last.
# C tests (build/tests/test_*) run under mpirun at each rank count their source declares in a
# "// NP: ..." line; shell tests (tests/test_*.sh) and Python tests (tests/test_*.py) run as they
# are. Each prints "ok - name" / "not ok - name" lines; a program that exits non-zero or times out
# without saying why counts as one failure.
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
log=$(mktemp)
trap 'rm -f "$log"' EXIT

run_one() {  # label, command...
  local label=$1; shift
  local t0=$SECONDS
  timeout -k 10 "$TIMEOUT" "$@" >"$log" 2>&1
  local rc=$?
  local p f
  p=$(grep -c '^ok - ' "$log")
  f=$(grep -c '^not ok - ' "$log")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1
    echo "not ok - $label exited with status $rc$([ $rc -eq 124 ] && echo ' (timeout)')" >>"$log"
  fi
  if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
    f=1
    echo "not ok - $label ran no check" >>"$log"
  fi
  passed=$((passed + p))
  failed=$((failed + f))
  if [ "$f" -gt 0 ]; then
    echo "FAIL $label ($p passed, $f failed, $((SECONDS - t0))s)"
    sed 's/^/    /' "$log" | tail -n 60
  else
    echo "PASS $label ($p checks, $((SECONDS - t0))s)"
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
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
