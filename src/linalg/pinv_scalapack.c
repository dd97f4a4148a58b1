/* pinv_scalapack.c — dTheta = A^+ T for a row-distributed A (docs/algorithm.md sections 2-3).
 *
 * Grids, block sizes and INFO messages come from sl_grid.c.
 *
 * Wide route (n <= hp). A rank's row-major nrows x hp block of A is, read column-major, the
 * hp x nrows block of A^T. One MPI_Alltoallv moves those columns into A^T (hp x n) on a
 * near-square p x q BLACS grid with square nb x nb blocks. (PDGEMR2D does the same move but took
 * 0.2 s on 2 ranks and 0.6 s on 1 for the 65 MB of a 1024 x 8001 A here, the exchange 0.01 s.) There K = A A^T comes from one PDSYRK and its eigenpairs (mu_i, v_i) from PDSYEVD (kind svd:
 * PDGEQRF + PDGESVD of A^T, for the left singular vectors of A, instead). With a weight per eigenpair,
 * Z^T = T^T V diag(f) V^T is two PDGEMMs, and A A^+ T = V diag(g) V^T T one more; truncation is a
 * zero weight, so every rank does the same collective work whatever the kept count. Z^T goes back
 * to the row layout by the reverse exchange and dTheta = sum_r A_r^T Z_r is a local DGEMM plus one
 * allreduce.
 *
 * Tall route (n > hp): M = A^T A and R = A^T T are local products summed by one allreduce; rank 0
 * eigen-decomposes M (serial DSYEVD), forms dTheta = V diag(f) V^T R and broadcasts it. */
#include "gnrev/linalg/pinv.h"

#include <cblas.h>
#include <limits.h>
#include <stdbool.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gnrev/core/array.h"
#include "gnrev/core/blas.h"
#include "gnrev/core/shm.h"
#include "gnrev/linalg/scalapack.h"
#include "gnrev/linalg/sl_grid.h"
#include "gnrev/core/real.h"

enum { WORK_SLACK = 256 }; /* extra workspace entries on top of the documented minimum */

struct gn_pinv_ctx {
  gn_par par;            /* copy of the caller's (the communicator stays the caller's) */
  int64_t n, hp, m;      /* global rows of A and T, columns of A, columns of T */
  int tall;              /* n > hp: least-squares route through A^T A, no BLACS */
  int64_t row0, nrows;   /* rows of A held by this rank */

  /* wide route: the BLACS grid, descriptors and 2-D arrays (column-major, LLD = local rows) */
  int ctxt;              /* p x q grid, row-major over the ranks of par.comm (-1 when not made) */
  int p, q, myrow, mycol;
  int nb;                /* square block of the 2-D layout */
  int desc_at[GN_DLEN];  /* A^T, hp x n */
  int desc_k[GN_DLEN];   /* K, V (and VT for svd), n x n */
  int desc_t[GN_DLEN];   /* T^T and the m x n products, m x n */
  size_t at_len, k_len, t_len; /* local entries of the 2-D arrays */
  gn_real *at, *k, *v;    /* A^T, K, eigenvectors */
  gn_real *t2, *w2, *x2;  /* T^T (then Z^T), T^T V diag(f) (then P^T), T^T V diag(g) */
  gn_real *pack;          /* nrows x max(hp, m): messages of the row <-> 2-D exchanges */
  gn_real *z;             /* nrows x m: this rank's rows of Z */
  int *counts;           /* 4 P: send counts and displacements, receive counts and displacements */
  gn_real adt_dummy[1];  /* AdTheta target of a rank without rows that passed NULL */
  gn_real *mu;            /* n eigenvalues (ascending) or singular values (descending) */
  gn_real *f, *g;         /* n weights for A^+ and for A A^+ */
  gn_real *work;          /* PDSYEVD workspace */
  int lwork;
  int *iwork;
  int liwork;
  /* staged use (gn_pinv_gram / _eigen / _solve): one Gram matrix and its eigenpairs per slot */
  int nslots;
  gn_real **sk, **sv, **smu; /* per slot: K and V on the full grid, eigenvalues (slot 0: k, v, mu) */
  int *sstate;           /* per slot: 0 empty, 1 Gram formed, 2 eigenpairs */
  gn_real *rt;            /* R^T on the full grid when the Gram is L R^T (w x n, w <= hp) */
  /* concurrent eigensolves: G groups of consecutive ranks, slot s solved by group s % G */
  int G, group;          /* groups; this rank's */
  int gctxt, gp, gq, gnb, gmyrow, gmycol; /* this rank's group grid */
  int gdesc[GN_DLEN];    /* n x n on the group grid */
  gn_real **gk, **gv;     /* per slot of this rank's group: K and V on the group grid */
  gn_real *gwork;
  int glwork, *giwork, gliwork;
  gn_real *svd_work;      /* PDGEQRF/PDGESVD workspace, made on first use */
  gn_real *svd_tau;       /* PDGEQRF reflector scalars, local columns of A^T */
  int svd_lwork;

  /* tall route */
  gn_real *mr;            /* hp x hp M = A^T A followed by hp x m R = A^T T, row-major */
  gn_real *tall_mu;       /* rank 0: hp eigenvalues of M */
  gn_real *tall_tmp;      /* rank 0: hp x m V^T R */
  gn_real *tall_w;        /* rank 0: 2 hp eigenpair weights (f, then g) */
  gn_real *tall_work;     /* rank 0: DSYEVD workspace */
  int tall_lwork;
  int *tall_iwork;
  int tall_liwork;
};

static int imax(int a, int b) { return a > b ? a : b; }

/* Upper bound of numroc over all process coordinates. */
static int64_t loc_max(int64_t len, int64_t nb, int64_t nprocs) {
  int64_t blocks = (len + nb - 1) / nb;
  return (blocks + nprocs - 1) / nprocs * nb;
}

/* Global 0-based index of local index l in a block-cyclic dimension starting at process 0. */
static int64_t l2g(int64_t l, int nb, int coord, int nprocs) {
  return (l / nb) * (int64_t)nb * nprocs + (int64_t)coord * nb + l % nb;
}

static int local_count(int64_t len, int nb, int coord, int nprocs) {
  int ilen = (int)len, zero = 0;
  return numroc_(&ilen, &nb, &coord, &zero, &nprocs);
}

static int make_desc(int *desc, int64_t rows, int64_t cols, int mb, int nb, int ctxt, int lld) {
  int irows = (int)rows, icols = (int)cols, zero = 0, info = 0;
  descinit_(desc, &irows, &icols, &mb, &nb, &zero, &zero, &ctxt, &lld, &info);
  return gn_sl_error("DESCINIT", info, "invalid descriptor");
}

void gn_pinv_free(gn_pinv_ctx *ctx) {
  if (!ctx) return;
  if (ctx->ctxt >= 0) Cblacs_gridexit(ctx->ctxt);
  gn_real *arrays[] = {ctx->at, ctx->k, ctx->v, ctx->t2, ctx->w2, ctx->x2, ctx->pack, ctx->z,
                      ctx->mu, ctx->f, ctx->g, ctx->work, ctx->svd_work, ctx->svd_tau, ctx->mr, ctx->tall_mu,
                      ctx->tall_tmp, ctx->tall_w, ctx->tall_work};
  for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; ++i) free(arrays[i]);
  free(ctx->counts);
  free(ctx->iwork);
  free(ctx->tall_iwork);
  for (int i = 1; ctx->sk && i < ctx->nslots; ++i) {
    free(ctx->sk[i]);
    free(ctx->sv[i]);
    free(ctx->smu[i]);
  }
  for (int i = 0; ctx->gk && i < ctx->nslots; ++i) {
    free(ctx->gk[i]);
    free(ctx->gv[i]);
  }
  free(ctx->sk);
  free(ctx->sv);
  free(ctx->smu);
  free(ctx->sstate);
  free(ctx->gk);
  free(ctx->gv);
  free(ctx->rt);
  free(ctx->gwork);
  free(ctx->giwork);
  if (ctx->gctxt >= 0 && ctx->G > 1) Cblacs_gridexit(ctx->gctxt);
  free(ctx);
}

