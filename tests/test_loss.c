/* test_loss.c — losses, accuracy, gradients, GN residuals and the Hessian factor against
 * hand-computed values, finite differences and a numerical pseudo-inverse (LAPACK SVD).
 *
 * Logits, gradients, residuals and factors are gn_real (real.h); the references are computed in
 * double from double copies of the logits the library saw. Losses are double in both builds (the
 * library sums them in double from the gn_real logits), so checks on a loss value keep their
 * double tolerance; checks on gn_real results take gt_tol. */
// NP: 1
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <string.h>

#include "gnrev/model/loss.h"
#include "gnrev/core/rng.h"
#include "testlib.h"

/* LAPACK's Fortran SVD (column-major); the two trailing arguments are the hidden CHARACTER lengths. */
void dgesvd_(const char *jobu, const char *jobvt, const int *m, const int *n, double *a, const int *lda,
             double *s, double *u, const int *ldu, double *vt, const int *ldvt, double *work,
             const int *lwork, int *info, size_t ljobu, size_t ljobvt);

enum { N = 5, NC = 4 };

/* The textbook softmax, without the shift: the logits of these tests are O(1). */
static void naive_softmax(int C, const double *l, double *p) {
  double s = 0.0;
  for (int c = 0; c < C; ++c) s += exp(l[c]);
  for (int c = 0; c < C; ++c) p[c] = exp(l[c]) / s;
}

static double mean_loss(gn_loss_kind kind, int64_t n, int64_t n_global, const gn_real *l, const int32_t *y) {
  double sum;
  int64_t correct;
  gn_loss_eval(kind, n, NC, l, y, &sum, &correct);
  return sum / (double)n_global;
}

static void test_hand_computed_values(void) {
  const gn_real l[6] = {1, 2, 3, 0, 0, 0}; /* exact in float too */
  const int32_t y[2] = {2, 1};
  double sum;
  int64_t correct;
  gn_loss_eval(GN_LOSS_CE, 2, 3, l, y, &sum, &correct);
  /* -log softmax: log(1 + e^-1 + e^-2) for the first row, log 3 for the second. */
  const double ce = log(1.0 + exp(-1.0) + exp(-2.0)) + log(3.0);
  GT_CHECK(fabs(sum - ce) <= 1e-15 * ce, "test_ce_value_hand_computed (%.17g vs %.17g)", sum, ce);
  GT_CHECK(correct == 1, "test_accuracy_counts_argmax_hits_with_tie_to_lowest (got %lld)",
           (long long)correct);
  gn_loss_eval(GN_LOSS_MSE, 2, 3, l, y, &sum, &correct);
  /* 0.5 (1 + 4 + 4) + 0.5 (0 + 1 + 0) */
  GT_CHECK(sum == 5.0, "test_mse_value_hand_computed (%.17g vs 5)", sum);

  const gn_real tie[3] = {2, 2, 1};
  int64_t c0, c1;
  gn_loss_eval(GN_LOSS_CE, 1, 3, tie, (const int32_t[]){0}, &sum, &c0);
  gn_loss_eval(GN_LOSS_CE, 1, 3, tie, (const int32_t[]){1}, &sum, &c1);
  GT_CHECK(c0 == 1 && c1 == 0, "test_accuracy_tie_goes_to_lowest_index");

  const gn_real big[3] = {1000, 0, -1000};
  gn_loss_eval(GN_LOSS_CE, 1, 3, big, (const int32_t[]){1}, &sum, &c0);
  gn_real r[3];
  gn_loss_residual(GN_LOSS_CE, GN_HESS_IDENTITY, 1, 3, big, (const int32_t[]){1}, r);
  GT_CHECK(sum == 1000.0 && r[0] == 1.0 && r[1] == -1.0 && r[2] == 0.0,
           "test_ce_is_stable_for_logits_of_1000 (loss %.17g)", sum);
}

