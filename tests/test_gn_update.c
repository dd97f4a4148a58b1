/* test_gn_update.c — the GN sweep: each block's update alone reproduces the requested output
 * change (J_b dTheta_b = eps, J_b by finite differences of the forward pass), and the direction
 * does not depend on the rank count (compared with the same computation on one rank). */
// NP: 1 2 3 4
/* theta, the batch, logits, residuals and directions are gn_real (real.h); difference quotients
 * are taken in double. Tolerances go through gt_tol, steps and their tolerances through gt_fd_step
 * and gt_fd_tol (testlib.h): in the double build each returns its argument. */
#include <stdlib.h>
#include <string.h>

#include "gnrev/optim/gn_sweep.h"
#include "gnrev/model/loss.h"
#include "gnrev/model/model.h"
#include "gnrev/core/par.h"
#include "gnrev/core/rng.h"
#include "testfd.h"
#include "testlib.h"
#include "testshm.h"

static gn_deck tiny_deck(int64_t hidden, gn_loss_kind loss, gn_output_hessian hess, gn_activation act,
                         bool linear_first) {
  gn_deck d;
  memset(&d, 0, sizeof d);
  d.seed = 7;
  d.blocks = 2;
  d.hidden = hidden;
  d.activation = act;
  d.linear_first_block = linear_first;
  d.bias = true;
  d.init_std = 0.3; /* far from the identity so every block matters */
  d.proj_gain = 1.0;
  d.method = GN_OPT_GN;
  d.loss = loss;
  d.output_hessian = hess;
  d.pinv = GN_PINV_GRAM;
  d.rtol = 1e-13; /* no truncation: the right inverse is exact */
  d.atol = 1e-300;
  return d;
}

/* Global batch of n rows: X from GN_RNG_TEST, labels cycling. */
static void make_batch(int64_t n, int64_t d, int C, gn_real *X, int32_t *y) {
  gn_rng_fill_normal_real(1, GN_RNG_TEST, 0, 0, (size_t)(n * d), 1.0, X);
  for (int64_t i = 0; i < n; ++i) y[i] = (int32_t)((i * 7 + 3) % C);
}

/* Runs the GN direction on `par` for the global batch, each rank its rows. */
static int direction(const gn_par *par, const gn_model *md, const gn_deck *dk, const gn_real *theta,
                     int64_t n, const gn_real *X, const int32_t *y, gn_real *delta) {
  int64_t row0, nrows;
  gn_par_rows(n, par->size, par->rank, &row0, &nrows);
  gn_sweep *gn = NULL;
  CHECK(gn_sweep_create(par, md, dk, &gn));
  gn_real *logits = malloc((size_t)(nrows > 0 ? nrows : 1) * md->C * sizeof(gn_real));
  /* The direction lands in node-shared memory. */
  gn_real *shared = gt_shared(par, md->nparams);
  int st = gn_sweep_direction(gn, theta, nrows, n, X + row0 * md->d, y + row0, logits, shared);
  if (st == GN_OK) memcpy(delta, shared, md->nparams * sizeof(gn_real));
  gt_shared_free(shared);
  free(logits);
  gn_sweep_free(gn);
  return st;
}

static void logits_at(const gn_model *md, const gn_real *theta, int64_t n, const gn_real *X, gn_real *out) {
  gn_real *Xc = malloc((size_t)(n * md->d) * sizeof(gn_real));
  memcpy(Xc, X, (size_t)(n * md->d) * sizeof(gn_real));
  gn_model_forward(md, theta, n, Xc, out);
  free(Xc);
}

