/* diag.c — the diagnostics orchestrator (diag.h): decides which diagnostic is due, holds the step-0
 * baselines (theta0, the NTK K0 on the NTK probe set, the centred state after every half-block on
 * the CKA probe set), writes /ntk, /cka, /weights and /ggn of run.h5 (docs/output-format.md) and
 * keeps the ParaView index run.xmf in step with the matrices written.
 *
 * Small per-snapshot tables (snapshots x half-blocks, x tensors, x eigenvalues) are kept in memory
 * and rewritten whole at each snapshot: h5io has extendible 1-D series only, and the tables are a
 * few kB. The NTK and GGN maths live in ntk.c and ggn.c, CKA in cka.c. */
#include "gnrev/diag/diag.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gnrev/diag/cka.h"
#include "gnrev/core/err.h"
#include "gnrev/curvature/ggn.h"
#include "gnrev/core/sysmem.h"
#include "gnrev/curvature/ntk.h"
#include "gnrev/diag/xdmf.h"

enum { NTK_TOP = 20, PATH_CAP = 96, NAME_CAP = 4096 };

/* A snapshots x cols table rewritten whole at every snapshot. */
typedef struct {
  char path[PATH_CAP];
  const char *desc, *units, *dims;
  int64_t rows, cols, cap;
  double *data; /* rows x cols */
} table;

struct gn_diag {
  const gn_par *par;
  const gn_deck *deck;
  const gn_model *model;
  gn_h5 *run;
  char *run_path, *xmf_path;
  char h5_name[NAME_CAP]; /* run.h5 as named from run.xmf's folder */
  size_t nparams;
  double *theta0;
  /* NTK on the first ntk_samples training samples */
  int64_t ntk_p, ntk_row0, ntk_nrows, ntk_k, ntk_last;
  double *ntk_X;       /* this rank's probe rows, ntk_nrows x d */
  gn_ntk K0;
  bool have_K0;
  table ntk_eig;
  table ntk_half;
  int64_t *saved;      /* steps whose K is in run.h5 */
  int64_t nsaved, saved_cap;
  /* CKA on the first cka_samples training samples */
  int64_t cka_p, cka_row0, cka_nrows, cka_last;
  double *cka_X, *cka_S; /* probe inputs and the state being propagated, cka_nrows x d */
  gn_cka_ref *cka_ref;   /* 2B step-0 states: after F, then after G, of each block */
  table cka_val;
  /* weights: W and b of each half-block */
  int ntens;
  size_t *toff, *tlen;
  char *tnames;          /* "block_000/F/W,block_000/F/b,..." */
  double *tnorm0;
  int64_t w_last;
  table w_cos, w_ratio, w_norm;
  /* GGN */
  int64_t ggn_last, ggn_width;
  table ggn_eig, ggn_gmean, ggn_lmean, ggn_gsnr, ggn_lsnr;
};

#define RANK0 (dg->par->rank == 0)

static bool due(int64_t every, int64_t step, int64_t last) { return every > 0 && step % every == 0 && step > last; }

/* ---- tables ---------------------------------------------------------------------------------- */

static void table_init(table *t, const char *path, int64_t cols, const char *desc, const char *units,
                       const char *dims) {
  snprintf(t->path, sizeof t->path, "%s", path);
  t->cols = cols;
  t->desc = desc;
  t->units = units;
  t->dims = dims;
}

static void table_free(table *t) {
  free(t->data);
  t->data = NULL;
  t->rows = t->cap = 0;
}

/* Local. Makes room for one more row. */
static int table_grow(table *t) {
  if (t->rows < t->cap) return GN_OK;
  int64_t cap = t->cap ? 2 * t->cap : 16;
  double *p = realloc(t->data, (size_t)(cap * t->cols) * sizeof(double));
  if (!p) GN_FAIL(GN_ENOMEM, "out of memory for %lld rows of %s", (long long)cap, t->path);
  t->data = p;
  t->cap = cap;
  return GN_OK;
}

/* Collective. Appends a row of n <= cols values (the rest NaN) and rewrites the dataset; replacing
 * a dataset whose shape grew drops its attributes, so it is described every time. */
static int table_append(const gn_par *par, gn_h5 *run, table *t, int64_t n, const double *row) {
  CHECK(gn_par_agree(par, table_grow(t)));
  double *dst = t->data + t->rows * t->cols;
  for (int64_t j = 0; j < t->cols; ++j) dst[j] = j < n ? row[j] : NAN;
  ++t->rows;
  const int64_t dims[2] = {t->rows, t->cols};
  CHECK(gn_h5_write_f64(run, t->path, 2, dims, t->data));
  return gn_h5_describe(run, t->path, t->desc, t->units, t->dims);
}

/* Collective. Loads the first `keep` rows of the table from run.h5 (restart) and rewrites it. */
static int table_reload(const gn_par *par, gn_h5 *run, table *t, int64_t keep) {
  t->rows = 0;
  if (keep <= 0 || !gn_h5_exists(run, t->path)) return GN_OK;
  int nd = 0;
  int64_t dims[3] = {0, 0, 0};
  CHECK(gn_h5_shape(run, t->path, &nd, dims));
  if (nd != 2 || dims[1] != t->cols || dims[0] < keep)
    GN_FAIL(GN_EINPUT, "cannot continue %s of the run file: it is %lld x %lld, expected at least %lld x %lld (was the deck changed?)",
            t->path, (long long)dims[0], (long long)(nd > 1 ? dims[1] : 0), (long long)keep, (long long)t->cols);
  double *all = malloc((size_t)(dims[0] * dims[1]) * sizeof(double));
  int status = gn_par_agree(par, all ? GN_OK : GN_RAISE(GN_ENOMEM, "out of memory reading %s", t->path));
  if (status == GN_OK) status = gn_h5_read_f64(run, t->path, 2, dims, all);
  for (int64_t r = 0; status == GN_OK && r < keep; ++r) {
    status = gn_par_agree(par, table_grow(t));
    if (status == GN_OK) memcpy(t->data + r * t->cols, all + r * t->cols, (size_t)t->cols * sizeof(double));
    if (status == GN_OK) ++t->rows;
  }
  free(all);
  CHECK(status);
  const int64_t kd[2] = {t->rows, t->cols};
  CHECK(gn_h5_write_f64(run, t->path, 2, kd, t->data));
  return gn_h5_describe(run, t->path, t->desc, t->units, t->dims);
}

