/* adam.c — Adam (first_order.h), written to match torch.optim.Adam (foreach=False,
 * amsgrad=False) update for update. */
#include "gnrev/optim/first_order.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gnrev/core/err.h"
#include "gnrev/core/shm.h"
#include "gnrev/optim/optim.h"
#include "gnrev/core/real.h"

void gn_adam_rule(const gn_deck *deck, double lr, int64_t t, size_t n, gn_real *theta, const gn_real *g, gn_real *m,
                  gn_real *v) {
  const double b1 = deck->beta1, b2 = deck->beta2, eps = deck->eps, wd = deck->weight_decay;
  const double bc1 = 1.0 - pow(b1, (double)t), bc2 = 1.0 - pow(b2, (double)t);
  const double step_size = lr / bc1, sqrt_bc2 = sqrt(bc2);
  for (size_t i = 0; i < n; ++i) {
    const double gi = g[i] + wd * theta[i];
    m[i] += (gi - m[i]) * (1.0 - b1);
    v[i] = v[i] * b2 + (1.0 - b2) * gi * gi;
    const double denom = sqrt(v[i]) / sqrt_bc2 + eps;
    theta[i] -= step_size * m[i] / denom;
  }
}

/* exp_avg (m) followed by exp_avg_sq (v) in one node-shared block. */
static int adam_create(gn_opt *opt) {
  gn_shm *mv = calloc(1, sizeof *mv);
  if (!mv) GN_FAIL(GN_ENOMEM, "adam: out of memory");
  mv->win = MPI_WIN_NULL;
  opt->impl = mv;
  CHECK(gn_par_agree(opt->par, gn_shm_alloc(opt->par, 2 * opt->model->nparams * sizeof(gn_real), "Adam's moments", mv)));
  return gn_opt_zero(opt, mv->base, 2 * opt->model->nparams);
}

static void adam_destroy(gn_opt *opt) {
  gn_shm *mv = opt->impl;
  if (mv) gn_shm_free(mv);
  free(mv);
}

static int adam_step(gn_opt *opt, gn_real *theta, const gn_batch *batch, gn_step_info *info) {
  CHECK(gn_opt_gradient(opt, theta, batch, opt->delta, info));
  const size_t np = opt->model->nparams;
  gn_real *m = ((gn_shm *)opt->impl)->base, *v = m + np;
  size_t lo, hi;
  gn_shm_slice(opt->par, np, sizeof(gn_real), &lo, &hi);
  opt->t += 1;
  gn_adam_rule(opt->deck, opt->deck->lr, opt->t, hi - lo, theta + lo, opt->delta + lo, m + lo, v + lo);
  return gn_shm_sync(opt->par);
}

static int adam_arrays(gn_opt *opt, gn_opt_array *out, int cap) {
  if (cap < 2) return 0;
  const size_t np = opt->model->nparams;
  gn_real *m = ((gn_shm *)opt->impl)->base;
  out[0] = (gn_opt_array){.name = "exp_avg", .data = m, .n = np};
  out[1] = (gn_opt_array){.name = "exp_avg_sq", .data = m + np, .n = np};
  return 2;
}

const gn_opt_ops gn_opt_adam_ops = {
    .name = "adam", .create = adam_create, .step = adam_step, .arrays = adam_arrays, .destroy = adam_destroy};
