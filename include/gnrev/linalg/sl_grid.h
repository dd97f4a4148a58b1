/* sl_grid.h — what every ScaLAPACK caller in gnrev shares: the near-square process grid, its
 * block size, BLACS contexts whose combines are reproducible, and one reading of INFO. */
#ifndef GNREV_SL_GRID_H
#define GNREV_SL_GRID_H

#include <mpi.h>
#include <stdint.h>

enum { GN_SL_NB_MAX = 64 }; /* square block of the 2-D layout for large matrices */

/* Local. The largest p <= sqrt(nranks) dividing nranks: a p x q grid (q >= p) using every rank. */
void gn_sl_grid_shape(int nranks, int *p, int *q);

/* Local. Square block size for an n x n matrix on q process columns: ceil(n / 2q), at most
 * GN_SL_NB_MAX, at least 1, so that small problems still give every rank a share. */
int gn_sl_block(int64_t n, int q);

/* Collective on comm. A BLACS context for an nprow x npcol "Row"-ordered grid over comm (grid
 * process (r, s) is rank r npcol + s), with fixed combine trees so that a run repeated on the
 * same ranks gives the same bits (BLACS's default combine is an MPI_Allreduce, whose summation
 * order MPI does not promise). Release with Cblacs_gridexit. */
int gn_sl_grid(MPI_Comm comm, int nprow, int npcol);

/* Collective on comm. A BLACS context for the nprow x npcol grid of ranks first .. first + nprow
 * npcol - 1 of comm ("Row" order), with fixed combine trees as gn_sl_grid; -1 on ranks outside it.
 * Grids made from one comm share its system context, so PDGEMR2D can move matrices between them
 * with gn_sl_grid(comm) as the covering context. */
int gn_sl_subgrid(MPI_Comm comm, int first, int nprow, int npcol);

/* Local. GN_OK for info == 0, else GN_ELIB (raised, with the message) naming the routine and
 * what info means: a descriptor entry (info < -100), an argument (-100 <= info < 0), or
 * positive_meaning (info > 0). */
int gn_sl_error(const char *routine, int info, const char *positive_meaning);

#endif
