/* gn_sweep.c — the GN sweep (gn_sweep.h). Rows stay where they are (row-local forward, JVPs);
 * only the pseudo-inverses couple samples, and they live behind pinv.h.
 *
 * Where the time goes, and what this file does about it:
 * - The forward keeps what the sweep needs of every half-block (keep_features): the feature
 *   matrix A = [phi(z C), 1] of a nonlinear half-block, the input z of a linear one. The sweep then
 *   runs no inverse and recomputes no feature matrix. Without it (keep_features = 'no') the sweep
 *   walks down with the exact inverse and recomputes each block's features.
 * - A linear half-block (phi = identity) has A = [z C, 1], so its Gram matrix is
 *   A A^T = [z M, 1] [z, 1]^T with M = C C^T (m x m, made once), and A^T Z = [C^T (z^T Z); 1^T Z]:
 *   the n x hp matrix A is never formed, and the products cost n^2 m and h m^2 instead of n^2 hp
 *   and n hp m.
 * - Every Gram matrix depends only on the forward, so all 2B are formed first and their
 *   eigenproblems solved at once, concurrently on groups of ranks (pinv.h, staged use); only the
 *   right-hand sides chain through the sweep.
 * - The update of each half-block is summed straight into the node-shared direction.
 * The SVD kind and the tall (n > hp) route solve each half-block with gn_pinv_apply instead, from
 * explicit feature matrices. */
#include "gnrev/optim/gn_sweep.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "gnrev/core/array.h"
#include "gnrev/core/blas.h"
#include "gnrev/core/err.h"
#include "gnrev/core/shm.h"
#include "gnrev/core/sysmem.h"
#include "gnrev/model/loss.h"
#include "gnrev/core/real.h"

enum { MAX_CTX = 4 };

struct gn_sweep {
  const gn_par *par;
  const gn_model *model;
  const gn_deck *deck;
  gn_pinv_opts opts;
  bool keep;                   /* the forward keeps every half-block's features */
  bool decided;                /* keep is settled (on the first step) */
  int64_t ctx_n[MAX_CTX];      /* global batch size each context was made for */
  gn_pinv_ctx *ctx[MAX_CTX];
  int64_t cap;                 /* local rows the buffers hold */
  gn_real *X, *T, *t, *Z, *AdT, *mu, *eps; /* state, tangent (n x d); n x m work; residual */
  gn_real **feat;               /* 2B: A (n x hp) of a nonlinear half-block, z (n x m) of a linear one */
  gn_real *L, *R;               /* n x (m + 1): [z M, 1] and [z, 1] of a linear Gram matrix */
  gn_real *A;                   /* n x hp: an explicit feature matrix (direct route) */
  gn_real **M;                  /* 2B: M = C C^T (m x m) of the linear half-blocks, NULL elsewhere */
  gn_real *S;                   /* m x m + m: z^T Z and 1^T Z of a linear update */
  gn_sweep_stats stats;
};

/* Whether half-block products of block b use the linear structure (identity phi and C C^T
 * smaller than the features). */
static bool linear(const gn_model *md, int b) { return md->act[b] == GN_ACT_IDENTITY && 2 * (md->m + 1) < md->hp; }

