// NP: 1 2 3
/* test_h5io.c — the HDF5 layer: replicated, row-distributed and series datasets read back
 * bit-identical, attributes of every kind, atomic create/abandon, and errors that name the path
 * and reach every rank without a hang.
 *
 * Files go to $H5IO_TEST_DIR when set (tests/test_h5io_readback.py then reads them with h5py, so
 * the values here and there come from the same formulas), else to a temporary directory that is
 * deleted at the end. */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gnrev/core/h5io.h"
#include "testlib.h"

static gn_par par;
static char dir[4096];

static const char *in_dir(const char *name) {
  static char buf[8][4352];
  static int next = 0;
  char *p = buf[next++ % 8];
  snprintf(p, sizeof buf[0], "%s/%s", dir, name);
  return p;
}

static bool exists_on_disk(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* Entries of the test directory whose names start with prefix. */
static int count_prefix(const char *prefix) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) ++n;
  closedir(d);
  return n;
}

static bool msg_has(const char *needle) { return strstr(gn_error_message(), needle) != NULL; }

/* The value formulas shared with the Python readback: exact in IEEE double on both sides. */
static double val(int64_t k) { return 1.0 / (1.0 + (double)k); }
static int64_t ival(int64_t k) { return (k % 2 ? -1 : 1) * ((INT64_C(1) << 60) + k); }

static double *fill(int64_t n, int64_t offset) {
  double *x = malloc((size_t)(n > 0 ? n : 1) * sizeof *x);
  for (int64_t k = 0; k < n; ++k) x[k] = val(k + offset);
  return x;
}

static void test_replicated(void) {
  gn_h5 *f = NULL;
  int st = gn_h5_create(&par, in_dir("arrays.h5"), &f);
  GT_CHECK(st == GN_OK && f, "create arrays.h5");
  const int64_t d2[2] = {5, 3}, d3[3] = {4, 2, 3}, d1[1] = {7}, dt[1] = {2}, de[2] = {0, 3};
  double *a2 = fill(15, 0), *a3 = fill(24, 100), *tiny = fill(2, 200);
  int64_t i64[7];
  for (int k = 0; k < 7; ++k) i64[k] = ival(k);
  st = gn_h5_write_f64(f, "/arrays/a2", 2, d2, a2);
  st = st ? st : gn_h5_write_f64(f, "/arrays/deep/a3", 3, d3, a3);
  st = st ? st : gn_h5_write_i64(f, "/arrays/i64", 1, d1, i64);
  st = st ? st : gn_h5_write_f64(f, "/arrays/tiny", 1, dt, tiny);
  st = st ? st : gn_h5_write_f64(f, "/arrays/empty", 2, de, NULL);
  GT_CHECK(st == GN_OK, "replicated writes of 1-D, 2-D, 3-D, short and empty arrays succeed");
  GT_CHECK(gn_h5_close(f) == GN_OK, "close arrays.h5");

  st = gn_h5_open(&par, in_dir("arrays.h5"), false, &f);
  GT_CHECK(st == GN_OK, "reopen arrays.h5 for reading");
  double b2[15], b3[24], btiny[2], bempty[1];
  int64_t bi[7];
  memset(b2, 0, sizeof b2);
  memset(b3, 0, sizeof b3);
  GT_CHECK(gn_h5_read_f64(f, "/arrays/a2", 2, d2, b2) == GN_OK && !memcmp(a2, b2, sizeof b2),
           "replicated 2-D array reads back bit-identical on every rank");
  GT_CHECK(gn_h5_read_f64(f, "/arrays/deep/a3", 3, d3, b3) == GN_OK && !memcmp(a3, b3, sizeof b3),
           "replicated 3-D array in an intermediate group reads back bit-identical");
  GT_CHECK(gn_h5_read_i64(f, "/arrays/i64", 1, d1, bi) == GN_OK && !memcmp(i64, bi, sizeof bi),
           "int64 array keeps values beyond 2^53 exactly");
  GT_CHECK(gn_h5_read_f64(f, "/arrays/tiny", 1, dt, btiny) == GN_OK && !memcmp(tiny, btiny, sizeof btiny),
           "array with fewer rows than ranks round-trips");
  GT_CHECK(gn_h5_read_f64(f, "/arrays/empty", 2, de, bempty) == GN_OK, "empty 0 x 3 array reads back");
  int nd = 0;
  int64_t sh[3] = {0, 0, 0};
  st = gn_h5_shape(f, "/arrays/deep/a3", &nd, sh);
  GT_CHECK(st == GN_OK && nd == 3 && sh[0] == 4 && sh[1] == 2 && sh[2] == 3, "gn_h5_shape reports 4 x 2 x 3");
  GT_CHECK(gn_h5_exists(f, "/arrays/deep/a3") && gn_h5_exists(f, "/arrays/deep") && gn_h5_exists(f, "/") &&
               gn_h5_exists(f, "arrays/a2"),
           "gn_h5_exists sees datasets, groups, the root and relative paths");
  GT_CHECK(!gn_h5_exists(f, "/nope") && !gn_h5_exists(f, "/nope/deeper") && !gn_h5_exists(f, "/arrays/a2/x"),
           "gn_h5_exists is false for missing paths and paths through a dataset");
  GT_CHECK(gn_h5_close(f) == GN_OK, "close arrays.h5 after reading");
  free(a2);
  free(a3);
  free(tiny);
}

