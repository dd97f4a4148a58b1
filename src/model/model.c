/* model.c — RevMLP (docs/algorithm.md section 1): the fixed projections C and the output map U, the
 * parameter layout and initialisation, and the row-local kernels (half-block forward, JVP and
 * VJP, block forward and inverse, network forward, backpropagation through the inverse).
 *
 * Every product is one row-major BLAS gemm; the element-wise passes between them run over
 * contiguous rows so that they vectorise. The kernels share the model's workspace: wA holds a
 * feature matrix (n x hp) and wV a tangent or cotangent in feature space (n x h). phi'(zC) is
 * read off phi(zC) (relu: phi > 0; tanh: 1 - phi^2), so the pre-activation is never stored.
 *
 * A linear block (phi = identity, block 1 by default) is evaluated as z (C W) + b instead of
 * (z C) W + b whenever that is cheaper, i.e. when m (h + n) < 2 n h (roughly m < 2n): C W costs
 * m^2 h once per call, against n m h for each of the products it replaces, and its VJP gives
 * dW = C^T (z^T g). For MNIST (m = 392, h = 8000, n = 1024) this makes a linear half-block about
 * five times cheaper. It is the same map up to rounding; the feature matrix of gn_model_features
 * is unaffected. */
#include "gnrev/model/model.h"

#include <assert.h>
#include <stdbool.h>
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gnrev/core/blas.h"
#include "gnrev/core/err.h"
#include "gnrev/core/rng.h"
#include "gnrev/core/real.h"

size_t gn_model_offset(const gn_model *model, int b, int s) {
  return (size_t)(2 * b + s) * (size_t)model->hp * (size_t)model->m;
}

/* A (n x hp, ld lda) = [phi(z C), 1] for half-block (b, s). */
static void features_into(const gn_model *md, int b, int s, int64_t n, const gn_real *z, int64_t ldz,
                          gn_real *A, int64_t lda) {
  const int64_t h = md->h;
  gn_gemm(CblasNoTrans, CblasNoTrans, n, h, md->m, 1.0, z, ldz, md->proj[2 * b + s], h, 0.0, A, lda);
  switch (md->act[b]) {
    case GN_ACT_IDENTITY:
      break;
    case GN_ACT_RELU:
      /* "< 0" rather than "> 0 ? a : 0" so that a NaN pre-activation stays visible. */
      for (int64_t i = 0; i < n; ++i) {
        gn_real *a = A + i * lda;
        for (int64_t j = 0; j < h; ++j) a[j] = a[j] < 0 ? (gn_real)0 : a[j];
      }
      break;
    case GN_ACT_TANH:
      for (int64_t i = 0; i < n; ++i) {
        gn_real *a = A + i * lda;
        for (int64_t j = 0; j < h; ++j) a[j] = gn_tanh(a[j]);
      }
      break;
  }
  if (md->hp > h)
    for (int64_t i = 0; i < n; ++i) A[i * lda + h] = 1.0;
}

/* V (n x h, ld ldv) *= phi'(P) elementwise, given A = phi(P) (ld lda). relu'(0) = 0. */
static void times_dphi(gn_activation act, int64_t n, int64_t h, const gn_real *A, int64_t lda, gn_real *V,
                       int64_t ldv) {
  switch (act) {
    case GN_ACT_IDENTITY:
      break;
    case GN_ACT_RELU:
      for (int64_t i = 0; i < n; ++i) {
        const gn_real *a = A + i * lda;
        gn_real *v = V + i * ldv;
        for (int64_t j = 0; j < h; ++j) v[j] = a[j] > 0 ? v[j] : (gn_real)0;
      }
      break;
    case GN_ACT_TANH:
      for (int64_t i = 0; i < n; ++i) {
        const gn_real *a = A + i * lda;
        gn_real *v = V + i * ldv;
        for (int64_t j = 0; j < h; ++j) v[j] *= (gn_real)1 - a[j] * a[j];
      }
      break;
  }
}

/* Whether half-block products of block b go through M = C W (see the header comment). */
static int linear_route(const gn_model *md, int b, int64_t n) {
  return md->act[b] == GN_ACT_IDENTITY && md->m * (md->h + n) < 2 * n * md->h;
}

