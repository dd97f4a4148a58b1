/* data_cifar.c — reader of the CIFAR-10 binary version: data_batch_1..5.bin (training set, in
 * that order) and test_batch.bin, each a sequence of 3073-byte records (1 label byte, then
 * 1024 red, 1024 green, 1024 blue pixel bytes, rows of 32 within each channel). The feature order
 * is kept as stored: channel-major. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gnrev/input/data_readers.h"

enum { PIXELS = 3072, RECORD = 1 + PIXELS, TRAIN_FILES = 5, CLASSES = 10 };

static int n_files(bool train) { return train ? TRAIN_FILES : 1; }

static void file_path(const char *dir, bool train, int k, char *path, size_t cap) {
  if (train)
    snprintf(path, cap, "%s/data_batch_%d.bin", dir, k + 1);
  else
    snprintf(path, cap, "%s/test_batch.bin", dir);
}

/* Records in one file, or an error naming it. */
static int file_records(const char *path, int64_t *records) {
  FILE *f = fopen(path, "rb");
  if (!f) GN_FAIL(GN_EIO, "cannot open %s: %s", path, strerror(errno));
  struct stat st;
  int rc = fstat(fileno(f), &st);
  int err = errno;
  fclose(f);
  if (rc != 0) GN_FAIL(GN_EIO, "cannot stat %s: %s", path, strerror(err));
  if (st.st_size % RECORD != 0)
    GN_FAIL(GN_EINPUT,
            "%s: size %lld bytes is not a multiple of the %d-byte CIFAR-10 record (1 label byte + "
            "%d pixel bytes); the file is truncated or not CIFAR-10 binary",
            path, (long long)st.st_size, RECORD, PIXELS);
  *records = st.st_size / RECORD;
  return GN_OK;
}

int gn_data_cifar_probe(const char *dir, bool train, gn_data_shape *shape) {
  int64_t total = 0;
  char path[GN_PATH_MAX + 64];
  for (int k = 0; k < n_files(train); ++k) {
    int64_t records = 0;
    file_path(dir, train, k, path, sizeof path);
    CHECK(file_records(path, &records));
    total += records;
  }
  shape->n_avail = total;
  shape->d = PIXELS;
  if (train)
    snprintf(shape->what, sizeof shape->what, "%s/data_batch_1.bin .. data_batch_5.bin", dir);
  else
    snprintf(shape->what, sizeof shape->what, "%s", path);
  return GN_OK;
}

int gn_data_cifar_read(const char *dir, bool train, int64_t n, const gn_pixel_norm *nrm, float *x,
                       int32_t *y) {
  if (nrm->channels * nrm->per_channel != PIXELS)
    GN_FAIL(GN_EINTERNAL, "CIFAR-10 normalisation set up for %lld features",
            (long long)(nrm->channels * nrm->per_channel));
  int64_t done = 0;
  char path[GN_PATH_MAX + 64];
  uint8_t rec[RECORD];
  /* Every record's label is checked, as for IDX files: past the first n only the label byte is
   * read and the pixels are skipped. */
  for (int k = 0; k < n_files(train); ++k) {
    file_path(dir, train, k, path, sizeof path);
    FILE *f = fopen(path, "rb");
    if (!f) GN_FAIL(GN_EIO, "cannot open %s: %s", path, strerror(errno));
    for (int64_t r = 0;; ++r) {
      size_t want = done < n ? RECORD : 1;
      size_t got = fread(rec, 1, want, f);
      if (got == 0 && feof(f)) break;
      if (got != want || (want == 1 && fseek(f, PIXELS, SEEK_CUR) != 0)) {
        int err = ferror(f) ? errno : 0;
        fclose(f);
        if (err) GN_FAIL(GN_EIO, "cannot read %s: %s", path, strerror(err));
        GN_FAIL(GN_EIO, "%s changed while being read: record %lld is shorter than %d bytes", path,
                (long long)r, RECORD);
      }
      if (rec[0] >= CLASSES) {
        fclose(f);
        GN_FAIL(GN_EINPUT, "%s: record %lld has label %d, expected 0..%d", path, (long long)r, rec[0],
                CLASSES - 1);
      }
      if (done < n) {
        y[done] = rec[0];
        gn_pixels_to_float(nrm, rec + 1, x + done * PIXELS);
        ++done;
      }
    }
    fclose(f);
  }
  if (done < n)
    GN_FAIL(GN_EIO, "CIFAR-10 files in %s changed while being read: %lld records found, %lld expected", dir,
            (long long)done, (long long)n);
  return GN_OK;
}
