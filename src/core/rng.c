/* rng.c — Philox4x32-10 from Random123, wrapped so callers never see counters or keys. */
#include "gnrev/core/rng.h"

#include <math.h>
#include <Random123/philox.h>

void gn_rng_raw(uint64_t seed, uint32_t stream, uint32_t sub, uint64_t index, uint64_t out[2]) {
  philox4x32_key_t key = {{(uint32_t)seed, (uint32_t)(seed >> 32)}};
  philox4x32_ctr_t ctr = {{(uint32_t)index, (uint32_t)(index >> 32), sub, stream}};
  philox4x32_ctr_t r = philox4x32(ctr, key);
  out[0] = ((uint64_t)r.v[1] << 32) | r.v[0];
  out[1] = ((uint64_t)r.v[3] << 32) | r.v[2];
}

static double to_open_unit(uint64_t x) { return ((double)(x >> 11) + 0.5) * 0x1.0p-53; }

double gn_rng_uniform(uint64_t seed, uint32_t stream, uint32_t sub, uint64_t index) {
  uint64_t w[2];
  gn_rng_raw(seed, stream, sub, index, w);
  return to_open_unit(w[0]);
}

double gn_rng_normal(uint64_t seed, uint32_t stream, uint32_t sub, uint64_t index) {
  uint64_t w[2];
  gn_rng_raw(seed, stream, sub, index, w);
  double u1 = to_open_unit(w[0]), u2 = to_open_unit(w[1]);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}

void gn_rng_fill_normal(uint64_t seed, uint32_t stream, uint32_t sub, uint64_t index0, size_t n,
                        double scale, double *out) {
  for (size_t i = 0; i < n; ++i) out[i] = scale * gn_rng_normal(seed, stream, sub, index0 + i);
}

void gn_rng_fill_normal_real(uint64_t seed, uint32_t stream, uint32_t sub, uint64_t index0, size_t n, double scale,
                             gn_real *out) {
  for (size_t i = 0; i < n; ++i) out[i] = (gn_real)(scale * gn_rng_normal(seed, stream, sub, index0 + i));
}

uint64_t gn_rng_below(uint64_t seed, uint32_t stream, uint32_t sub, uint64_t index, uint64_t bound) {
  /* Rejection on the top of the range; the retry counter lives in the high index bits, which no
   * caller reaches (indices stay far below 2^48). */
  uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  for (uint64_t attempt = 0;; ++attempt) {
    uint64_t w[2];
    gn_rng_raw(seed, stream, sub, index + (attempt << 48), w);
    if (w[0] < limit) return w[0] % bound;
    if (w[1] < limit) return w[1] % bound;
  }
}

void gn_rng_permutation(uint64_t seed, uint32_t stream, uint32_t sub, int64_t n, int64_t *perm) {
  for (int64_t i = 0; i < n; ++i) perm[i] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    int64_t j = (int64_t)gn_rng_below(seed, stream, sub, (uint64_t)i, (uint64_t)i + 1);
    int64_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}