/* Collective. Appends one row to the 1-D series of group (describing them on their first row). */
static int series_append(gn_h5 *run, const char *group, int n, const char *const *names,
                         const double *values, const char *const (*meta)[2]) {
  char first_path[PATH_CAP];
  snprintf(first_path, sizeof first_path, "%s/%s", group, names[0]);
  const bool first = gn_h5_series_len(run, first_path) == 0;
  CHECK(gn_h5_append(run, group, n, names, values));
  if (!first) return GN_OK;
  for (int i = 0; i < n; ++i) {
    char path[PATH_CAP];
    snprintf(path, sizeof path, "%s/%s", group, names[i]);
    CHECK(gn_h5_describe(run, path, meta[i][0], meta[i][1], "snapshot"));
  }
  return GN_OK;
}

/* ---- probe sets and states ------------------------------------------------------------------- */

/* Collective. This rank's gn_par_rows(p) share of the first p training samples, as doubles. */
static int load_probe(const gn_diag *dg, const gn_dataset *train, int64_t p, int64_t *row0,
                      int64_t *nrows, double **X) {
  gn_par_rows(p, dg->par->size, dg->par->rank, row0, nrows);
  const size_t rows = (size_t)(*nrows > 0 ? *nrows : 1);
  *X = malloc(rows * (size_t)dg->model->d * sizeof(double));
  int64_t *idx = malloc(rows * sizeof(int64_t));
  int status = (*X && idx) ? GN_OK
                           : GN_RAISE(GN_ENOMEM, "out of memory for %lld probe samples of width %lld",
                                      (long long)*nrows, (long long)dg->model->d);
  if (status == GN_OK) {
    for (int64_t i = 0; i < *nrows; ++i) idx[i] = *row0 + i;
    gn_data_gather(train, idx, *nrows, *X, NULL);
  }
  free(idx);
  return gn_par_agree(dg->par, status);
}

/* Local. S (n x d) goes through half-block (b, s) in place, in chunks the model workspace holds:
 * after F the state is (y1, x2), after G (y1, y2). */
static void half_step(const gn_diag *dg, const double *theta, int b, int s, int64_t n, double *S) {
  const gn_model *md = dg->model;
  const int64_t d = md->d, m = md->m, chunk = md->nmax;
  for (int64_t off = 0; off < n; off += chunk) {
    const int64_t k = n - off < chunk ? n - off : chunk;
    double *row = S + off * d;
    if (s == 0)
      gn_model_half_forward(md, theta, b, 0, k, row + m, d, 1.0, row, d);
    else
      gn_model_half_forward(md, theta, b, 1, k, row, d, 1.0, row + m, d);
  }
}

/* Collective. The step-0 CKA states from theta0 (create and restart). */
static int cka_baseline(gn_diag *dg) {
  const gn_model *md = dg->model;
  const int nh = 2 * md->B;
  if (!dg->cka_ref) {
    dg->cka_ref = calloc((size_t)nh, sizeof(gn_cka_ref));
    CHECK(gn_par_agree(dg->par, dg->cka_ref ? GN_OK : GN_RAISE(GN_ENOMEM, "out of memory for CKA baselines")));
  }
  for (int k = 0; k < nh; ++k) gn_cka_ref_free(&dg->cka_ref[k]);
  memcpy(dg->cka_S, dg->cka_X, (size_t)(dg->cka_nrows * md->d) * sizeof(double));
  for (int k = 0; k < nh; ++k) {
    half_step(dg, dg->theta0, k / 2, k % 2, dg->cka_nrows, dg->cka_S);
    CHECK(gn_cka_ref_create(dg->par, dg->cka_nrows, dg->cka_p, md->d, dg->cka_S, md->d, &dg->cka_ref[k]));
  }
  return GN_OK;
}

/* Collective. K0 at theta0 (create and restart). */
static int ntk_baseline(gn_diag *dg) {
  if (dg->have_K0) gn_ntk_free(&dg->K0);
  dg->have_K0 = false;
  CHECK(gn_par_agree(dg->par, gn_ntk_compute(dg->par, dg->model, dg->theta0, dg->ntk_p, dg->ntk_X, &dg->K0)));
  dg->have_K0 = true;
  return GN_OK;
}

/* Collective. Whether theta is theta0 bit for bit on every rank (then K0 is K). */
static int is_theta0(const gn_diag *dg, const double *theta, bool *same) {
  double differs = memcmp(theta, dg->theta0, dg->nparams * sizeof(double)) != 0;
  CHECK(gn_par_max(dg->par, &differs, 1));
  *same = differs == 0;
  return GN_OK;
}

/* ---- the ParaView index ---------------------------------------------------------------------- */

/* Collective. Flushes run.h5 (ParaView reads it as it is on disk) and rewrites run.xmf on rank 0:
 * the saved NTK matrices as one time series over steps, the CKA table as one image. */
static int write_index(gn_diag *dg) {
  if (!dg->xmf_path) return GN_OK;
  CHECK(gn_h5_flush(dg->run));
  int status = GN_OK;
  if (RANK0) {
    if (!dg->h5_name[0]) status = gn_xdmf_h5_name(dg->xmf_path, dg->run_path, dg->h5_name, sizeof dg->h5_name);
    gn_xdmf_image *ims = malloc((size_t)(dg->nsaved + 1) * sizeof *ims);
    char (*paths)[PATH_CAP] = malloc((size_t)(dg->nsaved + 1) * sizeof *paths);
    if (status == GN_OK && (!ims || !paths)) status = GN_RAISE(GN_ENOMEM, "out of memory for the ParaView index");
    if (status == GN_OK) {
      const int64_t pc = dg->ntk_p * dg->model->C;
      for (int64_t i = 0; i < dg->nsaved; ++i) {
        snprintf(paths[i], PATH_CAP, "/ntk/K_%08lld", (long long)dg->saved[i]);
        ims[i] = (gn_xdmf_image){.dataset = paths[i], .rows = pc, .cols = pc, .time = (double)dg->saved[i]};
      }
      gn_xdmf_series se[2];
      int ns = 0;
      if (dg->nsaved > 0 && dg->nsaved <= INT_MAX)
        se[ns++] = (gn_xdmf_series){.name = "ntk", .temporal = true, .n = (int)dg->nsaved, .images = ims};
      gn_xdmf_image cka = {.dataset = "/cka/value", .rows = dg->cka_val.rows, .cols = dg->cka_val.cols};
      if (dg->cka_val.rows > 0) se[ns++] = (gn_xdmf_series){.name = "cka", .temporal = false, .n = 1, .images = &cka};
      status = gn_xdmf_write(dg->xmf_path, dg->h5_name, ns, se);
    }
    free(ims);
    free(paths);
  }
  return gn_par_agree(dg->par, status);
}

