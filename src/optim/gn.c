/* gn.c — the exact, tractable Gauss-Newton optimizer (deck method = 'gn'): the direction of the
 * backward sweep (gn_sweep.c), theta -= lr delta, and a record per update of what each
 * half-block's pseudo-inverse kept (/gn in run.h5). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "gnrev/core/array.h"
#include "gnrev/core/err.h"
#include "gnrev/optim/gn_sweep.h"
#include "gnrev/optim/optim.h"
#include "gnrev/core/real.h"

typedef struct {
  gn_sweep *sweep;
  int64_t cap;           /* rows the logits buffer holds */
  gn_real *logits;        /* the batch's logits at theta, from the sweep's forward */
  int nrec;              /* 2 series per half-block */
  char (*names)[32];     /* kept_bBBB_F, sigma_max_bBBB_F, kept_bBBB_G, ... */
  const char **name_ptrs;
  double *values;
} gn_state;

static int gn_create(gn_opt *opt) {
  gn_state *g = calloc(1, sizeof *g);
  opt->impl = g;
  if (!g) GN_FAIL(GN_ENOMEM, "gn: out of memory");
  CHECK(gn_sweep_create(opt->par, opt->model, opt->deck, &g->sweep));
  const int nhalf = 2 * opt->model->B;
  g->nrec = 2 * nhalf;
  g->names = malloc((size_t)g->nrec * sizeof *g->names);
  g->name_ptrs = malloc((size_t)g->nrec * sizeof *g->name_ptrs);
  g->values = malloc((size_t)g->nrec * sizeof *g->values);
  if (!g->names || !g->name_ptrs || !g->values) GN_FAIL(GN_ENOMEM, "gn: out of memory for the /gn record");
  for (int i = 0; i < nhalf; ++i) {
    snprintf(g->names[2 * i], sizeof g->names[0], "kept_b%03d_%s", i / 2, i % 2 ? "G" : "F");
    snprintf(g->names[2 * i + 1], sizeof g->names[0], "sigma_max_b%03d_%s", i / 2, i % 2 ? "G" : "F");
  }
  for (int i = 0; i < g->nrec; ++i) {
    g->name_ptrs[i] = g->names[i];
    g->values[i] = NAN;
  }
  return GN_OK;
}

static void gn_destroy(gn_opt *opt) {
  gn_state *g = opt->impl;
  if (!g) return;
  gn_sweep_free(g->sweep);
  free(g->logits);
  free(g->names);
  free(g->name_ptrs);
  free(g->values);
  free(g);
}

static int gn_step(gn_opt *opt, gn_real *theta, const gn_batch *bt, gn_step_info *info) {
  gn_state *g = opt->impl;
  if (bt->n > g->cap) {
    free(g->logits);
    g->logits = gn_alloc((size_t)(bt->n * opt->model->C));
    g->cap = g->logits ? bt->n : 0;
  }
  CHECK(gn_par_agree(opt->par, g->logits ? GN_OK : GN_RAISE(GN_ENOMEM, "gn: out of memory for the logits")));
  CHECK(gn_sweep_direction(g->sweep, theta, bt->n, bt->n_global, bt->X0, bt->y, g->logits, opt->delta));
  CHECK(gn_opt_batch_metrics(opt, bt, g->logits, info));
  const gn_sweep_stats *st = gn_sweep_last(g->sweep);
  for (int i = 0; i < st->nhalf; ++i) {
    g->values[2 * i] = (double)st->kept[i];
    g->values[2 * i + 1] = st->sigma_max[i];
  }
  return gn_opt_apply(opt, theta, opt->delta, 1.0);
}

static int gn_record(const gn_opt *opt, gn_opt_record *rec) {
  const gn_state *g = opt->impl;
  *rec = (gn_opt_record){.group = "/gn", .n = g->nrec, .names = g->name_ptrs, .values = g->values};
  return 1;
}

const gn_sweep_stats *gn_opt_sweep_stats(const gn_opt *opt) {
  return opt->ops == &gn_opt_gn_ops ? gn_sweep_last(((const gn_state *)opt->impl)->sweep) : NULL;
}

const gn_opt_ops gn_opt_gn_ops = {
    .name = "gn", .create = gn_create, .step = gn_step, .record = gn_record, .destroy = gn_destroy};
