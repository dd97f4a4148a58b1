/* memplan.c — an upper estimate of per-rank memory from the shapes alone (no allocation), so an
 * impossible plan is refused in seconds instead of dying in the middle of a queue slot. */
#include "gnrev/run/memplan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gnrev/core/err.h"
#include "gnrev/core/sysmem.h"
#include "gnrev/diag/diag_plan.h"
#include "gnrev/linalg/pinv.h"

void gn_memplan_compute(const gn_par *par, const gn_deck *deck, int64_t d, int C, int64_t n_train,
                        int64_t n_test, gn_memplan *p) {
  memset(p, 0, sizeof *p);
  const size_t D = sizeof(double);
  const int64_t m = d / 2, h = deck->hidden, hp = h + (deck->bias ? 1 : 0), B = deck->blocks;
  /* Products in double so that absurd decks (blocks = 10**9) give huge figures, not overflow. */
  const double np_d = 2.0 * (double)B * (double)hp * (double)m;
  const size_t nparams = np_d > 1e15 ? (size_t)1e15 : (size_t)np_d;
  const int64_t bs = deck->batch_size > 0 && deck->batch_size < n_train ? deck->batch_size : n_train;
  const int64_t rows = (bs + par->size - 1) / par->size;
  const int64_t eval_rows = rows > 256 ? rows : 256;
  p->data_node = (size_t)(n_train + n_test) * ((size_t)d * sizeof(float) + sizeof(int32_t));
  p->model_fixed = (size_t)fmin(1e18, (2.0 * (double)B * (double)m * (double)h + (double)(d * C)) * (double)D);
  p->params = (size_t)fmin(1e18, 3.0 * (double)nparams * (double)D);
  p->optimizer = deck->method == GN_OPT_ADAM ? 2 * nparams * D
                 : (deck->method == GN_OPT_SGD && deck->momentum > 0) ? nparams * D : 0;
  p->guard = (size_t)fmin(1e18, 2.0 * ((double)nparams * (double)D + (double)p->optimizer));
  /* batch in/out, gradients, logits, and the model workspace (features + pre-activations) */
  p->batch = (size_t)(3 * eval_rows * d + 2 * eval_rows * C) * D + (size_t)(eval_rows * (hp + h + 4 * m)) * D;
  if (deck->method == GN_OPT_GN || deck->method == GN_OPT_GN_VIVIT || deck->gn_reference)
    p->gn = (size_t)(3 * rows * d + rows * hp + 3 * rows * m + rows * C) * D +
            gn_pinv_bytes(par->size, bs, hp, m);
  p->diagnostics = gn_diag_bytes(par, deck, d, C);
  p->per_rank = p->data_node / (size_t)(par->node_size > 0 ? par->node_size : 1) + p->model_fixed +
                p->params + p->optimizer + p->guard + p->batch + p->gn + p->diagnostics;
  p->available = gn_sysmem_available() / (size_t)(par->node_size > 0 ? par->node_size : 1);
}

char *gn_memplan_format(const gn_memplan *p) {
  struct {
    const char *what;
    size_t bytes;
  } rows[] = {{"data (per node, shared)", p->data_node}, {"fixed projections C, U", p->model_fixed},
              {"parameters, update, initial copy", p->params}, {"optimizer state", p->optimizer},
              {"divergence guard: two saved states", p->guard},
              {"batch and model workspace", p->batch}, {"GN sweep and pseudo-inverse", p->gn},
              {"diagnostics", p->diagnostics}, {"total per rank", p->per_rank},
              {"available per rank", p->available}};
  size_t cap = 2048;
  char *out = malloc(cap);
  if (!out) return NULL;
  size_t used = (size_t)snprintf(out, cap, "memory per rank:\n");
  for (size_t i = 0; i < sizeof rows / sizeof *rows; ++i) {
    char b[32];
    gn_sysmem_str(rows[i].bytes, b, sizeof b);
    used += (size_t)snprintf(out + used, cap - used, "  %-34s %12s\n", rows[i].what, b);
  }
  return out;
}

int gn_memplan_check(const gn_memplan *p) {
  if (p->available == 0 || p->per_rank <= p->available) return GN_OK;
  char need[32], have[32];
  gn_sysmem_str(p->per_rank, need, sizeof need);
  gn_sysmem_str(p->available, have, sizeof have);
  GN_FAIL(GN_ENOMEM,
          "this run needs about %s per rank but only %s is available per rank on this node; "
          "use more nodes (fewer ranks per node), a smaller batch_size, hidden or blocks",
          need, have);
}
