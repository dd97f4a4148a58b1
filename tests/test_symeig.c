/* test_symeig.c — the distributed symmetric eigensolver (symeig_scalapack.c) against serial
 * LAPACK DSYEVD on the same matrix: eigenvalues to rounding, eigenvectors as unit vectors with
 * small residuals and the documented sign, the same bits on every rank, and its refusals.
 *
 * The solver takes and returns gn_real (real.h); the reference is DSYEVD in double on a double
 * copy of the gn_real matrix it was given, and the residuals are formed in double. Rounding
 * tolerances go through gt_tol (testlib.h); the same-bits checks stay exact. */
// NP: 1 2 3 4
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gnrev/core/err.h"
#include "gnrev/core/par.h"
#include "gnrev/core/rng.h"
#include "gnrev/linalg/scalapack.h"
#include "gnrev/linalg/symeig.h"
#include "testlib.h"

/* A = (B + B^T) / 2 for a Gaussian B, the same on every rank: a GOE matrix, whose eigenvalues
 * repel, so the leading eigenvectors are well determined (up to sign) for comparison. */
static void make_matrix(int64_t n, uint64_t seed, gn_real *A) {
  gn_rng_fill_normal_real(seed, GN_RNG_PROBE, 7, 0, (size_t)(n * n), 1.0, A);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < i; ++j) A[i * n + j] = A[j * n + i] = 0.5 * (A[i * n + j] + A[j * n + i]);
}

/* Serial reference: eigenvalues descending and eigenvectors (row k for value k). */
static void serial_eig(int64_t n64, const double *A, double *w, double *V) {
  int n = (int)n64, info = 0, lwork = -1, liwork = -1, iq = 0;
  double q = 0, *Z = malloc((size_t)(n * n) * sizeof(double)), *wa = malloc((size_t)n * sizeof(double));
  memcpy(Z, A, (size_t)(n * n) * sizeof(double));
  dsyevd_("V", "L", &n, Z, &n, wa, &q, &lwork, &iq, &liwork, &info, 1, 1);
  lwork = (int)q + 1;
  liwork = iq + 1;
  double *work = malloc((size_t)lwork * sizeof(double));
  int *iwork = malloc((size_t)liwork * sizeof(int));
  dsyevd_("V", "L", &n, Z, &n, wa, work, &lwork, iwork, &liwork, &info, 1, 1);
  for (int k = 0; k < n; ++k) {
    w[k] = wa[n - 1 - k];
    memcpy(V + (size_t)k * n, Z + (size_t)(n - 1 - k) * n, (size_t)n * sizeof(double));
  }
  free(Z);
  free(wa);
  free(work);
  free(iwork);
}

