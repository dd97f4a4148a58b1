/* ggn.c — the GGN in the manner of ViViT (Dangel et al.; docs/algorithm.md): G = V V^T with
 * V = J^T S / sqrt(N), its nonzero spectrum from the Gram matrix V^T V = S^T K S / N on the NTK,
 * and per-sample directional gradients gamma_nk and curvatures lambda_nk with their SNRs. The
 * damped Newton step built on them is the gn_vivit optimizer (src/optim/gn_vivit.c).
 *
 * Index (n, j) = n * cols + j runs over samples n and factor columns j (cols = C exact, or the
 * number of MC samples). With T = K blockdiag(S_m) (this rank's rows, (n_loc C) x (N cols)):
 *   Gram[(n,.), :] = S_n^T T[(n,.), :] / N,
 *   gamma_nk = e~_k . (r_n^T T[(n,.), :]) / sqrt(N lambda_k)   (K symmetric: S^T K_{.n} r_n),
 *   lambda_nk = N lambda_k |e~_k[n,.]|^2,
 * and the parameter-space eigenvectors e_k = J^T S e~_k / sqrt(N lambda_k) are only ever formed
 * as one weighted sum, by one backpropagation of the output cotangent S c.
 *
 * The Gram matrix (N cols square) stays row-split and goes through the distributed eigensolver
 * (symeig_scalapack.c, PDSYEVD); every rank receives the same eigenvalues and top-k eigenvectors,
 * so whatever is built on them (the ViViT step's bootstrap) is replicated without communication.
 * Cost per call: the NTK (ntk.c) plus O(n_loc C N cols (C + cols)) for T and the Gram rows,
 * O((N cols)^3 / P) for the eigensolver, and one backpropagation per mean gradient or step.
 * Memory per rank: the NTK rows, T and the Gram rows, and about 3 (N cols)^2 / P for the 2-D
 * copies and PDSYEVD workspace. */
#include "gnrev/curvature/ggn.h"

#include <cblas.h>
#include <limits.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gnrev/core/array.h"
#include "gnrev/core/blas.h"
#include "gnrev/core/rng.h"
#include "gnrev/core/shm.h"
#include "gnrev/curvature/ntk.h"
#include "gnrev/linalg/symeig.h"
#include "gnrev/model/loss.h"
#include "gnrev/core/real.h"

/* Gram eigenvalues at or below EIG_RTOL * lambda_max count as zero. A backward-stable solver
 * returns the eigenvalues of Gram + E with |E| ~ n eps |Gram| (Weyl), so anything under a few
 * thousand eps relative cannot be told from zero at the n = N cols <= a few thousand we solve;
 * structural zeros (CE's S_n has rank C - 1, so the Gram has at least N) land near 1e-16. In the
 * single-precision build everything scales with gn_real's eps (EIG_RTOL 5e-4). */
static const double EIG_RTOL = 1e-12 * (GN_REAL_EPS / DBL_EPSILON);



void gn_ggn_free(gn_ggn *g) {
  if (!g) return;
  free(g->eigenvalues);
  free(g->gamma);
  free(g->lambda);
  free(g->gamma_mean);
  free(g->lambda_mean);
  free(g->gamma_snr);
  free(g->lambda_snr);
  memset(g, 0, sizeof *g);
}

void gn_ggn_factors_free(gn_ggn_factors *f) {
  free(f->S);
  free(f->evecs);
  memset(f, 0, sizeof *f);
}

/* The factor of sample n (global index) from its logits l: exact columns from loss.c; MC columns
 * (e_yhat - p)/sqrt(M) with yhat ~ softmax(l) for CE, and N(0, I)/sqrt(M) for MSE (whose output
 * Hessian is I = E[s s^T]), drawn from GN_RNG_MC with sub = step at counters fixed by (n, j), so
 * the draw does not depend on the rank count. */
