/* rng.h — counter-based random numbers (Random123 Philox4x32-10).
 *
 * A number is a pure function of (seed, stream, sub, index): any rank can draw any piece of any
 * random object without communication, and the result never depends on the rank count. */
#ifndef GNREV_RNG_H
#define GNREV_RNG_H

#include <stddef.h>
#include <stdint.h>

#include "gnrev/core/real.h"

/* One stream id per use, so no two uses ever share numbers. Never renumber: checkpoints and
 * published runs depend on them. */
enum gn_rng_stream {
  GN_RNG_PROJ_C = 1,      /* fixed projections C_F, C_G; sub = 2*block + half */
  GN_RNG_OUT_U = 2,       /* Gaussian matrix whose Q is the output map U */
  GN_RNG_INIT_W = 3,      /* initial W; sub = 2*block + half */
  GN_RNG_SHUFFLE = 4,     /* mini-batch order; sub = epoch */
  GN_RNG_MC = 5,          /* Monte-Carlo GGN samples; sub = step */
  GN_RNG_SYNTH_X = 6,     /* synthetic inputs; sub = 0 train, 1 test */
  GN_RNG_SYNTH_TEACHER = 7, /* synthetic teacher weights */
  GN_RNG_PROBE = 8,       /* diagnostics: probe vectors v (sub 0 logits, 2 output space), random probe sets (sub 1) */
  GN_RNG_BOOTSTRAP = 9,   /* ViViT bootstrap resamples; sub = step */
  GN_RNG_TEST = 100       /* tests only */
};

/* Local. Four 32-bit words of Philox output as two 64-bit integers for (seed, stream, sub, index). */
void gn_rng_raw(uint64_t seed, uint32_t stream, uint32_t sub, uint64_t index, uint64_t out[2]);

/* Local. Uniform double in the open interval (0, 1). */
double gn_rng_uniform(uint64_t seed, uint32_t stream, uint32_t sub, uint64_t index);

/* Local. Standard normal (Box-Muller on the two words of one counter). */
double gn_rng_normal(uint64_t seed, uint32_t stream, uint32_t sub, uint64_t index);

/* Local. out[i] = scale * normal(index0 + i) for i < n. */
void gn_rng_fill_normal(uint64_t seed, uint32_t stream, uint32_t sub, uint64_t index0, size_t n,
                        double scale, double *out);
/* The same into gn_real: each value drawn in double, then rounded, so both builds draw the same
 * numbers. */
void gn_rng_fill_normal_real(uint64_t seed, uint32_t stream, uint32_t sub, uint64_t index0, size_t n, double scale,
                             gn_real *out);

/* Local. Uniform integer in [0, bound) without modulo bias (bound >= 1). */
uint64_t gn_rng_below(uint64_t seed, uint32_t stream, uint32_t sub, uint64_t index, uint64_t bound);

/* Local. perm = a uniformly random permutation of 0..n-1 (Fisher-Yates, draw i at index i). */
void gn_rng_permutation(uint64_t seed, uint32_t stream, uint32_t sub, int64_t n, int64_t *perm);

#endif