static void test_rows(void) {
  gn_h5 *f = NULL;
  GT_CHECK(gn_h5_create(&par, in_dir("rows.h5"), &f) == GN_OK, "create rows.h5");
  /* 7 rows split 7 / 4+3 / 3+3+1; 2 rows over 3 ranks leaves rank 2 without any. */
  const int64_t shapes[2][2] = {{7, 3}, {2, 4}};
  const char *names[2] = {"/dist/r7x3", "/dist/r2x4"};
  int st = GN_OK;
  for (int s = 0; s < 2; ++s) {
    int64_t rows = shapes[s][0], cols = shapes[s][1], row0, nrows;
    gn_par_rows(rows, par.size, par.rank, &row0, &nrows);
    double *local = fill(nrows * cols, row0 * cols + 1000 * s);
    int r = gn_h5_write_rows_f64(f, names[s], rows, cols, row0, nrows, nrows ? local : NULL);
    st = st ? st : r;
    free(local);
  }
  GT_CHECK(st == GN_OK, "row-distributed writes with uneven and empty shares succeed");

  /* A rank passing a range outside the array must stop every rank, not hang the others. */
  int64_t row0, nrows;
  gn_par_rows(7, par.size, par.rank, &row0, &nrows);
  double junk[21] = {0};
  if (par.rank == par.size - 1) row0 = 7;
  st = gn_h5_write_rows_f64(f, "/dist/bad", 7, 3, row0, nrows, junk);
  GT_CHECK(st == GN_EINTERNAL && msg_has("/dist/bad"),
           "a row range outside the array fails on every rank, naming the dataset");
  gn_par_rows(7, par.size, par.rank, &row0, &nrows);
  st = gn_h5_write_rows_f64(f, "/dist/short", 8, 3, row0, nrows, junk);
  GT_CHECK(st == GN_EINTERNAL && msg_has("7 rows") && msg_has("/dist/short"),
           "rows not adding up to the array fail on every rank");
  GT_CHECK(!gn_h5_exists(f, "/dist/bad") && !gn_h5_exists(f, "/dist/short"),
           "a refused row write creates nothing");
  GT_CHECK(gn_h5_close(f) == GN_OK, "close rows.h5");

  GT_CHECK(gn_h5_open(&par, in_dir("rows.h5"), false, &f) == GN_OK, "reopen rows.h5");
  for (int s = 0; s < 2; ++s) {
    int64_t n = shapes[s][0] * shapes[s][1];
    double *want = fill(n, 1000 * s), *got = calloc((size_t)n, sizeof *got);
    st = gn_h5_read_f64(f, names[s], 2, shapes[s], got);
    GT_CHECK(st == GN_OK && !memcmp(want, got, (size_t)n * sizeof *got),
             "row-distributed %lld x %lld array reads back whole and bit-identical", (long long)shapes[s][0],
             (long long)shapes[s][1]);
    free(want);
    free(got);
  }
  GT_CHECK(gn_h5_close(f) == GN_OK, "close rows.h5 after reading");
}