static void check_block_reproduces_residual(const gn_par *par, gn_loss_kind loss, gn_output_hessian hess,
                                            gn_activation act, const char *label) {
  /* hp = 13 >= n: full row rank features. Those of 9 samples of these 4-wide inputs are ill
   * conditioned (smallest singular value 2e-3 of the largest), which leaves the float direction
   * ~4e-3 off eps, as much as the difference quotient's own tolerance: the single build takes 6
   * samples (smallest singular value 1e-2). */
  const int64_t n = GT_SINGLE ? 6 : 9, d = 8, hidden = 12;
  const int C = 3;
  /* A linear block's features x2 C have rank <= m < n: only nonlinear blocks reach full row rank. */
  gn_deck dk = tiny_deck(hidden, loss, hess, act, false);
  gn_model md;
  gn_model_create(NULL, &dk, d, C, &md);
  gn_model_reserve(&md, n);
  gn_real *theta = malloc(md.nparams * sizeof(gn_real)), *delta = calloc(md.nparams, sizeof(gn_real));
  gn_real *X = malloc((size_t)(n * d) * sizeof(gn_real));
  int32_t *y = malloc((size_t)n * sizeof(int32_t));
  make_batch(n, d, C, X, y);
  gn_model_init_params(&md, &dk, 0, md.nparams, theta);
  for (size_t i = 0; i < md.nparams; ++i) theta[i] = (gn_real)(theta[i] + 0.05 * gn_rng_normal(3, GN_RNG_TEST, 1, i));
  int st = direction(par, &md, &dk, theta, n, X, y, delta);
  GT_CHECK(st == GN_OK, "test_gn_direction_succeeds (%s): %s", label, st ? gn_error_message() : "");

  /* eps from the logits at theta */
  gn_real *lg = malloc((size_t)(n * C) * sizeof(gn_real)), *eps = malloc((size_t)(n * C) * sizeof(gn_real));
  logits_at(&md, theta, n, X, lg);
  gn_loss_residual(loss, hess, n, C, lg, y, eps);
  gn_real *tp = malloc(md.nparams * sizeof(gn_real)), *lp = malloc((size_t)(n * C) * sizeof(gn_real)),
          *lm = malloc((size_t)(n * C) * sizeof(gn_real));
  double *jd = malloc((size_t)(n * C) * sizeof(double));
  double worst = 0;
  for (int b = 0; b < md.B; ++b) {
    /* Central difference along dTheta_b (both halves of block b, nothing else), short of every relu
     * kink (testfd.h). */
    size_t o0 = gn_model_offset(&md, b, 0), len = 2 * (size_t)(md.hp * md.m);
    memset(tp, 0, md.nparams * sizeof(gn_real));
    memcpy(tp + o0, delta + o0, len * sizeof(gn_real));
    const double nominal = gt_fd_step(1e-5), hstep = gt_kink_free_step(&md, theta, n, X, tp, NULL, nominal);
    if (hstep < nominal)
      gt_note("block %d: step %.3g shortened to %.3g to stay clear of relu kinks", b, nominal, hstep);
    for (int sgn = -1; sgn <= 1; sgn += 2) {
      memcpy(tp, theta, md.nparams * sizeof(gn_real));
      for (size_t i = 0; i < len; ++i) tp[o0 + i] = (gn_real)(tp[o0 + i] + sgn * hstep * delta[o0 + i]);
      logits_at(&md, tp, n, X, sgn > 0 ? lp : lm);
    }
    for (int64_t i = 0; i < n * C; ++i) jd[i] = ((double)lp[i] - lm[i]) / (2 * hstep);
    double r = gt_rel_diff(jd, eps, (size_t)(n * C));
    gt_note("block %d: |J_b dTheta_b - eps| / |eps| = %.2e", b, r);
    if (r > worst) worst = r;
  }
  /* FD truncation error is O(h^2 |F'''|) ~ 1e-10 relative here; rounding ~ 1e-16/1e-5. */
  GT_CHECK(worst < gt_fd_tol(1e-8), "test_gn_block_reproduces_residual (%s): worst relative error %.2e", label,
           worst);
  free(tp); free(lp); free(lm); free(jd); free(lg); free(eps);
  free(theta); free(delta); free(X); free(y);
  gn_model_free(&md);
}

static void check_rank_invariance(const gn_par *par, const gn_par *self, int64_t n, int64_t hidden,
                                  const char *label) {
  const int64_t d = 10;
  const int C = 4;
  gn_deck dk = tiny_deck(hidden, GN_LOSS_CE, GN_HESS_IDENTITY, GN_ACT_RELU, true);
  dk.rtol = 1e-2;
  dk.atol = 1e-5;
  gn_model md;
  gn_model_create(NULL, &dk, d, C, &md);
  gn_model_reserve(&md, n);
  gn_real *theta = malloc(md.nparams * sizeof(gn_real)), *delta = calloc(md.nparams, sizeof(gn_real)),
          *ref = calloc(md.nparams, sizeof(gn_real));
  gn_real *X = malloc((size_t)(n * d) * sizeof(gn_real));
  int32_t *y = malloc((size_t)n * sizeof(int32_t));
  make_batch(n, d, C, X, y);
  gn_model_init_params(&md, &dk, 0, md.nparams, theta);
  int st = direction(par, &md, &dk, theta, n, X, y, delta);
  int st1 = GN_OK;
  if (par->rank == 0) st1 = direction(self, &md, &dk, theta, n, X, y, ref);
  MPI_Bcast(ref, (int)md.nparams, GN_MPI_REAL, 0, par->comm);
  double r = gt_rel_diff(delta, ref, md.nparams);
  GT_CHECK(st == GN_OK && st1 == GN_OK && r < gt_tol(1e-10),
           "test_gn_direction_same_on_every_rank_count (%s): rel diff to np=1 %.2e", label, r);
  free(theta); free(delta); free(ref); free(X); free(y);
  gn_model_free(&md);
}

