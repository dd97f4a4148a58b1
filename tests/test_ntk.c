/* test_ntk.c — the NTK against J J^T with J from central finite differences of the logits over
 * every parameter; symmetry, semi-definiteness, rank-count and chunking invariance; the spectrum
 * against serial DSYEVD; the drift measures against hand-computed values; the Moore-Penrose GN
 * step against an SVD pseudo-inverse of the finite-difference J; and Theorem 4.3's first-order
 * output changes of the tractable (B eps) and the MP (eps) steps. */
// NP: 1 2 3 4
#include <stdlib.h>
#include <string.h>

#include "gnrev/optim/gn_sweep.h"
#include "gnrev/model/loss.h"
#include "gnrev/model/model.h"
#include "gnrev/curvature/ntk.h"
#include "gnrev/core/par.h"
#include "gnrev/core/rng.h"
#include "gnrev/linalg/scalapack.h"
#include "testfd.h"
#include "testlib.h"
#include "testopt.h"
#include "testshm.h"

/* theta, inputs, logits, K and the steps are gn_real (real.h); the finite-difference Jacobian,
 * its products and the serial LAPACK references are double, formed from the gn_real values the
 * library gave or was given. Rounding tolerances go through gt_tol, difference steps and their
 * tolerances through gt_fd_step and gt_fd_tol (testlib.h); a relu network's step stops short of
 * every kink (testfd.h), and a quotient divides by the perturbation really applied. */

/* Central differences with step 1e-5 on parameters of size ~0.3: truncation h^2 |f'''| / 6 ~
 * 2e-11 and rounding eps |f| / h ~ 2e-11 relative, so J is good to ~1e-10 and J J^T to ~1e-9. */
#define FD_STEP gt_fd_step(1e-5)
#define FD_TOL gt_fd_tol(1e-7)

typedef struct {
  gn_deck dk;
  gn_model md;
  gn_real *theta;
  gn_real *X; /* p x d, global */
  int32_t *y; /* p */
  int64_t p;
} setup;