/* wM[0 : m*m] = C W for half-block (b, s); returns it. */
static const gn_real *form_cw(const gn_model *md, const gn_real *theta, int b, int s) {
  const int64_t m = md->m, h = md->h;
  gn_gemm(CblasNoTrans, CblasNoTrans, m, m, h, 1.0, md->proj[2 * b + s], h, theta + gn_model_offset(md, b, s),
       m, 0.0, md->wM, m);
  return md->wM;
}

/* out (n x m, ld ldo) += sign (z M + 1 b^T) for a linear half-block with M = C W. */
static void apply_cw(const gn_model *md, const gn_real *theta, int b, int s, const gn_real *M, int64_t n,
                     const gn_real *z, int64_t ldz, double sign, gn_real *out, int64_t ldo) {
  const int64_t m = md->m;
  gn_gemm(CblasNoTrans, CblasNoTrans, n, m, m, sign, z, ldz, M, m, 1.0, out, ldo);
  if (md->hp > md->h) {
    const gn_real *bias = theta + gn_model_offset(md, b, s) + md->h * m;
    for (int64_t i = 0; i < n; ++i) {
      gn_real *o = out + i * ldo;
      for (int64_t j = 0; j < m; ++j) o[j] += (gn_real)sign * bias[j];
    }
  }
}

/* The VJP of a linear half-block with M = C W: gz += g M^T, dW += C^T (z^T g), db += 1^T g. */
static void vjp_cw(const gn_model *md, int b, int s, const gn_real *M, int64_t n, const gn_real *z,
                   int64_t ldz, const gn_real *g, int64_t ldg, gn_real *gz, int64_t ldgz, gn_real *dtheta) {
  const int64_t m = md->m, h = md->h;
  gn_gemm(CblasNoTrans, CblasTrans, n, m, m, 1.0, g, ldg, M, m, 1.0, gz, ldgz);
  if (!dtheta) return;
  gn_real *Z = md->wM + m * m;
  gn_gemm(CblasTrans, CblasNoTrans, m, m, n, 1.0, z, ldz, g, ldg, 0.0, Z, m);
  gn_gemm(CblasTrans, CblasNoTrans, h, m, m, 1.0, md->proj[2 * b + s], h, Z, m, 1.0, dtheta, m);
  if (md->hp > h) {
    gn_real *db = dtheta + h * m;
    for (int64_t i = 0; i < n; ++i) {
      const gn_real *gi = g + i * ldg;
      for (int64_t j = 0; j < m; ++j) db[j] += gi[j];
    }
  }
}

/* The VJP of half-block (b, s) given its features A = wA at z: gz += ((g W^T) . phi') C^T and
 * dtheta += A^T g (the bias row of Theta takes no part in J). */
static void vjp_from_features(const gn_model *md, const gn_real *theta, int b, int s, int64_t n,
                              const gn_real *g, int64_t ldg, gn_real *gz, int64_t ldgz, gn_real *dtheta) {
  const int64_t m = md->m, h = md->h, hp = md->hp;
  const gn_real *W = theta + gn_model_offset(md, b, s);
  gn_gemm(CblasNoTrans, CblasTrans, n, h, m, 1.0, g, ldg, W, m, 0.0, md->wV, h);
  times_dphi(md->act[b], n, h, md->wA, hp, md->wV, h);
  gn_gemm(CblasNoTrans, CblasTrans, n, m, h, 1.0, md->wV, h, md->proj[2 * b + s], h, 1.0, gz, ldgz);
  if (dtheta) gn_gemm(CblasTrans, CblasNoTrans, hp, m, n, 1.0, md->wA, hp, g, ldg, 1.0, dtheta, m);
}

/* kind 'f' forward (features, then A Theta), 'j' JVP (v C, then times W), 'v' VJP with dtheta:
 * features, g W^T, times C^T and A^T g; the linear route replaces the h-wide products by C W. */
