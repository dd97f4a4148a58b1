/* gn_update.h — the exact, tractable Gauss-Newton step of Buffelli et al. (DESIGN.md section 3):
 * a backward sweep over the blocks that turns the output residual into per-half-block parameter
 * changes with the distributed pseudo-inverse, all blocks using the weights from before the step. */
#ifndef GNREV_GN_UPDATE_H
#define GNREV_GN_UPDATE_H

#include <stdint.h>

#include "gnrev/deck.h"
#include "gnrev/model.h"
#include "gnrev/par.h"
#include "gnrev/pinv.h"

/* What one step did, per half-block (index 2b+s), plus phase times on this rank (seconds). */
typedef struct {
  int nhalf;               /* 2B */
  int64_t *kept;           /* singular values kept per half-block */
  double *sigma_max;       /* largest singular value of A per half-block */
  int tall;                /* the n > hp least-squares route was taken */
  double t_forward, t_sweep, t_gram, t_eig, t_apply, t_comm;
} gn_gn_stats;

typedef struct gn_gn gn_gn;

/* Collective on par->comm. State for GN steps on batches of n_global rows (pseudo-inverse
 * contexts are made per batch size on first use and kept). */
int gn_gn_create(const gn_par *par, const gn_model *model, const gn_deck *deck, gn_gn **gn);
void gn_gn_free(gn_gn *gn);

/* Local. The per-half-block record of the last step (valid until the next call). */
const gn_gn_stats *gn_gn_last(const gn_gn *gn);

/* Collective on par->comm. Computes the GN direction delta (nparams, replicated) for the batch
 * whose local rows are X0 (n x d, not modified) and labels y, n_global rows in all:
 * theta_new = theta - lr * delta. On return logits (n x C) hold the pre-update outputs.
 * A non-finite residual or update is GN_ENUMERIC naming the half-block. */
int gn_gn_direction(gn_gn *gn, const double *theta, int64_t n, int64_t n_global, const double *X0,
                    const int32_t *y, double *logits, double *delta);

#endif
