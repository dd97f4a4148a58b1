#!/bin/bash
# `make bench`: in one run, for each rank count (BENCH_NP, default "1 2") and each build folder of
# BENCH_BUILDS (make bench passes both precisions' folders; default BUILD alone):
#   - bench_gn: DGEMM (SGEMM) of the forward's shape, the forward, the SGD step and the GN step through
#     the optimizer interface, GN / SGD, rates against DGEMM, the GN split, peak memory per rank;
#   - a real run of gnrev_mpi on the paper's full-batch setting (the first BENCH_N training samples,
#     hidden BENCH_H, GN, batch change on, evaluation only at the end) and its own per-step account:
#     the update, and everything else it does per step (batch, rows, flushes, evaluations,
#     checkpoints), beside the bench's GN step.
# OpenBLAS picks its own kernel here (OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset for these commands
# only). Timings never enter the tests.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
MPIRUN=${MPIRUN:-mpirun}
if [ "$(id -u)" = 0 ]; then ROOTFLAG=--allow-run-as-root; else ROOTFLAG=; fi
MPIFLAGS=${MPIFLAGS:---oversubscribe $ROOTFLAG}
N=${BENCH_N:-1024}
H=${BENCH_H:-8000}
REPS=${BENCH_REPS:-3}
STEPS=${BENCH_STEPS:-6}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

builds=${BENCH_BUILDS:-$BUILD}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for np in ${BENCH_NP:-1 2}; do
  for b in $builds; do
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \
      $MPIRUN $MPIFLAGS -np "$np" "$b/tests/bench_gn" "$N" "$H" "$REPS"
    out="$tmp/run_${b}_$np"
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \
      $MPIRUN $MPIFLAGS -np "$np" "$b/gnrev_mpi" -P "run:out_dir='$out'" -P run:epochs="$STEPS" \
      -P run:log_every=1000 -P data:n_train="$N" -P data:n_test=2000 -P model:hidden="$H" \
      -P diagnostics:eval_every=0 -P checkpoint:every=0 -P "checkpoint:restart='none'" \
      input/deck.nml >"$tmp/log" 2>&1 || { echo "  real run failed:"; tail -n 5 "$tmp/log"; continue; }
    grep -E '^time per step' "$tmp/log" | sed "s/^/  real run ($STEPS full-batch GN steps, gnrev_mpi): /"
  done
done
