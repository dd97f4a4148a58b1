/* gn_reference.c — the textbook Moore-Penrose Gauss-Newton step delta = J^+ eps (deck method = 'gn'
 * with gn_reference = .true.), the trajectory the tractable step is compared with (Theorem 4.3 of
 * Buffelli et al.: any right inverse of J gives the same loss to O(lr)).
 *
 * delta = J^T K^+ eps with K = J J^T the NTK of the batch (curvature/ntk.c): K is gathered on
 * rank 0 and solved by serial DSYEVD with the deck's rtol/atol truncation on its eigenvalues
 * (mu >= max(rtol^2 mu_max, atol^2), i.e. sigma >= max(rtol sigma_max, atol)), the weights K^+ eps
 * broadcast (replicated, deterministic), then one backpropagation. Rank 0 holds the whole K and
 * ~2 (n C)^2 of workspace, so the batch is bounded: n C <= MAX_ROWS. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "gnrev/core/array.h"
#include "gnrev/core/blas.h"
#include "gnrev/core/err.h"
#include "gnrev/curvature/ntk.h"
#include "gnrev/linalg/scalapack.h"
#include "gnrev/linalg/sl_grid.h"
#include "gnrev/model/loss.h"
#include "gnrev/optim/optim.h"
#include "gnrev/core/real.h"

/* Largest n*C for which the batch's NTK is formed on rank 0. */
enum { MAX_ROWS = 8192, WORK_SLACK = 256 };

/* Rank 0: w = V diag(f) V^T eps for the full N x N kernel Kf (overwritten). */
static int solve_rank0(int64_t N, gn_real *Kf, const gn_real *eps, double rtol, double atol, gn_real *w) {
  int n = gn_int(N), info = 0, lwork = -1, liwork = -1, iq = 0, status = GN_OK;
  gn_real q = 0;
  gn_syevd("V", "L", &n, Kf, &n, w, &q, &lwork, &iq, &liwork, &info, 1, 1);
  CHECK(gn_sl_error("DSYEVD (workspace query)", info, "no convergence"));
  const double lw = fmax(q, 1 + 6.0 * n + 2.0 * n * n) + WORK_SLACK;
  if (lw > INT_MAX)
    GN_FAIL(GN_EINPUT, "gn_reference: the %d x %d NTK needs more DSYEVD workspace than a 32-bit LAPACK "
            "can index; use a smaller batch", n, n);
  lwork = (int)lw;
  liwork = (iq > 3 + 5 * n ? iq : 3 + 5 * n) + WORK_SLACK;
  gn_real *work = gn_alloc((size_t)lwork), *mu = gn_alloc((size_t)n), *t = gn_alloc((size_t)n);
  int *iwork = malloc((size_t)liwork * sizeof(int));
  if (!work || !mu || !t || !iwork)
    FAIL_GOTO(GN_ENOMEM, "gn_reference: out of memory for the eigen-decomposition of the %d x %d NTK", n, n);
  /* Row-major K is column-major K^T = K; eigenvector k comes back as row k of Kf. */
  gn_syevd("V", "L", &n, Kf, &n, mu, work, &lwork, iwork, &liwork, &info, 1, 1);
  CHECK_GOTO(gn_sl_error("DSYEVD", info, "the eigensolver did not converge"));
  double mu_max = 0;
  for (int i = 0; i < n; ++i) mu_max = fmax(mu_max, mu[i]);
  const double cut = fmax(rtol * rtol * mu_max, atol * atol);
  gn_cblas_gemv(CblasRowMajor, CblasNoTrans, n, n, 1.0, Kf, n, eps, 1, 0.0, t, 1);
  for (int i = 0; i < n; ++i) t[i] = (mu[i] > 0 && mu[i] >= cut) ? t[i] / mu[i] : 0.0;
  gn_cblas_gemv(CblasRowMajor, CblasTrans, n, n, 1.0, Kf, n, t, 1, 0.0, w, 1);
  if (!gn_all_finite(w, (size_t)n))
    FAIL_GOTO(GN_ENUMERIC, "gn_reference: K^+ eps has a non-finite entry (the residual holds inf or NaN)");
fail:
  free(work);
  free(mu);
  free(t);
  free(iwork);
  return status;
}

