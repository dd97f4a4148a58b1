/* memplan.c — an upper estimate of memory per rank and per node from the shapes alone (no
 * allocation), so an impossible plan is refused in seconds instead of dying in the middle of a
 * queue slot. Node-shared blocks (shm.h) count once per node, everything else once per rank. */
#include "gnrev/run/memplan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gnrev/core/err.h"
#include "gnrev/core/real.h"
#include "gnrev/core/sysmem.h"
#include "gnrev/diag/diag_plan.h"
#include "gnrev/linalg/pinv.h"

/* Bytes as size_t, saturating: absurd decks (blocks = 10**9) give huge figures, not overflow. */
static size_t bytes(double b) { return b > 1e18 ? (size_t)1e18 : (size_t)b; }

void gn_memplan_compute(const gn_par *par, const gn_deck *deck, int64_t d, int C, int64_t n_train,
                        int64_t n_pool, int64_t n_test, gn_memplan *p) {
  memset(p, 0, sizeof *p);
  const double D = sizeof(gn_real); /* model, data batches, optimizer: gn_real (real.h) */
  const double m = (double)(d / 2), h = (double)deck->hidden, hp = h + (deck->bias ? 1 : 0), B = (double)deck->blocks;
  const double nparams = 2.0 * B * hp * m;
  const int64_t bs = deck->batch_size > 0 && deck->batch_size < n_train ? deck->batch_size : n_train;
  const double rows = ceil((double)bs / par->size), eval_rows = fmax(rows, GN_EVAL_ROWS);
  const bool gn = deck->method == GN_OPT_GN || deck->method == GN_OPT_GN_VIVIT;
  const bool first_order = deck->method == GN_OPT_SGD || deck->method == GN_OPT_ADAM;

  p->data = bytes((double)(n_pool + n_test) * ((double)d * sizeof(float) + sizeof(int32_t)));
  p->model_fixed = bytes((2.0 * B * m * h + (double)d * C) * D);
  p->params = bytes(2.0 * nparams * D);
  p->theta0 = gn_diag_shared_bytes(deck, d);
  p->optimizer = deck->method == GN_OPT_ADAM ? bytes(2 * nparams * D)
                 : (deck->method == GN_OPT_SGD && deck->momentum > 0) ? bytes(nparams * D) : 0;
  /* the divergence guard's two saved states, each rank holding its slice: once per node in all */
  p->guard = bytes(2.0 * (nparams * D + (double)p->optimizer));
  p->node_shared = p->data + p->model_fixed + p->params + p->theta0 + p->optimizer + p->guard;

  /* batch inputs, state, logits; the model workspace (features, feature-space tangents, C W) */
  p->batch = bytes((3 * eval_rows * d + 2 * eval_rows * C) * D + (eval_rows * (hp + h) + 2 * m * m) * D);
  /* first-order methods, the Moore-Penrose and ViViT steps: one half-block of gradient */
  if (first_order || deck->gn_reference || deck->method == GN_OPT_GN_VIVIT) p->gradient = bytes(hp * m * D);
  if (gn)
    p->gn = bytes((3 * rows * d + 2 * rows * hp + 3 * rows * m + rows * C) * D) +
            gn_pinv_bytes(par->size, bs, (int64_t)hp, (int64_t)m);
  p->diagnostics = gn_diag_bytes(par, deck, d, C);
  p->per_rank = p->batch + p->gradient + p->gn + p->diagnostics;

  int sizes[2] = {par->node_size, par->nnodes};
  p->ranks_per_node = sizes[0] > 0 ? sizes[0] : 1;
  p->nodes = sizes[1] > 0 ? sizes[1] : 1;
  p->per_node = bytes((double)p->node_shared + (double)p->ranks_per_node * (double)p->per_rank);
  p->available = gn_sysmem_available();
}

char *gn_memplan_format(const gn_memplan *p) {
  struct {
    const char *what;
    size_t bytes;
  } shared[] = {{"data", p->data}, {"fixed projections C, U", p->model_fixed},
                {"parameters and update", p->params}, {"diagnostics (theta0, J^T v)", p->theta0},
                {"optimizer state", p->optimizer}, {"divergence guard: two saved states", p->guard},
                {"total once per node", p->node_shared}},
    rank[] = {{"batch and model workspace", p->batch}, {"one half-block of gradient", p->gradient},
              {"GN sweep and pseudo-inverse", p->gn}, {"diagnostics", p->diagnostics},
              {"total per rank", p->per_rank}};
  const size_t cap = 4096;
  char *out = malloc(cap);
  if (!out) return NULL;
  char b[32];
  /* The plan is sized for the ranks of this process's MPI job, which for --check is often not the
   * layout of the real run: the header says so, once. */
  size_t used = (size_t)snprintf(out, cap,
                                 "memory for %d rank%s on %d node%s (%d per node), %s precision: %s\n"
                                 "  node-shared:\n",
                                 p->ranks_per_node * p->nodes, p->ranks_per_node * p->nodes == 1 ? "" : "s",
                                 p->nodes, p->nodes == 1 ? "" : "s", p->ranks_per_node, GN_PRECISION_NAME,
                                 p->planned ? "sized for the layout --plan gave"
                                            : "sized for the ranks this --check runs on; run --check on the real "
                                              "run's ranks and nodes, or give their layout with --plan, to size "
                                              "that run");
  for (size_t i = 0; i < sizeof shared / sizeof *shared; ++i) {
    gn_sysmem_str(shared[i].bytes, b, sizeof b);
    used += (size_t)snprintf(out + used, cap - used, "    %-34s %12s\n", shared[i].what, b);
  }
  used += (size_t)snprintf(out + used, cap - used, "  per rank:\n");
  for (size_t i = 0; i < sizeof rank / sizeof *rank; ++i) {
    gn_sysmem_str(rank[i].bytes, b, sizeof b);
    used += (size_t)snprintf(out + used, cap - used, "    %-34s %12s\n", rank[i].what, b);
  }
  gn_sysmem_str(p->per_node, b, sizeof b);
  used += (size_t)snprintf(out + used, cap - used, "  total per node  %s\n", b);
  gn_sysmem_str(p->available, b, sizeof b);
  snprintf(out + used, cap - used, "  available on this node  %s\n", b);
  return out;
}

int gn_memplan_check(const gn_memplan *p) {
  if (p->available == 0 || p->per_node <= p->available) return GN_OK;
  char need[32], have[32], shared[32], rank[32];
  gn_sysmem_str(p->per_node, need, sizeof need);
  gn_sysmem_str(p->available, have, sizeof have);
  gn_sysmem_str(p->node_shared, shared, sizeof shared);
  gn_sysmem_str(p->per_rank, rank, sizeof rank);
  const double fit = p->available > p->node_shared && p->per_rank > 0
                         ? floor((double)(p->available - p->node_shared) / (double)p->per_rank) : 0;
  if (fit >= 1)
    GN_FAIL(GN_ENOMEM,
            "this run needs about %s per node (%s shared by the node's ranks + %d ranks x %s) but only %s is "
            "available on this node: at most %.0f ranks per node fit; use more nodes with fewer ranks each, or "
            "a smaller batch_size, hidden or blocks",
            need, shared, p->ranks_per_node, rank, have, fit);
  GN_FAIL(GN_ENOMEM,
          "this run needs about %s per node (%s shared by the node's ranks + %d ranks x %s) but only %s is "
          "available on this node: not even one rank per node fits; use a smaller batch_size, hidden or blocks",
          need, shared, p->ranks_per_node, rank, have);
}