static void mc_factor(const gn_deck *deck, int64_t step, int64_t n, int C, int64_t M, const gn_real *l, gn_real *S) {
  const uint64_t seed = (uint64_t)deck->seed;
  const uint32_t sub = (uint32_t)step;
  const double scale = 1.0 / sqrt((double)M);
  if (deck->loss == GN_LOSS_MSE) {
    for (int c = 0; c < C; ++c)
      for (int64_t j = 0; j < M; ++j)
        S[c * M + j] = scale * gn_rng_normal(seed, GN_RNG_MC, sub, (uint64_t)((n * M + j) * C + c));
    return;
  }
  double mx = l[0], z = 0;
  for (int c = 1; c < C; ++c) mx = fmax(mx, l[c]);
  double p[C];
  for (int c = 0; c < C; ++c) z += (p[c] = exp(l[c] - mx));
  for (int c = 0; c < C; ++c) p[c] /= z;
  for (int64_t j = 0; j < M; ++j) {
    const double u = gn_rng_uniform(seed, GN_RNG_MC, sub, (uint64_t)(n * M + j));
    int yhat = C - 1;
    double cum = 0;
    for (int c = 0; c < C; ++c) {
      cum += p[c];
      if (u <= cum) {
        yhat = c;
        break;
      }
    }
    for (int c = 0; c < C; ++c) S[c * M + j] = scale * ((c == yhat ? 1.0 : 0.0) - p[c]);
  }
}

/* mean^2 / population variance (divided by N, the spread of these N samples, not an estimate
 * for unseen ones); a zero variance gives +inf for a nonzero mean and 0 for a zero mean. */
static void mean_snr(int64_t N, int64_t k, int64_t kk, const double *x, double *mean, double *snr) {
  double s = 0;
  for (int64_t n = 0; n < N; ++n) s += x[n * k + kk];
  const double mu = s / (double)N;
  double v = 0;
  for (int64_t n = 0; n < N; ++n) v += (x[n * k + kk] - mu) * (x[n * k + kk] - mu);
  v /= (double)N;
  *mean = mu;
  *snr = v > 0 ? mu * mu / v : (mu != 0 ? INFINITY : 0.0);
}

/* The whole analysis; extra (may be NULL) keeps S and the eigenvectors for a step built on them,
 * and want_overlap asks for the mean gradient (one backpropagation). */
