/* probe.c — probe sets (probe.h). */
#include "gnrev/diag/probe.h"

#include <stdlib.h>
#include <string.h>

#include "gnrev/core/array.h"
#include "gnrev/core/err.h"
#include "gnrev/core/rng.h"

uint64_t gn_probe_seed(const gn_deck *deck) {
  return (uint64_t)(deck->probe_seed >= 0 ? deck->probe_seed : deck->seed);
}

int gn_probe_make(const gn_par *par, const gn_dataset *train, int64_t p, gn_probe_kind kind, uint64_t seed,
                  const char *what, gn_probe *probe) {
  memset(probe, 0, sizeof *probe);
  const int64_t pool = kind == GN_PROBE_RANDOM ? train->n_pool : train->n;
  if (p < 1 || p > pool)
    GN_FAIL(GN_EINPUT, "%s: a probe of %lld samples, but %s holds %lld", what, (long long)p,
            kind == GN_PROBE_RANDOM ? "the training data" : "the training set", (long long)pool);
  probe->p = p;
  gn_par_rows(p, par->size, par->rank, &probe->row0, &probe->nrows);
  probe->X = gn_alloc((size_t)(probe->nrows > 0 ? probe->nrows : 1) * (size_t)train->d);
  probe->index = malloc((size_t)(kind == GN_PROBE_RANDOM ? pool : p) * sizeof(int64_t));
  int status = probe->X && probe->index ? GN_OK
                                        : GN_RAISE(GN_ENOMEM, "%s: out of memory for %lld probe samples of width %lld",
                                                   what, (long long)p, (long long)train->d);
  if (status == GN_OK) {
    if (kind == GN_PROBE_RANDOM)
      gn_rng_permutation(seed, GN_RNG_PROBE, 1, pool, probe->index);
    else
      for (int64_t i = 0; i < p; ++i) probe->index[i] = i;
    gn_data_gather(train, probe->index + probe->row0, probe->nrows, probe->X, NULL);
  }
  return gn_par_agree(par, status);
}

void gn_probe_free(gn_probe *probe) {
  free(probe->X);
  free(probe->index);
  memset(probe, 0, sizeof *probe);
}
