/* array.h — local arrays of gn_real (real.h): allocation that never asks malloc for zero bytes (a rank may
 * hold no rows), and the finiteness test every numerical module applies to its results. */
#ifndef GNREV_CORE_ARRAY_H
#define GNREV_CORE_ARRAY_H

#include <stdbool.h>
#include <stddef.h>
#include "gnrev/core/real.h"

/* Local. malloc of n gn_real (at least one, so that NULL always means out of memory). */
gn_real *gn_alloc(size_t n);
/* Local. The same for n doubles (results, statistics: double in both builds, real.h). */
double *gn_alloc_f64(size_t n);

/* Local. Whether every one of the n values is finite (no inf, no NaN). */
bool gn_all_finite(const gn_real *v, size_t n);

#endif
