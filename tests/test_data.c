/* test_data.c — the data module: readers of IDX (plain and gzipped), CIFAR-10 binary, HDF5 and
 * synthetic data; normalisation; n_train/n_test; error messages; errors seen by one rank only.
 * Small files are written by rank 0 into a temporary folder that every rank shares. */
// NP: 1 3
#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "gnrev/input/data.h"
#include "gnrev/core/rng.h"
#include "testlib.h"

static gn_par par;
static char root[256];

/* ---- file writers (rank 0) ----------------------------------------------------------------- */

static void subdir(const char *name, char *out, size_t cap) {
  snprintf(out, cap, "%s/%s", root, name);
  if (par.rank == 0) mkdir(out, 0700);
}

static void put_be32(unsigned char *b, uint32_t v) {
  b[0] = (unsigned char)(v >> 24);
  b[1] = (unsigned char)(v >> 16);
  b[2] = (unsigned char)(v >> 8);
  b[3] = (unsigned char)v;
}

/* An IDX file: magic, dims (big-endian), then payload bytes; gzipped when gz. */
static void write_idx(const char *path, int gz, uint32_t magic, const uint32_t *dims, int ndims,
                      const uint8_t *payload, size_t bytes) {
  unsigned char head[16];
  put_be32(head, magic);
  for (int k = 0; k < ndims; ++k) put_be32(head + 4 + 4 * k, dims[k]);
  size_t hb = 4 + 4 * (size_t)ndims;
  if (gz) {
    gzFile f = gzopen(path, "wb");
    gzwrite(f, head, (unsigned)hb);
    if (bytes) gzwrite(f, payload, (unsigned)bytes);
    gzclose(f);
  } else {
    FILE *f = fopen(path, "wb");
    fwrite(head, 1, hb, f);
    fwrite(payload, 1, bytes, f);
    fclose(f);
  }
}

/* Pixel j of IDX sample i of split s; covers 0 and 255. */
static uint8_t idx_pix(int s, int64_t i, int64_t j) {
  return j == 1 ? 255 : (uint8_t)((i * 37 + j * 11 + s * 101) % 256);
}
static uint8_t idx_lab(int s, int64_t i) { return (uint8_t)(s == 0 ? (i * 3) % 10 : (i * 7 + 1) % 10); }

typedef struct {
  int gz;
  int64_t n[2]; /* samples per split */
  uint32_t rows, cols;
  uint32_t img_magic;       /* of the training images file */
  uint32_t lab_count;       /* declared in the training labels header (0: n[0]) */
  int64_t img_cut, lab_cut; /* payload bytes dropped from the training files */
  int bad_label;            /* training label 3 set to 10 */
  int skip_test_labels;     /* no t10k labels file */
} idx_spec;

static void make_idx(const char *dir, const idx_spec *sp) {
  if (par.rank != 0) return;
  static const char *prefix[2] = {"train", "t10k"};
  int64_t d = (int64_t)sp->rows * sp->cols;
  for (int s = 0; s < 2; ++s) {
    int64_t n = sp->n[s];
    uint8_t *img = malloc((size_t)(n * d) + 1), *lab = malloc((size_t)n + 1);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < d; ++j) img[i * d + j] = idx_pix(s, i, j);
      lab[i] = idx_lab(s, i);
    }
    if (s == 0 && sp->bad_label) lab[3] = 10;
    char path[512];
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte%s", dir, prefix[s], sp->gz ? ".gz" : "");
    uint32_t idims[3] = {(uint32_t)n, sp->rows, sp->cols};
    uint32_t magic = s == 0 && sp->img_magic ? sp->img_magic : 0x00000803;
    write_idx(path, sp->gz, magic, idims, 3, img, (size_t)(n * d - (s == 0 ? sp->img_cut : 0)));
    if (!(s == 1 && sp->skip_test_labels)) {
      snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte%s", dir, prefix[s], sp->gz ? ".gz" : "");
      uint32_t ldims[1] = {s == 0 && sp->lab_count ? sp->lab_count : (uint32_t)n};
      write_idx(path, sp->gz, 0x00000801, ldims, 1, lab, (size_t)(n - (s == 0 ? sp->lab_cut : 0)));
    }
    free(img);
    free(lab);
  }
}

