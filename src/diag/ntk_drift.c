/* ntk_drift.c — the NTK on a probe set against its step-0 value (drift.h, group /ntk of run.h5;
 * docs/output-format.md). The kernel comes from curvature/ntk.c; K_0 is recomputed from theta0
 * (a deterministic function of theta0 and the probe set), so checkpoints store nothing larger. */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gnrev/core/err.h"
#include "gnrev/curvature/ntk.h"
#include "gnrev/diag/drift.h"
#include "gnrev/diag/probe.h"
#include "gnrev/diag/table.h"

enum { NTK_TOP = 20 }; /* leading eigenvalues recorded per snapshot */

struct gn_ntk_drift {
  gn_diag_ctx ctx;
  gn_probe probe;
  int64_t k, last;       /* eigenvalues recorded; step of the last snapshot (-1: none) */
  gn_ntk K0;
  bool have_K0;
  gn_diag_table eig, half;
  int64_t *saved;        /* steps whose K is in run.h5 */
  int64_t nsaved, saved_cap;
};

/* Collective. K_0 at theta0. */
static int baseline(gn_ntk_drift *nd) {
  const gn_diag_ctx *c = &nd->ctx;
  if (nd->have_K0) gn_ntk_free(&nd->K0);
  nd->have_K0 = false;
  CHECK(gn_par_agree(c->par, gn_ntk_compute(c->par, c->model, c->theta0, nd->probe.p, nd->probe.X, &nd->K0)));
  nd->have_K0 = true;
  return GN_OK;
}

/* Collective. Whether theta is theta0 bit for bit on every rank (then K_0 is K). */
static int is_theta0(const gn_ntk_drift *nd, const double *theta, bool *same) {
  const gn_diag_ctx *c = &nd->ctx;
  double differs = memcmp(theta, c->theta0, c->model->nparams * sizeof(double)) != 0;
  CHECK(gn_par_max(c->par, &differs, 1));
  *same = differs == 0;
  return GN_OK;
}

/* Local (the same on every rank). Remembers that K of `step` is in run.h5. */
static int note_saved(gn_ntk_drift *nd, int64_t step) {
  if (nd->nsaved == nd->saved_cap) {
    const int64_t cap = nd->saved_cap ? 2 * nd->saved_cap : 16;
    int64_t *p = realloc(nd->saved, (size_t)cap * sizeof *p);
    if (!p) GN_FAIL(GN_ENOMEM, "out of memory listing NTK matrices");
    nd->saved = p;
    nd->saved_cap = cap;
  }
  nd->saved[nd->nsaved++] = step;
  return GN_OK;
}

int gn_ntk_drift_create(const gn_diag_ctx *ctx, const gn_dataset *train, gn_ntk_drift **out) {
  *out = NULL;
  gn_ntk_drift *nd = calloc(1, sizeof *nd);
  CHECK(gn_par_agree(ctx->par, nd ? GN_OK : GN_RAISE(GN_ENOMEM, "out of memory for the NTK diagnostic")));
  nd->ctx = *ctx;
  nd->last = -1;
  const gn_deck *dk = ctx->deck;
  const int64_t p = dk->ntk_samples < train->n ? dk->ntk_samples : train->n, pc = p * ctx->model->C;
  nd->k = pc < NTK_TOP ? pc : NTK_TOP;
  const int nh = 2 * ctx->model->B;
  gn_diag_table_init(&nd->eig, "/ntk/eigenvalues", nd->k, "largest eigenvalues of the NTK on the probe set, descending",
                     "1", "snapshot,eigenvalue");
  gn_diag_table_init(&nd->half, "/ntk/half_trace", nh,
                     "trace of each half-block's term of the NTK (= ||J_bs||_F^2 over its parameters, on the probe set); "
                     "column 2b: F of block b, column 2b+1: G; the columns sum to trace K", "1", "snapshot,half_block");
  int status = GN_OK;
  CHECK_GOTO(gn_probe_first(ctx->par, train, p, &nd->probe));
  CHECK_GOTO(baseline(nd));
  CHECK_GOTO(gn_h5_attr_i64(ctx->run, "/ntk", "samples", p));
  CHECK_GOTO(gn_h5_attr_i64(ctx->run, "/ntk", "classes", ctx->model->C));
  CHECK_GOTO(gn_h5_attr_str(ctx->run, "/ntk", "probe", "the first `samples` training samples"));
  *out = nd;
  return GN_OK;
fail:
  gn_ntk_drift_free(nd);
  return status;
}

void gn_ntk_drift_free(gn_ntk_drift *nd) {
  if (!nd) return;
  if (nd->have_K0) gn_ntk_free(&nd->K0);
  gn_probe_free(&nd->probe);
  gn_diag_table_free(&nd->eig);
  gn_diag_table_free(&nd->half);
  free(nd->saved);
  free(nd);
}

