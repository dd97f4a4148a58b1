/* ntk.c — the empirical NTK on the logits from the per-half-block structure (docs/algorithm.md),
 * its spectrum, its drift against a baseline, and J^T w for raising output-space vectors to
 * parameter space (the Moore-Penrose and ViViT steps of src/optim use both).
 *
 * K = J J^T splits over half-blocks: the parameters Theta of half-block (b, s) enter logit
 * (i, a) only through A_i Theta, so dlogit_ia/dTheta = A_i^T g_ia with g_ia = dlogit_ia/dy (y the
 * half-block's output) and K_bs[(i,a),(j,c)] = (A_i . A_j)(g_ia . g_jc). One walk down the net
 * (the inverse recomputes each block's input, as in gn_model_backward) carries C cotangents at
 * once, stored class-interleaved (row i*C + a of an (n*C) x d matrix) so that class a's rows are
 * a strided view (leading dimension C*d) the model's VJP kernels take as they are, and so that
 * the g rows of a half-block are already in K's (i, a) order. At each half-block the A rows and g
 * rows of all p samples are allgathered (probe sets are small) and two local GEMMs give this
 * rank's rows of K.
 *
 * Cost per half-block and rank (n = local samples): C VJPs O(C n m h), features O(n m h),
 * allgather p (hp + C m) doubles, GEMMs O(n p hp + n C p C m). Memory per rank: K n C x p C,
 * the g Gram of the same size, the cotangents n C d, gathered A p hp and g p C m.
 *
 * The spectrum goes through the distributed eigensolver (symeig_scalapack.c). */
#include "gnrev/curvature/ntk.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gnrev/core/array.h"
#include "gnrev/core/blas.h"
#include "gnrev/core/rng.h"
#include "gnrev/core/shm.h"
#include "gnrev/model/backprop.h"
#include "gnrev/linalg/symeig.h"
#include "gnrev/core/real.h"

/* The model kernels hold at most model->nmax rows: rows are independent, so walk in chunks. */
static int64_t chunk_rows(const gn_model *md) { return md->nmax; }

static int need_workspace(const gn_model *md) {
  if (md->nmax < 1)
    GN_FAIL(GN_EINTERNAL, "ntk: the model has no workspace (nmax = %lld); call gn_model_reserve "
            "first", (long long)md->nmax);
  return GN_OK;
}

/* X (n x d) -> X_B in place, chunk by chunk; logits (n x C) too unless NULL. */
static void forward_rows(const gn_model *md, const gn_real *theta, int64_t n, gn_real *X, gn_real *logits) {
  const int64_t ch = chunk_rows(md);
  for (int64_t r = 0; r < n; r += ch) {
    const int64_t nc = n - r < ch ? n - r : ch;
    gn_model_forward(md, theta, nc, X + r * md->d, logits ? logits + r * md->C : NULL);
  }
}

void gn_ntk_free(gn_ntk *K) {
  if (!K) return;
  free(K->K);
  free(K->half_trace);
  memset(K, 0, sizeof *K);
}

/* Working set of gn_ntk_compute. */
typedef struct {
  const gn_par *par;
  const gn_model *md;
  int64_t p, row0, nrows;
  int C;
  gn_real *X;      /* nrows x d: the state, walked down from X_B */
  gn_real *dX;     /* (nrows C) x d: cotangents, row i*C + a for output unit a of sample i */
  gn_real *Aall;   /* p x hp: features of every sample at the current half-block */
  gn_real *Gall;   /* (p C) x m: cotangents wrt the half-block output, all samples */
  gn_real *Ga;     /* nrows x p: A_loc A_all^T */
  gn_real *Gg;     /* (nrows C) x (p C): G_loc G_all^T */
  int *cnt, *dsp; /* 2 x size: allgather counts and displacements (rows) */
  double *half_trace; /* 2B: this rank's share of each half-block term's trace */
  MPI_Datatype row_hp, row_m;
} walk;

/* Adds half-block (b, s)'s term to K: z (ld d) is its input, the cotangent wrt its output sits in
 * dX at column offset `off`. Collective. */