enum { CIFAR_D = 3072, CIFAR_REC = 3073 };

static uint8_t cifar_pix(int s, int64_t i, int64_t j) { return (uint8_t)((i * 7 + j * 13 + s * 3) % 256); }
static uint8_t cifar_lab(int s, int64_t i) { return (uint8_t)((i * 3 + s) % 10); }

/* CIFAR-10 files with per_file[k] records in data_batch_k+1 and n_test in test_batch; extra
 * bytes appended to test_batch.bin. */
static void make_cifar(const char *dir, const int64_t per_file[5], int64_t n_test, int extra) {
  if (par.rank != 0) return;
  uint8_t rec[CIFAR_REC];
  int64_t i = 0;
  for (int k = 0; k <= 5; ++k) {
    int s = k == 5;
    char path[512];
    if (s)
      snprintf(path, sizeof path, "%s/test_batch.bin", dir);
    else
      snprintf(path, sizeof path, "%s/data_batch_%d.bin", dir, k + 1);
    if (s) i = 0;
    FILE *f = fopen(path, "wb");
    int64_t m = s ? n_test : per_file[k];
    for (int64_t r = 0; r < m; ++r, ++i) {
      rec[0] = cifar_lab(s, i);
      for (int64_t j = 0; j < CIFAR_D; ++j) rec[1 + j] = cifar_pix(s, i, j);
      fwrite(rec, 1, CIFAR_REC, f);
    }
    if (s)
      for (int e = 0; e < extra; ++e) fputc(0, f);
    fclose(f);
  }
}

