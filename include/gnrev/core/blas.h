/* blas.h — the BLAS entry points the numerical modules share: int64 dimensions checked into
 * BLAS's int, and empty shapes handled here (a rank may own no rows, which reference BLAS and
 * OpenBLAS treat differently). */
#ifndef GNREV_BLAS_H
#define GNREV_BLAS_H

#include <assert.h>
#include <limits.h>
#include <stdint.h>

#include <cblas.h>
#include "gnrev/core/real.h"

/* Local. x as a BLAS/MPI int; callers have checked at set-up that every dimension fits. */
static inline int gn_int(int64_t x) {
  assert(x >= 0 && x <= INT_MAX);
  return (int)x;
}

/* CBLAS routines of gn_real's precision, for the calls that need no wrapper. */
#define gn_cblas_gemm GN_LA(cblas_dgemm, cblas_sgemm)
#define gn_cblas_syrk GN_LA(cblas_dsyrk, cblas_ssyrk)
#define gn_cblas_gemv GN_LA(cblas_dgemv, cblas_sgemv)
#define gn_cblas_dot GN_LA(cblas_ddot, cblas_sdot)
#define gn_cblas_axpy GN_LA(cblas_daxpy, cblas_saxpy)
#define gn_cblas_scal GN_LA(cblas_dscal, cblas_sscal)

/* Local. C (M x N, ldc) = alpha op(A) op(B) + beta C, row-major; K = 0 with beta 0 clears C. */
void gn_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K, double alpha,
             const gn_real *A, int64_t lda, const gn_real *B, int64_t ldb, double beta, gn_real *C,
             int64_t ldc);

/* Local. C (N x N, ldc, upper triangle) = alpha A^T A + beta C for A (K x N, lda), row-major; K = 0
 * with beta 0 clears the triangle. */
void gn_syrk_t(int64_t N, int64_t K, double alpha, const gn_real *A, int64_t lda, double beta, gn_real *C, int64_t ldc);

#endif
