/* cka.c — linear CKA over row-distributed samples: column means and the feature-space
 * cross-products are local sums reduced over ranks (cka.h).
 *
 * The columns are centred before the products are formed (one extra allreduce of the means)
 * rather than corrected afterwards with n * mean mean^T: representations late in a network can
 * have means much larger than their spread, and the correction would then cancel most digits. */
#include "gnrev/diag/cka.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "gnrev/core/blas.h"
#include "gnrev/core/err.h"
#include "gnrev/core/real.h"

static int check_sizes(int64_t n_local, int64_t n, int64_t p, const char *what) {
  if (n_local < 0 || n_local > n || p < 1 || p > INT_MAX || n_local > INT_MAX)
    GN_FAIL(GN_EINTERNAL, "cka: %s has %lld local rows of %lld and %lld columns", what,
            (long long)n_local, (long long)n, (long long)p);
  return GN_OK;
}

/* Collective. Xc (n_local x p, packed) = X minus its global column means. */
static int centre(const gn_par *par, int64_t n_local, int64_t n, int64_t p, const gn_real *X,
                  int64_t ldx, gn_real *Xc) {
  gn_real *mean = calloc((size_t)p, sizeof(gn_real));
  CHECK_ALLOC(mean);
  for (int64_t i = 0; i < n_local; ++i)
    for (int64_t j = 0; j < p; ++j) mean[j] += X[i * ldx + j];
  int status = gn_par_sum_real(par, mean, (size_t)p);
  if (status == GN_OK) {
    for (int64_t j = 0; j < p; ++j) mean[j] /= (double)n;
    for (int64_t i = 0; i < n_local; ++i)
      for (int64_t j = 0; j < p; ++j) Xc[i * p + j] = X[i * ldx + j] - mean[j];
  }
  free(mean);
  if (status != GN_OK) gn_error_trace(__FILE__, __LINE__, __func__);
  return status;
}

/* Local. Frobenius norm of a symmetric p x p matrix of which only the upper triangle is set. */
static double sym_upper_norm(int64_t p, const gn_real *S) {
  double sum = 0;
  for (int64_t i = 0; i < p; ++i) {
    sum += S[i * p + i] * S[i * p + i];
    for (int64_t j = i + 1; j < p; ++j) sum += 2 * S[i * p + j] * S[i * p + j];
  }
  return sqrt(sum);
}

int gn_cka_ref_create(const gn_par *par, int64_t n_local, int64_t n, int64_t p, const gn_real *X,
                      int64_t ldx, gn_cka_ref *ref) {
  memset(ref, 0, sizeof *ref);
  CHECK(check_sizes(n_local, n, p, "the reference"));
  int status = GN_OK;
  gn_real *G = calloc((size_t)(p * p), sizeof(gn_real));
  ref->Xc = malloc((size_t)(n_local > 0 ? n_local : 1) * (size_t)p * sizeof(gn_real));
  if (!G || !ref->Xc)
    FAIL_GOTO(GN_ENOMEM, "cka: out of memory for a %lld x %lld reference", (long long)n, (long long)p);
  ref->n = n;
  ref->n_local = n_local;
  ref->p = p;
  CHECK_GOTO(centre(par, n_local, n, p, X, ldx, ref->Xc));
  gn_syrk_t(p, n_local, 1.0, ref->Xc, p, 0.0, G, p);
  CHECK_GOTO(gn_par_sum_real(par, G, (size_t)(p * p)));
  ref->self = sym_upper_norm(p, G);
  free(G);
  return GN_OK;
fail:
  free(G);
  gn_cka_ref_free(ref);
  return status;
}

void gn_cka_ref_free(gn_cka_ref *ref) {
  free(ref->Xc);
  memset(ref, 0, sizeof *ref);
}

int gn_cka_compare(const gn_par *par, const gn_cka_ref *ref, int64_t q, const gn_real *Y, int64_t ldy,
                   double *cka) {
  CHECK(check_sizes(ref->n_local, ref->n, q, "the compared representation"));
  const int64_t nl = ref->n_local, p = ref->p;
  int status = GN_OK;
  /* One buffer, so a single allreduce carries both products: [Yc^T Yc (q x q) | Yc^T Xc (q x p)]. */
  gn_real *buf = calloc((size_t)(q * q + q * p), sizeof(gn_real));
  gn_real *Yc = malloc((size_t)(nl > 0 ? nl : 1) * (size_t)q * sizeof(gn_real));
  if (!buf || !Yc)
    FAIL_GOTO(GN_ENOMEM, "cka: out of memory for products of %lld and %lld features", (long long)q,
              (long long)p);
  CHECK_GOTO(centre(par, nl, ref->n, q, Y, ldy, Yc));
  gn_real *YY = buf, *YX = buf + q * q;
  gn_syrk_t(q, nl, 1.0, Yc, q, 0.0, YY, q);
  gn_gemm(CblasTrans, CblasNoTrans, q, p, nl, 1.0, Yc, q, ref->Xc, p, 0.0, YX, p);
  CHECK_GOTO(gn_par_sum_real(par, buf, (size_t)(q * q + q * p)));
  const double yy = sym_upper_norm(q, YY);
  double cross = 0;
  for (int64_t k = 0; k < q * p; ++k) cross += YX[k] * YX[k];
  *cka = (ref->self > 0 && yy > 0) ? cross / (ref->self * yy) : NAN;
fail:
  free(buf);
  free(Yc);
  return status;
}

int gn_cka(const gn_par *par, int64_t n_local, int64_t n, int64_t p, const gn_real *X, int64_t ldx,
           int64_t q, const gn_real *Y, int64_t ldy, double *cka) {
  gn_cka_ref ref;
  CHECK(gn_cka_ref_create(par, n_local, n, p, X, ldx, &ref));
  int status = gn_cka_compare(par, &ref, q, Y, ldy, cka);
  gn_cka_ref_free(&ref);
  if (status != GN_OK) gn_error_trace(__FILE__, __LINE__, __func__);
  return status;
}
