/* blas.c — see blas.h. */
#include "gnrev/core/blas.h"
#include "gnrev/core/real.h"

#include <string.h>

void gn_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K, double alpha,
             const gn_real *A, int64_t lda, const gn_real *B, int64_t ldb, double beta, gn_real *C,
             int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (beta == 0.0)
      for (int64_t i = 0; i < M; ++i) memset(C + i * ldc, 0, (size_t)N * sizeof *C);
    return;
  }
  gn_cblas_gemm(CblasRowMajor, ta, tb, gn_int(M), gn_int(N), gn_int(K), alpha, A, gn_int(lda), B, gn_int(ldb),
              beta, C, gn_int(ldc));
}

void gn_syrk_t(int64_t N, int64_t K, double alpha, const gn_real *A, int64_t lda, double beta, gn_real *C, int64_t ldc) {
  if (N == 0) return;
  if (K == 0) {
    if (beta == 0.0)
      for (int64_t i = 0; i < N; ++i) memset(C + i * ldc + i, 0, (size_t)(N - i) * sizeof *C);
    return;
  }
  gn_cblas_syrk(CblasRowMajor, CblasUpper, CblasTrans, gn_int(N), gn_int(K), alpha, A, gn_int(lda), beta, C, gn_int(ldc));
}
