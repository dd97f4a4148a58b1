/* gn_sweep.h — the exact, tractable Gauss-Newton step of Buffelli et al. (docs/algorithm.md):
 * a backward sweep over the blocks that turns the output residual into per-half-block parameter
 * changes with the distributed pseudo-inverse, all blocks using the weights from before the step. */
#ifndef GNREV_OPTIM_GN_SWEEP_H
#define GNREV_OPTIM_GN_SWEEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gnrev/input/deck.h"
#include "gnrev/model/model.h"
#include "gnrev/core/par.h"
#include "gnrev/linalg/pinv.h"
#include "gnrev/core/real.h"

/* What one step did, per half-block (index 2b+s), plus phase times on this rank (seconds). */
typedef struct {
  int nhalf;               /* 2B */
  int64_t *kept;           /* singular values kept per half-block */
  double *sigma_max;       /* largest singular value of A per half-block */
  int tall;                /* the n > hp least-squares route was taken */
  double t_forward, t_sweep, t_gram, t_eig, t_apply, t_comm;
  double flops;            /* this rank's share of the step's matrix products (eigensolves not counted) */
} gn_sweep_stats;

typedef struct gn_sweep gn_sweep;

/* Collective on par->comm. State for GN steps on batches of n_global rows (pseudo-inverse
 * contexts are made per batch size on first use and kept). */
int gn_sweep_create(const gn_par *par, const gn_model *model, const gn_deck *deck, gn_sweep **gn);
void gn_sweep_free(gn_sweep *gn);

/* Local. Bytes a rank keeps from the forward for the sweep (every half-block's features, the
 * input of a linear one) for `rows` local rows. */
size_t gn_sweep_kept_bytes(const gn_model *model, int64_t rows);

/* Local. Whether the forward keeps them: keep_features yes / no, or with auto when the node's ranks'
 * kept features take at most a quarter of the node's available memory (0: unknown, keep). */
bool gn_sweep_keeps(const gn_deck *deck, const gn_model *model, int64_t rows, int ranks_per_node, size_t available);

/* Local. The per-half-block record of the last step (valid until the next call). */
const gn_sweep_stats *gn_sweep_last(const gn_sweep *gn);

/* Collective on par->comm. Computes the GN direction delta (nparams, replicated) for the batch
 * whose local rows are X0 (n x d, not modified) and labels y, n_global rows in all:
 * theta_new = theta - lr * delta. On return logits (n x C) hold the pre-update outputs.
 * A non-finite residual or update is GN_ENUMERIC naming the half-block. */
int gn_sweep_direction(gn_sweep *gn, const gn_real *theta, int64_t n, int64_t n_global, const gn_real *X0,
                    const int32_t *y, gn_real *logits, gn_real *delta);

/* Local. The sweep's record of the last step of a gn optimizer (optim.h); NULL for other methods. */
struct gn_opt;
const gn_sweep_stats *gn_opt_sweep_stats(const struct gn_opt *opt);

#endif