static void make_setup(setup *s, int64_t p, int64_t d, int64_t hidden, gn_activation act, bool linear_first,
                       gn_loss_kind loss) {
  memset(s, 0, sizeof *s);
  s->dk.seed = 11;
  s->dk.blocks = 2;
  s->dk.hidden = hidden;
  s->dk.activation = act;
  s->dk.linear_first_block = linear_first;
  s->dk.bias = true;
  s->dk.init_std = 0.3; /* far from the identity so that every block matters */
  s->dk.proj_gain = 1.0;
  s->dk.loss = loss;
  s->dk.output_hessian = GN_HESS_IDENTITY;
  s->dk.pinv = GN_PINV_GRAM;
  s->dk.rtol = 1e-13;
  s->dk.atol = 1e-300;
  s->p = p;
  gn_model_create(NULL, &s->dk, d, 3, &s->md);
  gn_model_reserve(&s->md, p);
  s->theta = malloc(s->md.nparams * sizeof(gn_real));
  gn_model_init_params(&s->md, &s->dk, 0, s->md.nparams, s->theta);
  for (size_t i = 0; i < s->md.nparams; ++i)
    s->theta[i] = (gn_real)(s->theta[i] + 0.05 * gn_rng_normal(3, GN_RNG_TEST, 1, i));
  s->X = malloc((size_t)(p * d) * sizeof(gn_real));
  s->y = malloc((size_t)p * sizeof(int32_t));
  gn_rng_fill_normal_real(1, GN_RNG_TEST, 0, 0, (size_t)(p * d), 1.0, s->X);
  for (int64_t i = 0; i < p; ++i) s->y[i] = (int32_t)((i * 7 + 3) % 3);
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

/* The step for parameter k: FD_STEP, short of every relu kink. e is a zeroed scratch vector of
 * nparams. */
static double coord_step(const setup *s, size_t k, gn_real *e) {
  e[k] = 1;
  const double h = gt_kink_free_step(&s->md, s->theta, s->p, s->X, e, NULL, FD_STEP);
  e[k] = 0;
  return h;
}

/* J (p C x nparams, row-major) by central differences, the same on every rank. */
static double *fd_jacobian(const setup *s) {
  const int64_t pC = s->p * s->md.C;
  const size_t P = s->md.nparams;
  double *J = malloc((size_t)pC * P * sizeof(double));
  gn_real *tp = malloc(P * sizeof(gn_real)), *e = calloc(P, sizeof(gn_real));
  gn_real *lp = malloc((size_t)pC * sizeof(gn_real)), *lm = malloc((size_t)pC * sizeof(gn_real));
  memcpy(tp, s->theta, P * sizeof(gn_real));
  for (size_t k = 0; k < P; ++k) {
    const double h = coord_step(s, k, e);
    tp[k] = (gn_real)(s->theta[k] + h);
    const double up = tp[k];
    logits_at(&s->md, tp, s->p, s->X, lp);
    tp[k] = (gn_real)(s->theta[k] - h);
    const double down = tp[k];
    logits_at(&s->md, tp, s->p, s->X, lm);
    tp[k] = s->theta[k];
    for (int64_t r = 0; r < pC; ++r) J[(size_t)r * P + k] = ((double)lp[r] - lm[r]) / (up - down);
  }
  free(tp);
  free(e);
  free(lp);
  free(lm);
  return J;
}

/* J v by central differences along v. */
static void fd_jvp(const setup *s, const gn_real *v, double *out) {
  const int64_t pC = s->p * s->md.C;
  const size_t P = s->md.nparams;
  gn_real *tp = malloc(P * sizeof(gn_real)), *lp = malloc((size_t)pC * sizeof(gn_real)),
          *lm = malloc((size_t)pC * sizeof(gn_real));
  double vn = 0;
  for (size_t k = 0; k < P; ++k) vn = fmax(vn, fabs(v[k]));
  const double h = gt_kink_free_step(&s->md, s->theta, s->p, s->X, v, NULL, FD_STEP / (vn > 0 ? vn : 1.0));
  for (int sg = -1; sg <= 1; sg += 2) {
    for (size_t k = 0; k < P; ++k) tp[k] = (gn_real)(s->theta[k] + sg * h * v[k]);
    logits_at(&s->md, tp, s->p, s->X, sg > 0 ? lp : lm);
  }
  for (int64_t r = 0; r < pC; ++r) out[r] = ((double)lp[r] - lm[r]) / (2 * h);
  free(tp);
  free(lp);
  free(lm);
}

/* The whole K on every rank, as a double copy of the gn_real entries. */
static double *gather_K(const gn_par *par, const gn_ntk *K) {
  const int64_t N = K->p * K->C;
  gn_real *full = malloc((size_t)(N * N) * sizeof(gn_real));
  int *cnt = malloc(2 * (size_t)par->size * sizeof(int)), *dsp = cnt + par->size;
  for (int r = 0; r < par->size; ++r) {
    int64_t r0, nr;
    gn_par_rows(K->p, par->size, r, &r0, &nr);
    cnt[r] = (int)(nr * K->C * N);
    dsp[r] = (int)(r0 * K->C * N);
  }
  MPI_Allgatherv(K->K, cnt[par->rank], GN_MPI_REAL, full, cnt, dsp, GN_MPI_REAL, par->comm);
  free(cnt);
  double *copy = gt_f64(full, (size_t)(N * N));
  free(full);
  return copy;
}

/* Eigenvalues (ascending) of a symmetric n x n matrix by serial DSYEVD (copy taken). */
static void serial_eigenvalues(int n, const double *M, double *w) {
  double *A = malloc((size_t)n * n * sizeof(double));
  memcpy(A, M, (size_t)n * n * sizeof(double));
  int lwork = 1 + 6 * n + 2 * n * n + 64, liwork = 3 + 5 * n + 64, info = 0;
  double *work = malloc((size_t)lwork * sizeof(double));
  int *iwork = malloc((size_t)liwork * sizeof(int));
  dsyevd_("N", "L", &n, A, &n, w, work, &lwork, iwork, &liwork, &info, 1, 1);
  free(A);
  free(work);
  free(iwork);
}

static double max_abs(const double *v, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = fmax(m, fabs(v[i]));
  return m;
}

static void check_kernel(const gn_par *par, const gn_par *self, int64_t p, int64_t hidden, gn_activation act,
                         bool linear_first, const char *label) {
  setup s;
  make_setup(&s, p, 8, hidden, act, linear_first, GN_LOSS_CE);
  int64_t row0, nrows;
  gn_par_rows(p, par->size, par->rank, &row0, &nrows);
  gn_ntk K;
  int st = gn_ntk_compute(par, &s.md, s.theta, p, s.X + row0 * s.md.d, &K);
  GT_CHECK(st == GN_OK, "test_ntk_compute_succeeds (%s): %s", label, st ? gn_error_message() : "");
  if (st != GN_OK) {
    free_setup(&s);
    return;
  }
  const int64_t N = p * s.md.C;
  double *Kf = gather_K(par, &K), *J = fd_jacobian(&s), *JJ = calloc((size_t)(N * N), sizeof(double));
  const size_t P = s.md.nparams;
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0;
      for (size_t k = 0; k < P; ++k) acc += J[i * P + k] * J[j * P + k];
      JJ[i * N + j] = acc;
    }
  double r = gt_rel_diff(Kf, JJ, (size_t)(N * N));
  GT_CHECK(r < FD_TOL, "test_ntk_equals_fd_jacobian_product (%s): |K - J J^T|_F / |J J^T|_F = %.2e", label, r);

  /* Each half-block's trace is ||J||_F^2 over its own parameter columns (W and b). */
  double herr = 0, hsum = 0, trK = 0;
  for (int64_t i = 0; i < N; ++i) trK += Kf[i * N + i];
  for (int k = 0; k < K.nhalf; ++k) {
    const size_t off = gn_model_offset(&s.md, k / 2, k % 2), len = (size_t)(s.md.hp * s.md.m);
    double fd = 0;
    for (int64_t i = 0; i < N; ++i)
      for (size_t q = off; q < off + len; ++q) fd += J[i * P + q] * J[i * P + q];
    herr = fmax(herr, fabs(K.half_trace[k] - fd) / fmax(fd, 1e-300));
    hsum += K.half_trace[k];
  }
  GT_CHECK(K.nhalf == 2 * s.md.B && herr < FD_TOL && fabs(hsum - trK) <= gt_tol(1e-13) * trK,
           "test_ntk_half_traces_equal_fd_jacobian_blocks_and_sum_to_trace (%s): max rel err %.2e, "
           "|sum - tr K| / tr K %.2e", label, herr, fabs(hsum - trK) / trK);

  /* Entries are sums of ~hp + m products each, whose order may differ between (i,j) and (j,i). */
  double asym = 0, kmax = max_abs(Kf, (size_t)(N * N));
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < i; ++j) asym = fmax(asym, fabs(Kf[i * N + j] - Kf[j * N + i]));
  GT_CHECK(asym <= gt_tol(1e-13) * kmax, "test_ntk_symmetric (%s): max |K - K^T| / max |K| = %.2e", label,
           asym / kmax);

  double *w = malloc((size_t)N * sizeof(double));
  serial_eigenvalues((int)N, Kf, w);
  GT_CHECK(w[0] >= -gt_tol(1e-12) * w[N - 1], "test_ntk_positive_semidefinite (%s): mu_min / mu_max = %.2e", label,
           w[0] / w[N - 1]);

  double *top = malloc((size_t)N * sizeof(double));
  st = gn_ntk_eigenvalues(par, &K, N, top);
  double ed = 0;
  for (int64_t i = 0; i < N; ++i) ed = fmax(ed, fabs(top[i] - w[N - 1 - i]));
  /* Both solvers are backward stable: eigenvalues agree to a small multiple of eps |K|. */
  GT_CHECK(st == GN_OK && ed <= gt_tol(1e-12) * w[N - 1],
           "test_ntk_eigenvalues_match_serial_dsyevd (%s): max diff / mu_max = %.2e", label, ed / w[N - 1]);
  st = gn_ntk_eigenvalues(par, &K, 2, top);
  GT_CHECK(st == GN_OK && fabs(top[0] - w[N - 1]) <= gt_tol(1e-12) * w[N - 1] &&
               fabs(top[1] - w[N - 2]) <= gt_tol(1e-12) * w[N - 1] && top[0] >= top[1],
           "test_ntk_top_two_eigenvalues_descending (%s)", label);

  /* The same call on one rank (rank 0, MPI_COMM_SELF). */
  gn_real *K1 = calloc((size_t)(N * N), sizeof(gn_real));
  if (par->rank == 0) {
    gn_ntk Ks;
    if (gn_ntk_compute(self, &s.md, s.theta, p, s.X, &Ks) == GN_OK)
      memcpy(K1, Ks.K, (size_t)(N * N) * sizeof(gn_real));
    gn_ntk_free(&Ks);
  }
  MPI_Bcast(K1, (int)(N * N), GN_MPI_REAL, 0, par->comm);
  r = gt_rel_diff(Kf, K1, (size_t)(N * N));
  GT_CHECK(r < gt_tol(1e-13), "test_ntk_same_on_every_rank_count (%s): rel diff to np=1 %.2e", label, r);

  /* A model whose workspace holds 2 rows walks the samples in chunks. */
  gn_model small;
  gn_model_create(NULL, &s.dk, s.md.d, s.md.C, &small);
  gn_model_reserve(&small, 2);
  gn_ntk K2;
  st = gn_ntk_compute(par, &small, s.theta, p, s.X + row0 * s.md.d, &K2);
  double *K2f = st == GN_OK ? gather_K(par, &K2) : NULL;
  r = K2f ? gt_rel_diff(K2f, Kf, (size_t)(N * N)) : 1;
  GT_CHECK(st == GN_OK && r < gt_tol(1e-13), "test_ntk_independent_of_workspace_chunks (%s): rel diff %.2e", label,
           r);
  free(K2f);
  gn_ntk_free(&K2);
  gn_model_free(&small);

  free(Kf);
  free(J);
  free(JJ);
  free(w);
  free(top);
  free(K1);
  gn_ntk_free(&K);
  free_setup(&s);
}

