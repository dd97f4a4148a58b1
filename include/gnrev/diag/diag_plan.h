/* diag_plan.h — cost and memory of the diagnostics a deck switches on, from the shapes alone. */
#ifndef GNREV_DIAG_DIAG_PLAN_H
#define GNREV_DIAG_DIAG_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "gnrev/core/par.h"
#include "gnrev/input/deck.h"

/* Local. Cost and memory per rank of each switched-on diagnostic for the deck on par->size
 * ranks, input width d and C classes, as text for --check (malloc'ed; NULL when out of memory;
 * "" when every diagnostic is off). */
char *gn_diag_plan(const gn_par *par, const gn_deck *deck, int64_t d, int C);

/* Local. Bytes per rank the switched-on diagnostics hold (for the memory plan), besides their
 * node-shared blocks. */
size_t gn_diag_bytes(const gn_par *par, const gn_deck *deck, int64_t d, int C);

/* Local. Bytes the diagnostics hold once per node: theta0, and J^T v for the output-space NTK. */
size_t gn_diag_shared_bytes(const gn_deck *deck, int64_t d);

#endif