static int add_half_block(walk *w, int b, int s, const gn_real *z, int64_t off, gn_real *K) {
  const gn_model *md = w->md;
  const int64_t p = w->p, n = w->nrows, hp = md->hp, m = md->m, d = md->d, C = w->C, pC = p * C;
  int status = GN_OK;
  gn_model_features(md, b, s, n, z, d, w->Aall + w->row0 * hp);
  gn_real *Gloc = w->Gall + w->row0 * C * m;
  for (int64_t r = 0; r < n * C; ++r) memcpy(Gloc + r * m, w->dX + r * d + off, (size_t)m * sizeof(gn_real));
  const int P = w->par->size;
  gn_par_counts(p, P, 1, w->cnt, w->dsp);
  CHECK_MPI_GOTO(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, w->Aall, w->cnt, w->dsp, w->row_hp,
                          w->par->comm));
  gn_par_counts(p, P, C, w->cnt, w->dsp);
  CHECK_MPI_GOTO(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, w->Gall, w->cnt, w->dsp, w->row_m,
                          w->par->comm));
  gn_gemm(CblasNoTrans, CblasTrans, n, p, hp, 1.0, w->Aall + w->row0 * hp, hp, w->Aall, hp, 0.0, w->Ga, p);
  gn_gemm(CblasNoTrans, CblasTrans, n * C, pC, m, 1.0, Gloc, m, w->Gall, m, 0.0, w->Gg, pC);
  double tr = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t a = 0; a < C; ++a) {
      const gn_real *ga = w->Gg + (i * C + a) * pC, *aa = w->Ga + i * p;
      gn_real *k = K + (i * C + a) * pC;
      for (int64_t j = 0; j < p; ++j)
        for (int64_t c = 0; c < C; ++c) k[j * C + c] += aa[j] * ga[j * C + c];
      tr += aa[w->row0 + i] * ga[(w->row0 + i) * C + a];
    }
  w->half_trace[2 * b + s] = tr;
fail:
  return status;
}

/* Inverts half-block (b, s) of the state (target -= F(z)) and pulls every class's cotangent
 * through it (gz += J^T g), chunk by chunk. z, target and the cotangent columns are offsets into
 * the rows of X (ld d) and dX (ld C d). */
static void invert_and_pull(walk *w, const gn_real *theta, int b, int s, int64_t zoff, int64_t toff) {
  const gn_model *md = w->md;
  const int64_t d = md->d, C = w->C, ch = chunk_rows(md);
  for (int64_t r = 0; r < w->nrows; r += ch) {
    const int64_t nc = w->nrows - r < ch ? w->nrows - r : ch;
    gn_real *Xr = w->X + r * d;
    /* The VJP is taken at z, which the inversion leaves alone (it writes the other half). */
    for (int64_t a = 0; a < C; ++a) {
      gn_real *G = w->dX + (r * C + a) * d;
      gn_model_half_vjp(md, theta, b, s, nc, Xr + zoff, d, G + toff, C * d, G + zoff, C * d, NULL);
    }
    gn_model_half_forward(md, theta, b, s, nc, Xr + zoff, d, -1.0, Xr + toff, d);
  }
}