static const char *const SERIES[2] = {"loss", "acc"};
static double series_val(int name, int step) { return val(10 * step + name); }

static bool series_equal(gn_h5 *f, const char *path, int name, int64_t len, const int *steps) {
  double got[16];
  int64_t d[1] = {len};
  if (gn_h5_series_len(f, path) != len || gn_h5_read_f64(f, path, 1, d, got) != GN_OK) return false;
  for (int64_t k = 0; k < len; ++k)
    if (got[k] != series_val(name, steps[k])) return false;
  return true;
}

static void test_series(void) {
  gn_h5 *f = NULL;
  GT_CHECK(gn_h5_create(&par, in_dir("run.h5"), &f) == GN_OK, "create run.h5");
  GT_CHECK(gn_h5_series_len(f, "/metrics/loss") == 0, "an absent series has length 0");
  int st = GN_OK;
  for (int step = 0; step < 5; ++step) {
    double v[2] = {series_val(0, step), series_val(1, step)};
    int r = gn_h5_append(f, "/metrics", 2, SERIES, v);
    st = st ? st : r;
  }
  const int s5[5] = {0, 1, 2, 3, 4};
  GT_CHECK(
      st == GN_OK && series_equal(f, "/metrics/loss", 0, 5, s5) && series_equal(f, "/metrics/acc", 1, 5, s5),
      "five appends give two series of length 5 with the appended values");
  GT_CHECK(gn_h5_series_len(f, "/metrics") == -1, "series length of a group is -1");
  GT_CHECK(gn_h5_truncate_series(f, "/metrics", 3) == GN_OK && series_equal(f, "/metrics/loss", 0, 3, s5) &&
               series_equal(f, "/metrics/acc", 1, 3, s5),
           "truncating to 3 keeps the first 3 entries of every series");
  GT_CHECK(gn_h5_truncate_series(f, "/no_such_group", 0) == GN_OK, "truncating a missing group is a no-op");
  double v[2] = {series_val(0, 5), series_val(1, 5)};
  const int s6[4] = {0, 1, 2, 5};
  GT_CHECK(gn_h5_append(f, "/metrics", 2, SERIES, v) == GN_OK && series_equal(f, "/metrics/loss", 0, 4, s6),
           "an append after truncation continues at the new end");
  GT_CHECK(gn_h5_describe(f, "/metrics/loss", "training loss", "nat", "step") == GN_OK, "describe a series");
  GT_CHECK(gn_h5_close(f) == GN_OK, "close run.h5");

  /* A restart reopens the run file, drops entries past the checkpoint and goes on. */
  GT_CHECK(gn_h5_open(&par, in_dir("run.h5"), true, &f) == GN_OK, "reopen run.h5 for appending");
  double w[2] = {series_val(0, 6), series_val(1, 6)};
  st = gn_h5_truncate_series(f, "/metrics", 3);
  st = st ? st : gn_h5_append(f, "/metrics", 2, SERIES, w);
  const int64_t d2[2] = {5, 3}, d3[2] = {2, 2};
  double *x = fill(15, 7), *y = fill(4, 9);
  st = st ? st : gn_h5_write_f64(f, "/late/x", 2, d2, x);
  GT_CHECK(st == GN_OK, "truncate, append and a new dataset after reopening");
  double *x2 = fill(15, 70);
  st = gn_h5_write_f64(f, "/late/x", 2, d2, x2);
  st = st ? st : gn_h5_write_f64(f, "/late/y", 2, d3, x);
  st = st ? st : gn_h5_write_f64(f, "/late/y", 2, d3, y);
  GT_CHECK(st == GN_OK, "rewriting datasets with the same and with a different shape succeeds");
  GT_CHECK(gn_h5_close(f) == GN_OK, "close reopened run.h5");

  GT_CHECK(gn_h5_open(&par, in_dir("run.h5"), false, &f) == GN_OK, "open run.h5 for reading");
  const int s7[4] = {0, 1, 2, 6};
  GT_CHECK(series_equal(f, "/metrics/loss", 0, 4, s7) && series_equal(f, "/metrics/acc", 1, 4, s7),
           "series after restart hold the kept entries and the new one");
  double got[15];
  GT_CHECK(gn_h5_read_f64(f, "/late/x", 2, d2, got) == GN_OK && !memcmp(got, x2, sizeof got),
           "a dataset rewritten with the same shape holds the new values");
  GT_CHECK(gn_h5_read_f64(f, "/late/y", 2, d3, got) == GN_OK && !memcmp(got, y, 4 * sizeof *got),
           "a dataset rewritten with another shape holds the new shape and values");
  GT_CHECK(gn_h5_close(f) == GN_OK, "close run.h5 after reading");
  free(x);
  free(x2);
  free(y);
}