static int analyse(const gn_par *par, const gn_model *model, const gn_deck *deck, const gn_real *theta,
                   int64_t n_local, int64_t N, const gn_real *X_local, const int32_t *y_local, int64_t step,
                   int want_overlap, gn_ggn *out, gn_ggn_factors *extra) {
  memset(out, 0, sizeof *out);
  const int C = model->C;
  const int mc = deck->ggn_mode == GN_GGN_MC;
  const int64_t cols = mc ? deck->ggn_mc_samples : C, d = model->d;
  if (N < 1 || cols < 1 || deck->ggn_top_k < 0 || N * cols > INT_MAX || N * C > INT_MAX)
    GN_FAIL(GN_EINPUT, "ggn: %lld samples with %lld loss-factor columns each (ggn_mode = '%s', "
            "ggn_mc_samples = %lld), ggn_top_k = %lld; expected N >= 1, columns >= 1, top_k >= 0 and "
            "a Gram matrix below 2^31 rows", (long long)N, (long long)cols, mc ? "mc" : "exact",
            (long long)deck->ggn_mc_samples, (long long)deck->ggn_top_k);
  int64_t row0, nrows;
  gn_par_rows(N, par->size, par->rank, &row0, &nrows);
  CHECK(gn_par_agree(par, nrows == n_local ? GN_OK : GN_RAISE(GN_EINTERNAL, "ggn: rank %d holds %lld "
                     "rows; the split of %lld samples gives it %lld", par->rank, (long long)n_local,
                     (long long)N, (long long)nrows)));
  if (model->nmax < 1)
    GN_FAIL(GN_EINTERNAL, "ggn: the model has no workspace; call gn_model_reserve first");
  const int64_t Ncols = N * cols, NC = N * C, SC = C * cols;
  int status = GN_OK;
  gn_ntk K = {0};
  MPI_Datatype row_s = MPI_DATATYPE_NULL, row_k = MPI_DATATYPE_NULL;
  gn_real *X = gn_alloc((size_t)(n_local * d)), *logits = gn_alloc((size_t)(n_local * C));
  gn_real *r = gn_alloc((size_t)(n_local * C)), *S = gn_alloc((size_t)(N * SC));
  gn_real *T = gn_alloc((size_t)(n_local * C * Ncols));
  gn_real *Gl = gn_alloc((size_t)(n_local * cols * Ncols));
  gn_real *eig = gn_alloc((size_t)Ncols), *evecs = NULL, *wv = gn_alloc((size_t)Ncols), *grad = NULL;
  gn_shm grad_mem = {.win = MPI_WIN_NULL};
  int *cnt = malloc(2 * (size_t)par->size * sizeof(int)), *dsp = cnt ? cnt + par->size : NULL;
  if (!X || !logits || !r || !S || !T || !Gl || !eig || !wv || !cnt)
    status = GN_RAISE(GN_ENOMEM, "ggn: out of memory for the %lld x %lld Gram matrix and its work arrays",
                      (long long)Ncols, (long long)Ncols);
  CHECK_GOTO(gn_par_agree(par, status));

  /* Logits, per-sample output gradients r_n and loss factors S_n of the local samples. */
  if (n_local > 0) memcpy(X, X_local, (size_t)(n_local * d) * sizeof(gn_real));
  for (int64_t i = 0; i < n_local; i += model->nmax) {
    const int64_t nc = n_local - i < model->nmax ? n_local - i : model->nmax;
    gn_model_forward(model, theta, nc, X + i * d, logits + i * C);
  }
  gn_loss_sample_grad(deck->loss, n_local, C, logits, y_local, r);
  if (!mc)
    gn_loss_hessian_factor(deck->loss, n_local, C, logits, S + row0 * SC);
  else
    for (int64_t i = 0; i < n_local; ++i)
      mc_factor(deck, step, row0 + i, C, cols, logits + i * C, S + (row0 + i) * SC);
  CHECK_MPI_GOTO(MPI_Type_contiguous(gn_int(SC), GN_MPI_REAL, &row_s));
  CHECK_MPI_GOTO(MPI_Type_commit(&row_s));
  gn_par_counts(N, par->size, 1, cnt, dsp);
  CHECK_MPI_GOTO(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, S, cnt, dsp, row_s, par->comm));

  /* T = K blockdiag(S_m), then this rank's Gram rows S_n^T T_n / N. */
  CHECK_GOTO(gn_ntk_compute(par, model, theta, N, X_local, &K));
  for (int64_t m = 0; m < N; ++m)
    gn_gemm(CblasNoTrans, CblasNoTrans, n_local * C, cols, C, 1.0, K.K + m * C, NC, S + m * SC, cols, 0.0,
         T + m * cols, Ncols);
  gn_ntk_free(&K);
  for (int64_t i = 0; i < n_local; ++i)
    gn_gemm(CblasTrans, CblasNoTrans, cols, Ncols, C, 1.0 / (double)N, S + (row0 + i) * SC, cols,
         T + i * C * Ncols, Ncols, 0.0, Gl + i * cols * Ncols, Ncols);

  /* The Gram stays row-split: the distributed eigensolver gives every rank the eigenvalues and
   * the top-k eigenvectors (sign fixed there, which keeps gamma's sign across rank counts). */
  const int64_t kmax = deck->ggn_top_k < Ncols ? deck->ggn_top_k : Ncols;
  evecs = gn_alloc((size_t)(kmax * Ncols));
  CHECK_GOTO(gn_par_agree(par, evecs ? GN_OK : GN_RAISE(GN_ENOMEM, "ggn: out of memory for %lld Gram "
                                                        "eigenvectors", (long long)kmax)));
  const int64_t block = gn_par_rows(N, par->size, par->rank, NULL, NULL) * cols;
  CHECK_GOTO(gn_symeig_rows(par, Ncols, block, Gl, eig, kmax, evecs, "the GGN Gram matrix"));
  /* Nonzero eigenvalues: those above EIG_RTOL times the largest. */
  int64_t n_eig = 0;
  while (n_eig < Ncols && eig[0] > 0 && eig[n_eig] > EIG_RTOL * eig[0]) ++n_eig;
  const int64_t k = kmax < n_eig ? kmax : n_eig;

  out->N = N;
  out->n_eig = n_eig;
  out->k = k;
  out->eigenvalues = gn_alloc_f64((size_t)n_eig);
  out->gamma = gn_alloc_f64((size_t)(N * k));
  out->lambda = gn_alloc_f64((size_t)(N * k));
  out->gamma_mean = gn_alloc_f64((size_t)k);
  out->lambda_mean = gn_alloc_f64((size_t)k);
  out->gamma_snr = gn_alloc_f64((size_t)k);
  out->lambda_snr = gn_alloc_f64((size_t)k);
  status = out->eigenvalues && out->gamma && out->lambda && out->gamma_mean && out->lambda_mean &&
                   out->gamma_snr && out->lambda_snr
               ? GN_OK
               : GN_RAISE(GN_ENOMEM, "ggn: out of memory for the per-sample directional derivatives "
                          "(%lld samples x %lld directions)", (long long)N, (long long)k);
  CHECK_GOTO(gn_par_agree(par, status));
  for (int64_t i = 0; i < n_eig; ++i) out->eigenvalues[i] = eig[i];

  /* gamma_nk for the local samples: r_n^T T_n is S^T K_{.n} r_n. */
  for (int64_t i = 0; i < n_local; ++i) {
    gn_gemm(CblasNoTrans, CblasNoTrans, 1, Ncols, C, 1.0, r + i * C, C, T + i * C * Ncols, Ncols, 0.0, wv, Ncols);
    for (int64_t kk = 0; kk < k; ++kk)
      out->gamma[(row0 + i) * k + kk] =
          gn_cblas_dot(gn_int(Ncols), evecs + kk * Ncols, 1, wv, 1) / sqrt((double)N * eig[kk]);
  }
  if (k > 0) {
    CHECK_MPI_GOTO(MPI_Type_contiguous(gn_int(k), MPI_DOUBLE, &row_k));
    CHECK_MPI_GOTO(MPI_Type_commit(&row_k));
    CHECK_MPI_GOTO(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, out->gamma, cnt, dsp, row_k, par->comm));
  }
  for (int64_t n = 0; n < N; ++n)
    for (int64_t kk = 0; kk < k; ++kk) {
      const gn_real *e = evecs + kk * Ncols + n * cols;
      double s2 = 0;
      for (int64_t j = 0; j < cols; ++j) s2 += e[j] * e[j];
      out->lambda[n * k + kk] = (double)N * eig[kk] * s2;
    }
  for (int64_t kk = 0; kk < k; ++kk) {
    mean_snr(N, k, kk, out->gamma, &out->gamma_mean[kk], &out->gamma_snr[kk]);
    mean_snr(N, k, kk, out->lambda, &out->lambda_mean[kk], &out->lambda_snr[kk]);
  }

  if (want_overlap) {
    /* grad L = J^T r / N by backpropagation, independent of the Gram route. */
    CHECK_GOTO(gn_par_agree(par, gn_shm_alloc(par, model->nparams * sizeof(gn_real), "the gradient", &grad_mem)));
    grad = grad_mem.base;
    for (int64_t i = 0; i < n_local * C; ++i) r[i] /= (double)N;
    CHECK_GOTO(gn_ntk_jt_apply(par, model, theta, n_local, X_local, r, grad));
    const double g2 = gn_cblas_dot(gn_int((int64_t)model->nparams), grad, 1, grad, 1);
    grad = NULL;
    double top = 0;
    for (int64_t kk = 0; kk < k; ++kk) top += out->gamma_mean[kk] * out->gamma_mean[kk];
    out->grad_overlap = g2 > 0 ? top / g2 : 0.0;
  }
  if (extra) {
    extra->cols = cols;
    extra->row0 = row0;
    extra->S = S;
    extra->evecs = evecs;
    S = evecs = NULL;
  }
