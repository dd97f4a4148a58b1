/* test_ggn.c — the ViViT GGN analysis against the explicit G = J^T H J / N built from a central
 * finite-difference J (eigenvalues, eigenvectors through gamma_nk and lambda_nk, the mean
 * gradient's share), the SNR formula, the MC factor's unbiasedness, rank-count invariance, and
 * the damped Newton step: with damping 0 and every direction it is G^+ grad L, which for MSE is
 * the Moore-Penrose GN step J^+ eps; with per-direction damping it is sum_k gamma_k/(lambda_k +
 * delta_k) e_k; the bootstrap's damping against the rule of ViViT section 4.2: the smallest
 * candidate where the per-sample values carry no noise (one sample), the largest where the mean
 * gradient is zero and only noise is left, and an independent evaluation of the rule elsewhere. */
// NP: 1 2 3 4
#include <stdlib.h>
#include <string.h>

#include "gnrev/curvature/ggn.h"
#include "gnrev/model/loss.h"
#include "gnrev/model/model.h"
#include "gnrev/curvature/ntk.h"
#include "gnrev/core/par.h"
#include "gnrev/core/rng.h"
#include "gnrev/linalg/scalapack.h"
#include "testlib.h"
#include "testopt.h"

/* theta, inputs, logits and directions are gn_real (real.h); the GGN's results (eigenvalues,
 * gamma, lambda, dampings) are double in both builds. The explicit reference (finite-difference J,
 * output gradients and Hessians, G and its DSYEVD) is double, formed from the gn_real values.
 * Rounding tolerances go through gt_tol, difference steps and their tolerances through gt_fd_step
 * and gt_fd_tol (testlib.h); a quotient divides by the perturbation really applied. */

/* Central differences with step 1e-5 on parameters of size ~0.3 give J to ~1e-10 relative
 * (truncation h^2 |f'''| / 6, rounding eps |f| / h), so G to ~1e-9; FD_TOL leaves a margin. */
#define FD_STEP gt_fd_step(1e-5)
#define FD_TOL gt_fd_tol(1e-7)

typedef struct {
  gn_deck dk;
  gn_model md;
  gn_real *theta, *X;
  int32_t *y;
  int64_t N, row0, nrows;
} setup;

static void make_setup(const gn_par *par, setup *s, int64_t N, gn_loss_kind loss, gn_activation act) {
  memset(s, 0, sizeof *s);
  s->dk.seed = 23;
  s->dk.blocks = 2;
  s->dk.hidden = 9;
  s->dk.activation = act;
  s->dk.linear_first_block = true;
  s->dk.bias = true;
  s->dk.init_std = 0.3;
  s->dk.proj_gain = 1.0;
  s->dk.loss = loss;
  s->dk.output_hessian = GN_HESS_EXACT;
  s->dk.rtol = 1e-13;
  s->dk.atol = 1e-300;
  s->dk.ggn_mode = GN_GGN_EXACT;
  s->dk.ggn_mc_samples = 1;
  s->dk.ggn_top_k = 3;
  s->dk.damping_mode = GN_DAMP_CONSTANT;
  s->dk.damping = 0;
  s->N = N;
  gn_model_create(NULL, &s->dk, 8, 3, &s->md);
  gn_model_reserve(&s->md, N);
  s->theta = malloc(s->md.nparams * sizeof(gn_real));
  gn_model_init_params(&s->md, &s->dk, 0, s->md.nparams, s->theta);
  for (size_t i = 0; i < s->md.nparams; ++i)
    s->theta[i] = (gn_real)(s->theta[i] + 0.05 * gn_rng_normal(3, GN_RNG_TEST, 1, i));
  s->X = malloc((size_t)(N * 8) * sizeof(gn_real));
  s->y = malloc((size_t)N * sizeof(int32_t));
  gn_rng_fill_normal_real(2, GN_RNG_TEST, 0, 0, (size_t)(N * 8), 1.0, s->X);
  for (int64_t i = 0; i < N; ++i) s->y[i] = (int32_t)((i * 5 + 1) % 3);
  gn_par_rows(N, par->size, par->rank, &s->row0, &s->nrows);
}

static void free_setup(setup *s) {
  free(s->theta);
  free(s->X);
  free(s->y);
  gn_model_free(&s->md);
}

static void logits_at(const gn_model *md, const gn_real *theta, int64_t n, const gn_real *X, gn_real *out) {
  gn_real *Xc = malloc((size_t)(n * md->d) * sizeof(gn_real));
  memcpy(Xc, X, (size_t)(n * md->d) * sizeof(gn_real));
  gn_model_forward(md, theta, n, Xc, out);
  free(Xc);
}