/* Rank 0 only: DSYEVD workspace for the hp x hp normal matrix. */
static int create_tall_rank0(gn_pinv_ctx *c) {
  int hp = (int)c->hp, lwork = -1, liwork = -1, info = 0, iq = 0;
  gn_real q = 0;
  gn_syevd("V", "U", &hp, NULL, &hp, NULL, &q, &lwork, &iq, &liwork, &info, 1, 1);
  if (info != 0) return gn_sl_error("DSYEVD (workspace query)", info, "query failed");
  /* The documented minima, in case the query is low. */
  double lmin = 1.0 + 6.0 * hp + 2.0 * (double)hp * hp;
  double lw = (q > lmin ? q : lmin) + WORK_SLACK;
  int liw = imax(iq, 3 + 5 * hp) + WORK_SLACK;
  if (lw > INT_MAX)
    GN_FAIL(GN_EINPUT, "pinv: the %lld x %lld normal matrix A^T A needs more DSYEVD workspace than a "
            "32-bit LAPACK can index; use a batch with n <= hp", (long long)hp, (long long)hp);
  c->tall_lwork = (int)lw;
  c->tall_liwork = liw;
  c->tall_mu = gn_alloc((size_t)hp);
  c->tall_tmp = gn_alloc((size_t)hp * (size_t)c->m);
  c->tall_w = gn_alloc(2 * (size_t)hp);
  c->tall_work = gn_alloc((size_t)c->tall_lwork);
  c->tall_iwork = malloc((size_t)c->tall_liwork * sizeof(int));
  if (!c->tall_mu || !c->tall_tmp || !c->tall_w || !c->tall_work || !c->tall_iwork)
    GN_FAIL(GN_ENOMEM, "pinv: out of memory for the eigen-decomposition of the %lld x %lld normal "
            "matrix on rank 0", (long long)hp, (long long)hp);
  return GN_OK;
}

static int create_tall(gn_pinv_ctx *c) {
  size_t hp = (size_t)c->hp;
  int status = GN_OK;
  c->mr = gn_alloc(hp * hp + hp * (size_t)c->m);
  if (!c->mr)
    status = GN_RAISE(GN_ENOMEM, "pinv: out of memory for the %zu x %zu normal matrix A^T A", hp, hp);
  else if (c->par.rank == 0)
    status = create_tall_rank0(c);
  return gn_par_agree(&c->par, status);
}

/* Local part of create_wide: descriptors and buffers (may fail on one rank alone). */
static int create_wide_local(gn_pinv_ctx *c) {
  const int64_t n = c->n, hp = c->hp, m = c->m;
  int np = 0, nq = 0;
  Cblacs_gridinfo(c->ctxt, &np, &nq, &c->myrow, &c->mycol);
  /* The exchanges address grid process (r, s) as rank r q + s of par.comm. */
  if (np != c->p || nq != c->q || c->myrow * c->q + c->mycol != c->par.rank)
    GN_FAIL(GN_EINTERNAL, "pinv: BLACS put rank %d at (%d, %d) of a %d x %d grid; expected "
            "(%d, %d) of %d x %d", c->par.rank, c->myrow, c->mycol, np, nq, c->par.rank / c->q,
            c->par.rank % c->q, c->p, c->q);
  int lr_hp = local_count(hp, c->nb, c->myrow, c->p);
  int lr_n = local_count(n, c->nb, c->myrow, c->p);
  int lr_m = local_count(m, c->nb, c->myrow, c->p);
  int lc_n = local_count(n, c->nb, c->mycol, c->q);
  /* MPI counts and displacements are int: the local A^T and this rank's rows of A must fit. */
  if ((int64_t)lr_hp * lc_n > INT_MAX || c->nrows * hp > INT_MAX)
    GN_FAIL(GN_EINPUT, "pinv: the %lld x %lld feature matrix is too large for 32-bit MPI counts on "
            "%d ranks; use more ranks or a smaller batch", (long long)n, (long long)hp, c->par.size);
  CHECK(make_desc(c->desc_at, hp, n, c->nb, c->nb, c->ctxt, imax(1, lr_hp)));
  CHECK(make_desc(c->desc_k, n, n, c->nb, c->nb, c->ctxt, imax(1, lr_n)));
  CHECK(make_desc(c->desc_t, m, n, c->nb, c->nb, c->ctxt, imax(1, lr_m)));
  c->at_len = (size_t)lr_hp * (size_t)lc_n;
  c->k_len = (size_t)lr_n * (size_t)lc_n;
  c->t_len = (size_t)lr_m * (size_t)lc_n;

  c->at = gn_alloc(c->at_len);
  c->k = gn_alloc(c->k_len);
  c->v = gn_alloc(c->k_len);
  c->t2 = gn_alloc(c->t_len);
  c->w2 = gn_alloc(c->t_len);
  c->x2 = gn_alloc(c->t_len);
  c->pack = gn_alloc((size_t)c->nrows * (size_t)(hp > m ? hp : m));
  c->z = gn_alloc((size_t)c->nrows * (size_t)m);
  c->counts = malloc(4 * (size_t)c->par.size * sizeof(int));
  c->mu = gn_alloc((size_t)n);
  c->f = gn_alloc((size_t)n);
  c->g = gn_alloc((size_t)n);
  if (!c->at || !c->k || !c->v || !c->t2 || !c->w2 || !c->x2 || !c->pack || !c->z || !c->counts ||
      !c->mu || !c->f || !c->g)
    GN_FAIL(GN_ENOMEM, "pinv: out of memory for the distributed %lld x %lld Gram matrix and the "
            "%lld x %lld copy of A^T on this rank", (long long)n, (long long)n, (long long)hp,
            (long long)n);
  return GN_OK;
}

