/* table.c — the snapshot tables and series of the diagnostics (table.h). Small per-snapshot
 * tables (snapshots x half-blocks, x tensors, x eigenvalues) are kept in memory and rewritten whole
 * at each snapshot: h5io has extendible 1-D series only, and the tables are a few kB. */
#include "gnrev/diag/table.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gnrev/core/err.h"

void gn_diag_table_init(gn_diag_table *t, const char *path, int64_t cols, const char *desc, const char *units,
                        const char *dims) {
  memset(t, 0, sizeof *t);
  snprintf(t->path, sizeof t->path, "%s", path);
  t->cols = cols;
  t->desc = desc;
  t->units = units;
  t->dims = dims;
}

void gn_diag_table_free(gn_diag_table *t) {
  free(t->data);
  t->data = NULL;
  t->rows = t->cap = 0;
}

/* Local. Makes room for one more row. */
static int table_grow(gn_diag_table *t) {
  if (t->rows < t->cap) return GN_OK;
  int64_t cap = t->cap ? 2 * t->cap : 16;
  double *p = realloc(t->data, (size_t)(cap * t->cols) * sizeof(double));
  if (!p) GN_FAIL(GN_ENOMEM, "out of memory for %lld rows of %s", (long long)cap, t->path);
  t->data = p;
  t->cap = cap;
  return GN_OK;
}

int gn_diag_table_append(const gn_par *par, gn_h5 *run, gn_diag_table *t, int64_t n, const double *row) {
  CHECK(gn_par_agree(par, table_grow(t)));
  double *dst = t->data + t->rows * t->cols;
  for (int64_t j = 0; j < t->cols; ++j) dst[j] = j < n ? row[j] : NAN;
  ++t->rows;
  const int64_t dims[2] = {t->rows, t->cols};
  CHECK(gn_h5_write_f64(run, t->path, 2, dims, t->data));
  return gn_h5_describe(run, t->path, t->desc, t->units, t->dims);
}

int gn_diag_table_reload(const gn_par *par, gn_h5 *run, gn_diag_table *t, int64_t keep) {
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

int gn_diag_series_append(gn_h5 *run, const char *group, int n, const char *const *names,
                         const double *values, const char *const (*meta)[2]) {
  char first_path[GN_DIAG_PATH_CAP];
  snprintf(first_path, sizeof first_path, "%s/%s", group, names[0]);
  const bool first = gn_h5_series_len(run, first_path) == 0;
  CHECK(gn_h5_append(run, group, n, names, values));
  if (!first) return GN_OK;
  for (int i = 0; i < n; ++i) {
    char path[GN_DIAG_PATH_CAP];
    snprintf(path, sizeof path, "%s/%s", group, names[i]);
    CHECK(gn_h5_describe(run, path, meta[i][0], meta[i][1], "snapshot"));
  }
  return GN_OK;
}

int gn_diag_cut_series(const gn_par *par, gn_h5 *run, const char *group, int64_t step, int64_t *keep,
                       int64_t **steps, int64_t *len) {
  char path[GN_DIAG_PATH_CAP];
  snprintf(path, sizeof path, "%s/step", group);
  const int64_t n = gn_h5_series_len(run, path);
  *keep = 0;
  *steps = NULL;
  *len = n > 0 ? n : 0;
  if (n <= 0) return GN_OK;
  double *s = malloc((size_t)n * sizeof(double));
  int64_t *out = malloc((size_t)n * sizeof(int64_t));
  int status = gn_par_agree(par, s && out ? GN_OK : GN_RAISE(GN_ENOMEM, "out of memory reading %s", path));
  if (status == GN_OK) status = gn_h5_read_f64(run, path, 1, &n, s);
  if (status == GN_OK) {
    for (int64_t i = 0; i < n; ++i) out[i] = (int64_t)s[i];
    while (*keep < n && out[*keep] < step) ++*keep;
    status = gn_h5_truncate_series(run, group, *keep);
  }
  free(s);
  if (status != GN_OK) {
    free(out);
    return status;
  }
  *steps = out;
  return GN_OK;
}