fail:
  if (row_s != MPI_DATATYPE_NULL) MPI_Type_free(&row_s);
  if (row_k != MPI_DATATYPE_NULL) MPI_Type_free(&row_k);
  gn_ntk_free(&K);
  free(X);
  free(logits);
  free(r);
  free(S);
  free(T);
  free(Gl);
  free(eig);
  free(evecs);
  free(wv);
  gn_shm_free(&grad_mem);
  free(cnt);
  if (status != GN_OK) gn_ggn_free(out);
  return status;
}

int gn_ggn_compute(const gn_par *par, const gn_model *model, const gn_deck *deck, const gn_real *theta,
                   int64_t n_local, int64_t N, const gn_real *X_local, const int32_t *y_local,
                   int64_t step, gn_ggn *out) {
  return analyse(par, model, deck, theta, n_local, N, X_local, y_local, step, 1, out, NULL);
}

int gn_ggn_compute_factors(const gn_par *par, const gn_model *model, const gn_deck *deck, const gn_real *theta,
                           int64_t n_local, int64_t N, const gn_real *X_local, const int32_t *y_local,
                           int64_t step, gn_ggn *out, gn_ggn_factors *factors) {
  return analyse(par, model, deck, theta, n_local, N, X_local, y_local, step, 0, out, factors);
}
