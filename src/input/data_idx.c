/* data_idx.c — reader of the IDX files of MNIST and Fashion-MNIST (gzipped or plain): header
 * checks, truncation checks, labels in range, and the MD5 of each file's content as it is read
 * (so that data_known.c can recognise the files without reading them twice). zlib's gzread reads
 * plain files unchanged, so one code path serves both. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "gnrev/core/md5.h"
#include "gnrev/input/data_readers.h"

enum { IMAGES_MAGIC = 0x00000803, LABELS_MAGIC = 0x00000801, CLASSES = 10 };

/* One opened IDX file and what its header says. */
typedef struct {
  gzFile gz;
  char path[GN_PATH_MAX + 64];
  int64_t count;      /* items the header announces */
  int64_t item_bytes; /* bytes per item (rows * cols for images, 1 for labels) */
  int64_t header;     /* header bytes */
  unsigned char head[16]; /* the header as read, the start of the content's MD5 */
  int64_t rows, cols; /* image size (images only) */
} idx_file;

static uint32_t be32(const unsigned char *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

/* Reads up to len bytes; returns the count read (short at end of file) or -1 on a zlib error. */
static int64_t read_full(gzFile gz, void *buf, int64_t len) {
  int64_t got = 0;
  while (got < len) {
    int64_t want = len - got < (1 << 30) ? len - got : (1 << 30);
    int r = gzread(gz, (char *)buf + got, (unsigned)want);
    if (r < 0) return -1;
    if (r == 0) break;
    got += r;
  }
  return got;
}

static const char *gz_reason(gzFile gz) {
  int code = 0;
  const char *msg = gzerror(gz, &code);
  return code == Z_ERRNO ? strerror(errno) : msg;
}

static void close_idx(idx_file *f) {
  if (f->gz) gzclose(f->gz);
  f->gz = NULL;
}

/* Opens dir/base.gz, else dir/base, and checks the header (idx3 images or idx1 labels). */
static int open_idx(const char *dir, const char *base, bool images, idx_file *f) {
  memset(f, 0, sizeof *f);
  snprintf(f->path, sizeof f->path, "%s/%s.gz", dir, base);
  f->gz = gzopen(f->path, "rb");
  if (!f->gz) {
    int gz_errno = errno;
    snprintf(f->path, sizeof f->path, "%s/%s", dir, base);
    f->gz = gzopen(f->path, "rb");
    if (!f->gz) {
      if (gz_errno != ENOENT) GN_FAIL(GN_EIO, "cannot open %s/%s.gz: %s", dir, base, strerror(gz_errno));
      GN_FAIL(GN_EIO, "cannot open %s/%s.gz or %s: %s", dir, base, f->path, strerror(errno));
    }
  }
  gzbuffer(f->gz, 1 << 17);
  f->header = images ? 16 : 8;
  unsigned char *h = f->head;
  int64_t got = read_full(f->gz, h, f->header);
  if (got < 0) {
    int status = GN_RAISE(GN_EIO, "cannot read %s: %s", f->path, gz_reason(f->gz));
    close_idx(f);
    return status;
  }
  if (got < f->header) {
    int status = GN_RAISE(GN_EINPUT, "%s is truncated: its IDX header needs %lld bytes, got %lld", f->path,
                          (long long)f->header, (long long)got);
    close_idx(f);
    return status;
  }
  uint32_t magic = be32(h), want = images ? IMAGES_MAGIC : LABELS_MAGIC;
  if (magic != want) {
    int status = GN_RAISE(GN_EINPUT,
                          "%s is not an IDX %s file: magic number 0x%08x, expected 0x%08x "
                          "(unsigned bytes, %d dimensions)",
                          f->path, images ? "image" : "label", magic, want, images ? 3 : 1);
    close_idx(f);
    return status;
  }
  f->count = be32(h + 4);
  /* Both factors are 32-bit: multiply unsigned 64-bit, then bound, so no header can overflow. */
  const uint64_t pixels = images ? (uint64_t)be32(h + 8) * (uint64_t)be32(h + 12) : 1;
  f->item_bytes = pixels > (1ull << 40) ? 0 : (int64_t)pixels;
  if (images) {
    f->rows = be32(h + 8);
    f->cols = be32(h + 12);
  }
  if (images && f->item_bytes == 0) {
    int status =
        GN_RAISE(GN_EINPUT, "%s declares images of %u x %u pixels", f->path, be32(h + 8), be32(h + 12));
    close_idx(f);
    return status;
  }
  return GN_OK;
}

/* Opens both files of a split and checks that they describe the same number of samples. */
static int open_pair(const char *dir, const char *prefix, idx_file *img, idx_file *lab) {
  char base[64];
  snprintf(base, sizeof base, "%s-images-idx3-ubyte", prefix);
  CHECK(open_idx(dir, base, true, img));
  snprintf(base, sizeof base, "%s-labels-idx1-ubyte", prefix);
  int status = open_idx(dir, base, false, lab);
  if (status != GN_OK) {
    close_idx(img);
    gn_error_trace(__FILE__, __LINE__, __func__);
    return status;
  }
  if (img->count != lab->count) {
    status = GN_RAISE(GN_EINPUT, "%s holds %lld images but %s holds %lld labels", img->path,
                      (long long)img->count, lab->path, (long long)lab->count);
    close_idx(img);
    close_idx(lab);
    return status;
  }
  return GN_OK;
}

int gn_data_idx_probe(const char *dir, const char *prefix, gn_data_shape *shape, gn_data_idx_files *files) {
  idx_file img, lab;
  CHECK(open_pair(dir, prefix, &img, &lab));
  shape->n_avail = img.count;
  shape->d = img.item_bytes;
  snprintf(shape->what, sizeof shape->what, "%s", img.path);
  memset(files, 0, sizeof *files);
  files->count = img.count;
  files->rows = img.rows;
  files->cols = img.cols;
  snprintf(files->images, sizeof files->images, "%s", img.path);
  snprintf(files->labels, sizeof files->labels, "%s", lab.path);
  close_idx(&img);
  close_idx(&lab);
  return GN_OK;
}

/* "expected/got" message for a file shorter than its header says. */
static int truncated(const idx_file *f, int64_t got_items_bytes) {
  bool gz = strlen(f->path) > 3 && strcmp(f->path + strlen(f->path) - 3, ".gz") == 0;
  GN_FAIL(GN_EINPUT,
          "%s is truncated: expected %lld bytes%s (%lld-byte header + %lld items of %lld bytes), "
          "got %lld",
          f->path, (long long)(f->header + f->count * f->item_bytes), gz ? " after decompression" : "",
          (long long)f->header, (long long)f->count, (long long)f->item_bytes,
          (long long)(f->header + got_items_bytes));
}

/* Reads all images (the first n into x), so a truncated tail is found even when n is small, and
 * the MD5 of the header and every image byte goes into md5. */
static int read_images(idx_file *img, int64_t n, const gn_pixel_norm *nrm, float *x, char md5[33]) {
  int64_t d = img->item_bytes;
  int64_t per_chunk = d >= (1 << 20) ? 1 : (1 << 20) / d;
  uint8_t *buf = malloc((size_t)(per_chunk * d));
  CHECK_ALLOC(buf);
  int status = GN_OK;
  gn_md5 sum;
  gn_md5_init(&sum);
  gn_md5_update(&sum, img->head, (size_t)img->header);
  int64_t done = 0;
  while (done < img->count) {
    int64_t k = img->count - done < per_chunk ? img->count - done : per_chunk;
    int64_t got = read_full(img->gz, buf, k * d);
    if (got < 0) FAIL_GOTO(GN_EIO, "cannot read %s: %s", img->path, gz_reason(img->gz));
    if (got < k * d) {
      status = truncated(img, done * d + got);
      goto fail;
    }
    gn_md5_update(&sum, buf, (size_t)got);
    for (int64_t i = 0; i < k && done + i < n; ++i)
      gn_pixels_to_float(nrm, buf + i * d, x + (done + i) * d);
    done += k;
  }
  gn_md5_hex(&sum, md5);
fail:
  free(buf);
  return status;
}

/* Reads and checks every label (the first n into y); their MD5 with the header goes into md5. */
static int read_labels(idx_file *lab, int64_t n, int32_t *y, char md5[33]) {
  uint8_t *buf = malloc((size_t)(lab->count > 0 ? lab->count : 1));
  CHECK_ALLOC(buf);
  int status = GN_OK;
  int64_t got = read_full(lab->gz, buf, lab->count);
  if (got < 0) FAIL_GOTO(GN_EIO, "cannot read %s: %s", lab->path, gz_reason(lab->gz));
  if (got < lab->count) {
    status = truncated(lab, got);
    goto fail;
  }
  for (int64_t i = 0; i < lab->count; ++i)
    if (buf[i] >= CLASSES)
      FAIL_GOTO(GN_EINPUT, "%s: label %d of sample %lld is out of range (expected 0..%d)", lab->path, buf[i],
                (long long)i, CLASSES - 1);
  for (int64_t i = 0; i < n; ++i) y[i] = buf[i];
  gn_md5 sum;
  gn_md5_init(&sum);
  gn_md5_update(&sum, lab->head, (size_t)lab->header);
  gn_md5_update(&sum, buf, (size_t)lab->count);
  gn_md5_hex(&sum, md5);
fail:
  free(buf);
  return status;
}

int gn_data_idx_read(const char *dir, const char *prefix, const gn_data_shape *shape, int64_t n,
                     const gn_pixel_norm *nrm, float *x, int32_t *y, gn_data_idx_files *files) {
  idx_file img, lab;
  CHECK(open_pair(dir, prefix, &img, &lab));
  int status = GN_OK;
  if (img.count != shape->n_avail || img.item_bytes != shape->d)
    FAIL_GOTO(GN_EIO,
              "%s changed while being read: it now holds %lld samples of %lld bytes, "
              "before %lld of %lld",
              img.path, (long long)img.count, (long long)img.item_bytes, (long long)shape->n_avail,
              (long long)shape->d);
  if (nrm->channels * nrm->per_channel != img.item_bytes)
    FAIL_GOTO(GN_EINTERNAL, "normalisation set up for %lld features, %s has %lld",
              (long long)(nrm->channels * nrm->per_channel), img.path, (long long)img.item_bytes);
  files->images_md5[0] = files->labels_md5[0] = '\0';
  CHECK_GOTO(read_images(&img, n, nrm, x, files->images_md5));
  CHECK_GOTO(read_labels(&lab, n, y, files->labels_md5));
fail:
  close_idx(&img);
  close_idx(&lab);
  return status;
}
