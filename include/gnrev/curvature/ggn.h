/* ggn.h — curvature of the generalised Gauss-Newton matrix in the manner of ViViT (Dangel et al.,
 * ../shared/papers/003_*.txt; DESIGN.md section 5): G = V V^T with V = J^T S / sqrt(N); its
 * nonzero spectrum from the Gram matrix V^T V = S^T K S / N built on the NTK; per-sample
 * directional gradients and curvatures, their SNRs; and ViViT's damped Newton step. */
#ifndef GNREV_GGN_H
#define GNREV_GGN_H

#include <stdint.h>

#include "gnrev/input/deck.h"
#include "gnrev/model/model.h"
#include "gnrev/core/par.h"

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
int gn_ggn_compute(const gn_par *par, const gn_model *model, const gn_deck *deck, const double *theta,
                   int64_t n_local, int64_t N, const double *X_local, const int32_t *y_local,
                   int64_t step, gn_ggn *out);
void gn_ggn_free(gn_ggn *g);

/* Collective on par->comm. ViViT's damped Newton direction in the top-k eigenspace (method
 * gn_vivit): delta = sum_k gamma_k / (lambda_k + delta_k) e_k, so theta_new = theta - lr * delta;
 * delta_k = deck->damping (damping_mode constant, >= 0) or chosen per direction by the bootstrap
 * of ViViT section 4.2 (GN_RNG_BOOTSTRAP, sub = step; 100 replicates; the 5% quantile of the loss
 * reduction is the 5th smallest of them; candidates lambda_ref 10^j, j = -6..6, lambda_ref the
 * mean of the top-k eigenvalues; ties go to the larger damping). With damping 0 and every
 * direction kept this is G^+ grad L (for MSE exactly the Moore-Penrose step J^+ eps).
 * damping_out (NULL or ggn_top_k entries) receives the damping of each of the k directions used
 * and NaN for the entries past k. */
int gn_ggn_vivit_direction(const gn_par *par, const gn_model *model, const gn_deck *deck,
                           const double *theta, int64_t n_local, int64_t N, const double *X_local,
                           const int32_t *y_local, int64_t step, double *delta, double *damping_out);

#endif
