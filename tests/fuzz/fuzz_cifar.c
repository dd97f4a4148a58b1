/* fuzz_cifar.c — fuzz target of the CIFAR-10 binary reader.
 *
 * Input: byte 0 bit 0 chooses the training set (data_batch_1..5.bin) over the test set
 * (test_batch.bin). Test set: the rest of the input is test_batch.bin. Training set: four
 * little-endian 16-bit lengths, then files 1 to 4 of those lengths and file 5 with the rest (bit 1
 * of byte 0 leaves file 3 out). Probe and read run as data.c runs them. Properties: no crash or
 * sanitizer report, a refusal has a documented status and a message, accepted labels are 0..9. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_common.h"
#include "gnrev/input/data_readers.h"

enum { FUZZ_CIFAR_D = 3072, FUZZ_CIFAR_MAX_N = 64 };

static int fuzz_cifar_run(const uint8_t *data, size_t size) {
  fuzz_cursor c = {data, size};
  unsigned flags = fuzz_u8(&c);
  const bool train = flags & 1;
  const char *dir = fuzz_scratch();
  size_t got;
  if (train) {
    size_t len[5];
    for (int k = 0; k < 4; ++k) len[k] = fuzz_u16(&c);
    for (int k = 0; k < 5; ++k) {
      const uint8_t *p = fuzz_take(&c, k < 4 ? len[k] : c.left, &got);
      char name[32];
      snprintf(name, sizeof name, "data_batch_%d.bin", k + 1);
      if (!(k == 2 && (flags & 2))) fuzz_write(name, p, got);
    }
  } else {
    const uint8_t *p = fuzz_take(&c, c.left, &got);
    fuzz_write("test_batch.bin", p, got);
  }
  gn_error_clear();
  gn_data_shape shape;
  int st = gn_data_cifar_probe(dir, train, &shape);
  if (st != GN_OK) {
    fuzz_check_refusal("cifar probe", st);
    return st;
  }
  if (shape.d != FUZZ_CIFAR_D || shape.n_avail < 0)
    fuzz_violation("cifar: probe reported d = %lld, n = %lld", (long long)shape.d, (long long)shape.n_avail);
  int64_t n = shape.n_avail < FUZZ_CIFAR_MAX_N ? shape.n_avail : FUZZ_CIFAR_MAX_N;
  float *x = malloc((size_t)(n + 1) * FUZZ_CIFAR_D * sizeof(float));
  int32_t *y = malloc((size_t)(n + 1) * sizeof(int32_t));
  if (!x || !y) {
    free(x);
    free(y);
    return GN_ENOMEM;
  }
  static const double mean[3] = {0.5, 0.5, 0.5}, sd[3] = {0.25, 0.25, 0.25};
  gn_pixel_norm nrm;
  gn_pixel_norm_init(&nrm, 3, FUZZ_CIFAR_D / 3, mean, sd);
  st = gn_data_cifar_read(dir, train, n, &nrm, x, y);
  fuzz_check_read("cifar", st, y, n);
  free(x);
  free(y);
  return st;
}

#ifndef GN_FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_cifar_run(data, size);
  return 0;
}
#endif
