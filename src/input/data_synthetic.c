/* data_synthetic.c — a teacher-student classification problem drawn from the counter RNG:
 * Gaussian inputs labelled by the argmax of a fixed random linear teacher. Any rank can generate
 * any sample, so each rank fills its own share of the node's copy. */
#include <stdio.h>
#include <stdlib.h>

#include "gnrev/input/data_readers.h"
#include "gnrev/core/rng.h"

int gn_data_synth_probe(const gn_deck *deck, int sub, gn_data_shape *shape) {
  if (deck->dim < 1)
    GN_FAIL(GN_EINPUT, "synthetic data: dim = %lld, expected at least 1", (long long)deck->dim);
  if (deck->classes < 2 || deck->classes > (1 << 24))
    GN_FAIL(GN_EINPUT, "synthetic data: classes = %lld, expected 2..%d", (long long)deck->classes, 1 << 24);
  int64_t n = sub == 0 ? deck->synthetic_train : deck->synthetic_test;
  const char *key = sub == 0 ? "synthetic_train" : "synthetic_test";
  if (n < 1) GN_FAIL(GN_EINPUT, "synthetic data: %s = %lld, expected at least 1", key, (long long)n);
  shape->n_avail = n;
  shape->d = deck->dim;
  snprintf(shape->what, sizeof shape->what, "the synthetic %s set (%s)", sub == 0 ? "training" : "test", key);
  return GN_OK;
}

int gn_data_synth_fill(const gn_deck *deck, int sub, int64_t row0, int64_t nrows, float *x, int32_t *y) {
  if (nrows <= 0) return GN_OK;
  uint64_t seed = (uint64_t)deck->seed;
  int64_t d = deck->dim, C = deck->classes;
  double *w = malloc((size_t)(d * C) * sizeof *w);
  double *score = malloc((size_t)C * sizeof *score);
  if (!w || !score) {
    free(w);
    free(score);
    GN_FAIL(GN_ENOMEM, "out of memory for the %lld x %lld synthetic teacher", (long long)d, (long long)C);
  }
  gn_rng_fill_normal(seed, GN_RNG_SYNTH_TEACHER, 0, 0, (size_t)(d * C), 1.0, w);
  for (int64_t i = 0; i < nrows; ++i) {
    int64_t row = row0 + i;
    float *xi = x + i * d;
    for (int64_t c = 0; c < C; ++c) score[c] = 0.0;
    for (int64_t j = 0; j < d; ++j) {
      xi[j] = (float)gn_rng_normal(seed, GN_RNG_SYNTH_X, (uint32_t)sub, (uint64_t)(row * d + j));
      const double *wj = w + j * C;
      for (int64_t c = 0; c < C; ++c) score[c] += (double)xi[j] * wj[c];
    }
    int64_t best = 0;
    for (int64_t c = 1; c < C; ++c)
      if (score[c] > score[best]) best = c;
    y[i] = (int32_t)best;
  }
  free(w);
  free(score);
  return GN_OK;
}