static void check_compare_and_bad_k(const gn_par *par) {
  setup s;
  const int64_t p = 6;
  make_setup(&s, p, 10, 7, GN_ACT_TANH, true, GN_LOSS_CE);
  int64_t row0, nrows;
  gn_par_rows(p, par->size, par->rank, &row0, &nrows);
  gn_ntk K, K2;
  gn_ntk_compute(par, &s.md, s.theta, p, s.X + row0 * s.md.d, &K);
  gn_ntk_compute(par, &s.md, s.theta, p, s.X + row0 * s.md.d, &K2);
  const int64_t N = p * s.md.C, rows = K.nrows * K.C;
  gn_ntk_change ch = {-1, -1, -1, -1, -1};
  int st = gn_ntk_compare(par, &K, &K, 5, &ch);
  GT_CHECK(st == GN_OK && ch.rel_change == 0.0 && fabs(ch.similarity - 1) < gt_tol(1e-14) &&
               fabs(ch.alignment - 1) < gt_tol(1e-14) && fabs(ch.scale - 1) < gt_tol(1e-14),
           "test_ntk_compare_with_itself_gives_0_and_1: rel %.2e, 1 - sim %.2e, 1 - align %.2e, "
           "scale %.16f", ch.rel_change, 1 - ch.similarity, 1 - ch.alignment, ch.scale);

  for (int64_t i = 0; i < rows * N; ++i) K2.K[i] = 2 * K.K[i];
  st = gn_ntk_compare(par, &K, &K2, 5, &ch);
  GT_CHECK(st == GN_OK && fabs(ch.rel_change - 1) < gt_tol(1e-14) && fabs(ch.similarity - 1) < gt_tol(1e-14) &&
               fabs(ch.alignment - 1) < gt_tol(1e-14) && fabs(ch.scale - 2) < gt_tol(1e-14) &&
               fabs(ch.growth - 2) < gt_tol(1e-14),
           "test_ntk_compare_doubled_kernel: rel %.16f (1), sim %.16f (1), align %.16f (1), scale "
           "%.16f (2)", ch.rel_change, ch.similarity, ch.alignment, ch.scale);

  /* K + t I: |t I|_F / |K|_F and the cosine of K v and K v + t v, by hand on the gathered K, with
   * the probe vector v drawn as the library draws it (gn_real). */
  double *Kf = gather_K(par, &K), *v = malloc((size_t)N * sizeof(double));
  gn_real *vr = malloc((size_t)N * sizeof(gn_real));
  double kn = 0;
  for (int64_t i = 0; i < N * N; ++i) kn += Kf[i] * Kf[i];
  const double t = 0.3 * sqrt(kn) / (double)N;
  for (int64_t i = 0; i < rows * N; ++i) K2.K[i] = K.K[i];
  for (int64_t i = 0; i < rows; ++i) K2.K[i * N + K.row0 * K.C + i] = (gn_real)(K2.K[i * N + K.row0 * K.C + i] + t);
  gn_rng_fill_normal_real(5, GN_RNG_PROBE, 0, 0, (size_t)N, 1.0, vr);
  gt_to_f64(vr, (size_t)N, v);
  free(vr);
  double uu = 0, u0u0 = 0, u0u = 0;
  for (int64_t i = 0; i < N; ++i) {
    double u0 = 0;
    for (int64_t j = 0; j < N; ++j) u0 += Kf[i * N + j] * v[j];
    const double u = u0 + t * v[i];
    uu += u * u;
    u0u0 += u0 * u0;
    u0u += u0 * u;
  }
  /* <K, K + tI> = |K|^2 + t tr K and |K + tI|^2 = |K|^2 + 2 t tr K + N t^2. */
  double tr = 0;
  for (int64_t i = 0; i < N; ++i) tr += Kf[i * N + i];
  const double k2n = kn + 2 * t * tr + (double)N * t * t;
  const double rel_want = t * sqrt((double)N / kn), sim_want = u0u / sqrt(u0u0 * uu);
  const double align_want = (kn + t * tr) / sqrt(kn * k2n), scale_want = sqrt(k2n / kn);
  st = gn_ntk_compare(par, &K, &K2, 5, &ch);
  GT_CHECK(st == GN_OK && fabs(ch.rel_change - rel_want) < gt_tol(1e-13) * rel_want &&
               fabs(ch.similarity - sim_want) < gt_tol(1e-13) && fabs(ch.alignment - align_want) < gt_tol(1e-13) &&
               fabs(ch.scale - scale_want) < gt_tol(1e-13),
           "test_ntk_compare_shifted_kernel_by_hand: rel %.15f vs %.15f, sim %.15f vs %.15f, align "
           "%.15f vs %.15f, scale %.15f vs %.15f", ch.rel_change, rel_want, ch.similarity, sim_want,
           ch.alignment, align_want, ch.scale, scale_want);

  double top[1];
  st = gn_ntk_eigenvalues(par, &K, N + 1, top);
  char want[128];
  snprintf(want, sizeof want, "asked for the %lld largest eigenvalues of the %lld x %lld NTK",
           (long long)(N + 1), (long long)N, (long long)N);
  GT_CHECK(st == GN_EINPUT && strstr(gn_error_message(), want),
           "test_ntk_eigenvalues_refuses_k_above_size: \"%s\"", gn_error_message());
  gn_error_clear();
  free(Kf);
  free(v);
  gn_ntk_free(&K);
  gn_ntk_free(&K2);
  free_setup(&s);
}