int gn_sweep_create(const gn_par *par, const gn_model *model, const gn_deck *deck, gn_sweep **out) {
  *out = NULL;
  gn_sweep *gn = calloc(1, sizeof *gn);
  CHECK(gn_par_agree(par, gn ? GN_OK : GN_RAISE(GN_ENOMEM, "gn: out of memory")));
  gn->par = par;
  gn->model = model;
  gn->deck = deck;
  gn->opts = (gn_pinv_opts){.kind = deck->pinv, .rtol = deck->rtol, .atol = deck->atol, .damping = deck->damping};
  const int nh = 2 * model->B;
  gn->stats.nhalf = nh;
  gn->stats.kept = calloc((size_t)nh, sizeof(int64_t));
  gn->stats.sigma_max = calloc((size_t)nh, sizeof *gn->stats.sigma_max);
  gn->feat = calloc((size_t)nh, sizeof *gn->feat);
  gn->M = calloc((size_t)nh, sizeof *gn->M);
  int status = gn->stats.kept && gn->stats.sigma_max && gn->feat && gn->M ? GN_OK
                                                                          : GN_RAISE(GN_ENOMEM, "gn: out of memory");
  /* M = C C^T of each linear half-block, once: 2 m^2 h flops. */
  const int64_t m = model->m, h = model->h;
  for (int k = 0; k < nh && status == GN_OK; ++k)
    if (linear(model, k / 2)) {
      gn->M[k] = gn_alloc((size_t)(m * m));
      if (!gn->M[k]) {
        status = GN_RAISE(GN_ENOMEM, "gn: out of memory for C C^T");
        break;
      }
      gn_gemm(CblasNoTrans, CblasTrans, m, m, h, 1.0, model->proj[k], h, model->proj[k], h, 0.0, gn->M[k], m);
    }
  status = gn_par_agree(par, status);
  if (status != GN_OK) {
    gn_sweep_free(gn);
    return status;
  }
  *out = gn;
  return GN_OK;
}

static void free_buffers(gn_sweep *gn) {
  gn_real **bufs[] = {&gn->X, &gn->T, &gn->t, &gn->Z, &gn->AdT, &gn->mu, &gn->eps, &gn->L, &gn->R, &gn->A, &gn->S};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; ++i) {
    free(*bufs[i]);
    *bufs[i] = NULL;
  }
  for (int k = 0; gn->feat && k < gn->stats.nhalf; ++k) {
    free(gn->feat[k]);
    gn->feat[k] = NULL;
  }
  gn->cap = 0;
}

void gn_sweep_free(gn_sweep *gn) {
  if (!gn) return;
  for (int i = 0; i < MAX_CTX; ++i) gn_pinv_free(gn->ctx[i]);
  free_buffers(gn);
  for (int k = 0; gn->M && k < gn->stats.nhalf; ++k) free(gn->M[k]);
  free(gn->M);
  free(gn->feat);
  free(gn->stats.kept);
  free(gn->stats.sigma_max);
  free(gn);
}

const gn_sweep_stats *gn_sweep_last(const gn_sweep *gn) { return &gn->stats; }

size_t gn_sweep_kept_bytes(const gn_model *md, int64_t rows) {
  size_t b = 0;
  for (int k = 0; k < 2 * md->B; ++k) b += (size_t)rows * (size_t)(linear(md, k / 2) ? md->m : md->hp);
  return b * sizeof(gn_real);
}

bool gn_sweep_keeps(const gn_deck *deck, const gn_model *md, int64_t rows, int ranks_per_node, size_t available) {
  if (deck->keep_features != GN_KEEP_AUTO) return deck->keep_features == GN_KEEP_YES;
  /* auto: when the kept features of the node's ranks take at most a quarter of its free memory */
  return available == 0 ||
         (double)gn_sweep_kept_bytes(md, rows) * (ranks_per_node > 0 ? ranks_per_node : 1) <= 0.25 * (double)available;
}

/* Local. Buffers for n local rows (at least one, so that every rank passes the same kinds of
 * arguments to the collective calls). */