double gn_model_flops_half(const gn_model *md, int b, int64_t n, char kind) {
  const double nn = (double)n, m = (double)md->m, h = (double)md->h, hp = (double)md->hp;
  const double cw = 2 * m * m * h; /* C W */
  const bool lin = linear_route(md, b, n);
  switch (kind) {
    case 'f': return lin ? cw + 2 * nn * m * m : 2 * nn * m * h + 2 * nn * hp * m;
    case 'j': return lin ? cw + 2 * nn * m * m : 4 * nn * m * h;
    default: /* the VJP of backpropagation: the inverse's forward, then the two VJP products */
      return lin ? cw + 2 * nn * m * m + 4 * nn * m * m + 2 * h * m * m
                 : 2 * nn * m * h + 2 * nn * hp * m + 4 * nn * h * m + 2 * hp * nn * m;
  }
}

double gn_model_flops_forward(const gn_model *md, int64_t n) {
  double f = 2.0 * (double)n * (double)md->d * md->C;
  for (int b = 0; b < md->B; ++b) f += 2 * gn_model_flops_half(md, b, n, 'f');
  return f;
}

double gn_model_flops_backward(const gn_model *md, int64_t n) {
  double f = 0;
  for (int b = 0; b < md->B; ++b) f += 2 * gn_model_flops_half(md, b, n, 'v');
  return f;
}

void gn_model_features(const gn_model *model, int b, int s, int64_t n, const gn_real *z, int64_t ldz,
                       gn_real *A) {
  features_into(model, b, s, n, z, ldz, A, model->hp);
}

void gn_model_half_forward(const gn_model *model, const gn_real *theta, int b, int s, int64_t n,
                           const gn_real *z, int64_t ldz, double sign, gn_real *out, int64_t ldo) {
  assert(n <= model->nmax);
  if (linear_route(model, b, n)) {
    apply_cw(model, theta, b, s, form_cw(model, theta, b, s), n, z, ldz, sign, out, ldo);
    return;
  }
  const int64_t hp = model->hp;
  features_into(model, b, s, n, z, ldz, model->wA, hp);
  gn_gemm(CblasNoTrans, CblasNoTrans, n, model->m, hp, sign, model->wA, hp,
       theta + gn_model_offset(model, b, s), model->m, 1.0, out, ldo);
}

/* out = J[v] given the features A (ld hp) at the point of linearisation, which carry phi'. */
static void jvp_from_features(const gn_model *model, const gn_real *theta, int b, int s, int64_t n,
                              const gn_real *A, const gn_real *v, int64_t ldv, gn_real *out, int64_t ldo) {
  const int64_t m = model->m, h = model->h;
  if (linear_route(model, b, n)) {
    gn_gemm(CblasNoTrans, CblasNoTrans, n, m, m, 1.0, v, ldv, form_cw(model, theta, b, s), m, 0.0, out, ldo);
    return;
  }
  gn_gemm(CblasNoTrans, CblasNoTrans, n, h, m, 1.0, v, ldv, model->proj[2 * b + s], h, 0.0, model->wV, h);
  if (model->act[b] != GN_ACT_IDENTITY) times_dphi(model->act[b], n, h, A, model->hp, model->wV, h);
  gn_gemm(CblasNoTrans, CblasNoTrans, n, m, h, 1.0, model->wV, h, theta + gn_model_offset(model, b, s), m,
       0.0, out, ldo);
}

void gn_model_half_jvp(const gn_model *model, const gn_real *theta, int b, int s, int64_t n,
                       const gn_real *z, int64_t ldz, const gn_real *v, int64_t ldv, gn_real *out,
                       int64_t ldo) {
  assert(n <= model->nmax);
  if (model->act[b] != GN_ACT_IDENTITY && !linear_route(model, b, n))
    features_into(model, b, s, n, z, ldz, model->wA, model->hp);
  jvp_from_features(model, theta, b, s, n, model->wA, v, ldv, out, ldo);
}

void gn_model_half_jvp_features(const gn_model *model, const gn_real *theta, int b, int s, int64_t n,
                                const gn_real *A, const gn_real *v, int64_t ldv, gn_real *out, int64_t ldo) {
  assert(n <= model->nmax);
  jvp_from_features(model, theta, b, s, n, A, v, ldv, out, ldo);
}

