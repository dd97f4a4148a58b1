/* data.c — the data module: loads the training and test sets named by the deck into one
 * node-shared MPI window each (float32 samples, normalised, then int32 labels), dispatches to the
 * format readers (data_idx.c, data_cifar.c, data_hdf5.c, data_synthetic.c), chooses each image
 * source's pixel statistics and agrees every error over all ranks.
 *
 * Loading runs in phases with an agreement between each, so that an error seen by one rank
 * ends the load on every rank before the next collective step: probe (every rank opens its files
 * and checks headers), sizes (n_train/n_test, shapes equal on every rank), allocation (window,
 * or a private heap copy when the window cannot be made), fill (with, for MNIST and
 * Fashion-MNIST, the check that the files are the data set the source names), label checks. */
#include "gnrev/input/data.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zlib.h>

#include "gnrev/core/sysmem.h"
#include "gnrev/input/data_readers.h"
#include "gnrev/input/pixels.h"
#include "gnrev/core/real.h"

/* Labels start at this byte alignment after the samples in a set's memory block. */
enum { Y_ALIGN = 64 };

static const char *const SPLIT[2] = {"train", "test"};
static const char *const KEY[2] = {"n_train", "n_test"};
static const char *const IDX_PREFIX[2] = {"train", "t10k"};

/* Everything one gn_data_load call works on. */
typedef struct {
  const gn_par *par;
  const gn_deck *deck;
  gn_dataset *set[2];     /* train, test */
  gn_data_shape shape[2]; /* what the source holds */
  gn_data_idx_files idx[2]; /* IDX sources: headers, file names, content MD5s once read */
  float *x[2];            /* writable views of set[s]->x and ->y while filling */
  int32_t *y[2];
  bool shared;    /* node-shared windows, else private heap copies */
  gn_data_h5 *h5; /* the open HDF5 input, if any */
} loader;

/* The per-channel statistics of each image source (pixel scale [0, 1]), as the papers use. */
static void source_norm(gn_source source, int64_t d, gn_pixel_norm *nrm) {
  static const double fm_mean[1] = {0.2860}, fm_std[1] = {0.3530};
  static const double mn_mean[1] = {0.1307}, mn_std[1] = {0.3081};
  static const double cf_mean[3] = {0.4914, 0.4822, 0.4465}, cf_std[3] = {0.2470, 0.2435, 0.2616};
  if (source == GN_SRC_CIFAR10)
    gn_pixel_norm_init(nrm, 3, d / 3, cf_mean, cf_std);
  else if (source == GN_SRC_MNIST)
    gn_pixel_norm_init(nrm, 1, d, mn_mean, mn_std);
  else
    gn_pixel_norm_init(nrm, 1, d, fm_mean, fm_std);
}

static int is_image_source(gn_source s) {
  return s == GN_SRC_FASHION_MNIST || s == GN_SRC_MNIST || s == GN_SRC_CIFAR10;
}

static void reset(gn_dataset *set) {
  memset(set, 0, sizeof *set);
  set->win = MPI_WIN_NULL;
}

/* IDX files of split s: headers, then whether the source's data set can have them. MNIST's
 * default folder exists only once `make data` has run, and the message says so. */
static int probe_idx(loader *L, int s) {
  const gn_deck *deck = L->deck;
  struct stat st;
  if (deck->source == GN_SRC_MNIST && strcmp(deck->path, gn_deck_default_path(GN_SRC_MNIST)) == 0 &&
      stat(deck->path, &st) != 0)
    GN_FAIL(GN_EIO, "cannot open %s: %s; MNIST is installed there by `make data` (tools/fetch-mnist.sh), or set "
            "path to a folder holding its files", deck->path, strerror(errno));
  CHECK(gn_data_idx_probe(deck->path, IDX_PREFIX[s], &L->shape[s], &L->idx[s]));
  CHECK(gn_data_known_check_header(deck->source, s, &L->idx[s]));
  return GN_OK;
}