static int create_wide(gn_pinv_ctx *c) {
  gn_sl_grid_shape(c->par.size, &c->p, &c->q);
  c->nb = gn_sl_block(c->n, c->q);
  /* docs/algorithm.md section 8: the same run twice gives the same bits (fixed combine trees, seen to vary on 3
   * ranks with BLACS's default MPI_Allreduce). */
  c->ctxt = gn_sl_grid(c->par.comm, c->p, c->q);

  CHECK(gn_par_agree(&c->par, create_wide_local(c)));

  /* PDSYEVD workspace: the query (collective) and the documented minimum, whichever is larger. */
  int n = (int)c->n, one = 1, qlwork = -1, qliwork = -1, info = 0, iq = 0;
  gn_real q = 0;
  gn_psyevd("V", "L", &n, c->k, &one, &one, c->desc_k, c->mu, c->v, &one, &one, c->desc_k, &q,
           &qlwork, &iq, &qliwork, &info, 1, 1);
  CHECK(gn_par_agree(&c->par, gn_sl_error("PDSYEVD (workspace query)", info, "query failed")));
  double np = (double)local_count(c->n, c->nb, c->myrow, c->p);
  double nq = (double)local_count(c->n, c->nb, c->mycol, c->q);
  double trilwmin = 3.0 * n + fmax(c->nb * (np + 1), 3.0 * c->nb);
  double lmin = fmax(1 + 6.0 * n + 2 * np * nq, trilwmin) + 2.0 * n;
  double lw = fmax(q, lmin) * 1.05 + WORK_SLACK;
  int status = GN_OK;
  if (lw > INT_MAX)
    status = GN_RAISE(GN_EINPUT, "pinv: the %d x %d Gram matrix needs more PDSYEVD workspace than a "
                      "32-bit ScaLAPACK can index; use more ranks or a smaller batch", n, n);
  if (status == GN_OK) {
    c->lwork = (int)lw;
    c->liwork = imax(iq, 7 * n + 8 * c->q + 2) + WORK_SLACK;
    c->work = gn_alloc((size_t)c->lwork);
    c->iwork = malloc((size_t)c->liwork * sizeof(int));
    if (!c->work || !c->iwork)
      status = GN_RAISE(GN_ENOMEM, "pinv: out of memory for the PDSYEVD workspace (%d doubles)",
                        c->lwork);
  }
  return gn_par_agree(&c->par, status);
}

/* Local. Workspace of PDSYEVD for an n x n matrix with block nb on a p x q grid at (r, col): the
 * query (collective on the grid) or the documented minimum, whichever is larger. */
static int syevd_workspace(int ctxt, int64_t n64, int nb, int p, int q, int r, int col, int *desc, gn_real *a,
                           gn_real *w, gn_real *v, gn_real **work, int *lwork, int **iwork, int *liwork) {
  int n = (int)n64, one = 1, qlwork = -1, qliwork = -1, info = 0, iq = 0;
  gn_real qd = 0;
  (void)ctxt;
  gn_psyevd("V", "L", &n, a, &one, &one, desc, w, v, &one, &one, desc, &qd, &qlwork, &iq, &qliwork, &info, 1, 1);
  CHECK(gn_sl_error("PDSYEVD (workspace query)", info, "query failed"));
  const double np = (double)local_count(n64, nb, r, p), nq = (double)local_count(n64, nb, col, q);
  const double trilwmin = 3.0 * n + fmax(nb * (np + 1), 3.0 * nb);
  const double lw = fmax(qd, fmax(1 + 6.0 * n + 2 * np * nq, trilwmin) + 2.0 * n) * 1.05 + WORK_SLACK;
  if (lw > INT_MAX)
    GN_FAIL(GN_EINPUT, "pinv: the %d x %d Gram matrix needs more PDSYEVD workspace than a 32-bit ScaLAPACK can "
            "index; use more ranks or a smaller batch", n, n);
  *lwork = (int)lw;
  *liwork = imax(iq, 7 * n + 8 * q + 2) + WORK_SLACK;
  *work = gn_alloc((size_t)*lwork);
  *iwork = malloc((size_t)*liwork * sizeof(int));
  if (!*work || !*iwork) GN_FAIL(GN_ENOMEM, "pinv: out of memory for the PDSYEVD workspace (%d doubles)", *lwork);
  return GN_OK;
}

/* Collective. The slots of the staged use and, with several ranks and slots, the groups that solve
 * the slots' eigenproblems concurrently: G = the largest divisor of P that is at most the number
 * of slots, groups of P / G consecutive ranks on near-square grids. */
static int create_slots(gn_pinv_ctx *c) {
  const int S = c->nslots, P = c->par.size;
  c->sk = calloc((size_t)S, sizeof *c->sk);
  c->sv = calloc((size_t)S, sizeof *c->sv);
  c->smu = calloc((size_t)S, sizeof *c->smu);
  c->sstate = calloc((size_t)S, sizeof *c->sstate);
  int status = c->sk && c->sv && c->smu && c->sstate ? GN_OK : GN_RAISE(GN_ENOMEM, "pinv: out of memory");
  if (status == GN_OK) {
    c->sk[0] = c->k;
    c->sv[0] = c->v;
    c->smu[0] = c->mu;
    for (int i = 1; i < S && status == GN_OK; ++i) {
      c->sk[i] = gn_alloc(c->k_len);
      c->sv[i] = gn_alloc(c->k_len);
      c->smu[i] = gn_alloc((size_t)c->n);
      if (!c->sk[i] || !c->sv[i] || !c->smu[i])
        status = GN_RAISE(GN_ENOMEM, "pinv: out of memory for %d Gram matrices of order %lld", S, (long long)c->n);
    }
    if (status == GN_OK && S > 1 && !(c->rt = gn_alloc(c->at_len))) status = GN_RAISE(GN_ENOMEM, "pinv: out of memory");
  }
  CHECK(gn_par_agree(&c->par, status));
  c->G = 1;
  for (int g = S < P ? S : P; g > 1; --g)
    if (P % g == 0) {
      c->G = g;
      break;
    }
  if (c->G == 1) return GN_OK;
  const int size = P / c->G;
  c->group = c->par.rank / size;
  gn_sl_grid_shape(size, &c->gp, &c->gq);
  /* Every rank takes part in making every group's grid; each keeps its own. */
  for (int g = 0; g < c->G; ++g) {
    const int ctxt = gn_sl_subgrid(c->par.comm, g * size, c->gp, c->gq);
    if (g == c->group) c->gctxt = ctxt;
  }
  int np = 0, nq = 0;
  Cblacs_gridinfo(c->gctxt, &np, &nq, &c->gmyrow, &c->gmycol);
  status = c->gctxt < 0 || c->gmyrow * c->gq + c->gmycol != c->par.rank - c->group * size
               ? GN_RAISE(GN_EINTERNAL, "pinv: BLACS put rank %d at (%d, %d) of its group's %d x %d grid", c->par.rank,
                          c->gmyrow, c->gmycol, c->gp, c->gq)
               : GN_OK;
  c->gnb = gn_sl_block(c->n, c->gq);
  const int lr = local_count(c->n, c->gnb, c->gmyrow, c->gp), lc = local_count(c->n, c->gnb, c->gmycol, c->gq);
  if (status == GN_OK) status = make_desc(c->gdesc, c->n, c->n, c->gnb, c->gnb, c->gctxt, imax(1, lr));
  c->gk = calloc((size_t)S, sizeof *c->gk);
  c->gv = calloc((size_t)S, sizeof *c->gv);
  if (status == GN_OK && (!c->gk || !c->gv)) status = GN_RAISE(GN_ENOMEM, "pinv: out of memory");
  for (int i = 0; status == GN_OK && i < S; ++i)
    if (i % c->G == c->group) {
      c->gk[i] = gn_alloc((size_t)lr * (size_t)lc);
      c->gv[i] = gn_alloc((size_t)lr * (size_t)lc);
      if (!c->gk[i] || !c->gv[i]) status = GN_RAISE(GN_ENOMEM, "pinv: out of memory for the group's Gram matrices");
    }
  CHECK(gn_par_agree(&c->par, status));
  /* The workspace query is collective on the group's grid only. */
  status = syevd_workspace(c->gctxt, c->n, c->gnb, c->gp, c->gq, c->gmyrow, c->gmycol, c->gdesc, c->gk[c->group],
                           c->smu[c->group], c->gv[c->group], &c->gwork, &c->glwork, &c->giwork, &c->gliwork);
  return gn_par_agree(&c->par, status);
}