void gn_model_half_vjp(const gn_model *model, const gn_real *theta, int b, int s, int64_t n,
                       const gn_real *z, int64_t ldz, const gn_real *g, int64_t ldg, gn_real *gz,
                       int64_t ldgz, gn_real *dtheta) {
  assert(n <= model->nmax);
  if (linear_route(model, b, n)) {
    vjp_cw(model, b, s, form_cw(model, theta, b, s), n, z, ldz, g, ldg, gz, ldgz, dtheta);
    return;
  }
  if (dtheta || model->act[b] != GN_ACT_IDENTITY)
    features_into(model, b, s, n, z, ldz, model->wA, model->hp);
  vjp_from_features(model, theta, b, s, n, g, ldg, gz, ldgz, dtheta);
}

void gn_model_block_forward(const gn_model *model, const gn_real *theta, int b, int64_t n, gn_real *X) {
  const int64_t d = model->d, m = model->m;
  gn_model_half_forward(model, theta, b, 0, n, X + m, d, 1.0, X, d);
  gn_model_half_forward(model, theta, b, 1, n, X, d, 1.0, X + m, d);
}

void gn_model_block_inverse(const gn_model *model, const gn_real *theta, int b, int64_t n, gn_real *X) {
  const int64_t d = model->d, m = model->m;
  gn_model_half_forward(model, theta, b, 1, n, X, d, -1.0, X + m, d);
  gn_model_half_forward(model, theta, b, 0, n, X + m, d, -1.0, X, d);
}

void gn_model_forward(const gn_model *model, const gn_real *theta, int64_t n, gn_real *X, gn_real *logits) {
  for (int b = 0; b < model->B; ++b) gn_model_block_forward(model, theta, b, n, X);
  if (logits)
    gn_gemm(CblasNoTrans, CblasNoTrans, n, model->C, model->d, 1.0, X, model->d, model->U, model->C, 0.0,
         logits, model->C);
}

/* One half-block of backpropagation: target (the half-block's output half) -= F_bs(z), then the
 * VJP at z with cotangent g: gz += J^T g, dtheta += A(z)^T g. The features (or C W) computed for
 * the inverse serve the VJP too. */
static void half_backward(const gn_model *md, const gn_real *theta, int b, int s, int64_t n, const gn_real *z,
                          gn_real *target, const gn_real *g, gn_real *gz, gn_real *dtheta) {
  const int64_t d = md->d, m = md->m, hp = md->hp;
  if (linear_route(md, b, n)) {
    const gn_real *M = form_cw(md, theta, b, s);
    apply_cw(md, theta, b, s, M, n, z, d, -1.0, target, d);
    vjp_cw(md, b, s, M, n, z, d, g, d, gz, d, dtheta);
    return;
  }
  features_into(md, b, s, n, z, d, md->wA, hp);
  gn_gemm(CblasNoTrans, CblasNoTrans, n, m, hp, -1.0, md->wA, hp, theta + gn_model_offset(md, b, s), m, 1.0,
       target, d);
  vjp_from_features(md, theta, b, s, n, g, d, gz, d, dtheta);
}

void gn_model_backward_half(const gn_model *model, const gn_real *theta, int b, int s, int64_t n, gn_real *X,
                            gn_real *dX, gn_real *dtheta) {
  assert(n <= model->nmax);
  const int64_t m = model->m;
  /* G: y2 -> x2 and gy1 += J_G^T gy2; F: y1 -> x1 and gx2 = gy2 + J_F^T gy1. */
  if (s == 1)
    half_backward(model, theta, b, 1, n, X, X + m, dX + m, dX, dtheta);
  else
    half_backward(model, theta, b, 0, n, X + m, X, dX, dX + m, dtheta);
}

void gn_model_backward(const gn_model *model, const gn_real *theta, int64_t n, gn_real *X, gn_real *dX,
                       gn_real *grad) {
  for (int b = model->B - 1; b >= 0; --b)
    for (int s = 1; s >= 0; --s)
      gn_model_backward_half(model, theta, b, s, n, X, dX, grad ? grad + gn_model_offset(model, b, s) : NULL);
}