int gn_ntk_compute(const gn_par *par, const gn_model *model, const gn_real *theta, int64_t p,
                   const gn_real *X_local, gn_ntk *K) {
  memset(K, 0, sizeof *K);
  if (p < 1 || p * model->C > INT_MAX)
    GN_FAIL(GN_EINPUT, "ntk: %lld probe samples x %d classes; expected 1 <= p C <= %d", (long long)p,
            model->C, INT_MAX);
  CHECK(need_workspace(model));
  walk w = {.par = par, .md = model, .p = p, .C = model->C, .row_hp = MPI_DATATYPE_NULL,
            .row_m = MPI_DATATYPE_NULL};
  gn_par_rows(p, par->size, par->rank, &w.row0, &w.nrows);
  const int64_t n = w.nrows, d = model->d, m = model->m, hp = model->hp, C = model->C, pC = p * C;
  int status = GN_OK;
  K->p = p;
  K->C = model->C;
  K->row0 = w.row0;
  K->nrows = n;
  K->K = calloc((size_t)(n * C * pC > 0 ? n * C * pC : 1), sizeof(gn_real));
  K->nhalf = 2 * model->B;
  K->half_trace = w.half_trace = calloc((size_t)K->nhalf, sizeof(double));
  w.X = gn_alloc((size_t)(n * d));
  w.dX = gn_alloc((size_t)(n * C * d));
  w.Aall = gn_alloc((size_t)(p * hp));
  w.Gall = gn_alloc((size_t)(pC * m));
  w.Ga = gn_alloc((size_t)(n * p));
  w.Gg = gn_alloc((size_t)(n * C * pC));
  w.cnt = malloc(2 * (size_t)par->size * sizeof(int));
  if (w.cnt) w.dsp = w.cnt + par->size;
  if (!K->K || !K->half_trace || !w.X || !w.dX || !w.Aall || !w.Gall || !w.Ga || !w.Gg || !w.cnt)
    status = GN_RAISE(GN_ENOMEM, "ntk: out of memory for the %lld x %lld rows of the NTK on this rank "
                      "and its work arrays (p = %lld samples)", (long long)(n * C), (long long)pC,
                      (long long)p);
  CHECK_GOTO(gn_par_agree(par, status));
  CHECK_MPI_GOTO(MPI_Type_contiguous(gn_int(hp), GN_MPI_REAL, &w.row_hp));
  CHECK_MPI_GOTO(MPI_Type_commit(&w.row_hp));
  CHECK_MPI_GOTO(MPI_Type_contiguous(gn_int(m), GN_MPI_REAL, &w.row_m));
  CHECK_MPI_GOTO(MPI_Type_commit(&w.row_m));

  if (n > 0) memcpy(w.X, X_local, (size_t)(n * d) * sizeof(gn_real));
  forward_rows(model, theta, n, w.X, NULL);
  /* Cotangent e_a at the logits is e_a U^T = row a of U^T on the state. */
  for (int64_t i = 0; i < n; ++i)
    for (int64_t a = 0; a < C; ++a)
      for (int64_t k = 0; k < d; ++k) w.dX[(i * C + a) * d + k] = model->U[k * C + a];
  for (int b = model->B - 1; b >= 0; --b) {
    /* G: output y2 (cotangent dX[:, m:]), input y1. Then F: output y1, whose cotangent now
     * includes the path through G, input x2. */
    CHECK_GOTO(add_half_block(&w, b, 1, w.X, m, K->K));
    invert_and_pull(&w, theta, b, 1, 0, m);
    CHECK_GOTO(add_half_block(&w, b, 0, w.X + m, 0, K->K));
    if (b > 0) invert_and_pull(&w, theta, b, 0, m, 0);
  }
  CHECK_GOTO(gn_par_sum(par, K->half_trace, (size_t)K->nhalf));
  status = gn_all_finite(K->K, (size_t)(n * C * pC))
               ? GN_OK
               : GN_RAISE(GN_ENUMERIC, "ntk: the NTK has a non-finite entry on rank %d: the "
                          "parameters or the probe inputs hold inf or NaN", par->rank);
  CHECK_GOTO(gn_par_agree(par, status));
fail:
  if (w.row_hp != MPI_DATATYPE_NULL) MPI_Type_free(&w.row_hp);
  if (w.row_m != MPI_DATATYPE_NULL) MPI_Type_free(&w.row_m);
  free(w.X);
  free(w.dX);
  free(w.Aall);
  free(w.Gall);
  free(w.Ga);
  free(w.Gg);
  free(w.cnt);
  if (status != GN_OK) gn_ntk_free(K);
  return status;
}

/* The spectrum through the distributed eigensolver: K's rows are split in blocks of C ceil(p/P). */
int gn_ntk_eigenvalues(const gn_par *par, const gn_ntk *K, int64_t k, double *top) {
  const int64_t N = K->p * K->C;
  if (k < 1 || k > N)
    GN_FAIL(GN_EINPUT, "ntk: asked for the %lld largest eigenvalues of the %lld x %lld NTK; expected "
            "1 <= k <= %lld", (long long)k, (long long)N, (long long)N, (long long)N);
  gn_real *w = gn_alloc((size_t)N);
  CHECK(gn_par_agree(par, w ? GN_OK : GN_RAISE(GN_ENOMEM, "ntk: out of memory for %lld eigenvalues",
                                               (long long)N)));
  const int64_t block = gn_par_rows(K->p, par->size, par->rank, NULL, NULL) * K->C;
  const int status = gn_symeig_rows(par, N, block, K->K, w, 0, NULL, "the NTK");
  for (int64_t i = 0; status == GN_OK && i < k; ++i) top[i] = w[i];
  free(w);
  CHECK(status);
  return GN_OK;
}

