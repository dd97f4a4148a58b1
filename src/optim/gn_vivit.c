/* gn_vivit.c — ViViT's damped Newton step (gn_vivit.h): delta = sum_k gamma_k / (lambda_k +
 * delta_k) e_k over the top-k GGN directions of the batch (curvature/ggn.c), with the constant
 * damping of the deck or the bootstrap's choice per direction. With damping 0 and every direction
 * kept this is G^+ grad L (for MSE exactly the Moore-Penrose step J^+ eps). */
#include "gnrev/optim/gn_vivit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "gnrev/core/array.h"
#include "gnrev/core/blas.h"
#include "gnrev/core/err.h"
#include "gnrev/core/rng.h"
#include "gnrev/curvature/ntk.h"
#include "gnrev/optim/optim.h"
#include "gnrev/core/real.h"

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int gn_vivit_bootstrap_damping(const gn_deck *deck, int64_t step, const gn_ggn *g, double *damping) {
  enum { B = GN_VIVIT_BOOT_REPLICATES, GRID = GN_VIVIT_BOOT_GRID };
  const int64_t N = g->N, k = g->k;
  if (k < 1) return GN_OK;
  double lam_ref = 0;
  for (int64_t kk = 0; kk < k; ++kk) lam_ref += g->lambda_mean[kk];
  lam_ref /= (double)k;
  double grid[GRID];
  for (int j = 0; j < GRID; ++j) grid[j] = lam_ref * pow(10.0, GN_VIVIT_BOOT_GRID_LOW + j);
  double *R = gn_alloc_f64((size_t)(GRID * k * B)), *mean = gn_alloc_f64((size_t)(4 * k));
  if (!R || !mean) {
    free(R);
    free(mean);
    GN_FAIL(GN_ENOMEM, "gn_vivit: out of memory for the bootstrap of %lld directions", (long long)k);
  }
  const uint64_t seed = (uint64_t)deck->seed;
  for (int64_t b = 0; b < B; ++b) {
    /* mean[0:k] gamma, [k:2k] lambda over resample 1; [2k:3k], [3k:4k] over resample 2. */
    memset(mean, 0, (size_t)(4 * k) * sizeof(double));
    for (int half = 0; half < 2; ++half)
      for (int64_t i = 0; i < N; ++i) {
        const int64_t n = (int64_t)gn_rng_below(seed, GN_RNG_BOOTSTRAP, (uint32_t)step,
                                                (uint64_t)((2 * b + half) * N + i), (uint64_t)N);
        for (int64_t kk = 0; kk < k; ++kk) {
          mean[2 * half * k + kk] += g->gamma[n * k + kk] / (double)N;
          mean[(2 * half + 1) * k + kk] += g->lambda[n * k + kk] / (double)N;
        }
      }
    for (int j = 0; j < GRID; ++j)
      for (int64_t kk = 0; kk < k; ++kk) {
        const double s = -mean[kk] / (mean[k + kk] + grid[j]);
        R[(j * k + kk) * B + b] = -s * mean[2 * k + kk] - 0.5 * s * s * mean[3 * k + kk];
      }
  }
  /* The 5% quantile as the order statistic R_(ceil(0.05 B)): a conservative lower bound without
   * interpolation. */
  const int64_t qi = (int64_t)ceil(0.05 * (double)B) - 1;
  for (int64_t kk = 0; kk < k; ++kk) {
    double best = -INFINITY;
    int jbest = GRID - 1;
    for (int j = GRID - 1; j >= 0; --j) {
      double *Rj = R + (j * k + kk) * B;
      qsort(Rj, (size_t)B, sizeof *Rj, cmp_double);
      if (Rj[qi] > best) {
        best = Rj[qi];
        jbest = j;
      }
    }
    damping[kk] = grid[jbest];
  }
  free(R);
  free(mean);
  return GN_OK;
}

/* The damping of each of the ggn_top_k directions of the last step (NaN past those found), and
 * the names of its /vivit series. */
typedef struct {
  int64_t k;
  double *damping;
  char (*names)[32];
  const char **name_ptrs;
} vivit;

static int vivit_create(gn_opt *opt) {
  const int64_t k = opt->deck->ggn_top_k;
  if (k < 1) GN_FAIL(GN_EINPUT, "gn_vivit: the ViViT step needs ggn_top_k >= 1 directions (found %lld)", (long long)k);
  const gn_deck *dk = opt->deck;
  if (dk->damping_mode == GN_DAMP_CONSTANT && !(dk->damping >= 0 && isfinite(dk->damping)))
    GN_FAIL(GN_EINPUT, "gn_vivit: constant damping = %g; expected a finite damping >= 0", dk->damping);
  vivit *v = calloc(1, sizeof *v);
  if (v) {
    v->k = k;
    v->damping = gn_alloc_f64((size_t)k);
    v->names = malloc((size_t)k * sizeof *v->names);
    v->name_ptrs = malloc((size_t)k * sizeof *v->name_ptrs);
  }
  opt->impl = v;
  if (!v || !v->damping || !v->names || !v->name_ptrs)
    GN_FAIL(GN_ENOMEM, "gn_vivit: out of memory for %lld directions", (long long)k);
  for (int64_t i = 0; i < k; ++i) {
    snprintf(v->names[i], sizeof v->names[i], "damping_%03lld", (long long)i);
    v->name_ptrs[i] = v->names[i];
    v->damping[i] = NAN;
  }
  return GN_OK;
}

