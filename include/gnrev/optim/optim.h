/* optim.h — the one optimizer interface: every method of &optim (sgd, adam, gn, gn with
 * gn_reference, gn_vivit) is created by name and stepped, checkpointed and recorded the same way,
 * so the training loop never branches on the method.
 *
 * Each method is a small file in src/optim/ that fills a gn_opt_ops table (create / step / state /
 * destroy, in the manner of PETSc's KSP implementations); optim.c holds the registry and what the
 * methods share (the batch's loss before the update, the gradient by backpropagation, the update
 * theta -= lr * scale * delta with its finiteness check). */
#ifndef GNREV_OPTIM_OPTIM_H
#define GNREV_OPTIM_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "gnrev/core/par.h"
#include "gnrev/core/shm.h"
#include "gnrev/input/deck.h"
#include "gnrev/model/model.h"
#include "gnrev/core/real.h"

/* The batch of one update, as this rank holds it. */
typedef struct {
  int64_t step;        /* updates taken before this one: sub of the MC and bootstrap streams */
  int64_t n;           /* this rank's rows (its gn_par_rows(n_global) share) */
  int64_t n_global;    /* rows of the batch over all ranks */
  const gn_real *X0;    /* n x d inputs, not modified */
  const int32_t *y;    /* n labels */
} gn_batch;

/* What a step measured on the way: the batch at theta before the update. */
typedef struct {
  double loss;         /* mean loss of the batch */
  double acc;          /* fraction of the batch classified right */
} gn_step_info;

/* A named state array of the optimizer (checkpointed as /optimizer/<name>). */
typedef struct {
  const char *name;
  gn_real *data;
  size_t n;
} gn_opt_array;

/* The per-update record a method adds to run.h5 (one value per series of `group`), e.g. /gn. */
typedef struct {
  const char *group;         /* "/gn", "/vivit" */
  int n;                     /* series */
  const char *const *names;  /* n series names */
  const double *values;      /* n values of the last update */
} gn_opt_record;

typedef struct gn_opt gn_opt;

/* What one method implements. */
typedef struct {
  const char *name;          /* as recorded in checkpoints ("sgd", "adam", "gn", "gn_vivit") */
  /* Collective. Allocates the method's state in opt->impl (may leave it NULL). */
  int (*create)(gn_opt *opt);
  /* Collective. One update of theta on the batch, and the batch's loss before it (info). The
   * gradient or direction goes through opt->delta; methods whose update is theta -= lr * scale *
   * delta finish with gn_opt_apply. */
  int (*step)(gn_opt *opt, gn_real *theta, const gn_batch *batch, gn_step_info *info);
  /* Local. The state arrays (checkpoints); NULL means none. */
  int (*arrays)(gn_opt *opt, gn_opt_array *out, int cap);
  /* Local. The last update's record; NULL means none. */
  int (*record)(const gn_opt *opt, gn_opt_record *rec);
  /* Collective. Frees opt->impl. NULL: plain free. */
  void (*destroy)(gn_opt *opt);
} gn_opt_ops;

struct gn_opt {
  const gn_opt_ops *ops;
  const gn_par *par;
  const gn_deck *deck;
  const gn_model *model;
  int64_t t;             /* updates taken by a first-order rule (Adam's bias correction); 0 for GN */
  int64_t has_momentum;  /* SGD: the momentum buffer holds a value (PyTorch starts it at the first
                          * gradient); 0 otherwise */
  gn_real *delta;         /* nparams, node-shared: the gradient or direction of the current step */
  gn_shm delta_mem;
  void *impl;            /* the method's own state */
  void *grad_work;       /* batch-row buffers of gn_opt_gradient, made on first use */
};

/* Collective on par->comm. The optimizer the deck's &optim names (method, gn_reference), for the
 * model; par, deck and model must outlive it. The model's workspace must hold the batch rows. */
int gn_opt_create(const gn_par *par, const gn_deck *deck, const gn_model *model, gn_opt **opt);
/* Collective. NULL is a no-op. */
void gn_opt_free(gn_opt *opt);

/* Local. The method's name (what checkpoints record as `optimizer`). */
const char *gn_opt_name(const gn_opt *opt);

/* Collective on par->comm. One update of theta (nparams, replicated) on the batch; info gets the
 * batch's loss and accuracy at theta before the update. A non-finite loss, residual or update is
 * GN_ENUMERIC and leaves theta as it was; every error message starts with "step <step>: ". */
int gn_opt_step(gn_opt *opt, gn_real *theta, const gn_batch *batch, gn_step_info *info);

/* Local. The state arrays to checkpoint (at most cap; returns how many). The counters opt->t and
 * opt->has_momentum are checkpointed beside them. */
int gn_opt_arrays(gn_opt *opt, gn_opt_array *out, int cap);

/* Local. The last update's record for run.h5; returns 0 when the method keeps none. */
int gn_opt_last_record(const gn_opt *opt, gn_opt_record *rec);

/* Collective on par->node. Back to the state of a fresh start (counters and arrays zeroed). */
int gn_opt_reset(gn_opt *opt);

/* ---- what the methods share (src/optim/update.c) --------------------------------------------- */

/* Collective. info = the batch's mean loss and accuracy from this rank's logits (n x C). */
int gn_opt_batch_metrics(const gn_opt *opt, const gn_batch *batch, const gn_real *logits, gn_step_info *info);

/* Collective. grad (nparams, node-shared) = gradient of the batch's mean loss at theta by one forward
 * and one backpropagation, and info the batch's loss before the update; a non-finite loss is
 * GN_ENUMERIC. */
int gn_opt_gradient(gn_opt *opt, const gn_real *theta, const gn_batch *batch, gn_real *grad, gn_step_info *info);

/* Collective on par->node. Zeroes n doubles of node-shared memory (each rank its slice). */
int gn_opt_zero(const gn_opt *opt, gn_real *shared, size_t n);

/* Local. Frees the buffers gn_opt_gradient made (gn_opt_free calls it). */
void gn_opt_gradient_free(gn_opt *opt);

/* Collective. theta -= lr * scale * delta (both node-shared; each rank of a node its slice, then a
 * gn_shm_sync) after checking that delta is finite (GN_ENUMERIC otherwise, theta untouched). */
int gn_opt_apply(gn_opt *opt, gn_real *theta, const gn_real *delta, double scale);

/* The methods, for the registry in optim.c. */
extern const gn_opt_ops gn_opt_sgd_ops, gn_opt_adam_ops, gn_opt_gn_ops, gn_opt_gn_reference_ops,
    gn_opt_gn_vivit_ops;

#endif
