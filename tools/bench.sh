#!/bin/bash
# `make bench`: GN step vs SGD step vs DGEMM, np = 1 and 2, in one run. OpenBLAS picks its own
# kernel here (OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset for these commands only).
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
MPIRUN=${MPIRUN:-mpirun}
if [ "$(id -u)" = 0 ]; then ROOTFLAG=--allow-run-as-root; else ROOTFLAG=; fi
MPIFLAGS=${MPIFLAGS:---oversubscribe $ROOTFLAG}
N=${BENCH_N:-1024}
H=${BENCH_H:-8000}
REPS=${BENCH_REPS:-3}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for np in ${BENCH_NP:-1 2}; do
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \
    $MPIRUN $MPIFLAGS -np "$np" "$BUILD/tests/bench_gn" "$N" "$H" "$REPS"
done
