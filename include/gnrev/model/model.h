/* model.h — RevMLP (docs/algorithm.md section 1): forward, exact inverse, JVPs and VJPs, all row-local.
 *
 * Conventions: every matrix is row-major; a batch X is n x d with halves x1 = X[:, :m] and
 * x2 = X[:, m:] (leading dimension d). The trained parameters of all blocks live in one flat
 * vector theta; half-block (b, s) (s = 0 for F, 1 for G) owns the hp x m row-major matrix
 * Theta = [W ; b] at theta + gn_model_offset(b, s), where hp = h + 1 with bias (the last row is
 * b) and hp = h without. Its feature matrix is A(z) = [phi(z C), 1] (n x hp). */
#ifndef GNREV_MODEL_H
#define GNREV_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "gnrev/core/par.h"
#include "gnrev/core/shm.h"
#include "gnrev/input/deck.h"
#include "gnrev/core/real.h"

typedef struct {
  int B;            /* blocks */
  int64_t d, m;     /* state width d = 2m */
  int64_t h, hp;    /* hidden width, feature width (h + bias) */
  int C;            /* classes (output width) */
  gn_activation *act; /* activation of each block (block 0 identity if linear_first_block) */
  gn_real **proj;    /* proj[2b+s]: fixed C matrix of half-block (b, s), m x h row-major */
  gn_real *U;        /* output map, d x C row-major, orthonormal columns */
  gn_shm fixed;     /* the block holding every C and U, once per node */
  size_t nparams;   /* 2 B hp m */
  /* workspace, sized by gn_model_reserve: hot paths never allocate. Every kernel below may
   * overwrite any of them, so callers keep their own copies of anything they need. */
  int64_t nmax;     /* rows the workspace holds */
  gn_real *wA;       /* nmax x hp: a feature matrix A(z) = [phi(z C), 1] */
  gn_real *wV;       /* nmax x h: a tangent v C or a cotangent g W^T in feature space */
  gn_real *wM;       /* 2 m x m: C W and z^T g, for linear blocks evaluated as z (C W) */
} gn_model;

/* Collective on par->node (Local with par == NULL). Builds the fixed parts (C from GN_RNG_PROJ_C,
 * U from GN_RNG_OUT_U) for input width d and C classes from the deck's &model and seed, once per
 * node in node-shared memory (the node's ranks draw a slice each); par == NULL keeps them in this
 * process's memory. */
int gn_model_create(const gn_par *par, const gn_deck *deck, int64_t d, int C, gn_model *model);
void gn_model_free(gn_model *model);

/* Local. Makes the workspace big enough for batches of up to n rows. */
int gn_model_reserve(gn_model *model, int64_t n);

/* Local. Offset of half-block (b, s) in theta. */
size_t gn_model_offset(const gn_model *model, int b, int s);

/* Local. Entries [lo, hi) of the initial parameters: W ~ N(0, init_std^2) from GN_RNG_INIT_W,
 * b = 0 (whatever [lo, hi), each entry gets the value of the whole vector's draw). */
void gn_model_init_params(const gn_model *model, const gn_deck *deck, size_t lo, size_t hi, gn_real *theta);

/* Local. Flops of the matrix products (not the element-wise passes) that one call of
 * gn_model_forward (with logits) or gn_model_backward (with grad) makes on n rows; and those of one
 * half-block's forward, JVP and VJP (with dtheta) on n rows, as the kernels below choose their
 * route. For benchmarks: the rate of a step is its counted flops over its time. */
double gn_model_flops_forward(const gn_model *model, int64_t n);
double gn_model_flops_backward(const gn_model *model, int64_t n);
double gn_model_flops_half(const gn_model *model, int b, int64_t n, char kind);

/* Local. A = A(z) for half-block (b, s): z is n x m with leading dimension ldz; A is n x hp. */
void gn_model_features(const gn_model *model, int b, int s, int64_t n, const gn_real *z, int64_t ldz,
                       gn_real *A);

/* Local. out (n x m, ld ldo) += sign * F_bs(z); out must not overlap z. */
void gn_model_half_forward(const gn_model *model, const gn_real *theta, int b, int s, int64_t n,
                           const gn_real *z, int64_t ldz, double sign, gn_real *out, int64_t ldo);

/* Local. out (n x m, ld ldo) = J_bs(z)[v]: the JVP of F_bs at z along input tangent v (n x m). */
void gn_model_half_jvp(const gn_model *model, const gn_real *theta, int b, int s, int64_t n,
                       const gn_real *z, int64_t ldz, const gn_real *v, int64_t ldv, gn_real *out,
                       int64_t ldo);

/* Local. The same JVP when the features A = A_bs(z) (n x hp, ld hp) are at hand: phi' is read off
 * them, so the GN sweep computes each feature matrix once. A is not modified. */
void gn_model_half_jvp_features(const gn_model *model, const gn_real *theta, int b, int s, int64_t n,
                                const gn_real *A, const gn_real *v, int64_t ldv, gn_real *out, int64_t ldo);

/* Local. The VJP of F_bs at z with output cotangent g (n x m): gz (n x m, ld ldgz) += J^T g,
 * and, when dtheta is not NULL, dtheta (hp x m) += A(z)^T g. */
void gn_model_half_vjp(const gn_model *model, const gn_real *theta, int b, int s, int64_t n,
                       const gn_real *z, int64_t ldz, const gn_real *g, int64_t ldg, gn_real *gz,
                       int64_t ldgz, gn_real *dtheta);

/* Local. Block b forward, in place on X (n x d): (x1, x2) -> (y1, y2). */
void gn_model_block_forward(const gn_model *model, const gn_real *theta, int b, int64_t n, gn_real *X);

/* Local. Block b inverse, in place: (y1, y2) -> (x1, x2). */
void gn_model_block_inverse(const gn_model *model, const gn_real *theta, int b, int64_t n, gn_real *X);

/* Local. Whole network in place: X (n x d) becomes X_B; logits (n x C) = X_B U unless logits is
 * NULL. */
void gn_model_forward(const gn_model *model, const gn_real *theta, int64_t n, gn_real *X, gn_real *logits);

/* Local. One half-block of gn_model_backward, in its order (b = B-1 .. 0, G before F): X and dX
 * (n x d) go from the half-block's output to its input, and dtheta (hp x m, NULL: none) += the
 * gradient of its Theta for these rows. */
void gn_model_backward_half(const gn_model *model, const gn_real *theta, int b, int s, int64_t n, gn_real *X,
                            gn_real *dX, gn_real *dtheta);

/* Local. Backpropagation from the top: X holds X_B on entry and X_0 on return (inputs are
 * recomputed with the inverse, no activations stored); dX holds dL/dX_B on entry (n x d) and
 * dL/dX_0 on return; grad (nparams) += dL/dtheta for these rows (sum over local rows only), or
 * only dX when grad is NULL. */
void gn_model_backward(const gn_model *model, const gn_real *theta, int64_t n, gn_real *X, gn_real *dX,
                       gn_real *grad);

#endif
