/* gn_sweep.c — the GN sweep. Rows stay where they are (row-local forward, inverse and JVPs);
 * only the pseudo-inverse couples samples, and it lives behind pinv.h. */
#include "gnrev/optim/gn_sweep.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "gnrev/core/err.h"
#include "gnrev/model/loss.h"

enum { MAX_CTX = 4 };

struct gn_sweep {
  const gn_par *par;
  const gn_model *model;
  const gn_deck *deck;
  gn_pinv_opts opts;
  int64_t ctx_n[MAX_CTX];      /* global batch size each context was made for */
  gn_pinv_ctx *ctx[MAX_CTX];
  int64_t cap;                 /* local rows the buffers hold */
  double *X, *Xin, *T, *AF, *AG, *t, *AdT, *mu, *eps; /* AF, AG: features of block b's halves */
  gn_sweep_stats stats;
};

int gn_sweep_create(const gn_par *par, const gn_model *model, const gn_deck *deck, gn_sweep **out) {
  gn_sweep *gn = calloc(1, sizeof *gn);
  CHECK_ALLOC(gn);
  gn->par = par;
  gn->model = model;
  gn->deck = deck;
  gn->opts = (gn_pinv_opts){.kind = deck->pinv, .rtol = deck->rtol, .atol = deck->atol,
                            .damping = deck->damping};
  gn->stats.nhalf = 2 * model->B;
  gn->stats.kept = calloc((size_t)gn->stats.nhalf, sizeof(int64_t));
  gn->stats.sigma_max = calloc((size_t)gn->stats.nhalf, sizeof(double));
  if (!gn->stats.kept || !gn->stats.sigma_max) {
    gn_sweep_free(gn);
    GN_FAIL(GN_ENOMEM, "out of memory for GN statistics");
  }
  *out = gn;
  return GN_OK;
}

static void free_buffers(gn_sweep *gn) {
  double **bufs[] = {&gn->X, &gn->Xin, &gn->T, &gn->AF, &gn->AG, &gn->t, &gn->AdT, &gn->mu, &gn->eps};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; ++i) {
    free(*bufs[i]);
    *bufs[i] = NULL;
  }
  gn->cap = 0;
}

void gn_sweep_free(gn_sweep *gn) {
  if (!gn) return;
  for (int i = 0; i < MAX_CTX; ++i) gn_pinv_free(gn->ctx[i]);
  free_buffers(gn);
  free(gn->stats.kept);
  free(gn->stats.sigma_max);
  free(gn);
}

const gn_sweep_stats *gn_sweep_last(const gn_sweep *gn) { return &gn->stats; }

static int reserve(gn_sweep *gn, int64_t n) {
  if (n <= gn->cap) return GN_OK;
  free_buffers(gn);
  const gn_model *md = gn->model;
  size_t rows = (size_t)(n > 0 ? n : 1);
  gn->X = malloc(rows * md->d * sizeof(double));
  gn->Xin = malloc(rows * md->d * sizeof(double));
  gn->T = malloc(rows * md->d * sizeof(double));
  gn->AF = malloc(rows * md->hp * sizeof(double));
  gn->AG = malloc(rows * md->hp * sizeof(double));
  gn->t = malloc(rows * md->m * sizeof(double));
  gn->AdT = malloc(rows * md->m * sizeof(double));
  gn->mu = malloc(rows * md->m * sizeof(double));
  gn->eps = malloc(rows * md->C * sizeof(double));
  if (!gn->X || !gn->Xin || !gn->T || !gn->AF || !gn->AG || !gn->t || !gn->AdT || !gn->mu || !gn->eps) {
    free_buffers(gn);
    GN_FAIL(GN_ENOMEM, "out of memory for GN buffers (%lld local rows)", (long long)n);
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
  CHECK(gn_pinv_create(gn->par, n_global, gn->model->hp, gn->model->m, &gn->ctx[slot]));
  gn->ctx_n[slot] = n_global;
  *ctx = gn->ctx[slot];
  return GN_OK;
}

static int all_finite(const double *v, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!isfinite(v[i])) return 0;
  return 1;
}

static void copy_cols(int64_t n, int64_t m, const double *src, int64_t lds, double *dst, int64_t ldd) {
  for (int64_t i = 0; i < n; ++i) memcpy(dst + i * ldd, src + i * lds, (size_t)m * sizeof(double));
}

/* Solves one half-block: delta_bs = A^+ t for the local rows of its features A and of t
 * (contiguous n x m); AdT receives A delta_bs for the local rows. */
static int solve_half(gn_sweep *gn, gn_pinv_ctx *ctx, int b, int s, const double *A, double *delta) {
  const gn_model *md = gn->model;
  const int half = 2 * b + s;
  gn_pinv_info info;
  memset(&info, 0, sizeof info);
  int st = gn_pinv_apply(ctx, &gn->opts, A, gn->t, delta + gn_model_offset(md, b, s), gn->AdT, &info);
  if (st != GN_OK) {
    gn_error_trace(__FILE__, __LINE__, __func__);
    char msg[1024];
    snprintf(msg, sizeof msg, "%s (block %d, half %s)", gn_error_message(), b, s ? "G" : "F");
    gn_error_set_message(msg, gn_error_traceback());
    return st;
  }
  gn->stats.kept[half] = info.kept;
  gn->stats.sigma_max[half] = info.sigma_max;
  gn->stats.tall |= info.tall;
  gn->stats.t_gram += info.t_gram;
  gn->stats.t_eig += info.t_eig;
  gn->stats.t_apply += info.t_apply;
  gn->stats.t_comm += info.t_comm;
  gn->stats.flops += info.flops;
  if (!all_finite(delta + gn_model_offset(md, b, s), (size_t)(md->hp * md->m)))
    GN_FAIL(GN_ENUMERIC, "non-finite GN update in block %d, half %s", b, s ? "G" : "F");
  return GN_OK;
}

