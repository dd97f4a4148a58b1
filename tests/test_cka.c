// NP: 1 2 3
/* test_cka.c — linear CKA over row-distributed samples: 1 for identical inputs, invariant to an
 * orthogonal transform, to isotropic scaling and to a constant shift of the features, equal to a
 * direct serial evaluation of the definition, and equal between the distributed and a one-rank
 * evaluation of the same data. Degenerate inputs: two samples always give 1 (one rank then owns
 * no rows), a constant representation gives NaN.
 *
 * When $CKA_TEST_DIR is set, rank 0 writes the matrices and the value to cka_case.bin there
 * (n, p, q, then X, Y, CKA as float64), and tests/test_plot_xdmf.py checks the value with numpy.
 *
 * The representations are gn_real (real.h), as the library takes them; the serial definition runs
 * in double on double copies of them, and CKA values are double in both builds. Rounding
 * tolerances go through gt_tol (testlib.h). */
#include <stdint.h>
#include <stdio.h>

#include "gnrev/diag/cka.h"
#include "gnrev/core/rng.h"
#include "testlib.h"

static gn_par par, self;

enum { N = 37, P = 6, Q = 5 };

/* Direct serial definition: two-pass centring, explicit triple loops, no BLAS. */
static double cka_serial(int64_t n, int64_t p, const double *X, int64_t q, const double *Y) {
  double *Xc = malloc((size_t)(n * p) * sizeof(double)), *Yc = malloc((size_t)(n * q) * sizeof(double));
  for (int64_t j = 0; j < p; ++j) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += X[i * p + j];
    for (int64_t i = 0; i < n; ++i) Xc[i * p + j] = X[i * p + j] - s / (double)n;
  }
  for (int64_t j = 0; j < q; ++j) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += Y[i * q + j];
    for (int64_t i = 0; i < n; ++i) Yc[i * q + j] = Y[i * q + j] - s / (double)n;
  }
  double xx = 0, yy = 0, yx = 0;
  for (int64_t a = 0; a < p; ++a)
    for (int64_t b = 0; b < p; ++b) {
      double s = 0;
      for (int64_t i = 0; i < n; ++i) s += Xc[i * p + a] * Xc[i * p + b];
      xx += s * s;
    }
  for (int64_t a = 0; a < q; ++a)
    for (int64_t b = 0; b < q; ++b) {
      double s = 0;
      for (int64_t i = 0; i < n; ++i) s += Yc[i * q + a] * Yc[i * q + b];
      yy += s * s;
    }
  for (int64_t a = 0; a < q; ++a)
    for (int64_t b = 0; b < p; ++b) {
      double s = 0;
      for (int64_t i = 0; i < n; ++i) s += Yc[i * q + a] * Xc[i * p + b];
      yx += s * s;
    }
  free(Xc);
  free(Yc);
  return yx / (sqrt(xx) * sqrt(yy));
}

/* CKA of the full n-row matrices, each rank passing its gn_par_rows share to the library. */
static double cka_dist(const gn_par *pr, int64_t n, int64_t p, const gn_real *X, int64_t q, const gn_real *Y) {
  int64_t row0, nrows;
  gn_par_rows(n, pr->size, pr->rank, &row0, &nrows);
  double v = -1;
  if (gn_cka(pr, nrows, n, p, X + row0 * p, p, q, Y + row0 * q, q, &v) != GN_OK) return -2;
  return v;
}