/* Phase 1, local: every rank checks the files it could be asked to read. */
static int probe(loader *L) {
  const gn_deck *deck = L->deck;
  for (int s = 0; s < 2; ++s) {
    switch (deck->source) {
      case GN_SRC_FASHION_MNIST:
      case GN_SRC_MNIST: CHECK(probe_idx(L, s)); break;
      case GN_SRC_CIFAR10: CHECK(gn_data_cifar_probe(deck->path, s == 0, &L->shape[s])); break;
      case GN_SRC_SYNTHETIC: CHECK(gn_data_synth_probe(deck, s, &L->shape[s])); break;
      case GN_SRC_HDF5:
        if (s == 0) CHECK(gn_data_hdf5_check(deck->path));
        break;
      default: GN_FAIL(GN_EINTERNAL, "unknown data source %d", (int)deck->source);
    }
  }
  return GN_OK;
}

/* Phase 1b, collective on the node: HDF5 metadata. */
static int probe_hdf5(loader *L) {
  CHECK(gn_data_hdf5_open(L->par->node, L->deck->path, &L->h5));
  for (int s = 0; s < 2; ++s) CHECK(gn_data_hdf5_probe(L->h5, SPLIT[s], &L->shape[s]));
  return GN_OK;
}

bool gn_data_wants_pool(const gn_deck *deck) {
  return (deck->ntk_every > 0 && deck->ntk_space != GN_NTK_OUTPUT && deck->ntk_probe == GN_PROBE_RANDOM) ||
         (deck->ntk_every > 0 && deck->ntk_space != GN_NTK_LOGITS && deck->ntk_output_probe == GN_PROBE_RANDOM) ||
         (deck->cka_every > 0 && deck->cka_probe == GN_PROBE_RANDOM);
}

/* Phase 2, local: the first n_train / n_test samples, equal d in both sets. */
static int sizes(loader *L) {
  int64_t want[2] = {L->deck->n_train, L->deck->n_test};
  for (int s = 0; s < 2; ++s) {
    const gn_data_shape *sh = &L->shape[s];
    if (want[s] < 0)
      GN_FAIL(GN_EINPUT, "%s = %lld, expected 0 (all samples) or more", KEY[s], (long long)want[s]);
    if (want[s] > sh->n_avail)
      GN_FAIL(GN_EINPUT, "%s = %lld exceeds the %lld samples available in %s", KEY[s], (long long)want[s],
              (long long)sh->n_avail, sh->what);
    if (sh->n_avail == 0) GN_FAIL(GN_EINPUT, "%s holds no samples", sh->what);
    if (sh->d < 1) GN_FAIL(GN_EINPUT, "%s has samples of %lld features", sh->what, (long long)sh->d);
    L->set[s]->n = want[s] > 0 ? want[s] : sh->n_avail;
    /* Random probes draw from every training sample the source holds. */
    L->set[s]->n_pool = s == 0 && gn_data_wants_pool(L->deck) ? sh->n_avail : L->set[s]->n;
    L->set[s]->d = sh->d;
  }
  if (L->shape[0].d != L->shape[1].d)
    GN_FAIL(GN_EINPUT, "%s has %lld features per sample but %s has %lld", L->shape[0].what,
            (long long)L->shape[0].d, L->shape[1].what, (long long)L->shape[1].d);
  return GN_OK;
}

/* Phase 2b, collective on comm: every rank must have found the same shapes (a node that sees a
 * different file would otherwise build a different problem). */
static int same_everywhere(loader *L) {
  double v[8];
  for (int s = 0; s < 2; ++s) {
    v[2 * s] = (double)L->set[s]->n;
    v[2 * s + 1] = (double)L->set[s]->d;
    v[4 + 2 * s] = -v[2 * s];
    v[4 + 2 * s + 1] = -v[2 * s + 1];
  }
  CHECK(gn_par_max(L->par, v, 8));
  for (int s = 0; s < 2; ++s)
    if (v[2 * s] != -v[4 + 2 * s] || v[2 * s + 1] != -v[4 + 2 * s + 1])
      GN_FAIL(GN_EINPUT,
              "ranks see different %s sets: between %.0f and %.0f samples of %.0f to %.0f features "
              "(is %s the same file on every node?)",
              s == 0 ? "training" : "test", -v[4 + 2 * s], v[2 * s], -v[4 + 2 * s + 1], v[2 * s + 1],
              L->shape[s].what);
  return GN_OK;
}