/* J^+ eps by the SVD of the finite-difference J, keeping sigma >= max(rtol sigma_max, atol).
 * Returns the condition number of the kept part in *kappa. */
static void fd_mp_step(const setup *s, const double *J, const double *eps, double rtol, double atol,
                       double *delta, double *kappa) {
  /* Row-major J (N x P) is column-major J^T (P x N) = U S V^T, so J^+ eps = U S^-1 V^T eps. */
  int N = (int)(s->p * s->md.C), P = (int)s->md.nparams, info = 0, lwork = -1;
  double *A = malloc((size_t)N * P * sizeof(double)), *sv = malloc((size_t)N * sizeof(double));
  double *U = malloc((size_t)N * P * sizeof(double)), *VT = malloc((size_t)N * N * sizeof(double));
  int *iwork = malloc(8 * (size_t)N * sizeof(int));
  memcpy(A, J, (size_t)N * P * sizeof(double));
  double q;
  dgesdd_("S", &P, &N, A, &P, sv, U, &P, VT, &N, &q, &lwork, iwork, &info, 1);
  lwork = (int)q + 64;
  double *work = malloc((size_t)lwork * sizeof(double)), *t = malloc((size_t)N * sizeof(double));
  dgesdd_("S", &P, &N, A, &P, sv, U, &P, VT, &N, work, &lwork, iwork, &info, 1);
  const double cut = fmax(rtol * sv[0], atol);
  int kept = 0;
  for (int k = 0; k < N; ++k) {
    double acc = 0;
    for (int j = 0; j < N; ++j) acc += VT[(size_t)j * N + k] * eps[j];
    t[k] = sv[k] >= cut ? acc / sv[k] : 0.0;
    kept += sv[k] >= cut;
  }
  *kappa = sv[0] / sv[kept - 1];
  gt_note("FD pseudo-inverse keeps %d of %d singular values", kept, N);
  for (int i = 0; i < P; ++i) {
    double acc = 0;
    for (int k = 0; k < N; ++k) acc += U[(size_t)k * P + i] * t[k];
    delta[i] = acc;
  }
  free(A);
  free(sv);
  free(U);
  free(VT);
  free(iwork);
  free(work);
  free(t);
}

