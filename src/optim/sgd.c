/* sgd.c — stochastic gradient descent with momentum and Nesterov (first_order.h), written to
 * match torch.optim.SGD update for update. */
#include "gnrev/optim/first_order.h"

#include <stdlib.h>
#include <string.h>

#include "gnrev/core/array.h"
#include "gnrev/core/err.h"
#include "gnrev/optim/optim.h"

void gn_sgd_rule(const gn_deck *deck, double lr, bool first, size_t n, double *theta, double *g, double *buf) {
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

/* The momentum buffer, when momentum > 0. */
static int sgd_create(gn_opt *opt) {
  if (!(opt->deck->momentum > 0)) return GN_OK;
  double *buf = calloc(opt->model->nparams, sizeof(double));
  if (!buf) GN_FAIL(GN_ENOMEM, "sgd: out of memory for the momentum buffer (%zu parameters)", opt->model->nparams);
  opt->impl = buf;
  return GN_OK;
}

static int sgd_step(gn_opt *opt, double *theta, const gn_batch *batch, gn_step_info *info) {
  CHECK(gn_opt_gradient(opt, theta, batch, opt->delta, info));
  gn_sgd_rule(opt->deck, opt->deck->lr, !opt->has_momentum, opt->model->nparams, theta, opt->delta, opt->impl);
  if (opt->impl) opt->has_momentum = 1;
  opt->t += 1;
  return GN_OK;
}

static int sgd_arrays(gn_opt *opt, gn_opt_array *out, int cap) {
  if (!opt->impl || cap < 1) return 0;
  out[0] = (gn_opt_array){.name = "momentum_buffer", .data = opt->impl, .n = opt->model->nparams};
  return 1;
}

static void sgd_reset(gn_opt *opt) {
  if (opt->impl) memset(opt->impl, 0, opt->model->nparams * sizeof(double));
}

const gn_opt_ops gn_opt_sgd_ops = {
    .name = "sgd", .create = sgd_create, .step = sgd_step, .arrays = sgd_arrays, .reset = sgd_reset};