/* ---- the diagnostics ------------------------------------------------------------------------- */

static int ntk_snapshot(gn_diag *dg, int64_t step, const double *theta) {
  bool same = false;
  CHECK(is_theta0(dg, theta, &same));
  gn_ntk Kt, *K = &dg->K0;
  if (!same) {
    CHECK(gn_par_agree(dg->par, gn_ntk_compute(dg->par, dg->model, theta, dg->ntk_p, dg->ntk_X, &Kt)));
    K = &Kt;
  }
  int status = GN_OK;
  double top[NTK_TOP];
  gn_ntk_change ch;
  CHECK_GOTO(gn_par_agree(dg->par, gn_ntk_compare(dg->par, &dg->K0, K, (uint64_t)dg->deck->seed, &ch)));
  const double vals[] = {(double)step, ch.rel_change, ch.similarity, ch.alignment, ch.scale};
  CHECK_GOTO(gn_par_agree(dg->par, gn_ntk_eigenvalues(dg->par, K, dg->ntk_k, top)));
  const bool save = dg->deck->ntk_save_matrix;
  if (save) {
    char path[PATH_CAP];
    const int64_t C = dg->model->C, pc = dg->ntk_p * C;
    snprintf(path, sizeof path, "/ntk/K_%08lld", (long long)step);
    CHECK_GOTO(gn_h5_write_rows_f64(dg->run, path, pc, pc, K->row0 * C, K->nrows * C, K->K));
    CHECK_GOTO(gn_h5_describe(dg->run, path, "empirical NTK on the logits of the probe set at this step: K = J J^T over all trained parameters, index (i, a) = i*C + a (sample i, class a)",
                              "1", "sample*class,sample*class"));
    CHECK_GOTO(gn_h5_attr_i64(dg->run, path, "step", step));
    if (dg->nsaved == dg->saved_cap) {
      int64_t cap = dg->saved_cap ? 2 * dg->saved_cap : 16;
      int64_t *p = realloc(dg->saved, (size_t)cap * sizeof *p);
      CHECK_GOTO(gn_par_agree(dg->par, p ? GN_OK : GN_RAISE(GN_ENOMEM, "out of memory listing NTK matrices")));
      dg->saved = p;
      dg->saved_cap = cap;
    }
    dg->saved[dg->nsaved++] = step;
  }
  static const char *const names[] = {"step", "rel_change", "similarity", "alignment", "scale"};
  static const char *const meta[][2] = {
      {"step (updates taken) of the snapshot", "1"},
      {"||K_t - K_0||_F / ||K_0||_F on the NTK probe set", "1"},
      {"cosine between K_0 v and K_t v for a fixed Gaussian v (stream GN_RNG_PROBE, sub 0)", "1"},
      {"kernel alignment <K_0, K_t>_F / (||K_0||_F ||K_t||_F): 1 when K_t only changes scale", "1"},
      {"||K_t||_F / ||K_0||_F: the kernel's growth", "1"}};
  CHECK_GOTO(series_append(dg->run, "/ntk", 5, names, vals, meta));
  CHECK_GOTO(table_append(dg->par, dg->run, &dg->ntk_eig, dg->ntk_k, top));
  CHECK_GOTO(table_append(dg->par, dg->run, &dg->ntk_half, K->nhalf, K->half_trace));
  dg->ntk_last = step;
  if (save) CHECK_GOTO(write_index(dg));
fail:
  if (K == &Kt) gn_ntk_free(&Kt);
  return status;
}

static int cka_snapshot(gn_diag *dg, int64_t step, const double *theta) {
  const gn_model *md = dg->model;
  const int nh = 2 * md->B;
  double *row = malloc((size_t)nh * sizeof(double));
  CHECK(gn_par_agree(dg->par, row ? GN_OK : GN_RAISE(GN_ENOMEM, "out of memory for a CKA row")));
  int status = GN_OK;
  memcpy(dg->cka_S, dg->cka_X, (size_t)(dg->cka_nrows * md->d) * sizeof(double));
  for (int k = 0; k < nh; ++k) {
    half_step(dg, theta, k / 2, k % 2, dg->cka_nrows, dg->cka_S);
    CHECK_GOTO(gn_cka_compare(dg->par, &dg->cka_ref[k], md->d, dg->cka_S, md->d, &row[k]));
  }
  const double s = (double)step;
  static const char *const names[] = {"step"};
  static const char *const meta[][2] = {{"step (updates taken) of the snapshot", "1"}};
  CHECK_GOTO(series_append(dg->run, "/cka", 1, names, &s, meta));
  CHECK_GOTO(table_append(dg->par, dg->run, &dg->cka_val, nh, row));
  dg->cka_last = step;
  CHECK_GOTO(write_index(dg));
fail:
  free(row);
  return status;
}

static int weights_snapshot(gn_diag *dg, int64_t step, const double *theta) {
  const int nt = dg->ntens;
  double *buf = malloc(3 * (size_t)nt * sizeof(double));
  CHECK(gn_par_agree(dg->par, buf ? GN_OK : GN_RAISE(GN_ENOMEM, "out of memory for weight statistics")));
  double *cosv = buf, *ratio = buf + nt, *norm = buf + 2 * nt;
  /* theta is replicated: every rank computes the same numbers, no communication. */
  for (int k = 0; k < nt; ++k) {
    const double *a = theta + dg->toff[k], *z = dg->theta0 + dg->toff[k];
    double aa = 0, az = 0;
    for (size_t i = 0; i < dg->tlen[k]; ++i) {
      aa += a[i] * a[i];
      az += a[i] * z[i];
    }
    norm[k] = sqrt(aa);
    const double n0 = dg->tnorm0[k];
    cosv[k] = (n0 > 0 && aa > 0) ? az / (norm[k] * n0) : NAN;
    ratio[k] = n0 > 0 ? norm[k] / n0 : NAN;
  }
  int status = GN_OK;
  const double s = (double)step;
  static const char *const names[] = {"step"};
  static const char *const meta[][2] = {{"step (updates taken) of the snapshot", "1"}};
  CHECK_GOTO(series_append(dg->run, "/weights", 1, names, &s, meta));
  CHECK_GOTO(table_append(dg->par, dg->run, &dg->w_cos, nt, cosv));
  CHECK_GOTO(table_append(dg->par, dg->run, &dg->w_ratio, nt, ratio));
  CHECK_GOTO(table_append(dg->par, dg->run, &dg->w_norm, nt, norm));
  CHECK_GOTO(gn_h5_attr_str(dg->run, "/weights", "tensors", dg->tnames));
  dg->w_last = step;
fail:
  free(buf);
  return status;
}