static size_t y_offset(const gn_dataset *set) {
  size_t xbytes = (size_t)set->n_pool * (size_t)set->d * sizeof(float);
  return (xbytes + Y_ALIGN - 1) / Y_ALIGN * Y_ALIGN;
}

static size_t block_bytes(const gn_dataset *set) { return y_offset(set) + (size_t)set->n_pool * sizeof(int32_t); }

static void point_into(loader *L, int s, char *base) {
  gn_dataset *set = L->set[s];
  L->x[s] = (float *)base;
  L->y[s] = (int32_t *)(base + y_offset(set));
  set->x = L->x[s];
  set->y = L->y[s];
}

/* Node rank 0 allocates the whole window, the others none and map rank 0's segment. */
static int make_window(loader *L, int s) {
  const gn_par *par = L->par;
  gn_dataset *set = L->set[s];
  MPI_Aint bytes = par->node_rank == 0 ? (MPI_Aint)block_bytes(set) : 0;
  void *mine = NULL;
  MPI_Win win = MPI_WIN_NULL;
  CHECK_MPI(MPI_Win_allocate_shared(bytes, 1, MPI_INFO_NULL, par->node, &mine, &win));
  set->win = win;
  CHECK_MPI(MPI_Win_set_errhandler(set->win, MPI_ERRORS_RETURN));
  MPI_Aint size = 0;
  int unit = 0;
  void *base = NULL;
  CHECK_MPI(MPI_Win_shared_query(set->win, 0, &size, &unit, &base));
  if ((size_t)size < block_bytes(set))
    GN_FAIL(GN_EMPI, "shared window of %lld bytes, %zu needed", (long long)size, block_bytes(set));
  point_into(L, s, base);
  return GN_OK;
}

static void drop_window(gn_dataset *set) {
  if (set->win != MPI_WIN_NULL && set->win != (MPI_Win)0) MPI_Win_free(&set->win);
  set->win = MPI_WIN_NULL;
  set->x = NULL;
  set->y = NULL;
}

/* Phase 3, collective on the node: windows if every node rank can have them, else heap copies.
 * GNREV_DATA_PRIVATE=1 asks for heap copies (e.g. where /dev/shm is too small to hold the set). */
static int allocate(loader *L) {
  const gn_par *par = L->par;
  /* Refuse a set that cannot fit before touching it: a window larger than memory would be
   * killed by the OOM killer page by page, not refused. */
  const size_t avail = gn_sysmem_available();
  const size_t need = block_bytes(L->set[0]) + block_bytes(L->set[1]);
  if (avail > 0 && need > avail) {
    char a[32], b[32];
    gn_sysmem_str(need, a, sizeof a);
    gn_sysmem_str(avail, b, sizeof b);
    GN_FAIL(GN_ENOMEM, "the training and test sets need %s per node (%lld + %lld samples x %lld features) "
            "but only %s is available: lower n_train/n_test (or synthetic_train/synthetic_test)",
            a, (long long)L->set[0]->n, (long long)L->set[1]->n, (long long)L->set[0]->d, b);
  }
  const char *env = getenv("GNREV_DATA_PRIVATE");
  int ok = !(env && env[0] && strcmp(env, "0") != 0);
  CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, par->node));
  if (ok) {
    for (int s = 0; s < 2 && ok; ++s)
      if (make_window(L, s) != GN_OK) ok = 0;
    CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, par->node));
    if (!ok) {
      for (int s = 0; s < 2; ++s) drop_window(L->set[s]);
      gn_error_clear();
    }
  }
  L->shared = ok != 0;
  if (ok) return GN_OK;
  for (int s = 0; s < 2; ++s) {
    gn_dataset *set = L->set[s];
    set->heap = malloc(block_bytes(set));
    if (!set->heap)
      GN_FAIL(GN_ENOMEM, "out of memory for the %s set: %zu bytes (%lld samples x %lld features)", SPLIT[s],
              block_bytes(set), (long long)set->n, (long long)set->d);
    point_into(L, s, set->heap);
  }
  return GN_OK;
}

/* Phase 4. Rows this rank fills: with a window, its share of the node's rows (files read
 * sequentially: node rank 0 all of them); with a heap copy, all rows. */
