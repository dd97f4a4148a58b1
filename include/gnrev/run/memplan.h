/* memplan.h — what a run needs per rank and per node, said before anything big is allocated, and
 * refused when it cannot fit. The figures are for the ranks the plan is made on (par). */
#ifndef GNREV_RUN_MEMPLAN_H
#define GNREV_RUN_MEMPLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gnrev/core/par.h"
#include "gnrev/input/deck.h"

/* Rows a rank evaluates at once; the batch buffers hold max(its batch rows, this). */
enum { GN_EVAL_ROWS = 128 };

typedef struct {
  /* once per node (node-shared memory) */
  size_t data;          /* training and test sets */
  size_t model_fixed;   /* C matrices and U */
  size_t params;        /* theta and the update (gradient or GN direction) */
  size_t theta0;        /* the diagnostics' copy of the initial parameters (and J^T v) */
  size_t optimizer;     /* SGD momentum or Adam moments */
  size_t guard;         /* the divergence guard's two saved states, split over the node's ranks */
  size_t node_shared;   /* their sum */
  /* per rank */
  size_t batch;         /* batch rows, the evaluation rows and the model workspace */
  size_t gradient;      /* one half-block of gradient on its way into node memory */
  size_t gn;            /* GN sweep buffers and the distributed pseudo-inverse */
  size_t diagnostics;   /* NTK, CKA, GGN buffers */
  size_t per_rank;      /* their sum */
  int ranks_per_node;   /* the largest node of the run */
  int nodes;
  size_t per_node;      /* node_shared + ranks_per_node * per_rank */
  size_t available;     /* memory available on this node now (MemAvailable) */
  bool planned;         /* sized for another job's layout (--plan), not the ranks of this one */
} gn_memplan;

/* Local. The plan for the deck on par's ranks and nodes, input width d, C classes and set sizes
 * (n_train trained on, n_pool training samples held, n_test). */
void gn_memplan_compute(const gn_par *par, const gn_deck *deck, int64_t d, int C, int64_t n_train,
                        int64_t n_pool, int64_t n_test, gn_memplan *plan);

/* Local. Human-readable table for --check (malloc'ed): a header saying it is sized for the ranks
 * --check runs on, then the blocks, ending with the line "  available on this node  <size>". */
char *gn_memplan_format(const gn_memplan *plan);

/* Local. GN_ENOMEM with the figures and the number of ranks per node that would fit when the plan
 * exceeds the available memory. */
int gn_memplan_check(const gn_memplan *plan);

#endif
