/* cka.h — linear centred kernel alignment (Kornblith et al. 2019, docs/algorithm.md section 9) between two
 * representations of the same n samples, the samples split by rows over ranks:
 *
 *     CKA(X, Y) = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F),
 *
 * Xc, Yc the matrices with their (global) column means removed. Feature-space cross-products
 * (p x p, q x q, q x p) are local sums plus one allreduce, so the cost per rank is
 * O(n_local (p + q)^2) flops and O((p + q)^2) memory, whatever n. A representation with no
 * variance (all samples equal, or n < 2) gives NaN. */
#ifndef GNREV_CKA_H
#define GNREV_CKA_H

#include <stdint.h>

#include "gnrev/core/par.h"
#include "gnrev/core/real.h"

/* A fixed reference representation (e.g. a layer at step 0) compared against many later ones:
 * kept centred, with its own norm computed once. */
typedef struct {
  int64_t n;       /* samples over all ranks */
  int64_t n_local; /* samples on this rank */
  int64_t p;       /* features (columns) */
  gn_real *Xc;      /* n_local x p row-major, centred with the global column means */
  double self;     /* ||Xc^T Xc||_F */
} gn_cka_ref;

/* Collective on par->comm. Builds ref from this rank's n_local rows of X (leading dimension ldx)
 * of an n x p representation. */
int gn_cka_ref_create(const gn_par *par, int64_t n_local, int64_t n, int64_t p, const gn_real *X,
                      int64_t ldx, gn_cka_ref *ref);
/* Local. Frees ref's buffer (a zeroed ref is a no-op). */
void gn_cka_ref_free(gn_cka_ref *ref);

/* Collective on par->comm. *cka = CKA(ref, Y) for this rank's ref->n_local rows of the n x q
 * representation Y (leading dimension ldy), in [0, 1] up to rounding. */
int gn_cka_compare(const gn_par *par, const gn_cka_ref *ref, int64_t q, const gn_real *Y, int64_t ldy,
                   double *cka);

/* Collective on par->comm. One-off CKA(X, Y) of an n x p and an n x q representation. */
int gn_cka(const gn_par *par, int64_t n_local, int64_t n, int64_t p, const gn_real *X, int64_t ldx,
           int64_t q, const gn_real *Y, int64_t ldy, double *cka);

#endif
