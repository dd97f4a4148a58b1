/* test_model.c — RevMLP: exact inverse, the fixed random parts (C, U, initial W), and every
 * derivative (half-block JVP and VJP, network backpropagation) against finite differences, the
 * adjoint identity and serial LAPACK.
 *
 * The model's arrays (theta, states, C, U, features, tangents) are gn_real (real.h); the test's own
 * computations (pre-activations, products, difference quotients) run in double on the gn_real
 * values. Rounding-level tolerances go through gt_tol and finite-difference steps and tolerances
 * through gt_fd_step and gt_fd_tol (testlib.h), which return their argument in the double build.
 * A difference quotient divides by the perturbation really applied to the gn_real argument. */
// NP: 1
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gnrev/core/err.h"
#include "gnrev/model/loss.h"
#include "gnrev/model/model.h"
#include "gnrev/core/rng.h"
#include "testlib.h"
#include "testfd.h"

/* LAPACK's Fortran Householder QR (column-major). */
void dgeqrf_(const int *m, const int *n, double *a, const int *lda, double *tau, double *work,
             const int *lwork, int *info);
void dorgqr_(const int *m, const int *n, const int *k, double *a, const int *lda, const double *tau,
             double *work, const int *lwork, int *info);

static const double EPS = 2.220446049250313e-16; /* double's: gt_* carry tolerances made of it */
static const char *ACT_NAME[] = {"relu", "identity", "tanh"};

static gn_deck make_deck(int64_t B, int64_t h, gn_activation act, int linear_first, int bias, int64_t seed) {
  gn_deck deck;
  memset(&deck, 0, sizeof deck);
  deck.blocks = B;
  deck.hidden = h;
  deck.activation = act;
  deck.linear_first_block = linear_first;
  deck.bias = bias;
  deck.init_std = 0.3; /* far from the identity, so F and G matter */
  deck.proj_gain = 1.0;
  deck.seed = seed;
  return deck;
}

static gn_real *randn(size_t n, uint32_t sub, double scale) {
  gn_real *x = malloc(n * sizeof *x);
  gn_rng_fill_normal_real(99, GN_RNG_TEST, sub, 0, n, scale, x);
  return x;
}

/* Inner products in double of gn_real vectors (dot), of a double and a gn_real one (dot_dr), of
 * double ones (dot_d). */
static double dot(const gn_real *a, const gn_real *b, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; ++i) s += (double)a[i] * b[i];
  return s;
}