static void random_batch(gn_real *l, int32_t *y, uint32_t sub) {
  gn_rng_fill_normal_real(7, GN_RNG_TEST, sub, 0, N * NC, 1.0, l);
  for (int i = 0; i < N; ++i) y[i] = (int32_t)gn_rng_below(7, GN_RNG_TEST, sub + 1, (uint64_t)i, NC);
}

static void test_gradients(void) {
  gn_real l[N * NC], g[N * NC], r[N * NC];
  int32_t y[N];
  const int64_t n_global = 11; /* this rank's rows are part of a larger batch */
  for (int kind = 0; kind < 2; ++kind) {
    const gn_loss_kind k = kind == 0 ? GN_LOSS_CE : GN_LOSS_MSE;
    const char *name = kind == 0 ? "ce" : "mse";
    random_batch(l, y, 10 + (uint32_t)kind * 2);
    gn_loss_grad(k, N, n_global, NC, l, y, g);
    /* Central differences with step 1e-5: truncation step^2 |l'''| / 6 ~ 2e-11, rounding
     * 1e-16 |L| / step ~ 1e-11, both per coordinate of an O(1/n_global) gradient. The perturbed
     * logit is a gn_real: the quotient divides by the step it really took. */
    const double step = gt_fd_step(1e-5);
    double err = 0.0;
    for (int j = 0; j < N * NC; ++j) {
      const gn_real keep = l[j];
      l[j] = (gn_real)(keep + step);
      const double lp = mean_loss(k, N, n_global, l, y), up = l[j];
      l[j] = (gn_real)(keep - step);
      const double lm = mean_loss(k, N, n_global, l, y), down = l[j];
      l[j] = keep;
      err = fmax(err, fabs((lp - lm) / (up - down) - g[j]));
    }
    GT_CHECK(err < gt_fd_tol(1e-9), "test_%s_grad_matches_finite_differences (max err %.3g)", name, err);
    gn_loss_sample_grad(k, N, NC, l, y, r);
    double dev = 0.0;
    for (int j = 0; j < N * NC; ++j) dev = fmax(dev, fabs(r[j] - (double)n_global * g[j]));
    GT_CHECK(dev < gt_tol(1e-15), "test_%s_sample_grad_is_unscaled_grad (max dev %.3g)", name, dev);
  }
}

/* pinv(H) x for a symmetric C x C matrix H: singular values below C eps sigma_max count as zero
 * (H = diag(p) - p p^T has the exact null vector 1; its rounding leaves ~eps there). */
static int pinv_apply(int C, const double *H, const double *x, double *out) {
  double a[NC * NC], s[NC], u[NC * NC], vt[NC * NC], work[64];
  memcpy(a, H, sizeof a);
  int info = 0, lwork = 64;
  dgesvd_("A", "A", &C, &C, a, &C, s, u, &C, vt, &C, work, &lwork, &info, 1, 1);
  if (info != 0) return info;
  /* Column-major: H = U diag(s) VT, so pinv(H) = VT^T diag(1/s) U^T. */
  double coef[NC];
  for (int k = 0; k < C; ++k) {
    coef[k] = 0.0;
    if (s[k] <= C * 2.3e-16 * s[0]) continue;
    for (int i = 0; i < C; ++i) coef[k] += u[i + k * C] * x[i];
    coef[k] /= s[k];
  }
  for (int i = 0; i < C; ++i) {
    out[i] = 0.0;
    for (int k = 0; k < C; ++k) out[i] += vt[k + i * C] * coef[k];
  }
  return 0;
}

