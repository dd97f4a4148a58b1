#!/bin/bash
# test_run_tests.sh — the test runner itself (tests/run_tests.sh), on small fake trees of test
# programs whose outcome is known: the closing line "N passed, N failed, N skipped" and the exit
# status for a healthy tree (shell, Python and C programs, the last at each rank count of its
# "// NP:" line, through a stand-in mpirun), a check skipped one by one or a whole program skipped,
# and each way a program must fail: it stops before its plan, runs more checks than planned, prints
# no plan, two plans or one between its checks, bails out, exits non-zero after passing every
# check, or times out; a failed check is counted once; ONLY= selects and must select something.
set -u
cd "$(dirname "$0")/.."
. tests/sh/tap.sh
plan 17
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
RUNNER=$PWD/tests/run_tests.sh

# A fresh tree $tmp/t with a copy of the runner; program NAME.sh / NAME.py print the given lines.
fresh() {
  rm -rf "$tmp/t"
  mkdir -p "$tmp/t/tests" "$tmp/t/build/tests"
  cp "$RUNNER" "$tmp/t/tests/run_tests.sh"
}
shell_prog() {  # name, then the script's lines
  local name=$1; shift
  printf '%s\n' "$@" >"$tmp/t/tests/$name.sh"
}
py_prog() {  # name, then the script's lines
  local name=$1; shift
  printf '%s\n' "$@" >"$tmp/t/tests/$name.py"
}
# Runs the runner on the tree with extra environment assignments; output in $tmp/out, status in $rc.
run_runner() {
  (cd "$tmp/t" && env -u ONLY -u SANITIZE -u TEST_TIMEOUT BUILD=build MPIRUN="$tmp/mpirun" \
     PYTHON="${PYTHON:-/usr/bin/python3}" "$@" bash tests/run_tests.sh) >"$tmp/out" 2>&1
  rc=$?
}
last_line() { tail -n 1 "$tmp/out"; }
# expect NAME STATUS CLOSING [REGEX]: the run ended with STATUS ("0" or "fail"), its last line is
# CLOSING, and (when given) some line matches REGEX.
expect() {
  local name=$1 want_rc=$2 closing=$3 re=${4:-} good=1
  if [ "$want_rc" = 0 ]; then [ "$rc" = 0 ] || good=0; else [ "$rc" != 0 ] || good=0; fi
  [ "$(last_line)" = "$closing" ] || good=0
  if [ -n "$re" ] && ! grep -qE -- "$re" "$tmp/out"; then good=0; fi
  if [ "$good" = 1 ]; then
    ok "$name"
  else
    notok "$name (status $rc; want ${want_rc}, closing '$closing'${re:+, a line matching /$re/})"
    sed 's/^/# /' "$tmp/out" | tail -n 15
  fi
}