static int reserve(gn_sweep *gn, int64_t n) {
  if (n < 1) n = 1;
  if (n <= gn->cap) return GN_OK;
  free_buffers(gn);
  const gn_model *md = gn->model;
  const size_t rows = (size_t)(n > 0 ? n : 1), d = (size_t)md->d, m = (size_t)md->m, hp = (size_t)md->hp;
  gn->X = gn_alloc(rows * d);
  gn->T = gn_alloc(rows * d);
  gn->t = gn_alloc(rows * m);
  gn->Z = gn_alloc(rows * m);
  gn->AdT = gn_alloc(rows * m);
  gn->mu = gn_alloc(rows * m);
  gn->eps = gn_alloc(rows * (size_t)md->C);
  gn->L = gn_alloc(rows * (m + 1));
  gn->R = gn_alloc(rows * (m + 1));
  gn->A = gn_alloc(rows * hp);
  gn->S = gn_alloc(m * m + m);
  bool ok = gn->X && gn->T && gn->t && gn->Z && gn->AdT && gn->mu && gn->eps && gn->L && gn->R && gn->A && gn->S;
  /* Kept: every half-block's; otherwise the two of the block at hand. */
  const int nbuf = gn->keep ? 2 * md->B : 2;
  for (int k = 0; k < 2 * md->B && ok; ++k) {
    const int owner = gn->keep ? k : k % 2;
    if (owner != k) continue;
    gn->feat[k] = gn_alloc(rows * (gn->keep && linear(md, k / 2) ? m : hp));
    ok = gn->feat[k] != NULL;
  }
  (void)nbuf;
  if (!ok) {
    free_buffers(gn);
    GN_FAIL(GN_ENOMEM, "gn: out of memory for the sweep's buffers (%lld local rows%s)", (long long)n,
            gn->keep ? ", every half-block's features kept: keep_features = 'no' needs less" : "");
  }
  gn->cap = n;
  return GN_OK;
}

static int context_for(gn_sweep *gn, int64_t n_global, gn_pinv_ctx **ctx) {
  for (int i = 0; i < MAX_CTX; ++i)
    if (gn->ctx[i] && gn->ctx_n[i] == n_global) {
      *ctx = gn->ctx[i];
      return GN_OK;
    }
  /* Batch sizes come from a fixed schedule (full batches and at most one short last batch), so a
   * small cache suffices; evict the oldest otherwise. */
  int slot = MAX_CTX - 1;
  for (int i = 0; i < MAX_CTX; ++i)
    if (!gn->ctx[i]) {
      slot = i;
      break;
    }
  gn_pinv_free(gn->ctx[slot]);
  gn->ctx[slot] = NULL;
  CHECK(gn_pinv_create(gn->par, n_global, gn->model->hp, gn->model->m, 2 * gn->model->B, &gn->ctx[slot]));
  gn->ctx_n[slot] = n_global;
  *ctx = gn->ctx[slot];
  return GN_OK;
}

static void copy_cols(int64_t n, int64_t m, const gn_real *src, int64_t lds, gn_real *dst, int64_t ldd) {
  for (int64_t i = 0; i < n; ++i) memcpy(dst + i * ldd, src + i * lds, (size_t)m * sizeof(gn_real));
}

/* Local. What half-block (b, s) keeps of its input z (n x m, ld d): z itself when linear (kept
 * mode), else its feature matrix A(z). */
static void keep_half(gn_sweep *gn, int b, int s, int64_t n, const gn_real *z) {
  const gn_model *md = gn->model;
  const int k = 2 * b + s;
  gn_real *dst = gn->feat[gn->keep ? k : s];
  if (gn->keep && linear(md, b))
    copy_cols(n, md->m, z, md->d, dst, md->m);
  else
    gn_model_features(md, b, s, n, z, md->d, dst);
}

/* Local. The forward of the batch in X (n x d, in place), keeping what the sweep needs, and the
 * logits. Each half-block is evaluated as gn_model_forward does, so the logits are the same bits. */
static void forward_keeping(gn_sweep *gn, const gn_real *theta, int64_t n, gn_real *X, gn_real *logits) {
  const gn_model *md = gn->model;
  const int64_t d = md->d, m = md->m;
  for (int b = 0; b < md->B; ++b) {
    if (gn->keep) keep_half(gn, b, 0, n, X + m);
    gn_model_half_forward(md, theta, b, 0, n, X + m, d, 1.0, X, d);
    if (gn->keep) keep_half(gn, b, 1, n, X);
    gn_model_half_forward(md, theta, b, 1, n, X, d, 1.0, X + m, d);
  }
  gn_gemm(CblasNoTrans, CblasNoTrans, n, md->C, d, 1.0, X, d, md->U, md->C, 0.0, logits, md->C);
}