static void check_mp_direction(const gn_par *par, gn_loss_kind loss, gn_output_hessian hess, double rtol,
                               gn_activation act, const char *label) {
  setup s;
  const int64_t p = 5;
  make_setup(&s, p, 8, 9, act, true, loss);
  s.dk.output_hessian = hess;
  s.dk.rtol = rtol;
  s.dk.atol = 1e-12;
  const int64_t N = p * s.md.C;
  int64_t row0, nrows;
  gn_par_rows(p, par->size, par->rank, &row0, &nrows);
  gn_real *delta = malloc(s.md.nparams * sizeof(gn_real));
  double *ref = malloc(s.md.nparams * sizeof(double));
  int st = gt_direction(par, &s.md, &s.dk, GN_OPT_GN, true, s.theta, nrows, p, s.X + row0 * s.md.d, s.y + row0,
                        0, delta, NULL);
  gn_real *lg = malloc((size_t)N * sizeof(gn_real)), *eps = malloc((size_t)N * sizeof(gn_real));
  logits_at(&s.md, s.theta, p, s.X, lg);
  gn_loss_residual(loss, hess, p, s.md.C, lg, s.y, eps);
  double *J = fd_jacobian(&s), kappa = 0, *epsd = gt_f64(eps, (size_t)N);
  fd_mp_step(&s, J, epsd, rtol, 1e-12, ref, &kappa);
  double r = gt_rel_diff(delta, ref, s.md.nparams);
  /* Wedin: |d J^+| <~ 2 kappa^2 |dJ| / sigma_max, relative |d delta| <~ 2 kappa |dJ| / |J| with the
   * FD error |dJ| / |J| ~ 1e-10 (see FD_STEP), plus the same for the residual's component. */
  const double tol = gt_fd_tol(4 * kappa * 1e-9);
  GT_CHECK(st == GN_OK && r < tol, "test_mp_direction_equals_fd_pseudo_inverse (%s): rel diff %.2e "
           "(tol %.1e, kappa %.1f)%s", label, r, tol, kappa, st ? gn_error_message() : "");
  free(delta);
  free(ref);
  free(lg);
  free(eps);
  free(epsd);
  free(J);
  free_setup(&s);
}