/* delta = J^+ eps for the batch, and the batch's loss at theta. */
static int mp_direction(gn_opt *opt, const gn_real *theta, const gn_batch *bt, gn_real *delta, gn_step_info *info) {
  const gn_par *par = opt->par;
  const gn_model *model = opt->model;
  const gn_deck *deck = opt->deck;
  const int64_t C = model->C, N = bt->n_global * C, d = model->d, n_local = bt->n;
  if (bt->n_global < 1 || N > MAX_ROWS)
    GN_FAIL(GN_EINPUT, "the Moore-Penrose GN step (gn_reference) needs the full %lld x %lld NTK of %lld "
            "samples x %lld classes, above the limit of %d rows; use a smaller batch (batch_size <= %lld) "
            "or switch gn_reference off", (long long)N, (long long)N, (long long)bt->n_global, (long long)C,
            MAX_ROWS, (long long)(MAX_ROWS / C));
  int64_t row0, nrows;
  gn_par_rows(bt->n_global, par->size, par->rank, &row0, &nrows);
  CHECK(gn_par_agree(par, nrows == n_local ? GN_OK : GN_RAISE(GN_EINTERNAL, "gn_reference: rank %d holds %lld "
                     "rows of the batch; the split of %lld rows gives it %lld", par->rank, (long long)n_local,
                     (long long)bt->n_global, (long long)nrows)));
  gn_ntk K;
  CHECK(gn_ntk_compute(par, model, theta, bt->n_global, bt->X0, &K));
  int status = GN_OK;
  MPI_Datatype row_t = MPI_DATATYPE_NULL, row_c = MPI_DATATYPE_NULL;
  int *cnt = malloc(2 * (size_t)par->size * sizeof(int));
  gn_real *X = gn_alloc((size_t)(n_local * d)), *logits = gn_alloc((size_t)(n_local * C));
  gn_real *eps = gn_alloc((size_t)N), *w = gn_alloc((size_t)N);
  gn_real *Kf = par->rank == 0 ? gn_alloc((size_t)N * (size_t)N) : NULL;
  if (!cnt || !X || !logits || !eps || !w || (par->rank == 0 && !Kf))
    status = GN_RAISE(GN_ENOMEM, "gn_reference: out of memory for the gathered %lld x %lld NTK",
                      (long long)N, (long long)N);
  CHECK_GOTO(gn_par_agree(par, status));
  int *dsp = cnt + par->size;
  /* The batch's loss and this rank's residual rows, in place in the global eps, then gathered with
   * K on rank 0. */
  if (n_local > 0) memcpy(X, bt->X0, (size_t)(n_local * d) * sizeof(gn_real));
  gn_model_forward(model, theta, n_local, X, logits);
  CHECK_GOTO(gn_opt_batch_metrics(opt, bt, logits, info));
  gn_loss_residual(deck->loss, deck->output_hessian, n_local, (int)C, logits, bt->y, eps + row0 * C);
  CHECK_MPI_GOTO(MPI_Type_contiguous(gn_int(N), GN_MPI_REAL, &row_t));
  CHECK_MPI_GOTO(MPI_Type_commit(&row_t));
  CHECK_MPI_GOTO(MPI_Type_contiguous(gn_int(C), GN_MPI_REAL, &row_c));
  CHECK_MPI_GOTO(MPI_Type_commit(&row_c));
  gn_par_counts(bt->n_global, par->size, C, cnt, dsp);
  CHECK_MPI_GOTO(MPI_Gatherv(K.K, cnt[par->rank], row_t, Kf, cnt, dsp, row_t, 0, par->comm));
  gn_par_counts(bt->n_global, par->size, 1, cnt, dsp);
  CHECK_MPI_GOTO(MPI_Gatherv(par->rank == 0 ? MPI_IN_PLACE : eps + row0 * C, cnt[par->rank], row_c, eps, cnt,
                             dsp, row_c, 0, par->comm));
  status = par->rank == 0 ? solve_rank0(N, Kf, eps, deck->rtol, deck->atol, w) : GN_OK;
  CHECK_GOTO(gn_par_agree(par, status));
  CHECK_GOTO(gn_par_bcast(par, w, (size_t)N * sizeof(gn_real), 0));
  CHECK_GOTO(gn_ntk_jt_apply(par, model, theta, n_local, bt->X0, w + row0 * C, delta));
fail:
  if (row_t != MPI_DATATYPE_NULL) MPI_Type_free(&row_t);
  if (row_c != MPI_DATATYPE_NULL) MPI_Type_free(&row_c);
  free(cnt);
  free(X);
  free(logits);
  free(eps);
  free(w);
  free(Kf);
  gn_ntk_free(&K);
  return status;
}

static int reference_step(gn_opt *opt, gn_real *theta, const gn_batch *batch, gn_step_info *info) {
  CHECK(mp_direction(opt, theta, batch, opt->delta, info));
  /* The tractable step moves the outputs by B eps to first order, J^+ eps by eps: scaling the
   * reference by B makes runs with the same lr comparable (Theorem 4.3). */
  return gn_opt_apply(opt, theta, opt->delta, (double)opt->model->B);
}

/* Checkpoints name the deck's method, which is gn. */
const gn_opt_ops gn_opt_gn_reference_ops = {.name = "gn", .step = reference_step};
