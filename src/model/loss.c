/* loss.c — cross-entropy and MSE on the logits: values, accuracy, gradients, the GN residual and
 * the factor of the loss Hessian (docs/algorithm.md sections 1 and 2). Softmax goes through a
 * max-shifted log-sum-exp so that no logit range overflows. */
#include "gnrev/model/loss.h"
#include "gnrev/core/real.h"

#include <math.h>
#include <string.h>

/* log sum_c exp(l_c), shifted by the maximum. */
static double row_lse(int C, const gn_real *l) {
  double mx = l[0];
  for (int c = 1; c < C; ++c) mx = l[c] > mx ? l[c] : mx;
  double s = 0.0;
  for (int c = 0; c < C; ++c) s += exp(l[c] - mx);
  return mx + log(s);
}

/* p = softmax(l). */
static void row_softmax(int C, const gn_real *l, gn_real *p) {
  const double lse = row_lse(C, l);
  for (int c = 0; c < C; ++c) p[c] = exp(l[c] - lse);
}

/* The first index of the largest logit, so ties go to the lowest class. */
static int row_argmax(int C, const gn_real *l) {
  int k = 0;
  for (int c = 1; c < C; ++c)
    if (l[c] > l[k]) k = c;
  return k;
}

void gn_loss_eval(gn_loss_kind kind, int64_t n, int C, const gn_real *logits, const int32_t *y,
                  double *loss_sum, int64_t *correct) {
  double sum = 0.0;
  int64_t hits = 0;
  for (int64_t i = 0; i < n; ++i) {
    const gn_real *l = logits + i * C;
    if (kind == GN_LOSS_CE) {
      sum += row_lse(C, l) - l[y[i]];
    } else {
      double s = 0.0;
      for (int c = 0; c < C; ++c) {
        const double r = l[c] - (c == y[i] ? 1.0 : 0.0);
        s += r * r;
      }
      sum += 0.5 * s;
    }
    hits += row_argmax(C, l) == y[i];
  }
  *loss_sum = sum;
  *correct = hits;
}

void gn_loss_sample_grad(gn_loss_kind kind, int64_t n, int C, const gn_real *logits, const int32_t *y,
                         gn_real *r) {
  for (int64_t i = 0; i < n; ++i) {
    const gn_real *l = logits + i * C;
    gn_real *ri = r + i * C;
    if (kind == GN_LOSS_CE)
      row_softmax(C, l, ri);
    else
      memcpy(ri, l, (size_t)C * sizeof *ri);
    ri[y[i]] -= 1.0;
  }
}

void gn_loss_grad(gn_loss_kind kind, int64_t n, int64_t n_global, int C, const gn_real *logits,
                  const int32_t *y, gn_real *dlogits) {
  gn_loss_sample_grad(kind, n, C, logits, y, dlogits);
  const double scale = 1.0 / (double)n_global;
  for (int64_t k = 0; k < n * C; ++k) dlogits[k] *= scale;
}

void gn_loss_residual(gn_loss_kind kind, gn_output_hessian hess, int64_t n, int C,
                      const gn_real *logits, const int32_t *y, gn_real *eps) {
  if (kind != GN_LOSS_CE || hess == GN_HESS_IDENTITY) {
    gn_loss_sample_grad(kind, n, C, logits, y, eps);
    return;
  }
  /* H^+ (p - y) with H = diag(p) - p p^T: H's null space is the ones vector, and p - y is
   * orthogonal to it, so the answer is the solution of H e = p - y with sum(e) = 0:
   * e_c = mean_k(y_k/p_k) - y_c/p_c. With a one-hot y only 1/p_y enters, taken as
   * exp(lse - l_y) so that a tiny p_y does not underflow to 0 first. */
  for (int64_t i = 0; i < n; ++i) {
    const gn_real *l = logits + i * C;
    gn_real *e = eps + i * C;
    const double inv_py = exp(row_lse(C, l) - l[y[i]]);
    for (int c = 0; c < C; ++c) e[c] = inv_py / C;
    e[y[i]] -= inv_py;
  }
}

void gn_loss_hessian_factor(gn_loss_kind kind, int64_t n, int C, const gn_real *logits, gn_real *S) {
  const size_t CC = (size_t)C * (size_t)C;
  for (int64_t i = 0; i < n; ++i) {
    gn_real *Si = S + (size_t)i * CC;
    if (kind != GN_LOSS_CE) {
      memset(Si, 0, CC * sizeof *Si);
      for (int c = 0; c < C; ++c) Si[c * C + c] = 1.0;
      continue;
    }
    /* Column c is sqrt(p_c) (e_c - p): S S^T = diag(p) - p p^T because sum(p) = 1. The softmax
     * of the row lands in its first row, which is then overwritten last. */
    gn_real *p = Si;
    row_softmax(C, logits + i * C, p);
    for (int r = C - 1; r >= 0; --r) {
      const double pr = p[r];
      for (int c = 0; c < C; ++c) Si[r * C + c] = sqrt(p[c]) * ((r == c ? 1.0 : 0.0) - pr);
    }
  }
}