static void check_mp_refuses_big(const gn_par *par) {
  setup s;
  const int64_t p = 5;
  make_setup(&s, p, 8, 6, GN_ACT_TANH, true, GN_LOSS_CE);
  int64_t row0, nrows;
  gn_par_rows(p, par->size, par->rank, &row0, &nrows);
  gn_real *delta = malloc(s.md.nparams * sizeof(gn_real));
  /* 2731 samples x 3 classes: one row over the limit (the refusal comes before any row is read). */
  int st = gt_direction(par, &s.md, &s.dk, GN_OPT_GN, true, s.theta, nrows, 2731, s.X + row0 * s.md.d, s.y + row0,
                        0, delta, NULL);
  GT_CHECK(st == GN_EINPUT && strstr(gn_error_message(), "needs the full 8193 x 8193 NTK of 2731 samples x 3 "
                                     "classes, above the limit of 8192 rows"),
           "test_mp_direction_refuses_above_max_rows: \"%s\"", gn_error_message());
  gn_error_clear();
  free(delta);
  free_setup(&s);
}

/* Theorem 4.3 setting: every half-block's features have full row rank (nonlinear blocks,
 * hp >= n), so each block alone reproduces eps and the B blocks together B eps, while the MP
 * step reproduces eps. Both checked by a central difference along the step. */
