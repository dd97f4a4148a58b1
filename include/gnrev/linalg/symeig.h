/* symeig.h — eigenvalues and leading eigenvectors of a symmetric matrix whose rows are split over
 * the ranks (the NTK of a probe set, the ViViT Gram matrix), without gathering it anywhere. */
#ifndef GNREV_SYMEIG_H
#define GNREV_SYMEIG_H

#include <stdint.h>

#include "gnrev/core/par.h"
#include "gnrev/core/real.h"

/* Collective on par->comm. The n x n symmetric matrix's rows are split in contiguous blocks of
 * `block` rows (rank r owns rows [r block, min((r + 1) block, n)), as gn_par_rows gives for
 * samples times a per-sample row count); rows_local is this rank's share, row-major, n columns.
 * Both triangles are read as one (the lower of the transposed copy): pass a symmetric matrix.
 * On return, on every rank and bit-identical across them: w (n) the eigenvalues, descending, and
 * vecs (kvec x n, row k the unit eigenvector of w[k], its largest-magnitude entry positive) for
 * 0 <= kvec <= n (vecs may be NULL when kvec = 0). The matrix moves to a near-square 2-D
 * block-cyclic grid by PDGEMR2D and is solved by PDSYEVD; the leading vectors come back by one
 * allreduce of kvec n doubles. `what` names the matrix in messages. GN_ENUMERIC for a non-finite
 * entry, GN_ELIB when ScaLAPACK fails, GN_ENOMEM, GN_EINPUT for bad sizes. Memory per rank about
 * 3 n^2 / P doubles (two 2-D copies and the PDSYEVD workspace) plus kvec n. */
int gn_symeig_rows(const gn_par *par, int64_t n, int64_t block, const gn_real *rows_local, gn_real *w,
                   int64_t kvec, gn_real *vecs, const char *what);

#endif