/* The routes of the sweep give one direction: features kept from the forward (linear block through
 * C C^T, eigenproblems solved together) or recomputed by the inverse, and the SVD route from
 * explicit feature matrices. The linear block's Gram matrices have rank m + 1 < n: rtol 1e-5 keeps
 * every nonzero singular value and drops the rounding noise of the zero ones, so the routes differ
 * only by rounding, amplified by the conditioning of the kept part. In float the Gram route leaves
 * noise of ~sqrt(eps) ~ 3e-4 of sigma_max on the zero singular values, above 1e-5: the single
 * build truncates at rtol 3e-2, still below the linear block's nonzero singular values (>= 0.2
 * sigma_max) and between two of the relu block's (3.5e-2 and 2.7e-2, 3.4e-2 and 2.4e-2), so that
 * kappa^2 <= 1100 and eps kappa^2 ~ 1e-4. */
static void check_routes_agree(const gn_par *par) {
  const int64_t d = 10, n = 23;
  const int C = 4;
  gn_deck dk = tiny_deck(40, GN_LOSS_CE, GN_HESS_IDENTITY, GN_ACT_RELU, true);
  dk.rtol = GT_SINGLE ? 3e-2 : 1e-5;
  dk.atol = 1e-300;
  gn_model md;
  gn_model_create(NULL, &dk, d, C, &md);
  gn_model_reserve(&md, n);
  gn_real *theta = malloc(md.nparams * sizeof(gn_real)), *kept = calloc(md.nparams, sizeof(gn_real)),
          *other = calloc(md.nparams, sizeof(gn_real));
  gn_real *X = malloc((size_t)(n * d) * sizeof(gn_real));
  int32_t *y = malloc((size_t)n * sizeof(int32_t));
  make_batch(n, d, C, X, y);
  gn_model_init_params(&md, &dk, 0, md.nparams, theta);
  dk.keep_features = GN_KEEP_YES;
  int st = direction(par, &md, &dk, theta, n, X, y, kept);
  dk.keep_features = GN_KEEP_NO;
  st |= direction(par, &md, &dk, theta, n, X, y, other);
  const double r_no = gt_rel_diff(other, kept, md.nparams);
  dk.keep_features = GN_KEEP_YES;
  dk.pinv = GN_PINV_SVD;
  st |= direction(par, &md, &dk, theta, n, X, y, other);
  const double r_svd = gt_rel_diff(other, kept, md.nparams);
  GT_CHECK(st == GN_OK && r_no < gt_tol(1e-9) && r_svd < gt_tol(1e-9),
           "test_gn_direction_same_with_kept_or_recomputed_features_and_by_svd: rel diff %.2e (recomputed), "
           "%.2e (svd)", r_no, r_svd);
  free(theta); free(kept); free(other); free(X); free(y);
  gn_model_free(&md);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  gt_plan(9); /* 3 cases x 2 checks, 2 rank-invariance cases, routes */
  gn_par par, self;
  gn_par_open(MPI_COMM_WORLD, &par);
  gn_par_open(MPI_COMM_SELF, &self);
  check_block_reproduces_residual(&par, GN_LOSS_CE, GN_HESS_IDENTITY, GN_ACT_TANH, "ce identity, tanh");
  check_block_reproduces_residual(&par, GN_LOSS_CE, GN_HESS_EXACT, GN_ACT_TANH, "ce exact, tanh");
  check_block_reproduces_residual(&par, GN_LOSS_MSE, GN_HESS_IDENTITY, GN_ACT_RELU, "mse, relu");
  check_rank_invariance(&par, &self, 23, 40, "wide, n = 23");
  check_rank_invariance(&par, &self, 50, 20, "tall, n = 50 > hp = 21");
  check_routes_agree(&par);
  gn_par_close(&self);
  gn_par_close(&par);
  int rc = gt_finish();
  MPI_Finalize();
  return rc;
}