static void check_theorem_43(const gn_par *par, gn_activation act, const char *label) {
  setup s;
  const int64_t p = 5;
  make_setup(&s, p, 8, 12, act, false, GN_LOSS_CE);
  const int64_t N = p * s.md.C;
  int64_t row0, nrows;
  gn_par_rows(p, par->size, par->rank, &row0, &nrows);
  gn_real *dt = malloc(s.md.nparams * sizeof(gn_real)), *dm = malloc(s.md.nparams * sizeof(gn_real));
  gn_real *lg = malloc((size_t)N * sizeof(gn_real)), *eps = malloc((size_t)N * sizeof(gn_real));
  double *jd = malloc((size_t)N * sizeof(double)), *Beps = malloc((size_t)N * sizeof(double));
  gn_sweep *gn = NULL;
  int st = gn_sweep_create(par, &s.md, &s.dk, &gn);
  gn_real *lloc = malloc((size_t)(nrows > 0 ? nrows : 1) * s.md.C * sizeof(gn_real));
  gn_real *shared = gt_shared(par, s.md.nparams);
  if (st == GN_OK) st = gn_sweep_direction(gn, s.theta, nrows, p, s.X + row0 * s.md.d, s.y + row0, lloc, shared);
  if (st == GN_OK) memcpy(dt, shared, s.md.nparams * sizeof(gn_real));
  gt_shared_free(shared);
  gn_sweep_free(gn);
  free(lloc);
  int st2 = gt_direction(par, &s.md, &s.dk, GN_OPT_GN, true, s.theta, nrows, p, s.X + row0 * s.md.d, s.y + row0, 0,
                         dm, NULL);
  logits_at(&s.md, s.theta, p, s.X, lg);
  gn_loss_residual(s.dk.loss, s.dk.output_hessian, p, s.md.C, lg, s.y, eps);
  for (int64_t i = 0; i < N; ++i) Beps[i] = s.md.B * (double)eps[i];
  fd_jvp(&s, dt, jd);
  double rt = gt_rel_diff(jd, Beps, (size_t)N);
  fd_jvp(&s, dm, jd);
  double rm = gt_rel_diff(jd, eps, (size_t)N);
  /* As in test_gn_update: FD truncation ~1e-10 relative, rounding ~1e-16 / 1e-5. */
  GT_CHECK(st == GN_OK && rt < gt_fd_tol(1e-8), "test_tractable_step_changes_output_by_B_eps (%s): %.2e", label, rt);
  GT_CHECK(st2 == GN_OK && rm < gt_fd_tol(1e-8), "test_mp_step_changes_output_by_eps (%s): %.2e", label, rm);
  free(dt);
  free(dm);
  free(lg);
  free(eps);
  free(jd);
  free(Beps);
  free_setup(&s);
}

/* The output-space NTK applied to v, K v = J (J^T v) with J = d X_B / d theta, against the Jacobian
 * of the state taken by central differences (its own forwards, no VJP or JVP of the code). */