/* Orthonormalises the columns of the row-major d x C matrix U in place: modified Gram-Schmidt,
 * each column projected twice ("twice is enough", Giraud et al. 2005) so that U^T U = I to
 * rounding. The normalisations are positive, so the result is the Q of U = QR with diag(R) > 0,
 * which is unique: the same on every rank and for every BLAS. */
static int orthonormalise_columns(int64_t d, int C, gn_real *U) {
  for (int j = 0; j < C; ++j) {
    double norm0 = 0.0;
    for (int64_t i = 0; i < d; ++i) norm0 += U[i * C + j] * U[i * C + j];
    for (int pass = 0; pass < 2; ++pass)
      for (int k = 0; k < j; ++k) {
        double r = 0.0;
        for (int64_t i = 0; i < d; ++i) r += U[i * C + k] * U[i * C + j];
        for (int64_t i = 0; i < d; ++i) U[i * C + j] -= r * U[i * C + k];
      }
    double norm = 0.0;
    for (int64_t i = 0; i < d; ++i) norm += U[i * C + j] * U[i * C + j];
    if (!(norm > 1e-20 * norm0))
      GN_FAIL(GN_ENUMERIC,
              "model: the Gaussian %lld x %d matrix for the output map U has dependent columns "
              "(column %d); expected full column rank",
              (long long)d, C, j);
    norm = sqrt(norm);
    for (int64_t i = 0; i < d; ++i) U[i * C + j] /= norm;
  }
  return GN_OK;
}

/* Local. Entries [lo, hi) of the fixed block: the 2B projections C (N(0, proj_gain^2 / h), one
 * stream sub per half-block) followed by the Gaussian matrix of U (d x C), before U's
 * orthonormalisation. */
static void draw_fixed(const gn_model *md, const gn_deck *deck, size_t lo, size_t hi, gn_real *block) {
  const uint64_t seed = (uint64_t)deck->seed;
  const size_t psize = (size_t)md->m * (size_t)md->h, nproj = 2 * (size_t)md->B * psize;
  const double cscale = deck->proj_gain / sqrt((double)md->h);
  for (size_t k = lo / psize; k < 2 * (size_t)md->B && k * psize < hi; ++k) {
    const size_t a = lo > k * psize ? lo : k * psize, b = hi < (k + 1) * psize ? hi : (k + 1) * psize;
    gn_rng_fill_normal_real(seed, GN_RNG_PROJ_C, (uint32_t)k, a - k * psize, b - a, cscale, block + a);
  }
  if (hi > nproj) {
    const size_t a = lo > nproj ? lo : nproj;
    gn_rng_fill_normal_real(seed, GN_RNG_OUT_U, 0, a - nproj, hi - a, 1.0, block + a);
  }
}

