/* pinv.h — the distributed pseudo-inverse of a row-distributed feature matrix (DESIGN.md
 * sections 3 and 4): dTheta = A^+ T for A (n x hp) and T (n x m) whose rows are split over the
 * ranks of par->comm in gn_par_rows blocks. ScaLAPACK and BLACS are called only here. */
#ifndef GNREV_PINV_H
#define GNREV_PINV_H

#include <stdint.h>

#include "gnrev/deck.h"
#include "gnrev/par.h"

typedef struct {
  gn_pinv_kind kind;  /* gram (Gram + PDSYEVD), svd (PDGESVD), damped */
  double rtol, atol;  /* keep sigma_i >= max(rtol sigma_max, atol) */
  double damping;     /* damped: 1 / (mu + damping mu_max) for every eigenpair */
} gn_pinv_opts;

typedef struct {
  int64_t kept;       /* singular values kept */
  double sigma_max;   /* largest singular value of A */
  double sigma_min_kept; /* smallest kept singular value */
  int tall;           /* 1 if the n > hp (least-squares) route was taken */
  double t_gram, t_eig, t_apply, t_comm; /* seconds in each phase on this rank */
} gn_pinv_info;

typedef struct gn_pinv_ctx gn_pinv_ctx;

/* Collective on par->comm. Prepares the BLACS grids (near-square p x q for the n x n work, and
 * the 1 x P row layout) for global row count n, feature width hp and right-hand-side width m;
 * workspace is kept for reuse across calls with the same shape. */
int gn_pinv_create(const gn_par *par, int64_t n, int64_t hp, int64_t m, gn_pinv_ctx **ctx);
void gn_pinv_free(gn_pinv_ctx *ctx);

/* Local. Bytes per rank that gn_pinv_create and gn_pinv_apply will need (for the memory plan). */
size_t gn_pinv_bytes(int nranks, int64_t n, int64_t hp, int64_t m);

/* Collective on par->comm. A_local is this rank's nrows x hp block of A (row-major), T_local its
 * nrows x m block of T; on return dtheta (hp x m row-major, replicated on every rank) = A^+ T with
 * the truncation of opts, and AdTheta_local (nrows x m, optional) = (A A^+ T) local rows. */
int gn_pinv_apply(gn_pinv_ctx *ctx, const gn_pinv_opts *opts, const double *A_local,
                  const double *T_local, double *dtheta, double *AdTheta_local, gn_pinv_info *info);

#endif