static void check_size(const gn_par *par, int64_t n, int64_t per_row_block, int64_t kvec) {
  gn_real *A = malloc((size_t)(n * n) * sizeof(gn_real));
  double *wref = malloc((size_t)n * sizeof(double)), *Vref = malloc((size_t)(n * n) * sizeof(double));
  gn_real *w = malloc((size_t)n * sizeof(gn_real)), *V = malloc((size_t)(kvec > 0 ? kvec * n : 1) * sizeof(gn_real));
  make_matrix(n, 11 + (uint64_t)n, A);
  double *Ad = gt_f64(A, (size_t)(n * n));
  serial_eig(n, Ad, wref, Vref);
  /* Rows split as the callers do: per_row_block rows per "sample", samples split by gn_par_rows. */
  const int64_t block = gn_par_rows(n / per_row_block, par->size, par->rank, NULL, NULL) * per_row_block;
  const int64_t r0 = block * par->rank, nrows = r0 >= n ? 0 : (n - r0 < block ? n - r0 : block);
  int st = gn_symeig_rows(par, n, block, A + (r0 < n ? r0 : 0) * n, w, kvec, kvec ? V : NULL, "a test matrix");
  GT_CHECK(st == GN_OK, "test_symeig_runs (n = %lld, block %lld, %lld vectors, %lld local rows): %s",
           (long long)n, (long long)block, (long long)kvec, (long long)nrows, st ? gn_error_message() : "");
  double anorm = 0, werr = 0;
  for (int64_t i = 0; i < n; ++i) anorm = fmax(anorm, fabs(wref[i]));
  for (int64_t i = 0; i < n; ++i) werr = fmax(werr, fabs(w[i] - wref[i]));
  int desc = 1;
  for (int64_t i = 1; i < n; ++i) desc &= w[i] <= w[i - 1];
  GT_CHECK(werr < gt_tol(1e-13 * n) * anorm && desc,
           "test_symeig_eigenvalues_match_serial_dsyevd_descending (n = %lld): max err %.2e of |A| %.2f",
           (long long)n, werr, anorm);
  double res = 0, dir = 0, unit = 0;
  int sign_ok = 1;
  for (int64_t k = 0; k < kvec; ++k) {
    const gn_real *v = V + k * n;
    const double *vr = Vref + k * n;
    double dot = 0, nn = 0;
    int64_t imax = 0;
    for (int64_t i = 0; i < n; ++i) {
      dot += v[i] * vr[i];
      nn += (double)v[i] * v[i];
      if (fabs(v[i]) > fabs(v[imax])) imax = i;
    }
    sign_ok &= v[imax] > 0;
    unit = fmax(unit, fabs(sqrt(nn) - 1));
    dir = fmax(dir, 1 - fabs(dot));
    for (int64_t i = 0; i < n; ++i) {
      double r = -(double)w[k] * v[i];
      for (int64_t j = 0; j < n; ++j) r += Ad[i * n + j] * v[j];
      res = fmax(res, fabs(r));
    }
  }
  /* The angle to the serial vector is ~ eps |A| / gap; its square is far below 1e-12 for the
   * gaps of a GOE matrix of these sizes (and, with gt_tol, below 5e-4 in float). */
  if (kvec > 0) {
    GT_CHECK(unit < gt_tol(1e-13) && dir < gt_tol(1e-12) && res < gt_tol(1e-13 * n) * anorm && sign_ok,
             "test_symeig_vectors_are_unit_eigenvectors_like_serial_with_positive_largest_entry (n = %lld, "
             "%lld vectors): | |v| - 1 | %.1e, 1 - |v.v_ref| %.1e, |A v - w v| %.1e", (long long)n,
             (long long)kvec, unit, dir, res);
  } else {
    /* No vectors asked for: a vector buffer passed anyway is left as it was, and the eigenvalues
     * are the same bits as without it. */
    gn_real *w2 = malloc((size_t)n * sizeof(gn_real)), sentinel[4] = {-7.5, -7.5, -7.5, -7.5};
    int st2 = gn_symeig_rows(par, n, block, A + (r0 < n ? r0 : 0) * n, w2, 0, sentinel, "a test matrix");
    int untouched = 1;
    for (int i = 0; i < 4; ++i) untouched &= sentinel[i] == -7.5;
    GT_CHECK(st2 == GN_OK && untouched && memcmp(w2, w, (size_t)n * sizeof(gn_real)) == 0,
             "test_symeig_no_vectors_leaves_the_vector_buffer_alone (n = %lld)", (long long)n);
    free(w2);
  }
  /* Every rank returns the same bits. */
  gn_real *r0w = malloc((size_t)(n + (kvec > 0 ? kvec * n : 0)) * sizeof(gn_real));
  memcpy(r0w, w, (size_t)n * sizeof(gn_real));
  if (kvec > 0) memcpy(r0w + n, V, (size_t)(kvec * n) * sizeof(gn_real));
  MPI_Bcast(r0w, (int)(n + kvec * n), GN_MPI_REAL, 0, par->comm);
  int same = memcmp(r0w, w, (size_t)n * sizeof(gn_real)) == 0 &&
             (kvec == 0 || memcmp(r0w + n, V, (size_t)(kvec * n) * sizeof(gn_real)) == 0);
  GT_CHECK(same, "test_symeig_same_bits_on_every_rank (n = %lld)", (long long)n);
  free(r0w);
  free(A);
  free(Ad);
  free(wref);
  free(Vref);
  free(w);
  free(V);
}

static void check_refusals(const gn_par *par) {
  const int64_t n = 12;
  gn_real *A = malloc((size_t)(n * n) * sizeof(gn_real));
  gn_real w[12], V[12 * 13];
  make_matrix(n, 3, A);
  const int64_t block = gn_par_rows(n, par->size, par->rank, NULL, NULL);
  const int64_t r0 = block * par->rank < n ? block * par->rank : 0;
  int st = gn_symeig_rows(par, n, block, A + r0 * n, w, n + 1, V, "a test matrix");
  GT_CHECK(st == GN_EINPUT && strstr(gn_error_message(), "a test matrix of order 12"),
           "test_symeig_refuses_more_vectors_than_the_order: \"%s\"", gn_error_message());
  gn_error_clear();
  if (par->rank == par->size - 1 && block * par->rank < n) A[r0 * n] = NAN;
  st = gn_symeig_rows(par, n, block, A + r0 * n, w, 2, V, "a test matrix");
  GT_CHECK(st == GN_ENUMERIC && strstr(gn_error_message(), "a test matrix has a non-finite entry"),
           "test_symeig_refuses_non_finite_entries_on_every_rank: \"%s\"", gn_error_message());
  gn_error_clear();
  free(A);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  gt_plan(22); /* 5 sizes x 4, refusals 2 */
  gn_par par;
  gn_par_open(MPI_COMM_WORLD, &par);
  check_size(&par, 1, 1, 1);
  check_size(&par, 7, 1, 0);
  check_size(&par, 30, 10, 30);   /* 3 "samples" of 10 rows: trailing ranks own none at np = 4 */
  check_size(&par, 150, 10, 12);  /* several 2-D blocks per rank */
  check_size(&par, 257, 1, 5);
  check_refusals(&par);
  gn_par_close(&par);
  int rc = gt_finish();
  MPI_Finalize();
  return rc;
}