static const char *const UTF8 = "\xc2\xb5m, \xce\xa3 \xe2\x9c\x93"; /* "µm, Σ ✓" */
static const int64_t BIG = -9007199254740993LL;                     /* -(2^53 + 1): not a double */

static void test_attributes(void) {
  gn_h5 *f = NULL;
  GT_CHECK(gn_h5_create(&par, in_dir("attrs.h5"), &f) == GN_OK, "create attrs.h5");
  const int64_t d[1] = {3};
  double *x = fill(3, 0);
  int st = gn_h5_write_f64(f, "/data/x", 1, d, x);
  st = st ? st : gn_h5_attr_str(f, "/", "format", "gnrev-test-1");
  st = st ? st : gn_h5_attr_str(f, "/", "utf8", UTF8);
  st = st ? st : gn_h5_attr_str(f, "/", "empty", "");
  st = st ? st : gn_h5_attr_i64(f, "/Code", "big", BIG);
  st = st ? st : gn_h5_attr_f64(f, "/Code", "tenth", 0.1);
  st = st ? st : gn_h5_attr_f64(f, "/Code", "tiny", -1e-300);
  st = st ? st : gn_h5_attr_str(f, "/", "note", "first");
  st = st ? st : gn_h5_attr_str(f, "/", "note", "second, and longer than the first");
  st = st ? st : gn_h5_attr_str(f, "/", "kind", "a string at first");
  st = st ? st : gn_h5_attr_i64(f, "/", "kind", 7);
  st = st ? st : gn_h5_describe(f, "/data/x", "probe values", "1", "sample");
  GT_CHECK(st == GN_OK, "writing string, int64 and double attributes, overwrites and a description succeeds");
  GT_CHECK(gn_h5_exists(f, "/Code"), "an attribute on a missing object creates it as a group");
  st = gn_h5_describe(f, "/data/none", "d", "u", "i");
  GT_CHECK(st == GN_EIO && msg_has("/data/none") && msg_has("attrs.h5"),
           "describing a missing dataset is an I/O error naming it");
  GT_CHECK(gn_h5_close(f) == GN_OK, "close attrs.h5");

  GT_CHECK(gn_h5_open(&par, in_dir("attrs.h5"), false, &f) == GN_OK, "reopen attrs.h5");
  char *s = NULL;
  st = gn_h5_read_attr_str(f, "/", "format", &s);
  GT_CHECK(st == GN_OK && s && !strcmp(s, "gnrev-test-1"), "string attribute reads back");
  free(s);
  s = NULL;
  st = gn_h5_read_attr_str(f, "/", "utf8", &s);
  GT_CHECK(st == GN_OK && s && !strcmp(s, UTF8), "UTF-8 string attribute reads back byte for byte");
  free(s);
  s = NULL;
  st = gn_h5_read_attr_str(f, "/", "empty", &s);
  GT_CHECK(st == GN_OK && s && s[0] == '\0', "empty string attribute reads back empty");
  free(s);
  s = NULL;
  st = gn_h5_read_attr_str(f, "/", "note", &s);
  GT_CHECK(st == GN_OK && s && !strcmp(s, "second, and longer than the first"),
           "an overwritten attribute holds the last value");
  free(s);
  int64_t i = 0;
  double v = 0;
  GT_CHECK(gn_h5_read_attr_i64(f, "/Code", "big", &i) == GN_OK && i == BIG,
           "int64 attribute keeps -(2^53+1) exactly");
  GT_CHECK(gn_h5_read_attr_f64(f, "/Code", "tenth", &v) == GN_OK && v == 0.1,
           "double attribute 0.1 reads back exactly");
  GT_CHECK(gn_h5_read_attr_f64(f, "/Code", "tiny", &v) == GN_OK && v == -1e-300,
           "double attribute -1e-300 reads back exactly");
  GT_CHECK(gn_h5_read_attr_i64(f, "/", "kind", &i) == GN_OK && i == 7,
           "an attribute overwritten with another type holds the new type");
  s = NULL;
  st = gn_h5_read_attr_str(f, "/", "kind", &s);
  GT_CHECK(st == GN_EINPUT && s == NULL && msg_has("'kind'") && msg_has("not a string"),
           "reading an integer attribute as a string is an input error naming it");
  st = gn_h5_read_attr_i64(f, "/Code", "tenth", &i);
  GT_CHECK(st == GN_EINPUT && msg_has("'tenth'"),
           "reading a double attribute as an integer is an input error");
  const char *fields[3] = {"description", "units", "dims"}, *want[3] = {"probe values", "1", "sample"};
  bool ok = true;
  for (int k = 0; k < 3; ++k) {
    s = NULL;
    ok = ok && gn_h5_read_attr_str(f, "/data/x", fields[k], &s) == GN_OK && s && !strcmp(s, want[k]);
    free(s);
  }
  GT_CHECK(ok, "gn_h5_describe sets description, units and dims");
  st = gn_h5_read_attr_f64(f, "/Code", "missing", &v);
  GT_CHECK(st == GN_EIO && msg_has("'missing'") && msg_has("/Code") && msg_has("attrs.h5"),
           "a missing attribute is an I/O error naming file, object and attribute");
  st = gn_h5_read_attr_f64(f, "/Nobody", "x", &v);
  GT_CHECK(st == GN_EIO && msg_has("/Nobody"),
           "an attribute of a missing object is an I/O error naming the object");
  GT_CHECK(gn_h5_close(f) == GN_OK, "close attrs.h5 after reading");
  free(x);
}