int gn_ntk_compare(const gn_par *par, const gn_ntk *K0, const gn_ntk *K, uint64_t seed,
                   gn_ntk_change *out) {
  if (K0->p != K->p || K0->C != K->C || K0->row0 != K->row0 || K0->nrows != K->nrows)
    GN_FAIL(GN_EINTERNAL, "ntk: comparing an NTK of %lld samples x %d classes with a baseline of %lld "
            "x %d (or split differently); expected the same probe set", (long long)K->p, K->C,
            (long long)K0->p, K0->C);
  const int64_t N = K->p * K->C, rows = K->nrows * K->C;
  gn_real *v = gn_alloc((size_t)N);
  CHECK(gn_par_agree(par, v ? GN_OK : GN_RAISE(GN_ENOMEM, "ntk: out of memory for a probe vector")));
  gn_rng_fill_normal_real(seed, GN_RNG_PROBE, 0, 0, (size_t)N, 1.0, v);
  /* s = [|K - K0|^2, |K0|^2, (K0 v).(K v), |K0 v|^2, |K v|^2, <K0, K>, |K|^2] summed over the
   * rows of all ranks. */
  double s[7] = {0, 0, 0, 0, 0, 0, 0};
  for (int64_t r = 0; r < rows; ++r) {
    const gn_real *a = K0->K + r * N, *b = K->K + r * N;
    double u0 = 0, u = 0;
    for (int64_t j = 0; j < N; ++j) {
      const double dj = b[j] - a[j];
      s[0] += dj * dj;
      s[1] += a[j] * a[j];
      s[5] += a[j] * b[j];
      s[6] += b[j] * b[j];
      u0 += a[j] * v[j];
      u += b[j] * v[j];
    }
    s[2] += u0 * u;
    s[3] += u0 * u0;
    s[4] += u * u;
  }
  free(v);
  CHECK(gn_par_sum(par, s, 7));
  if (!(s[1] > 0) || !(s[6] > 0) || !(s[3] > 0) || !(s[4] > 0) || !isfinite(s[0] + s[2] + s[5]))
    GN_FAIL(GN_ENUMERIC, "ntk: cannot compare kernels: |K0|_F^2 = %g, |K|_F^2 = %g, |K0 v|^2 = %g, "
            "|K v|^2 = %g; expected finite, nonzero kernels", s[1], s[6], s[3], s[4]);
  out->rel_change = sqrt(s[0] / s[1]);
  out->similarity = s[2] / (sqrt(s[3]) * sqrt(s[4]));
  out->alignment = s[5] / (sqrt(s[1]) * sqrt(s[6]));
  out->scale = sqrt(s[6] / s[1]);
  out->growth = sqrt(s[4] / s[3]);
  return GN_OK;
}

int gn_ntk_jt_apply(const gn_par *par, const gn_model *model, const gn_real *theta, int64_t n_local,
                    const gn_real *X_local, const gn_real *w_local, gn_real *delta) {
  CHECK(need_workspace(model));
  const int64_t d = model->d;
  gn_real *X = gn_alloc((size_t)(n_local * d)), *dX = gn_alloc((size_t)(n_local * d));
  gn_real *half = gn_alloc((size_t)model->hp * (size_t)model->m);
  int status = gn_par_agree(par, X && dX && half ? GN_OK : GN_RAISE(GN_ENOMEM, "ntk: out of memory for %lld "
                                                                    "rows of state and cotangent", (long long)n_local));
  if (status == GN_OK) {
    if (n_local > 0) memcpy(X, X_local, (size_t)(n_local * d) * sizeof(gn_real));
    forward_rows(model, theta, n_local, X, NULL);
    gn_gemm(CblasNoTrans, CblasTrans, n_local, d, model->C, 1.0, w_local, model->C, model->U, model->C, 0.0, dX, d);
    status = gn_backprop_sum(par, model, theta, n_local, X, dX, delta, half);
  }
  free(X);
  free(dX);
  free(half);
  CHECK(status);
  size_t lo, hi;
  gn_shm_slice(par, model->nparams, sizeof(gn_real), &lo, &hi);
  return gn_par_agree(par, gn_all_finite(delta + lo, hi - lo) ? GN_OK : GN_RAISE(GN_ENUMERIC,
                      "ntk: J^T w has a non-finite entry: the output cotangent holds inf or NaN"));
}

