/* shm.c — node-shared blocks (shm.h). Every live window of the process is listed, so that
 * gn_shm_sync fences them all: MPI_Win_sync is the call the standard names for making stores
 * through one window visible through another process's view of it. */
#include "gnrev/core/shm.h"

#include <stdlib.h>
#include <string.h>

#include "gnrev/core/err.h"

enum { MAX_WINDOWS = 64 };

static MPI_Win live[MAX_WINDOWS];
static int nlive;

static int remember(MPI_Win win) {
  if (nlive == MAX_WINDOWS) return 0;
  live[nlive++] = win;
  return 1;
}

static void forget(MPI_Win win) {
  for (int i = 0; i < nlive; ++i)
    if (live[i] == win) {
      live[i] = live[--nlive];
      return;
    }
}

int gn_shm_alloc(const gn_par *par, size_t bytes, const char *what, gn_shm *s) {
  memset(s, 0, sizeof *s);
  s->win = MPI_WIN_NULL;
  s->bytes = bytes;
  if (!par) {
    s->heap = malloc(bytes ? bytes : 1);
    if (!s->heap) GN_FAIL(GN_ENOMEM, "out of memory for %s (%zu bytes)", what, bytes);
    s->base = s->heap;
    return GN_OK;
  }
  MPI_Aint mine = par->node_rank == 0 ? (MPI_Aint)(bytes ? bytes : 1) : 0;
  void *p = NULL;
  MPI_Win win = MPI_WIN_NULL;
  int rc = MPI_Win_allocate_shared(mine, 1, MPI_INFO_NULL, par->node, &p, &win);
  int ok = rc == MPI_SUCCESS;
  /* Every rank of the node learns whether the block exists before anyone uses it. */
  if (MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, par->node) != MPI_SUCCESS) ok = 0;
  if (!ok) {
    if (win != MPI_WIN_NULL) MPI_Win_free(&win);
    GN_FAIL(GN_ENOMEM, "cannot allocate %s (%zu bytes) in node-shared memory: not enough memory or /dev/shm "
            "too small on this node", what, bytes);
  }
  MPI_Win_set_errhandler(win, MPI_ERRORS_RETURN);
  MPI_Aint size = 0;
  int unit = 0;
  CHECK_MPI(MPI_Win_shared_query(win, 0, &size, &unit, &s->base));
  CHECK_MPI(MPI_Win_lock_all(MPI_MODE_NOCHECK, win));
  s->win = win;
  if (!remember(win)) GN_FAIL(GN_EINTERNAL, "more than %d node-shared blocks", MAX_WINDOWS);
  return GN_OK;
}

void gn_shm_free(gn_shm *s) {
  if (s->win != MPI_WIN_NULL && s->win != (MPI_Win)0) {
    forget(s->win);
    MPI_Win_unlock_all(s->win);
    MPI_Win_free(&s->win);
  }
  free(s->heap);
  memset(s, 0, sizeof *s);
  s->win = MPI_WIN_NULL;
}

int gn_shm_sync(const gn_par *par) {
  if (!par) return GN_OK;
  for (int i = 0; i < nlive; ++i) CHECK_MPI(MPI_Win_sync(live[i]));
  CHECK_MPI(MPI_Barrier(par->node));
  for (int i = 0; i < nlive; ++i) CHECK_MPI(MPI_Win_sync(live[i]));
  return GN_OK;
}

void gn_shm_slice(const gn_par *par, size_t n, size_t elem, size_t *lo, size_t *hi) {
  if (!par || par->node_size <= 1) {
    *lo = 0;
    *hi = n;
    return;
  }
  /* Slices in units of whole 64-byte lines where the element size allows. */
  const size_t per_line = elem > 0 && elem < 64 && 64 % elem == 0 ? 64 / elem : 1;
  const size_t lines = (n + per_line - 1) / per_line, k = (size_t)par->node_size, r = (size_t)par->node_rank;
  const size_t l0 = lines * r / k, l1 = lines * (r + 1) / k;
  *lo = l0 * per_line < n ? l0 * per_line : n;
  *hi = l1 * per_line < n ? l1 * per_line : n;
}
