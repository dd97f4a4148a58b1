/* test_pinv.c — the distributed pseudo-inverse against serial LAPACK on rank 0.
 *
 * Every rank count builds the same global A (n x hp) and T (n x m) from gn_rng and takes its
 * gn_par_rows rows, so agreement with the one serial reference (DGESDD of the whole A, the same
 * truncation) also means agreement across rank counts. Tolerances come from the conditioning of
 * the kept part: the Gram route squares it, so its error is about eps kappa^2 with
 * kappa = sigma_max / sigma_min_kept (for damped, kappa^2 = (1 + damping) / damping); we allow a
 * dimension factor of 10 sqrt(n) on top.
 *
 * A, T and the results are gn_real (real.h); the serial references run in double on double copies of
 * the gn_real A and T the library was given, and the residual checks are formed in double. Rounding
 * tolerances go through gt_tol (testlib.h); the bit-identity checks stay exact. */
// NP: 1 2 3 4
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gnrev/core/par.h"
#include "gnrev/linalg/pinv.h"
#include "gnrev/core/rng.h"
#include "gnrev/linalg/scalapack.h" /* serial DGESDD and DSYEVD for the references */
#include "testlib.h"
#include "testshm.h"

enum { SEED = 20240917 };

typedef enum {
  GAUSS,     /* i.i.d. normal: full rank, well conditioned */
  DUP_ROWS,  /* rows repeat with period ceil(2n/3): row rank deficient */
  LOW_RANK,  /* B C with inner width 6: rank 6 in both directions */
  GRADED     /* row i scaled by 10^(-decades i / n): the truncation cuts through the spectrum */
} structure;

static const char *structure_name[] = {"gaussian", "duplicate-rows", "low-rank", "graded"};
static const char *kind_name[] = {"gram", "svd", "damped"};

typedef struct {
  int64_t n, hp, m;
  structure st;
  uint32_t sub;  /* rng sub-stream of this case */
  double decades; /* GRADED: the row scales span 10^decades */
} problem;

static double entry_A(const problem *pb, int64_t i, int64_t j) {
  switch (pb->st) {
    case DUP_ROWS: {
      int64_t uniq = (2 * pb->n + 2) / 3;
      return gn_rng_normal(SEED, GN_RNG_TEST, pb->sub, (uint64_t)((i % uniq) * pb->hp + j));
    }
    case LOW_RANK: {
      double s = 0;
      for (int k = 0; k < 6; ++k)
        s += gn_rng_normal(SEED, GN_RNG_TEST, pb->sub, (uint64_t)(i * 6 + k)) *
             gn_rng_normal(SEED, GN_RNG_TEST, pb->sub + 1000, (uint64_t)(k * pb->hp + j));
      return s;
    }
    case GRADED:
      return pow(10.0, -pb->decades * (double)i / (double)pb->n) *
             gn_rng_normal(SEED, GN_RNG_TEST, pb->sub, (uint64_t)(i * pb->hp + j));
    default:
      return gn_rng_normal(SEED, GN_RNG_TEST, pb->sub, (uint64_t)(i * pb->hp + j));
  }
}

static double entry_T(const problem *pb, int64_t i, int64_t j) {
  return gn_rng_normal(SEED, GN_RNG_TEST, pb->sub + 2000, (uint64_t)(i * pb->m + j));
}

/* Rows [row0, row0 + nrows) of A and T, row-major, each entry rounded to gn_real. */
static void build(const problem *pb, int64_t row0, int64_t nrows, gn_real *A, gn_real *T) {
  for (int64_t i = 0; i < nrows; ++i) {
    for (int64_t j = 0; j < pb->hp; ++j) A[i * pb->hp + j] = (gn_real)entry_A(pb, row0 + i, j);
    for (int64_t j = 0; j < pb->m; ++j) T[i * pb->m + j] = (gn_real)entry_T(pb, row0 + i, j);
  }
}

