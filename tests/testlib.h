/* testlib.h — the test protocol of gnrev (header-only), a subset of TAP.
 *
 * A test program first states how many checks it will run with gt_plan(n) (rank 0 prints "1..n"),
 * then calls GT_CHECK for each property, on every rank in the same order; the outcome is reduced
 * over MPI_COMM_WORLD (a property holds only if it holds on every rank) and rank 0 prints
 * "ok - name" or "not ok - name (file:line)". A check that cannot run here (a missing optional
 * tool or data set) is reported with gt_skip as "ok - name # SKIP reason" and counts as skipped.
 * GT_REQUIRE states a precondition on the test's own set-up (not a property of the code): when it
 * does not hold the program prints "Bail out! ..." and stops, which fails it. gt_finish() returns
 * the exit status, non-zero also when the number of checks run differs from the plan.
 * tests/run_tests.sh counts those lines and fails a program whose count differs from its plan; a
 * test file declares its rank counts in a line "// NP: 1 2 3 4" (default 1). */
#ifndef GNREV_TESTLIB_H
#define GNREV_TESTLIB_H

#include <math.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <float.h>

#include "gnrev/core/real.h"

/* ---- tolerances in both precisions -------------------------------------------------------------
 * A check states the tolerance it needs in the double build; these give the one of this build
 * (make PRECISION=single builds gn_real = float, include/gnrev/core/real.h). Derivation: an error
 * made of rounding grows with the unit roundoff, by GT_EPS_RATIO = FLT_EPSILON / DBL_EPSILON
 * (5.4e8) from double to float, so a rounding-level tolerance keeps its headroom when multiplied
 * by it; it is capped at GT_TOL_CAP (1e-3), well below the O(1) or O(1e-2) errors of a wrong
 * formula, so every check can still fail. A central difference with step h has truncation error
 * O(h^2) and rounding error O(eps / h): its best step grows with eps^(1/3) and its error with
 * eps^(2/3), which gt_fd_step and gt_fd_tol apply (capped at 1e-2). In the double build all three
 * return their argument. */
#define GT_SINGLE (sizeof(gn_real) == sizeof(float))
#define GT_EPS_RATIO ((double)GN_REAL_EPS / DBL_EPSILON)
#define GT_TOL_CAP 1e-3
__attribute__((unused)) static double gt_tol(double tol_double) {
  if (!GT_SINGLE) return tol_double;
  const double t = tol_double * GT_EPS_RATIO;
  return t < GT_TOL_CAP ? t : (tol_double > GT_TOL_CAP ? tol_double : GT_TOL_CAP);
}
__attribute__((unused)) static double gt_fd_step(double h_double) {
  return GT_SINGLE ? h_double * cbrt(GT_EPS_RATIO) : h_double;
}
__attribute__((unused)) static double gt_fd_tol(double tol_double) {
  if (!GT_SINGLE) return tol_double;
  const double t = tol_double * pow(GT_EPS_RATIO, 2.0 / 3.0);
  return t < 1e-2 ? t : (tol_double > 1e-2 ? tol_double : 1e-2);
}

static int gt_passed_ = 0, gt_failed_ = 0, gt_skipped_ = 0, gt_planned_ = -1;

/* This process's rank in MPI_COMM_WORLD (0 without MPI); remembered, so that gt_finish may run
 * after MPI_Finalize. */
__attribute__((unused)) static int gt_rank(void) {
  static int rank = -1;
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (init && !fin) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank < 0 ? 0 : rank;
}

