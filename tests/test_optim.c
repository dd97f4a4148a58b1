/* test_optim.c — SGD and Adam against values computed by hand from PyTorch's update rules, and Adam
 * with weight decay over several steps against an implementation of torch.optim.Adam's documented
 * algorithm written here (L2 decay added to the gradient, not AdamW's decoupled decay).
 *
 * The rules update gn_real (real.h) parameters, gradients and moments; the hand values and the
 * reference are double. A hand value that the double build meets exactly is compared with its
 * rounding to gn_real: the rules compute each new value in double and round it once, so that is
 * exact in both builds. */
#include <string.h>

#include "gnrev/optim/first_order.h"
#include "testlib.h"

static gn_deck base(gn_method method, double momentum, bool nesterov, double wd) {
  gn_deck d;
  memset(&d, 0, sizeof d);
  d.method = method;
  d.momentum = momentum;
  d.nesterov = nesterov;
  d.weight_decay = wd;
  d.beta1 = 0.9;
  d.beta2 = 0.999;
  d.eps = 1e-8;
  return d;
}

static void test_sgd_plain(void) {
  gn_deck d = base(GN_OPT_SGD, 0, false, 0);
  gn_real th[2] = {1.0, -2.0}, g[2] = {0.5, 0.25};
  gn_sgd_rule(&d, 0.1, true, 2, th, g, NULL);
  GT_CHECK(th[0] == (gn_real)(1.0 - 0.05) && th[1] == (gn_real)(-2.0 - 0.025),
           "test_sgd_step_is_theta_minus_lr_grad");
}

static void test_sgd_momentum_and_decay(void) {
  /* PyTorch: g += wd*theta; buf = g (first), then buf = mu*buf + g; theta -= lr*buf. */
  gn_deck d = base(GN_OPT_SGD, 0.9, false, 0.01);
  gn_real th = 1.0, g = 0.5, buf = 0.0;
  gn_sgd_rule(&d, 0.1, true, 1, &th, &g, &buf);  /* g = 0.51, buf = 0.51, th = 1 - 0.051 = 0.949 */
  double ok1 = fabs(th - 0.949) < gt_tol(1e-15);
  g = 0.5;
  gn_sgd_rule(&d, 0.1, false, 1, &th, &g, &buf);  /* g = 0.5 + 0.00949 = 0.50949; buf = 0.459 + 0.50949 = 0.96849; th = 0.949 - 0.096849 */
  GT_CHECK(ok1 && fabs(th - (0.949 - 0.096849)) < gt_tol(1e-15), "test_sgd_momentum_with_weight_decay_matches_pytorch");
}

static void test_sgd_nesterov(void) {
  gn_deck d = base(GN_OPT_SGD, 0.5, true, 0);
  gn_real th = 0.0, g = 1.0, buf = 0.0;
  gn_sgd_rule(&d, 1.0, true, 1, &th, &g, &buf);  /* buf = 1; g = 1 + 0.5*1 = 1.5; th = -1.5 (exact in float too) */
  double t1 = th;
  g = 1.0;
  gn_sgd_rule(&d, 1.0, false, 1, &th, &g, &buf);  /* buf = 0.5 + 1 = 1.5; g = 1 + 0.75 = 1.75; th = -3.25 */
  GT_CHECK(t1 == -1.5 && th == -3.25, "test_sgd_nesterov_matches_pytorch");
}

static void test_adam(void) {
  /* First Adam step moves every coordinate by about lr * sign(g) (bias correction). */
  gn_deck d = base(GN_OPT_ADAM, 0, false, 0);
  gn_real th[3] = {0, 0, 0}, g[3] = {2.0, -0.001, 0.0}, m[3] = {0, 0, 0}, v[3] = {0, 0, 0};
  gn_adam_rule(&d, 0.01, 1, 3, th, g, m, v);
  /* m = 0.1 g, v = 0.001 g^2; bc1 = 0.1, bc2 = 0.001: step = (lr/0.1) * 0.1 g / (|g| + eps), with g
   * as the rule received it (-0.001 rounded to gn_real) */
  const double g1 = g[1];
  double e0 = -0.01 * 2.0 / (2.0 + 1e-8), e1 = -0.01 * g1 / (fabs(g1) + 1e-8);
  GT_CHECK(fabs(th[0] - e0) < gt_tol(1e-15) && fabs(th[1] - e1) < gt_tol(1e-15) && th[2] == 0.0,
           "test_adam_first_step_matches_hand_computation");
  gn_real g2[3] = {1.0, 1.0, 1.0};
  double before = th[0];
  gn_adam_rule(&d, 0.01, 2, 3, th, g2, m, v);
  /* coordinate 0: m = 0.9*0.2 + 0.1*1 = 0.28; v = 0.999*0.004 + 0.001*1 = 0.004996;
   * bc1 = 0.19, bc2 = 0.001999; denom = sqrt(v)/sqrt(bc2) + eps */
  double m0 = 0.28, v0 = 0.999 * 0.004 + 0.001, denom = sqrt(v0) / sqrt(1 - 0.999 * 0.999) + 1e-8;
  double expect = before - 0.01 / (1 - 0.81) * m0 / denom;
  GT_CHECK(fabs(th[0] - expect) < gt_tol(1e-14), "test_adam_second_step_matches_hand_computation");
}