int gn_pinv_create(const gn_par *par, int64_t n, int64_t hp, int64_t m, int nslots, gn_pinv_ctx **ctx) {
  *ctx = NULL;
  if (n < 1 || hp < 1 || m < 1)
    GN_FAIL(GN_EINTERNAL, "pinv: shape n = %lld, hp = %lld, m = %lld; every size must be >= 1",
            (long long)n, (long long)hp, (long long)m);
  if (n > INT_MAX || hp > INT_MAX || m > INT_MAX)
    GN_FAIL(GN_EINPUT, "pinv: shape n = %lld, hp = %lld, m = %lld exceeds the 32-bit indices of "
            "ScaLAPACK (each must stay below %d)", (long long)n, (long long)hp,
            (long long)m, INT_MAX);
  gn_pinv_ctx *c = calloc(1, sizeof *c);
  int status = gn_par_agree(par, c ? GN_OK : GN_RAISE(GN_ENOMEM, "pinv: out of memory for the context"));
  if (status != GN_OK) {
    free(c);
    CHECK(status);
  }
  c->par = *par;
  c->n = n;
  c->hp = hp;
  c->m = m;
  c->tall = n > hp;
  c->ctxt = -1;
  c->gctxt = -1;
  c->nslots = nslots > 1 ? nslots : 1;
  gn_par_rows(n, par->size, par->rank, &c->row0, &c->nrows);
  status = c->tall ? create_tall(c) : create_wide(c);
  if (status == GN_OK && !c->tall) status = create_slots(c);
  if (status != GN_OK) {
    gn_error_trace(__FILE__, __LINE__, __func__);
    gn_pinv_free(c);
    return status;
  }
  *ctx = c;
  return GN_OK;
}

size_t gn_pinv_bytes(int nranks, int64_t n, int64_t hp, int64_t m) {
  const double d = sizeof(gn_real);
  if (n > hp) {
    /* Every rank: M and R. Rank 0 also: DSYEVD workspace (about 2 hp^2) and V^T R. */
    double all = d * ((double)hp * hp + (double)hp * m);
    double rank0 = d * (1 + 6.0 * hp + 2.0 * (double)hp * hp + (double)hp * m + 3.0 * hp) +
                   sizeof(int) * (3 + 5.0 * hp);
    return (size_t)(all + rank0) + 2 * WORK_SLACK * sizeof(gn_real);
  }
  if (nranks < 1) nranks = 1;
  int p = 1, q = 1;
  gn_sl_grid_shape(nranks, &p, &q);
  int64_t nb = gn_sl_block(n, q), rows = (n + nranks - 1) / nranks;
  double lr_hp = (double)loc_max(hp, nb, p), lr_n = (double)loc_max(n, nb, p);
  double lc_n = (double)loc_max(n, nb, q), lr_m = (double)loc_max(m, nb, p);
  double at = lr_hp * lc_n, kv = 2 * lr_n * lc_n, t3 = 3 * lr_m * lc_n;
  double pack = (double)rows * (double)(hp > m ? hp : m), z = (double)rows * m, vecs = 3.0 * n;
  double syevd = (fmax(1 + 6.0 * n + 2 * lr_n * lc_n, 3.0 * n + nb * (lr_n + 1)) + 2.0 * n) * 1.05;
  /* PDGESVD (kind svd only): bidiagonalisation workspace, or V^T on a 1 x P grid plus PDORMBR. */
  double svd = 1 + 6.0 * hp + fmax(nb * (lr_hp + lc_n + 1) + lc_n,
                                   (double)n * ((n + nranks - 1) / nranks) + 4.0 * n +
                                       (lr_n + lc_n) * nb + nb * nb);
  double doubles = at + kv + t3 + pack + z + vecs + syevd + svd + 2 * WORK_SLACK;
  return (size_t)(d * doubles + sizeof(int) * (7.0 * n + 8.0 * q + 2 + WORK_SLACK + 4.0 * nranks));
}

/* Weights of each eigenpair: f for A^+ (1/mu on kept pairs), g for A A^+ (1 on kept pairs).
 * s holds eigenvalues mu of A A^T (sv = 0) or singular values of A (sv = 1). */
static void make_weights(const gn_pinv_opts *o, int64_t n, const gn_real *s, int sv, gn_real *f,
                         gn_real *g, gn_pinv_info *info) {
  double smax = 0;
  for (int64_t i = 0; i < n; ++i) smax = fmax(smax, s[i]);
  const double mu_max = sv ? smax * smax : smax;
  info->sigma_max = sv ? smax : sqrt(mu_max);
  info->kept = 0;
  info->sigma_min_kept = 0;
  double min_kept = INFINITY;
  for (int64_t i = 0; i < n; ++i) {
    double mu = sv ? s[i] * s[i] : s[i];
    int keep;
    if (o->kind == GN_PINV_DAMPED) {
      /* (K + damping mu_max I)^-1 over the whole spectrum; an all-zero A gives dTheta = 0. */
      keep = mu_max > 0;
      f[i] = keep ? 1.0 / (mu + o->damping * mu_max) : 0.0;
      g[i] = keep ? mu * f[i] : 0.0;
    } else {
      if (sv)
        keep = s[i] > 0 && s[i] >= fmax(o->rtol * smax, o->atol);
      else
        keep = mu > 0 && mu >= fmax(o->rtol * o->rtol * mu_max, o->atol * o->atol);
      f[i] = keep ? 1.0 / mu : 0.0;
      g[i] = keep ? 1.0 : 0.0;
    }
    if (keep) {
      ++info->kept;
      min_kept = fmin(min_kept, mu);
    }
  }
  if (info->kept > 0) info->sigma_min_kept = sqrt(fmax(min_kept, 0.0));
}


/* dst = src diag(w) for 2-D m x n arrays (column j of the local part is global column gj). */
static void scale_columns(const gn_pinv_ctx *c, const gn_real *src, const gn_real *w, gn_real *dst) {
  const size_t lr = (size_t)c->desc_t[GN_DESC_LLD];
  const int lc = local_count(c->n, c->nb, c->mycol, c->q);
  if (local_count(c->m, c->nb, c->myrow, c->p) == 0) return;
  for (int j = 0; j < lc; ++j) {
    const double wj = w[l2g(j, c->nb, c->mycol, c->q)];
    for (size_t i = 0; i < lr; ++i) dst[(size_t)j * lr + i] = wj * src[(size_t)j * lr + i];
  }
}

/* Singular values (descending) of A^T and the left singular vectors of A as the rows of c->v.
 * PDGESVD does not reduce a tall matrix to a triangle first (LAPACK's DGESVD does), so A^T = Q R
 * by PDGEQRF and the SVD of the n x n R gives the same singular values and right vectors with a
 * smaller bidiagonalisation. The vector update of DBDSQR, replicated on every rank, still
 * dominates: 11 s against 13 s for the 1024 x 8001 A on 2 ranks; gram takes 0.35 s. */
