/* sl_grid.c — process grids, block sizes and INFO messages shared by pinv_scalapack.c and
 * symeig_scalapack.c. */
#include "gnrev/linalg/sl_grid.h"

#include <stdlib.h>

#include "gnrev/core/err.h"
#include "gnrev/linalg/scalapack.h"

void gn_sl_grid_shape(int nranks, int *p, int *q) {
  int best = 1;
  for (int d = 1; (int64_t)d * d <= nranks; ++d)
    if (nranks % d == 0) best = d;
  *p = best;
  *q = nranks / best;
}

int gn_sl_block(int64_t n, int q) {
  int64_t nb = (n + 2 * (int64_t)q - 1) / (2 * (int64_t)q);
  if (nb > GN_SL_NB_MAX) nb = GN_SL_NB_MAX;
  return nb < 1 ? 1 : (int)nb;
}

int gn_sl_grid(MPI_Comm comm, int nprow, int npcol) {
  /* gridinit overwrites its first argument with the grid's context; the system handle is only
   * needed until then. */
  int handle = Csys2blacs_handle(comm), ctxt = handle;
  Cblacs_gridinit(&ctxt, "Row", nprow, npcol);
  Cfree_blacs_system_handle(handle);
  const int yes = 1;
  Cblacs_set(ctxt, GN_BLACS_TOPSREPEAT, &yes);
  Cblacs_set(ctxt, GN_BLACS_TOPSCOHRNT, &yes);
  return ctxt;
}

int gn_sl_subgrid(MPI_Comm comm, int first, int nprow, int npcol) {
  int handle = Csys2blacs_handle(comm), ctxt = handle;
  int *map = malloc((size_t)nprow * (size_t)npcol * sizeof(int));
  if (!map) return -1;
  for (int i = 0; i < nprow; ++i)
    for (int j = 0; j < npcol; ++j) map[i + j * nprow] = first + i * npcol + j;
  Cblacs_gridmap(&ctxt, map, nprow, nprow, npcol);
  free(map);
  Cfree_blacs_system_handle(handle);
  int pr = -1, pc = -1, r = -1, c = -1;
  Cblacs_gridinfo(ctxt, &pr, &pc, &r, &c);
  if (r < 0) return -1;
  const int yes = 1;
  Cblacs_set(ctxt, GN_BLACS_TOPSREPEAT, &yes);
  Cblacs_set(ctxt, GN_BLACS_TOPSCOHRNT, &yes);
  return ctxt;
}

int gn_sl_error(const char *routine, int info, const char *positive_meaning) {
  if (info == 0) return GN_OK;
  if (info < -100)
    return GN_RAISE(GN_ELIB, "%s returned info = %d: entry %d of the descriptor in argument %d is "
                    "invalid (a bug in gnrev's call)", routine, info, -info % 100, -info / 100);
  if (info < 0)
    return GN_RAISE(GN_ELIB, "%s returned info = %d: argument %d is invalid (a bug in gnrev's call)",
                    routine, info, -info);
  return GN_RAISE(GN_ELIB, "%s returned info = %d: %s", routine, info, positive_meaning);
}