int64_t gn_ntk_drift_last(const gn_ntk_drift *nd) { return nd->last; }

void gn_ntk_drift_saved(const gn_ntk_drift *nd, const int64_t **steps, int64_t *n, int64_t *rows) {
  *steps = nd->saved;
  *n = nd->nsaved;
  *rows = nd->probe.p * nd->ctx.model->C;
}

int gn_ntk_drift_snapshot(gn_ntk_drift *nd, int64_t step, const double *theta) {
  const gn_diag_ctx *c = &nd->ctx;
  bool same = false;
  CHECK(is_theta0(nd, theta, &same));
  gn_ntk Kt, *K = &nd->K0;
  if (!same) {
    CHECK(gn_par_agree(c->par, gn_ntk_compute(c->par, c->model, theta, nd->probe.p, nd->probe.X, &Kt)));
    K = &Kt;
  }
  int status = GN_OK;
  double top[NTK_TOP];
  gn_ntk_change ch;
  CHECK_GOTO(gn_par_agree(c->par, gn_ntk_compare(c->par, &nd->K0, K, (uint64_t)c->deck->seed, &ch)));
  const double vals[] = {(double)step, ch.rel_change, ch.similarity, ch.alignment, ch.scale};
  CHECK_GOTO(gn_par_agree(c->par, gn_ntk_eigenvalues(c->par, K, nd->k, top)));
  if (c->deck->ntk_save_matrix) {
    char path[GN_DIAG_PATH_CAP];
    const int64_t C = c->model->C, pc = nd->probe.p * C;
    snprintf(path, sizeof path, "/ntk/K_%08lld", (long long)step);
    CHECK_GOTO(gn_h5_write_rows_f64(c->run, path, pc, pc, K->row0 * C, K->nrows * C, K->K));
    CHECK_GOTO(gn_h5_describe(c->run, path, "empirical NTK on the logits of the probe set at this step: K = J J^T over all trained parameters, index (i, a) = i*C + a (sample i, class a)",
                              "1", "sample*class,sample*class"));
    CHECK_GOTO(gn_h5_attr_i64(c->run, path, "step", step));
    CHECK_GOTO(gn_par_agree(c->par, note_saved(nd, step)));
  }
  static const char *const names[] = {"step", "rel_change", "similarity", "alignment", "scale"};
  static const char *const meta[][2] = {
      {"step (updates taken) of the snapshot", "1"},
      {"||K_t - K_0||_F / ||K_0||_F on the NTK probe set", "1"},
      {"cosine between K_0 v and K_t v for a fixed Gaussian v (stream GN_RNG_PROBE, sub 0)", "1"},
      {"kernel alignment <K_0, K_t>_F / (||K_0||_F ||K_t||_F): 1 when K_t only changes scale", "1"},
      {"||K_t||_F / ||K_0||_F: the kernel's growth", "1"}};
  CHECK_GOTO(gn_diag_series_append(c->run, "/ntk", 5, names, vals, meta));
  CHECK_GOTO(gn_diag_table_append(c->par, c->run, &nd->eig, nd->k, top));
  CHECK_GOTO(gn_diag_table_append(c->par, c->run, &nd->half, K->nhalf, K->half_trace));
  nd->last = step;
fail:
  if (K == &Kt) gn_ntk_free(&Kt);
  return status;
}

int gn_ntk_drift_restart(gn_ntk_drift *nd, int64_t step) {
  const gn_diag_ctx *c = &nd->ctx;
  CHECK(baseline(nd));
  int64_t keep = 0, len = 0, *steps = NULL;
  CHECK(gn_diag_cut_series(c->par, c->run, "/ntk", step, &keep, &steps, &len));
  int status = GN_OK;
  /* Matrices of the interrupted run past the restart step go: the run recomputes them. */
  for (int64_t i = keep; i < len && status == GN_OK; ++i) {
    char kp[GN_DIAG_PATH_CAP];
    snprintf(kp, sizeof kp, "/ntk/K_%08lld", (long long)steps[i]);
    status = gn_par_agree(c->par, gn_h5_unlink(c->run, kp));
  }
  nd->nsaved = 0;
  for (int64_t i = 0; i < keep && status == GN_OK; ++i) {
    char kp[GN_DIAG_PATH_CAP];
    snprintf(kp, sizeof kp, "/ntk/K_%08lld", (long long)steps[i]);
    if (gn_h5_exists(c->run, kp)) status = gn_par_agree(c->par, note_saved(nd, steps[i]));
  }
  nd->last = keep > 0 ? steps[keep - 1] : -1;
  free(steps);
  CHECK(status);
  CHECK(gn_diag_table_reload(c->par, c->run, &nd->eig, keep));
  return gn_diag_table_reload(c->par, c->run, &nd->half, keep);
}
