/* array.h — local arrays of doubles: allocation that never asks malloc for zero bytes (a rank may
 * hold no rows), and the finiteness test every numerical module applies to its results. */
#ifndef GNREV_CORE_ARRAY_H
#define GNREV_CORE_ARRAY_H

#include <stdbool.h>
#include <stddef.h>

/* Local. malloc of n doubles (at least one, so that NULL always means out of memory). */
double *gn_alloc(size_t n);

/* Local. Whether every one of the n values is finite (no inf, no NaN). */
bool gn_all_finite(const double *v, size_t n);

#endif
