/* testlib.h — the test protocol of gnrev (header-only).
 *
 * A test program calls GT_CHECK for each property, on every rank in the same order; the outcome is
 * reduced over MPI_COMM_WORLD (a property holds only if it holds on every rank) and rank 0 prints
 * "ok - name" or "not ok - name (file:line): detail". gt_finish() returns the exit status.
 * tests/run_tests.sh counts those lines; a test file declares its rank counts in a line
 * "// NP: 1 2 3 4" (default 1). */
#ifndef GNREV_TESTLIB_H
#define GNREV_TESTLIB_H

#include <math.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int gt_passed_ = 0, gt_failed_ = 0;

__attribute__((unused)) static int gt_rank(void) {
  int init = 0, rank = 0;
  MPI_Initialized(&init);
  if (init) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
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

/* Relative difference ||a - b|| / max(||b||, tiny), 2-norm over n entries. */
__attribute__((unused)) static double gt_rel_diff(const double *a, const double *b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    double d = a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  return sqrt(num) / (den > 0 ? sqrt(den) : 1e-300);
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

__attribute__((unused)) static int gt_finish(void) { return gt_failed_ ? 1 : 0; }

#endif
