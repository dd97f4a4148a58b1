/* symeig_scalapack.c — PDSYEVD on a row-split symmetric matrix (docs/algorithm.md section 7: matrices
 * that couple samples live in ScaLAPACK layout, never on one rank).
 *
 * A rank's row-major rows are, read column-major, columns of the transpose, which is the matrix
 * itself: the split is a 1 x P grid with column blocks of `block`. PDGEMR2D moves it to a
 * near-square 2-D grid, PDSYEVD (jobz 'V': PDSYEVD has no values-only mode, and for the sizes of
 * probe sets and Gram matrices the vectors cost the same order as the reduction both need) solves
 * it, and the kvec leading columns of Z come back to every rank by an allreduce in which each
 * entry has exactly one nonzero contribution, so the sum is exact and the same on every rank. */
#include "gnrev/linalg/symeig.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gnrev/core/err.h"
#include "gnrev/linalg/scalapack.h"
#include "gnrev/linalg/sl_grid.h"
#include "gnrev/core/real.h"

enum { WORK_SLACK = 256 }; /* extra workspace entries on top of the documented minimum */

static gn_real *dalloc(size_t n) { return malloc((n ? n : 1) * sizeof(gn_real)); }

/* Global 0-based index of local index l in a block-cyclic dimension starting at process 0. */
static int64_t l2g(int64_t l, int nb, int coord, int nprocs) {
  return (l / nb) * (int64_t)nb * nprocs + (int64_t)coord * nb + l % nb;
}