static int svd_vectors(gn_pinv_ctx *c, gn_pinv_info *info) {
  int n = (int)c->n, hp = (int)c->hp, one = 1, two = 2, err = 0;
  CHECK(gn_par_agree(&c->par, gn_all_finite(c->at, c->at_len) ? GN_OK : GN_RAISE(GN_ENUMERIC,
        "pinv: the feature matrix A has a non-finite entry (inf or NaN)")));
  if (!c->svd_work) {
    int query = -1, err2 = 0;
    gn_real q1 = 0, q2 = 0;
    gn_pgeqrf(&hp, &n, c->at, &one, &one, c->desc_at, c->mu, &q1, &query, &err);
    gn_pgesvd("N", "V", &n, &n, c->at, &one, &one, c->desc_at, c->mu, c->k, &one, &one, c->desc_k,
             c->v, &one, &one, c->desc_k, &q2, &query, &err2, 1, 1);
    int status = gn_sl_error("PDGEQRF (workspace query)", err, "query failed");
    if (status == GN_OK) status = gn_sl_error("PDGESVD (workspace query)", err2, "query failed");
    double lw = fmax(q1, q2) * 1.05 + WORK_SLACK;
    if (status == GN_OK && lw > INT_MAX)
      status = GN_RAISE(GN_EINPUT, "pinv: the SVD of the %d x %d matrix A^T needs more workspace "
                        "than a 32-bit ScaLAPACK can index; use pinv = 'gram'", hp, n);
    if (status == GN_OK) {
      c->svd_lwork = (int)lw;
      c->svd_work = gn_alloc((size_t)c->svd_lwork);
      c->svd_tau = gn_alloc((size_t)local_count(n, c->nb, c->mycol, c->q));
      if (!c->svd_work || !c->svd_tau)
        status = GN_RAISE(GN_ENOMEM, "pinv: out of memory for the PDGESVD workspace (%d doubles)",
                          c->svd_lwork);
    }
    CHECK(gn_par_agree(&c->par, status));
  }
  double t0 = gn_par_wtime();
  gn_pgeqrf(&hp, &n, c->at, &one, &one, c->desc_at, c->svd_tau, c->svd_work, &c->svd_lwork, &err);
  CHECK(gn_par_agree(&c->par, gn_sl_error("PDGEQRF", err, "unexpected positive info")));
  /* R is the upper triangle of A^T(1:n, 1:n); below it PDGEQRF left the Householder vectors. */
  if (n > 1) {
    int nm1 = n - 1;
    gn_real zero = 0.0;
    gn_plaset("L", &nm1, &nm1, &zero, &zero, c->at, &two, &one, c->desc_at, 1);
  }
  gn_pgesvd("N", "V", &n, &n, c->at, &one, &one, c->desc_at, c->mu, c->k, &one, &one, c->desc_k,
           c->v, &one, &one, c->desc_k, c->svd_work, &c->svd_lwork, &err, 1, 1);
  info->t_eig += gn_par_wtime() - t0;
  CHECK(gn_par_agree(&c->par, gn_sl_error("PDGESVD", err, err == n + 1
      ? "the singular values differ across ranks (heterogeneous arithmetic)"
      : "the bidiagonal QR iteration (DBDSQR) did not converge")));
  return gn_par_agree(&c->par, gn_all_finite(c->mu, (size_t)n) ? GN_OK : GN_RAISE(GN_ENUMERIC,
                      "pinv: PDGESVD returned non-finite singular values of A"));
}

/* The local 2-D columns [first, first + count) that hold the samples of row-layout rank r, on a
 * process of grid column pc: the samples of one rank are contiguous, so they are too. */
static void columns_of_rank(const gn_pinv_ctx *c, int r, int pc, int *first, int *count) {
  int64_t row0, nrows;
  gn_par_rows(c->n, c->par.size, r, &row0, &nrows);
  *first = local_count(row0, c->nb, pc, c->q);
  *count = local_count(row0 + nrows, c->nb, pc, c->q) - *first;
}

/* Counts and displacements (in doubles) of an exchange of a w-wide row-major matrix: row side
 * (this rank's rows, packed by destination process) and 2-D side (whole local columns of the
 * w x n transpose, whose leading dimension is exactly the local row count). */
static void exchange_counts(const gn_pinv_ctx *c, int64_t w, int *row_cnt, int *row_dsp,
                            int *grid_cnt, int *grid_dsp) {
  const int P = c->par.size;
  int off = 0, first, count;
  for (int d = 0; d < P; ++d) {
    columns_of_rank(c, c->par.rank, d % c->q, &first, &count);
    row_cnt[d] = count * local_count(w, c->nb, d / c->q, c->p);
    row_dsp[d] = off;
    off += row_cnt[d];
  }
  const int lr = local_count(w, c->nb, c->myrow, c->p);
  for (int r = 0; r < P; ++r) {
    columns_of_rank(c, r, c->mycol, &first, &count);
    grid_cnt[r] = count * lr;
    grid_dsp[r] = first * lr;
  }
}

/* Walks this rank's rows in message order: for each grid process d = (pr, pc), each own sample
 * whose column block belongs to pc, each run of nb features whose row block belongs to pr. With
 * to_pack the runs are copied rows -> pack, otherwise pack -> rows. */
static void walk_runs(const gn_pinv_ctx *c, int64_t w, gn_real *rows, int64_t ld, gn_real *pack,
                      int to_pack) {
  const int nb = c->nb;
  gn_real *msg = pack;
  for (int d = 0; d < c->par.size; ++d) {
    const int pr = d / c->q, pc = d % c->q;
    for (int64_t i = 0; i < c->nrows; ++i) {
      if (((c->row0 + i) / nb) % c->q != pc) continue;
      for (int64_t a0 = (int64_t)pr * nb; a0 < w; a0 += (int64_t)c->p * nb) {
        size_t len = (size_t)(w - a0 < nb ? w - a0 : nb);
        gn_real *row = rows + i * ld + a0;
        if (to_pack) memcpy(msg, row, len * sizeof(gn_real));
        else memcpy(row, msg, len * sizeof(gn_real));
        msg += len;
      }
    }
  }
}

/* Collective. This rank's rows (nrows x w, leading dimension ld) -> the 2-D transpose (w x n). */
static int rows_to_2d(gn_pinv_ctx *c, int64_t w, const gn_real *rows, int64_t ld, gn_real *local) {
  const int P = c->par.size;
  int *rc = c->counts, *rd = rc + P, *gc = rd + P, *gd = gc + P;
  exchange_counts(c, w, rc, rd, gc, gd);
  walk_runs(c, w, (gn_real *)rows, ld, c->pack, 1); /* reads rows only */
  CHECK_MPI(MPI_Alltoallv(c->pack, rc, rd, GN_MPI_REAL, local, gc, gd, GN_MPI_REAL, c->par.comm));
  return GN_OK;
}

/* Collective. The 2-D w x n array -> this rank's rows of its transpose (nrows x w, ld). */
static int rows_from_2d(gn_pinv_ctx *c, int64_t w, const gn_real *local, gn_real *rows, int64_t ld) {
  const int P = c->par.size;
  int *rc = c->counts, *rd = rc + P, *gc = rd + P, *gd = gc + P;
  exchange_counts(c, w, rc, rd, gc, gd);
  CHECK_MPI(MPI_Alltoallv(local, gc, gd, GN_MPI_REAL, c->pack, rc, rd, GN_MPI_REAL, c->par.comm));
  walk_runs(c, w, rows, ld, c->pack, 0);
  return GN_OK;
}

/* Rows of dTheta per piece of the node-shared sum: pieces of about 8 MB bound the private buffers. */
enum { PIECE_DOUBLES = 1 << 20 };

/* Collective. dtheta (hp x m, node-shared) = sum over the ranks of A_r^T Z_r, formed and summed in
 * pieces of rows of dTheta so that no rank holds more than two pieces. Returns -1 when out of
 * memory (on this rank), 1 when a rank's partial product is not finite, 0 otherwise (the sums are
 * complete on every rank of each node on return). */
