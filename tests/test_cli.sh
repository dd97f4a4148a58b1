#!/bin/bash
# The command line of gnrev_mpi: --help, --version, --check with -P, bad options, a missing deck,
# the SLURM_NTASKS guard and GNREV_TRACEBACK (docs/operations.md).
set -u
cd "$(dirname "$0")/.."
BIN=${BUILD:-build}/gnrev_mpi
MPIRUN=${MPIRUN:-mpirun}
if [ "$(id -u)" = 0 ]; then MPIFLAGS=${MPIFLAGS:---oversubscribe --allow-run-as-root}; else MPIFLAGS=${MPIFLAGS:---oversubscribe}; fi
. tests/sh/tap.sh
plan 7
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() { timeout 60 $MPIRUN $MPIFLAGS -np 2 "$BIN" "$@" >"$tmp/out" 2>"$tmp/err"; echo $?; }
printf "&run out_dir='%s/o' /\n&data source='synthetic' /\n&model hidden=16 /\n" "$tmp" >"$tmp/d.nml"

rc=$(run --help); grep -q "^usage: gnrev_mpi" "$tmp/out" && [ "$rc" = 0 ] && [ "$(grep -c '^usage' "$tmp/out")" = 1 ]
check $? "test_help_prints_usage_once_and_exits_0"
rc=$(run --version); grep -q "^gnrev_mpi " "$tmp/out" && grep -q "^HDF5 1" "$tmp/out" && [ "$rc" = 0 ]
check $? "test_version_names_build_and_libraries"
rc=$(run --check -P run:seed=43 -P "optim:method=sgd" "$tmp/d.nml"); grep -q "seed = 43" "$tmp/out" && grep -q "method = 'sgd'" "$tmp/out" && grep -q "total per rank" "$tmp/out" && [ "$rc" = 0 ] && [ ! -e "$tmp/o/run.h5" ]
check $? "test_check_applies_overrides_prints_plan_and_does_not_train"
rc=$(run --frobnicate "$tmp/d.nml"); [ "$rc" = 2 ] && grep -q "unknown option '--frobnicate'" "$tmp/err" && [ "$(grep -c 'gnrev_mpi:' "$tmp/err")" = 1 ]
check $? "test_unknown_option_is_one_input_error"
rc=$(run "$tmp/missing.nml"); [ "$rc" = 3 ] && grep -q "cannot open deck $tmp/missing.nml" "$tmp/err"
check $? "test_missing_deck_is_an_io_error_naming_it"
rc=$(SLURM_NTASKS=5 run --check "$tmp/d.nml"); [ "$rc" = 2 ] && grep -q "SLURM_NTASKS = 5 but MPI sees 2" "$tmp/err"
check $? "test_slurm_ntasks_mismatch_is_refused"
rc=$(GNREV_TRACEBACK=1 run -P model:hidden=-1 "$tmp/d.nml"); [ "$rc" = 2 ] && grep -q "  at src/" "$tmp/err"
check $? "test_traceback_printed_on_request"
tap_finish