typedef struct {
  int64_t kept;
  double sigma_max, sigma_min_kept;
  double gap;    /* min over i of |sigma_i - threshold| / threshold: the kept count is well posed */
  double kappa2; /* squared condition number of what the pseudo-inverse inverts */
} ref_info;

/* Serial Moore-Penrose reference with truncation: dtheta = V_k S_k^-1 U_k^T T from DGESDD. */
static int ref_pinv(const problem *pb, const gn_pinv_opts *o, const double *A, const double *T,
                    double *dtheta, ref_info *ri) {
  int hp = (int)pb->hp, n = (int)pb->n, m = (int)pb->m, mn = n < hp ? n : hp, info = 0;
  /* Row-major A is column-major A^T (hp x n): A^T = U1 S V1^T, so A^+ = U1 S^-1 V1^T. */
  double *a = malloc(sizeof(double) * (size_t)hp * n), *s = malloc(sizeof(double) * mn);
  double *u = malloc(sizeof(double) * (size_t)hp * mn), *vt = malloc(sizeof(double) * (size_t)mn * n);
  int *iwork = malloc(sizeof(int) * 8 * (size_t)mn);
  memcpy(a, A, sizeof(double) * (size_t)hp * n);
  int lwork = -1;
  double q;
  dgesdd_("S", &hp, &n, a, &hp, s, u, &hp, vt, &mn, &q, &lwork, iwork, &info, 1);
  lwork = (int)q + 1;
  double *work = malloc(sizeof(double) * (size_t)lwork);
  dgesdd_("S", &hp, &n, a, &hp, s, u, &hp, vt, &mn, work, &lwork, iwork, &info, 1);
  double thr = fmax(o->rtol * s[0], o->atol);
  ri->kept = 0;
  ri->sigma_max = s[0];
  ri->sigma_min_kept = 0;
  ri->gap = INFINITY;
  double *tmp = calloc((size_t)mn * m, sizeof(double));
  for (int k = 0; k < mn; ++k) {
    ri->gap = fmin(ri->gap, fabs(s[k] - thr) / thr);
    if (!(s[k] >= thr && s[k] > 0)) continue;
    ++ri->kept;
    ri->sigma_min_kept = s[k];
    for (int j = 0; j < m; ++j) {
      double acc = 0;
      for (int i = 0; i < n; ++i) acc += vt[k + (size_t)i * mn] * T[(size_t)i * m + j];
      tmp[(size_t)k * m + j] = acc / s[k];
    }
  }
  for (int r = 0; r < hp; ++r)
    for (int j = 0; j < m; ++j) {
      double acc = 0;
      for (int k = 0; k < mn; ++k) acc += u[r + (size_t)k * hp] * tmp[(size_t)k * m + j];
      dtheta[(size_t)r * m + j] = acc;
    }
  double kappa = ri->kept ? ri->sigma_max / ri->sigma_min_kept : 1;
  ri->kappa2 = kappa * kappa;
  free(a), free(s), free(u), free(vt), free(iwork), free(work), free(tmp);
  return info;
}

/* Serial damped reference: dtheta = A^T V diag(1 / (mu + damping mu_max)) V^T T from DSYEVD of
 * K = A A^T formed by plain loops. */