static int sum_rows_to_node(gn_pinv_ctx *c, const gn_real *A, const gn_real *Z, gn_real *dtheta, gn_pinv_info *info) {
  const int64_t hp = c->hp, m = c->m, nrows = c->nrows;
  int64_t rows = PIECE_DOUBLES / m;
  if (rows < 1) rows = 1;
  if (rows > hp) rows = hp;
  gn_real *buf[2] = {gn_alloc((size_t)(rows * m)), gn_alloc((size_t)(rows * m))};
  int bad = buf[0] && buf[1] ? 0 : -1;
  int oom = bad;
  CHECK(gn_par_agree(&c->par, oom ? GN_RAISE(GN_ENOMEM, "pinv: out of memory for two pieces of %lld rows of dTheta",
                                            (long long)rows) : GN_OK));
  gn_par_pending pend[2];
  int live[2] = {0, 0}, status = GN_OK;
  for (int64_t i0 = 0, k = 0; i0 < hp && status == GN_OK; i0 += rows, ++k) {
    const int64_t r = hp - i0 < rows ? hp - i0 : rows;
    gn_real *piece = buf[k % 2];
    double t0 = gn_par_wtime();
    if (live[k % 2]) status = gn_par_sum_to_node_end(&c->par, &pend[k % 2]);
    live[k % 2] = 0;
    info->t_comm += gn_par_wtime() - t0;
    t0 = gn_par_wtime();
    gn_gemm(CblasTrans, CblasNoTrans, r, m, nrows, 1.0, A + i0, hp, Z, m, 0.0, piece, m);
    if (!gn_all_finite(piece, (size_t)(r * m))) bad = 1;
    info->t_apply += gn_par_wtime() - t0;
    t0 = gn_par_wtime();
    if (status == GN_OK) status = gn_par_sum_to_node_begin(&c->par, piece, (size_t)(r * m), dtheta + i0 * m, &pend[k % 2]);
    if (status == GN_OK) live[k % 2] = 1;
    info->t_comm += gn_par_wtime() - t0;
  }
  const double t0 = gn_par_wtime();
  for (int j = 0; j < 2; ++j)
    if (live[j] && gn_par_sum_to_node_end(&c->par, &pend[j]) != GN_OK) status = GN_EMPI;
  if (status == GN_OK) status = gn_shm_sync(&c->par);
  info->t_comm += gn_par_wtime() - t0;
  free(buf[0]);
  free(buf[1]);
  CHECK(status);
  return bad;
}

/* Local. The arguments of gn_pinv_apply, as far as this rank can see them. */
static int check_args(const gn_pinv_ctx *ctx, const gn_pinv_opts *opts, bool need_a, const gn_real *A_local,
                      const gn_real *T_local, const gn_real *dtheta) {
  if (!opts || !dtheta || (ctx->nrows > 0 && ((need_a && !A_local) || !T_local)))
    GN_FAIL(GN_EINTERNAL, "pinv: gn_pinv_apply called with a NULL %s", !opts ? "opts" : !dtheta
            ? "dtheta" : !A_local ? "A_local" : "T_local");
  if (opts->kind != GN_PINV_GRAM && opts->kind != GN_PINV_SVD && opts->kind != GN_PINV_DAMPED)
    GN_FAIL(GN_EINTERNAL, "pinv: unknown pseudo-inverse kind %d", (int)opts->kind);
  if (!(opts->rtol >= 0 && isfinite(opts->rtol)) || !(opts->atol >= 0 && isfinite(opts->atol)))
    GN_FAIL(GN_EINPUT, "pinv: truncation rtol = %g, atol = %g; both must be finite and >= 0",
            opts->rtol, opts->atol);
  if (opts->kind == GN_PINV_DAMPED && !(opts->damping > 0 && isfinite(opts->damping)))
    GN_FAIL(GN_EINPUT, "pinv: damping = %g; the damped pseudo-inverse needs a finite damping > 0",
            opts->damping);
  return GN_OK;
}

/* The lower triangle (symmetric) or the whole of a 2-D n x n array is finite. */
static int k_finite(const gn_pinv_ctx *c, const gn_real *k, int lower) {
  const int lld = c->desc_k[GN_DESC_LLD];
  const int lr = local_count(c->n, c->nb, c->myrow, c->p), lc = local_count(c->n, c->nb, c->mycol, c->q);
  for (int j = 0; j < lc; ++j) {
    const int64_t gj = l2g(j, c->nb, c->mycol, c->q);
    for (int i = 0; i < lr; ++i)
      if ((!lower || l2g(i, c->nb, c->myrow, c->p) >= gj) && !isfinite(k[(size_t)j * lld + i])) return 0;
  }
  return 1;
}

int gn_pinv_gram(gn_pinv_ctx *c, int slot, const gn_real *L, const gn_real *R, int64_t w, gn_pinv_info *info) {
  if (c->tall || slot < 0 || slot >= c->nslots || w < 1 || w > c->hp)
    GN_FAIL(GN_EINTERNAL, "pinv: Gram of slot %d (of %d) and width %lld on a %s context", slot, c->nslots,
            (long long)w, c->tall ? "tall" : "wide");
  int n = (int)c->n, iw = (int)w, one = 1, desc[GN_DLEN];
  const int lr = local_count(w, c->nb, c->myrow, c->p);
  CHECK(gn_par_agree(&c->par, make_desc(desc, w, c->n, c->nb, c->nb, c->ctxt, imax(1, lr))));
  double t0 = gn_par_wtime();
  CHECK(rows_to_2d(c, w, L, w, c->at));
  if (R != L) CHECK(rows_to_2d(c, w, R, w, c->rt));
  info->t_comm += gn_par_wtime() - t0;
  gn_real alpha = 1.0, beta = 0.0;
  t0 = gn_par_wtime();
  if (R == L)
    gn_psyrk("L", "T", &n, &iw, &alpha, c->at, &one, &one, desc, &beta, c->sk[slot], &one, &one, c->desc_k, 1, 1);
  else
    gn_pgemm("T", "N", &n, &n, &iw, &alpha, c->at, &one, &one, desc, c->rt, &one, &one, desc, &beta, c->sk[slot],
            &one, &one, c->desc_k, 1, 1);
  info->t_gram += gn_par_wtime() - t0;
  info->flops += (R == L ? 1.0 : 2.0) * (double)n * n * (double)w / c->par.size;
  CHECK(gn_par_agree(&c->par, k_finite(c, c->sk[slot], R == L) ? GN_OK : GN_RAISE(GN_ENUMERIC,
        "pinv: the %d x %d Gram matrix has a non-finite entry: the features hold inf or NaN", n, n)));
  c->sstate[slot] = 1;
  return GN_OK;
}

/* Collective. Eigenpairs of every formed slot on the whole grid, one after another. */
static int eigen_here(gn_pinv_ctx *c, gn_pinv_info *info) {
  int n = (int)c->n, one = 1, err = 0;
  for (int s = 0; s < c->nslots; ++s) {
    if (c->sstate[s] != 1) continue;
    const double t0 = gn_par_wtime();
    gn_psyevd("V", "L", &n, c->sk[s], &one, &one, c->desc_k, c->smu[s], c->sv[s], &one, &one, c->desc_k, c->work,
             &c->lwork, c->iwork, &c->liwork, &err, 1, 1);
    info->t_eig += gn_par_wtime() - t0;
    CHECK(gn_par_agree(&c->par, gn_sl_error("PDSYEVD", err, "the divide-and-conquer eigensolver of the Gram matrix "
                                            "did not converge")));
    c->sstate[s] = 2;
  }
  return GN_OK;
}

