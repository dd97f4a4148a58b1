# tap.sh — the test protocol of tests/run_tests.sh for the shell tests (sourced, not run).
#
#   plan N            states how many checks the script will make ("1..N"), before the first one
#   ok NAME           a check that held;      notok NAME   a check that failed
#   check RC NAME     ok when RC is 0, else notok
#   skip NAME REASON  a check that cannot run here ("ok - NAME # SKIP REASON"), counted as skipped
#   bail_out WHAT     the script's own set-up failed: "Bail out! ..." and exit 1
#   tap_finish        exits 1 when a check failed or the count of checks differs from the plan
tap_planned=-1
tap_ran=0
tap_failed=0

plan() { tap_planned=$1; echo "1..$1"; }
ok() { tap_ran=$((tap_ran + 1)); echo "ok - $*"; }
notok() { tap_ran=$((tap_ran + 1)); tap_failed=$((tap_failed + 1)); echo "not ok - $*"; }
check() {
  local rc=$1; shift
  if [ "$rc" = 0 ]; then ok "$@"; else notok "$@"; fi
}
skip() { tap_ran=$((tap_ran + 1)); echo "ok - $1 # SKIP $2"; }
bail_out() { echo "Bail out! the test's own set-up failed: $*"; exit 1; }
tap_finish() {
  if [ "$tap_ran" != "$tap_planned" ]; then
    echo "# planned $tap_planned checks, ran $tap_ran"
    exit 1
  fi
  [ "$tap_failed" = 0 ] || exit 1
  exit 0
}
