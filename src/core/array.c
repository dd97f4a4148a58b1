/* array.c — see array.h. */
#include "gnrev/core/array.h"
#include "gnrev/core/real.h"

#include <math.h>
#include <stdlib.h>

gn_real *gn_alloc(size_t n) { return malloc((n ? n : 1) * sizeof(gn_real)); }

double *gn_alloc_f64(size_t n) { return malloc((n ? n : 1) * sizeof(double)); }

bool gn_all_finite(const gn_real *v, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!isfinite(v[i])) return false;
  return true;
}