static int ref_damped(const problem *pb, double damping, const double *A, const double *T,
                      double *dtheta, ref_info *ri) {
  int hp = (int)pb->hp, n = (int)pb->n, m = (int)pb->m, info = 0;
  double *K = malloc(sizeof(double) * (size_t)n * n), *mu = malloc(sizeof(double) * n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      double acc = 0;
      for (int a = 0; a < hp; ++a) acc += A[(size_t)i * hp + a] * A[(size_t)j * hp + a];
      K[(size_t)i * n + j] = acc;
    }
  int lwork = -1, liwork = -1, iq;
  double q;
  dsyevd_("V", "U", &n, K, &n, mu, &q, &lwork, &iq, &liwork, &info, 1, 1);
  lwork = (int)q + 1;
  liwork = iq + 1;
  double *work = malloc(sizeof(double) * (size_t)lwork);
  int *iwork = malloc(sizeof(int) * (size_t)liwork);
  dsyevd_("V", "U", &n, K, &n, mu, work, &lwork, iwork, &liwork, &info, 1, 1);
  double mu_max = mu[n - 1];
  double *w = calloc((size_t)n * m, sizeof(double)), *z = calloc((size_t)n * m, sizeof(double));
  for (int k = 0; k < n; ++k)  /* w = diag(1/(mu + d mu_max)) V^T T; column k of V is K[k*n..] */
    for (int j = 0; j < m; ++j) {
      double acc = 0;
      for (int i = 0; i < n; ++i) acc += K[(size_t)k * n + i] * T[(size_t)i * m + j];
      w[(size_t)k * m + j] = acc / (mu[k] + damping * mu_max);
    }
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < m; ++j) {
      double acc = 0;
      for (int k = 0; k < n; ++k) acc += K[(size_t)k * n + i] * w[(size_t)k * m + j];
      z[(size_t)i * m + j] = acc;
    }
  for (int a = 0; a < hp; ++a)
    for (int j = 0; j < m; ++j) {
      double acc = 0;
      for (int i = 0; i < n; ++i) acc += A[(size_t)i * hp + a] * z[(size_t)i * m + j];
      dtheta[(size_t)a * m + j] = acc;
    }
  /* Every eigenpair is used; A has min(n, hp) of them that are not zero by construction. */
  int mn = n < hp ? n : hp;
  ri->kept = mn;
  ri->sigma_max = sqrt(mu_max);
  ri->sigma_min_kept = sqrt(fmax(mu[n - mn], 0));
  ri->gap = INFINITY;
  ri->kappa2 = (1 + damping) / damping;
  free(K), free(mu), free(work), free(iwork), free(w), free(z);
  return info;
}

