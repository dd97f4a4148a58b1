/* pinv.h — the distributed pseudo-inverse of a row-distributed feature matrix (docs/algorithm.md
 * sections 2, 3 and 7): dTheta = A^+ T for A (n x hp) and T (n x m) whose rows are split over the
 * ranks of par->comm in gn_par_rows blocks. ScaLAPACK and BLACS are called here, in sl_grid.c and
 * in symeig_scalapack.c (NTK spectrum, ViViT Gram). */
#ifndef GNREV_PINV_H
#define GNREV_PINV_H

#include <stdint.h>

#include "gnrev/input/deck.h"
#include "gnrev/core/par.h"
#include "gnrev/core/real.h"

typedef struct {
  gn_pinv_kind kind;  /* gram (Gram + PDSYEVD), svd (PDGESVD), damped */
  double rtol, atol;  /* keep sigma_i >= max(rtol sigma_max, atol) */
  double damping;     /* damped: 1 / (mu + damping mu_max) for every eigenpair */
} gn_pinv_opts;

typedef struct {
  int64_t kept;       /* singular values kept (damped: every one, min(n, hp)) */
  double sigma_max;   /* largest singular value of A */
  double sigma_min_kept; /* smallest kept singular value (0 if none kept) */
  int tall;           /* 1 if the n > hp (least-squares) route was taken */
  double t_gram, t_eig, t_apply, t_comm; /* seconds in each phase on this rank */
  double flops;       /* this rank's share of the matrix products (eigensolver not counted) */
} gn_pinv_info;

typedef struct gn_pinv_ctx gn_pinv_ctx;

/* Collective on par->comm. Prepares the BLACS grid (near-square p x q = P, p <= q, square blocks
 * of min(64, ceil(n / 2q))) and all workspace for global row count n, feature width hp and
 * right-hand-side width m (each 1 .. INT_MAX); the context is reused by every call with that
 * shape. par->comm must outlive the context. n > hp selects the least-squares route (no grid).
 * nslots > 1 prepares the staged use below for that many Gram matrices, and, on several ranks,
 * the groups of ranks that solve their eigenproblems concurrently. */
int gn_pinv_create(const gn_par *par, int64_t n, int64_t hp, int64_t m, int nslots, gn_pinv_ctx **ctx);

/* Collective on the communicator of gn_pinv_create (releases the BLACS grid); NULL is a no-op. */
void gn_pinv_free(gn_pinv_ctx *ctx);

/* Local. Bytes per rank that gn_pinv_create and gn_pinv_apply will need (for the memory plan). */
size_t gn_pinv_bytes(int nranks, int64_t n, int64_t hp, int64_t m);

/* Collective on par->comm. A_local is this rank's nrows x hp block of A (row-major), T_local its
 * nrows x m block of T; on return dtheta (hp x m row-major, node-shared memory: shm.h, complete on
 * every rank of each node) = A^+ T
 * with the truncation of opts, and AdTheta_local (nrows x m, optional: NULL skips it) = the local
 * rows of A A^+ T = A dtheta. info may be NULL. Every rank returns the same status: GN_ENUMERIC
 * when A, its Gram matrix, the eigenvalues or dtheta hold inf/NaN, GN_ELIB when ScaLAPACK/LAPACK
 * fails (the message names the routine), GN_EINPUT for negative rtol/atol or damping <= 0 with
 * kind damped. Wide (n <= hp): gram and damped use PDSYEVD of A A^T, svd PDGESVD of A^T. Tall
 * (n > hp): every kind uses the eigenpairs of A^T A (rank 0, serial DSYEVD). */
int gn_pinv_apply(gn_pinv_ctx *ctx, const gn_pinv_opts *opts, const gn_real *A_local,
                  const gn_real *T_local, gn_real *dtheta, gn_real *AdTheta_local, gn_pinv_info *info);

/* ---- staged use (wide route, kinds gram and damped): the GN sweep forms every half-block's Gram
 * matrix first, solves all their eigenproblems at once, then solves each right-hand side as the
 * sweep produces it. ---------------------------------------------------------------------------- */

/* Collective. Slot's K = L R^T (n x n) for this rank's nrows x w rows of L and R (w <= hp); R == L
 * forms the symmetric A A^T by a rank-w update. GN_ENUMERIC for a non-finite entry. */
int gn_pinv_gram(gn_pinv_ctx *ctx, int slot, const gn_real *L_local, const gn_real *R_local, int64_t w,
                 gn_pinv_info *info);

/* Collective. Eigenpairs of every slot with a Gram matrix not yet decomposed; with several such
 * slots and a context made with groups, the groups decompose theirs at the same time. */
int gn_pinv_eigen(gn_pinv_ctx *ctx, gn_pinv_info *info);

/* Collective. For this rank's rows of T (nrows x m): Z_local = this rank's rows of K^+ T with the
 * truncation of opts applied to the slot's eigenvalues (the weights of A^+ = A^T K^+), and
 * AdT_local (optional) its rows of A A^+ T = K K^+ T. info gets the kept count and sigma_max. */
int gn_pinv_solve(gn_pinv_ctx *ctx, int slot, const gn_pinv_opts *opts, const gn_real *T_local, gn_real *Z_local,
                  gn_real *AdT_local, gn_pinv_info *info);

/* Collective. dtheta (hp x m, node-shared) = sum over the ranks of A_r^T Z_r, in pieces of rows
 * (no rank holds more than two pieces of 8 MB). GN_ENUMERIC for a non-finite product. */
int gn_pinv_sum_rows(gn_pinv_ctx *ctx, const gn_real *A_local, const gn_real *Z_local, gn_real *dtheta,
                     gn_pinv_info *info);

#endif