/* Collective. Half-block k's Gram matrix into its slot: A A^T, or [z M, 1] [z, 1]^T when linear. */
static int gram(gn_sweep *gn, gn_pinv_ctx *ctx, int k, int64_t n, gn_pinv_info *info) {
  const gn_model *md = gn->model;
  const int b = k / 2;
  const gn_real *F = gn->feat[gn->keep ? k : k % 2];
  if (!(gn->keep && linear(md, b))) return gn_pinv_gram(ctx, k, F, F, md->hp, info);
  const int64_t m = md->m, w = md->hp > md->h ? m + 1 : m;
  gn_gemm(CblasNoTrans, CblasNoTrans, n, m, m, 1.0, F, m, gn->M[k], m, 0.0, gn->L, w);
  copy_cols(n, m, F, m, gn->R, w);
  if (w > m)
    for (int64_t i = 0; i < n; ++i) gn->L[i * w + m] = gn->R[i * w + m] = 1.0;
  info->flops += 2.0 * (double)n * m * m;
  return gn_pinv_gram(ctx, k, gn->L, gn->R, w, info);
}

/* Collective. dTheta of a linear half-block from Z = K^+ t: [C^T (z^T Z); 1^T Z], with z^T Z and
 * 1^T Z summed over the ranks (m^2 + m numbers) and the h x m product formed by each node's ranks
 * a slice of rows at a time, straight into the node-shared direction. */
static int linear_update(gn_sweep *gn, int k, int64_t n, gn_real *dtheta, gn_pinv_info *info) {
  const gn_model *md = gn->model;
  const int64_t m = md->m, h = md->h;
  gn_real *S = gn->S, *sum = gn->S + m * m;
  gn_gemm(CblasTrans, CblasNoTrans, m, m, n, 1.0, gn->feat[k], m, gn->Z, m, 0.0, S, m);
  memset(sum, 0, (size_t)m * sizeof(gn_real));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) sum[j] += gn->Z[i * m + j];
  double t0 = gn_par_wtime();
  CHECK(gn_par_sum_real(gn->par, S, (size_t)(m * m + m)));
  info->t_comm += gn_par_wtime() - t0;
  t0 = gn_par_wtime();
  size_t lo, hi;
  gn_shm_slice(gn->par, (size_t)h, sizeof(gn_real) * (size_t)m, &lo, &hi);
  gn_gemm(CblasTrans, CblasNoTrans, (int64_t)(hi - lo), m, m, 1.0, md->proj[k] + lo, h, S, m, 0.0,
          dtheta + (int64_t)lo * m, m);
  if (md->hp > h && (!gn->par || gn->par->node_rank == 0)) memcpy(dtheta + h * m, sum, (size_t)m * sizeof(gn_real));
  info->t_apply += gn_par_wtime() - t0;
  info->flops += 2.0 * (double)n * m * m + 2.0 * (double)(hi - lo) * m * m;
  CHECK(gn_shm_sync(gn->par));
  return gn_par_agree(gn->par, gn_all_finite(S, (size_t)(m * m + m)) ? GN_OK : GN_RAISE(GN_ENUMERIC,
                      "gn: the update of a linear half-block has a non-finite entry"));
}

/* Collective. delta of half-block k = A^+ t for the rows of t in gn->t (contiguous n x m); AdT
 * receives A delta for the local rows. Staged: from the slot's eigenpairs; direct: gn_pinv_apply
 * on an explicit feature matrix. */