static void test_read_errors(void) {
  gn_h5 *f = NULL;
  GT_CHECK(gn_h5_open(&par, in_dir("arrays.h5"), false, &f) == GN_OK, "open arrays.h5 for the error cases");
  double buf[64];
  int64_t ibuf[64];
  const int64_t want[2] = {5, 4}, want1[1] = {15};
  int st = gn_h5_read_f64(f, "/arrays/missing", 2, want, buf);
  GT_CHECK(st == GN_EIO && msg_has("/arrays/missing") && msg_has("arrays.h5"),
           "reading a missing dataset is an I/O error naming file and dataset");
  st = gn_h5_read_f64(f, "/arrays/a2", 2, want, buf);
  GT_CHECK(st == GN_EINPUT && msg_has("/arrays/a2") && msg_has("5 x 3") && msg_has("expected 5 x 4"),
           "reading with the wrong shape is an input error naming found and expected shapes");
  st = gn_h5_read_f64(f, "/arrays/a2", 1, want1, buf);
  GT_CHECK(st == GN_EINPUT && msg_has("expected 15"), "reading with the wrong rank is an input error");
  st = gn_h5_read_i64(f, "/arrays/a2", 2, (const int64_t[2]){5, 3}, ibuf);
  GT_CHECK(st == GN_EINPUT && msg_has("floating-point"), "reading doubles as integers is refused");
  int nd = 0;
  int64_t sh[3];
  st = gn_h5_shape(f, "/arrays/none", &nd, sh);
  GT_CHECK(st == GN_EIO && msg_has("/arrays/none"), "shape of a missing dataset is an I/O error naming it");
  GT_CHECK(gn_h5_series_len(f, "/arrays/a2") == -1, "series length of a 2-D dataset is -1");
  GT_CHECK(gn_h5_close(f) == GN_OK, "close arrays.h5 after the error cases");
}

