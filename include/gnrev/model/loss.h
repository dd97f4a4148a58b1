/* loss.h — losses on the logits, their gradients and the GN residual (docs/algorithm.md section 1).
 * All functions are Local and act on the rows a rank owns; batch means use the global batch
 * size n_global so that a sum over ranks gives the mean. */
#ifndef GNREV_LOSS_H
#define GNREV_LOSS_H

#include <stdint.h>

#include "gnrev/input/deck.h"
#include "gnrev/core/real.h"

/* Sum over the n local rows of the per-sample loss (CE: -log softmax(logit)_y; MSE: 0.5 ||logit -
 * onehot(y)||^2) and the number of rows whose arg-max logit equals the label. */
void gn_loss_eval(gn_loss_kind kind, int64_t n, int C, const gn_real *logits, const int32_t *y,
                  double *loss_sum, int64_t *correct);

/* dlogits (n x C) = d(mean loss over n_global samples)/d logits for the local rows. */
void gn_loss_grad(gn_loss_kind kind, int64_t n, int64_t n_global, int C, const gn_real *logits,
                  const int32_t *y, gn_real *dlogits);

/* The GN residual eps (n x C), one row per sample, no 1/n: CE identity: softmax - onehot;
 * CE exact: H^+ (softmax - onehot) per sample; MSE: logits - onehot. */
void gn_loss_residual(gn_loss_kind kind, gn_output_hessian hess, int64_t n, int C,
                      const gn_real *logits, const int32_t *y, gn_real *eps);

/* Per-sample output gradient r (n x C) of ell_n (no 1/n), and the loss-Hessian factor S
 * (n x C x C, S_n with H_n = S_n S_n^T: CE exact columns sqrt(p_c)(e_c - p); MSE identity). */
void gn_loss_sample_grad(gn_loss_kind kind, int64_t n, int C, const gn_real *logits, const int32_t *y,
                         gn_real *r);
void gn_loss_hessian_factor(gn_loss_kind kind, int64_t n, int C, const gn_real *logits, gn_real *S);

#endif