/* Y (n x q) times the orthogonal H2 H1, Householder reflections along fixed random vectors. */
static void rotate(int64_t n, int64_t q, gn_real *Y) {
  for (int r = 0; r < 2; ++r) {
    double v[Q], vv = 0;
    gn_rng_fill_normal(7, GN_RNG_TEST, 50 + r, 0, (size_t)q, 1.0, v);
    for (int64_t j = 0; j < q; ++j) vv += v[j] * v[j];
    for (int64_t i = 0; i < n; ++i) {
      double s = 0;
      for (int64_t j = 0; j < q; ++j) s += Y[i * q + j] * v[j];
      for (int64_t j = 0; j < q; ++j) Y[i * q + j] = (gn_real)(Y[i * q + j] - 2 * s / vv * v[j]);
    }
  }
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  gt_plan(11); /* the GT_CHECKs below, each made once */
  if (gn_par_open(MPI_COMM_WORLD, &par) != GN_OK || gn_par_open(MPI_COMM_SELF, &self) != GN_OK)
    MPI_Abort(MPI_COMM_WORLD, 1);
  /* Y shares part of X's signal, so the value is well inside (0, 1). */
  gn_real X[N * P], Y[N * Q], Z[N * Q];
  gn_rng_fill_normal_real(7, GN_RNG_TEST, 1, 0, N * P, 1.0, X);
  gn_rng_fill_normal_real(7, GN_RNG_TEST, 2, 0, N * Q, 0.7, Y);
  for (int i = 0; i < N; ++i)
    for (int j = 0; j < Q; ++j)
      Y[i * Q + j] = (gn_real)(Y[i * Q + j] + X[i * P + j] * (j + 1) + (j ? 0.5 * X[i * P + j - 1] : 0));

  double Xd[N * P], Yd[N * Q];
  gt_to_f64(X, N * P, Xd);
  gt_to_f64(Y, N * Q, Yd);
  const double ref = cka_serial(N, P, Xd, Q, Yd);
  const double got = cka_dist(&par, N, P, X, Q, Y);
  gt_note("CKA = %.17g (serial %.17g) on %d ranks", got, ref, par.size);
  /* Each value is a few sums of ~N*P^2 products of O(1) terms: rounding ~1e-15 relative. */
  const double tol = gt_tol(1e-12);
  /* The invariance checks below only mean something for a value well inside (0, 1). */
  GT_REQUIRE(ref > 0.05 && ref < 0.95, "the test pair is neither similar nor unrelated (%.3f)", ref);
  GT_CHECK(fabs(got - ref) <= tol * ref, "cka_matches_direct_serial_definition (diff %.2e)", fabs(got - ref));
  GT_CHECK(fabs(cka_dist(&self, N, P, X, Q, Y) - got) <= tol * ref,
           "cka_on_one_rank_equals_cka_over_all_ranks");
  GT_CHECK(fabs(cka_dist(&par, N, P, X, P, X) - 1) <= tol, "cka_of_identical_inputs_is_one");
  GT_CHECK(fabs(cka_dist(&par, N, Q, Y, P, X) - got) <= tol * ref, "cka_is_symmetric");

  memcpy(Z, Y, sizeof Z);
  rotate(N, Q, Z);
  GT_REQUIRE(gt_rel_diff(Z, Y, N * Q) > 0.1, "the orthogonal transform changes the features");
  GT_CHECK(fabs(cka_dist(&par, N, P, X, Q, Z) - got) <= tol * ref, "cka_invariant_to_orthogonal_transform");
  for (int k = 0; k < N * Q; ++k) Z[k] = (gn_real)(37.5 * Y[k]);
  GT_CHECK(fabs(cka_dist(&par, N, P, X, Q, Z) - got) <= tol * ref, "cka_invariant_to_isotropic_scaling_of_y");
  gn_real Xs[N * P];
  for (int k = 0; k < N * P; ++k) Xs[k] = (gn_real)(1e-3 * X[k]);
  GT_CHECK(fabs(cka_dist(&par, N, P, Xs, Q, Y) - got) <= tol * ref, "cka_invariant_to_isotropic_scaling_of_x");
  /* A shift of 1e3 against a spread of ~1 leaves ~1e3 * eps of absolute error in the centred
   * values after subtracting the mean: relative 1e-12 of the products at worst. */
  for (int i = 0; i < N; ++i)
    for (int j = 0; j < Q; ++j) Z[i * Q + j] = (gn_real)(Y[i * Q + j] + 1e3 * (j + 1));
  const double shifted = cka_dist(&par, N, P, X, Q, Z);
  GT_CHECK(fabs(shifted - got) <= gt_tol(1e-10) * ref, "cka_invariant_to_constant_feature_shift (diff %.2e)",
           fabs(shifted - got));

  /* Two samples: both centred matrices have rank one, so CKA is exactly 1; on 3 ranks the last
   * rank owns no row and still takes part in the reductions. */
  GT_CHECK(fabs(cka_dist(&par, 2, P, X, Q, Y) - 1) <= tol, "cka_of_two_samples_is_one_even_with_an_empty_rank");
  gn_real K[N * Q];
  for (int k = 0; k < N * Q; ++k) K[k] = 3.0;
  GT_CHECK(isnan(cka_dist(&par, N, P, X, Q, K)), "cka_of_constant_representation_is_nan");

  /* The reference object compares many representations against one baseline. */
  int64_t row0, nrows;
  gn_par_rows(N, par.size, par.rank, &row0, &nrows);
  gn_cka_ref r;
  double v1 = -1, v2 = -1;
  int st = gn_cka_ref_create(&par, nrows, N, P, X + row0 * P, P, &r);
  if (st == GN_OK) st = gn_cka_compare(&par, &r, Q, Y + row0 * Q, Q, &v1);
  if (st == GN_OK) st = gn_cka_compare(&par, &r, P, X + row0 * P, P, &v2);
  gn_cka_ref_free(&r);
  GT_CHECK(st == GN_OK && fabs(v1 - got) <= tol * ref && fabs(v2 - 1) <= tol,
           "cka_reference_reused_for_several_comparisons");

  const char *dir = getenv("CKA_TEST_DIR");
  if (dir && par.rank == 0) {
    char path[4096];
    snprintf(path, sizeof path, "%s/cka_case.bin", dir);
    FILE *f = fopen(path, "wb");
    double head[3] = {N, P, Q};
    int ok = f && fwrite(head, sizeof(double), 3, f) == 3 && fwrite(Xd, sizeof(double), N * P, f) == N * P &&
             fwrite(Yd, sizeof(double), N * Q, f) == N * Q && fwrite(&got, sizeof(double), 1, f) == 1;
    if (f) ok = (fclose(f) == 0) && ok;
    if (!ok) fprintf(stderr, "test_cka: cannot write %s\n", path);
  }
  gn_par_close(&self);
  gn_par_close(&par);
  MPI_Finalize();
  return gt_finish();
}