/* The explicit objects of the finite-difference reference, the same on every rank. */
typedef struct {
  int64_t NC, P;
  double *J;     /* NC x P */
  double *r;     /* N x C per-sample output gradients (softmax - onehot or logit - onehot) */
  double *H;     /* N x C x C output Hessians */
  double *G;     /* P x P: J^T H J / N, then its eigenvectors (row i = eigenvector i, ascending) */
  double *w;     /* P eigenvalues, ascending */
  double *grad;  /* P: J^T r / N */
} reference;

static void make_reference(const setup *s, reference *ref) {
  const int C = s->md.C;
  const int64_t N = s->N, NC = N * C, P = (int64_t)s->md.nparams;
  ref->NC = NC;
  ref->P = P;
  ref->J = malloc((size_t)(NC * P) * sizeof(double));
  gn_real *tp = malloc((size_t)P * sizeof(gn_real)), *lp = malloc((size_t)NC * sizeof(gn_real)),
          *lm = malloc((size_t)NC * sizeof(gn_real));
  memcpy(tp, s->theta, (size_t)P * sizeof(gn_real));
  for (int64_t k = 0; k < P; ++k) {
    tp[k] = (gn_real)(s->theta[k] + FD_STEP);
    const double up = tp[k];
    logits_at(&s->md, tp, N, s->X, lp);
    tp[k] = (gn_real)(s->theta[k] - FD_STEP);
    const double down = tp[k];
    logits_at(&s->md, tp, N, s->X, lm);
    tp[k] = s->theta[k];
    for (int64_t r = 0; r < NC; ++r) ref->J[r * P + k] = ((double)lp[r] - lm[r]) / (up - down);
  }
  /* r and H from the logits in double (p by the textbook softmax: its entries sum to 1 to double
   * rounding, so that each H_n keeps the exact null vector 1 and G its structural zeros). */
  logits_at(&s->md, s->theta, N, s->X, lp);
  ref->r = malloc((size_t)NC * sizeof(double));
  ref->H = calloc((size_t)(N * C * C), sizeof(double));
  for (int64_t n = 0; n < N; ++n) {
    double *Hn = ref->H + n * C * C, p[3], sum = 0;
    for (int c = 0; c < C; ++c) sum += exp((double)lp[n * C + c]);
    for (int c = 0; c < C; ++c) p[c] = s->dk.loss == GN_LOSS_MSE ? lp[n * C + c] : exp((double)lp[n * C + c]) / sum;
    for (int c = 0; c < C; ++c) ref->r[n * C + c] = p[c] - (c == s->y[n]);
    if (s->dk.loss == GN_LOSS_MSE) {
      for (int c = 0; c < C; ++c) Hn[c * C + c] = 1;
      continue;
    }
    /* diag(p) - p p^T. */
    for (int a = 0; a < C; ++a)
      for (int c = 0; c < C; ++c) Hn[a * C + c] = (a == c ? p[a] : 0) - p[a] * p[c];
  }
  /* HJ = blockdiag(H_n) J, G = J^T HJ / N, grad = J^T r / N. */
  double *HJ = calloc((size_t)(NC * P), sizeof(double));
  for (int64_t n = 0; n < N; ++n)
    for (int a = 0; a < C; ++a)
      for (int c = 0; c < C; ++c)
        for (int64_t k = 0; k < P; ++k)
          HJ[(n * C + a) * P + k] += ref->H[n * C * C + a * C + c] * ref->J[(n * C + c) * P + k];
  ref->G = calloc((size_t)(P * P), sizeof(double));
  ref->grad = calloc((size_t)P, sizeof(double));
  for (int64_t r = 0; r < NC; ++r)
    for (int64_t i = 0; i < P; ++i) {
      const double ji = ref->J[r * P + i] / (double)N;
      ref->grad[i] += ji * ref->r[r];
      for (int64_t j = 0; j < P; ++j) ref->G[i * P + j] += ji * HJ[r * P + j];
    }
  free(HJ);
  ref->w = malloc((size_t)P * sizeof(double));
  int n = (int)P, lwork = 1 + 6 * n + 2 * n * n + 64, liwork = 3 + 5 * n + 64, info = 0;
  double *work = malloc((size_t)lwork * sizeof(double));
  int *iwork = malloc((size_t)liwork * sizeof(int));
  dsyevd_("V", "L", &n, ref->G, &n, ref->w, work, &lwork, iwork, &liwork, &info, 1, 1);
  free(work);
  free(iwork);
  free(tp);
  free(lp);
  free(lm);
}