/* Collective. The same, concurrently: each slot's Gram moves to its group's grid, the groups
 * solve theirs at the same time, and the eigenvectors move back; the eigenvalues are broadcast
 * from the group's first rank. */
static int eigen_groups(gn_pinv_ctx *c, gn_pinv_info *info) {
  int n = (int)c->n, one = 1, err = 0, none[GN_DLEN];
  memcpy(none, c->gdesc, sizeof none);
  none[GN_DESC_CTXT] = -1;
  const int size = c->par.size / c->G;
  double t0 = gn_par_wtime();
  for (int s = 0; s < c->nslots; ++s)
    if (c->sstate[s] == 1) {
      const int mine = s % c->G == c->group;
      gn_pgemr2d(&n, &n, c->sk[s], &one, &one, c->desc_k, mine ? c->gk[s] : NULL, &one, &one, mine ? c->gdesc : none,
                &c->ctxt);
    }
  info->t_comm += gn_par_wtime() - t0;
  t0 = gn_par_wtime();
  int status = GN_OK;
  for (int s = c->group; s < c->nslots && status == GN_OK; s += c->G)
    if (c->sstate[s] == 1) {
      gn_psyevd("V", "L", &n, c->gk[s], &one, &one, c->gdesc, c->smu[s], c->gv[s], &one, &one, c->gdesc, c->gwork,
               &c->glwork, c->giwork, &c->gliwork, &err, 1, 1);
      status = gn_sl_error("PDSYEVD", err, "the divide-and-conquer eigensolver of the Gram matrix did not converge");
    }
  info->t_eig += gn_par_wtime() - t0;
  CHECK(gn_par_agree(&c->par, status));
  t0 = gn_par_wtime();
  for (int s = 0; s < c->nslots; ++s)
    if (c->sstate[s] == 1) {
      const int mine = s % c->G == c->group;
      gn_pgemr2d(&n, &n, mine ? c->gv[s] : NULL, &one, &one, mine ? c->gdesc : none, c->sv[s], &one, &one, c->desc_k,
                &c->ctxt);
      CHECK_MPI(MPI_Bcast(c->smu[s], n, GN_MPI_REAL, (s % c->G) * size, c->par.comm));
      c->sstate[s] = 2;
    }
  info->t_comm += gn_par_wtime() - t0;
  return GN_OK;
}

int gn_pinv_eigen(gn_pinv_ctx *c, gn_pinv_info *info) {
  int pending = 0;
  for (int s = 0; s < c->nslots; ++s) pending += c->sstate[s] == 1;
  CHECK(pending > 1 && c->G > 1 ? eigen_groups(c, info) : eigen_here(c, info));
  for (int s = 0; s < c->nslots; ++s)
    if (c->sstate[s] == 2 && !gn_all_finite(c->smu[s], (size_t)c->n))
      GN_FAIL(GN_ENUMERIC, "pinv: PDSYEVD returned non-finite eigenvalues of a %lld x %lld Gram matrix",
              (long long)c->n, (long long)c->n);
  return GN_OK;
}

/* Collective. Z (this rank's rows, nrows x m) = V diag(f) V^T T and, when AdT, V diag(g) V^T T from
 * the eigenpairs (sv = 0: V in c->v of eigenvectors of A A^T) or the left singular vectors
 * (sv = 1: V^T in c->v) in v, with the weights of opts. */
static int solve_2d(gn_pinv_ctx *c, const gn_pinv_opts *o, const gn_real *mu, const gn_real *v, int sv,
                    const gn_real *T, gn_real *Z, gn_real *AdT, gn_pinv_info *info) {
  int n = (int)c->n, m = (int)c->m, one = 1;
  double t0 = gn_par_wtime();
  CHECK(rows_to_2d(c, m, T, m, c->t2));
  info->t_comm += gn_par_wtime() - t0;
  make_weights(o, c->n, mu, sv, c->f, c->g, info);
  /* W = T^T V, then Z^T = W diag(f) V^T and P^T = W diag(g) V^T. The SVD route has V^T in v, so
   * the transposes swap. */
  gn_real alpha = 1.0, beta = 0.0;
  const char *tv = sv ? "T" : "N", *tvt = sv ? "N" : "T";
  t0 = gn_par_wtime();
  gn_pgemm("N", tv, &m, &n, &n, &alpha, c->t2, &one, &one, c->desc_t, v, &one, &one, c->desc_k, &beta, c->w2, &one,
          &one, c->desc_t, 1, 1);
  if (AdT) scale_columns(c, c->w2, c->g, c->x2);
  scale_columns(c, c->w2, c->f, c->w2);
  gn_pgemm("N", tvt, &m, &n, &n, &alpha, c->w2, &one, &one, c->desc_t, v, &one, &one, c->desc_k, &beta, c->t2, &one,
          &one, c->desc_t, 1, 1);
  if (AdT)
    gn_pgemm("N", tvt, &m, &n, &n, &alpha, c->x2, &one, &one, c->desc_t, v, &one, &one, c->desc_k, &beta, c->w2, &one,
            &one, c->desc_t, 1, 1);
  info->t_apply += gn_par_wtime() - t0;
  info->flops += (AdT ? 3.0 : 2.0) * 2.0 * m * (double)n * n / c->par.size;
  t0 = gn_par_wtime();
  CHECK(rows_from_2d(c, m, c->t2, Z, m));
  if (AdT) CHECK(rows_from_2d(c, m, c->w2, AdT, m));
  info->t_comm += gn_par_wtime() - t0;
  return GN_OK;
}

int gn_pinv_solve(gn_pinv_ctx *c, int slot, const gn_pinv_opts *opts, const gn_real *T_local, gn_real *Z_local,
                  gn_real *AdT_local, gn_pinv_info *info) {
  if (c->tall || slot < 0 || slot >= c->nslots || c->sstate[slot] != 2)
    GN_FAIL(GN_EINTERNAL, "pinv: solve with slot %d (state %d) before its eigenpairs", slot,
            slot >= 0 && slot < c->nslots ? c->sstate[slot] : -1);
  CHECK(gn_par_agree(&c->par, check_args(c, opts, false, NULL, T_local, Z_local)));
  if (opts->kind == GN_PINV_SVD) GN_FAIL(GN_EINTERNAL, "pinv: the staged solve has no SVD route");
  int want = AdT_local != NULL;
  CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &want, 1, MPI_INT, MPI_MAX, c->par.comm));
  return solve_2d(c, opts, c->smu[slot], c->sv[slot], 0, T_local, Z_local,
                  want ? (AdT_local ? AdT_local : c->adt_dummy) : NULL, info);
}

int gn_pinv_sum_rows(gn_pinv_ctx *c, const gn_real *A_local, const gn_real *Z_local, gn_real *dtheta, gn_pinv_info *info) {
  const int bad = sum_rows_to_node(c, A_local, Z_local, dtheta, info);
  CHECK(gn_par_agree(&c->par, bad < 0 ? GN_RAISE(GN_ENOMEM, "pinv: out of memory for the pieces of dTheta")
                              : bad ? GN_RAISE(GN_ENUMERIC, "pinv: the update dTheta = A^+ T has a non-finite "
                                               "entry: the right-hand side T holds inf or NaN")
                                    : GN_OK));
  info->flops += 2.0 * (double)c->nrows * (double)c->hp * (double)c->m;
  return GN_OK;
}

