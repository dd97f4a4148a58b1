/* memplan.h — what a run needs per rank, said before anything big is allocated, and refused
 * when it cannot fit. */
#ifndef GNREV_MEMPLAN_H
#define GNREV_MEMPLAN_H

#include <stddef.h>
#include <stdint.h>

#include "gnrev/input/deck.h"
#include "gnrev/core/par.h"

typedef struct {
  size_t data_node;     /* training + test sets, once per node (shared window) */
  size_t model_fixed;   /* C matrices and U */
  size_t params;        /* theta, gradient/direction, initial copy */
  size_t optimizer;     /* SGD momentum or Adam moments */
  size_t guard;         /* the divergence guard's two saved states (parameters and optimizer) */
  size_t batch;         /* batch rows, activations and model workspace */
  size_t gn;            /* GN sweep buffers and the distributed pseudo-inverse */
  size_t diagnostics;   /* NTK, CKA, GGN buffers */
  size_t per_rank;      /* total per rank, counting the node's data share */
  size_t available;     /* memory available per rank on this node (MemAvailable / ranks) */
} gn_memplan;

/* Local. The plan for the deck on par->size ranks, input width d, C classes and set sizes. */
void gn_memplan_compute(const gn_par *par, const gn_deck *deck, int64_t d, int C, int64_t n_train,
                        int64_t n_test, gn_memplan *plan);

/* Local. Human-readable table (malloc'ed). */
char *gn_memplan_format(const gn_memplan *plan);

/* Local. GN_ENOMEM with the figures when the plan exceeds the available memory. */
int gn_memplan_check(const gn_memplan *plan);

#endif
