/* probe.h — the probe sets of the diagnostics: fixed training samples on which a quantity is
 * compared against its value at step 0, each rank holding its gn_par_rows share. */
#ifndef GNREV_DIAG_PROBE_H
#define GNREV_DIAG_PROBE_H

#include <stdint.h>
#include <stdlib.h>

#include "gnrev/core/par.h"
#include "gnrev/input/data.h"
#include "gnrev/input/deck.h"
#include "gnrev/core/real.h"

/* A probe set of p samples. */
typedef struct {
  int64_t p;            /* samples over all ranks */
  int64_t row0, nrows;  /* this rank's share */
  gn_real *X;            /* nrows x d inputs */
  int64_t *index;       /* p: the training samples drawn, in probe order (the same on every rank) */
} gn_probe;

/* Collective on par->comm. The first p training samples (kind first), or p samples drawn without
 * replacement from every training sample the data hold (kind random: the first p of the
 * permutation gn_rng_permutation(seed, GN_RNG_PROBE, 1, train->n_pool)). `what` names the
 * diagnostic in messages. */
int gn_probe_make(const gn_par *par, const gn_dataset *train, int64_t p, gn_probe_kind kind, uint64_t seed,
                  const char *what, gn_probe *probe);

/* Local. The probe seed of the deck (probe_seed, or the run's seed when it is -1). */
uint64_t gn_probe_seed(const gn_deck *deck);
void gn_probe_free(gn_probe *probe);

#endif