static int solve_half(gn_sweep *gn, gn_pinv_ctx *ctx, bool staged, int k, int64_t n, gn_real *delta) {
  const gn_model *md = gn->model;
  const int b = k / 2, s = k % 2;
  gn_real *dst = delta + gn_model_offset(md, b, s);
  gn_pinv_info info;
  memset(&info, 0, sizeof info);
  int st = GN_OK;
  const gn_real *F = gn->feat[gn->keep ? k : s];
  if (staged) {
    st = gn_pinv_solve(ctx, k, &gn->opts, gn->t, gn->Z, gn->AdT, &info);
    if (st == GN_OK)
      st = gn->keep && linear(md, b) ? linear_update(gn, k, n, dst, &info) : gn_pinv_sum_rows(ctx, F, gn->Z, dst, &info);
  } else {
    if (gn->keep && linear(md, b)) {
      /* The direct route needs the explicit features of a linear half-block. */
      gn_model_features(md, b, s, n, F, md->m, gn->A);
      F = gn->A;
    }
    st = gn_pinv_apply(ctx, &gn->opts, F, gn->t, dst, gn->AdT, &info);
  }
  if (st != GN_OK) {
    gn_error_trace(__FILE__, __LINE__, __func__);
    char msg[1024];
    snprintf(msg, sizeof msg, "%s (block %d, half %s)", gn_error_message(), b, s ? "G" : "F");
    gn_error_set_message(msg, gn_error_traceback());
    return st;
  }
  gn_sweep_stats *stats = &gn->stats;
  stats->kept[k] = info.kept;
  stats->sigma_max[k] = info.sigma_max;
  stats->tall |= info.tall;
  stats->t_gram += info.t_gram;
  stats->t_eig += info.t_eig;
  stats->t_apply += info.t_apply;
  stats->t_comm += info.t_comm;
  stats->flops += info.flops;
  return GN_OK;
}

/* Local. In place on X (n x d): (y1, y2) -> (x1, x2) of block b, leaving the features A_G(y1) and
 * A_F(x2) in feat[1] and feat[0] (keep_features = 'no'). */
static void inverse_keeping_features(gn_sweep *gn, const gn_real *theta, int b, int64_t n, gn_real *X) {
  const gn_model *md = gn->model;
  const int64_t d = md->d, m = md->m, hp = md->hp;
  gn_model_features(md, b, 1, n, X, d, gn->feat[1]);
  gn_gemm(CblasNoTrans, CblasNoTrans, n, m, hp, -1.0, gn->feat[1], hp, theta + gn_model_offset(md, b, 1), m, 1.0,
          X + m, d);
  gn_model_features(md, b, 0, n, X + m, d, gn->feat[0]);
  gn_gemm(CblasNoTrans, CblasNoTrans, n, m, hp, -1.0, gn->feat[0], hp, theta + gn_model_offset(md, b, 0), m, 1.0, X,
          d);
  gn->stats.flops += 2 * (2.0 * n * m * md->h + 2.0 * n * hp * m);
}

/* Local. out = J_bs[v] for the local rows, phi' read off the kept features (nonlinear blocks). */
static void jvp(gn_sweep *gn, const gn_real *theta, int b, int s, int64_t n, const gn_real *v, int64_t ldv,
                gn_real *out) {
  const gn_model *md = gn->model;
  const gn_real *A = md->act[b] == GN_ACT_IDENTITY ? NULL : gn->feat[gn->keep ? 2 * b + s : s];
  gn_model_half_jvp_features(md, theta, b, s, n, A, v, ldv, out, md->m);
  gn->stats.flops += gn_model_flops_half(md, b, n, 'j');
}

