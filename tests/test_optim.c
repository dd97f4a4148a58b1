/* test_optim.c — SGD and Adam against values computed by hand from PyTorch's update rules. */
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
  double th[2] = {1.0, -2.0}, g[2] = {0.5, 0.25};
  gn_sgd_rule(&d, 0.1, true, 2, th, g, NULL);
  GT_CHECK(th[0] == 1.0 - 0.05 && th[1] == -2.0 - 0.025, "test_sgd_step_is_theta_minus_lr_grad");
}

static void test_sgd_momentum_and_decay(void) {
  /* PyTorch: g += wd*theta; buf = g (first), then buf = mu*buf + g; theta -= lr*buf. */
  gn_deck d = base(GN_OPT_SGD, 0.9, false, 0.01);
  double th = 1.0, g = 0.5, buf = 0.0;
  gn_sgd_rule(&d, 0.1, true, 1, &th, &g, &buf);  /* g = 0.51, buf = 0.51, th = 1 - 0.051 = 0.949 */
  double ok1 = fabs(th - 0.949) < 1e-15;
  g = 0.5;
  gn_sgd_rule(&d, 0.1, false, 1, &th, &g, &buf);  /* g = 0.5 + 0.00949 = 0.50949; buf = 0.459 + 0.50949 = 0.96849; th = 0.949 - 0.096849 */
  GT_CHECK(ok1 && fabs(th - (0.949 - 0.096849)) < 1e-15, "test_sgd_momentum_with_weight_decay_matches_pytorch");
}

static void test_sgd_nesterov(void) {
  gn_deck d = base(GN_OPT_SGD, 0.5, true, 0);
  double th = 0.0, g = 1.0, buf = 0.0;
  gn_sgd_rule(&d, 1.0, true, 1, &th, &g, &buf);  /* buf = 1; g = 1 + 0.5*1 = 1.5; th = -1.5 */
  double t1 = th;
  g = 1.0;
  gn_sgd_rule(&d, 1.0, false, 1, &th, &g, &buf);  /* buf = 0.5 + 1 = 1.5; g = 1 + 0.75 = 1.75; th = -3.25 */
  GT_CHECK(t1 == -1.5 && th == -3.25, "test_sgd_nesterov_matches_pytorch");
}

static void test_adam(void) {
  /* First Adam step moves every coordinate by about lr * sign(g) (bias correction). */
  gn_deck d = base(GN_OPT_ADAM, 0, false, 0);
  double th[3] = {0, 0, 0}, g[3] = {2.0, -0.001, 0.0}, m[3] = {0, 0, 0}, v[3] = {0, 0, 0};
  gn_adam_rule(&d, 0.01, 1, 3, th, g, m, v);
  /* m = 0.1 g, v = 0.001 g^2; bc1 = 0.1, bc2 = 0.001: step = (lr/0.1) * 0.1 g / (|g| + eps) */
  double e0 = -0.01 * 2.0 / (2.0 + 1e-8), e1 = 0.01 * 0.001 / (0.001 + 1e-8);
  GT_CHECK(fabs(th[0] - e0) < 1e-15 && fabs(th[1] - e1) < 1e-15 && th[2] == 0.0,
           "test_adam_first_step_matches_hand_computation");
  double g2[3] = {1.0, 1.0, 1.0};
  double before = th[0];
  gn_adam_rule(&d, 0.01, 2, 3, th, g2, m, v);
  /* coordinate 0: m = 0.9*0.2 + 0.1*1 = 0.28; v = 0.999*0.004 + 0.001*1 = 0.004996;
   * bc1 = 0.19, bc2 = 0.001999; denom = sqrt(v)/sqrt(bc2) + eps */
  double m0 = 0.28, v0 = 0.999 * 0.004 + 0.001, denom = sqrt(v0) / sqrt(1 - 0.999 * 0.999) + 1e-8;
  double expect = before - 0.01 / (1 - 0.81) * m0 / denom;
  GT_CHECK(fabs(th[0] - expect) < 1e-14, "test_adam_second_step_matches_hand_computation");
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  test_sgd_plain();
  test_sgd_momentum_and_decay();
  test_sgd_nesterov();
  test_adam();
  int rc = gt_finish();
  MPI_Finalize();
  return rc;
}
