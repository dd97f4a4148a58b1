/* ggn_noise.c — the GGN spectrum and the noise of its top directions (curvature/ggn.c) on the
 * first ggn_samples rows of the batch about to be used (drift.h, /ggn of run.h5). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gnrev/core/err.h"
#include "gnrev/curvature/ggn.h"
#include "gnrev/diag/drift.h"
#include "gnrev/diag/table.h"
#include "gnrev/core/real.h"

struct gn_ggn_noise {
  gn_diag_ctx ctx;
  int64_t last;
  gn_diag_table eig, gmean, lmean, gsnr, lsnr;
};

int gn_ggn_noise_create(const gn_diag_ctx *ctx, gn_ggn_noise **out) {
  *out = NULL;
  gn_ggn_noise *gd = calloc(1, sizeof *gd);
  CHECK(gn_par_agree(ctx->par, gd ? GN_OK : GN_RAISE(GN_ENOMEM, "out of memory for the GGN diagnostic")));
  gd->ctx = *ctx;
  gd->last = -1;
  const gn_deck *dk = ctx->deck;
  int64_t width = dk->ggn_samples * (dk->ggn_mode == GN_GGN_MC ? dk->ggn_mc_samples : ctx->model->C);
  if (width < 1) width = 1;
  const int64_t kk = dk->ggn_top_k > 0 ? dk->ggn_top_k : 1;
  gn_diag_table_init(&gd->eig, "/ggn/eigenvalues", width,
                     "nonzero GGN eigenvalues on the snapshot's samples, descending; NaN-padded to ggn_samples * columns of S",
                     "loss units per parameter unit^2", "snapshot,eigenvalue");
  gn_diag_table_init(&gd->gmean, "/ggn/gamma_mean", kk, "gamma_k: mean over samples of gamma_nk; NaN past k",
                     "loss units per parameter unit", "snapshot,direction");
  gn_diag_table_init(&gd->lmean, "/ggn/lambda_mean", kk, "lambda_k: mean over samples of lambda_nk; NaN past k",
                     "loss units per parameter unit^2", "snapshot,direction");
  gn_diag_table_init(&gd->gsnr, "/ggn/gamma_snr", kk, "SNR of gamma_nk over samples: mean^2 / variance; NaN past k", "1",
                     "snapshot,direction");
  gn_diag_table_init(&gd->lsnr, "/ggn/lambda_snr", kk, "SNR of lambda_nk over samples: mean^2 / variance; NaN past k", "1",
                     "snapshot,direction");
  *out = gd;
  return GN_OK;
}

void gn_ggn_noise_free(gn_ggn_noise *gd) {
  if (!gd) return;
  gn_diag_table *t[] = {&gd->eig, &gd->gmean, &gd->lmean, &gd->gsnr, &gd->lsnr};
  for (size_t i = 0; i < sizeof t / sizeof *t; ++i) gn_diag_table_free(t[i]);
  free(gd);
}

int64_t gn_ggn_noise_last(const gn_ggn_noise *gd) { return gd->last; }

/* Collective. The first N rows of the batch, split again by gn_par_rows(N): every rank sends the
 * rows it holds below N to all (N x d doubles per rank, N = ggn_samples is small), then keeps its
 * share. */
static int ggn_rows(const gn_diag_ctx *c, int64_t n_local, int64_t n_global, const gn_real *X_local,
                    const int32_t *y_local, int64_t N, gn_real **Xall, int32_t **yall) {
  const gn_par *par = c->par;
  const int64_t d = c->model->d;
  int64_t r0, nr;
  gn_par_rows(n_global, par->size, par->rank, &r0, &nr);
  int status = nr == n_local ? GN_OK
                             : GN_RAISE(GN_EINTERNAL, "diagnostics: rank %d was given %lld batch rows, its share of %lld is %lld",
                                        par->rank, (long long)n_local, (long long)n_global, (long long)nr);
  if (status == GN_OK && (int64_t)N * d > INT_MAX)
    status = GN_RAISE(GN_EINPUT, "ggn_samples = %lld is too large: %lld x %lld doubles exceed one MPI message",
                      (long long)N, (long long)N, (long long)d);
  int *cnt = malloc(4 * (size_t)par->size * sizeof(int));
  *Xall = malloc((size_t)(N * d) * sizeof(gn_real));
  *yall = malloc((size_t)N * sizeof(int32_t));
  if (status == GN_OK && (!cnt || !*Xall || !*yall))
    status = GN_RAISE(GN_ENOMEM, "out of memory for %lld GGN samples", (long long)N);
  status = gn_par_agree(par, status);
  if (status == GN_OK) {
    int *dis = cnt + par->size, *cnty = cnt + 2 * par->size, *disy = cnt + 3 * par->size;
    for (int r = 0; r < par->size; ++r) {
      int64_t a, k;
      gn_par_rows(n_global, par->size, r, &a, &k);
      int64_t c = N - a < k ? N - a : k;
      if (c < 0) c = 0;
      if (a > N) a = N;
      cnt[r] = (int)(c * d);
      dis[r] = (int)(a * d);
      cnty[r] = (int)c;
      disy[r] = (int)a;
    }
    int e = MPI_Allgatherv(X_local, cnt[par->rank], GN_MPI_REAL, *Xall, cnt, dis, GN_MPI_REAL, par->comm);
    if (e == MPI_SUCCESS)
      e = MPI_Allgatherv(y_local, cnty[par->rank], MPI_INT32_T, *yall, cnty, disy, MPI_INT32_T, par->comm);
    if (e != MPI_SUCCESS) status = GN_RAISE(GN_EMPI, "MPI_Allgatherv of the GGN samples failed");
  }
  free(cnt);
  if (status != GN_OK) {
    free(*Xall);
    free(*yall);
    *Xall = NULL;
    *yall = NULL;
  }
  return status;
}