static void test_open_errors(void) {
  gn_h5 *f = (gn_h5 *)&par;
  int st = gn_h5_open(&par, in_dir("missing.h5"), false, &f);
  GT_CHECK(st == GN_EIO && f == NULL && msg_has("missing.h5") && msg_has("No such file"),
           "opening a missing file fails on every rank, naming it and the reason");
  f = (gn_h5 *)&par;
  st = gn_h5_open(&par, in_dir("missing.h5"), true, &f);
  GT_CHECK(st == GN_EIO && f == NULL && msg_has("missing.h5"),
           "opening a missing file for appending fails on every rank");
  if (par.rank == 0) {
    FILE *t = fopen(in_dir("text.h5"), "w");
    if (t) {
      fputs("this is a text file, not HDF5\n", t);
      fclose(t);
    }
  }
  MPI_Barrier(par.comm);
  st = gn_h5_open(&par, in_dir("text.h5"), false, &f);
  GT_CHECK(st == GN_EIO && f == NULL && msg_has("text.h5") && msg_has("not an HDF5 file"),
           "opening a non-HDF5 file fails on every rank, naming it");
  gt_note("non-HDF5 file message: %s", gn_error_message());
  st = gn_h5_open(&par, dir, false, &f);
  GT_CHECK(st == GN_EIO && f == NULL && msg_has("not a regular file"), "opening a directory fails clearly");
  st = gn_h5_create(&par, in_dir("no/such/dir/x.h5"), &f);
  GT_CHECK(st == GN_EIO && f == NULL && msg_has("no/such/dir/x.h5"),
           "creating in a missing directory fails naming the path");
  gt_note("create message: %s", gn_error_message());
  st = gn_h5_create_atomic(&par, in_dir("no/such/dir/y.h5"), &f);
  GT_CHECK(st == GN_EIO && f == NULL && msg_has("no/such/dir/y.h5"),
           "atomic create in a missing directory fails naming the path");
}

static bool read_back(const char *name, const double *want, int64_t n) {
  gn_h5 *f = NULL;
  double got[32];
  const int64_t d[1] = {n};
  if (gn_h5_open(&par, in_dir(name), false, &f) != GN_OK) return false;
  bool ok = gn_h5_read_f64(f, "/x", 1, d, got) == GN_OK && !memcmp(got, want, (size_t)n * sizeof *got);
  return gn_h5_close(f) == GN_OK && ok;
}

static void test_atomic(void) {
  gn_h5 *f = NULL;
  const int64_t d[1] = {6};
  double *x = fill(6, 0), *y = fill(6, 50);
  int st = gn_h5_create_atomic(&par, in_dir("atomic.h5"), &f);
  GT_CHECK(st == GN_OK, "atomic create");
  GT_CHECK(!exists_on_disk(in_dir("atomic.h5")) && count_prefix("atomic.h5.tmp.") == 1,
           "before close only the temporary file exists, with the same name on every rank");
  st = gn_h5_write_f64(f, "/x", 1, d, x);
  st = st ? st : gn_h5_attr_str(f, "/", "format", "gnrev-test-1");
  GT_CHECK(st == GN_OK && gn_h5_close(f) == GN_OK, "write and close the atomic file");
  GT_CHECK(exists_on_disk(in_dir("atomic.h5")) && count_prefix("atomic.h5.tmp.") == 0,
           "after close the final file exists on every rank and no temporary is left");
  GT_CHECK(read_back("atomic.h5", x, 6), "the renamed file holds the data");

  st = gn_h5_create_atomic(&par, in_dir("atomic.h5"), &f);
  st = st ? st : gn_h5_write_f64(f, "/x", 1, d, y);
  GT_CHECK(st == GN_OK && read_back("atomic.h5", x, 6),
           "while a replacement is written the old file is intact");
  GT_CHECK(gn_h5_close(f) == GN_OK && read_back("atomic.h5", y, 6) && count_prefix("atomic.h5.tmp.") == 0,
           "closing the replacement swaps in the new data");

  st = gn_h5_create_atomic(&par, in_dir("atomic.h5"), &f);
  st = st ? st : gn_h5_write_f64(f, "/x", 1, d, x);
  GT_CHECK(st == GN_OK && gn_h5_abandon(f) == GN_OK, "abandon a replacement");
  GT_CHECK(read_back("atomic.h5", y, 6) && count_prefix("atomic.h5.tmp.") == 0,
           "abandoning a replacement keeps the old file and deletes the temporary");

  st = gn_h5_create_atomic(&par, in_dir("abandoned.h5"), &f);
  st = st ? st : gn_h5_write_f64(f, "/x", 1, d, x);
  GT_CHECK(st == GN_OK && gn_h5_abandon(f) == GN_OK, "abandon a new atomic file");
  GT_CHECK(!exists_on_disk(in_dir("abandoned.h5")) && count_prefix("abandoned.h5") == 0,
           "an abandoned new file leaves nothing behind");

  GT_CHECK(gn_h5_create(&par, in_dir("plain.h5"), &f) == GN_OK, "create plain.h5");
  st = gn_h5_abandon(f);
  GT_CHECK(st == GN_EINTERNAL && exists_on_disk(in_dir("plain.h5")),
           "abandoning a file not made atomically closes it, keeps it and reports the misuse");
  GT_CHECK(gn_h5_close(NULL) == GN_OK && gn_h5_abandon(NULL) == GN_OK,
           "close and abandon of NULL are no-ops");
  free(x);
  free(y);
}

