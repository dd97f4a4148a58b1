/* fuzz_idx.c — fuzz target of the IDX reader (MNIST / Fashion-MNIST files, plain or gzip).
 *
 * Input: byte 0 = flags (bit 0: the image file is named .gz, bit 1: the label file is; the bytes
 * are written as they are, so the fuzzer also feeds zlib corrupt streams), bytes 1-2 = length of
 * the image file (little-endian), then the image file, then the label file. Both are written into
 * a scratch folder as train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]; probe, read
 * and the known-data-set checks run as data.c runs them (the read also after a header refusal,
 * so that files of any size keep reaching it). Properties: no crash or sanitizer report, a
 * refusal has a documented status and a message, an accepted probe reports d >= 1. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_common.h"
#include "gnrev/input/data_readers.h"

/* Reads only what the harness can hold; data.c would refuse the rest through its memory plan. */
enum { FUZZ_IDX_MAX_VALUES = 1 << 22, FUZZ_IDX_MAX_D = 1 << 16 };

static int fuzz_idx_run(const uint8_t *data, size_t size) {
  fuzz_cursor c = {data, size};
  unsigned flags = fuzz_u8(&c);
  size_t img_len = fuzz_u16(&c), got;
  const uint8_t *img = fuzz_take(&c, img_len, &got);
  img_len = got;
  size_t lab_len = c.left;
  const uint8_t *lab = fuzz_take(&c, lab_len, &got);
  const char *dir = fuzz_scratch();
  fuzz_write(flags & 1 ? "train-images-idx3-ubyte.gz" : "train-images-idx3-ubyte", img, img_len);
  fuzz_write(flags & 2 ? "train-labels-idx1-ubyte.gz" : "train-labels-idx1-ubyte", lab, lab_len);
  gn_error_clear();
  gn_data_shape shape;
  gn_data_idx_files files;
  int st = gn_data_idx_probe(dir, "train", &shape, &files);
  if (st != GN_OK) {
    fuzz_check_refusal("idx probe", st);
    return st;
  }
  gn_error_clear();
  st = gn_data_known_check_header(GN_SRC_MNIST, 0, &files);
  if (st != GN_OK) fuzz_check_refusal("idx header check", st);
  if (shape.d < 1 || shape.n_avail < 0) fuzz_violation("idx: probe accepted d = %lld, n = %lld",
                                                       (long long)shape.d, (long long)shape.n_avail);
  if (shape.d > FUZZ_IDX_MAX_D || shape.n_avail > FUZZ_IDX_MAX_VALUES / shape.d) return GN_OK;
  int64_t n = shape.n_avail;
  float *x = malloc((size_t)(n * shape.d + 1) * sizeof(float));
  int32_t *y = malloc((size_t)(n + 1) * sizeof(int32_t));
  if (!x || !y) {
    free(x);
    free(y);
    return GN_ENOMEM;
  }
  static const double mean[1] = {0.5}, sd[1] = {0.25};
  gn_pixel_norm nrm;
  gn_pixel_norm_init(&nrm, 1, shape.d, mean, sd);
  gn_error_clear();
  st = gn_data_idx_read(dir, "train", &shape, n, &nrm, x, y, &files);
  fuzz_check_read("idx", st, y, n);
  if (st == GN_OK) {
    st = gn_data_known_check_content(GN_SRC_MNIST, 0, &files);
    if (st != GN_OK) fuzz_check_refusal("idx content check", st);
  }
  free(x);
  free(y);
  return st;
}

#ifndef GN_FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_idx_run(data, size);
  return 0;
}
#endif