static double dot_dr(const double *a, const gn_real *b, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

static double norm(const gn_real *a, size_t n) { return sqrt(dot(a, a, n)); }

static double dot_d(const double *a, const double *b, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

static double norm_d(const double *a, size_t n) { return sqrt(dot_d(a, a, n)); }

/* Initial parameters plus a nonzero bias, so the ones column takes part. */
static gn_real *make_theta(const gn_model *md, const gn_deck *deck) {
  gn_real *theta = malloc(md->nparams * sizeof *theta);
  gn_model_init_params(md, deck, 0, md->nparams, theta);
  if (md->hp > md->h)
    for (int k = 0; k < 2 * md->B; ++k)
      gn_rng_fill_normal_real(99, GN_RNG_TEST, 500 + (uint32_t)k, 0, (size_t)md->m, 0.2,
                              theta + gn_model_offset(md, k / 2, k % 2) + md->h * md->m);
  return theta;
}

static void test_bad_shapes_are_rejected(void) {
  gn_deck deck = make_deck(2, 8, GN_ACT_RELU, 1, 1, 1);
  gn_model md;
  int st = gn_model_create(NULL, &deck, 11, 3, &md);
  GT_CHECK(st == GN_EINPUT && strstr(gn_error_message(), "d = 11") && strstr(gn_error_message(), "even"),
           "test_odd_input_width_is_rejected_with_its_value (%s)", gn_error_message());
  st = gn_model_create(NULL, &deck, 4, 5, &md);
  GT_CHECK(st == GN_EINPUT && strstr(gn_error_message(), "5 classes"),
           "test_more_classes_than_input_width_is_rejected (%s)", gn_error_message());
  gn_error_clear();
}

static void test_layout(void) {
  gn_deck deck = make_deck(3, 7, GN_ACT_RELU, 1, 1, 1);
  gn_model md;
  int st = gn_model_create(NULL, &deck, 10, 3, &md);
  int ok = st == GN_OK && md.nparams == 2 * 3 * 8 * 5 && md.hp == 8 && md.m == 5;
  for (int k = 0; ok && k < 6; ++k) ok = gn_model_offset(&md, k / 2, k % 2) == (size_t)k * 40;
  ok = ok && md.act[0] == GN_ACT_IDENTITY && md.act[1] == GN_ACT_RELU && md.act[2] == GN_ACT_RELU;
  GT_CHECK(ok, "test_parameter_layout_is_2B_blocks_of_hp_x_m");
  gn_model_free(&md);
}

/* Forward then inverse, per block and for the whole network. */
static void test_inverse(void) {
  const int64_t d = 10, n = 5, h = 14;
  const int B = 3;
  double worst_block = 0.0, worst_net = 0.0, least_change = INFINITY;
  int ok = 1;
  for (int act = 0; act < 3; ++act)
    for (int bias = 0; bias < 2; ++bias) {
      gn_deck deck = make_deck(B, h, (gn_activation)act, bias, bias, 3 + act);
      gn_model md;
      ok &= gn_model_create(NULL, &deck, d, 4, &md) == GN_OK && gn_model_reserve(&md, n) == GN_OK;
      gn_real *theta = make_theta(&md, &deck);
      gn_real *X0 = randn((size_t)(n * d), 1, 1.0), *X = malloc((size_t)(n * d) * sizeof *X);
      gn_real logits[5 * 4];
      for (int b = 0; b < B; ++b) {
        memcpy(X, X0, (size_t)(n * d) * sizeof *X);
        gn_model_block_forward(&md, theta, b, n, X);
        least_change = fmin(least_change, gt_rel_diff(X, X0, (size_t)(n * d)));
        gn_model_block_inverse(&md, theta, b, n, X);
        worst_block = fmax(worst_block, gt_rel_diff(X, X0, (size_t)(n * d)));
      }
      memcpy(X, X0, (size_t)(n * d) * sizeof *X);
      gn_model_forward(&md, theta, n, X, logits);
      for (int b = B - 1; b >= 0; --b) gn_model_block_inverse(&md, theta, b, n, X);
      worst_net = fmax(worst_net, gt_rel_diff(X, X0, (size_t)(n * d)));
      free(X0);
      free(X);
      free(theta);
      gn_model_free(&md);
    }
  gt_note("smallest relative change made by a block: %.3g", least_change);
  /* Each half-block subtracts exactly what it added, up to eps (|x| + |F|) per entry, amplified
   * by the O(1) Lipschitz constants of the later half-blocks of the inverse chain. */
  GT_CHECK(ok && least_change > 0.1 && worst_block < gt_tol(1e-13),
           "test_block_inverse_reconstructs_input (rel %.3g)", worst_block);
  GT_CHECK(ok && worst_net < gt_tol(1e-12), "test_network_inverse_reconstructs_input (rel %.3g)", worst_net);
}

static void test_output_map(void) {
  const int64_t d = 12;
  const int C = 5;
  gn_deck deck = make_deck(1, 3, GN_ACT_RELU, 1, 1, 17);
  gn_model a, b;
  int ok = gn_model_create(NULL, &deck, d, C, &a) == GN_OK && gn_model_create(NULL, &deck, d, C, &b) == GN_OK;
  double dev = 0.0;
  for (int i = 0; i < C; ++i)
    for (int j = 0; j < C; ++j) {
      double s = 0.0;
      for (int64_t k = 0; k < d; ++k) s += (double)a.U[k * C + i] * a.U[k * C + j];
      dev = fmax(dev, fabs(s - (i == j)));
    }
  GT_CHECK(ok && dev < gt_tol(1e-14), "test_output_map_has_orthonormal_columns (max |U^T U - I| %.3g)", dev);
  GT_CHECK(ok && memcmp(a.U, b.U, (size_t)(d * C) * sizeof(gn_real)) == 0,
           "test_output_map_is_identical_across_builds");

  /* The same Q from LAPACK's Householder QR of the same Gaussian matrix, signs fixed so that
   * diag(R) > 0. The Gaussian 12 x 5 matrix is well conditioned (kappa ~ 5), so the two
   * factorisations agree to a few eps kappa. The matrix is drawn as the model draws it, in
   * gn_real; LAPACK factorises it in double. */
  double G[12 * 5], tau[5], work[256];
  int dd = (int)d, cc = C, lwork = 256, info = 0, info2 = 0;
  gn_real raw[12 * 5];
  gn_rng_fill_normal_real(17, GN_RNG_OUT_U, 0, 0, (size_t)(d * C), 1.0, raw);
  for (int64_t i = 0; i < d; ++i)
    for (int j = 0; j < C; ++j) G[i + j * d] = raw[i * C + j];
  dgeqrf_(&dd, &cc, G, &dd, tau, work, &lwork, &info);
  double sgn[5];
  for (int j = 0; j < C; ++j) sgn[j] = G[j + j * d] < 0 ? -1.0 : 1.0;
  dorgqr_(&dd, &cc, &cc, G, &dd, tau, work, &lwork, &info2);
  double qdev = 0.0;
  for (int64_t i = 0; i < d; ++i)
    for (int j = 0; j < C; ++j) qdev = fmax(qdev, fabs(sgn[j] * G[i + j * d] - a.U[i * C + j]));
  GT_CHECK(ok && info == 0 && info2 == 0 && qdev < gt_tol(1e-13),
           "test_output_map_is_Q_of_QR_with_positive_diag_R (max dev from LAPACK %.3g)", qdev);
  gn_model_free(&a);
  gn_model_free(&b);

  /* MNIST shape: a long Gram-Schmidt still orthonormal to rounding. */
  gn_model big;
  ok = gn_model_create(NULL, &deck, 784, 10, &big) == GN_OK;
  dev = 0.0;
  for (int i = 0; ok && i < 10; ++i)
    for (int j = 0; j < 10; ++j) {
      double s = 0.0;
      for (int64_t k = 0; k < 784; ++k) s += (double)big.U[k * 10 + i] * big.U[k * 10 + j];
      dev = fmax(dev, fabs(s - (i == j)));
    }
  GT_CHECK(ok && dev < gt_tol(1e-14), "test_output_map_784x10_has_orthonormal_columns (%.3g)", dev);
  gn_model_free(&big);
}

/* Sample mean and variance of x against N(0, var): within 5 standard errors. */
static int gaussian_stats_ok(const gn_real *x, size_t n, double var, double *rel_var) {
  double mean = 0.0, sq = 0.0;
  for (size_t i = 0; i < n; ++i) mean += x[i];
  mean /= (double)n;
  for (size_t i = 0; i < n; ++i) sq += (x[i] - mean) * (x[i] - mean);
  const double v = sq / (double)(n - 1);
  *rel_var = v / var - 1.0;
  return fabs(mean) < 5 * sqrt(var / (double)n) && fabs(*rel_var) < 5 * sqrt(2.0 / (double)n);
}

static void test_random_parts(void) {
  const int64_t d = 12, h = 2000;
  gn_deck deck = make_deck(1, h, GN_ACT_RELU, 0, 1, 5);
  deck.proj_gain = 2.0;
  deck.init_std = 0.01;
  gn_model a, b, c;
  gn_deck other = deck;
  other.seed = 6;
  int ok = gn_model_create(NULL, &deck, d, 3, &a) == GN_OK && gn_model_create(NULL, &deck, d, 3, &b) == GN_OK &&
           gn_model_create(NULL, &other, d, 3, &c) == GN_OK;
  const size_t np = (size_t)(a.m * h);
  double rv0 = 0, rv1 = 0, rvw = 0;
  int stats = ok && gaussian_stats_ok(a.proj[0], np, 4.0 / (double)h, &rv0) &&
              gaussian_stats_ok(a.proj[1], np, 4.0 / (double)h, &rv1);
  gt_note("C_F, C_G relative variance error %.3g, %.3g (5 sigma = %.3g)", rv0, rv1, 5 * sqrt(2.0 / (double)np));
  GT_CHECK(stats, "test_projections_have_variance_gain2_over_h");
  int same = ok, differ = ok;
  for (int k = 0; ok && k < 2; ++k) {
    same &= memcmp(a.proj[k], b.proj[k], np * sizeof(gn_real)) == 0;
    for (size_t i = 0; i < np; ++i) differ &= a.proj[k][i] != c.proj[k][i];
  }
  for (size_t i = 0; ok && i < np; ++i) differ &= a.proj[0][i] != a.proj[1][i];
  GT_CHECK(same, "test_projections_are_identical_for_the_same_seed");
  GT_CHECK(differ, "test_projections_differ_for_another_seed_and_between_F_and_G");

  gn_real *t1 = malloc(a.nparams * sizeof *t1), *t2 = malloc(a.nparams * sizeof *t2);
  gn_model_init_params(&a, &deck, 0, a.nparams, t1);
  gn_model_init_params(&b, &deck, 0, b.nparams, t2);
  int wstats = 1, bias_zero = 1;
  for (int k = 0; k < 2; ++k) {
    const gn_real *T = t1 + gn_model_offset(&a, 0, k);
    wstats &= gaussian_stats_ok(T, (size_t)(h * a.m), 1e-4, &rvw);
    for (int64_t j = 0; j < a.m; ++j) bias_zero &= T[h * a.m + j] == 0.0;
  }
  GT_CHECK(ok && wstats && bias_zero && memcmp(t1, t2, a.nparams * sizeof *t1) == 0,
           "test_initial_W_is_N0_init_std2_and_bias_zero_and_reproducible");
  free(t1);
  free(t2);
  gn_model_free(&a);
  gn_model_free(&b);
  gn_model_free(&c);
}

/* P = z C for half-block (b, s), computed naively in double: the test's own view of the
 * pre-activation. */
static void preact(const gn_model *md, int b, int s, int64_t n, const gn_real *z, double *P) {
  const gn_real *C = md->proj[2 * b + s];
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < md->h; ++j) {
      double acc = 0.0;
      for (int64_t k = 0; k < md->m; ++k) acc += (double)z[i * md->m + k] * C[k * md->h + j];
      P[i * md->h + j] = acc;
    }
}

/* JVP vs central differences, VJP vs JVP (adjoint identity), dtheta vs finite differences of
 * <g, F(theta)>, and the features against their definition, for every half-block. */
static void test_half_block_derivatives(int64_t n) {
  const int64_t d = 8, m = 4, h = 9;
  for (int act = 0; act < 3; ++act)
    for (int bias = 0; bias < 2; ++bias) {
      gn_deck deck = make_deck(2, h, (gn_activation)act, 0, bias, 11 + act);
      gn_model md;
      int ok = gn_model_create(NULL, &deck, d, 3, &md) == GN_OK && gn_model_reserve(&md, n) == GN_OK;
      gn_real *theta = make_theta(&md, &deck);
      const size_t nm = (size_t)(n * m), nh = (size_t)(n * h), hpm = (size_t)(md.hp * m);
      gn_real *z = randn(nm, 40, 1.0), *v = randn(nm, 41, 1.0), *g = randn(nm, 42, 1.0);
      gn_real *gz0 = randn(nm, 43, 1.0), *dth0 = randn(hpm, 44, 1.0), *dth_dir = randn(hpm, 45, 1.0);
      double *P = malloc(nh * sizeof *P), *Pv = malloc(nh * sizeof *Pv);
      gn_real *A = malloc((size_t)n * (size_t)md.hp * sizeof *A);
      gn_real *Jv = calloc(nm, sizeof *Jv), *fp = calloc(nm, sizeof *fp), *fm = calloc(nm, sizeof *fm);
      gn_real *zp = malloc(nm * sizeof *zp), *zm = malloc(nm * sizeof *zm);
      gn_real *gz = malloc(nm * sizeof *gz), *gz_null = malloc(nm * sizeof *gz_null);
      gn_real *dth = malloc(hpm * sizeof *dth), *thp = malloc(md.nparams * sizeof *thp);
      double *fd = malloc(nm * sizeof *fd), *Jvr = malloc(nm * sizeof *Jvr), *gzd = malloc(nm * sizeof *gzd);
      double *dthd = malloc(hpm * sizeof *dthd), *dir_real = malloc(hpm * sizeof *dir_real);
      double jvp_err = 0, adj_err = 0, dth_err = 0, feat_err = 0, acc_dev = 0;
      double jvp_tol = 0;
      for (int b = 0; b < 2; ++b)
        for (int s = 0; s < 2; ++s) {
          /* Features: phi(zC) in the first h columns, then ones; A Theta is the half-forward. */
          preact(&md, b, s, n, z, P);
          gn_model_features(&md, b, s, n, z, m, A);
          for (int64_t i = 0; i < n; ++i) {
            for (int64_t j = 0; j < h; ++j) {
              const double p = P[i * h + j];
              const double phi = md.act[b] == GN_ACT_RELU   ? fmax(p, 0.0)
                                 : md.act[b] == GN_ACT_TANH ? tanh(p)
                                                            : p;
              feat_err = fmax(feat_err, fabs(A[i * md.hp + j] - phi));
            }
            if (bias) feat_err = fmax(feat_err, fabs(A[i * md.hp + h] - 1.0));
          }

          /* Step: relative 1e-5 of |z| (gt_fd_step: 8e-3 in the single build); for relu also at
           * most half the distance of any pre-activation to the kink, so the difference quotient
           * never straddles it. */
          preact(&md, b, s, n, v, Pv);
          const double nominal = gt_fd_step(1e-5);
          double step = nominal;
          if (md.act[b] == GN_ACT_RELU)
            for (size_t k = 0; k < nh; ++k) step = fmin(step, 0.5 * fabs(P[k]) / fabs(Pv[k]));
          for (size_t k = 0; k < nm; ++k) {
            zp[k] = (gn_real)(z[k] + step * v[k]);
            zm[k] = (gn_real)(z[k] - step * v[k]);
            fp[k] = fm[k] = 0.0;
          }
          gn_model_half_forward(&md, theta, b, s, n, zp, m, 1.0, fp, m);
          gn_model_half_forward(&md, theta, b, s, n, zm, m, 1.0, fm, m);
          for (size_t k = 0; k < nm; ++k) fd[k] = ((double)fp[k] - fm[k]) / (2 * step);
          gn_model_half_jvp(&md, theta, b, s, n, z, m, v, m, Jv, m);
          /* relu and identity are linear between kinks: only rounding, eps |F| / step, with the
           * double build's step (1e-5, or as much shorter as the kink rule made this one).
           * tanh adds the truncation step^2 |F'''| / 6 ~ 1e-10 relative; 1e-8 leaves a factor 100. */
          const double tol =
              md.act[b] == GN_ACT_TANH ? gt_fd_tol(1e-8) : gt_fd_tol(1e3 * EPS / step * (nominal / 1e-5));
          jvp_tol = fmax(jvp_tol, tol);
          const double e = gt_rel_diff(fd, Jv, nm);
          if (e > tol) ok = 0;
          jvp_err = fmax(jvp_err, e);

          /* Adjoint identity <g, J v> = <J^T g, v>; the VJP accumulates into gz and dtheta. */
          memcpy(gz, gz0, nm * sizeof *gz);
          memcpy(gz_null, gz0, nm * sizeof *gz);
          memcpy(dth, dth0, hpm * sizeof *dth);
          gn_model_half_vjp(&md, theta, b, s, n, z, m, g, m, gz, m, dth);
          gn_model_half_vjp(&md, theta, b, s, n, z, m, g, m, gz_null, m, NULL);
          for (size_t k = 0; k < nm; ++k) gzd[k] = (double)gz[k] - gz0[k];
          for (size_t k = 0; k < nm; ++k) acc_dev = fmax(acc_dev, fabs((double)gz_null[k] - gz0[k] - gzd[k]));
          gt_to_f64(Jv, nm, Jvr);
          const double lhs = dot_dr(Jvr, g, nm), rhs = dot_dr(gzd, v, nm);
          adj_err = fmax(adj_err, fabs(lhs - rhs) / (norm(g, nm) * norm(Jv, nm) + norm_d(gzd, nm) * norm(v, nm)));

          /* F is linear in Theta, so the difference quotient of <g, F> has only rounding error,
           * eps |<g,F>| / step relative; it is compared with <dtheta, d> for the direction d the
           * two gn_real parameter vectors really differ by. */
          for (size_t k = 0; k < hpm; ++k) dthd[k] = (double)dth[k] - dth0[k];
          const double ts = gt_fd_step(1e-4);
          const size_t off = gn_model_offset(&md, b, s);
          double side[2];
          for (int sgn = 0; sgn < 2; ++sgn) {
            memcpy(thp, theta, md.nparams * sizeof *thp);
            for (size_t k = 0; k < hpm; ++k) thp[off + k] = (gn_real)(theta[off + k] + (sgn ? -ts : ts) * dth_dir[k]);
            for (size_t k = 0; k < hpm; ++k)
              dir_real[k] = sgn ? (dir_real[k] - thp[off + k]) / (2 * ts) : (double)thp[off + k];
            memset(fm, 0, nm * sizeof *fm);
            gn_model_half_forward(&md, thp, b, s, n, z, m, 1.0, fm, m);
            side[sgn] = dot(g, fm, nm);
          }
          const double fdq = (side[0] - side[1]) / (2 * ts), an = dot_d(dthd, dir_real, hpm);
          dth_err = fmax(dth_err, fabs(fdq - an) / (norm_d(dthd, hpm) * norm(dth_dir, hpm)));
        }
      char an[64];
      snprintf(an, sizeof an, "%s, n %lld", ACT_NAME[act], (long long)n);
      GT_CHECK(feat_err < gt_tol(1e-14), "test_features_are_phi_zC_then_ones (%s, bias %d, %.3g)", an, bias,
               feat_err);
      GT_CHECK(ok, "test_half_jvp_matches_central_differences (%s, bias %d, rel %.3g, tol %.3g)", an, bias,
               jvp_err, jvp_tol);
      GT_CHECK(adj_err < gt_tol(1e-12), "test_half_vjp_is_adjoint_of_jvp (%s, bias %d, rel %.3g)", an, bias, adj_err);
      GT_CHECK(acc_dev < gt_tol(1e-14), "test_half_vjp_accumulates_and_skips_dtheta_when_null (%s, bias %d)", an,
               bias);
      GT_CHECK(dth_err < gt_fd_tol(1e-9), "test_half_vjp_dtheta_matches_finite_differences (%s, bias %d, rel %.3g)",
               an, bias, dth_err);
      free(z), free(v), free(g), free(gz0), free(dth0), free(dth_dir), free(P), free(Pv), free(A);
      free(Jv), free(fp), free(fm), free(zp), free(zm), free(gz), free(gz_null), free(dth), free(thp);
      free(fd), free(Jvr), free(gzd), free(dthd), free(dir_real);
      free(theta);
      gn_model_free(&md);
    }
}

/* A linear half-block is evaluated as (z C) W for few rows and as z (C W) for many (model.c):
 * both must give the same forward, JVP and VJP up to rounding. Three calls on 2 rows each take
 * the first route, one call on all 6 rows the second. */
static void test_linear_routes_agree(void) {
  const int64_t d = 8, m = 4, h = 9, n = 6, k = 2;
  gn_deck deck = make_deck(1, h, GN_ACT_IDENTITY, 1, 1, 31);
  gn_model md;
  int ok = gn_model_create(NULL, &deck, d, 3, &md) == GN_OK && gn_model_reserve(&md, n) == GN_OK;
  gn_real *theta = make_theta(&md, &deck);
  const size_t nm = (size_t)(n * m), hpm = (size_t)(md.hp * m);
  gn_real *z = randn(nm, 90, 1.0), *v = randn(nm, 91, 1.0), *g = randn(nm, 92, 1.0);
  gn_real *f[2], *jv[2], *gz[2], *dth[2];
  for (int r = 0; r < 2; ++r) {
    f[r] = calloc(nm, sizeof(gn_real));
    jv[r] = calloc(nm, sizeof(gn_real));
    gz[r] = calloc(nm, sizeof(gn_real));
    dth[r] = calloc(hpm, sizeof(gn_real));
  }
  for (int s = 0; s < 2; ++s) {
    for (int64_t i0 = 0; i0 < n; i0 += k) {
      const size_t o = (size_t)(i0 * m);
      gn_model_half_forward(&md, theta, 0, s, k, z + o, m, 1.0, f[0] + o, m);
      gn_model_half_jvp(&md, theta, 0, s, k, z + o, m, v + o, m, jv[0] + o, m);
      gn_model_half_vjp(&md, theta, 0, s, k, z + o, m, g + o, m, gz[0] + o, m, dth[0]);
    }
    gn_model_half_forward(&md, theta, 0, s, n, z, m, 1.0, f[1], m);
    gn_model_half_jvp(&md, theta, 0, s, n, z, m, v, m, jv[1], m);
    gn_model_half_vjp(&md, theta, 0, s, n, z, m, g, m, gz[1], m, dth[1]);
  }
  const double dev = fmax(fmax(gt_rel_diff(f[0], f[1], nm), gt_rel_diff(jv[0], jv[1], nm)),
                          fmax(gt_rel_diff(gz[0], gz[1], nm), gt_rel_diff(dth[0], dth[1], hpm)));
  GT_CHECK(ok && dev < gt_tol(1e-14), "test_linear_half_block_routes_agree (rel %.3g)", dev);
  for (int r = 0; r < 2; ++r) free(f[r]), free(jv[r]), free(gz[r]), free(dth[r]);
  free(z), free(v), free(g), free(theta);
  gn_model_free(&md);
}

/* Mean CE over the batch of the network's logits at (theta, X0). */
static double net_loss(const gn_model *md, const gn_real *theta, int64_t n, const gn_real *X0, const int32_t *y,
                       gn_real *X, gn_real *logits) {
  memcpy(X, X0, (size_t)(n * md->d) * sizeof *X);
  gn_model_forward(md, theta, n, X, logits);
  double sum;
  int64_t correct;
  gn_loss_eval(GN_LOSS_CE, n, md->C, logits, y, &sum, &correct);
  return sum / (double)n;
}

static void test_backward(gn_activation act, int B, int linear_first, int bias, int64_t n) {
  const int64_t d = 10, h = 12;
  const int C = 3;
  char an[64];
  snprintf(an, sizeof an, "%s, n %lld", ACT_NAME[act], (long long)n);
  gn_deck deck = make_deck(B, h, act, linear_first, bias, 21 + B);
  gn_model md;
  int ok = gn_model_create(NULL, &deck, d, C, &md) == GN_OK && gn_model_reserve(&md, n) == GN_OK;
  gn_real *theta = make_theta(&md, &deck);
  const size_t nd = (size_t)(n * d), np = md.nparams;
  gn_real *X0 = randn(nd, 60, 1.0), *X = malloc(nd * sizeof *X), *dX = malloc(nd * sizeof *dX);
  gn_real *dX2 = malloc(nd * sizeof *dX2), *grad = calloc(np, sizeof *grad), *thp = malloc(np * sizeof *thp);
  gn_real logits[6 * 3], dlogits[6 * 3];
  double naive[6 * 3], *moved = malloc((np > nd ? np : nd) * sizeof *moved);
  int32_t y[6];
  for (int i = 0; i < n; ++i) y[i] = (int32_t)gn_rng_below(99, GN_RNG_TEST, 61, (uint64_t)i, (uint64_t)C);

  const double L0 = net_loss(&md, theta, n, X0, y, X, logits);
  double ldev = 0.0;
  for (int64_t i = 0; i < n; ++i)
    for (int c = 0; c < C; ++c) {
      double acc = 0.0;
      for (int64_t k = 0; k < d; ++k) acc += (double)X[i * d + k] * md.U[k * C + c];
      naive[i * C + c] = acc;
    }
  ldev = gt_rel_diff(logits, naive, (size_t)(n * C));
  gn_loss_grad(GN_LOSS_CE, n, n, C, logits, y, dlogits);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < d; ++k) {
      double acc = 0.0;
      for (int c = 0; c < C; ++c) acc += (double)dlogits[i * C + c] * md.U[k * C + c];
      dX[i * d + k] = dX2[i * d + k] = (gn_real)acc;
    }
  gn_real *XB = malloc(nd * sizeof *XB);
  memcpy(XB, X, nd * sizeof *X);
  gn_model_backward(&md, theta, n, X, dX, grad);
  const double restore = gt_rel_diff(X, X0, nd);
  gn_model_backward(&md, theta, n, XB, dX2, NULL);
  const double nograd_dev = gt_rel_diff(dX2, dX, nd);

  /* Central differences with step 1e-5 on O(0.3) parameters: truncation ~ step^2 |L'''| ~ 1e-10,
   * rounding ~ eps L / step ~ 1e-11, so 1e-8 of the gradient's norm leaves a factor 100 (relu: piecewise
   * linear, exact unless a kink is crossed, which these seeds avoid). The quotient is compared with the
   * gradient along the direction the two gn_real arguments really differ by (`moved`). A relu
   * network's step stops short of every kink (gt_kink_free_step, testfd.h). */
  const double nominal = gt_fd_step(1e-5), gnorm = norm(grad, np);
  double dir_err = 0.0, coord_err = 0.0, shortest = nominal;
  for (int r = 0; r < 3; ++r) {
    gn_real *dir = randn(np, 70 + (uint32_t)r, 1.0);
    const double step = gt_kink_free_step(&md, theta, n, X0, dir, NULL, nominal);
    shortest = fmin(shortest, step);
    double side[2];
    for (int sgn = 0; sgn < 2; ++sgn) {
      for (size_t k = 0; k < np; ++k) thp[k] = (gn_real)(theta[k] + (sgn ? -step : step) * dir[k]);
      for (size_t k = 0; k < np; ++k) moved[k] = sgn ? (moved[k] - thp[k]) / (2 * step) : (double)thp[k];
      side[sgn] = net_loss(&md, thp, n, X0, y, X, logits);
    }
    const double fd = (side[0] - side[1]) / (2 * step);
    dir_err = fmax(dir_err, fabs(fd - dot_dr(moved, grad, np)) / (gnorm * norm(dir, np)));
    free(dir);
  }
  /* One W entry and, with bias, one bias entry of every half-block. */
  for (int k = 0; k < 2 * B; ++k)
    for (int which = 0; which < 1 + bias; ++which) {
      const size_t idx =
          gn_model_offset(&md, k / 2, k % 2) + (which ? (size_t)(h * md.m + 2) : (size_t)(3 * md.m + 1));
      memset(thp, 0, np * sizeof *thp);
      thp[idx] = 1;
      const double step = gt_kink_free_step(&md, theta, n, X0, thp, NULL, nominal);
      shortest = fmin(shortest, step);
      double side[2], at[2];
      for (int sgn = 0; sgn < 2; ++sgn) {
        memcpy(thp, theta, np * sizeof *thp);
        thp[idx] = (gn_real)(thp[idx] + (sgn ? -step : step));
        at[sgn] = thp[idx];
        side[sgn] = net_loss(&md, thp, n, X0, y, X, logits);
      }
      coord_err = fmax(coord_err, fabs((side[0] - side[1]) / (at[0] - at[1]) - grad[idx]) / gnorm);
    }
  /* The input gradient dL/dX_0 along a random direction. */
  gn_real *dir = randn(nd, 80, 1.0), *Xp = malloc(nd * sizeof *Xp);
  const double step = gt_kink_free_step(&md, theta, n, X0, NULL, dir, nominal);
  shortest = fmin(shortest, step);
  double side[2];
  for (int sgn = 0; sgn < 2; ++sgn) {
    for (size_t k = 0; k < nd; ++k) Xp[k] = (gn_real)(X0[k] + (sgn ? -step : step) * dir[k]);
    for (size_t k = 0; k < nd; ++k) moved[k] = sgn ? (moved[k] - Xp[k]) / (2 * step) : (double)Xp[k];
    side[sgn] = net_loss(&md, theta, n, Xp, y, X, logits);
  }
  const double xerr =
      fabs((side[0] - side[1]) / (2 * step) - dot_dr(moved, dX, nd)) / (norm(dX, nd) * norm(dir, nd));

  if (shortest < nominal)
    gt_note("%s, B %d, bias %d: a step of %.3g shortened to %.3g to stay clear of relu kinks", an, B, bias, nominal,
            shortest);
  const char *tag = linear_first ? ", linear first block" : "";
  GT_CHECK(ok && ldev < gt_tol(1e-14), "test_logits_are_state_times_U (%s, B %d)", an, B);
  GT_CHECK(ok && restore < gt_tol(1e-12), "test_backward_restores_X0 (%s, B %d, rel %.3g)", an, B, restore);
  GT_CHECK(ok && dir_err < gt_fd_tol(1e-8),
           "test_backward_gradient_matches_fd_along_random_directions (%s, B %d, bias %d%s, "
           "rel %.3g, L %.4f)",
           an, B, bias, tag, dir_err, L0);
  GT_CHECK(ok && coord_err < gt_fd_tol(1e-8),
           "test_backward_gradient_matches_fd_per_coordinate (%s, B %d, bias %d%s, rel %.3g)", an, B, bias,
           tag, coord_err);
  GT_CHECK(ok && xerr < gt_fd_tol(1e-8), "test_backward_input_gradient_matches_fd (%s, B %d, rel %.3g)", an, B, xerr);
  GT_CHECK(ok && nograd_dev == 0.0, "test_backward_without_grad_gives_the_same_dX (%s, B %d)", an, B);
  free(dir), free(Xp), free(XB), free(moved);
  free(X0), free(X), free(dX), free(dX2), free(grad), free(thp), free(theta);
  gn_model_free(&md);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  gt_plan(116); /* one per GT_CHECK made (several in loops over activations, biases and depths) */
  test_bad_shapes_are_rejected();
  test_layout();
  test_inverse();
  test_output_map();
  test_random_parts();
  test_linear_routes_agree();
  /* n = 2 takes the (z C) W route for linear blocks, n = 6 the z (C W) route (m = 4 or 5). */
  test_half_block_derivatives(2);
  test_half_block_derivatives(6);
  test_backward(GN_ACT_TANH, 3, 1, 1, 6);
  test_backward(GN_ACT_TANH, 3, 0, 0, 6);
  test_backward(GN_ACT_TANH, 3, 1, 1, 2);
  test_backward(GN_ACT_RELU, 2, 1, 1, 6);
  test_backward(GN_ACT_RELU, 2, 0, 0, 6);
  test_backward(GN_ACT_IDENTITY, 2, 0, 1, 2);
  test_backward(GN_ACT_IDENTITY, 2, 0, 1, 6);
  int rc = gt_finish();
  MPI_Finalize();
  return rc;
}
