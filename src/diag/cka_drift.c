/* cka_drift.c — linear CKA (cka.c) of the d-wide state after every half-block against its step-0
 * value on a probe set (drift.h, /cka of run.h5). The step-0 states are recomputed from theta0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gnrev/core/array.h"
#include "gnrev/core/err.h"
#include "gnrev/diag/cka.h"
#include "gnrev/diag/drift.h"
#include "gnrev/diag/probe.h"
#include "gnrev/diag/table.h"
#include "gnrev/core/real.h"

struct gn_cka_drift {
  gn_diag_ctx ctx;
  gn_probe probe;
  int64_t last;
  gn_real *S;            /* the state being propagated, probe.nrows x d */
  gn_cka_ref *ref;      /* 2B step-0 states: after F, then after G, of each block */
  gn_diag_table value;
};

/* Local. S (n x d) goes through half-block (b, s) in place, in chunks the model workspace holds:
 * after F the state is (y1, x2), after G (y1, y2). */
static void half_step(const gn_model *md, const gn_real *theta, int b, int s, int64_t n, gn_real *S) {
  const int64_t d = md->d, m = md->m, chunk = md->nmax;
  for (int64_t off = 0; off < n; off += chunk) {
    const int64_t k = n - off < chunk ? n - off : chunk;
    gn_real *row = S + off * d;
    if (s == 0)
      gn_model_half_forward(md, theta, b, 0, k, row + m, d, 1.0, row, d);
    else
      gn_model_half_forward(md, theta, b, 1, k, row, d, 1.0, row + m, d);
  }
}

/* Collective. The step-0 states from theta0. */
static int baseline(gn_cka_drift *cd) {
  const gn_diag_ctx *c = &cd->ctx;
  const gn_model *md = c->model;
  const int nh = 2 * md->B;
  for (int k = 0; k < nh; ++k) gn_cka_ref_free(&cd->ref[k]);
  memcpy(cd->S, cd->probe.X, (size_t)(cd->probe.nrows * md->d) * sizeof(gn_real));
  for (int k = 0; k < nh; ++k) {
    half_step(md, c->theta0, k / 2, k % 2, cd->probe.nrows, cd->S);
    CHECK(gn_cka_ref_create(c->par, cd->probe.nrows, cd->probe.p, md->d, cd->S, md->d, &cd->ref[k]));
  }
  return GN_OK;
}

int gn_cka_drift_create(const gn_diag_ctx *ctx, const gn_dataset *train, gn_cka_drift **out) {
  *out = NULL;
  gn_cka_drift *cd = calloc(1, sizeof *cd);
  CHECK(gn_par_agree(ctx->par, cd ? GN_OK : GN_RAISE(GN_ENOMEM, "out of memory for the CKA diagnostic")));
  cd->ctx = *ctx;
  cd->last = -1;
  const gn_model *md = ctx->model;
  const int nh = 2 * md->B;
  gn_diag_table_init(&cd->value, "/cka/value", nh,
                     "linear CKA between the d-wide state after each half-block at step 0 and at this snapshot, on the CKA probe set; "
                     "column 2b: after F of block b (y1, x2), column 2b+1: after G (y1, y2)", "1", "snapshot,half_block");
  const gn_deck *dk = ctx->deck;
  const int64_t pool = dk->cka_probe == GN_PROBE_RANDOM ? train->n_pool : train->n;
  const int64_t p = dk->cka_samples < pool ? dk->cka_samples : pool;
  int status = GN_OK;
  CHECK_GOTO(gn_probe_make(ctx->par, train, p, dk->cka_probe, gn_probe_seed(dk), "cka", &cd->probe));
  cd->S = gn_alloc((size_t)(cd->probe.nrows * md->d));
  cd->ref = calloc((size_t)nh, sizeof *cd->ref);
  CHECK_GOTO(gn_par_agree(ctx->par, cd->S && cd->ref ? GN_OK : GN_RAISE(GN_ENOMEM, "out of memory for the CKA state")));
  CHECK_GOTO(baseline(cd));
  char names[4096];
  size_t used = 0;
  for (int k = 0; k < nh && used < sizeof names; ++k)
    used += (size_t)snprintf(names + used, sizeof names - used, "%sblock_%03d/%s", k ? "," : "", k / 2, k % 2 ? "G" : "F");
  CHECK_GOTO(gn_h5_attr_str(ctx->run, "/cka", "half_blocks", names));
  CHECK_GOTO(gn_h5_attr_i64(ctx->run, "/cka", "samples", p));
  CHECK_GOTO(gn_h5_attr_str(ctx->run, "/cka", "probe", dk->cka_probe == GN_PROBE_RANDOM
                                                         ? "`samples` training samples drawn at random (probe_index)"
                                                         : "the first `samples` training samples"));
  CHECK_GOTO(gn_h5_write_i64(ctx->run, "/cka/probe_index", 1, &p, cd->probe.index));
  CHECK_GOTO(gn_h5_describe(ctx->run, "/cka/probe_index", "the training samples of the CKA probe, in probe order",
                            "1", "sample"));
  *out = cd;
  return GN_OK;
fail:
  gn_cka_drift_free(cd);
  return status;
}

void gn_cka_drift_free(gn_cka_drift *cd) {
  if (!cd) return;
  if (cd->ref)
    for (int k = 0; k < 2 * cd->ctx.model->B; ++k) gn_cka_ref_free(&cd->ref[k]);
  free(cd->ref);
  free(cd->S);
  gn_probe_free(&cd->probe);
  gn_diag_table_free(&cd->value);
  free(cd);
}

int64_t gn_cka_drift_last(const gn_cka_drift *cd) { return cd->last; }

void gn_cka_drift_shape(const gn_cka_drift *cd, int64_t *rows, int64_t *cols) {
  *rows = cd->value.rows;
  *cols = cd->value.cols;
}

int gn_cka_drift_snapshot(gn_cka_drift *cd, int64_t step, const gn_real *theta) {
  const gn_diag_ctx *c = &cd->ctx;
  const gn_model *md = c->model;
  const int nh = 2 * md->B;
  double *row = malloc((size_t)nh * sizeof *row);
  CHECK(gn_par_agree(c->par, row ? GN_OK : GN_RAISE(GN_ENOMEM, "out of memory for a CKA row")));
  int status = GN_OK;
  memcpy(cd->S, cd->probe.X, (size_t)(cd->probe.nrows * md->d) * sizeof(gn_real));
  for (int k = 0; k < nh; ++k) {
    half_step(md, theta, k / 2, k % 2, cd->probe.nrows, cd->S);
    CHECK_GOTO(gn_cka_compare(c->par, &cd->ref[k], md->d, cd->S, md->d, &row[k]));
  }
  const double s = (double)step;
  static const char *const names[] = {"step"};
  static const char *const meta[][2] = {{"step (updates taken) of the snapshot", "1"}};
  CHECK_GOTO(gn_diag_series_append(c->run, "/cka", 1, names, &s, meta));
  CHECK_GOTO(gn_diag_table_append(c->par, c->run, &cd->value, nh, row));
  cd->last = step;
fail:
  free(row);
  return status;
}

int gn_cka_drift_restart(gn_cka_drift *cd, int64_t step) {
  const gn_diag_ctx *c = &cd->ctx;
  CHECK(baseline(cd));
  int64_t keep = 0, len = 0, *steps = NULL;
  CHECK(gn_diag_cut_series(c->par, c->run, "/cka", step, &keep, &steps, &len));
  cd->last = keep > 0 ? steps[keep - 1] : -1;
  free(steps);
  return gn_diag_table_reload(c->par, c->run, &cd->value, keep);
}
