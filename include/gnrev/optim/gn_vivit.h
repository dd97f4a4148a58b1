/* gn_vivit.h — ViViT's damped Newton step in the top-k eigenspace of the GGN (deck method =
 * 'gn_vivit'; Dangel et al., section 4.2; docs/algorithm.md), and the bootstrap rule that chooses
 * its damping per direction. */
#ifndef GNREV_OPTIM_GN_VIVIT_H
#define GNREV_OPTIM_GN_VIVIT_H

#include <stdint.h>

#include "gnrev/curvature/ggn.h"
#include "gnrev/input/deck.h"
#include "gnrev/core/real.h"

/* Bootstrap: replicates, candidate grid delta_j = lambda_ref 10^(BOOT_GRID_LOW + j) for
 * j < BOOT_GRID (1e-6 .. 1e6 times lambda_ref, the mean of the top-k curvatures lambda_k), and the
 * quantile whose largest value picks the damping. */
enum { GN_VIVIT_BOOT_REPLICATES = 100, GN_VIVIT_BOOT_GRID = 13, GN_VIVIT_BOOT_GRID_LOW = -6 };

/* Local (replicated: every rank draws the same resamples). For each of the g->k directions, the
 * damping on the grid whose 5% quantile (the 5th smallest of the 100 replicates) of the bootstrap
 * loss reduction R = -s gamma2 - s^2 lambda2 / 2 is largest, where s = -gamma1 / (lambda1 + delta)
 * uses the means of gamma_nk and lambda_nk over one resample of the N samples and gamma2, lambda2
 * the means over an independent resample; resample b (b < 100) draws sample i of half h as
 * gn_rng_below(seed, GN_RNG_BOOTSTRAP, step, (2 b + h) N + i, N). Ties go to the larger damping
 * (the safer step). damping gets g->k values. */
int gn_vivit_bootstrap_damping(const gn_deck *deck, int64_t step, const gn_ggn *g, double *damping);

#endif
