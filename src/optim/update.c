/* update.c — the pieces of an update that the methods share (optim.h): the batch's loss before
 * the update, the gradient by backpropagation, and theta -= lr * scale * delta. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gnrev/core/array.h"
#include "gnrev/core/blas.h"
#include "gnrev/core/err.h"
#include "gnrev/core/shm.h"
#include "gnrev/model/backprop.h"
#include "gnrev/model/loss.h"
#include "gnrev/optim/optim.h"
#include "gnrev/core/real.h"

/* Per-rank buffers of the gradient: state, its cotangent and the logits (batch rows), and one
 * half-block of gradient on its way into the node-shared sum. */
typedef struct {
  int64_t cap;
  gn_real *X, *dX, *logits, *dlogits, *half;
} grad_work;

static void grad_work_free(grad_work *w) {
  free(w->X);
  free(w->dX);
  free(w->logits);
  free(w->dlogits);
  free(w->half);
  memset(w, 0, sizeof *w);
}

static int grad_work_reserve(grad_work *w, const gn_model *md, int64_t n) {
  if (n <= w->cap) return GN_OK;
  grad_work_free(w);
  w->X = gn_alloc((size_t)(n * md->d));
  w->dX = gn_alloc((size_t)(n * md->d));
  w->logits = gn_alloc((size_t)(n * md->C));
  w->dlogits = gn_alloc((size_t)(n * md->C));
  w->half = gn_alloc((size_t)md->hp * (size_t)md->m);
  if (!w->X || !w->dX || !w->logits || !w->dlogits || !w->half) {
    grad_work_free(w);
    GN_FAIL(GN_ENOMEM, "optim: out of memory for %lld batch rows and one half-block of gradient", (long long)n);
  }
  w->cap = n;
  return GN_OK;
}

int gn_opt_batch_metrics(const gn_opt *opt, const gn_batch *batch, const gn_real *logits, gn_step_info *info) {
  double loss = 0;
  int64_t correct = 0;
  gn_loss_eval(opt->deck->loss, batch->n, opt->model->C, logits, batch->y, &loss, &correct);
  double sums[2] = {loss, (double)correct};
  CHECK(gn_par_sum(opt->par, sums, 2));
  info->loss = sums[0] / (double)batch->n_global;
  info->acc = sums[1] / (double)batch->n_global;
  return GN_OK;
}

int gn_opt_gradient(gn_opt *opt, const gn_real *theta, const gn_batch *batch, gn_real *grad, gn_step_info *info) {
  const gn_model *md = opt->model;
  const int64_t n = batch->n;
  if (!opt->grad_work) {
    opt->grad_work = calloc(1, sizeof(grad_work));
    CHECK(gn_par_agree(opt->par, opt->grad_work ? GN_OK : GN_RAISE(GN_ENOMEM, "optim: out of memory")));
  }
  grad_work *w = opt->grad_work;
  CHECK(gn_par_agree(opt->par, grad_work_reserve(w, md, n > 0 ? n : 1)));
  if (n > 0) memcpy(w->X, batch->X0, (size_t)(n * md->d) * sizeof(gn_real));
  gn_model_forward(md, theta, n, w->X, w->logits);
  CHECK(gn_opt_batch_metrics(opt, batch, w->logits, info));
  if (!isfinite(info->loss)) GN_FAIL(GN_ENUMERIC, "the batch loss is not finite (%g): lower lr", info->loss);
  gn_loss_grad(opt->deck->loss, n, batch->n_global, md->C, w->logits, batch->y, w->dlogits);
  /* The state cotangent of the logits' cotangent: dX_B = dlogits U^T. */
  gn_gemm(CblasNoTrans, CblasTrans, n, md->d, md->C, 1.0, w->dlogits, md->C, md->U, md->C, 0.0, w->dX, md->d);
  return gn_backprop_sum(opt->par, md, theta, n, w->X, w->dX, grad, w->half);
}

void gn_opt_gradient_free(gn_opt *opt) {
  if (opt->grad_work) grad_work_free(opt->grad_work);
  free(opt->grad_work);
  opt->grad_work = NULL;
}

int gn_opt_zero(const gn_opt *opt, gn_real *shared, size_t n) {
  size_t lo, hi;
  gn_shm_slice(opt->par, n, sizeof(gn_real), &lo, &hi);
  memset(shared + lo, 0, (hi - lo) * sizeof(gn_real));
  return gn_shm_sync(opt->par);
}

int gn_opt_apply(gn_opt *opt, gn_real *theta, const gn_real *delta, double scale) {
  size_t lo, hi;
  gn_shm_slice(opt->par, opt->model->nparams, sizeof(gn_real), &lo, &hi);
  /* Each rank checks its slice; the verdict is agreed before any rank writes. */
  CHECK(gn_par_agree(opt->par, gn_all_finite(delta + lo, hi - lo) ? GN_OK : GN_RAISE(GN_ENUMERIC, "non-finite update")));
  const gn_real a = (gn_real)(opt->deck->lr * scale);
  for (size_t i = lo; i < hi; ++i) theta[i] -= a * delta[i];
  return gn_shm_sync(opt->par);
}
