/* ntk_drift.c — the NTK on a probe set against its step-0 value (drift.h; group /ntk of run.h5,
 * docs/output-format.md), in one or both of two spaces (deck ntk_space):
 *
 *   logits  K = J J^T of the C logits, formed (curvature/ntk.c): relative change, similarity,
 *           alignment, scale and growth against K_0, its leading eigenvalues, the trace of each
 *           half-block's term, and K itself when ntk_save_matrix;
 *   output  K of the d-wide output before U (the authors' protocol), never formed: K v = J (J^T v)
 *           for one fixed Gaussian v; similarity cos(K_0 v, K_t v) and growth |K_t v| / |K_0 v|
 *           (/ntk/output), with the probe's sample indices and v saved so that any other program
 *           can recompute them.
 *
 * K_0 (and K_0 v) are recomputed from theta0, a deterministic function of theta0 and the probe, so
 * checkpoints store nothing larger. */
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gnrev/core/array.h"
#include "gnrev/core/err.h"
#include "gnrev/core/rng.h"
#include "gnrev/core/shm.h"
#include "gnrev/curvature/ntk.h"
#include "gnrev/diag/drift.h"
#include "gnrev/diag/probe.h"
#include "gnrev/diag/table.h"
#include "gnrev/core/real.h"

enum { NTK_TOP = 20 }; /* leading eigenvalues recorded per snapshot */

struct gn_ntk_drift {
  gn_diag_ctx ctx;
  bool logits, output;   /* the spaces measured */
  int64_t last;          /* step of the last snapshot (-1: none) */
  /* logit space */
  gn_probe probe;
  int64_t k;             /* eigenvalues recorded */
  gn_ntk K0;
  bool have_K0;
  gn_diag_table eig, half;
  int64_t *saved;        /* steps whose K is in run.h5 */
  int64_t nsaved, saved_cap;
  /* output space */
  gn_probe oprobe;
  gn_real *v, *K0v, *Kv;  /* oprobe.nrows x d each */
  gn_shm g;              /* J^T v, node-shared scratch */
};

/* Collective. K_0 (logit space) and K_0 v (output space) at theta0. */
static int baseline(gn_ntk_drift *nd) {
  const gn_diag_ctx *c = &nd->ctx;
  if (nd->logits) {
    if (nd->have_K0) gn_ntk_free(&nd->K0);
    nd->have_K0 = false;
    CHECK(gn_par_agree(c->par, gn_ntk_compute(c->par, c->model, c->theta0, nd->probe.p, nd->probe.X, &nd->K0)));
    nd->have_K0 = true;
  }
  if (nd->output)
    CHECK(gn_ntk_output_kv(c->par, c->model, c->theta0, nd->oprobe.nrows, nd->oprobe.X, nd->v, nd->g.base, nd->K0v));
  return GN_OK;
}