static int fill_split(loader *L, int s) {
  const gn_par *par = L->par;
  const gn_deck *deck = L->deck;
  gn_dataset *set = L->set[s];
  int64_t row0 = 0, nrows = set->n_pool, max_rows = set->n_pool;
  if (L->shared) max_rows = gn_par_rows(set->n_pool, par->node_size, par->node_rank, &row0, &nrows);
  bool whole = !L->shared || par->node_rank == 0;
  float *x = L->x[s] + row0 * set->d;
  int32_t *y = L->y[s] + row0;
  gn_pixel_norm nrm;
  if (is_image_source(deck->source)) source_norm(deck->source, set->d, &nrm);
  switch (deck->source) {
    case GN_SRC_FASHION_MNIST:
    case GN_SRC_MNIST:
      if (whole) {
        CHECK(gn_data_idx_read(deck->path, IDX_PREFIX[s], &L->shape[s], set->n_pool, &nrm, L->x[s], L->y[s],
                               &L->idx[s]));
        CHECK(gn_data_known_check_content(deck->source, s, &L->idx[s]));
      }
      break;
    case GN_SRC_CIFAR10:
      if (whole) CHECK(gn_data_cifar_read(deck->path, s == 0, set->n_pool, &nrm, L->x[s], L->y[s]));
      break;
    case GN_SRC_HDF5: CHECK(gn_data_hdf5_read(L->h5, SPLIT[s], set->d, row0, nrows, max_rows, x, y)); break;
    case GN_SRC_SYNTHETIC: CHECK(gn_data_synth_fill(deck, s, row0, nrows, x, y)); break;
    default: GN_FAIL(GN_EINTERNAL, "unknown data source %d", (int)deck->source);
  }
  return GN_OK;
}

static int fill(loader *L) {
  int status = GN_OK;
  for (int s = 0; s < 2; ++s) {
    /* HDF5 reads are collective: the test set is read even after a failed training read. */
    int st = (status == GN_OK || L->deck->source == GN_SRC_HDF5) ? fill_split(L, s) : GN_OK;
    if (status == GN_OK) status = st;
  }
  /* Stores of every filler become visible to every reader of the node. */
  if (L->shared)
    for (int s = 0; s < 2; ++s)
      if (MPI_Win_fence(0, L->set[s]->win) != MPI_SUCCESS && status == GN_OK)
        status = GN_RAISE(GN_EMPI, "MPI_Win_fence on the %s set's window failed", SPLIT[s]);
  return status;
}

/* Phase 5, collective on comm (HDF5 only; the image readers check their own labels and have
 * 10 classes): samples finite in the rows kept; labels >= 0 and classes = largest label + 1 over
 * the whole of both label datasets, each node's ranks scanning a share of them. */
static int hdf5_labels(loader *L) {
  const gn_par *par = L->par;
  int status = GN_OK;
  double top = -1;
  for (int s = 0; s < 2; ++s) {
    int64_t row0 = 0, nrows = 0, max_label = -1;
    int64_t max_rows = gn_par_rows(L->shape[s].n_avail, par->node_size, par->node_rank, &row0, &nrows);
    int st = gn_data_hdf5_labels(L->h5, SPLIT[s], row0, nrows, max_rows, &max_label);
    if (status == GN_OK) status = st;
    if ((double)max_label > top) top = (double)max_label;
    gn_dataset *set = L->set[s];
    nrows = set->n_pool;
    row0 = 0;
    if (L->shared) gn_par_rows(set->n_pool, par->node_size, par->node_rank, &row0, &nrows);
    for (int64_t k = row0 * set->d; k < (row0 + nrows) * set->d && status == GN_OK; ++k)
      if (!isfinite(set->x[k]))
        status = GN_RAISE(GN_EINPUT, "%s: /%s/x[%lld][%lld] = %g; inputs must be finite", L->deck->path,
                          SPLIT[s], (long long)(k / set->d), (long long)(k % set->d), (double)set->x[k]);
  }
  int mpi = gn_par_max(par, &top, 1);
  if (status != GN_OK) return status;
  CHECK(mpi);
  /* HDF5 clamps labels that overflow int32 to INT32_MAX. */
  if (top >= 2147483647.0)
    GN_FAIL(GN_EINPUT, "%s: a label is %.0f or more; labels must be 0, 1, ..., C-1", L->deck->path, top);
  for (int s = 0; s < 2; ++s) L->set[s]->classes = (int)top + 1;
  return GN_OK;
}

