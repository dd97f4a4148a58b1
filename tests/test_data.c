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

static uint32_t be32_of(const unsigned char *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

static void put_be32(unsigned char *b, uint32_t v) {
  b[0] = (unsigned char)(v >> 24);
  b[1] = (unsigned char)(v >> 16);
  b[2] = (unsigned char)(v >> 8);
  b[3] = (unsigned char)v;
}

/* An IDX file: magic, dims (big-endian), then payload bytes; gzipped when gz (level 1: fast, and
 * every level decompresses to the same bytes). */
static void write_idx(const char *path, int gz, uint32_t magic, const uint32_t *dims, int ndims,
                      const uint8_t *payload, size_t bytes) {
  unsigned char head[16];
  put_be32(head, magic);
  for (int k = 0; k < ndims; ++k) put_be32(head + 4 + 4 * k, dims[k]);
  size_t hb = 4 + 4 * (size_t)ndims;
  if (gz) {
    gzFile f = gzopen(path, "wb1");
    gzwrite(f, head, (unsigned)hb);
    if (bytes) gzwrite(f, payload, (unsigned)bytes);
    gzclose(f);
  } else {
    FILE *f = fopen(path, "wb");
    fwrite(head, 1, hb, f);
    if (bytes) fwrite(payload, 1, bytes, f);
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

/* Image side of the IDX tests: MNIST's and Fashion-MNIST's, the only size those sources accept. */
enum { SIDE = 28, D = SIDE * SIDE };

static void test_idx(int gz) {
  char dir[512];
  subdir(gz ? "idx_gz" : "idx_plain", dir, sizeof dir);
  idx_spec sp = {.gz = gz, .n = {5, 3}, .rows = SIDE, .cols = SIDE};
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
  GT_CHECK(tr.n == ntr && tr.d == D && te.n == 3 && te.d == D && tr.classes == 10 && te.classes == 10,
           "%s: shapes (n_train %s), d = rows x cols, 10 classes", tag,
           gz ? "= 3 keeps the first 3" : "= 0 keeps all");
  int exact = 1;
  for (int s = 0; s < 2; ++s) {
    const gn_dataset *set = s ? &te : &tr;
    for (int64_t i = 0; i < set->n; ++i) {
      exact &= set->y[i] == idx_lab(s, i);
      for (int64_t j = 0; j < D; ++j) exact &= set->x[i * D + j] == norm1(idx_pix(s, i, j), mean, std);
    }
  }
  GT_CHECK(exact, "%s: pixels are (p/255 - %.4f)/%.4f in float32 exactly, labels as stored", tag, mean, std);
  GT_CHECK(tr.win != MPI_WIN_NULL && tr.heap == NULL && te.win != MPI_WIN_NULL,
           "%s: stored in node-shared windows", tag);
  if (!gz) {
    int64_t idx[2] = {4, 1};
    static gn_real x[2 * D], x2[D];
    int32_t y[2];
    gn_data_gather(&tr, idx, 2, x, y);
    int same = y[0] == idx_lab(0, 4) && y[1] == idx_lab(0, 1);
    for (int j = 0; j < D; ++j)
      same &= x[j] == (gn_real)norm1(idx_pix(0, 4, j), mean, std) &&
              x[D + j] == (gn_real)norm1(idx_pix(0, 1, j), mean, std);
    gn_data_gather(&tr, idx + 1, 1, x2, NULL);
    same &= memcmp(x2, x + D, sizeof x2) == 0;
    GT_CHECK(same, "gather copies the requested rows in order, as gn_real (labels optional)");
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
       {.n = {5, 3}, .rows = SIDE, .cols = SIDE, .img_magic = 0x00000804},
       0,
       GN_EINPUT,
       "train-images-idx3-ubyte",
       "magic number 0x00000804",
       "expected 0x00000803"},
      {"idx_truncated_images",
       {.n = {5, 3}, .rows = SIDE, .cols = SIDE, .img_cut = 3},
       0,
       GN_EINPUT,
       "train-images-idx3-ubyte",
       "expected 3936 bytes", /* 16-byte header + 5 x 784 */
       "got 3933"},
      {"idx_truncated_labels",
       {.n = {5, 3}, .rows = SIDE, .cols = SIDE, .lab_cut = 2},
       0,
       GN_EINPUT,
       "train-labels-idx1-ubyte",
       "expected 13 bytes",
       "got 11"},
      {"idx_count_mismatch",
       {.n = {5, 3}, .rows = SIDE, .cols = SIDE, .lab_count = 4},
       0,
       GN_EINPUT,
       "train-labels-idx1-ubyte",
       "holds 5 images",
       "holds 4 labels"},
      {"idx_label_out_of_range",
       {.n = {5, 3}, .rows = SIDE, .cols = SIDE, .bad_label = 1},
       0,
       GN_EINPUT,
       "train-labels-idx1-ubyte",
       "label 10 of sample 3",
       "0..9"},
      {"idx_missing_file",
       {.n = {5, 3}, .rows = SIDE, .cols = SIDE, .skip_test_labels = 1},
       0,
       GN_EIO,
       "t10k-labels-idx1-ubyte",
       "cannot open",
       NULL},
      {"idx_n_train_too_large",
       {.n = {5, 3}, .rows = SIDE, .cols = SIDE},
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

  /* A training file cut inside its second record. */
  subdir("cifar_cut", dir, sizeof dir);
  make_cifar(dir, per_file, 3, 0);
  snprintf(file, sizeof file, "%s/data_batch_5.bin", dir);
  if (par.rank == 0 && truncate(file, CIFAR_REC + 100) != 0) gt_note("truncate %s: %s", file, strerror(errno));
  MPI_Barrier(MPI_COMM_WORLD);
  deck = deck_for(GN_SRC_CIFAR10, dir);
  expect_error("cifar_training_file_cut_mid_record", &deck, GN_EINPUT, file,
               "size 3173 bytes is not a multiple of the 3073");

  /* More samples asked for than the five files hold (2 + 1 + 0 + 1 + 2). */
  subdir("cifar_small", dir, sizeof dir);
  make_cifar(dir, per_file, 3, 0);
  MPI_Barrier(MPI_COMM_WORLD);
  deck = deck_for(GN_SRC_CIFAR10, dir);
  deck.n_train = 7;
  char want[700];
  snprintf(want, sizeof want, "n_train = 7 exceeds the 6 samples available in %s/data_batch_1.bin", dir);
  expect_error("cifar_n_train_too_large", &deck, GN_EINPUT, want, NULL);

  /* Label 10 in the first record of data_batch_4 (the 4th training sample), past the 2 kept:
   * every label is checked, not only those of the samples kept. */
  snprintf(file, sizeof file, "%s/data_batch_4.bin", dir);
  if (par.rank == 0) {
    FILE *f = fopen(file, "r+b");
    if (f) {
      fputc(10, f);
      fclose(f);
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);
  deck = deck_for(GN_SRC_CIFAR10, dir);
  deck.n_train = 2;
  expect_error("cifar_label_out_of_range_past_n_train", &deck, GN_EINPUT, file,
               "record 0 has label 10, expected 0..9");
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

/* ---- IDX files against the data set the source names ---------------------------------------- */

/* Headers MNIST cannot have are refused before any pixel is read. */
static void test_idx_header_refused(void) {
  char dir[512], file[600];
  subdir("idx_2x3", dir, sizeof dir);
  idx_spec sp = {.n = {5, 3}, .rows = 2, .cols = 3};
  make_idx(dir, &sp);
  MPI_Barrier(MPI_COMM_WORLD);
  gn_deck deck = deck_for(GN_SRC_MNIST, dir);
  snprintf(file, sizeof file, "%s/train-images-idx3-ubyte holds 2 x 3 images", dir);
  expect_error("idx_2x3_images_refused_as_mnist", &deck, GN_EINPUT, file,
               "neither MNIST nor Fashion-MNIST");

  /* 10 001 test images: more than MNIST's test set. Headers only: the probe reads no pixels. */
  subdir("idx_too_many", dir, sizeof dir);
  idx_spec small = {.n = {5, 0}, .rows = SIDE, .cols = SIDE};
  make_idx(dir, &small);
  if (par.rank == 0) {
    uint32_t idims[3] = {10001, SIDE, SIDE}, ldims[1] = {10001};
    snprintf(file, sizeof file, "%s/t10k-images-idx3-ubyte", dir);
    write_idx(file, 0, 0x00000803, idims, 3, NULL, 0);
    snprintf(file, sizeof file, "%s/t10k-labels-idx1-ubyte", dir);
    write_idx(file, 0, 0x00000801, ldims, 1, NULL, 0);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  deck = deck_for(GN_SRC_FASHION_MNIST, dir);
  snprintf(file, sizeof file, "%s/t10k-images-idx3-ubyte holds 10001 images", dir);
  expect_error("idx_more_test_images_than_fashion_mnist_refused", &deck, GN_EINPUT, file,
               "more than the 10000 of Fashion-MNIST's test set");
}

/* The real data sets where installed: MNIST by `make data`, Fashion-MNIST by Debian. */
static const char *const MNIST_DIR = "/usr/share/datasets/mnist";
static const char *const FASHION_DIR = "/usr/share/datasets/fashion-mnist";
static const char *const IDX_NAME[2][2] = {{"train-images-idx3-ubyte", "train-labels-idx1-ubyte"},
                                           {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}};

/* The file gnrev would read for base name `name` in dir (name.gz first), into out; 0 if none. */
static int real_file(const char *dir, const char *name, char *out, size_t cap) {
  snprintf(out, cap, "%s/%s.gz", dir, name);
  if (access(out, R_OK) == 0) return 1;
  snprintf(out, cap, "%s/%s", dir, name);
  return access(out, R_OK) == 0;
}

static int have_all(const char *dir) {
  char f[600];
  for (int s = 0; s < 2; ++s)
    for (int k = 0; k < 2; ++k)
      if (!real_file(dir, IDX_NAME[s][k], f, sizeof f)) return 0;
  return 1;
}

/* Rank 0 links split `to` of folder dst to split `from` of folder src (suffix kept). */
static void link_split(const char *dst, int to, const char *src, int from) {
  if (par.rank != 0) return;
  for (int k = 0; k < 2; ++k) {
    char target[600], link[700];
    real_file(src, IDX_NAME[from][k], target, sizeof target);
    int gz = strcmp(target + strlen(target) - 3, ".gz") == 0;
    snprintf(link, sizeof link, "%s/%s%s", dst, IDX_NAME[to][k], gz ? ".gz" : "");
    if (symlink(target, link) != 0) gt_note("symlink %s -> %s: %s", link, target, strerror(errno));
  }
}

/* Loads and expects a refusal whose message holds the folder's file, what it is and its MD5. */
static void expect_known(const char *name, gn_source source, const char *dir, const char *file,
                         const char *is, const char *md5) {
  char a[800];
  snprintf(a, sizeof a, "%s/%s", dir, file);
  gn_deck deck = deck_for(source, dir);
  deck.n_train = 10;
  deck.n_test = 10;
  gn_dataset tr, te;
  gn_error_clear();
  int st = gn_data_load(&par, &deck, &tr, &te);
  const char *msg = gn_error_message();
  int ok = st == GN_EINPUT && strstr(msg, a) && strstr(msg, is) && strstr(msg, md5);
  if (!ok) gt_note("%s: status %d, message: %s", name, st, msg);
  GT_CHECK(ok, "%s: refused, the message naming %s, '%s' and MD5 %s", name, file, is, md5);
  gn_data_free(&tr);
  gn_data_free(&te);
}

/* MD5s of the uncompressed files, as published with each data set (not computed here). */
#define MNIST_TRAIN_IMAGES_MD5 "6bbc9ace898e44ae57da46a324031adb"
#define MNIST_T10K_IMAGES_MD5 "2646ac647ad5339dbf082846283269ea"
#define FASHION_TRAIN_IMAGES_MD5 "f4a8712d7a061bf5bd6d2ca38dc4d50a"
#define FASHION_T10K_IMAGES_MD5 "8181f5470baa50b63fa0f6fddb340f0a"

static void test_known_files_refused_under_the_wrong_source(void) {
  int mnist = have_all(MNIST_DIR), fashion = have_all(FASHION_DIR);
  if (fashion)
    expect_known("fashion_files_refused_as_mnist", GN_SRC_MNIST, FASHION_DIR, "train-images-idx3-ubyte.gz",
                 "is Fashion-MNIST's train-images-idx3-ubyte", FASHION_TRAIN_IMAGES_MD5);
  else
    gt_note("skip: no Fashion-MNIST in %s", FASHION_DIR);
  if (!mnist) {
    gt_note("skip: no MNIST in %s (make data installs it): MNIST refusal checks", MNIST_DIR);
    return;
  }
  expect_known("mnist_files_refused_as_fashion_mnist", GN_SRC_FASHION_MNIST, MNIST_DIR,
               "train-images-idx3-ubyte", "is MNIST's train-images-idx3-ubyte", MNIST_TRAIN_IMAGES_MD5);
  char dir[512];
  /* the test set read as the training set */
  subdir("idx_swapped", dir, sizeof dir);
  link_split(dir, 0, MNIST_DIR, 1);
  link_split(dir, 1, MNIST_DIR, 1);
  MPI_Barrier(MPI_COMM_WORLD);
  expect_known("mnist_test_files_refused_as_training_files", GN_SRC_MNIST, dir, "train-images-idx3-ubyte",
               "is MNIST's t10k-images-idx3-ubyte (the MD5 of its content is " MNIST_T10K_IMAGES_MD5
               "), not its train-images-idx3-ubyte",
               MNIST_T10K_IMAGES_MD5);
  if (!fashion) return;
  /* MNIST's training set with Fashion-MNIST's test set */
  subdir("idx_mixed", dir, sizeof dir);
  link_split(dir, 0, MNIST_DIR, 0);
  link_split(dir, 1, FASHION_DIR, 1);
  MPI_Barrier(MPI_COMM_WORLD);
  expect_known("fashion_test_files_beside_mnist_training_files_refused", GN_SRC_MNIST, dir,
               "t10k-images-idx3-ubyte.gz", "is Fashion-MNIST's t10k-images-idx3-ubyte",
               FASHION_T10K_IMAGES_MD5);
}

/* Rank 0 copies the first n samples of MNIST's split s (read from `from`) into dst as IDX files
 * with count n (gzipped at level 1 when gz); returns the first image and label via img0/lab0. */
static void copy_idx(const char *from, int s, const char *dst, int64_t n, int gz, uint8_t img0[D],
                     uint8_t *lab0) {
  if (par.rank != 0) return;
  for (int k = 0; k < 2; ++k) {
    char in[600], out[700];
    real_file(from, IDX_NAME[s][k], in, sizeof in);
    gzFile f = gzopen(in, "rb");
    int64_t item = k == 0 ? D : 1, header = k == 0 ? 16 : 8;
    unsigned char head[16];
    int64_t count = 0;
    if (f && gzread(f, head, (unsigned)header) == header) count = be32_of(head + 4);
    int64_t keep = n > 0 && n < count ? n : count;
    uint8_t *buf = malloc((size_t)(keep * item) + 1);
    int64_t got = f ? gzread(f, buf, (unsigned)(keep * item)) : -1;
    if (f) gzclose(f);
    if (got != keep * item) gt_note("copy_idx: short read of %s", in);
    if (k == 0) memcpy(img0, buf, D);
    else *lab0 = buf[0];
    uint32_t dims[3] = {(uint32_t)keep, SIDE, SIDE}, ldims[1] = {(uint32_t)keep};
    snprintf(out, sizeof out, "%s/%s%s", dst, IDX_NAME[s][k], gz ? ".gz" : "");
    write_idx(out, gz, k == 0 ? 0x00000803 : 0x00000801, k == 0 ? dims : ldims, k == 0 ? 3 : 1, buf,
              (size_t)(keep * item));
    free(buf);
  }
}

/* A gzipped copy of MNIST (other bytes than any published .gz) is MNIST by content; a subset of
 * its own (content unknown) is accepted by its header; both load the images as stored. */
static void test_mnist_copies_accepted(void) {
  if (!have_all(MNIST_DIR)) {
    gt_note("skip: no MNIST in %s (make data installs it): gzipped copy and subset checks", MNIST_DIR);
    return;
  }
  char dir[512];
  uint8_t img0[D], lab0 = 0, unused[D], lab_unused;
  subdir("mnist_gz", dir, sizeof dir);
  copy_idx(MNIST_DIR, 0, dir, 0, 1, img0, &lab0);
  copy_idx(MNIST_DIR, 1, dir, 0, 1, unused, &lab_unused);
  MPI_Bcast(img0, D, MPI_UNSIGNED_CHAR, 0, MPI_COMM_WORLD);
  MPI_Bcast(&lab0, 1, MPI_UNSIGNED_CHAR, 0, MPI_COMM_WORLD);
  gn_deck deck = deck_for(GN_SRC_MNIST, dir);
  deck.n_train = 20;
  deck.n_test = 20;
  gn_dataset tr, te;
  int st = gn_data_load(&par, &deck, &tr, &te);
  GT_CHECK(st == GN_OK, "mnist_gzipped_copy: accepted as MNIST (%s)", st ? gn_error_message() : "ok");
  if (st == GN_OK) {
    int same = tr.y[0] == lab0 && tr.d == D;
    for (int j = 0; j < D; ++j) same &= tr.x[j] == norm1(img0[j], 0.1307, 0.3081);
    GT_CHECK(same, "mnist_gzipped_copy: first training image and label (%d) equal MNIST's, with MNIST's "
             "statistics", lab0);
  }
  gn_data_free(&tr);
  gn_data_free(&te);
  expect_known("mnist_gzipped_copy_refused_as_fashion_mnist", GN_SRC_FASHION_MNIST, dir,
               "train-images-idx3-ubyte.gz", "is MNIST's train-images-idx3-ubyte", MNIST_TRAIN_IMAGES_MD5);

  subdir("mnist_subset", dir, sizeof dir);
  copy_idx(MNIST_DIR, 0, dir, 100, 0, img0, &lab0);
  copy_idx(MNIST_DIR, 1, dir, 50, 0, unused, &lab_unused);
  MPI_Bcast(img0, D, MPI_UNSIGNED_CHAR, 0, MPI_COMM_WORLD);
  MPI_Bcast(&lab0, 1, MPI_UNSIGNED_CHAR, 0, MPI_COMM_WORLD);
  deck = deck_for(GN_SRC_MNIST, dir);
  st = gn_data_load(&par, &deck, &tr, &te);
  GT_CHECK(st == GN_OK && tr.n == 100 && te.n == 50,
           "mnist_subset: 100 + 50 samples of unknown content with MNIST's header accepted (%s)",
           st ? gn_error_message() : "ok");
  if (st == GN_OK) {
    int same = tr.y[0] == lab0;
    for (int j = 0; j < D; ++j) same &= tr.x[j] == norm1(img0[j], 0.1307, 0.3081);
    GT_CHECK(same, "mnist_subset: first training image and label equal MNIST's");
  }
  gn_data_free(&tr);
  gn_data_free(&te);
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
  gt_plan(91); /* one per GT_CHECK or gt_skip made; expect_error makes two */
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
    test_idx_header_refused();
    test_known_files_refused_under_the_wrong_source();
    test_mnist_copies_accepted();
    test_one_rank_error();
    test_fashion_mnist();
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (par.rank == 0 && root[0]) rm_tree(root);
  gn_par_close(&par);
  MPI_Finalize();
  return gt_finish();
}