/* Collective. Whether theta is theta0 bit for bit on every rank (then K_0 is K). */
static int is_theta0(const gn_ntk_drift *nd, const gn_real *theta, bool *same) {
  const gn_diag_ctx *c = &nd->ctx;
  double differs = memcmp(theta, c->theta0, c->model->nparams * sizeof(gn_real)) != 0;
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

/* Collective. The probe of a space, its sample indices saved as group/probe_index. */
static int make_probe(gn_ntk_drift *nd, const gn_dataset *train, int64_t want, gn_probe_kind kind, const char *group,
                      gn_probe *probe) {
  const gn_diag_ctx *c = &nd->ctx;
  const gn_deck *dk = c->deck;
  const int64_t pool = kind == GN_PROBE_RANDOM ? train->n_pool : train->n;
  const int64_t p = want < pool ? want : pool;
  CHECK(gn_probe_make(c->par, train, p, kind, gn_probe_seed(dk), "ntk", probe));
  char path[GN_DIAG_PATH_CAP];
  snprintf(path, sizeof path, "%s/probe_index", group);
  CHECK(gn_h5_write_i64(c->run, path, 1, &p, probe->index));
  CHECK(gn_h5_describe(c->run, path, "the training samples of the probe, in probe order", "1", "sample"));
  CHECK(gn_h5_attr_i64(c->run, group, "samples", p));
  return gn_h5_attr_str(c->run, group, "probe", kind == GN_PROBE_RANDOM
                                                    ? "`samples` training samples drawn at random (probe_index)"
                                                    : "the first `samples` training samples");
}

/* Collective. The output-space probe, v (GN_RNG_PROBE sub 2, probe seed, entry (i, a) at index
 * i d + a) saved as /ntk/output/v, and the scratch of J^T v. */
static int create_output(gn_ntk_drift *nd, const gn_dataset *train) {
  const gn_diag_ctx *c = &nd->ctx;
  const int64_t d = c->model->d;
  CHECK(make_probe(nd, train, c->deck->ntk_output_samples, c->deck->ntk_output_probe, "/ntk/output", &nd->oprobe));
  const size_t rows = (size_t)(nd->oprobe.nrows > 0 ? nd->oprobe.nrows : 1);
  nd->v = gn_alloc(rows * (size_t)d);
  nd->K0v = gn_alloc(rows * (size_t)d);
  nd->Kv = gn_alloc(rows * (size_t)d);
  CHECK(gn_par_agree(c->par, nd->v && nd->K0v && nd->Kv ? GN_OK
                                                          : GN_RAISE(GN_ENOMEM, "out of memory for the output-space NTK")));
  CHECK(gn_par_agree(c->par, gn_shm_alloc(c->par, c->model->nparams * sizeof(gn_real), "the scratch of J^T v", &nd->g)));
  gn_rng_fill_normal_real(gn_probe_seed(c->deck), GN_RNG_PROBE, 2, (uint64_t)(nd->oprobe.row0 * d),
                     (size_t)(nd->oprobe.nrows * d), 1.0, nd->v);
  CHECK(gn_h5_write_rows_real(c->run, "/ntk/output/v", nd->oprobe.p, d, nd->oprobe.row0, nd->oprobe.nrows, nd->v));
  return gn_h5_describe(c->run, "/ntk/output/v", "the fixed Gaussian vector v of K v, one row per probe sample", "1",
                        "sample,output");
}

int gn_ntk_drift_create(const gn_diag_ctx *ctx, const gn_dataset *train, gn_ntk_drift **out) {
  *out = NULL;
  gn_ntk_drift *nd = calloc(1, sizeof *nd);
  CHECK(gn_par_agree(ctx->par, nd ? GN_OK : GN_RAISE(GN_ENOMEM, "out of memory for the NTK diagnostic")));
  nd->ctx = *ctx;
  nd->last = -1;
  nd->g.win = MPI_WIN_NULL;
  const gn_deck *dk = ctx->deck;
  nd->logits = dk->ntk_space != GN_NTK_OUTPUT;
  nd->output = dk->ntk_space != GN_NTK_LOGITS;
  const int nh = 2 * ctx->model->B;
  gn_diag_table_init(&nd->eig, "/ntk/eigenvalues", 1, "largest eigenvalues of the NTK on the probe set, descending",
                     "1", "snapshot,eigenvalue");
  gn_diag_table_init(&nd->half, "/ntk/half_trace", nh,
                     "trace of each half-block's term of the NTK (= ||J_bs||_F^2 over its parameters, on the probe set); "
                     "column 2b: F of block b, column 2b+1: G; the columns sum to trace K", "1", "snapshot,half_block");
  int status = GN_OK;
  if (nd->logits) {
    CHECK_GOTO(make_probe(nd, train, dk->ntk_samples, dk->ntk_probe, "/ntk", &nd->probe));
    const int64_t pc = nd->probe.p * ctx->model->C;
    nd->k = pc < NTK_TOP ? pc : NTK_TOP;
    nd->eig.cols = nd->k;
    CHECK_GOTO(gn_h5_attr_i64(ctx->run, "/ntk", "classes", ctx->model->C));
    /* v of the logit-space similarity, as gn_ntk_compare draws it. */
    gn_real *v = gn_alloc((size_t)pc);
    CHECK_GOTO(gn_par_agree(ctx->par, v ? GN_OK : GN_RAISE(GN_ENOMEM, "out of memory for v")));
    gn_rng_fill_normal_real((uint64_t)dk->seed, GN_RNG_PROBE, 0, 0, (size_t)pc, 1.0, v);
    status = gn_h5_write_real(ctx->run, "/ntk/v", 1, &pc, v);
    free(v);
    CHECK_GOTO(status);
    CHECK_GOTO(gn_h5_describe(ctx->run, "/ntk/v", "the fixed Gaussian vector v of the similarity, index i*C + a", "1",
                              "sample*class"));
  }
  if (nd->output) CHECK_GOTO(create_output(nd, train));
  CHECK_GOTO(baseline(nd));
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
  gn_probe_free(&nd->oprobe);
  gn_diag_table_free(&nd->eig);
  gn_diag_table_free(&nd->half);
  free(nd->saved);
  free(nd->v);
  free(nd->K0v);
  free(nd->Kv);
  gn_shm_free(&nd->g);
  free(nd);
}

int64_t gn_ntk_drift_last(const gn_ntk_drift *nd) { return nd->last; }

void gn_ntk_drift_saved(const gn_ntk_drift *nd, const int64_t **steps, int64_t *n, int64_t *rows) {
  *steps = nd->saved;
  *n = nd->nsaved;
  *rows = nd->probe.p * nd->ctx.model->C;
}

/* Collective. The logit-space snapshot; K_0 is K when same. */
static int snapshot_logits(gn_ntk_drift *nd, int64_t step, const gn_real *theta, bool same) {
  const gn_diag_ctx *c = &nd->ctx;
  gn_ntk Kt, *K = &nd->K0;
  if (!same) {
    CHECK(gn_par_agree(c->par, gn_ntk_compute(c->par, c->model, theta, nd->probe.p, nd->probe.X, &Kt)));
    K = &Kt;
  }
  int status = GN_OK;
  double top[NTK_TOP];
  gn_ntk_change ch;
  CHECK_GOTO(gn_par_agree(c->par, gn_ntk_compare(c->par, &nd->K0, K, (uint64_t)c->deck->seed, &ch)));
  const double vals[] = {(double)step, ch.rel_change, ch.similarity, ch.alignment, ch.scale, ch.growth};
  CHECK_GOTO(gn_par_agree(c->par, gn_ntk_eigenvalues(c->par, K, nd->k, top)));
  if (c->deck->ntk_save_matrix) {
    char path[GN_DIAG_PATH_CAP];
    const int64_t C = c->model->C, pc = nd->probe.p * C;
    snprintf(path, sizeof path, "/ntk/K_%08lld", (long long)step);
    CHECK_GOTO(gn_h5_write_rows_real(c->run, path, pc, pc, K->row0 * C, K->nrows * C, K->K));
    CHECK_GOTO(gn_h5_describe(c->run, path, "empirical NTK on the logits of the probe set at this step: K = J J^T over all trained parameters, index (i, a) = i*C + a (sample i, class a)",
                              "1", "sample*class,sample*class"));
    CHECK_GOTO(gn_h5_attr_i64(c->run, path, "step", step));
    CHECK_GOTO(gn_par_agree(c->par, note_saved(nd, step)));
  }
  static const char *const names[] = {"step", "rel_change", "similarity", "alignment", "scale", "growth"};
  static const char *const meta[][2] = {
      {"step (updates taken) of the snapshot", "1"},
      {"||K_t - K_0||_F / ||K_0||_F on the NTK probe set", "1"},
      {"cosine between K_0 v and K_t v for the fixed Gaussian v of /ntk/v", "1"},
      {"kernel alignment <K_0, K_t>_F / (||K_0||_F ||K_t||_F): 1 when K_t only changes scale", "1"},
      {"||K_t||_F / ||K_0||_F: the kernel's growth", "1"},
      {"||K_t v|| / ||K_0 v|| for the v of the similarity", "1"}};
  CHECK_GOTO(gn_diag_series_append(c->run, "/ntk", 6, names, vals, meta));
  CHECK_GOTO(gn_diag_table_append(c->par, c->run, &nd->eig, nd->k, top));
  CHECK_GOTO(gn_diag_table_append(c->par, c->run, &nd->half, K->nhalf, K->half_trace));
fail:
  if (K == &Kt) gn_ntk_free(&Kt);
  return status;
}

/* Collective. The output-space snapshot: cos(K_0 v, K_t v) and |K_t v| / |K_0 v|. */
static int snapshot_output(gn_ntk_drift *nd, int64_t step, const gn_real *theta, bool same) {
  const gn_diag_ctx *c = &nd->ctx;
  const size_t len = (size_t)(nd->oprobe.nrows * c->model->d);
  const gn_real *Kv = nd->K0v;
  if (!same) {
    CHECK(gn_ntk_output_kv(c->par, c->model, theta, nd->oprobe.nrows, nd->oprobe.X, nd->v, nd->g.base, nd->Kv));
    Kv = nd->Kv;
  }
  double s[3] = {0, 0, 0}; /* (K_0 v).(K_t v), |K_0 v|^2, |K_t v|^2 over every rank's rows */
  for (size_t i = 0; i < len; ++i) {
    s[0] += nd->K0v[i] * Kv[i];
    s[1] += nd->K0v[i] * nd->K0v[i];
    s[2] += Kv[i] * Kv[i];
  }
  CHECK(gn_par_sum(c->par, s, 3));
  if (!(s[1] > 0) || !(s[2] > 0) || !isfinite(s[0]))
    GN_FAIL(GN_ENUMERIC, "ntk: cannot compare output-space kernels: |K_0 v|^2 = %g, |K_t v|^2 = %g; expected finite, "
            "nonzero products", s[1], s[2]);
  const double vals[] = {(double)step, s[0] / (sqrt(s[1]) * sqrt(s[2])), sqrt(s[2] / s[1])};
  static const char *const names[] = {"step", "similarity", "growth"};
  static const char *const meta[][2] = {
      {"step (updates taken) of the snapshot", "1"},
      {"cosine between K_0 v and K_t v, K the NTK of the d-wide output before U on the probe of "
       "/ntk/output/probe_index, v = /ntk/output/v", "1"},
      {"||K_t v|| / ||K_0 v||", "1"}};
  return gn_diag_series_append(c->run, "/ntk/output", 3, names, vals, meta);
}

int gn_ntk_drift_snapshot(gn_ntk_drift *nd, int64_t step, const gn_real *theta) {
  bool same = false;
  CHECK(is_theta0(nd, theta, &same));
  if (nd->logits) CHECK(snapshot_logits(nd, step, theta, same));
  if (nd->output) CHECK(snapshot_output(nd, step, theta, same));
  nd->last = step;
  return GN_OK;
}

int gn_ntk_drift_restart(gn_ntk_drift *nd, int64_t step) {
  const gn_diag_ctx *c = &nd->ctx;
  CHECK(baseline(nd));
  int64_t keep = 0, len = 0, *steps = NULL;
  nd->last = -1;
  if (nd->output) {
    CHECK(gn_diag_cut_series(c->par, c->run, "/ntk/output", step, &keep, &steps, &len));
    if (keep > 0) nd->last = steps[keep - 1];
    free(steps);
    steps = NULL;
  }
  if (!nd->logits) return GN_OK;
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
  if (keep > 0) nd->last = steps[keep - 1];
  free(steps);
  CHECK(status);
  CHECK(gn_diag_table_reload(c->par, c->run, &nd->eig, keep));
  return gn_diag_table_reload(c->par, c->run, &nd->half, keep);
}
