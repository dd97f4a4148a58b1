/* testshm.h — node-shared buffers for tests of functions whose results land in node-shared memory
 * (shm.h): gt_shared returns one, gt_shared_free releases it by its address. */
#ifndef GNREV_TESTSHM_H
#define GNREV_TESTSHM_H

#include <stdlib.h>

#include "gnrev/core/real.h"
#include "gnrev/core/shm.h"

enum { GT_SHARED_MAX = 32 };
static gn_shm gt_shared_blocks_[GT_SHARED_MAX];

/* Collective on par->node. n gn_real (real.h) of node-shared memory, zeroed (NULL when out of
 * memory): the library's node-shared results are gn_real. */
__attribute__((unused)) static gn_real *gt_shared(const gn_par *par, size_t n) {
  for (int i = 0; i < GT_SHARED_MAX; ++i)
    if (!gt_shared_blocks_[i].base) {
      if (gn_shm_alloc(par, (n ? n : 1) * sizeof(gn_real), "a test buffer", &gt_shared_blocks_[i]) != GN_OK) return NULL;
      if (par->node_rank == 0) memset(gt_shared_blocks_[i].base, 0, (n ? n : 1) * sizeof(gn_real));
      gn_shm_sync(par);
      return gt_shared_blocks_[i].base;
    }
  return NULL;
}

/* Collective on the node of the allocation. */
__attribute__((unused)) static void gt_shared_free(gn_real *p) {
  for (int i = 0; i < GT_SHARED_MAX; ++i)
    if (p && gt_shared_blocks_[i].base == p) gn_shm_free(&gt_shared_blocks_[i]);
}

#endif
