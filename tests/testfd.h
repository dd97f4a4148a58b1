/* testfd.h — finite differences of the network that stay clear of relu kinks (header-only, for
 * tests). A relu network is piecewise smooth in theta and in its input: a central difference whose
 * two points lie on different sides of a kink measures an average slope, not the derivative. */
#ifndef GNREV_TESTFD_H
#define GNREV_TESTFD_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gnrev/core/real.h"
#include "gnrev/model/model.h"
#include "testlib.h"

/* Local. The signs of the pre-activations z C of every relu half-block, by the test's own forward
 * pass of the network in double at (theta, X0) (n rows): the activation pattern, 1 byte per unit
 * and row, 2 n h bytes per relu block. */
__attribute__((unused)) static void gt_relu_pattern(const gn_model *md, const gn_real *theta, int64_t n,
                                                    const gn_real *X0, unsigned char *pat) {
  const int64_t d = md->d, m = md->m, h = md->h, hp = md->hp;
  double *X = malloc((size_t)(n * d) * sizeof *X), *A = malloc((size_t)(n * hp) * sizeof *A);
  gt_to_f64(X0, (size_t)(n * d), X);
  for (int b = 0; b < md->B; ++b)
    for (int s = 0; s < 2; ++s) {
      /* F (s = 0) reads x2 and adds to x1, G (s = 1) reads the new x1 and adds to x2. */
      const int64_t in = s == 0 ? m : 0, out = s == 0 ? 0 : m;
      const gn_real *C = md->proj[2 * b + s], *T = theta + gn_model_offset(md, b, s);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < h; ++j) {
          double p = 0.0;
          for (int64_t k = 0; k < m; ++k) p += X[i * d + in + k] * C[k * h + j];
          const int relu = md->act[b] == GN_ACT_RELU;
          if (relu) *pat++ = p > 0;
          A[i * hp + j] = relu ? fmax(p, 0.0) : md->act[b] == GN_ACT_TANH ? tanh(p) : p;
          if (hp > h) A[i * hp + h] = 1.0;
        }
      for (int64_t i = 0; i < n; ++i)
        for (int64_t k = 0; k < m; ++k) {
          double f = 0.0;
          for (int64_t j = 0; j < hp; ++j) f += A[i * hp + j] * T[j * m + k];
          X[i * d + out + k] += f;
        }
    }
  free(X), free(A);
}

/* Local. The step of a central difference of a function of the network's output along dth (in
 * theta) or dX (in X0), either NULL: the given step, halved while the activation pattern of a relu
 * network differs at the two perturbed gn_real points from the one at the centre, so that the
 * difference quotient never straddles a kink. The double build's steps of 1e-5 clear every kink of
 * the tests' seeds; the single build's, 800 times longer against float rounding (gt_fd_step), may
 * not. Networks without relu blocks get the step back unchanged. */
__attribute__((unused)) static double gt_kink_free_step(const gn_model *md, const gn_real *theta, int64_t n,
                                                        const gn_real *X0, const gn_real *dth, const gn_real *dX,
                                                        double step) {
  int64_t units = 0;
  for (int b = 0; b < md->B; ++b) units += md->act[b] == GN_ACT_RELU ? 2 * n * md->h : 0;
  if (units == 0) return step;
  const size_t np = md->nparams, nd = (size_t)(n * md->d);
  unsigned char *p0 = malloc((size_t)units), *p1 = malloc((size_t)units);
  gn_real *th = malloc(np * sizeof *th), *X = malloc(nd * sizeof *X);
  gt_relu_pattern(md, theta, n, X0, p0);
  int same = 0;
  for (int halvings = 0; !same && halvings < 40; ++halvings, step = same ? step : step / 2) {
    same = 1;
    for (int sgn = -1; same && sgn <= 1; sgn += 2) {
      for (size_t k = 0; k < np; ++k) th[k] = dth ? (gn_real)(theta[k] + sgn * step * dth[k]) : theta[k];
      for (size_t k = 0; k < nd; ++k) X[k] = dX ? (gn_real)(X0[k] + sgn * step * dX[k]) : X0[k];
      gt_relu_pattern(md, th, n, X, p1);
      same = memcmp(p0, p1, (size_t)units) == 0;
    }
  }
  free(p0), free(p1), free(th), free(X);
  return step;
}

#endif
