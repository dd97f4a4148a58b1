/* shm.h — memory that lives once per node: the model's fixed projections, the parameters, their
 * initial copy, the update and the optimizer's state (MPI-3 shared windows on par->node).
 *
 * The synchronisation rule, the one place it is written down: a node-shared array is written only
 * between two calls of gn_shm_sync (a memory fence on every window, a barrier of the node, a second
 * fence: the "separate" pattern of MPI-3's shared-memory model, in a passive-target epoch opened
 * at allocation), and each entry by one rank of the node only, usually its gn_shm_slice. What any
 * rank wrote before a gn_shm_sync, every rank of the node reads after it. */
#ifndef GNREV_CORE_SHM_H
#define GNREV_CORE_SHM_H

#include <stddef.h>

#include "gnrev/core/par.h"

/* One node-shared allocation. */
typedef struct {
  void *base;    /* the same bytes on every rank of the node */
  size_t bytes;
  MPI_Win win;   /* MPI_WIN_NULL for a private (heap) block */
  void *heap;    /* par == NULL: an ordinary malloc'ed block */
} gn_shm;

/* Collective on par->node. A node-shared block of `bytes` (node rank 0 holds it, the others map
 * it), not initialised. par == NULL makes a private heap block (for single-process tools and
 * tests). Out of memory: GN_ENOMEM on every rank of the node, naming `what`. */
int gn_shm_alloc(const gn_par *par, size_t bytes, const char *what, gn_shm *s);

/* Collective on the node of the gn_shm_alloc call. Frees the block; a zeroed gn_shm is a no-op. */
void gn_shm_free(gn_shm *s);

/* Collective on par->node. The synchronisation point (see the header comment); par == NULL is a
 * no-op. */
int gn_shm_sync(const gn_par *par);

/* Local. This rank's slice [lo, hi) of n entries of `elem` bytes among the node's ranks: contiguous,
 * on 64-byte boundaries so that no two ranks write one cache line. par == NULL: everything. */
void gn_shm_slice(const gn_par *par, size_t n, size_t elem, size_t *lo, size_t *hi);

#endif
