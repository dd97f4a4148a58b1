/* sgd.c — stochastic gradient descent with momentum and Nesterov (first_order.h), written to
 * match torch.optim.SGD update for update. */
#include "gnrev/optim/first_order.h"

#include <stdlib.h>
#include <string.h>

#include "gnrev/core/err.h"
#include "gnrev/core/shm.h"
#include "gnrev/optim/optim.h"
#include "gnrev/core/real.h"

void gn_sgd_rule(const gn_deck *deck, double lr, bool first, size_t n, gn_real *theta, gn_real *g, gn_real *buf) {
  const double wd = deck->weight_decay, mu = deck->momentum;
  if (wd != 0)
    for (size_t i = 0; i < n; ++i) g[i] += wd * theta[i];
  if (mu > 0) {
    if (first)
      memcpy(buf, g, n * sizeof *g);
    else
      for (size_t i = 0; i < n; ++i) buf[i] = mu * buf[i] + g[i];
    if (deck->nesterov)
      for (size_t i = 0; i < n; ++i) g[i] += mu * buf[i];
    else
      memcpy(g, buf, n * sizeof *g);
  }
  for (size_t i = 0; i < n; ++i) theta[i] -= lr * g[i];
}

/* The momentum buffer (node-shared), when momentum > 0. */
static int sgd_create(gn_opt *opt) {
  gn_shm *buf = calloc(1, sizeof *buf);
  if (!buf) GN_FAIL(GN_ENOMEM, "sgd: out of memory");
  buf->win = MPI_WIN_NULL;
  opt->impl = buf;
  if (!(opt->deck->momentum > 0)) return GN_OK;
  CHECK(gn_par_agree(opt->par, gn_shm_alloc(opt->par, opt->model->nparams * sizeof(gn_real), "the momentum buffer", buf)));
  return gn_opt_zero(opt, buf->base, opt->model->nparams);
}

static void sgd_destroy(gn_opt *opt) {
  gn_shm *buf = opt->impl;
  if (buf) gn_shm_free(buf);
  free(buf);
}

static int sgd_step(gn_opt *opt, gn_real *theta, const gn_batch *batch, gn_step_info *info) {
  CHECK(gn_opt_gradient(opt, theta, batch, opt->delta, info));
  gn_real *buf = ((gn_shm *)opt->impl)->base;
  size_t lo, hi;
  gn_shm_slice(opt->par, opt->model->nparams, sizeof(gn_real), &lo, &hi);
  gn_sgd_rule(opt->deck, opt->deck->lr, !opt->has_momentum, hi - lo, theta + lo, opt->delta + lo, buf ? buf + lo : NULL);
  if (buf) opt->has_momentum = 1;
  opt->t += 1;
  return gn_shm_sync(opt->par);
}

static int sgd_arrays(gn_opt *opt, gn_opt_array *out, int cap) {
  gn_real *buf = ((gn_shm *)opt->impl)->base;
  if (!buf || cap < 1) return 0;
  out[0] = (gn_opt_array){.name = "momentum_buffer", .data = buf, .n = opt->model->nparams};
  return 1;
}

const gn_opt_ops gn_opt_sgd_ops = {
    .name = "sgd", .create = sgd_create, .step = sgd_step, .arrays = sgd_arrays, .destroy = sgd_destroy};