static void check_output_kv(const gn_par *par, gn_activation act, bool linear_first, const char *label) {
  setup s;
  const int64_t p = 5, d = 8;
  make_setup(&s, p, d, 9, act, linear_first, GN_LOSS_CE);
  const int64_t pd = p * d;
  const size_t P = s.md.nparams;
  double *J = malloc((size_t)pd * P * sizeof(double));
  gn_real *tp = malloc(P * sizeof(gn_real)), *e = calloc(P, sizeof(gn_real));
  gn_real *Xp = malloc((size_t)pd * sizeof(gn_real)), *Xm = malloc((size_t)pd * sizeof(gn_real));
  gn_real *v = malloc((size_t)pd * sizeof(gn_real)), *kv = malloc((size_t)pd * sizeof(gn_real));
  double *ref = calloc((size_t)pd, sizeof(double)), *jtv = calloc(P, sizeof(double));
  gn_rng_fill_normal_real(17, GN_RNG_TEST, 4, 0, (size_t)pd, 1.0, v);
  memcpy(tp, s.theta, P * sizeof(gn_real));
  for (size_t k = 0; k < P; ++k) {
    const double h = coord_step(&s, k, e);
    tp[k] = (gn_real)(s.theta[k] + h);
    const double up = tp[k];
    memcpy(Xp, s.X, (size_t)pd * sizeof(gn_real));
    gn_model_forward(&s.md, tp, p, Xp, NULL);
    tp[k] = (gn_real)(s.theta[k] - h);
    const double down = tp[k];
    memcpy(Xm, s.X, (size_t)pd * sizeof(gn_real));
    gn_model_forward(&s.md, tp, p, Xm, NULL);
    tp[k] = s.theta[k];
    for (int64_t r = 0; r < pd; ++r) J[(size_t)r * P + k] = ((double)Xp[r] - Xm[r]) / (up - down);
  }
  for (size_t k = 0; k < P; ++k)
    for (int64_t r = 0; r < pd; ++r) jtv[k] += J[(size_t)r * P + k] * v[r];
  for (int64_t r = 0; r < pd; ++r)
    for (size_t k = 0; k < P; ++k) ref[r] += J[(size_t)r * P + k] * jtv[k];
  int64_t row0, nrows;
  gn_par_rows(p, par->size, par->rank, &row0, &nrows);
  gn_real *g = gt_shared(par, P);
  int st = gn_ntk_output_kv(par, &s.md, s.theta, nrows, s.X + row0 * d, v + row0 * d, g, kv);
  /* Local rows against the same rows of the reference; the FD error is ~1e-10 relative. */
  double num = 0, den = 0;
  for (int64_t i = 0; i < nrows * d; ++i) {
    num += (kv[i] - ref[row0 * d + i]) * (kv[i] - ref[row0 * d + i]);
    den += ref[row0 * d + i] * ref[row0 * d + i];
  }
  double sums[2] = {num, den};
  MPI_Allreduce(MPI_IN_PLACE, sums, 2, MPI_DOUBLE, MPI_SUM, par->comm);
  const double r = sqrt(sums[0] / sums[1]);
  GT_CHECK(st == GN_OK && r < gt_fd_tol(1e-8), "test_output_space_kv_equals_fd_jacobian_j_jt_v (%s): rel diff %.2e",
           label, r);
  gt_shared_free(g);
  free(J);
  free(tp);
  free(e);
  free(Xp);
  free(Xm);
  free(v);
  free(ref);
  free(jtv);
  free(kv);
  free_setup(&s);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  gt_plan(32); /* kernels 2 x 9, compare 4, MP steps 3, refusal 1, Theorem 4.3 2 x 2, output-space K v 2 */
  gn_par par, self;
  gn_par_open(MPI_COMM_WORLD, &par);
  gn_par_open(MPI_COMM_SELF, &self);
  check_kernel(&par, &self, 5, 6, GN_ACT_TANH, false, "tanh, p = 5, h = 6");
  check_kernel(&par, &self, 7, 10, GN_ACT_RELU, true, "relu, linear first block, p = 7, h = 10");
  check_compare_and_bad_k(&par);
  check_mp_direction(&par, GN_LOSS_CE, GN_HESS_IDENTITY, 1e-6, GN_ACT_TANH, "ce identity, tanh");
  check_mp_direction(&par, GN_LOSS_CE, GN_HESS_EXACT, 1e-6, GN_ACT_RELU, "ce exact, relu");
  check_mp_direction(&par, GN_LOSS_MSE, GN_HESS_IDENTITY, 0.2, GN_ACT_TANH, "mse, truncated at rtol 0.2");
  check_mp_refuses_big(&par);
  check_theorem_43(&par, GN_ACT_TANH, "tanh");
  check_theorem_43(&par, GN_ACT_RELU, "relu");
  check_output_kv(&par, GN_ACT_TANH, false, "tanh");
  check_output_kv(&par, GN_ACT_RELU, true, "relu, linear first block");
  gn_par_close(&self);
  gn_par_close(&par);
  int rc = gt_finish();
  MPI_Finalize();
  return rc;
}