/* Collective. The first N rows of the batch, split again by gn_par_rows(N): every rank sends the
 * rows it holds below N to all (N x d doubles per rank, N = ggn_samples is small), then keeps its
 * share. */
static int ggn_rows(gn_diag *dg, int64_t n_local, int64_t n_global, const double *X_local,
                    const int32_t *y_local, int64_t N, double **Xall, int32_t **yall) {
  const gn_par *par = dg->par;
  const int64_t d = dg->model->d;
  int64_t r0, nr;
  gn_par_rows(n_global, par->size, par->rank, &r0, &nr);
  int status = nr == n_local ? GN_OK
                             : GN_RAISE(GN_EINTERNAL, "diagnostics: rank %d was given %lld batch rows, its share of %lld is %lld",
                                        par->rank, (long long)n_local, (long long)n_global, (long long)nr);
  if (status == GN_OK && (int64_t)N * d > INT_MAX)
    status = GN_RAISE(GN_EINPUT, "ggn_samples = %lld is too large: %lld x %lld doubles exceed one MPI message",
                      (long long)N, (long long)N, (long long)d);
  int *cnt = malloc(4 * (size_t)par->size * sizeof(int));
  *Xall = malloc((size_t)(N * d) * sizeof(double));
  *yall = malloc((size_t)N * sizeof(int32_t));
  if (status == GN_OK && (!cnt || !*Xall || !*yall))
    status = GN_RAISE(GN_ENOMEM, "out of memory for %lld GGN samples", (long long)N);
  status = gn_par_agree(par, status);
  if (status == GN_OK) {
    int *dis = cnt + par->size, *cnty = cnt + 2 * par->size, *disy = cnt + 3 * par->size;
    for (int r = 0; r < par->size; ++r) {
      int64_t a, k;
      gn_par_rows(n_global, par->size, r, &a, &k);
      int64_t c = N - a < k ? N - a : k;
      if (c < 0) c = 0;
      if (a > N) a = N;
      cnt[r] = (int)(c * d);
      dis[r] = (int)(a * d);
      cnty[r] = (int)c;
      disy[r] = (int)a;
    }
    int e = MPI_Allgatherv(X_local, cnt[par->rank], MPI_DOUBLE, *Xall, cnt, dis, MPI_DOUBLE, par->comm);
    if (e == MPI_SUCCESS)
      e = MPI_Allgatherv(y_local, cnty[par->rank], MPI_INT32_T, *yall, cnty, disy, MPI_INT32_T, par->comm);
    if (e != MPI_SUCCESS) status = GN_RAISE(GN_EMPI, "MPI_Allgatherv of the GGN samples failed");
  }
  free(cnt);
  if (status != GN_OK) {
    free(*Xall);
    free(*yall);
    *Xall = NULL;
    *yall = NULL;
  }
  return status;
}

static int ggn_snapshot(gn_diag *dg, int64_t step, const double *theta, int64_t n_local, int64_t n_global,
                        const double *X_local, const int32_t *y_local) {
  const int64_t N = dg->deck->ggn_samples < n_global ? dg->deck->ggn_samples : n_global;
  const int64_t d = dg->model->d;
  double *Xall = NULL;
  int32_t *yall = NULL;
  CHECK(ggn_rows(dg, n_local, n_global, X_local, y_local, N, &Xall, &yall));
  int64_t g0, gn;
  gn_par_rows(N, dg->par->size, dg->par->rank, &g0, &gn);
  gn_ggn g;
  memset(&g, 0, sizeof g);
  int status = gn_par_agree(dg->par, gn_ggn_compute(dg->par, dg->model, dg->deck, theta, gn, N, Xall + g0 * d,
                                                   yall + g0, step, &g));
  free(Xall);
  free(yall);
  CHECK(status);
  const double vals[5] = {(double)step, (double)N, (double)g.n_eig, (double)g.k, g.grad_overlap};
  static const char *const names[] = {"step", "samples", "n_eig", "k", "grad_overlap"};
  static const char *const meta[][2] = {
      {"step (updates taken) of the snapshot", "1"},
      {"N: samples of the batch analysed (its first ggn_samples rows)", "1"},
      {"nonzero GGN eigenvalues found", "1"},
      {"top directions analysed (columns of gamma_/lambda_ and of the *_mean/*_snr tables)", "1"},
      {"||P_top grad L||^2 / ||grad L||^2: share of the batch gradient in the top-k eigenspace", "1"}};
  CHECK_GOTO(series_append(dg->run, "/ggn", 5, names, vals, meta));
  CHECK_GOTO(table_append(dg->par, dg->run, &dg->ggn_eig, g.n_eig, g.eigenvalues));
  CHECK_GOTO(table_append(dg->par, dg->run, &dg->ggn_gmean, g.k, g.gamma_mean));
  CHECK_GOTO(table_append(dg->par, dg->run, &dg->ggn_lmean, g.k, g.lambda_mean));
  CHECK_GOTO(table_append(dg->par, dg->run, &dg->ggn_gsnr, g.k, g.gamma_snr));
  CHECK_GOTO(table_append(dg->par, dg->run, &dg->ggn_lsnr, g.k, g.lambda_snr));
  if (g.k > 0) {
    const int64_t dims[2] = {N, g.k};
    char path[PATH_CAP];
    snprintf(path, sizeof path, "/ggn/gamma_%08lld", (long long)step);
    CHECK_GOTO(gn_h5_write_f64(dg->run, path, 2, dims, g.gamma));
    CHECK_GOTO(gn_h5_describe(dg->run, path, "gamma_nk = e_k^T grad ell_n: per-sample directional gradient along GGN eigenvector k",
                              "loss units per parameter unit", "sample,direction"));
    snprintf(path, sizeof path, "/ggn/lambda_%08lld", (long long)step);
    CHECK_GOTO(gn_h5_write_f64(dg->run, path, 2, dims, g.lambda));
    CHECK_GOTO(gn_h5_describe(dg->run, path, "lambda_nk = e_k^T G_n e_k: per-sample directional curvature along GGN eigenvector k",
                              "loss units per parameter unit^2", "sample,direction"));
  }
  dg->ggn_last = step;
fail:
  gn_ggn_free(&g);
  return status;
}