int gn_sweep_direction(gn_sweep *gn, const gn_real *theta, int64_t n, int64_t n_global, const gn_real *X0,
                       const int32_t *y, gn_real *logits, gn_real *delta) {
  const gn_model *md = gn->model;
  const int64_t d = md->d, m = md->m;
  if (!gn->decided) {
    /* keep_features = auto, decided once for the run's batch rows, the same on every rank. */
    int64_t rows = 0;
    gn_par_rows(n_global, gn->par->size, 0, NULL, &rows);
    double keep = gn_sweep_keeps(gn->deck, md, rows, gn->par->node_size, gn_sysmem_available());
    CHECK(gn_par_sum(gn->par, &keep, 1));
    gn->keep = keep == gn->par->size;
    gn->decided = true;
  }
  CHECK(gn_par_agree(gn->par, reserve(gn, n)));
  gn_pinv_ctx *ctx = NULL;
  CHECK(context_for(gn, n_global, &ctx));
  const bool staged = gn->opts.kind != GN_PINV_SVD && n_global <= md->hp;
  gn_sweep_stats *st = &gn->stats;
  st->t_forward = st->t_sweep = st->t_gram = st->t_eig = st->t_apply = st->t_comm = 0;
  st->tall = 0;
  st->flops = gn_model_flops_forward(md, n) + 2.0 * (double)n * (double)d * md->C;

  double t0 = gn_par_wtime();
  if (n > 0) memcpy(gn->X, X0, (size_t)(n * d) * sizeof(gn_real));
  forward_keeping(gn, theta, n, gn->X, logits);
  gn_loss_residual(gn->deck->loss, gn->deck->output_hessian, n, md->C, logits, y, gn->eps);
  const int bad = !gn_all_finite(gn->eps, (size_t)(n * md->C));
  CHECK(gn_par_agree(gn->par, bad ? GN_RAISE(GN_ENUMERIC, "non-finite output residual (loss or logits overflowed)") : GN_OK));
  /* Top tangent T_B = eps U^T: the state change that produces the output change eps. */
  gn_gemm(CblasNoTrans, CblasTrans, n, d, md->C, 1.0, gn->eps, md->C, md->U, md->C, 0.0, gn->T, d);
  st->t_forward = gn_par_wtime() - t0;

  if (staged && gn->keep) {
    /* Every Gram matrix from the forward, then all eigenproblems at once. */
    gn_pinv_info info;
    memset(&info, 0, sizeof info);
    for (int k = 0; k < 2 * md->B; ++k) CHECK(gram(gn, ctx, k, n, &info));
    CHECK(gn_pinv_eigen(ctx, &info));
    st->t_gram += info.t_gram;
    st->t_eig += info.t_eig;
    st->t_comm += info.t_comm;
    st->flops += info.flops;
  }
  for (int b = md->B - 1; b >= 0; --b) {
    gn_real *t1 = gn->T, *t2 = gn->T + m;
    if (!gn->keep) {
      /* X holds (y1, y2) of block b: its inverse gives the features of both halves. */
      t0 = gn_par_wtime();
      inverse_keeping_features(gn, theta, b, n, gn->X);
      st->t_sweep += gn_par_wtime() - t0;
      if (staged) {
        gn_pinv_info info;
        memset(&info, 0, sizeof info);
        CHECK(gram(gn, ctx, 2 * b, n, &info));
        CHECK(gram(gn, ctx, 2 * b + 1, n, &info));
        CHECK(gn_pinv_eigen(ctx, &info));
        st->t_gram += info.t_gram;
        st->t_eig += info.t_eig;
        st->t_comm += info.t_comm;
        st->flops += info.flops;
      }
    }
    copy_cols(n, m, t1, d, gn->t, m);
    CHECK(solve_half(gn, ctx, staged, 2 * b, n, delta));

    t0 = gn_par_wtime();
    /* mu = J_G(y1)[A_F dTheta_F]: what the F update already changes in y2. */
    jvp(gn, theta, b, 1, n, gn->AdT, m, gn->mu);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j) gn->t[i * m + j] = t2[i * d + j] - gn->mu[i * m + j];
    st->t_sweep += gn_par_wtime() - t0;

    CHECK(solve_half(gn, ctx, staged, 2 * b + 1, n, delta));

    /* Tangent of the block input (JVP of the inverse block). */
    t0 = gn_par_wtime();
    jvp(gn, theta, b, 1, n, t1, d, gn->mu);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j) t2[i * d + j] -= gn->mu[i * m + j];
    jvp(gn, theta, b, 0, n, t2, d, gn->mu);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j) t1[i * d + j] -= gn->mu[i * m + j];
    st->t_sweep += gn_par_wtime() - t0;
  }
  const size_t np = md->nparams;
  size_t lo, hi;
  gn_shm_slice(gn->par, np, sizeof(gn_real), &lo, &hi);
  return gn_par_agree(gn->par, gn_all_finite(delta + lo, hi - lo) ? GN_OK
                                                                   : GN_RAISE(GN_ENUMERIC, "non-finite GN update"));
}
