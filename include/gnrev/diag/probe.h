/* probe.h — the probe sets of the diagnostics: fixed training samples on which a quantity is
 * compared against its value at step 0, each rank holding its gn_par_rows share. */
#ifndef GNREV_DIAG_PROBE_H
#define GNREV_DIAG_PROBE_H

#include <stdint.h>

#include "gnrev/core/par.h"
#include "gnrev/input/data.h"

/* A probe set of p samples. */
typedef struct {
  int64_t p;            /* samples over all ranks */
  int64_t row0, nrows;  /* this rank's share */
  double *X;            /* nrows x d inputs */
} gn_probe;

/* Collective on par->comm. The first p training samples. */
int gn_probe_first(const gn_par *par, const gn_dataset *train, int64_t p, gn_probe *probe);
void gn_probe_free(gn_probe *probe);

#endif