static void free_reference(reference *ref) {
  free(ref->J);
  free(ref->r);
  free(ref->H);
  free(ref->G);
  free(ref->w);
  free(ref->grad);
}

/* Eigenvector of the k-th largest eigenvalue of the reference G. */
static const double *ref_vec(const reference *ref, int64_t k) { return ref->G + (ref->P - 1 - k) * ref->P; }

static int64_t ref_rank(const reference *ref) {
  int64_t n = 0;
  while (n < ref->P && ref->w[ref->P - 1 - n] > 1e-10 * ref->w[ref->P - 1]) ++n;
  return n;
}

static double dot(const double *a, const double *b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

static void check_analysis(const gn_par *par, gn_loss_kind loss, const char *label) {
  setup s;
  make_setup(par, &s, 5, loss, GN_ACT_TANH);
  reference ref;
  make_reference(&s, &ref);
  const int C = s.md.C;
  const int64_t N = s.N, P = ref.P;
  gn_ggn g;
  int st = gn_ggn_compute(par, &s.md, &s.dk, s.theta, s.nrows, N, s.X + s.row0 * 8, s.y + s.row0, 0, &g);
  GT_CHECK(st == GN_OK, "test_ggn_compute_succeeds (%s): %s", label, st ? gn_error_message() : "");
  if (st != GN_OK) {
    free_reference(&ref);
    free_setup(&s);
    return;
  }
  const int64_t rank = ref_rank(&ref), want = loss == GN_LOSS_CE ? N * (C - 1) : N * C;
  const double lmax = ref.w[P - 1];
  double ed = 0;
  for (int64_t i = 0; i < g.n_eig && i < rank; ++i) ed = fmax(ed, fabs(g.eigenvalues[i] - ref.w[P - 1 - i]));
  GT_CHECK(g.n_eig == rank && rank == want && ed <= FD_TOL * lmax,
           "test_ggn_eigenvalues_equal_explicit_nonzero_spectrum (%s): %lld vs %lld nonzero (want %lld), "
           "max diff / lambda_max %.2e", label, (long long)g.n_eig, (long long)rank, (long long)want, ed / lmax);

  /* gamma_nk = e_k . J_n^T r_n and lambda_nk = |H_n^(1/2) J_n e_k|^2 = (J_n e_k)^T H_n (J_n e_k) with
   * the explicit eigenvectors; an eigenvector carries the FD error over the gap to its neighbours. */
  const int64_t k = g.k;
  double gerr = 0, lerr = 0, gscale = 0, lscale = 0, tol_double = 0;
  for (int64_t kk = 0; kk < k; ++kk) {
    const double *e = ref_vec(&ref, kk);
    double gap = fabs(ref.w[P - 1 - kk] - ref.w[P - 2 - kk]);
    if (kk > 0) gap = fmin(gap, fabs(ref.w[P - kk] - ref.w[P - 1 - kk]));
    tol_double = fmax(tol_double, 100 * 1e-9 * lmax / gap);
    double gam[16], lam[16], align = 0;
    for (int64_t n = 0; n < N; ++n) {
      double Je[3];
      gam[n] = 0;
      for (int a = 0; a < C; ++a) {
        Je[a] = dot(ref.J + (n * C + a) * P, e, P);
        gam[n] += Je[a] * ref.r[n * C + a];
      }
      lam[n] = 0;
      for (int a = 0; a < C; ++a)
        for (int c = 0; c < C; ++c) lam[n] += Je[a] * ref.H[n * C * C + a * C + c] * Je[c];
      align += gam[n] * g.gamma[n * k + kk];
    }
    const double sg = align < 0 ? -1 : 1;
    for (int64_t n = 0; n < N; ++n) {
      gerr = fmax(gerr, fabs(sg * gam[n] - g.gamma[n * k + kk]));
      lerr = fmax(lerr, fabs(lam[n] - g.lambda[n * k + kk]));
      gscale = fmax(gscale, fabs(gam[n]));
      lscale = fmax(lscale, fabs(lam[n]));
    }
  }
  /* The double build's tolerance, carried to this build. */
  const double tol = gt_fd_tol(tol_double);
  GT_CHECK(k == 3 && gerr <= tol * gscale, "test_ggn_gamma_nk_equals_explicit (%s): max err / max %.2e (tol %.1e)",
           label, gerr / gscale, tol);
  GT_CHECK(k == 3 && lerr <= tol * lscale, "test_ggn_lambda_nk_equals_explicit (%s): max err / max %.2e (tol %.1e)",
           label, lerr / lscale, tol);

  /* Means: lambda_k is the eigenvalue (sum_n |e~_k[n]|^2 = 1); gamma_k is e_k . grad L. */
  double merr = 0, gkerr = 0;
  for (int64_t kk = 0; kk < k; ++kk) {
    merr = fmax(merr, fabs(g.lambda_mean[kk] - g.eigenvalues[kk]) / g.eigenvalues[kk]);
    const double gk = fabs(dot(ref_vec(&ref, kk), ref.grad, P));
    gkerr = fmax(gkerr, fabs(fabs(g.gamma_mean[kk]) - gk));
  }
  GT_CHECK(merr < gt_tol(1e-12), "test_ggn_lambda_nk_average_to_eigenvalue (%s): %.2e", label, merr);
  GT_CHECK(gkerr <= tol * gscale, "test_ggn_gamma_nk_average_to_directional_gradient (%s): %.2e", label,
           gkerr / gscale);

  /* SNR = mean^2 / population variance over the N samples. */
  double serr = 0;
  for (int64_t kk = 0; kk < k; ++kk)
    for (int which = 0; which < 2; ++which) {
      const double *x = which ? g.lambda : g.gamma;
      double m = 0, v = 0;
      for (int64_t n = 0; n < N; ++n) m += x[n * k + kk] / (double)N;
      for (int64_t n = 0; n < N; ++n) v += (x[n * k + kk] - m) * (x[n * k + kk] - m) / (double)N;
      const double want_snr = m * m / v, got = which ? g.lambda_snr[kk] : g.gamma_snr[kk];
      serr = fmax(serr, fabs(got - want_snr) / want_snr);
    }
  GT_CHECK(serr < gt_tol(1e-12), "test_ggn_snr_is_mean_squared_over_population_variance (%s): %.2e", label, serr);

  /* The gradient's share in the top-k space against the explicit projection. */
  double top = 0;
  for (int64_t kk = 0; kk < k; ++kk) {
    const double gk = dot(ref_vec(&ref, kk), ref.grad, P);
    top += gk * gk;
  }
  const double ov_want = top / dot(ref.grad, ref.grad, P);
  GT_CHECK(fabs(g.grad_overlap - ov_want) <= tol, "test_ggn_grad_overlap_top3_equals_explicit (%s): %.12f vs %.12f",
           label, g.grad_overlap, ov_want);
  gn_ggn_free(&g);

  /* With every direction the gradient lies in the GGN's range (r_n is in the range of H_n). */
  s.dk.ggn_top_k = 1000;
  st = gn_ggn_compute(par, &s.md, &s.dk, s.theta, s.nrows, N, s.X + s.row0 * 8, s.y + s.row0, 0, &g);
  GT_CHECK(st == GN_OK && g.k == g.n_eig && fabs(g.grad_overlap - 1) < gt_tol(1e-10),
           "test_ggn_grad_overlap_is_one_with_all_directions (%s): 1 - overlap = %.2e", label, 1 - g.grad_overlap);
  gn_ggn_free(&g);
  free_reference(&ref);
  free_setup(&s);
}

/* E[s s^T] = H for the MC columns, so the MC Gram's trace (1/N) sum_n tr(S_n^T K_nn S_n) is an
 * unbiased estimate of the exact one. Over many steps (independent draws, sub = step) the mean
 * trace must sit within 4 standard errors of the exact trace. */
static void check_mc_unbiased(const gn_par *par, gn_loss_kind loss, const char *label) {
  setup s;
  make_setup(par, &s, 4, loss, GN_ACT_RELU);
  s.dk.ggn_top_k = 0;
  gn_ggn g;
  int st = gn_ggn_compute(par, &s.md, &s.dk, s.theta, s.nrows, s.N, s.X + s.row0 * 8, s.y + s.row0, 0, &g);
  double exact = 0;
  for (int64_t i = 0; i < g.n_eig; ++i) exact += g.eigenvalues[i];
  gn_ggn_free(&g);
  s.dk.ggn_mode = GN_GGN_MC;
  s.dk.ggn_mc_samples = 5;
  enum { STEPS = 60 };
  double sum = 0, sum2 = 0;
  for (int t = 0; t < STEPS && st == GN_OK; ++t) {
    st = gn_ggn_compute(par, &s.md, &s.dk, s.theta, s.nrows, s.N, s.X + s.row0 * 8, s.y + s.row0, t, &g);
    double tr = 0;
    for (int64_t i = 0; i < g.n_eig; ++i) tr += g.eigenvalues[i];
    sum += tr;
    sum2 += tr * tr;
    gn_ggn_free(&g);
  }
  const double mean = sum / STEPS, se = sqrt(fmax(sum2 / STEPS - mean * mean, 0) / (STEPS - 1));
  GT_CHECK(st == GN_OK && fabs(mean - exact) <= 4 * se && se > 0,
           "test_ggn_mc_trace_is_unbiased (%s): mean %.6f vs exact %.6f, standard error %.2e", label, mean,
           exact, se);
  free_setup(&s);
}

/* The analysis and the step on every rank count against MPI_COMM_SELF on rank 0, MC mode (the
 * draws must not depend on the split) with bootstrap damping. */
static void check_rank_invariance(const gn_par *par, const gn_par *self) {
  setup s;
  make_setup(par, &s, 6, GN_LOSS_CE, GN_ACT_TANH);
  s.dk.ggn_mode = GN_GGN_MC;
  s.dk.ggn_mc_samples = 2;
  s.dk.damping_mode = GN_DAMP_BOOTSTRAP;
  const size_t P = s.md.nparams;
  gn_ggn g, g1;
  gn_real *d = malloc(P * sizeof(gn_real)), *d1 = calloc(P, sizeof(gn_real));
  double dm[3], dm1[3] = {0, 0, 0};
  double buf[2 * 6 * 3 + 3];
  int st = gn_ggn_compute(par, &s.md, &s.dk, s.theta, s.nrows, s.N, s.X + s.row0 * 8, s.y + s.row0, 4, &g);
  st |= gt_direction(par, &s.md, &s.dk, GN_OPT_GN_VIVIT, false, s.theta, s.nrows, s.N, s.X + s.row0 * 8, s.y + s.row0,
                     4, d, dm);
  memset(buf, 0, sizeof buf);
  if (par->rank == 0) {
    st |= gn_ggn_compute(self, &s.md, &s.dk, s.theta, s.N, s.N, s.X, s.y, 4, &g1);
    st |= gt_direction(self, &s.md, &s.dk, GN_OPT_GN_VIVIT, false, s.theta, s.N, s.N, s.X, s.y, 4, d1, dm1);
    memcpy(buf, g1.gamma, 18 * sizeof(double));
    memcpy(buf + 18, g1.lambda, 18 * sizeof(double));
    memcpy(buf + 36, g1.eigenvalues, 3 * sizeof(double));
    gn_ggn_free(&g1);
  }
  MPI_Bcast(buf, (int)(sizeof buf / sizeof *buf), MPI_DOUBLE, 0, par->comm);
  MPI_Bcast(d1, (int)P, GN_MPI_REAL, 0, par->comm);
  MPI_Bcast(dm1, 3, MPI_DOUBLE, 0, par->comm);
  const double rg = gt_rel_diff(g.gamma, buf, 18), rl = gt_rel_diff(g.lambda, buf + 18, 18),
               re = gt_rel_diff(g.eigenvalues, buf + 36, 3), rd = gt_rel_diff(d, d1, P);
  GT_CHECK(st == GN_OK && g.k == 3 && rg < gt_tol(1e-10) && rl < gt_tol(1e-10) && re < gt_tol(1e-12),
           "test_ggn_same_on_every_rank_count (mc): gamma %.1e, lambda %.1e, eigenvalues %.1e", rg, rl, re);
  /* The grid scales with the mean eigenvalue, itself equal only to rounding: same grid point. */
  const double rdm = gt_rel_diff(dm, dm1, 3);
  GT_CHECK(st == GN_OK && rd < gt_tol(1e-10) && rdm < gt_tol(1e-12),
           "test_vivit_step_same_on_every_rank_count (bootstrap): step %.1e, dampings %.1e", rd, rdm);
  gn_ggn_free(&g);
  free(d);
  free(d1);
  free_setup(&s);
}

/* For MSE, G = J^T J / N and grad L = J^T eps / N, so G^+ grad L = (J^T J)^+ J^T eps = J^+ eps:
 * the undamped ViViT step over every direction is the Moore-Penrose GN step, factor 1, same sign
 * (both are subtracted: theta - lr delta). */
static void check_vivit_equals_mp_for_mse(const gn_par *par) {
  setup s;
  make_setup(par, &s, 5, GN_LOSS_MSE, GN_ACT_TANH);
  s.dk.ggn_top_k = 1000;
  s.dk.damping = 0;
  const size_t P = s.md.nparams;
  gn_real *dv = malloc(P * sizeof(gn_real)), *dmp = malloc(P * sizeof(gn_real));
  double *damp = malloc(1000 * sizeof(double));
  int st = gt_direction(par, &s.md, &s.dk, GN_OPT_GN_VIVIT, false, s.theta, s.nrows, s.N, s.X + s.row0 * 8,
                        s.y + s.row0, 0, dv, damp);
  int st2 = gt_direction(par, &s.md, &s.dk, GN_OPT_GN, true, s.theta, s.nrows, s.N, s.X + s.row0 * 8, s.y + s.row0, 0,
                         dmp, NULL);
  gn_ggn g;
  gn_ggn_compute(par, &s.md, &s.dk, s.theta, s.nrows, s.N, s.X + s.row0 * 8, s.y + s.row0, 0, &g);
  /* Both solve with backward-stable eigensolvers: error ~ eps times the condition of the NTK,
   * kappa = lambda_max / lambda_min of the Gram (= K / N for MSE), with a margin of 1e3. */
  const double kappa = g.eigenvalues[0] / g.eigenvalues[g.n_eig - 1], tol = gt_tol(1e3 * 2.2e-16 * kappa);
  const double r = gt_rel_diff(dv, dmp, P);
  GT_CHECK(st == GN_OK && st2 == GN_OK && r < tol,
           "test_vivit_undamped_all_directions_equals_mp_step_for_mse: rel diff %.2e (tol %.1e)", r, tol);
  GT_CHECK(st == GN_OK && damp[0] == 0.0 && isnan(damp[g.n_eig]),
           "test_vivit_damping_out_marks_unused_directions_nan");
  gn_ggn_free(&g);
  free(dv);
  free(dmp);
  free(damp);
  free_setup(&s);
}

/* sum_k gamma_k / (lambda_k + delta_k) e_k with the explicit eigenvectors (each term is invariant
 * under e_k -> -e_k). */
static void explicit_step(const reference *ref, int64_t k, const double *delta_k, double *out) {
  const int64_t P = ref->P;
  memset(out, 0, (size_t)P * sizeof(double));
  for (int64_t kk = 0; kk < k; ++kk) {
    const double *e = ref_vec(ref, kk);
    const double a = dot(e, ref->grad, P) / (ref->w[P - 1 - kk] + delta_k[kk]);
    for (int64_t i = 0; i < P; ++i) out[i] += a * e[i];
  }
}

/* The bootstrap of ViViT section 4.2 as ggn.h documents it, evaluated here without ggn.c's code:
 * lambda_ref is the mean of the top-k lambda_k, the candidates lambda_ref 10^j for j = -6..6. For
 * each of B = 100 replicates, s = -gamma1 / (lambda1 + delta) with the means gamma1, lambda1 over
 * one resample of the N samples, and R = -s gamma2 - s^2 lambda2 / 2 with the means over another;
 * the score of delta is the 5% quantile of R, the 5th smallest of the B values. The resamples come
 * from (seed, GN_RNG_BOOTSTRAP, sub = step), sample i of half h of replicate b at counter
 * (2 b + h) N + i, as in ggn.c. */
static double boot_lambda_ref(const gn_ggn *g) {
  double l = 0;
  for (int64_t kk = 0; kk < g->k; ++kk) l += g->lambda_mean[kk] / (double)g->k;
  return l;
}

static int cmp_up(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double boot_quantile(const gn_ggn *g, uint64_t seed, int64_t step, int64_t kk, double delta) {
  enum { B = 100 };
  const int64_t N = g->N, k = g->k;
  double R[B];
  for (int b = 0; b < B; ++b) {
    double gam[2] = {0, 0}, lam[2] = {0, 0};
    for (int h = 0; h < 2; ++h)
      for (int64_t i = 0; i < N; ++i) {
        const int64_t n = (int64_t)gn_rng_below(seed, GN_RNG_BOOTSTRAP, (uint32_t)step,
                                                (uint64_t)((2 * b + h) * N + i), (uint64_t)N);
        gam[h] += g->gamma[n * k + kk] / (double)N;
        lam[h] += g->lambda[n * k + kk] / (double)N;
      }
    const double s = -gam[0] / (lam[0] + delta);
    R[b] = -s * gam[1] - 0.5 * s * s * lam[1];
  }
  qsort(R, B, sizeof *R, cmp_up);
  return R[4];
}

/* Where the answer is known without the bootstrap's draws. One sample: every resample is that
 * sample, so R(delta) = gamma^2 / x - gamma^2 lambda / (2 x^2) with x = lambda + delta, which falls
 * as delta grows past 0: the smallest candidate, 1e-6 lambda_ref, wins in every direction. Three
 * samples with one input (zero, zero biases: uniform softmax) and the labels 0, 1, 2: the per-
 * sample gradients are nonzero but sum to zero, so the mean gradient is zero and the resample
 * means of gamma have either sign; with a third of the replicates giving R < 0 at every damping,
 * the quantile grows towards 0 as the step shrinks: the largest candidate, 1e6 lambda_ref, wins. */
static void check_bootstrap_known_answers(const gn_par *par) {
  for (int noisy = 0; noisy < 2; ++noisy) {
    setup s;
    const int64_t N = noisy ? 3 : 1;
    make_setup(par, &s, N, GN_LOSS_CE, GN_ACT_TANH);
    s.dk.damping_mode = GN_DAMP_BOOTSTRAP;
    s.dk.ggn_top_k = 4;
    if (noisy) {
      gn_model_init_params(&s.md, &s.dk, 0, s.md.nparams, s.theta);
      memset(s.X, 0, (size_t)(N * 8) * sizeof(gn_real));
      for (int64_t i = 0; i < N; ++i) s.y[i] = (int32_t)i;
    }
    const size_t P = s.md.nparams;
    gn_real *dv = malloc(P * sizeof(gn_real));
    double damp[4];
    gn_ggn g;
    int st = gn_ggn_compute(par, &s.md, &s.dk, s.theta, s.nrows, N, s.X + s.row0 * 8, s.y + s.row0, 3, &g);
    st |= gt_direction(par, &s.md, &s.dk, GN_OPT_GN_VIVIT, false, s.theta, s.nrows, N, s.X + s.row0 * 8,
                       s.y + s.row0, 3, dv, damp);
    const double want = boot_lambda_ref(&g) * (noisy ? 1e6 : 1e-6);
    double err = 0, spread = 0, gsum = 0;
    for (int64_t kk = 0; kk < g.k; ++kk) {
      err = fmax(err, fabs(damp[kk] - want) / want);
      gsum += fabs(g.gamma_mean[kk]);
      for (int64_t n = 0; n < N; ++n) spread = fmax(spread, fabs(g.gamma[n * g.k + kk]));
    }
    gt_note("%s: %lld directions, max |gamma_nk| %.3e, sum |gamma_k| %.3e, dampings / lambda_ref %.1e %.1e",
            noisy ? "zero mean gradient" : "one sample", (long long)g.k, spread, gsum,
            damp[0] / boot_lambda_ref(&g), g.k > 1 ? damp[1] / boot_lambda_ref(&g) : NAN);
    /* The noisy case is only what it claims if the samples' gradients are large and their mean is
     * zero to rounding (of gn_real: gt_tol). */
    GT_REQUIRE(st != GN_OK || !noisy || (spread > 1e-3 && gsum < gt_tol(1e-12) * spread),
               "zero-mean case: max |gamma_nk| %.3e, sum |gamma_k| %.3e", spread, gsum);
    if (noisy)
      GT_CHECK(st == GN_OK && g.k == 2 && err < gt_tol(1e-12),
               "test_vivit_bootstrap_picks_the_largest_damping_when_the_mean_gradient_is_zero: rel err %.1e", err);
    else
      GT_CHECK(st == GN_OK && g.k == 2 && err < gt_tol(1e-12),
               "test_vivit_bootstrap_picks_the_smallest_damping_for_one_sample: rel err %.1e", err);
    gn_ggn_free(&g);
    free(dv);
    free_setup(&s);
  }
}

static void check_vivit_explicit(const gn_par *par, gn_damping_mode mode, int64_t top_k, double damping,
                                 const char *label) {
  setup s;
  make_setup(par, &s, 5, GN_LOSS_CE, GN_ACT_TANH);
  s.dk.damping_mode = mode;
  s.dk.damping = damping;
  s.dk.ggn_top_k = top_k;
  reference ref;
  make_reference(&s, &ref);
  const size_t P = s.md.nparams;
  gn_real *dv = malloc(P * sizeof(gn_real)), *dv2 = malloc(P * sizeof(gn_real));
  double *dw = malloc(P * sizeof(double));
  double *damp = malloc((size_t)top_k * sizeof(double)), *damp2 = malloc((size_t)top_k * sizeof(double));
  int st = gt_direction(par, &s.md, &s.dk, GN_OPT_GN_VIVIT, false, s.theta, s.nrows, s.N, s.X + s.row0 * 8,
                        s.y + s.row0, 7, dv, damp);
  gn_ggn g;
  st |= gn_ggn_compute(par, &s.md, &s.dk, s.theta, s.nrows, s.N, s.X + s.row0 * 8, s.y + s.row0, 7, &g);
  const int64_t k = g.k;
  explicit_step(&ref, k, damp, dw);
  /* Perturbation of the explicit pseudo-inverse: ~ kappa^2-free since only kept directions with
   * lambda + delta >= lambda_min enter: relative error ~ FD error x lambda_max / (lambda_k + delta_k). */
  double lmin = INFINITY;
  for (int64_t kk = 0; kk < k; ++kk) lmin = fmin(lmin, g.eigenvalues[kk] + damp[kk]);
  const double tol = gt_fd_tol(1e-8 * g.eigenvalues[0] / lmin);
  const double r = gt_rel_diff(dv, dw, P);
  GT_CHECK(st == GN_OK && r < tol, "test_vivit_step_equals_explicit_damped_newton (%s): rel diff %.2e (tol %.1e)",
           label, r, tol);
  if (mode == GN_DAMP_BOOTSTRAP) {
    st = gt_direction(par, &s.md, &s.dk, GN_OPT_GN_VIVIT, false, s.theta, s.nrows, s.N, s.X + s.row0 * 8,
                      s.y + s.row0, 7, dv2, damp2);
    GT_CHECK(st == GN_OK && memcmp(dv, dv2, P * sizeof(gn_real)) == 0 &&
                 memcmp(damp, damp2, (size_t)k * sizeof(double)) == 0,
             "test_vivit_bootstrap_is_deterministic_for_a_seed");
    /* The rule evaluated here on the per-sample gamma_nk, lambda_nk of the analysis: each chosen
     * damping is a candidate and no candidate has a larger quantile (up to rounding: a choice may
     * differ from the argmax only where two quantiles tie). */
    const double lref = boot_lambda_ref(&g);
    double shortfall = 0;
    int on_grid = 1;
    for (int64_t kk = 0; kk < k; ++kk) {
      const double e = log10(damp[kk] / lref);
      on_grid &= fabs(e - round(e)) < gt_tol(1e-12) && fabs(e) <= 6.5;
      double best = -INFINITY;
      for (int j = -6; j <= 6; ++j)
        best = fmax(best, boot_quantile(&g, (uint64_t)s.dk.seed, 7, kk, lref * pow(10.0, j)));
      const double got = boot_quantile(&g, (uint64_t)s.dk.seed, 7, kk, damp[kk]);
      shortfall = fmax(shortfall, (best - got) / fabs(best));
      gt_note("direction %lld: lambda %.3e, gamma %.3e, damping %.0e x lambda_ref, 5%% quantile of R %.6e "
              "(largest on the grid %.6e)", (long long)kk, g.eigenvalues[kk], g.gamma_mean[kk], damp[kk] / lref,
              got, best);
    }
    GT_CHECK(st == GN_OK && on_grid && shortfall <= gt_tol(1e-12),
             "test_vivit_bootstrap_damping_maximises_the_5pct_quantile_of_the_loss_reduction (independent "
             "evaluation of the rule): on the grid %d, worst shortfall %.1e", on_grid, shortfall);
  }
  gn_ggn_free(&g);
  free(dv);
  free(dw);
  free(dv2);
  free(damp);
  free(damp2);
  free_reference(&ref);
  free_setup(&s);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  gt_plan(31); /* analysis 2 x 9, MC 2, rank counts 2, MSE 2, explicit steps 3 + bootstrap 2, known answers 2 */
  gn_par par, self;
  gn_par_open(MPI_COMM_WORLD, &par);
  gn_par_open(MPI_COMM_SELF, &self);
  check_analysis(&par, GN_LOSS_CE, "ce");
  check_analysis(&par, GN_LOSS_MSE, "mse");
  check_mc_unbiased(&par, GN_LOSS_CE, "ce");
  check_mc_unbiased(&par, GN_LOSS_MSE, "mse");
  check_rank_invariance(&par, &self);
  check_vivit_equals_mp_for_mse(&par);
  check_vivit_explicit(&par, GN_DAMP_CONSTANT, 1000, 0.0, "ce, all directions, undamped: G^+ grad L");
  check_vivit_explicit(&par, GN_DAMP_CONSTANT, 2, 0.05, "ce, top 2, constant damping 0.05");
  check_vivit_explicit(&par, GN_DAMP_BOOTSTRAP, 4, 0.0, "ce, top 4, bootstrap damping");
  check_bootstrap_known_answers(&par);
  gn_par_close(&self);
  gn_par_close(&par);
  int rc = gt_finish();
  MPI_Finalize();
  return rc;
}