/* In place on X (n x d): (y1, y2) -> (x1, x2) of block b, leaving the features A_G(y1) in AG and
 * A_F(x2) in AF: the sweep needs exactly these two matrices, so each is computed once. */
static void inverse_keeping_features(gn_sweep *gn, const double *theta, int b, int64_t n, double *X) {
  const gn_model *md = gn->model;
  const int64_t d = md->d, m = md->m, hp = md->hp;
  gn_model_features(md, b, 1, n, X, d, gn->AG);
  if (n > 0)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)m, (int)hp, -1.0, gn->AG, (int)hp,
                theta + gn_model_offset(md, b, 1), (int)m, 1.0, X + m, (int)d);
  gn_model_features(md, b, 0, n, X + m, d, gn->AF);
  if (n > 0)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)m, (int)hp, -1.0, gn->AF, (int)hp,
                theta + gn_model_offset(md, b, 0), (int)m, 1.0, X, (int)d);
}

int gn_sweep_direction(gn_sweep *gn, const double *theta, int64_t n, int64_t n_global, const double *X0,
                    const int32_t *y, double *logits, double *delta) {
  const gn_model *md = gn->model;
  const int64_t d = md->d, m = md->m;
  CHECK(reserve(gn, n));
  gn_pinv_ctx *ctx = NULL;
  CHECK(context_for(gn, n_global, &ctx));
  gn_sweep_stats *st = &gn->stats;
  st->t_forward = st->t_sweep = st->t_gram = st->t_eig = st->t_apply = st->t_comm = 0;
  /* Row-local products: the forward, the state cotangent eps U^T, per block the inverse with both
   * feature matrices (features and A Theta for each half) and three JVPs. */
  st->flops = gn_model_flops_forward(md, n) + 2.0 * (double)n * (double)d * md->C;
  for (int b = 0; b < md->B; ++b)
    st->flops += 2 * (2.0 * n * m * md->h + 2.0 * n * md->hp * m) + 3 * gn_model_flops_half(md, b, n, 'j');
  st->tall = 0;

  double t0 = gn_par_wtime();
  if (n > 0) memcpy(gn->X, X0, (size_t)(n * d) * sizeof(double));
  gn_model_forward(md, theta, n, gn->X, logits);
  gn_loss_residual(gn->deck->loss, gn->deck->output_hessian, n, md->C, logits, y, gn->eps);
  int bad = !all_finite(gn->eps, (size_t)(n * md->C));
  CHECK(gn_par_agree(gn->par, bad ? GN_RAISE(GN_ENUMERIC, "non-finite output residual (loss or logits overflowed)") : GN_OK));
  /* Top tangent T_B = eps U^T: the state change that produces the output change eps. */
  if (n > 0)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)d, md->C, 1.0, gn->eps, md->C,
                md->U, md->C, 0.0, gn->T, (int)d);
  st->t_forward = gn_par_wtime() - t0;

  for (int b = md->B - 1; b >= 0; --b) {
    /* X holds (y1, y2) of block b; Xin gets its input (x1, x2) by the exact inverse. */
    t0 = gn_par_wtime();
    if (n > 0) memcpy(gn->Xin, gn->X, (size_t)(n * d) * sizeof(double));
    inverse_keeping_features(gn, theta, b, n, gn->Xin);
    double *t1 = gn->T, *t2 = gn->T + m;
    copy_cols(n, m, t1, d, gn->t, m);
    st->t_sweep += gn_par_wtime() - t0;

    CHECK(solve_half(gn, ctx, b, 0, gn->AF, delta));

    t0 = gn_par_wtime();
    /* mu = J_G(y1)[A_F dTheta_F]: what the F update already changes in y2. */
    gn_model_half_jvp_features(md, theta, b, 1, n, gn->AG, gn->AdT, m, gn->mu, m);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j) gn->t[i * m + j] = t2[i * d + j] - gn->mu[i * m + j];
    st->t_sweep += gn_par_wtime() - t0;

    CHECK(solve_half(gn, ctx, b, 1, gn->AG, delta));

    /* Tangent of the block input (JVP of the inverse block). */
    t0 = gn_par_wtime();
    gn_model_half_jvp_features(md, theta, b, 1, n, gn->AG, t1, d, gn->mu, m);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j) t2[i * d + j] -= gn->mu[i * m + j];
    gn_model_half_jvp_features(md, theta, b, 0, n, gn->AF, t2, d, gn->mu, m);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j) t1[i * d + j] -= gn->mu[i * m + j];
    double *swap = gn->X;
    gn->X = gn->Xin;
    gn->Xin = swap;
    st->t_sweep += gn_par_wtime() - t0;
  }
  return GN_OK;
}
