/* real.h — the floating-point type of the model, the data, the optimizers and the GN step, chosen
 * at build time (PETSc's PetscReal): `make` builds double, `make PRECISION=single` (which defines
 * GN_PRECISION_SINGLE) builds float. One code path: modules use gn_real and the names below, never
 * a copied float function.
 *
 * What stays double in both builds: scalars that accumulate over many values (losses, sums of
 * squares, norms, counters), hyperparameters, times, the metrics table and every file on disk
 * (HDF5 converts gn_real arrays to double datasets on write and back on read, exactly), so run.h5
 * and checkpoints keep one format and readers need not know the build. */
#ifndef GNREV_CORE_REAL_H
#define GNREV_CORE_REAL_H

#include <float.h>

#ifdef GN_PRECISION_SINGLE
typedef float gn_real;
#define GN_REAL_EPS FLT_EPSILON
#define GN_REAL_MAX FLT_MAX
#define GN_PRECISION_NAME "single"
/* The BLAS/LAPACK/ScaLAPACK routine of this precision: GN_LA(dgemm, sgemm). */
#define GN_LA(d, s) s
#else
typedef double gn_real;
#define GN_REAL_EPS DBL_EPSILON
#define GN_REAL_MAX DBL_MAX
#define GN_PRECISION_NAME "double"
#define GN_LA(d, s) d
#endif

/* Element-wise math in gn_real's precision (no detour through double in the hot loops). */
#define gn_tanh GN_LA(tanh, tanhf)
#define gn_sqrt GN_LA(sqrt, sqrtf)

/* MPI datatype of gn_real (needs mpi.h). */
#define GN_MPI_REAL GN_LA(MPI_DOUBLE, MPI_FLOAT)

#endif