static void test_residuals(void) {
  gn_real l[N * NC], e[N * NC];
  double ld[N * NC], p[NC];
  int32_t y[N];
  random_batch(l, y, 20);
  gt_to_f64(l, N * NC, ld);

  gn_loss_residual(GN_LOSS_CE, GN_HESS_IDENTITY, N, NC, l, y, e);
  double dev = 0.0;
  for (int i = 0; i < N; ++i) {
    naive_softmax(NC, ld + i * NC, p);
    for (int c = 0; c < NC; ++c) dev = fmax(dev, fabs(e[i * NC + c] - (p[c] - (c == y[i]))));
  }
  GT_CHECK(dev < gt_tol(1e-15), "test_ce_identity_residual_is_softmax_minus_onehot (max dev %.3g)", dev);

  /* H's nonzero eigenvalues lie in roughly [min p, max p], so the pseudo-inverse is conditioned
   * ~1/min p and the two routes agree to a few eps / min p relative. */
  gn_loss_residual(GN_LOSS_CE, GN_HESS_EXACT, N, NC, l, y, e);
  double worst = 0.0, pmin = 1.0;
  int info = 0;
  for (int i = 0; i < N; ++i) {
    double H[NC * NC], rhs[NC], ref[NC];
    naive_softmax(NC, ld + i * NC, p);
    for (int c = 0; c < NC; ++c) pmin = fmin(pmin, p[c]);
    for (int a = 0; a < NC; ++a) {
      rhs[a] = p[a] - (a == y[i]);
      for (int c = 0; c < NC; ++c) H[a * NC + c] = (a == c ? p[a] : 0.0) - p[a] * p[c];
    }
    info |= pinv_apply(NC, H, rhs, ref);
    worst = fmax(worst, gt_rel_diff(e + i * NC, ref, NC));
  }
  const double tol = gt_tol(100 * 2.2e-16 / pmin);
  gt_note("smallest softmax probability %.3g: tolerance %.3g", pmin, tol);
  GT_CHECK(info == 0 && worst < tol,
           "test_ce_exact_residual_equals_pinv_of_output_hessian_times_residual (rel %.3g)", worst);

  /* logit - onehot is one subtraction rounded once to gn_real: exact in both builds. */
  gn_real em[N * NC];
  gn_loss_residual(GN_LOSS_MSE, GN_HESS_EXACT, N, NC, l, y, em);
  dev = 0.0;
  for (int i = 0; i < N; ++i)
    for (int c = 0; c < NC; ++c)
      dev = fmax(dev, fabs(em[i * NC + c] - (gn_real)(ld[i * NC + c] - (c == y[i]))));
  GT_CHECK(dev == 0.0, "test_mse_residual_is_logit_minus_onehot");
}

static void test_hessian_factor(void) {
  gn_real l[N * NC], S[N * NC * NC];
  double ld[N * NC], p[NC];
  int32_t y[N];
  random_batch(l, y, 30);
  gt_to_f64(l, N * NC, ld);
  gn_loss_hessian_factor(GN_LOSS_CE, N, NC, l, S);
  double dev = 0.0;
  for (int i = 0; i < N; ++i) {
    naive_softmax(NC, ld + i * NC, p);
    const gn_real *Si = S + i * NC * NC;
    for (int a = 0; a < NC; ++a)
      for (int b = 0; b < NC; ++b) {
        double ssT = 0.0;
        for (int c = 0; c < NC; ++c) ssT += (double)Si[a * NC + c] * Si[b * NC + c];
        dev = fmax(dev, fabs(ssT - ((a == b ? p[a] : 0.0) - p[a] * p[b])));
      }
  }
  GT_CHECK(dev < gt_tol(1e-15), "test_ce_hessian_factor_SST_equals_diag_p_minus_ppT (max dev %.3g)", dev);
  gn_loss_hessian_factor(GN_LOSS_MSE, N, NC, l, S);
  int identity = 1;
  for (int i = 0; i < N; ++i)
    for (int a = 0; a < NC; ++a)
      for (int b = 0; b < NC; ++b) identity &= S[(i * NC + a) * NC + b] == (a == b);
  GT_CHECK(identity, "test_mse_hessian_factor_is_identity");
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  gt_plan(14); /* the GT_CHECKs below, each made once */
  test_hand_computed_values();
  test_gradients();
  test_residuals();
  test_hessian_factor();
  int rc = gt_finish();
  MPI_Finalize();
  return rc;
}