/* torch.optim.Adam as its documentation states the algorithm (amsgrad off, maximize off):
 * g <- g + wd theta; m <- beta1 m + (1 - beta1) g; v <- beta2 v + (1 - beta2) g^2;
 * m_hat = m / (1 - beta1^t); v_hat = v / (1 - beta2^t); theta <- theta - lr m_hat / (sqrt(v_hat) + eps). */
typedef struct {
  double m[4], v[4];
  int t;
} adam_ref;

static void adam_ref_step(adam_ref *a, const gn_deck *d, double lr, double *theta, const double *grad, int n) {
  a->t += 1;
  for (int i = 0; i < n; ++i) {
    const double g = grad[i] + d->weight_decay * theta[i];
    a->m[i] = d->beta1 * a->m[i] + (1 - d->beta1) * g;
    a->v[i] = d->beta2 * a->v[i] + (1 - d->beta2) * g * g;
    const double m_hat = a->m[i] / (1 - pow(d->beta1, a->t)), v_hat = a->v[i] / (1 - pow(d->beta2, a->t));
    theta[i] -= lr * m_hat / (sqrt(v_hat) + d->eps);
  }
}

/* Six steps with gradients that change sign and size, on four coordinates: a large and a small
 * weight, one at zero, and one whose loss gradient is always zero (it moves by the decay alone,
 * about lr per step in Adam's normalised units, where AdamW would move it by lr wd theta only). */
static void test_adam_weight_decay(double wd, double beta1) {
  gn_deck d = base(GN_OPT_ADAM, 0, false, wd);
  d.beta1 = beta1;
  gn_real m[4] = {0, 0, 0, 0}, v[4] = {0, 0, 0, 0};
  adam_ref ref = {{0}, {0}, 0};
  gn_real th[4] = {1.5, -0.02, 0.0, 0.8};
  double want[4];
  gt_to_f64(th, 4, want);
  double err = 0, moved = 0;
  for (int t = 0; t < 6; ++t) {
    const double lr = 0.01 * (1 + t % 3);
    const double gd[4] = {0.3 * cos(t), -0.004 * (t + 1), 0.05 * (t % 2 ? 1 : -1), 0.0};
    gn_real g[4];
    double gr[4];
    gt_to_real(gd, 4, g);
    gt_to_f64(g, 4, gr); /* the reference gets the gradient the rule gets */
    gn_adam_rule(&d, lr, t + 1, 4, th, g, m, v);
    adam_ref_step(&ref, &d, lr, want, gr, 4);
    for (int i = 0; i < 4; ++i) err = fmax(err, fabs(th[i] - want[i]) / fmax(fabs(want[i]), 1e-3));
  }
  moved = 0.8 - th[3];
  GT_CHECK(err < gt_tol(1e-13),
           "test_adam_with_weight_decay_%g_beta1_%g_matches_pytorch_algorithm_over_6_steps: max rel err %.1e, "
           "decay-only weight moved by %.4f", wd, beta1, err, moved);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  gt_plan(7); /* SGD 3, Adam 2, Adam with weight decay 2 */
  test_sgd_plain();
  test_sgd_momentum_and_decay();
  test_sgd_nesterov();
  test_adam();
  test_adam_weight_decay(0.01, 0.9);
  test_adam_weight_decay(0.5, 0.0);
  int rc = gt_finish();
  MPI_Finalize();
  return rc;
}