int gn_ggn_noise_snapshot(gn_ggn_noise *gd, int64_t step, const gn_real *theta, int64_t n_local, int64_t n_global,
                        const gn_real *X_local, const int32_t *y_local) {
  const gn_diag_ctx *c = &gd->ctx;
  const int64_t N = c->deck->ggn_samples < n_global ? c->deck->ggn_samples : n_global;
  const int64_t d = c->model->d;
  gn_real *Xall = NULL;
  int32_t *yall = NULL;
  CHECK(ggn_rows(c, n_local, n_global, X_local, y_local, N, &Xall, &yall));
  int64_t g0, gn;
  gn_par_rows(N, c->par->size, c->par->rank, &g0, &gn);
  gn_ggn g;
  memset(&g, 0, sizeof g);
  int status = gn_par_agree(c->par, gn_ggn_compute(c->par, c->model, c->deck, theta, gn, N, Xall + g0 * d,
                                                   yall + g0, step, &g));
  free(Xall);
  free(yall);
  CHECK(status);
  const double vals[5] = {(double)step, (double)N, (double)g.n_eig, (double)g.k, g.grad_overlap};
  static const char *const names[] = {"step", "samples", "n_eig", "k", "grad_overlap"};
  static const char *const meta[][2] = {
      {"step (updates taken) of the snapshot", "1"},
      {"N: samples of the batch analysed (its first ggn_samples rows)", "1"},
      {"nonzero GGN eigenvalues found", "1"},
      {"top directions analysed (columns of gamma_/lambda_ and of the *_mean/*_snr tables)", "1"},
      {"||P_top grad L||^2 / ||grad L||^2: share of the batch gradient in the top-k eigenspace", "1"}};
  CHECK_GOTO(gn_diag_series_append(c->run, "/ggn", 5, names, vals, meta));
  CHECK_GOTO(gn_diag_table_append(c->par, c->run, &gd->eig, g.n_eig, g.eigenvalues));
  CHECK_GOTO(gn_diag_table_append(c->par, c->run, &gd->gmean, g.k, g.gamma_mean));
  CHECK_GOTO(gn_diag_table_append(c->par, c->run, &gd->lmean, g.k, g.lambda_mean));
  CHECK_GOTO(gn_diag_table_append(c->par, c->run, &gd->gsnr, g.k, g.gamma_snr));
  CHECK_GOTO(gn_diag_table_append(c->par, c->run, &gd->lsnr, g.k, g.lambda_snr));
  if (g.k > 0) {
    const int64_t dims[2] = {N, g.k};
    char path[GN_DIAG_PATH_CAP];
    snprintf(path, sizeof path, "/ggn/gamma_%08lld", (long long)step);
    CHECK_GOTO(gn_h5_write_f64(c->run, path, 2, dims, g.gamma));
    CHECK_GOTO(gn_h5_describe(c->run, path, "gamma_nk = e_k^T grad ell_n: per-sample directional gradient along GGN eigenvector k",
                              "loss units per parameter unit", "sample,direction"));
    snprintf(path, sizeof path, "/ggn/lambda_%08lld", (long long)step);
    CHECK_GOTO(gn_h5_write_f64(c->run, path, 2, dims, g.lambda));
    CHECK_GOTO(gn_h5_describe(c->run, path, "lambda_nk = e_k^T G_n e_k: per-sample directional curvature along GGN eigenvector k",
                              "loss units per parameter unit^2", "sample,direction"));
  }
  gd->last = step;
fail:
  gn_ggn_free(&g);
  return status;
}

int gn_ggn_noise_restart(gn_ggn_noise *gd, int64_t step) {
  const gn_diag_ctx *c = &gd->ctx;
  int64_t keep = 0, len = 0, *steps = NULL;
  CHECK(gn_diag_cut_series(c->par, c->run, "/ggn", step, &keep, &steps, &len));
  gd->last = keep > 0 ? steps[keep - 1] : -1;
  free(steps);
  gn_diag_table *t[] = {&gd->eig, &gd->gmean, &gd->lmean, &gd->gsnr, &gd->lsnr};
  for (size_t i = 0; i < sizeof t / sizeof *t; ++i) CHECK(gn_diag_table_reload(c->par, c->run, t[i], keep));
  return GN_OK;
}
