/* ggn.h — curvature of the generalised Gauss-Newton matrix in the manner of ViViT (Dangel et al.,
 * "ViViT: Curvature access through the generalized Gauss-Newton's low-rank structure";
 * docs/algorithm.md): G = V V^T with V = J^T S / sqrt(N); its nonzero spectrum from the Gram matrix
 * V^T V = S^T K S / N built on the NTK; per-sample directional gradients and curvatures and their
 * SNRs. The diagnostics record them; the gn_vivit optimizer steps along them. */
#ifndef GNREV_GGN_H
#define GNREV_GGN_H

#include <stdint.h>

#include "gnrev/input/deck.h"
#include "gnrev/model/model.h"
#include "gnrev/core/par.h"
#include "gnrev/core/real.h"

typedef struct {
  int64_t N;            /* samples */
  int64_t n_eig;        /* nonzero eigenvalues found (<= N * columns of S per sample) */
  double *eigenvalues;  /* n_eig, descending */
  int64_t k;            /* top directions analysed (<= ggn_top_k, <= n_eig) */
  double *gamma;        /* N x k: gamma_nk = e_k^T grad ell_n */
  double *lambda;       /* N x k: lambda_nk = e_k^T G_n e_k */
  double *gamma_mean, *lambda_mean; /* k: means over n (gamma_k, lambda_k) */
  double *gamma_snr, *lambda_snr;   /* k: mean^2 / population variance (1/N) over the N samples;
                                       +inf for zero variance and nonzero mean */
  double grad_overlap;  /* ||P_top grad L||^2 / ||grad L||^2: gradient's share in the top-k space
                           (grad L by backpropagation; 0 when it vanishes) */
} gn_ggn;

/* Collective on par->comm. The GGN analysis at theta for the N samples whose local rows are
 * X_local/y_local (gn_par_rows(N) share), with the deck's loss, ggn_mode (exact: C columns of S
 * per sample; mc: ggn_mc_samples sampled columns from GN_RNG_MC with sub = step: (e_yhat - p)/
 * sqrt(M), yhat ~ softmax, for CE; N(0, I)/sqrt(M) for MSE) and ggn_top_k. Gram eigenvalues at or
 * below 1e-12 lambda_max count as zero. Each Gram eigenvector's sign makes its largest-magnitude
 * entry positive (this fixes the sign of gamma). Results are replicated on every rank. Uses the
 * model's workspace (nmax >= 1). Memory: the NTK rows (ntk.h) plus 2 n_local C x N cols per rank;
 * rank 0 also the whole Gram and ~2 (N cols)^2 of DSYEVD workspace (cols = C or ggn_mc_samples). */
int gn_ggn_compute(const gn_par *par, const gn_model *model, const gn_deck *deck, const gn_real *theta,
                   int64_t n_local, int64_t N, const gn_real *X_local, const int32_t *y_local,
                   int64_t step, gn_ggn *out);
void gn_ggn_free(gn_ggn *g);

/* What a step along the top-k directions needs beyond gn_ggn, replicated on every rank. */
typedef struct {
  int64_t cols;   /* columns of S per sample (C exact, ggn_mc_samples mc) */
  int64_t row0;   /* this rank's first sample */
  gn_real *S;      /* N x C x cols: S_n row-major (row = output unit, column = factor column) */
  gn_real *evecs;  /* k x (N cols): the Gram eigenvectors e~_k as rows, largest eigenvalue first */
} gn_ggn_factors;

/* Collective on par->comm. gn_ggn_compute without the gradient overlap (left 0), keeping the
 * factors S and the top-k Gram eigenvectors in *factors (free with gn_ggn_factors_free). */
int gn_ggn_compute_factors(const gn_par *par, const gn_model *model, const gn_deck *deck, const gn_real *theta,
                           int64_t n_local, int64_t N, const gn_real *X_local, const int32_t *y_local,
                           int64_t step, gn_ggn *out, gn_ggn_factors *factors);
void gn_ggn_factors_free(gn_ggn_factors *f);

#endif