static void h5_put(hid_t file, const char *name, hid_t mem, hid_t ftype, int rank, const hsize_t *dims,
                   const void *data) {
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t space = H5Screate_simple(rank, dims, NULL);
  hid_t dset = H5Dcreate2(file, name, ftype, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(dset, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  H5Dclose(dset);
  H5Sclose(space);
  H5Pclose(lcpl);
}

enum { H5_NTR = 7, H5_NTE = 5, H5_D = 4 };
static double h5_xtrain(int64_t i, int64_t j) { return (i - 3.25) * 0.1 + j * 1.0e-3 + 1.0 / 3.0; }
static float h5_xtest(int64_t i, int64_t j) { return (float)(i * 0.5 - j * 0.25); }
static int64_t h5_ytrain(int64_t i) { return i % 5; }
static int32_t h5_ytest(int64_t i) { return i == 2 ? 6 : (int32_t)(i % 3); }

/* The HDF5 layout: /train/x double, /train/y int64, /test/x float, /test/y int32. Variants:
 * 1 no /test/y, 2 /train/x of rank 3, 3 a negative training label, 4 a NaN input. */
static void make_h5(const char *path, int variant) {
  if (par.rank != 0) return;
  double xtr[H5_NTR * H5_D];
  int64_t ytr[H5_NTR];
  float xte[H5_NTE * H5_D];
  int32_t yte[H5_NTE];
  for (int64_t i = 0; i < H5_NTR; ++i) {
    for (int64_t j = 0; j < H5_D; ++j) xtr[i * H5_D + j] = h5_xtrain(i, j);
    ytr[i] = h5_ytrain(i);
  }
  if (variant == 3) ytr[4] = -1;
  if (variant == 4) xtr[1 * H5_D + 1] = NAN;
  for (int64_t i = 0; i < H5_NTE; ++i) {
    for (int64_t j = 0; j < H5_D; ++j) xte[i * H5_D + j] = h5_xtest(i, j);
    yte[i] = h5_ytest(i);
  }
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hsize_t d2[2] = {H5_NTR, H5_D}, d3[3] = {H5_NTR, 2, 2}, n1[1] = {H5_NTR};
  if (variant == 2)
    h5_put(f, "/train/x", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, 3, d3, xtr);
  else
    h5_put(f, "/train/x", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, 2, d2, xtr);
  h5_put(f, "/train/y", H5T_NATIVE_INT64, H5T_STD_I64LE, 1, n1, ytr);
  hsize_t e2[2] = {H5_NTE, H5_D}, e1[1] = {H5_NTE};
  h5_put(f, "/test/x", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 2, e2, xte);
  if (variant != 1) h5_put(f, "/test/y", H5T_NATIVE_INT32, H5T_STD_I32LE, 1, e1, yte);
  H5Fclose(f);
}

static void rm_tree(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    DIR *dir = opendir(path);
    struct dirent *e;
    while (dir && (e = readdir(dir))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      char child[1024];
      snprintf(child, sizeof child, "%s/%s", path, e->d_name);
      rm_tree(child);
    }
    if (dir) closedir(dir);
    rmdir(path);
  } else {
    unlink(path);
  }
}

/* ---- helpers -------------------------------------------------------------------------------- */

static gn_deck deck_for(gn_source source, const char *path) {
  gn_deck deck;
  memset(&deck, 0, sizeof deck);
  deck.source = source;
  snprintf(deck.path, sizeof deck.path, "%s", path);
  deck.seed = 42;
  return deck;
}

static float norm1(uint8_t p, double mean, double std) { return (float)(((double)p / 255.0 - mean) / std); }

/* Loads a deck that must fail: status equal on every rank and the message holding each needle. */
static void expect_error(const char *name, const gn_deck *deck, int want, const char *a, const char *b) {
  gn_dataset tr, te;
  gn_error_clear();
  int st = gn_data_load(&par, deck, &tr, &te);
  const char *msg = gn_error_message();
  int ok = st == want && strstr(msg, a) && (!b || strstr(msg, b));
  if (!ok && par.rank == 0) gt_note("%s: status %d, message: %s", name, st, msg);
  GT_CHECK(ok, "%s", name);
  GT_CHECK(tr.x == NULL && te.x == NULL && tr.heap == NULL && tr.win == MPI_WIN_NULL,
           "%s: nothing is left allocated after the error", name);
  gn_data_free(&tr);
  gn_data_free(&te);
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_idx(int gz) {
  char dir[512];
  subdir(gz ? "idx_gz" : "idx_plain", dir, sizeof dir);
  idx_spec sp = {.gz = gz, .n = {5, 3}, .rows = 2, .cols = 3};
  make_idx(dir, &sp);
  MPI_Barrier(MPI_COMM_WORLD);
  /* plain files as Fashion-MNIST, gzipped as MNIST: both sets of statistics get checked */
  gn_source src = gz ? GN_SRC_MNIST : GN_SRC_FASHION_MNIST;
  double mean = gz ? 0.1307 : 0.2860, std = gz ? 0.3081 : 0.3530;
  const char *tag = gz ? "idx_gz_mnist" : "idx_plain_fashion";
  gn_deck deck = deck_for(src, dir);
  if (gz) deck.n_train = 3;
  gn_dataset tr, te;
  int st = gn_data_load(&par, &deck, &tr, &te);
  GT_CHECK(st == GN_OK, "%s: loads (%s)", tag, st ? gn_error_message() : "ok");
  if (st) return;
  int64_t ntr = gz ? 3 : 5;
  GT_CHECK(tr.n == ntr && tr.d == 6 && te.n == 3 && te.d == 6 && tr.classes == 10 && te.classes == 10,
           "%s: shapes (n_train %s), d = rows x cols, 10 classes", tag,
           gz ? "= 3 keeps the first 3" : "= 0 keeps all");
  int exact = 1;
  for (int s = 0; s < 2; ++s) {
    const gn_dataset *set = s ? &te : &tr;
    for (int64_t i = 0; i < set->n; ++i) {
      exact &= set->y[i] == idx_lab(s, i);
      for (int64_t j = 0; j < 6; ++j) exact &= set->x[i * 6 + j] == norm1(idx_pix(s, i, j), mean, std);
    }
  }
  GT_CHECK(exact, "%s: pixels are (p/255 - %.4f)/%.4f in float32 exactly, labels as stored", tag, mean, std);
  GT_CHECK(tr.win != MPI_WIN_NULL && tr.heap == NULL && te.win != MPI_WIN_NULL,
           "%s: stored in node-shared windows", tag);
  if (!gz) {
    int64_t idx[2] = {4, 1};
    double x[12];
    int32_t y[2];
    gn_data_gather(&tr, idx, 2, x, y);
    int same = y[0] == idx_lab(0, 4) && y[1] == idx_lab(0, 1);
    for (int j = 0; j < 6; ++j)
      same &= x[j] == (double)norm1(idx_pix(0, 4, j), mean, std) &&
              x[6 + j] == (double)norm1(idx_pix(0, 1, j), mean, std);
    double x2[6] = {0};
    gn_data_gather(&tr, idx + 1, 1, x2, NULL);
    same &= memcmp(x2, x + 6, sizeof x2) == 0;
    GT_CHECK(same, "gather copies the requested rows in order, as doubles (labels optional)");
  }
  gn_data_free(&tr);
  gn_data_free(&te);
  GT_CHECK(tr.x == NULL && tr.win == MPI_WIN_NULL, "%s: free resets the set", tag);
}

static void test_idx_errors(void) {
  struct {
    const char *name;
    idx_spec sp;
    int64_t n_train;
    int status;
    const char *file, *a, *b;
  } cases[] = {
      {"idx_wrong_magic",
       {.n = {5, 3}, .rows = 2, .cols = 3, .img_magic = 0x00000804},
       0,
       GN_EINPUT,
       "train-images-idx3-ubyte",
       "magic number 0x00000804",
       "expected 0x00000803"},
      {"idx_truncated_images",
       {.n = {5, 3}, .rows = 2, .cols = 3, .img_cut = 3},
       0,
       GN_EINPUT,
       "train-images-idx3-ubyte",
       "expected 46 bytes",
       "got 43"},
      {"idx_truncated_labels",
       {.n = {5, 3}, .rows = 2, .cols = 3, .lab_cut = 2},
       0,
       GN_EINPUT,
       "train-labels-idx1-ubyte",
       "expected 13 bytes",
       "got 11"},
      {"idx_count_mismatch",
       {.n = {5, 3}, .rows = 2, .cols = 3, .lab_count = 4},
       0,
       GN_EINPUT,
       "train-labels-idx1-ubyte",
       "holds 5 images",
       "holds 4 labels"},
      {"idx_label_out_of_range",
       {.n = {5, 3}, .rows = 2, .cols = 3, .bad_label = 1},
       0,
       GN_EINPUT,
       "train-labels-idx1-ubyte",
       "label 10 of sample 3",
       "0..9"},
      {"idx_missing_file",
       {.n = {5, 3}, .rows = 2, .cols = 3, .skip_test_labels = 1},
       0,
       GN_EIO,
       "t10k-labels-idx1-ubyte",
       "cannot open",
       NULL},
      {"idx_n_train_too_large",
       {.n = {5, 3}, .rows = 2, .cols = 3},
       6,
       GN_EINPUT,
       "train-images-idx3-ubyte",
       "n_train = 6 exceeds the 5 samples",
       NULL},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; ++c) {
    char dir[512];
    subdir(cases[c].name, dir, sizeof dir);
    make_idx(dir, &cases[c].sp);
    MPI_Barrier(MPI_COMM_WORLD);
    gn_deck deck = deck_for(GN_SRC_FASHION_MNIST, dir);
    deck.n_train = cases[c].n_train;
    char file[600];
    snprintf(file, sizeof file, "%s/%s", dir, cases[c].file);
    gn_dataset tr, te;
    gn_error_clear();
    int st = gn_data_load(&par, &deck, &tr, &te);
    const char *msg = gn_error_message();
    int ok = st == cases[c].status && strstr(msg, file) && strstr(msg, cases[c].a) &&
             (!cases[c].b || strstr(msg, cases[c].b));
    if (!ok) gt_note("%s: status %d, message: %s", cases[c].name, st, msg);
    GT_CHECK(ok, "%s: status %d and a message naming the file and the problem", cases[c].name,
             cases[c].status);
    GT_CHECK(tr.x == NULL && te.x == NULL && tr.win == MPI_WIN_NULL && te.heap == NULL,
             "%s: nothing is left allocated after the error", cases[c].name);
  }
}

static void test_cifar(void) {
  char dir[512];
  subdir("cifar", dir, sizeof dir);
  const int64_t per_file[5] = {2, 1, 0, 1, 2};
  make_cifar(dir, per_file, 3, 0);
  MPI_Barrier(MPI_COMM_WORLD);
  gn_deck deck = deck_for(GN_SRC_CIFAR10, dir);
  deck.n_train = 4; /* spans data_batch_1, 2 and 4 (3 is empty) */
  gn_dataset tr, te;
  int st = gn_data_load(&par, &deck, &tr, &te);
  GT_CHECK(st == GN_OK, "cifar: loads (%s)", st ? gn_error_message() : "ok");
  if (st) return;
  GT_CHECK(tr.n == 4 && te.n == 3 && tr.d == 3072 && te.d == 3072 && tr.classes == 10,
           "cifar: n_train = 4 across batch files, all 3 test records, d = 3072, 10 classes");
  static const double mean[3] = {0.4914, 0.4822, 0.4465}, std[3] = {0.2470, 0.2435, 0.2616};
  int exact = 1;
  for (int s = 0; s < 2; ++s) {
    const gn_dataset *set = s ? &te : &tr;
    for (int64_t i = 0; i < set->n; ++i) {
      exact &= set->y[i] == cifar_lab(s, i);
      for (int64_t j = 0; j < CIFAR_D; ++j)
        exact &= set->x[i * CIFAR_D + j] == norm1(cifar_pix(s, i, j), mean[j / 1024], std[j / 1024]);
    }
  }
  GT_CHECK(exact, "cifar: channel-major R,G,B features normalised with per-channel statistics exactly");
  gn_data_free(&tr);
  gn_data_free(&te);

  subdir("cifar_bad", dir, sizeof dir);
  make_cifar(dir, per_file, 1, 5);
  MPI_Barrier(MPI_COMM_WORLD);
  deck = deck_for(GN_SRC_CIFAR10, dir);
  char file[600];
  snprintf(file, sizeof file, "%s/test_batch.bin", dir);
  expect_error("cifar_size_not_multiple_of_3073", &deck, GN_EINPUT, file,
               "3078 bytes is not a multiple of the 3073");
  snprintf(file, sizeof file, "%s/data_batch_3.bin", dir);
  if (par.rank == 0) unlink(file);
  MPI_Barrier(MPI_COMM_WORLD);
  expect_error("cifar_missing_batch_file", &deck, GN_EIO, file, "cannot open");
}

static void test_hdf5(void) {
  char dir[512], path[600];
  subdir("h5", dir, sizeof dir);
  snprintf(path, sizeof path, "%s/good.h5", dir);
  make_h5(path, 0);
  MPI_Barrier(MPI_COMM_WORLD);
  gn_deck deck = deck_for(GN_SRC_HDF5, path);
  deck.n_test = 2; /* with 3 ranks, one reads no test rows */
  for (int private_copy = 0; private_copy < 2; ++private_copy) {
    /* a window: each rank reads its share of rows; private copies: every rank reads all rows */
    const char *tag = private_copy ? "hdf5_private_heap" : "hdf5_shared_window";
    if (private_copy) setenv("GNREV_DATA_PRIVATE", "1", 1);
    gn_dataset tr, te;
    int st = gn_data_load(&par, &deck, &tr, &te);
    if (private_copy) unsetenv("GNREV_DATA_PRIVATE");
    GT_CHECK(st == GN_OK, "%s: loads (%s)", tag, st ? gn_error_message() : "ok");
    if (st != GN_OK) continue;
    GT_CHECK((tr.win != MPI_WIN_NULL) == !private_copy && (tr.heap != NULL) == private_copy,
             "%s: storage as asked", tag);
    GT_CHECK(tr.n == H5_NTR && tr.d == H5_D && te.n == 2 && te.d == H5_D,
             "%s: shapes from /train/x, n_test = 2 keeps the first 2", tag);
    GT_CHECK(tr.classes == 7 && te.classes == 7,
             "%s: classes = largest label of both files + 1, counting labels past n_test (got %d)", tag,
             tr.classes);
    int exact = 1;
    for (int64_t i = 0; i < tr.n; ++i) {
      exact &= tr.y[i] == h5_ytrain(i);
      for (int64_t j = 0; j < H5_D; ++j) exact &= tr.x[i * H5_D + j] == (float)h5_xtrain(i, j);
    }
    for (int64_t i = 0; i < te.n; ++i) {
      exact &= te.y[i] == h5_ytest(i);
      for (int64_t j = 0; j < H5_D; ++j) exact &= te.x[i * H5_D + j] == h5_xtest(i, j);
    }
    GT_CHECK(exact, "%s: double x rounded to float32, float x unchanged, int64/int32 labels as stored", tag);
    gn_data_free(&tr);
    gn_data_free(&te);
  }
  deck.n_test = 6;
  expect_error("hdf5_n_test_too_large", &deck, GN_EINPUT, "n_test = 6 exceeds the 5 samples",
               "good.h5:/test/x");
  deck.n_test = 0;

  snprintf(path, sizeof path, "%s/no_test_y.h5", dir);
  make_h5(path, 1);
  snprintf(deck.path, sizeof deck.path, "%s/no_test_y.h5", dir);
  MPI_Barrier(MPI_COMM_WORLD);
  expect_error("hdf5_missing_dataset", &deck, GN_EINPUT, deck.path, "dataset /test/y is missing");

  snprintf(path, sizeof path, "%s/rank3.h5", dir);
  make_h5(path, 2);
  snprintf(deck.path, sizeof deck.path, "%s", path);
  MPI_Barrier(MPI_COMM_WORLD);
  expect_error("hdf5_wrong_rank", &deck, GN_EINPUT, path,
               "/train/x has rank 3 (shape 7 x 2 x 2), expected rank 2");

  snprintf(path, sizeof path, "%s/negative.h5", dir);
  make_h5(path, 3);
  snprintf(deck.path, sizeof deck.path, "%s", path);
  MPI_Barrier(MPI_COMM_WORLD);
  expect_error("hdf5_negative_label", &deck, GN_EINPUT, path, "/train/y[4] = -1");

  snprintf(path, sizeof path, "%s/nan.h5", dir);
  make_h5(path, 4);
  snprintf(deck.path, sizeof deck.path, "%s", path);
  MPI_Barrier(MPI_COMM_WORLD);
  expect_error("hdf5_non_finite_input", &deck, GN_EINPUT, path, "/train/x[1][1] = nan");

  snprintf(deck.path, sizeof deck.path, "%s/absent.h5", dir);
  expect_error("hdf5_missing_file", &deck, GN_EIO, deck.path, "cannot open");
}

/* Checksum of a set computed from what gn_data_load stored. */
static void checksum(const gn_dataset *set, double sum[2]) {
  sum[0] = sum[1] = 0;
  for (int64_t k = 0; k < set->n * set->d; ++k) sum[0] += set->x[k] * (double)(1 + k % 7);
  for (int64_t i = 0; i < set->n; ++i) sum[1] += (double)set->y[i] * (double)(i + 1);
}

/* The same checksum straight from the generator (rank 0), without the data module. */
static void synth_direct(const gn_deck *deck, int sub, int64_t n, double sum[2], int *labels_ok) {
  int64_t d = deck->dim, C = deck->classes;
  uint64_t seed = (uint64_t)deck->seed;
  sum[0] = sum[1] = 0;
  *labels_ok = 1;
  int seen[64] = {0};
  for (int64_t i = 0; i < n; ++i) {
    double best = -1e300;
    int arg = -1;
    for (int64_t c = 0; c < C; ++c) {
      double s = 0;
      for (int64_t j = 0; j < d; ++j)
        s += (double)(float)gn_rng_normal(seed, GN_RNG_SYNTH_X, (uint32_t)sub, (uint64_t)(i * d + j)) *
             gn_rng_normal(seed, GN_RNG_SYNTH_TEACHER, 0, (uint64_t)(j * C + c));
      if (s > best) best = s, arg = (int)c;
    }
    for (int64_t j = 0; j < d; ++j)
      sum[0] += (double)(float)gn_rng_normal(seed, GN_RNG_SYNTH_X, (uint32_t)sub, (uint64_t)(i * d + j)) *
                (double)(1 + (i * d + j) % 7);
    sum[1] += (double)arg * (double)(i + 1);
    seen[arg] = 1;
  }
  int distinct = 0;
  for (int c = 0; c < C; ++c) distinct += seen[c];
  *labels_ok = distinct >= 2;
}

static void test_synthetic(void) {
  gn_deck deck = deck_for(GN_SRC_SYNTHETIC, "");
  deck.seed = 1234;
  deck.dim = 6;
  deck.classes = 3;
  deck.synthetic_train = 40;
  deck.synthetic_test = 17;
  double want[2][2];
  int varied[2] = {1, 1};
  if (par.rank == 0)
    for (int s = 0; s < 2; ++s) synth_direct(&deck, s, s ? 17 : 40, want[s], &varied[s]);
  MPI_Bcast(want, 4, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  MPI_Bcast(varied, 2, MPI_INT, 0, MPI_COMM_WORLD);
  GT_REQUIRE(varied[0] && varied[1],
             "synthetic: the teacher's labels use more than one class (else the label check below could not fail)");
  for (int private_copy = 0; private_copy < 2; ++private_copy) {
    const char *tag = private_copy ? "synthetic_private_heap" : "synthetic_shared_window";
    if (private_copy) setenv("GNREV_DATA_PRIVATE", "1", 1);
    gn_dataset tr, te;
    int st = gn_data_load(&par, &deck, &tr, &te);
    if (private_copy) unsetenv("GNREV_DATA_PRIVATE");
    GT_CHECK(st == GN_OK, "%s: loads (%s)", tag, st ? gn_error_message() : "ok");
    if (st) continue;
    GT_CHECK(tr.n == 40 && te.n == 17 && tr.d == 6 && tr.classes == 3 && te.classes == 3,
             "%s: n = synthetic_train/test, d = dim, C = classes", tag);
    GT_CHECK(private_copy ? (tr.win == MPI_WIN_NULL && tr.heap != NULL)
                          : (tr.win != MPI_WIN_NULL && tr.heap == NULL),
             "%s: storage is a %s", tag,
             private_copy ? "private heap block (GNREV_DATA_PRIVATE=1)" : "shared window");
    int in_range = 1;
    for (int s = 0; s < 2; ++s) {
      const gn_dataset *set = s ? &te : &tr;
      for (int64_t i = 0; i < set->n; ++i) in_range &= set->y[i] >= 0 && set->y[i] < 3;
      double got[2];
      checksum(set, got);
      GT_CHECK(got[0] == want[s][0] && got[1] == want[s][1],
               "%s: every rank sees the %s samples and teacher labels drawn directly from gn_rng", tag,
               s ? "test (sub 1)" : "training (sub 0)");
    }
    GT_CHECK(in_range, "%s: labels in 0..C-1", tag);
    gn_data_free(&tr);
    gn_data_free(&te);
  }
  deck.n_train = 41;
  expect_error("synthetic_n_train_too_large", &deck, GN_EINPUT, "n_train = 41 exceeds the 40 samples",
               "synthetic_train");
}

/* A folder only rank 1 is told to use, which does not exist: no hang, one agreed report. */
static void test_one_rank_error(void) {
  char good[512], missing[600];
  subdir("idx_plain", good, sizeof good); /* written by test_idx */
  snprintf(missing, sizeof missing, "%s/missing-folder", root);
  gn_deck deck = deck_for(GN_SRC_FASHION_MNIST, par.rank == 1 ? missing : good);
  gn_dataset tr, te;
  gn_error_clear();
  int st = gn_data_load(&par, &deck, &tr, &te);
  if (par.size == 1) {
    GT_CHECK(st == GN_OK, "one_rank_error: (single rank) the good folder loads");
  } else {
    char want[700];
    snprintf(want, sizeof want, "rank 1: cannot open %s/train-images-idx3-ubyte", missing);
    int ok = st == GN_EIO && strstr(gn_error_message(), want) != NULL;
    if (!ok) gt_note("one_rank_error: status %d, message: %s", st, gn_error_message());
    GT_CHECK(ok, "one_rank_error: every rank returns the same status and rank 1's message naming its file");
  }
  gn_data_free(&tr);
  gn_data_free(&te);
}

/* The real Fashion-MNIST, if installed, against a direct read of its first bytes. */
static void test_fashion_mnist(void) {
  const char *dir = "/usr/share/datasets/fashion-mnist";
  int have = 0;
  uint8_t first_label = 255, first_pix[784];
  if (par.rank == 0) {
    gzFile l = gzopen("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz", "rb");
    gzFile im = gzopen("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", "rb");
    unsigned char head[16];
    if (l && im && gzread(l, head, 8) == 8 && gzread(l, &first_label, 1) == 1 && gzread(im, head, 16) == 16 &&
        gzread(im, first_pix, 784) == 784)
      have = 1;
    if (l) gzclose(l);
    if (im) gzclose(im);
  }
  MPI_Bcast(&have, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (!have) {
    /* The three checks below, counted as skipped (tools/install-deps.sh installs the data set). */
    gt_skip("Fashion-MNIST not installed", "fashion_mnist: loads");
    gt_skip("Fashion-MNIST not installed", "fashion_mnist: 100 x 784 and 50 x 784, 10 classes");
    gt_skip("Fashion-MNIST not installed", "fashion_mnist: first training sample and label equal a direct read");
    return;
  }
  MPI_Bcast(&first_label, 1, MPI_UNSIGNED_CHAR, 0, MPI_COMM_WORLD);
  MPI_Bcast(first_pix, 784, MPI_UNSIGNED_CHAR, 0, MPI_COMM_WORLD);
  gn_deck deck = deck_for(GN_SRC_FASHION_MNIST, dir);
  deck.n_train = 100;
  deck.n_test = 50;
  gn_dataset tr, te;
  int st = gn_data_load(&par, &deck, &tr, &te);
  GT_CHECK(st == GN_OK, "fashion_mnist: loads (%s)", st ? gn_error_message() : "ok");
  if (st) return;
  GT_CHECK(tr.n == 100 && te.n == 50 && tr.d == 784 && te.d == 784 && tr.classes == 10,
           "fashion_mnist: 100 x 784 and 50 x 784, 10 classes");
  int same = tr.y[0] == first_label;
  for (int j = 0; j < 784; ++j) same &= tr.x[j] == norm1(first_pix[j], 0.2860, 0.3530);
  GT_CHECK(same, "fashion_mnist: first training sample and label (%d) equal a direct read of the files",
           first_label);
  gn_data_free(&tr);
  gn_data_free(&te);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  gt_plan(72); /* one per GT_CHECK or gt_skip made; expect_error makes two */
  if (gn_par_open(MPI_COMM_WORLD, &par) != GN_OK) MPI_Abort(MPI_COMM_WORLD, 1);
  if (par.rank == 0) {
    snprintf(root, sizeof root, "/tmp/gnrev_test_data_XXXXXX");
    if (!mkdtemp(root)) root[0] = '\0';
  }
  MPI_Bcast(root, sizeof root, MPI_CHAR, 0, MPI_COMM_WORLD);
  GT_REQUIRE(root[0] != '\0', "a temporary folder was made");
  if (root[0]) {
    test_idx(0);
    test_idx(1);
    test_idx_errors();
    test_cifar();
    test_hdf5();
    test_synthetic();
    test_one_rank_error();
    test_fashion_mnist();
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (par.rank == 0 && root[0]) rm_tree(root);
  gn_par_close(&par);
  MPI_Finalize();
  return gt_finish();
}
