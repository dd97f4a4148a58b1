/* optim.c — SGD with momentum/Nesterov and Adam, written to match PyTorch update for update, so
 * runs can be compared with the reference code's baselines. */
#include "gnrev/optim/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gnrev/core/err.h"

int gn_optim_create(const gn_deck *deck, size_t n, gn_optim *opt) {
  memset(opt, 0, sizeof *opt);
  opt->method = deck->method;
  opt->n = n;
  if (deck->method == GN_OPT_SGD && deck->momentum > 0) {
    opt->buf1 = calloc(n, sizeof(double));
    CHECK_ALLOC(opt->buf1);
  } else if (deck->method == GN_OPT_ADAM) {
    opt->buf1 = calloc(n, sizeof(double));
    opt->buf2 = calloc(n, sizeof(double));
    if (!opt->buf1 || !opt->buf2) {
      gn_optim_free(opt);
      GN_FAIL(GN_ENOMEM, "out of memory for Adam state (%zu parameters)", n);
    }
  }
  return GN_OK;
}

void gn_optim_free(gn_optim *opt) {
  free(opt->buf1);
  free(opt->buf2);
  opt->buf1 = opt->buf2 = NULL;
}

static void sgd_step(gn_optim *opt, const gn_deck *deck, double lr, double *theta, double *g) {
  const size_t n = opt->n;
  const double wd = deck->weight_decay, mu = deck->momentum;
  if (wd != 0)
    for (size_t i = 0; i < n; ++i) g[i] += wd * theta[i];
  if (mu > 0) {
    double *buf = opt->buf1;
    if (!opt->has_buf1) {
      memcpy(buf, g, n * sizeof *g);
      opt->has_buf1 = 1;
    } else {
      for (size_t i = 0; i < n; ++i) buf[i] = mu * buf[i] + g[i];
    }
    if (deck->nesterov)
      for (size_t i = 0; i < n; ++i) g[i] += mu * buf[i];
    else
      memcpy(g, buf, n * sizeof *g);
  }
  for (size_t i = 0; i < n; ++i) theta[i] -= lr * g[i];
}

/* torch.optim.Adam (foreach=False, amsgrad=False): denom = sqrt(v)/sqrt(bc2) + eps,
 * theta -= (lr/bc1) m/denom. */
static void adam_step(gn_optim *opt, const gn_deck *deck, double lr, double *theta, double *g) {
  const size_t n = opt->n;
  const double b1 = deck->beta1, b2 = deck->beta2, eps = deck->eps, wd = deck->weight_decay;
  opt->t += 1;
  const double bc1 = 1.0 - pow(b1, (double)opt->t);
  const double bc2 = 1.0 - pow(b2, (double)opt->t);
  const double step_size = lr / bc1, sqrt_bc2 = sqrt(bc2);
  double *m = opt->buf1, *v = opt->buf2;
  for (size_t i = 0; i < n; ++i) {
    double gi = g[i] + wd * theta[i];
    m[i] += (gi - m[i]) * (1.0 - b1);
    v[i] = v[i] * b2 + (1.0 - b2) * gi * gi;
    double denom = sqrt(v[i]) / sqrt_bc2 + eps;
    theta[i] -= step_size * m[i] / denom;
  }
}

void gn_optim_step(gn_optim *opt, const gn_deck *deck, double lr, double *theta, double *grad) {
  if (opt->method == GN_OPT_ADAM)
    adam_step(opt, deck, lr, theta, grad);
  else
    sgd_step(opt, deck, lr, theta, grad);
  if (opt->method != GN_OPT_ADAM) opt->t += 1;
}

int gn_optim_state(gn_optim *opt, const char *names[2], double *arrays[2]) {
  int k = 0;
  if (opt->method == GN_OPT_SGD && opt->buf1) {
    names[k] = "momentum_buffer";
    arrays[k++] = opt->buf1;
  } else if (opt->method == GN_OPT_ADAM) {
    names[k] = "exp_avg";
    arrays[k++] = opt->buf1;
    names[k] = "exp_avg_sq";
    arrays[k++] = opt->buf2;
  }
  return k;
}