/* Global relative 2-norm difference of distributed pieces. */
static double global_rel_diff(const double *a, const double *b, size_t len) {
  double s[2] = {0, 0};
  for (size_t i = 0; i < len; ++i) {
    s[0] += (a[i] - b[i]) * (a[i] - b[i]);
    s[1] += b[i] * b[i];
  }
  MPI_Allreduce(MPI_IN_PLACE, s, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  return sqrt(s[0]) / (s[1] > 0 ? sqrt(s[1]) : 1e-300);
}

/* local = A_local x (nrows x m), in double */
static void local_times(const problem *pb, int64_t nrows, const gn_real *A, const gn_real *x,
                        double *out) {
  for (int64_t i = 0; i < nrows; ++i)
    for (int64_t j = 0; j < pb->m; ++j) {
      double acc = 0;
      for (int64_t a = 0; a < pb->hp; ++a) acc += (double)A[i * pb->hp + a] * x[a * pb->m + j];
      out[i * pb->m + j] = acc;
    }
}

typedef struct {
  gn_pinv_kind kind;
  double rtol, atol, damping;
  int exact;  /* also check the exact-inverse property (full rank, rtol tiny) */
} variant;

/* Runs the variants of one problem through one context (exercising workspace reuse). */
static void run_problem(const gn_par *par, const problem *pb, const variant *vs, int nv) {
  int64_t row0, nrows;
  gn_par_rows(pb->n, par->size, par->rank, &row0, &nrows);
  const size_t hm = (size_t)(pb->hp * pb->m);
  gn_real *A = malloc(sizeof(gn_real) * (size_t)(nrows * pb->hp + 1));
  gn_real *T = malloc(sizeof(gn_real) * (size_t)(nrows * pb->m + 1));
  gn_real *AdT = malloc(sizeof(gn_real) * (size_t)(nrows * pb->m + 1));
  double *AdTd = malloc(sizeof(double) * (size_t)(nrows * pb->m + 1));
  double *Ax = malloc(sizeof(double) * (size_t)(nrows * pb->m + 1));
  double *Td = malloc(sizeof(double) * (size_t)(nrows * pb->m + 1));
  gn_real *dtheta = gt_shared(par, hm), *dtheta2 = gt_shared(par, hm), *ref0 = malloc(sizeof(gn_real) * hm);
  double *ref = malloc(sizeof(double) * hm);
  build(pb, row0, nrows, A, T);
  gt_to_f64(T, (size_t)(nrows * pb->m), Td);
  double *Afull = NULL, *Tfull = NULL;
  if (par->rank == 0) {
    /* The whole gn_real A and T, then their double copies for the serial references. */
    gn_real *Ar = malloc(sizeof(gn_real) * (size_t)(pb->n * pb->hp));
    gn_real *Tr = malloc(sizeof(gn_real) * (size_t)(pb->n * pb->m));
    build(pb, 0, pb->n, Ar, Tr);
    Afull = gt_f64(Ar, (size_t)(pb->n * pb->hp));
    Tfull = gt_f64(Tr, (size_t)(pb->n * pb->m));
    free(Ar), free(Tr);
  }
  char label[160];
  snprintf(label, sizeof label, "%s n=%lld hp=%lld m=%lld", structure_name[pb->st],
           (long long)pb->n, (long long)pb->hp, (long long)pb->m);

  gn_pinv_ctx *ctx = NULL;
  int st = gn_pinv_create(par, pb->n, pb->hp, pb->m, 1, &ctx);
  GT_CHECK(st == GN_OK, "create succeeds for %s", label);
  if (st != GN_OK) {
    gt_note("%s", gn_error_message());
    goto done;
  }
  for (int v = 0; v < nv; ++v) {
    const variant *vr = &vs[v];
    gn_pinv_opts o = {.kind = vr->kind, .rtol = vr->rtol, .atol = vr->atol, .damping = vr->damping};
    ref_info ri;
    memset(&ri, 0, sizeof ri);
    int rinfo = 0;
    if (par->rank == 0)
      rinfo = vr->kind == GN_PINV_DAMPED ? ref_damped(pb, vr->damping, Afull, Tfull, ref, &ri)
                                         : ref_pinv(pb, &o, Afull, Tfull, ref, &ri);
    MPI_Bcast(&rinfo, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Bcast(&ri, sizeof ri, MPI_BYTE, 0, MPI_COMM_WORLD);
    MPI_Bcast(ref, (int)hm, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    const double tol_double = 10 * sqrt((double)pb->n) * DBL_EPSILON * ri.kappa2, tol = gt_tol(tol_double);
    char name[240];
    snprintf(name, sizeof name, "%s, %s rtol=%g", kind_name[vr->kind], label, vr->rtol);
    /* A precondition on the test's own reference: LAPACK succeeded and no singular value sits at the
     * truncation threshold, so the kept count is well defined (within the precision of the build:
     * gt_tol gives 1e-3 in single, against the Gram route's eps / rtol^2 ~ 1e-3 near rtol = 1e-2). */
    GT_REQUIRE(rinfo == 0 && ri.gap > gt_tol(1e-6), "serial reference well posed (%s): info %d, gap %.1e", name,
               rinfo, ri.gap);

    /* A rank without rows passes NULL for all its row arrays, as callers with empty batches do. */
    gn_real *Ar = nrows ? A : NULL, *Tr = nrows ? T : NULL, *AdTr = nrows ? AdT : NULL;
    gn_pinv_info info;
    st = gn_pinv_apply(ctx, &o, Ar, Tr, dtheta, AdTr, &info);
    GT_CHECK(st == GN_OK, "apply succeeds (%s)", name);
    if (st != GN_OK) {
      gt_note("%s", gn_error_message());
      continue;
    }
    memcpy(ref0, dtheta, sizeof(gn_real) * hm);
    MPI_Bcast(ref0, (int)hm, GN_MPI_REAL, 0, MPI_COMM_WORLD);
    GT_CHECK(memcmp(dtheta, ref0, sizeof(gn_real) * hm) == 0,
             "dtheta is bit-identical on every rank (%s)", name);
    double err = gt_rel_diff(dtheta, ref, hm);
    gt_note("%s: kept %lld of %lld, kappa^2 %.3g, |dtheta - ref| %.2e (tol %.2e), tall %d", name,
            (long long)info.kept, (long long)pb->n, ri.kappa2, err, tol, info.tall);
    GT_CHECK(err <= tol, "dtheta matches serial LAPACK to eps kappa^2 (%s)", name);
    GT_CHECK(info.kept == ri.kept, "kept count equals the serial rank count (%s)", name);
    GT_CHECK(fabs(info.sigma_max - ri.sigma_max) <= gt_tol(1e-12) * ri.sigma_max,
             "sigma_max matches (%s)", name);
    GT_CHECK(fabs(info.sigma_min_kept - ri.sigma_min_kept) <= tol * ri.sigma_max,
             "sigma_min_kept matches (%s)", name);
    GT_CHECK(info.tall == (pb->n > pb->hp), "tall route taken exactly when n > hp (%s)", name);

    local_times(pb, nrows, A, dtheta, Ax);
    gt_to_f64(AdT, (size_t)(nrows * pb->m), AdTd);
    GT_CHECK(global_rel_diff(AdTd, Ax, (size_t)(nrows * pb->m)) <= tol,
             "AdTheta equals A dtheta (%s)", name);

    st = gn_pinv_apply(ctx, &o, Ar, Tr, dtheta2, AdTr, &info);
    GT_CHECK(st == GN_OK && memcmp(dtheta, dtheta2, sizeof(gn_real) * hm) == 0,
             "a repeated call on the same context gives bit-identical dtheta (%s)", name);
    st = gn_pinv_apply(ctx, &o, Ar, Tr, dtheta2, NULL, NULL);
    GT_CHECK(st == GN_OK && gt_rel_diff(dtheta2, dtheta, hm) <= tol,
             "without AdTheta and info the same dtheta (%s)", name);

    if (vr->kind == GN_PINV_DAMPED) {
      /* (K + d mu_max I) Z = T and A dtheta = K Z give dtheta = A^T (T - A dtheta) / (d mu_max). */
      double mu_max = info.sigma_max * info.sigma_max, *resid = malloc(sizeof(double) * hm);
      for (size_t i = 0; i < hm; ++i) resid[i] = 0;
      for (int64_t i = 0; i < nrows; ++i)
        for (int64_t a = 0; a < pb->hp; ++a)
          for (int64_t j = 0; j < pb->m; ++j)
            resid[a * pb->m + j] += A[i * pb->hp + a] * (Td[i * pb->m + j] - Ax[i * pb->m + j]) /
                                    (vr->damping * mu_max);
      MPI_Allreduce(MPI_IN_PLACE, resid, (int)hm, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
      GT_CHECK(gt_rel_diff(dtheta, resid, hm) <= gt_tol(tol_double / vr->damping),
               "damped step solves (A A^T + damping mu_max I) Z = T (%s)", name);
      free(resid);
    }
    if (vr->exact && pb->n <= pb->hp) {
      GT_CHECK(global_rel_diff(Ax, Td, (size_t)(nrows * pb->m)) <= tol,
               "full row rank: A dtheta = T (%s)", name);
    } else if (vr->exact) {
      /* Normal equations A^T (A dtheta - T) = 0, relative to ||A||^2 ||dtheta|| + ||A|| ||T||. */
      double *g = calloc(hm, sizeof(double)), s[3] = {0, 0, 0};
      for (int64_t i = 0; i < nrows; ++i)
        for (int64_t a = 0; a < pb->hp; ++a) {
          s[0] += (double)A[i * pb->hp + a] * A[i * pb->hp + a];
          for (int64_t j = 0; j < pb->m; ++j)
            g[a * pb->m + j] += A[i * pb->hp + a] * (Ax[i * pb->m + j] - Td[i * pb->m + j]);
        }
      for (int64_t i = 0; i < nrows * pb->m; ++i) s[1] += Td[i] * Td[i];
      MPI_Allreduce(MPI_IN_PLACE, g, (int)hm, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
      MPI_Allreduce(MPI_IN_PLACE, s, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
      for (size_t i = 0; i < hm; ++i) s[2] += g[i] * g[i];
      double dn = 0;
      for (size_t i = 0; i < hm; ++i) dn += (double)dtheta[i] * dtheta[i];
      double scale = s[0] * sqrt(dn) + sqrt(s[0]) * sqrt(s[1]);
      GT_CHECK(sqrt(s[2]) <= tol * scale, "full column rank: normal equations hold (%s)", name);
      free(g);
    }
  }
done:
  gn_pinv_free(ctx);
  gt_shared_free(dtheta), gt_shared_free(dtheta2);
  free(ref0);
  free(A), free(T), free(AdT), free(AdTd), free(Ax), free(Td), free(ref), free(Afull),
      free(Tfull);
}

/* A non-finite feature or right-hand side on one rank must end the call on every rank with a
 * numerical error that says where, without a hang. */
static void test_nonfinite_reported_everywhere(const gn_par *par) {
  problem pb = {.n = 23, .hp = 40, .m = 3, .st = GAUSS, .sub = 90};
  int64_t row0, nrows;
  gn_par_rows(pb.n, par->size, par->rank, &row0, &nrows);
  gn_real *A = malloc(sizeof(gn_real) * (size_t)(nrows * pb.hp + 1));
  gn_real *T = malloc(sizeof(gn_real) * (size_t)(nrows * pb.m + 1));
  gn_real *dtheta = gt_shared(par, (size_t)(pb.hp * pb.m));
  build(&pb, row0, nrows, A, T);
  int last = (int)((pb.n - 1) / gn_par_rows(pb.n, par->size, 0, NULL, NULL));
  gn_pinv_ctx *ctx = NULL;
  int st = gn_pinv_create(par, pb.n, pb.hp, pb.m, 1, &ctx);
  GT_CHECK(st == GN_OK, "create succeeds for the non-finite tests");
  if (st != GN_OK) goto done;

  if (par->rank == last) A[0] = NAN;
  gn_pinv_opts o = {.kind = GN_PINV_GRAM, .rtol = 1e-2, .atol = 1e-5};
  st = gn_pinv_apply(ctx, &o, A, T, dtheta, NULL, NULL);
  GT_CHECK(st == GN_ENUMERIC && strstr(gn_error_message(), "Gram matrix") &&
               strstr(gn_error_message(), "non-finite"),
           "NaN in A on rank %d: every rank reports a non-finite Gram matrix", last);
  o.kind = GN_PINV_SVD;
  st = gn_pinv_apply(ctx, &o, A, T, dtheta, NULL, NULL);
  GT_CHECK(st == GN_ENUMERIC && strstr(gn_error_message(), "feature matrix A"),
           "NaN in A, svd kind: every rank reports a non-finite feature matrix");

  if (par->rank == last) {
    A[0] = 0.5;
    T[0] = INFINITY;
  }
  o.kind = GN_PINV_GRAM;
  st = gn_pinv_apply(ctx, &o, A, T, dtheta, NULL, NULL);
  GT_CHECK(st == GN_ENUMERIC && strstr(gn_error_message(), "dTheta"),
           "inf in T: every rank reports a non-finite dTheta");

  o.kind = GN_PINV_DAMPED;
  o.damping = 0;
  st = gn_pinv_apply(ctx, &o, A, T, dtheta, NULL, NULL);
  GT_CHECK(st == GN_EINPUT && strstr(gn_error_message(), "damping = 0"),
           "damped with damping = 0 is an input error naming the value");
  gn_error_clear();
done:
  gn_pinv_free(ctx);
  gt_shared_free(dtheta);
  free(A), free(T);
}

static void test_memory_estimate(const gn_par *par) {
  /* At least the 2-D copy of A^T and K and V must be counted, and more ranks need less each (in
   * gn_real: 8 bytes each in the double build, 4 in the single one). */
  int64_t n = 1024, hp = 8001, m = 392;
  size_t b1 = gn_pinv_bytes(1, n, hp, m), b4 = gn_pinv_bytes(4, n, hp, m);
  double floor4 = (double)sizeof(gn_real) * ((double)hp * n + 2.0 * n * n) / 4;
  GT_CHECK(b4 >= floor4 && b1 > b4, "memory estimate covers A^T, K, V and shrinks with ranks");
  size_t bt = gn_pinv_bytes(par->size, 50, 12, 5);
  GT_CHECK(bt >= sizeof(gn_real) * (12 * 12 + 2 * 12 * 12), "tall estimate covers A^T A and its eigenvectors");
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  gt_plan(256); /* 11 problems: create + 10 per variant (+1 damped, +1 exact); non-finite 5; memory 2 */
  gn_par par;
  if (gn_par_open(MPI_COMM_WORLD, &par) != GN_OK) MPI_Abort(MPI_COMM_WORLD, 1);

  const variant all3[] = {
      {GN_PINV_GRAM, 1e-2, 1e-5, 0, 0},
      {GN_PINV_SVD, 1e-2, 1e-5, 0, 0},
      {GN_PINV_DAMPED, 1e-2, 1e-5, 1e-2, 0},
  };
  const variant exact[] = {
      {GN_PINV_GRAM, 1e-10, 0, 0, 1},
      {GN_PINV_SVD, 1e-10, 0, 0, 1},
  };
  const variant trunc[] = {
      {GN_PINV_GRAM, 1e-2, 1e-5, 0, 0},
      {GN_PINV_SVD, 1e-2, 1e-5, 0, 0},
  };

  /* wide, n a multiple of neither the block nor the rank count */
  problem wide = {37, 61, 5, GAUSS, 1, 0};
  run_problem(&par, &wide, all3, 3);
  run_problem(&par, &wide, exact, 2);
  /* row-rank deficient: duplicated rows */
  problem dup = {37, 61, 5, DUP_ROWS, 2, 0};
  run_problem(&par, &dup, trunc, 2);
  /* rank 6 in both directions */
  problem low = {37, 61, 4, LOW_RANK, 3, 0};
  run_problem(&par, &low, trunc, 2);
  /* truncation through the middle of the spectrum */
  /* The Gram route squares the kept part's condition number: with 4 decades and rtol 1e-2 kappa^2
   * is 8e3, whose float error eps kappa^2 ~ 1e-3 would be the size of a wrong answer's. The single
   * build grades over 2 decades and truncates at rtol 0.1 (kappa^2 <= 100, eps kappa^2 ~ 1e-5):
   * the cut still goes through the middle of the spectrum. */
  problem graded = {40, 70, 3, GRADED, 4, GT_SINGLE ? 2.0 : 4.0};
  const double graded_rtol = GT_SINGLE ? 1e-1 : 1e-2;
  const variant trunc_graded[] = {
      {GN_PINV_GRAM, graded_rtol, 1e-5, 0, 0},
      {GN_PINV_SVD, graded_rtol, 1e-5, 0, 0},
  };
  run_problem(&par, &graded, trunc_graded, 2);
  /* 0 rows on the last rank when np = 4 (rows 2, 2, 1, 0) */
  problem tiny = {5, 7, 3, GAUSS, 5, 0};
  run_problem(&par, &tiny, all3, 3);
  run_problem(&par, &tiny, exact, 1);
  /* tall: least squares through A^T A */
  problem tall = {50, 12, 4, GAUSS, 6, 0};
  run_problem(&par, &tall, all3, 3);
  run_problem(&par, &tall, exact, 1);
  problem tall_low = {50, 12, 4, LOW_RANK, 7, 0};
  run_problem(&par, &tall_low, trunc, 1);
  /* larger: several 2-D blocks per rank, partial last blocks */
  problem big = {300, 500, 10, GAUSS, 8, 0};
  run_problem(&par, &big, all3, 3);

  test_nonfinite_reported_everywhere(&par);
  test_memory_estimate(&par);

  gn_par_close(&par);
  MPI_Finalize();
  return gt_finish();
}