__attribute__((format(printf, 4, 5))) static int gt_check_(int ok, const char *file, int line,
                                                            const char *fmt, ...) {
  int init = 0, all = ok;
  MPI_Initialized(&init);
  if (init) MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  char name[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  if (!ok && gt_rank() != 0) fprintf(stderr, "  (rank %d) failed: %s at %s:%d\n", gt_rank(), name, file, line);
  if (gt_rank() == 0) {
    if (all)
      printf("ok - %s\n", name);
    else
      printf("not ok - %s (%s:%d)\n", name, file, line);
    fflush(stdout);
  }
  if (all) ++gt_passed_; else ++gt_failed_;
  return all;
}

/* GT_CHECK(condition, "name with %d formats", ...) */
#define GT_CHECK(cond, ...) gt_check_(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

/* Collective. Prints the plan "1..n": the number of checks (GT_CHECK and gt_skip) this run makes.
 * Call it once, before the first check. */
__attribute__((unused)) static void gt_plan(int n) {
  gt_planned_ = n;
  if (gt_rank() == 0) {
    printf("1..%d\n", n);
    fflush(stdout);
  }
}

/* Collective. A check that cannot run here: "ok - name # SKIP reason", counted as skipped. */
__attribute__((format(printf, 2, 3), unused)) static void gt_skip(const char *reason, const char *fmt, ...) {
  char name[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  if (gt_rank() == 0) {
    printf("ok - %s # SKIP %s\n", name, reason);
    fflush(stdout);
  }
  ++gt_skipped_;
}

__attribute__((format(printf, 4, 5), unused)) static void gt_require_(int ok, const char *file, int line,
                                                                        const char *fmt, ...) {
  int init = 0, all = ok;
  MPI_Initialized(&init);
  if (init) MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (all) return;
  char what[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  if (gt_rank() == 0) {
    printf("Bail out! the test's own set-up failed: %s (%s:%d)\n", what, file, line);
    fflush(stdout);
  }
  if (init) MPI_Finalize();
  exit(1);
}

/* Collective. GT_REQUIRE(condition, "what the set-up needs", ...): a precondition on the test's
 * own inputs or scratch files, never a property of the code under test (use GT_CHECK for those). */
#define GT_REQUIRE(cond, ...) gt_require_(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

/* Relative difference ||a - b|| / max(||b||, tiny), 2-norm over n entries, accumulated in double.
 * a and b may each be double or float arrays (gn_real results of the library against double
 * references, or two gn_real results): gt_rel_diff picks the function for the pair of types. */
#define GT_REL_DIFF_BODY_                                                                           \
  double num = 0, den = 0;                                                                          \
  for (size_t i = 0; i < n; ++i) {                                                                  \
    const double d = (double)a[i] - (double)b[i];                                                   \
    num += d * d;                                                                                   \
    den += (double)b[i] * (double)b[i];                                                             \
  }                                                                                                 \
  return sqrt(num) / (den > 0 ? sqrt(den) : 1e-300);
__attribute__((unused)) static double gt_rel_diff_dd_(const double *a, const double *b, size_t n) {
  GT_REL_DIFF_BODY_
}
__attribute__((unused)) static double gt_rel_diff_fd_(const float *a, const double *b, size_t n) {
  GT_REL_DIFF_BODY_
}
__attribute__((unused)) static double gt_rel_diff_df_(const double *a, const float *b, size_t n) {
  GT_REL_DIFF_BODY_
}
__attribute__((unused)) static double gt_rel_diff_ff_(const float *a, const float *b, size_t n) {
  GT_REL_DIFF_BODY_
}
#define GT_IS_FLOAT_PTR_(p, f, d) _Generic((p), float *: f, const float *: f, default: d)
#define gt_rel_diff(a, b, n)                                                                        \
  GT_IS_FLOAT_PTR_(a, GT_IS_FLOAT_PTR_(b, gt_rel_diff_ff_, gt_rel_diff_fd_),                        \
                   GT_IS_FLOAT_PTR_(b, gt_rel_diff_df_, gt_rel_diff_dd_))(a, b, n)

/* ---- gn_real arrays in tests -------------------------------------------------------------------
 * Arrays handed to or received from the library are gn_real; a test's independent reference
 * (finite differences, serial LAPACK in double, hand computations) works on double copies of them,
 * so that it is computed in double in both builds from exactly the values the library saw. */
/* Local. out[i] = a[i] (exact: every gn_real is a double). */
__attribute__((unused)) static void gt_to_f64(const gn_real *a, size_t n, double *out) {
  for (size_t i = 0; i < n; ++i) out[i] = (double)a[i];
}
/* Local. A malloc'ed double copy of n gn_real (at least one element, so NULL means out of memory). */
__attribute__((unused)) static double *gt_f64(const gn_real *a, size_t n) {
  double *out = malloc((n ? n : 1) * sizeof *out);
  if (out) gt_to_f64(a, n, out);
  return out;
}
/* Local. out[i] = a[i] rounded to gn_real (a copy in the double build). */
__attribute__((unused)) static void gt_to_real(const double *a, size_t n, gn_real *out) {
  for (size_t i = 0; i < n; ++i) out[i] = (gn_real)a[i];
}

/* Prints a diagnostic line on rank 0 only (a "# " comment, ignored by the runner). */
__attribute__((format(printf, 1, 2), unused)) static void gt_note(const char *fmt, ...) {
  if (gt_rank() != 0) return;
  va_list ap;
  va_start(ap, fmt);
  printf("# ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  fflush(stdout);
}

/* The exit status: 1 when a check failed or the count of checks differs from the plan. */
__attribute__((unused)) static int gt_finish(void) {
  const int ran = gt_passed_ + gt_failed_ + gt_skipped_;
  if (gt_planned_ < 0) {
    gt_note("no plan: call gt_plan(n) before the first check");
    return 1;
  }
  if (ran != gt_planned_) {
    gt_note("planned %d checks, ran %d", gt_planned_, ran);
    return 1;
  }
  return gt_failed_ ? 1 : 0;
}

#endif
