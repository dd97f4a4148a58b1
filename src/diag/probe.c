/* probe.c — probe sets (probe.h). */
#include "gnrev/diag/probe.h"

#include <stdlib.h>
#include <string.h>

#include "gnrev/core/array.h"
#include "gnrev/core/err.h"

int gn_probe_first(const gn_par *par, const gn_dataset *train, int64_t p, gn_probe *probe) {
  memset(probe, 0, sizeof *probe);
  probe->p = p;
  gn_par_rows(p, par->size, par->rank, &probe->row0, &probe->nrows);
  const size_t rows = (size_t)(probe->nrows > 0 ? probe->nrows : 1);
  probe->X = gn_alloc(rows * (size_t)train->d);
  int64_t *idx = malloc(rows * sizeof(int64_t));
  int status = probe->X && idx ? GN_OK
                               : GN_RAISE(GN_ENOMEM, "out of memory for %lld probe samples of width %lld",
                                          (long long)probe->nrows, (long long)train->d);
  if (status == GN_OK) {
    for (int64_t i = 0; i < probe->nrows; ++i) idx[i] = probe->row0 + i;
    gn_data_gather(train, idx, probe->nrows, probe->X, NULL);
  }
  free(idx);
  return gn_par_agree(par, status);
}

void gn_probe_free(gn_probe *probe) {
  free(probe->X);
  memset(probe, 0, sizeof *probe);
}