/* ---- public ---------------------------------------------------------------------------------- */

static int build_tensors(gn_diag *dg) {
  const gn_model *md = dg->model;
  const bool bias = md->hp > md->h;
  dg->ntens = 2 * md->B * (bias ? 2 : 1);
  dg->toff = malloc((size_t)dg->ntens * sizeof(size_t));
  dg->tlen = malloc((size_t)dg->ntens * sizeof(size_t));
  dg->tnorm0 = malloc((size_t)dg->ntens * sizeof(double));
  const size_t cap = (size_t)dg->ntens * 20 + 1;
  dg->tnames = malloc(cap);
  if (!dg->toff || !dg->tlen || !dg->tnorm0 || !dg->tnames) GN_FAIL(GN_ENOMEM, "out of memory for weight tensors");
  size_t used = 0;
  int k = 0;
  for (int b = 0; b < md->B; ++b)
    for (int s = 0; s < 2; ++s) {
      const size_t off = gn_model_offset(md, b, s), w = (size_t)(md->h * md->m);
      dg->toff[k] = off;
      dg->tlen[k++] = w;
      used += (size_t)snprintf(dg->tnames + used, cap - used, "%sblock_%03d/%s/W", used ? "," : "", b, s ? "G" : "F");
      if (bias) {
        dg->toff[k] = off + w;
        dg->tlen[k++] = (size_t)md->m;
        used += (size_t)snprintf(dg->tnames + used, cap - used, ",block_%03d/%s/b", b, s ? "G" : "F");
      }
    }
  for (k = 0; k < dg->ntens; ++k) {
    double ss = 0;
    for (size_t i = 0; i < dg->tlen[k]; ++i) ss += dg->theta0[dg->toff[k] + i] * dg->theta0[dg->toff[k] + i];
    dg->tnorm0[k] = sqrt(ss);
  }
  return GN_OK;
}

static void init_tables(gn_diag *dg) {
  const gn_deck *dk = dg->deck;
  const int nh = 2 * dg->model->B;
  table_init(&dg->ntk_eig, "/ntk/eigenvalues", dg->ntk_k, "largest eigenvalues of the NTK on the probe set, descending",
             "1", "snapshot,eigenvalue");
  table_init(&dg->ntk_half, "/ntk/half_trace", nh,
             "trace of each half-block's term of the NTK (= ||J_bs||_F^2 over its parameters, on the probe set); "
             "column 2b: F of block b, column 2b+1: G; the columns sum to trace K", "1", "snapshot,half_block");
  table_init(&dg->cka_val, "/cka/value", nh,
             "linear CKA between the d-wide state after each half-block at step 0 and at this snapshot, on the CKA probe set; "
             "column 2b: after F of block b (y1, x2), column 2b+1: after G (y1, y2)", "1", "snapshot,half_block");
  table_init(&dg->w_cos, "/weights/cosine", dg->ntens, "cosine between each trained tensor and its initial value (NaN when either is zero)",
             "1", "snapshot,tensor");
  table_init(&dg->w_ratio, "/weights/norm_ratio", dg->ntens, "||theta_t|| / ||theta_0|| per trained tensor (NaN when the initial tensor is zero)",
             "1", "snapshot,tensor");
  table_init(&dg->w_norm, "/weights/norm", dg->ntens, "||theta_t|| per trained tensor (Frobenius)", "1", "snapshot,tensor");
  dg->ggn_width = dk->ggn_samples * (dk->ggn_mode == GN_GGN_MC ? dk->ggn_mc_samples : dg->model->C);
  if (dg->ggn_width < 1) dg->ggn_width = 1;
  const int64_t kk = dk->ggn_top_k > 0 ? dk->ggn_top_k : 1;
  table_init(&dg->ggn_eig, "/ggn/eigenvalues", dg->ggn_width,
             "nonzero GGN eigenvalues on the snapshot's samples, descending; NaN-padded to ggn_samples * columns of S",
             "loss units per parameter unit^2", "snapshot,eigenvalue");
  table_init(&dg->ggn_gmean, "/ggn/gamma_mean", kk, "gamma_k: mean over samples of gamma_nk; NaN past k", "loss units per parameter unit", "snapshot,direction");
  table_init(&dg->ggn_lmean, "/ggn/lambda_mean", kk, "lambda_k: mean over samples of lambda_nk; NaN past k", "loss units per parameter unit^2", "snapshot,direction");
  table_init(&dg->ggn_gsnr, "/ggn/gamma_snr", kk, "SNR of gamma_nk over samples: mean^2 / variance; NaN past k", "1", "snapshot,direction");
  table_init(&dg->ggn_lsnr, "/ggn/lambda_snr", kk, "SNR of lambda_nk over samples: mean^2 / variance; NaN past k", "1", "snapshot,direction");
}