static int apply_wide(gn_pinv_ctx *c, const gn_pinv_opts *o, const gn_real *A, const gn_real *T,
                      gn_real *dtheta, gn_real *AdT, gn_pinv_info *info) {
  if (o->kind == GN_PINV_SVD) {
    const double t0 = gn_par_wtime();
    CHECK(rows_to_2d(c, c->hp, A, c->hp, c->at));
    info->t_comm += gn_par_wtime() - t0;
    CHECK(svd_vectors(c, info));
    CHECK(solve_2d(c, o, c->mu, c->v, 1, T, c->z, AdT, info));
  } else {
    CHECK(gn_pinv_gram(c, 0, A, A, c->hp, info));
    CHECK(gn_pinv_eigen(c, info));
    CHECK(solve_2d(c, o, c->smu[0], c->sv[0], 0, T, c->z, AdT, info));
    c->sstate[0] = 0;
  }
  return gn_pinv_sum_rows(c, A, c->z, dtheta, info);
}

/* Rank 0 of the tall route: dTheta = V diag(f) V^T R from the summed M and R. */
static int tall_solve(gn_pinv_ctx *c, const gn_pinv_opts *o, gn_real *dtheta, double stats[3],
                      gn_pinv_info *info) {
  int hp = (int)c->hp, m = (int)c->m, err = 0;
  gn_real *M = c->mr, *R = c->mr + (size_t)hp * hp;
  for (int i = 0; i < hp; ++i)
    for (int j = 0; j <= i; ++j)
      if (!isfinite(M[(size_t)i * hp + j]))
        GN_FAIL(GN_ENUMERIC, "pinv: the %d x %d normal matrix A^T A has a non-finite entry: the "
                "features A hold inf or NaN", hp, hp);
  /* Row-major lower is column-major upper; the eigenvectors come back as the rows of M. */
  double t0 = gn_par_wtime();
  gn_syevd("V", "U", &hp, M, &hp, c->tall_mu, c->tall_work, &c->tall_lwork, c->tall_iwork,
          &c->tall_liwork, &err, 1, 1);
  info->t_eig += gn_par_wtime() - t0;
  CHECK(gn_sl_error("DSYEVD", err, "the eigensolver of the normal matrix A^T A did not converge"));
  if (!gn_all_finite(c->tall_mu, (size_t)hp))
    GN_FAIL(GN_ENUMERIC, "pinv: DSYEVD returned non-finite eigenvalues of the %d x %d normal "
            "matrix A^T A", hp, hp);
  t0 = gn_par_wtime();
  gn_real *tmp = c->tall_tmp, *f = c->tall_w, *g = c->tall_w + hp;
  make_weights(o, hp, c->tall_mu, 0, f, g, info);
  /* tmp = V^T R (row k = v_k^T R) scaled by f_k; dTheta = V tmp. */
  gn_cblas_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, hp, m, hp, 1.0, M, hp, R, m, 0.0, tmp, m);
  for (int k = 0; k < hp; ++k) gn_cblas_scal(m, f[k], tmp + (size_t)k * m, 1);
  gn_cblas_gemm(CblasRowMajor, CblasTrans, CblasNoTrans, hp, m, hp, 1.0, M, hp, tmp, m, 0.0, dtheta, m);
  info->t_apply += gn_par_wtime() - t0;
  stats[0] = (double)info->kept;
  stats[1] = info->sigma_max;
  stats[2] = info->sigma_min_kept;
  if (!gn_all_finite(dtheta, (size_t)hp * (size_t)m))
    GN_FAIL(GN_ENUMERIC, "pinv: the least-squares update dTheta has a non-finite entry: the "
            "right-hand side T holds inf or NaN");
  return GN_OK;
}

static int apply_tall(gn_pinv_ctx *c, const gn_pinv_opts *o, const gn_real *A, const gn_real *T,
                      gn_real *dtheta, gn_real *AdT, gn_pinv_info *info) {
  const int hp = (int)c->hp, m = (int)c->m, nrows = (int)c->nrows;
  gn_real *M = c->mr, *R = c->mr + (size_t)hp * hp;
  const size_t len = (size_t)hp * hp + (size_t)hp * m;
  double t0 = gn_par_wtime();
  memset(c->mr, 0, len * sizeof(gn_real));
  if (nrows > 0) {
    gn_cblas_syrk(CblasRowMajor, CblasLower, CblasTrans, hp, nrows, 1.0, A, hp, 0.0, M, hp);
    gn_cblas_gemm(CblasRowMajor, CblasTrans, CblasNoTrans, hp, m, nrows, 1.0, A, hp, T, m, 0.0, R, m);
  }
  info->t_gram += gn_par_wtime() - t0;
  t0 = gn_par_wtime();
  CHECK(gn_par_sum_real(&c->par, c->mr, len));
  info->t_comm += gn_par_wtime() - t0;

  double stats[3] = {0, 0, 0};
  int status = c->par.rank == 0 ? tall_solve(c, o, dtheta, stats, info) : GN_OK;
  CHECK(gn_par_agree(&c->par, status));
  t0 = gn_par_wtime();
  /* dTheta is in rank 0's node's shared memory: the other nodes' leaders receive it. */
  if (c->par.nnodes > 1 && c->par.node_rank == 0)
    CHECK_MPI(MPI_Bcast(dtheta, gn_int((int64_t)hp * m), GN_MPI_REAL, 0, c->par.cross));
  CHECK(gn_shm_sync(&c->par));
  CHECK(gn_par_bcast(&c->par, stats, sizeof stats, 0));
  info->t_comm += gn_par_wtime() - t0;
  info->kept = (int64_t)stats[0];
  info->sigma_max = stats[1];
  info->sigma_min_kept = stats[2];
  if (AdT && nrows > 0) {
    t0 = gn_par_wtime();
    gn_cblas_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nrows, m, hp, 1.0, A, hp, dtheta, m, 0.0,
                AdT, m);
    info->t_apply += gn_par_wtime() - t0;
  }
  /* A^T A and A^T T here, V^T R and V (.) on rank 0 (its share counted on rank 0 only). */
  info->flops = (double)nrows * hp * hp + 2.0 * nrows * hp * m + (AdT ? 2.0 * nrows * m * hp : 0.0) +
                (c->par.rank == 0 ? 4.0 * (double)hp * hp * m : 0.0);
  return GN_OK;
}

int gn_pinv_apply(gn_pinv_ctx *ctx, const gn_pinv_opts *opts, const gn_real *A_local,
                  const gn_real *T_local, gn_real *dtheta, gn_real *AdTheta_local, gn_pinv_info *info) {
  gn_pinv_info scratch;
  if (!info) info = &scratch;
  memset(info, 0, sizeof *info);
  if (!ctx) GN_FAIL(GN_EINTERNAL, "pinv: gn_pinv_apply called with a NULL context");
  CHECK(gn_par_agree(&ctx->par, check_args(ctx, opts, true, A_local, T_local, dtheta)));
  /* A rank without rows may pass NULL for AdTheta_local while the others ask for it: whether the
   * projection is formed (collective work) must be the same everywhere. */
  int want = AdTheta_local != NULL;
  CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &want, 1, MPI_INT, MPI_MAX, ctx->par.comm));
  gn_real *AdT = want ? (AdTheta_local ? AdTheta_local : ctx->adt_dummy) : NULL;
  info->tall = ctx->tall;
  if (ctx->tall) CHECK(apply_tall(ctx, opts, A_local, T_local, dtheta, AdT, info));
  else CHECK(apply_wide(ctx, opts, A_local, T_local, dtheta, AdT, info));
  return GN_OK;
}