int gn_data_load(const gn_par *par, const gn_deck *deck, gn_dataset *train, gn_dataset *test) {
  reset(train);
  reset(test);
  loader L = {.par = par, .deck = deck, .set = {train, test}};
  int status = gn_par_agree(par, probe(&L));
  if (status == GN_OK && deck->source == GN_SRC_HDF5) status = gn_par_agree(par, probe_hdf5(&L));
  if (status == GN_OK) status = gn_par_agree(par, sizes(&L));
  if (status == GN_OK) status = gn_par_agree(par, same_everywhere(&L));
  if (status == GN_OK) status = gn_par_agree(par, allocate(&L));
  if (status == GN_OK) status = gn_par_agree(par, fill(&L));
  if (status == GN_OK) {
    if (deck->source == GN_SRC_HDF5)
      status = gn_par_agree(par, hdf5_labels(&L));
    else
      train->classes = test->classes = deck->source == GN_SRC_SYNTHETIC ? (int)deck->classes : 10;
  }
  gn_data_hdf5_close(L.h5);
  if (status != GN_OK) {
    gn_data_free(train);
    gn_data_free(test);
  }
  return status;
}

void gn_data_free(gn_dataset *set) {
  drop_window(set);
  free(set->heap);
  reset(set);
}

void gn_data_gather(const gn_dataset *set, const int64_t *idx, int64_t n, gn_real *x, int32_t *y) {
  int64_t d = set->d;
  for (int64_t i = 0; i < n; ++i) {
    const float *src = set->x + idx[i] * d;
    gn_real *dst = x + i * d;
    for (int64_t j = 0; j < d; ++j) dst[j] = src[j];
    if (y) y[i] = set->y[idx[i]];
  }
}

/* CRC-32 of bytes, in chunks (crc32 takes a uInt length). */
static uint32_t crc_bytes(const void *data, size_t bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const unsigned char *p = data;
  for (size_t off = 0; off < bytes; off += 1u << 30) {
    const size_t len = bytes - off < (1u << 30) ? bytes - off : (1u << 30);
    crc = crc32(crc, p + off, (uInt)len);
  }
  return (uint32_t)crc;
}

int gn_data_fingerprint(const gn_par *par, const gn_dataset *train, const gn_dataset *test, char *out,
                        size_t cap) {
  const gn_dataset *set[2] = {train, test};
  /* [0, 4): the node leaders' CRCs (others -1), [4, 8): minus them (others -inf): one max gives
   * the largest and the smallest over the nodes. */
  double v[8];
  for (int s = 0; s < 2; ++s) {
    const size_t nx = (size_t)(set[s]->n * set[s]->d) * sizeof(float), ny = (size_t)set[s]->n * sizeof(int32_t);
    const bool leader = par->node_rank == 0;
    v[2 * s] = leader ? (double)crc_bytes(set[s]->x, nx) : -1.0;
    v[2 * s + 1] = leader ? (double)crc_bytes(set[s]->y, ny) : -1.0;
    v[4 + 2 * s] = leader ? -v[2 * s] : -INFINITY;
    v[4 + 2 * s + 1] = leader ? -v[2 * s + 1] : -INFINITY;
  }
  CHECK(gn_par_max(par, v, 8));
  for (int k = 0; k < 4; ++k)
    if (v[k] != -v[4 + k])
      GN_FAIL(GN_EINPUT, "the nodes of this run loaded different %s data (the data files differ between nodes)",
              SPLIT[k / 2]);
  snprintf(out, cap, "train n=%lld d=%lld C=%d x_crc32=%08lx y_crc32=%08lx; test n=%lld x_crc32=%08lx y_crc32=%08lx",
           (long long)train->n, (long long)train->d, train->classes, (unsigned long)v[0], (unsigned long)v[1],
           (long long)test->n, (unsigned long)v[2], (unsigned long)v[3]);
  return GN_OK;
}