int gn_diag_create(const gn_par *par, const gn_deck *deck, const gn_model *model,
                   const gn_dataset *train, const double *theta0, gn_h5 *run, const char *run_path,
                   const char *xmf_path, gn_diag **out) {
  *out = NULL;
  gn_diag *dg = calloc(1, sizeof *dg);
  int status = dg ? GN_OK : GN_RAISE(GN_ENOMEM, "out of memory for the diagnostics");
  CHECK(gn_par_agree(par, status));
  dg->par = par;
  dg->deck = deck;
  dg->model = model;
  dg->run = run;
  dg->nparams = model->nparams;
  dg->ntk_last = dg->cka_last = dg->w_last = dg->ggn_last = -1;
  dg->run_path = strdup(run_path ? run_path : "run.h5");
  dg->xmf_path = xmf_path ? strdup(xmf_path) : NULL;
  dg->theta0 = malloc(dg->nparams * sizeof(double));
  if (!dg->run_path || (xmf_path && !dg->xmf_path) || !dg->theta0)
    status = GN_RAISE(GN_ENOMEM, "out of memory for the diagnostics' baselines (%zu parameters)", dg->nparams);
  else if (model->nmax < 1)
    status = GN_RAISE(GN_EINTERNAL, "diagnostics: the model workspace holds no rows (call gn_model_reserve first)");
  else {
    memcpy(dg->theta0, theta0, dg->nparams * sizeof(double));
    status = build_tensors(dg);
  }
  CHECK_GOTO(gn_par_agree(par, status));
  dg->ntk_p = deck->ntk_every > 0 ? (deck->ntk_samples < train->n ? deck->ntk_samples : train->n) : 0;
  dg->cka_p = deck->cka_every > 0 ? (deck->cka_samples < train->n ? deck->cka_samples : train->n) : 0;
  const int64_t pc = dg->ntk_p * model->C;
  dg->ntk_k = pc < NTK_TOP ? pc : NTK_TOP;
  init_tables(dg);
  if (dg->ntk_p > 0) {
    CHECK_GOTO(load_probe(dg, train, dg->ntk_p, &dg->ntk_row0, &dg->ntk_nrows, &dg->ntk_X));
    CHECK_GOTO(ntk_baseline(dg));
    CHECK_GOTO(gn_h5_attr_i64(run, "/ntk", "samples", dg->ntk_p));
    CHECK_GOTO(gn_h5_attr_i64(run, "/ntk", "classes", model->C));
    CHECK_GOTO(gn_h5_attr_str(run, "/ntk", "probe", "the first `samples` training samples"));
  }
  if (dg->cka_p > 0) {
    CHECK_GOTO(load_probe(dg, train, dg->cka_p, &dg->cka_row0, &dg->cka_nrows, &dg->cka_X));
    dg->cka_S = malloc((size_t)(dg->cka_nrows > 0 ? dg->cka_nrows : 1) * (size_t)model->d * sizeof(double));
    CHECK_GOTO(gn_par_agree(par, dg->cka_S ? GN_OK : GN_RAISE(GN_ENOMEM, "out of memory for the CKA state")));
    CHECK_GOTO(cka_baseline(dg));
    char names[4096];
    size_t used = 0;
    for (int k = 0; k < 2 * model->B && used < sizeof names; ++k)
      used += (size_t)snprintf(names + used, sizeof names - used, "%sblock_%03d/%s", k ? "," : "", k / 2, k % 2 ? "G" : "F");
    CHECK_GOTO(gn_h5_attr_str(run, "/cka", "half_blocks", names));
    CHECK_GOTO(gn_h5_attr_i64(run, "/cka", "samples", dg->cka_p));
  }
  *out = dg;
  return GN_OK;
fail:
  gn_diag_free(dg);
  return status;
}

void gn_diag_free(gn_diag *dg) {
  if (!dg) return;
  if (dg->have_K0) gn_ntk_free(&dg->K0);
  if (dg->cka_ref)
    for (int k = 0; k < 2 * dg->model->B; ++k) gn_cka_ref_free(&dg->cka_ref[k]);
  table *tabs[] = {&dg->ntk_eig, &dg->ntk_half, &dg->cka_val, &dg->w_cos, &dg->w_ratio, &dg->w_norm, &dg->ggn_eig,
                   &dg->ggn_gmean, &dg->ggn_lmean, &dg->ggn_gsnr, &dg->ggn_lsnr};
  for (size_t i = 0; i < sizeof tabs / sizeof *tabs; ++i) table_free(tabs[i]);
  free(dg->cka_ref);
  free(dg->cka_X);
  free(dg->cka_S);
  free(dg->ntk_X);
  free(dg->saved);
  free(dg->toff);
  free(dg->tlen);
  free(dg->tnames);
  free(dg->tnorm0);
  free(dg->theta0);
  free(dg->run_path);
  free(dg->xmf_path);
  free(dg);
}

int gn_diag_step(gn_diag *dg, int64_t step, const double *theta, int64_t n_local, int64_t n_global,
                 const double *X_local, const int32_t *y_local) {
  const gn_deck *dk = dg->deck;
  if (dg->ntk_p > 0 && due(dk->ntk_every, step, dg->ntk_last)) CHECK(ntk_snapshot(dg, step, theta));
  if (dg->cka_p > 0 && due(dk->cka_every, step, dg->cka_last)) CHECK(cka_snapshot(dg, step, theta));
  if (due(dk->weights_every, step, dg->w_last)) CHECK(weights_snapshot(dg, step, theta));
  if (n_global > 0 && dk->ggn_samples > 0 && due(dk->ggn_every, step, dg->ggn_last))
    CHECK(ggn_snapshot(dg, step, theta, n_local, n_global, X_local, y_local));
  return GN_OK;
}

int gn_diag_final(gn_diag *dg, int64_t step, const double *theta) {
  if (dg->ntk_p > 0 && step > dg->ntk_last) CHECK(ntk_snapshot(dg, step, theta));
  if (dg->cka_p > 0 && step > dg->cka_last) CHECK(cka_snapshot(dg, step, theta));
  if (dg->deck->weights_every > 0 && step > dg->w_last) CHECK(weights_snapshot(dg, step, theta));
  return GN_OK;
}

/* ---- checkpoints ----------------------------------------------------------------------------- */

static bool any_on(const gn_diag *dg) {
  const gn_deck *dk = dg->deck;
  return dk->ntk_every > 0 || dk->cka_every > 0 || dk->weights_every > 0 || dk->ggn_every > 0;
}

int gn_diag_save(gn_diag *dg, gn_h5 *ckpt) {
  if (!any_on(dg)) return GN_OK;
  const int64_t n = (int64_t)dg->nparams;
  CHECK(gn_h5_write_f64(ckpt, "/diagnostics/theta0", 1, &n, dg->theta0));
  return gn_h5_describe(ckpt, "/diagnostics/theta0",
                        "parameters at step 0, the diagnostics' baseline (flat order of /optimizer)", "1", "parameter");
}

/* Collective. Keeps the snapshots of group taken before `step`: truncates its series and returns
 * how many rows are kept and the last kept step (-1 when none). */
