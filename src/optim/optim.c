/* optim.c — the optimizer registry and the interface's entry points (optim.h); what the methods
 * share lives in update.c. */
#include "gnrev/optim/optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gnrev/core/array.h"
#include "gnrev/core/err.h"
#include "gnrev/core/shm.h"
#include "gnrev/core/real.h"

/* The method of a deck: &optim method, with gn_reference choosing the Moore-Penrose GN step. */
static const gn_opt_ops *ops_for(const gn_deck *deck) {
  switch (deck->method) {
    case GN_OPT_SGD: return &gn_opt_sgd_ops;
    case GN_OPT_ADAM: return &gn_opt_adam_ops;
    case GN_OPT_GN: return deck->gn_reference ? &gn_opt_gn_reference_ops : &gn_opt_gn_ops;
    case GN_OPT_GN_VIVIT: return &gn_opt_gn_vivit_ops;
  }
  return NULL;
}

int gn_opt_create(const gn_par *par, const gn_deck *deck, const gn_model *model, gn_opt **out) {
  *out = NULL;
  const gn_opt_ops *ops = ops_for(deck);
  if (!ops) GN_FAIL(GN_EINTERNAL, "optim: no implementation of method %d", (int)deck->method);
  gn_opt *opt = calloc(1, sizeof *opt);
  int status = opt ? GN_OK : GN_RAISE(GN_ENOMEM, "optim: out of memory");
  CHECK(gn_par_agree(par, status));
  opt->delta_mem.win = MPI_WIN_NULL;
  status = gn_par_agree(par, gn_shm_alloc(par, model->nparams * sizeof(gn_real), "the update", &opt->delta_mem));
  if (status == GN_OK) {
    opt->delta = opt->delta_mem.base;
    opt->ops = ops;
    opt->par = par;
    opt->deck = deck;
    opt->model = model;
    if (ops->create) status = ops->create(opt);
  }
  status = gn_par_agree(par, status);
  if (status != GN_OK) {
    gn_opt_free(opt);
    return status;
  }
  *out = opt;
  return GN_OK;
}

void gn_opt_free(gn_opt *opt) {
  if (!opt) return;
  if (opt->ops && opt->ops->destroy) opt->ops->destroy(opt);
  else free(opt->impl);
  gn_opt_gradient_free(opt);
  gn_shm_free(&opt->delta_mem);
  free(opt);
}

const char *gn_opt_name(const gn_opt *opt) { return opt->ops->name; }

int gn_opt_step(gn_opt *opt, gn_real *theta, const gn_batch *batch, gn_step_info *info) {
  info->loss = info->acc = NAN;
  int st = opt->ops->step(opt, theta, batch, info);
  if (st != GN_OK) {
    char msg[2048];
    snprintf(msg, sizeof msg, "step %lld: %s", (long long)batch->step, gn_error_message());
    gn_error_set_message(msg, gn_error_traceback());
  }
  return st;
}

int gn_opt_arrays(gn_opt *opt, gn_opt_array *out, int cap) {
  return opt->ops->arrays ? opt->ops->arrays(opt, out, cap) : 0;
}

int gn_opt_last_record(const gn_opt *opt, gn_opt_record *rec) {
  return opt->ops->record ? opt->ops->record(opt, rec) : 0;
}

int gn_opt_reset(gn_opt *opt) {
  opt->t = 0;
  opt->has_momentum = 0;
  gn_opt_array arrays[8];
  const int k = gn_opt_arrays(opt, arrays, 8);
  for (int i = 0; i < k; ++i) CHECK(gn_opt_zero(opt, arrays[i].data, arrays[i].n));
  return GN_OK;
}