/* Local. T (n x d) = J dtheta: the forward-mode tangent of the state X_B along a parameter
 * direction, for rows X (n x d, the network's input, overwritten by X_B). A half-block is linear in
 * its Theta, so its parameter tangent is the half-block itself evaluated with dtheta as
 * parameters; its input tangent is the JVP. out (n x m) is scratch. */
static void jvp_params(const gn_model *md, const gn_real *theta, const gn_real *dtheta, int64_t n, gn_real *X,
                       gn_real *T, gn_real *out) {
  const int64_t d = md->d, m = md->m;
  memset(T, 0, (size_t)(n * d) * sizeof(gn_real));
  for (int b = 0; b < md->B; ++b) {
    /* y1 = x1 + F(x2): t1 += J_F(x2)[t2] + A_F(x2) dTheta_F. */
    gn_model_half_jvp(md, theta, b, 0, n, X + m, d, T + m, d, out, m);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j) T[i * d + j] += out[i * m + j];
    gn_model_half_forward(md, dtheta, b, 0, n, X + m, d, 1.0, T, d);
    gn_model_half_forward(md, theta, b, 0, n, X + m, d, 1.0, X, d);
    /* y2 = x2 + G(y1): t2 += J_G(y1)[t1] + A_G(y1) dTheta_G. */
    gn_model_half_jvp(md, theta, b, 1, n, X, d, T, d, out, m);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j) T[i * d + m + j] += out[i * m + j];
    gn_model_half_forward(md, dtheta, b, 1, n, X, d, 1.0, T + m, d);
    gn_model_half_forward(md, theta, b, 1, n, X, d, 1.0, X + m, d);
  }
}

int gn_ntk_output_kv(const gn_par *par, const gn_model *model, const gn_real *theta, int64_t nrows,
                     const gn_real *X_local, const gn_real *v_local, gn_real *g, gn_real *Kv_local) {
  CHECK(need_workspace(model));
  const int64_t d = model->d, ch = chunk_rows(model);
  gn_real *X = gn_alloc((size_t)(nrows * d)), *dX = gn_alloc((size_t)(nrows * d));
  gn_real *half = gn_alloc((size_t)model->hp * (size_t)model->m), *out = gn_alloc((size_t)(ch * model->m));
  int status = gn_par_agree(par, X && dX && half && out ? GN_OK : GN_RAISE(GN_ENOMEM, "ntk: out of memory for "
                                                                           "%lld probe rows", (long long)nrows));
  if (status == GN_OK) {
    /* g = J^T v: v is a cotangent of the state X_B. */
    if (nrows > 0) {
      memcpy(X, X_local, (size_t)(nrows * d) * sizeof(gn_real));
      memcpy(dX, v_local, (size_t)(nrows * d) * sizeof(gn_real));
    }
    forward_rows(model, theta, nrows, X, NULL);
    status = gn_backprop_sum(par, model, theta, nrows, X, dX, g, half);
  }
  if (status == GN_OK) {
    /* K v = J g, row chunk by row chunk. */
    if (nrows > 0) memcpy(X, X_local, (size_t)(nrows * d) * sizeof(gn_real));
    for (int64_t r = 0; r < nrows; r += ch) {
      const int64_t k = nrows - r < ch ? nrows - r : ch;
      jvp_params(model, theta, g, k, X + r * d, Kv_local + r * d, out);
    }
    status = gn_par_agree(par, gn_all_finite(Kv_local, (size_t)(nrows * d))
                                   ? GN_OK
                                   : GN_RAISE(GN_ENUMERIC, "ntk: K v in output space has a non-finite entry: the "
                                              "parameters or the probe inputs hold inf or NaN"));
  }
  free(X);
  free(dX);
  free(half);
  free(out);
  return status;
}