int gn_symeig_rows(const gn_par *par, int64_t n64, int64_t block, const gn_real *rows_local, gn_real *w,
                   int64_t kvec, gn_real *vecs, const char *what) {
  if (n64 < 1 || n64 > INT_MAX || block < 1 || block > INT_MAX || kvec < 0 || kvec > n64 ||
      (kvec > 0 && !vecs))
    GN_FAIL(GN_EINPUT, "symeig: %s of order %lld split in blocks of %lld rows, %lld vectors asked; "
            "expected 1 <= order <= %d, block >= 1, 0 <= vectors <= order", what, (long long)n64,
            (long long)block, (long long)kvec, INT_MAX);
  const int64_t r0 = block * par->rank;
  const int64_t nrows = r0 >= n64 ? 0 : (n64 - r0 < block ? n64 - r0 : block);
  int bad = 0;
  for (size_t i = 0; i < (size_t)(nrows * n64); ++i) bad |= !isfinite(rows_local[i]);
  CHECK(gn_par_agree(par, bad ? GN_RAISE(GN_ENUMERIC, "symeig: %s has a non-finite entry in the rows "
                                         "of rank %d", what, par->rank) : GN_OK));

  const int P = par->size;
  int pr = 1, pc = 1;
  gn_sl_grid_shape(P, &pr, &pc);
  const int ctx1 = gn_sl_grid(par->comm, 1, P), ctx2 = gn_sl_grid(par->comm, pr, pc);
  int status = GN_OK, n = (int)n64, one = 1, zero = 0, info = 0;
  gn_real *A = NULL, *Z = NULL, *wv = NULL, *work = NULL;
  int *iwork = NULL;
  int r1, c1, r2, c2, np, nq;
  Cblacs_gridinfo(ctx1, &np, &nq, &r1, &c1);
  Cblacs_gridinfo(ctx2, &np, &nq, &r2, &c2);
  if (c1 != par->rank || r2 * pc + c2 != par->rank)
    status = GN_RAISE(GN_EINTERNAL, "symeig: BLACS placed rank %d at column %d of the 1 x %d grid and "
                      "at (%d, %d) of the %d x %d grid; expected column %d and (%d, %d)", par->rank, c1,
                      P, r2, c2, pr, pc, par->rank, par->rank / pc, par->rank % pc);
  CHECK_GOTO(gn_par_agree(par, status));
  int nb1 = (int)block, desc1[GN_DLEN], desc2[GN_DLEN], lld1 = n;
  descinit_(desc1, &n, &n, &n, &nb1, &zero, &zero, &ctx1, &lld1, &info);
  CHECK_GOTO(gn_par_agree(par, gn_sl_error("DESCINIT", info, "invalid descriptor")));
  const int nb = gn_sl_block(n64, pc);
  int lr = numroc_(&n, &nb, &r2, &zero, &pr), lc = numroc_(&n, &nb, &c2, &zero, &pc);
  int lld2 = lr > 1 ? lr : 1;
  descinit_(desc2, &n, &n, &nb, &nb, &zero, &zero, &ctx2, &lld2, &info);
  CHECK_GOTO(gn_par_agree(par, gn_sl_error("DESCINIT", info, "invalid descriptor")));
  A = dalloc((size_t)lr * (size_t)lc);
  Z = dalloc((size_t)lr * (size_t)lc);
  wv = dalloc((size_t)n);
  status = A && Z && wv ? GN_OK : GN_RAISE(GN_ENOMEM, "symeig: out of memory for the 2-D copy of %s "
                                            "(%d x %d)", what, n, n);
  CHECK_GOTO(gn_par_agree(par, status));
  gn_pgemr2d(&n, &n, rows_local, &one, &one, desc1, A, &one, &one, desc2, &ctx1);
  int qlwork = -1, qliwork = -1, iq = 0;
  gn_real q = 0;
  gn_psyevd("V", "L", &n, A, &one, &one, desc2, wv, Z, &one, &one, desc2, &q, &qlwork, &iq, &qliwork,
           &info, 1, 1);
  CHECK_GOTO(gn_par_agree(par, gn_sl_error("PDSYEVD (workspace query)", info, "no convergence")));
  /* The query, or the documented minimum if larger, plus slack (see pinv_scalapack.c). */
  const double trilwmin = 3.0 * n + fmax(nb * (lr + 1.0), 3.0 * nb);
  const double lw = fmax(q, fmax(1 + 6.0 * n + 2.0 * lr * lc, trilwmin) + 2.0 * n) * 1.05 + WORK_SLACK;
  int lwork = lw > INT_MAX ? INT_MAX : (int)lw;
  int liwork = (iq > 7 * n + 8 * pc + 2 ? iq : 7 * n + 8 * pc + 2) + WORK_SLACK;
  work = dalloc((size_t)lwork);
  iwork = malloc((size_t)liwork * sizeof(int));
  status = lw <= INT_MAX && work && iwork ? GN_OK : GN_RAISE(GN_ENOMEM, "symeig: no PDSYEVD workspace "
                                                             "(%.0f doubles) for %s (%d x %d)", lw, what, n, n);
  CHECK_GOTO(gn_par_agree(par, status));
  gn_psyevd("V", "L", &n, A, &one, &one, desc2, wv, Z, &one, &one, desc2, work, &lwork, iwork, &liwork,
           &info, 1, 1);
  CHECK_GOTO(gn_par_agree(par, gn_sl_error("PDSYEVD", info, "the eigensolver did not converge")));
  for (int i = 0; i < n; ++i) w[i] = wv[n - 1 - i];

  if (kvec > 0) {
    /* Column n-1-k of Z (ascending order) is vector k; this rank's entries, zeros elsewhere. */
    memset(vecs, 0, (size_t)(kvec * n64) * sizeof(gn_real));
    for (int lj = 0; lj < lc; ++lj) {
      const int64_t k = n64 - 1 - l2g(lj, nb, c2, pc);
      if (k >= kvec) continue;
      for (int li = 0; li < lr; ++li) vecs[k * n64 + l2g(li, nb, r2, pr)] = Z[li + (size_t)lj * lld2];
    }
    CHECK_GOTO(gn_par_sum_real(par, vecs, (size_t)(kvec * n64)));
    /* Fix each vector's sign so that results do not flip with the rank count. */
    for (int64_t k = 0; k < kvec; ++k) {
      gn_real *v = vecs + k * n64;
      int64_t imax = 0;
      for (int64_t i = 1; i < n64; ++i)
        if (fabs(v[i]) > fabs(v[imax])) imax = i;
      if (v[imax] < 0)
        for (int64_t i = 0; i < n64; ++i) v[i] = -v[i];
    }
  }
fail:
  free(A);
  free(Z);
  free(wv);
  free(work);
  free(iwork);
  Cblacs_gridexit(ctx2);
  Cblacs_gridexit(ctx1);
  return status;
}