int gn_model_create(const gn_par *par, const gn_deck *deck, int64_t d, int C, gn_model *model) {
  memset(model, 0, sizeof *model);
  model->fixed.win = MPI_WIN_NULL;
  if (d < 2 || d % 2 != 0 || d > INT_MAX)
    GN_FAIL(GN_EINPUT, "model: input width d = %lld; expected an even number in [2, %d] (the state "
            "splits into two halves of d/2)", (long long)d, INT_MAX);
  if (deck->blocks < 1 || deck->blocks > INT_MAX / 2)
    GN_FAIL(GN_EINPUT, "model: blocks = %lld; expected at least 1", (long long)deck->blocks);
  if (deck->hidden < 1 || deck->hidden >= INT_MAX)
    GN_FAIL(GN_EINPUT, "model: hidden = %lld; expected a width in [1, %d)", (long long)deck->hidden,
            INT_MAX);
  if (C < 1 || C > d)
    GN_FAIL(GN_EINPUT, "model: %d classes need an output map with %d orthonormal columns in R^%lld; "
            "expected 1 <= classes <= d", C, C, (long long)d);
  int status = GN_OK;
  model->B = (int)deck->blocks;
  model->d = d;
  model->m = d / 2;
  model->h = deck->hidden;
  model->hp = deck->hidden + (deck->bias ? 1 : 0);
  model->C = C;
  model->nparams = 2 * (size_t)model->B * (size_t)model->hp * (size_t)model->m;
  const size_t psize = (size_t)model->m * (size_t)model->h;
  const size_t nproj = 2 * (size_t)model->B * psize, nfixed = nproj + (size_t)d * (size_t)C;

  model->act = malloc((size_t)model->B * sizeof *model->act);
  model->proj = calloc(2 * (size_t)model->B, sizeof *model->proj);
  model->wM = malloc(2 * (size_t)model->m * (size_t)model->m * sizeof *model->wM);
  status = model->act && model->proj && model->wM ? GN_OK : GN_RAISE(GN_ENOMEM, "model: out of memory for its workspace");
  if (par) status = gn_par_agree(par, status);
  CHECK_GOTO(status);
  status = gn_shm_alloc(par, nfixed * sizeof(gn_real), "the fixed projections C and the output map U", &model->fixed);
  if (par) status = gn_par_agree(par, status);
  CHECK_GOTO(status);
  gn_real *block = model->fixed.base;
  for (int b = 0; b < model->B; ++b)
    model->act[b] = (b == 0 && deck->linear_first_block) ? GN_ACT_IDENTITY : deck->activation;
  for (int k = 0; k < 2 * model->B; ++k) model->proj[k] = block + (size_t)k * psize;
  model->U = block + nproj;
  size_t lo, hi;
  gn_shm_slice(par, nfixed, sizeof(gn_real), &lo, &hi);
  draw_fixed(model, deck, lo, hi, block);
  CHECK_GOTO(gn_shm_sync(par));
  /* U's columns are orthonormalised by one rank of the node (a few d C^2 flops). */
  if (!par || par->node_rank == 0) status = orthonormalise_columns(d, C, model->U);
  if (par) status = gn_par_agree(par, status);
  CHECK_GOTO(status);
  CHECK_GOTO(gn_shm_sync(par));
  return GN_OK;
fail:
  gn_model_free(model);
  return status;
}

void gn_model_free(gn_model *model) {
  gn_shm_free(&model->fixed);
  free(model->proj);
  free(model->act);
  free(model->wA);
  free(model->wV);
  free(model->wM);
  memset(model, 0, sizeof *model);
  model->fixed.win = MPI_WIN_NULL;
}

int gn_model_reserve(gn_model *model, int64_t n) {
  if (n <= model->nmax) return GN_OK;
  const size_t rows = (size_t)n;
  if (rows > SIZE_MAX / sizeof(gn_real) / 2 / (size_t)model->hp)
    GN_FAIL(GN_ENOMEM, "model: workspace for %lld rows of width %lld overflows size_t", (long long)n,
            (long long)model->hp);
  free(model->wA);
  free(model->wV);
  model->wA = malloc(rows * (size_t)model->hp * sizeof(gn_real));
  model->wV = malloc(rows * (size_t)model->h * sizeof(gn_real));
  if (!model->wA || !model->wV) {
    free(model->wA);
    free(model->wV);
    model->wA = model->wV = NULL;
    model->nmax = 0;
    GN_FAIL(GN_ENOMEM, "model: out of memory for the workspace of %lld rows (%zu bytes)", (long long)n,
            rows * (size_t)(model->hp + model->h) * sizeof(gn_real));
  }
  model->nmax = n;
  return GN_OK;
}

void gn_model_init_params(const gn_model *model, const gn_deck *deck, size_t lo, size_t hi, gn_real *theta) {
  const size_t hm = (size_t)model->hp * (size_t)model->m, wsize = (size_t)model->h * (size_t)model->m;
  for (size_t k = lo / hm; k < 2 * (size_t)model->B && k * hm < hi; ++k) {
    gn_real *Theta = theta + k * hm;
    const size_t a = lo > k * hm ? lo - k * hm : 0, b = hi < (k + 1) * hm ? hi - k * hm : hm;
    /* W: the first wsize entries of the block; the bias row after them is zero. */
    if (a < wsize) {
      const size_t wb = b < wsize ? b : wsize;
      gn_rng_fill_normal_real((uint64_t)deck->seed, GN_RNG_INIT_W, (uint32_t)k, a, wb - a, deck->init_std, Theta + a);
    }
    if (b > wsize) {
      const size_t za = a > wsize ? a : wsize;
      memset(Theta + za, 0, (b - za) * sizeof(gn_real));
    }
  }
}