/* Rank 0 copies the file byte for byte: the copy is a valid HDF5 file only if the flush put
 * every piece of metadata on disk. */
static int copy_file(const char *from, const char *to) {
  FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
  int ok = in && out;
  char buf[65536];
  for (size_t n; ok && (n = fread(buf, 1, sizeof buf, in)) > 0;) ok = fwrite(buf, 1, n, out) == n;
  if (in) fclose(in);
  if (out && fclose(out) != 0) ok = 0;
  return ok;
}

static void test_flush(void) {
  gn_h5 *f = NULL;
  GT_CHECK(gn_h5_create(&par, in_dir("flushed.h5"), &f) == GN_OK, "create flushed.h5");
  const int64_t d[1] = {6};
  double *x = fill(6, 300);
  int st = gn_h5_write_f64(f, "/x", 1, d, x);
  for (int step = 0; st == GN_OK && step < 3; ++step) {
    double v[2] = {series_val(0, step), series_val(1, step)};
    st = gn_h5_append(f, "/metrics", 2, SERIES, v);
  }
  st = st ? st : gn_h5_attr_str(f, "/", "format", "gnrev-test-1");
  st = st ? st : gn_h5_flush(f);
  GT_CHECK(st == GN_OK, "write, append and flush");
  int copied = par.rank != 0 || copy_file(in_dir("flushed.h5"), in_dir("flushed_copy.h5"));
  GT_REQUIRE(copied, "copy the open file after the flush");
  GT_CHECK(read_back("flushed_copy.h5", x, 6), "a copy taken right after a flush is a complete file");
  gn_h5 *c = NULL;
  const int s3[3] = {0, 1, 2};
  GT_CHECK(gn_h5_open(&par, in_dir("flushed_copy.h5"), false, &c) == GN_OK &&
               series_equal(c, "/metrics/loss", 0, 3, s3) && gn_h5_close(c) == GN_OK,
           "the flushed copy holds the series appended so far");
  GT_CHECK(gn_h5_close(f) == GN_OK, "close flushed.h5");
  free(x);
}

static void remove_dir(void) {
  DIR *d = opendir(dir);
  if (d) {
    for (struct dirent *e; (e = readdir(d));) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      char p[4352];
      snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
      unlink(p);
    }
    closedir(d);
  }
  rmdir(dir);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  gt_plan(94); /* one per GT_CHECK made (each once) */
  if (gn_par_open(MPI_COMM_WORLD, &par) != GN_OK) MPI_Abort(MPI_COMM_WORLD, 1);
  const char *env = getenv("H5IO_TEST_DIR");
  bool temporary = !env || !env[0];
  if (temporary) {
    if (par.rank == 0) {
      snprintf(dir, sizeof dir, "%s/gnrev_h5io_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
      if (!mkdtemp(dir)) dir[0] = '\0';
    }
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, par.comm);
  } else {
    snprintf(dir, sizeof dir, "%s", env);
  }
  GT_REQUIRE(dir[0] != '\0', "a test directory is available");
  gt_note("files in %s", dir);

  test_replicated();
  test_rows();
  test_series();
  test_attributes();
  test_read_errors();
  test_open_errors();
  test_atomic();
  test_flush();

  MPI_Barrier(par.comm);
  if (temporary && par.rank == 0 && dir[0]) remove_dir();
  gn_par_close(&par);
  MPI_Finalize();
  return gt_finish();
}