# Stand-in mpirun: "mpirun [options] -np N prog" runs prog with NP=N.
cat >"$tmp/mpirun" <<'EOF'
#!/bin/bash
while [ $# -gt 0 ] && [ "$1" != -np ]; do shift; done
[ $# -ge 3 ] || { echo "stand-in mpirun: no -np N program" >&2; exit 99; }
NP=$2 exec "${@:3}"
EOF
chmod +x "$tmp/mpirun"

# ---- a healthy tree ----------------------------------------------------------------------------
fresh
shell_prog test_alpha 'echo 1..2' 'echo "ok - first"' 'echo "ok - second"'
py_prog test_beta 'print("1..3")' 'print("ok - kept")' 'print("ok - optional tool # SKIP not installed")' \
  'print("ok - another # skip lower-case directive")'
printf '// NP: 1 2\nint main(void) { return 0; }\n' >"$tmp/t/tests/test_gamma.c"
printf '#!/bin/bash\necho 1..1\necho "ok - ran on $NP ranks"\n' >"$tmp/t/build/tests/test_gamma"
chmod +x "$tmp/t/build/tests/test_gamma"
run_runner
expect "a healthy tree passes and its skipped checks count as skipped, not passed" 0 \
  "5 passed, 0 failed, 2 skipped"
grep -q '^PASS test_gamma np=1 ' "$tmp/out" && grep -q '^PASS test_gamma np=2 ' "$tmp/out" &&
  ! grep -q 'test_gamma np=3' "$tmp/out"
check $? "a C test runs under mpirun at each rank count of its NP line"
run_runner ONLY="alph"
expect "ONLY= runs just the matching tests" 0 "2 passed, 0 failed, 0 skipped" '^PASS test_alpha '
run_runner ONLY="nosuchtest"
expect "ONLY= that matches no test fails" fail "0 passed, 1 failed, 0 skipped" "ONLY='nosuchtest' matches no test"

# ---- one program per run, each with one fault ------------------------------------------------------
fresh
shell_prog test_one 'echo 1..3' 'echo "ok - first"'
run_runner
expect "a program that stops before its plan fails" fail "1 passed, 1 failed, 0 skipped" \
  'planned 3 checks but ran 1'

fresh
shell_prog test_one 'echo 1..1' 'echo "ok - first"' 'echo "ok - second"'
run_runner
expect "a program that runs more checks than planned fails" fail "2 passed, 1 failed, 0 skipped" \
  'planned 1 checks but ran 2'

fresh
py_prog test_one 'print("ok - first")' 'print("ok - second")'
run_runner
expect "a program without a plan fails" fail "2 passed, 1 failed, 0 skipped" 'printed no plan'

fresh
shell_prog test_one 'echo "ok - first"' 'echo 1..2' 'echo "ok - second"'
run_runner
expect "a plan between the checks fails" fail "2 passed, 1 failed, 0 skipped" 'plan between its checks'

fresh
shell_prog test_one 'echo "ok - first"' 'echo "ok - second"' 'echo 1..2'
run_runner
expect "a plan printed last is accepted" 0 "2 passed, 0 failed, 0 skipped"

fresh
shell_prog test_one 'echo 1..1' 'echo "ok - first"' 'echo 1..1'
run_runner
expect "two plans fail" fail "1 passed, 1 failed, 0 skipped" 'printed 2 plans'

fresh
shell_prog test_one 'echo "1..0 # SKIP no such tool here"'
run_runner
expect "a whole program skipped by a plan of 1..0 with a SKIP directive counts one skip" 0 \
  "0 passed, 0 failed, 1 skipped" \
  'no such tool here'

fresh
shell_prog test_one 'echo 1..0'
run_runner
expect "a program that plans and runs no check fails" fail "0 passed, 1 failed, 0 skipped" 'ran no check'

fresh
shell_prog test_one 'echo 1..3' 'echo "ok - first"' 'echo "not ok - second"' 'echo "ok - third"' 'exit 1'
run_runner
expect "a failed check is counted once, with the program's non-zero status" fail "2 passed, 1 failed, 0 skipped"

fresh
shell_prog test_one 'echo 1..1' 'echo "ok - first"' 'exit 3'
run_runner
expect "a non-zero exit after passing every check fails" fail "1 passed, 1 failed, 0 skipped" \
  'exited with status 3'

fresh
shell_prog test_one 'echo 1..2' 'echo "ok - first"' 'echo "Bail out! the scratch folder is gone"' 'exit 0'
run_runner
expect "a program that bails out fails, with its reason" fail "1 passed, 1 failed, 0 skipped" \
  'bailed out: the scratch folder is gone'

fresh
shell_prog test_one 'echo 1..1' 'sleep 30' 'echo "ok - too late"'
run_runner TEST_TIMEOUT=1
expect "a program that times out fails" fail "0 passed, 1 failed, 0 skipped" '\(timeout\)'

fresh
shell_prog test_one 'echo 1..2' 'echo "ok - first"' 'echo "not ok - looks skipped # SKIP but failed"' 'exit 1'
run_runner
expect "a failed check with a SKIP directive is a failure" fail "1 passed, 1 failed, 0 skipped"

tap_finish