static int cut_group(gn_diag *dg, const char *group, int64_t step, int64_t *keep, int64_t *last) {
  char path[PATH_CAP];
  snprintf(path, sizeof path, "%s/step", group);
  const int64_t len = gn_h5_series_len(dg->run, path);
  *keep = 0;
  *last = -1;
  if (len <= 0) return GN_OK;
  double *steps = malloc((size_t)len * sizeof(double));
  CHECK(gn_par_agree(dg->par, steps ? GN_OK : GN_RAISE(GN_ENOMEM, "out of memory reading %s", path)));
  int status = gn_h5_read_f64(dg->run, path, 1, &len, steps);
  if (status == GN_OK) {
    while (*keep < len && steps[*keep] < (double)step) ++*keep;
    if (*keep > 0) *last = (int64_t)steps[*keep - 1];
    status = gn_h5_truncate_series(dg->run, group, *keep);
  }
  if (status == GN_OK && strcmp(group, "/ntk") == 0) {
    /* Matrices of the interrupted run past the restart step go: the run recomputes them. */
    for (int64_t i = *keep; i < len && status == GN_OK; ++i) {
      char kp[PATH_CAP];
      snprintf(kp, sizeof kp, "/ntk/K_%08lld", (long long)steps[i]);
      status = gn_par_agree(dg->par, gn_h5_unlink(dg->run, kp));
    }
    dg->nsaved = 0;
    for (int64_t i = 0; i < *keep && status == GN_OK; ++i) {
      char kp[PATH_CAP];
      snprintf(kp, sizeof kp, "/ntk/K_%08lld", (long long)steps[i]);
      if (!gn_h5_exists(dg->run, kp)) continue;
      if (dg->nsaved == dg->saved_cap) {
        int64_t cap = dg->saved_cap ? 2 * dg->saved_cap : 16;
        int64_t *p = realloc(dg->saved, (size_t)cap * sizeof *p);
        status = gn_par_agree(dg->par, p ? GN_OK : GN_RAISE(GN_ENOMEM, "out of memory listing NTK matrices"));
        if (status != GN_OK) break;
        dg->saved = p;
        dg->saved_cap = cap;
      }
      dg->saved[dg->nsaved++] = (int64_t)steps[i];
    }
  }
  free(steps);
  return status;
}

int gn_diag_load(gn_diag *dg, gn_h5 *ckpt) {
  if (!any_on(dg)) return GN_OK;
  int64_t step = 0;
  CHECK(gn_h5_read_attr_i64(ckpt, "/", "step", &step));
  const int64_t n = (int64_t)dg->nparams;
  CHECK(gn_h5_read_f64(ckpt, "/diagnostics/theta0", 1, &n, dg->theta0));
  for (int k = 0; k < dg->ntens; ++k) {
    double ss = 0;
    for (size_t i = 0; i < dg->tlen[k]; ++i) ss += dg->theta0[dg->toff[k] + i] * dg->theta0[dg->toff[k] + i];
    dg->tnorm0[k] = sqrt(ss);
  }
  if (dg->ntk_p > 0) CHECK(ntk_baseline(dg));
  if (dg->cka_p > 0) CHECK(cka_baseline(dg));
  int64_t keep, last;
  CHECK(cut_group(dg, "/ntk", step, &keep, &last));
  dg->ntk_last = last;
  CHECK(table_reload(dg->par, dg->run, &dg->ntk_eig, keep));
  CHECK(table_reload(dg->par, dg->run, &dg->ntk_half, keep));
  CHECK(cut_group(dg, "/cka", step, &keep, &last));
  dg->cka_last = last;
  CHECK(table_reload(dg->par, dg->run, &dg->cka_val, keep));
  CHECK(cut_group(dg, "/weights", step, &keep, &last));
  dg->w_last = last;
  CHECK(table_reload(dg->par, dg->run, &dg->w_cos, keep));
  CHECK(table_reload(dg->par, dg->run, &dg->w_ratio, keep));
  CHECK(table_reload(dg->par, dg->run, &dg->w_norm, keep));
  CHECK(cut_group(dg, "/ggn", step, &keep, &last));
  dg->ggn_last = last;
  table *gt[] = {&dg->ggn_eig, &dg->ggn_gmean, &dg->ggn_lmean, &dg->ggn_gsnr, &dg->ggn_lsnr};
  for (size_t i = 0; i < sizeof gt / sizeof *gt; ++i) CHECK(table_reload(dg->par, dg->run, gt[i], keep));
  return write_index(dg);
}

/* ---- the plan -------------------------------------------------------------------------------- */

typedef struct {
  double flops, bytes;
} cost;

/* Per rank and per snapshot, from the shapes alone. A backward pass through one half-block on r
 * rows costs about 8 r m h flops (features 2 r m h, output 2 r hp m, input and parameter VJPs
 * 4 r m h); a forward 4 r m h. */
static cost ntk_cost(const gn_par *par, const gn_deck *dk, int64_t p, int64_t d, int C) {
  const double P = par->size, m = (double)(d / 2), h = (double)dk->hidden, hp = h + (dk->bias ? 1 : 0);
  const double nh = 2.0 * (double)dk->blocks, pl = ceil((double)p / P), pc = (double)p * C;
  cost c;
  /* C backward passes over the local samples, then A A^T and g g^T for the local rows of K. */
  c.flops = nh * ((double)C * 8 * pl * m * h + 2 * pl * (double)p * hp + 2 * pl * C * pc * m);
  /* allgathered A (p x hp) and g (pC x m) of one half-block, and K's local rows. */
  c.bytes = ((double)p * hp + pc * m + ceil(pc / P) * pc) * sizeof(double);
  return c;
}

__attribute__((format(printf, 4, 5))) static void fmt_line(char *buf, size_t cap, size_t *used, const char *fmt, ...) {
  if (*used >= cap) return;
  va_list ap;
  va_start(ap, fmt);
  *used += (size_t)vsnprintf(buf + *used, cap - *used, fmt, ap);
  va_end(ap);
}

static void gflop_str(double f, char *buf, size_t cap) { snprintf(buf, cap, "%.3g GFLOP", f / 1e9); }

/* Bytes per rank of each diagnostic's snapshot, shared by the memory plan and the --check lines. */
static double ntk_bytes(const gn_par *par, const gn_deck *dk, int64_t d, int C) {
  const double P = par->size, p = (double)dk->ntk_samples, pc = p * C;
  /* the NTK helper's work space, K0 kept, K_t rows, probe rows, and the eigensolver's 2-D copies
   * and workspace (about 3 (pC)^2 / P) */
  return ntk_cost(par, dk, dk->ntk_samples, d, C).bytes +
         (ceil(pc / P) * pc + ceil(p / P) * (double)d + 3 * pc * pc / P) * sizeof(double);
}

