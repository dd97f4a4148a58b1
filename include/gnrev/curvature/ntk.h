/* ntk.h — the empirical neural tangent kernel on the logits, K = J J^T over all trained
 * parameters, from the per-half-block structure (docs/algorithm.md; J is never formed):
 * K[(i,a),(j,c)] = sum over half-blocks of (A[i] . A[j]) (g_ia . g_jc), g_ia = dlogit_ia/d(half-block
 * output); and J^T w, which raises output-space vectors to parameter space. The diagnostics
 * measure K; the Moore-Penrose and ViViT steps (src/optim) solve with it. */
#ifndef GNREV_NTK_H
#define GNREV_NTK_H

#include <stdint.h>

#include "gnrev/input/deck.h"
#include "gnrev/model/model.h"
#include "gnrev/core/par.h"
#include "gnrev/core/real.h"

/* K for p samples, split by samples: this rank owns samples [row0, row0 + nrows) (gn_par_rows(p))
 * and so rows [row0*C, (row0+nrows)*C) of K, all p*C columns. Index (i, a) = i*C + a. */
typedef struct {
  int64_t p;        /* samples */
  int C;            /* classes */
  int64_t row0, nrows;
  gn_real *K;        /* (nrows*C) x (p*C) row-major */
  int nhalf;        /* half-blocks, 2B */
  double *half_trace; /* nhalf, on every rank: trace of half-block (b, s)'s term at index 2b + s,
                       * = ||J_bs||_F^2 over that half-block's parameters; they sum to trace K */
} gn_ntk;

/* Collective on par->comm. K at theta for the p samples whose local rows are X_local
 * (nrows x d, this rank's gn_par_rows(p) share). Uses (and overwrites) the model's workspace,
 * walking the rows in chunks of model->nmax (>= 1: call gn_model_reserve first). Per half-block
 * and rank (n local samples): C VJPs O(C n m h), allgather of p (hp + C m) doubles, GEMMs
 * O(n p hp + n p C^2 m). Memory per rank: 2 n C x p C (K and a scratch Gram), n C d cotangents,
 * p hp + p C m gathered rows. */
int gn_ntk_compute(const gn_par *par, const gn_model *model, const gn_real *theta, int64_t p,
                   const gn_real *X_local, gn_ntk *K);
void gn_ntk_free(gn_ntk *K);

/* Collective on par->comm. The k largest eigenvalues of K (1 <= k <= p C), descending, on every
 * rank: K's rows move to a near-square 2-D block-cyclic grid by PDGEMR2D, then PDSYEVD (jobz 'V',
 * which PDSYEVD requires). Memory per rank ~ 2 (pC)^2 / P + PDSYEVD workspace (about the same). */
int gn_ntk_eigenvalues(const gn_par *par, const gn_ntk *K, int64_t k, double *top);

/* How far K is from a baseline K0. rel_change mixes growth and rotation (rel_change^2 = 1 +
 * scale^2 - 2 scale alignment); alignment and similarity ignore scale, so together they tell a
 * kernel that only grows from one that turns. */
typedef struct {
  double rel_change; /* ||K - K0||_F / ||K0||_F */
  double similarity; /* cosine between K0 v and K v, v the fixed Gaussian probe vector */
  double alignment;  /* <K0, K>_F / (||K0||_F ||K||_F), the kernel alignment */
  double scale;      /* ||K||_F / ||K0||_F */
  double growth;     /* ||K v|| / ||K0 v|| */
} gn_ntk_change;

/* Collective on par->comm. K against a baseline K0 (same p and split); v is drawn from
 * GN_RNG_PROBE, sub 0, seed, entry (i, a) at index i*C + a. A zero K0, K, K0 v or K v is
 * GN_ENUMERIC. */
int gn_ntk_compare(const gn_par *par, const gn_ntk *K0, const gn_ntk *K, uint64_t seed,
                   gn_ntk_change *out);

/* Collective on par->comm. Kv_local (nrows x d) = this rank's rows of K v for the NTK of the
 * network's d-wide output before U (the state X_B) over all trained parameters, K = J J^T on the
 * probe whose local rows are X_local, without forming K: one backpropagation of the state
 * cotangent v (g = J^T v, summed over every rank into g, nparams of node-shared memory) and one
 * forward-mode pass (J g). v_local holds this rank's nrows x d entries of v. Cost about that of an
 * SGD step on the probe rows. */
int gn_ntk_output_kv(const gn_par *par, const gn_model *model, const gn_real *theta, int64_t nrows,
                     const gn_real *X_local, const gn_real *v_local, gn_real *g, gn_real *Kv_local);

/* Collective on par->comm. delta (nparams, node-shared: shm.h) = J^T w: the parameter gradient of
 * sum_i w_i . logit_i over all ranks' rows, by one backpropagation of the output cotangent w
 * (state cotangent w U^T). X_local (n_local x d) is not modified; w_local is n_local x C. Used
 * to raise output-space vectors to parameter space (MP step, ViViT directions, mean gradient). */
int gn_ntk_jt_apply(const gn_par *par, const gn_model *model, const gn_real *theta, int64_t n_local,
                    const gn_real *X_local, const gn_real *w_local, gn_real *delta);

#endif