static void vivit_destroy(gn_opt *opt) {
  vivit *v = opt->impl;
  if (!v) return;
  free(v->damping);
  free(v->names);
  free(v->name_ptrs);
  free(v);
}

static int vivit_record(const gn_opt *opt, gn_opt_record *rec) {
  const vivit *v = opt->impl;
  *rec = (gn_opt_record){.group = "/vivit", .n = (int)v->k, .names = v->name_ptrs, .values = v->damping};
  return 1;
}

static int vivit_step(gn_opt *opt, gn_real *theta, const gn_batch *bt, gn_step_info *info) {
  const gn_par *par = opt->par;
  const gn_model *model = opt->model;
  const gn_deck *deck = opt->deck;
  vivit *v = opt->impl;
  const int64_t N = bt->n_global, C = model->C;
  /* The batch's loss first: the analysis below does not keep its logits. */
  gn_real *X = gn_alloc((size_t)(bt->n * model->d)), *logits = gn_alloc((size_t)(bt->n * C));
  int status = X && logits ? GN_OK : GN_RAISE(GN_ENOMEM, "gn_vivit: out of memory for the batch rows");
  CHECK_GOTO(gn_par_agree(par, status));
  if (bt->n > 0) memcpy(X, bt->X0, (size_t)(bt->n * model->d) * sizeof(gn_real));
  gn_model_forward(model, theta, bt->n, X, logits);
  CHECK_GOTO(gn_opt_batch_metrics(opt, bt, logits, info));

  gn_ggn g;
  gn_ggn_factors f = {0};
  CHECK_GOTO(gn_ggn_compute_factors(par, model, deck, theta, bt->n, N, bt->X0, bt->y, bt->step, &g, &f));
  const int64_t k = g.k, cols = f.cols, row0 = f.row0;
  double *damp = gn_alloc_f64((size_t)k);
  gn_real *c = gn_alloc((size_t)(N * cols)), *w = gn_alloc((size_t)(bt->n * C));
  status = damp && c && w ? GN_OK : GN_RAISE(GN_ENOMEM, "gn_vivit: out of memory for the step");
  if (status == GN_OK && k > 0 && deck->damping_mode == GN_DAMP_BOOTSTRAP)
    status = gn_vivit_bootstrap_damping(deck, bt->step, &g, damp);
  else if (status == GN_OK)
    for (int64_t kk = 0; kk < k; ++kk) damp[kk] = deck->damping;
  status = gn_par_agree(par, status);
  if (status == GN_OK) {
    /* sum_k gamma_k / (lambda_k + delta_k) e_k = J^T S c with c = sum_k a_k e~_k,
     * a_k = gamma_k / ((lambda_k + delta_k) sqrt(N lambda_k)): one backpropagation of S c. */
    memset(c, 0, (size_t)(N * cols) * sizeof(gn_real));
    for (int64_t kk = 0; kk < k; ++kk) {
      const double lam = g.eigenvalues[kk];
      const double a = g.gamma_mean[kk] / ((lam + damp[kk]) * sqrt((double)N * lam));
      gn_cblas_axpy(gn_int(N * cols), a, f.evecs + kk * N * cols, 1, c, 1);
    }
    for (int64_t i = 0; i < bt->n; ++i)
      gn_gemm(CblasNoTrans, CblasNoTrans, C, 1, cols, 1.0, f.S + (row0 + i) * C * cols, cols, c + (row0 + i) * cols,
              1, 0.0, w + i * C, 1);
    status = gn_ntk_jt_apply(par, model, theta, bt->n, bt->X0, w, opt->delta);
  }
  for (int64_t kk = 0; kk < v->k; ++kk) v->damping[kk] = kk < k && damp ? damp[kk] : NAN;
  free(damp);
  free(c);
  free(w);
  gn_ggn_factors_free(&f);
  gn_ggn_free(&g);
  CHECK_GOTO(status);
  status = gn_opt_apply(opt, theta, opt->delta, 1.0);
fail:
  free(X);
  free(logits);
  return status;
}

const gn_opt_ops gn_opt_gn_vivit_ops = {
    .name = "gn_vivit", .create = vivit_create, .step = vivit_step, .record = vivit_record, .destroy = vivit_destroy};