static double cka_bytes(const gn_par *par, const gn_deck *dk, int64_t d) {
  const double rows = ceil((double)dk->cka_samples / par->size), nh = 2.0 * (double)dk->blocks;
  return ((nh + 3) * rows * (double)d + 2.0 * (double)d * (double)d) * sizeof(double);
}

static double ggn_bytes(const gn_par *par, const gn_deck *dk, int64_t d, int C) {
  const double P = par->size, N = (double)dk->ggn_samples, nl = ceil(N / P);
  const double cols = dk->ggn_mode == GN_GGN_MC ? (double)dk->ggn_mc_samples : C, nc = N * cols;
  /* the NTK of N samples, the gathered batch rows, T and Gram rows, the eigensolver (about
   * 3 nc^2 / P) and the top-k eigenvectors on every rank */
  return ntk_cost(par, dk, dk->ggn_samples, d, C).bytes +
         (N * (double)d + nl * C * nc + nl * cols * nc + 3 * nc * nc / P + (double)dk->ggn_top_k * nc) *
             sizeof(double);
}

size_t gn_diag_bytes(const gn_par *par, const gn_deck *dk, int64_t d, int C) {
  const double m = (double)(d / 2), hp = (double)dk->hidden + (dk->bias ? 1 : 0);
  const double nparams = 2.0 * (double)dk->blocks * hp * m;
  double bytes = 0;
  const bool any = dk->ntk_every > 0 || dk->cka_every > 0 || dk->weights_every > 0 || dk->ggn_every > 0;
  if (any) bytes += nparams * sizeof(double);
  if (dk->ntk_every > 0) bytes += ntk_bytes(par, dk, d, C);
  if (dk->cka_every > 0) bytes += cka_bytes(par, dk, d);
  if (dk->ggn_every > 0) bytes += ggn_bytes(par, dk, d, C);
  return (size_t)bytes;
}

char *gn_diag_plan(const gn_par *par, const gn_deck *dk, int64_t d, int C) {
  const size_t cap = 4096;
  char *out = malloc(cap);
  if (!out) return NULL;
  size_t used = 0;
  out[0] = '\0';
  const double P = par->size, m = (double)(d / 2), h = (double)dk->hidden, hp = h + (dk->bias ? 1 : 0);
  const double nh = 2.0 * (double)dk->blocks, nparams = nh * hp * m;
  const bool any = dk->ntk_every > 0 || dk->cka_every > 0 || dk->weights_every > 0 || dk->ggn_every > 0;
  if (!any) return out;
  char fb[32], bb[32];
  fmt_line(out, cap, &used, "diagnostics (per rank, per snapshot; theta0 kept: ");
  gn_sysmem_str((size_t)(nparams * sizeof(double)), bb, sizeof bb);
  fmt_line(out, cap, &used, "%s):\n", bb);
  if (dk->ntk_every > 0) {
    const double p = (double)dk->ntk_samples, pc = p * C;
    cost c = ntk_cost(par, dk, dk->ntk_samples, d, C);
    /* eigenvalues of the pC x pC K by PDSYEVD: ~ (4/3 + 8/3 + 4) (pC)^3 / P with vectors */
    const double eig = 8 * pc * pc * pc / P;
    gflop_str(c.flops + eig, fb, sizeof fb);
    gn_sysmem_str((size_t)ntk_bytes(par, dk, d, C), bb, sizeof bb);
    fmt_line(out, cap, &used,
             "  ntk     every %lld steps, p = %lld samples, K %.0f x %.0f: %s (%g backward passes over %.0f rows + "
             "p^2 hp + p^2 C^2 m per half-block, eigenvalues ~8 (pC)^3/P), %s (A p x hp, g pC x m, K_0 and K_t rows, eigensolver)%s\n",
             (long long)dk->ntk_every, (long long)dk->ntk_samples, pc, pc, fb, (double)C, ceil(p / P), bb,
             dk->ntk_save_matrix ? "; K saved each snapshot" : "");
    if (dk->ntk_save_matrix) {
      gn_sysmem_str((size_t)(pc * pc * sizeof(double)), bb, sizeof bb);
      fmt_line(out, cap, &used, "          run.h5 grows by %s per snapshot\n", bb);
    }
  }
  if (dk->cka_every > 0) {
    const double rows = ceil((double)dk->cka_samples / P);
    const double flops = nh * (4 * rows * m * h + 3 * rows * (double)d * d);
    gflop_str(flops, fb, sizeof fb);
    gn_sysmem_str((size_t)cka_bytes(par, dk, d), bb, sizeof bb);
    fmt_line(out, cap, &used,
             "  cka     every %lld steps, %lld samples (%.0f per rank): %s (forward + 3 rows d^2 per half-block, "
             "allreduce 2 d^2), %s (2B step-0 states rows x d, 2 d x d products)\n",
             (long long)dk->cka_every, (long long)dk->cka_samples, rows, fb, bb);
  }
  if (dk->weights_every > 0) {
    gflop_str(4 * nparams, fb, sizeof fb);
    fmt_line(out, cap, &used, "  weights every %lld steps: %s, no extra memory beyond theta0\n", (long long)dk->weights_every, fb);
  }
  if (dk->ggn_every > 0) {
    const double N = (double)dk->ggn_samples, cols = dk->ggn_mode == GN_GGN_MC ? (double)dk->ggn_mc_samples : C;
    const double nc = N * cols;
    cost c = ntk_cost(par, dk, dk->ggn_samples, d, C);
    gflop_str(c.flops + 8 * nc * nc * nc / P + 2 * N * C * N * C * nc / P, fb, sizeof fb);
    gn_sysmem_str((size_t)ggn_bytes(par, dk, d, C), bb, sizeof bb);
    fmt_line(out, cap, &used,
             "  ggn     every %lld steps, N = %lld samples (%s, %.0f columns of S each), top %lld: %s (NTK of N "
             "samples + Gram S^T K S and its eigenvectors, %.0f x %.0f), %s (NTK buffers, N x d gathered batch rows, Gram rows, eigensolver)\n",
             (long long)dk->ggn_every, (long long)dk->ggn_samples, dk->ggn_mode == GN_GGN_MC ? "mc" : "exact", cols,
             (long long)dk->ggn_top_k, fb, nc, nc, bb);
  }
  return out;
}
