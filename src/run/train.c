/* train.c — the training loop. Row t of /metrics describes the parameters theta_t after t updates:
 * train_loss/train_acc on the batch about to be used by update t+1 (batch_loss_before), test
 * metrics where evaluated, batch_loss_after the same batch at theta_{t+1}. A final row t = T
 * evaluates the whole training and test sets at the final parameters. */
#include "gnrev/run/train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cblas.h>

#include "gnrev/run/checkpoint.h"
#include "gnrev/input/data.h"
#include "gnrev/diag/diag.h"
#include "gnrev/core/err.h"
#include "gnrev/optim/gn_sweep.h"
#include "gnrev/core/h5io.h"
#include "gnrev/model/loss.h"
#include "gnrev/core/sysmem.h"
#include "gnrev/run/memplan.h"
#include "gnrev/model/model.h"
#include "gnrev/curvature/ntk.h"
#include "gnrev/curvature/ggn.h"
#include "gnrev/optim/optim.h"
#include "gnrev/core/rng.h"
#include "gnrev/run/signals.h"
#include "gnrev/core/version.h"


enum { EVAL_CHUNK = 512 };

/* gn_reference: largest n*C for which the Moore-Penrose step's NTK is formed on rank 0. */
enum { MP_MAX_ROWS = 8192 };

typedef struct {
  const gn_par *par;
  const gn_deck *deck;
  char *deck_text;           /* effective deck */
  const char *deck_source;
  gn_dataset train, test;
  gn_model model;
  double *theta, *work;      /* parameters; gradient or GN direction */
  gn_optim opt;
  gn_sweep *gn;
  gn_diag *diag;
  double *damping;           /* gn_vivit: damping chosen per direction (ggn_top_k) */
  gn_h5 *run;
  int64_t bs, steps_per_epoch, steps_total;
  int64_t *perm, perm_epoch;
  int64_t cap;               /* local rows the batch buffers hold */
  int64_t *idx;
  double *X0, *X, *dX, *logits, *dlogits;
  int64_t start_step;        /* first update of this run (> 0 after a restart) */
  char restart_path[GN_PATH_MAX + 64]; /* checkpoint continued from ("" if none) */
  int32_t *y;
} trainer;

#define RANK0 (tr->par->rank == 0)

static int reserve_rows(trainer *tr, int64_t n) {
  if (n <= tr->cap) return GN_OK;
  const gn_model *md = &tr->model;
  size_t r = (size_t)n;
  free(tr->idx); free(tr->X0); free(tr->X); free(tr->dX); free(tr->logits); free(tr->dlogits); free(tr->y);
  tr->idx = malloc(r * sizeof(int64_t));
  tr->X0 = malloc(r * md->d * sizeof(double));
  tr->X = malloc(r * md->d * sizeof(double));
  tr->dX = malloc(r * md->d * sizeof(double));
  tr->logits = malloc(r * md->C * sizeof(double));
  tr->dlogits = malloc(r * md->C * sizeof(double));
  tr->y = malloc(r * sizeof(int32_t));
  if (!tr->idx || !tr->X0 || !tr->X || !tr->dX || !tr->logits || !tr->dlogits || !tr->y)
    GN_FAIL(GN_ENOMEM, "out of memory for %lld batch rows", (long long)n);
  tr->cap = n;
  return gn_model_reserve(&tr->model, n);
}

/* Collective. Mean loss and accuracy of rows [0, n) of `set` (each rank its gn_par_rows share),
 * at theta, in chunks. */
static int evaluate(trainer *tr, const gn_dataset *set, int64_t n, double *loss, double *acc) {
  int64_t row0, nrows;
  gn_par_rows(n, tr->par->size, tr->par->rank, &row0, &nrows);
  double sums[2] = {0, 0};
  for (int64_t off = 0; off < nrows; off += EVAL_CHUNK) {
    int64_t k = nrows - off < EVAL_CHUNK ? nrows - off : EVAL_CHUNK;
    for (int64_t i = 0; i < k; ++i) tr->idx[i] = row0 + off + i;
    gn_data_gather(set, tr->idx, k, tr->X, tr->y);
    gn_model_forward(&tr->model, tr->theta, k, tr->X, tr->logits);
    double l = 0;
    int64_t c = 0;
    gn_loss_eval(tr->deck->loss, k, tr->model.C, tr->logits, tr->y, &l, &c);
    sums[0] += l;
    sums[1] += (double)c;
  }
  CHECK(gn_par_sum(tr->par, sums, 2));
  *loss = n > 0 ? sums[0] / (double)n : NAN;
  *acc = n > 0 ? sums[1] / (double)n : NAN;
  return GN_OK;
}

/* Local. The local rows of batch k of epoch e: global positions [k bs, k bs + nb) of the epoch's
 * order, this rank taking its gn_par_rows share. Returns the global batch size. */
static int64_t batch_rows(trainer *tr, int64_t epoch, int64_t k, int64_t *n_local) {
  const int64_t n = tr->train.n;
  if (tr->perm_epoch != epoch) {
    if (tr->deck->shuffle && tr->bs < n)
      gn_rng_permutation((uint64_t)tr->deck->seed, GN_RNG_SHUFFLE, (uint32_t)epoch, n, tr->perm);
    else
      for (int64_t i = 0; i < n; ++i) tr->perm[i] = i;
    tr->perm_epoch = epoch;
  }
  int64_t start = k * tr->bs, nb = n - start < tr->bs ? n - start : tr->bs;
  int64_t row0, nrows;
  gn_par_rows(nb, tr->par->size, tr->par->rank, &row0, &nrows);
  for (int64_t i = 0; i < nrows; ++i) tr->idx[i] = tr->perm[start + row0 + i];
  gn_data_gather(&tr->train, tr->idx, nrows, tr->X0, tr->y);
  *n_local = nrows;
  return nb;
}

/* Collective. Mean loss/accuracy of the local rows' logits over the global batch. */
static int batch_metrics(trainer *tr, int64_t n, int64_t nb, double *loss, double *acc) {
  double l = 0;
  int64_t c = 0;
  gn_loss_eval(tr->deck->loss, n, tr->model.C, tr->logits, tr->y, &l, &c);
  double sums[2] = {l, (double)c};
  CHECK(gn_par_sum(tr->par, sums, 2));
  *loss = sums[0] / (double)nb;
  *acc = sums[1] / (double)nb;
  return GN_OK;
}

/* Collective. One update on the current batch (local rows X0, y); loss/acc before it. */
static int update(trainer *tr, int64_t step, int64_t n, int64_t nb, double *loss, double *acc) {
  const gn_model *md = &tr->model;
  const gn_deck *dk = tr->deck;
  if (dk->method == GN_OPT_GN_VIVIT || (dk->method == GN_OPT_GN && dk->gn_reference)) {
    /* Both solve with the NTK of the batch: measure the batch first, then take the step. */
    memcpy(tr->X, tr->X0, (size_t)(n * md->d) * sizeof(double));
    gn_model_forward(md, tr->theta, n, tr->X, tr->logits);
    CHECK(batch_metrics(tr, n, nb, loss, acc));
    int st = dk->method == GN_OPT_GN_VIVIT
                 ? gn_ggn_vivit_direction(tr->par, md, dk, tr->theta, n, nb, tr->X0, tr->y, step, tr->work, tr->damping)
                 : gn_ntk_mp_direction(tr->par, md, dk, tr->theta, n, nb, tr->X0, tr->y, MP_MAX_ROWS, tr->work);
    if (st != GN_OK) {
      char msg[2048];
      snprintf(msg, sizeof msg, "step %lld: %s", (long long)step, gn_error_message());
      gn_error_set_message(msg, gn_error_traceback());
      return st;
    }
    /* The tractable step moves the outputs by B eps to first order, J^+ eps by eps: scaling the
     * reference by B makes runs with the same lr comparable (Theorem 4.3). */
    const double scale = dk->method == GN_OPT_GN ? (double)md->B : 1.0;
    for (size_t i = 0; i < md->nparams; ++i) {
      if (!isfinite(tr->work[i])) GN_FAIL(GN_ENUMERIC, "step %lld: non-finite update", (long long)step);
      tr->theta[i] -= dk->lr * scale * tr->work[i];
    }
    return GN_OK;
  }
  if (dk->method == GN_OPT_GN) {
    int st = gn_sweep_direction(tr->gn, tr->theta, n, nb, tr->X0, tr->y, tr->logits, tr->work);
    if (st != GN_OK) {
      char msg[2048];
      snprintf(msg, sizeof msg, "step %lld: %s", (long long)step, gn_error_message());
      gn_error_set_message(msg, gn_error_traceback());
      return st;
    }
    CHECK(batch_metrics(tr, n, nb, loss, acc));
    for (size_t i = 0; i < md->nparams; ++i) tr->theta[i] -= dk->lr * tr->work[i];
    return GN_OK;
  }
  memcpy(tr->X, tr->X0, (size_t)(n * md->d) * sizeof(double));
  gn_model_forward(md, tr->theta, n, tr->X, tr->logits);
  CHECK(batch_metrics(tr, n, nb, loss, acc));
  if (!isfinite(*loss))
    GN_FAIL(GN_ENUMERIC, "step %lld: the batch loss is not finite (%g): lower lr", (long long)step, *loss);
  gn_loss_grad(dk->loss, n, nb, md->C, tr->logits, tr->y, tr->dlogits);
  if (n > 0)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)md->d, md->C, 1.0, tr->dlogits,
                md->C, md->U, md->C, 0.0, tr->dX, (int)md->d);
  memset(tr->work, 0, md->nparams * sizeof(double));
  gn_model_backward(md, tr->theta, n, tr->X, tr->dX, tr->work);
  CHECK(gn_par_sum(tr->par, tr->work, md->nparams));
  gn_optim_step(&tr->opt, dk, dk->lr, tr->theta, tr->work);
  return GN_OK;
}

static int save_diag(void *ctx, gn_h5 *f) { return gn_diag_save((gn_diag *)ctx, f); }

static int checkpoint(trainer *tr, int64_t step, int64_t epoch) {
  gn_ckpt_meta meta = {.step = step, .epoch = epoch, .deck = tr->deck_text, .deck_source = tr->deck_source,
                       .extra = tr->diag ? save_diag : NULL, .extra_ctx = tr->diag};
  return gn_ckpt_write(tr->par, tr->deck, &meta, &tr->model, tr->theta,
                       (tr->deck->method == GN_OPT_SGD || tr->deck->method == GN_OPT_ADAM) ? &tr->opt : NULL);
}

static int mkdir_p(const char *path) {
  char buf[GN_PATH_MAX];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; ++p)
    if (*p == '/') {
      *p = '\0';
      if (mkdir(buf, 0775) != 0 && errno != EEXIST) return -1;
      *p = '/';
    }
  return mkdir(buf, 0775) != 0 && errno != EEXIST ? -1 : 0;
}

static int open_outputs(trainer *tr, const char *deck_path) {
  int st = GN_OK;
  if (RANK0 && mkdir_p(tr->deck->out_dir) != 0)
    st = GN_RAISE(GN_EIO, "cannot create output folder %s: %s", tr->deck->out_dir, strerror(errno));
  CHECK(gn_par_agree(tr->par, st));
  char path[GN_PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/run.h5", tr->deck->out_dir);
  struct stat sb;
  int exists = stat(path, &sb) == 0;
  CHECK(gn_par_bcast(tr->par, &exists, sizeof exists, 0));
  if (tr->restart_path[0] && exists) {
    /* Continue the series where the checkpoint left them: rows t < start_step stay. */
    CHECK(gn_h5_open(tr->par, path, true, &tr->run));
    CHECK(gn_h5_truncate_series(tr->run, "/metrics", tr->start_step));
    CHECK(gn_h5_truncate_series(tr->run, "/gn", tr->start_step));
    CHECK(gn_h5_truncate_series(tr->run, "/vivit", tr->start_step));
    char *prev = NULL, note[GN_PATH_MAX + 256];
    if (gn_h5_read_attr_str(tr->run, "/", "restarts", &prev) != GN_OK) {
      gn_error_clear();
      prev = NULL;
    }
    snprintf(note, sizeof note, "%s%sstep %lld on %d ranks from %s", prev ? prev : "", prev ? "; " : "",
             (long long)tr->start_step, tr->par->size, tr->restart_path);
    free(prev);
    CHECK(gn_h5_attr_str(tr->run, "/", "restarts", note));
    CHECK(gn_h5_attr_i64(tr->run, "/", "nranks", tr->par->size));
    CHECK(gn_h5_attr_str(tr->run, "/", "deck", tr->deck_text));
    return GN_OK;
  }
  CHECK(gn_h5_create(tr->par, path, &tr->run));
  gn_h5 *f = tr->run;
  CHECK(gn_h5_attr_str(f, "/", "format", "gnrev-run-1"));
  CHECK(gn_h5_attr_str(f, "/", "deck", tr->deck_text));
  CHECK(gn_h5_attr_str(f, "/", "deck_source", tr->deck_source ? tr->deck_source : ""));
  CHECK(gn_h5_attr_str(f, "/", "deck_path", deck_path ? deck_path : ""));
  CHECK(gn_h5_attr_i64(f, "/", "nranks", tr->par->size));
  CHECK(gn_h5_attr_str(f, "/", "version", gn_version));
  CHECK(gn_h5_attr_str(f, "/", "compiler", __VERSION__));
  CHECK(gn_h5_attr_str(f, "/", "cflags", gn_build_cflags));
  CHECK(gn_h5_attr_i64(f, "/", "nparams", (int64_t)tr->model.nparams));
  if (tr->restart_path[0]) CHECK(gn_h5_attr_str(f, "/", "restarts", tr->restart_path));
  return GN_OK;
}

static const char *METRIC_NAMES[] = {"step", "epoch", "train_loss", "train_acc", "test_loss",
                                     "test_acc", "lr", "wall_s", "batch_loss_before",
                                     "batch_loss_after", "step_s"};
enum { N_METRICS = sizeof METRIC_NAMES / sizeof *METRIC_NAMES };

static int write_gn_stats(trainer *tr) {
  const gn_sweep_stats *st = gn_sweep_last(tr->gn);
  enum { MAXH = 256 };
  char names[2 * MAXH][32];
  const char *np[2 * MAXH];
  double vals[2 * MAXH];
  int k = 0;
  for (int i = 0; i < st->nhalf && i < MAXH; ++i) {
    snprintf(names[k], 32, "kept_b%03d_%s", i / 2, i % 2 ? "G" : "F");
    np[k] = names[k];
    vals[k++] = (double)st->kept[i];
    snprintf(names[k], 32, "sigma_max_b%03d_%s", i / 2, i % 2 ? "G" : "F");
    np[k] = names[k];
    vals[k++] = st->sigma_max[i];
  }
  return gn_h5_append(tr->run, "/gn", k, np, vals);
}

/* gn_vivit: the damping used for each of the top-k directions (NaN past those found). */
static int write_vivit_damping(trainer *tr) {
  enum { MAXK = 256 };
  const int k = (int)(tr->deck->ggn_top_k < MAXK ? tr->deck->ggn_top_k : MAXK);
  char names[MAXK][24];
  const char *np[MAXK];
  for (int i = 0; i < k; ++i) {
    snprintf(names[i], sizeof names[i], "damping_%03d", i);
    np[i] = names[i];
  }
  return gn_h5_append(tr->run, "/vivit", k, np, tr->damping);
}

static void fmt_eta(double s, char *buf, size_t cap) {
  if (!isfinite(s) || s < 0) s = 0;
  long t = (long)(s + 0.5);
  snprintf(buf, cap, "%02ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
}

static int describe_metrics(trainer *tr) {
  static const char *desc[N_METRICS][3] = {
      {"updates taken: the row describes theta_step", "1", "row"},
      {"epoch of the row's batch", "1", "row"},
      {"mean loss of the batch of update step+1 at theta_step (final row: whole training set)", "nats (ce) or 1 (mse)", "row"},
      {"accuracy of that batch (final row: whole training set)", "fraction", "row"},
      {"mean loss on the test set at theta_step; NaN where not evaluated", "nats (ce) or 1 (mse)", "row"},
      {"accuracy on the test set at theta_step; NaN where not evaluated", "fraction", "row"},
      {"step size", "1", "row"},
      {"wall-clock seconds since the start of training", "s", "row"},
      {"loss of the batch just before its own update (= train_loss)", "nats (ce) or 1 (mse)", "row"},
      {"loss of the same batch just after its own update; NaN unless batch_change", "nats (ce) or 1 (mse)", "row"},
      {"seconds taken by the update (rank 0)", "s", "row"}};
  for (int i = 0; i < N_METRICS; ++i) {
    char path[64];
    snprintf(path, sizeof path, "/metrics/%s", METRIC_NAMES[i]);
    CHECK(gn_h5_describe(tr->run, path, desc[i][0], desc[i][1], desc[i][2]));
  }
  return GN_OK;
}

/* Flushing syncs every rank's writes to disk: done once per logged line, so a reader sees the
 * run's progress without a sync per step. */
static int append_row(trainer *tr, const double *row, bool flush) {
  const bool first = gn_h5_series_len(tr->run, "/metrics/step") == 0;
  CHECK(gn_h5_append(tr->run, "/metrics", N_METRICS, METRIC_NAMES, row));
  if (first) CHECK(describe_metrics(tr));
  if (tr->gn) CHECK(write_gn_stats(tr));
  if (tr->damping) CHECK(write_vivit_damping(tr));
  return flush ? gn_h5_flush(tr->run) : GN_OK;
}

static void progress(trainer *tr, int64_t step, int64_t epoch, double loss, double acc,
                     double test_loss, double test_acc, double step_s, double eta_s) {
  if (!RANK0) return;
  char eta[32];
  fmt_eta(eta_s, eta, sizeof eta);
  printf("%8lld %6lld %12.6g %8.4f %12.6g %8.4f %10.4f %10s\n", (long long)step, (long long)epoch,
         loss, acc, test_loss, test_acc, step_s, eta);
  fflush(stdout);
}

static int train_loop(trainer *tr) {
  const gn_deck *dk = tr->deck;
  const double t_start = gn_par_wtime();
  double t_steps = 0, last_test_loss = NAN, last_test_acc = NAN;
  int64_t done = 0;
  if (tr->start_step == 0) CHECK(checkpoint(tr, 0, 0));
  if (RANK0) {
    printf("%8s %6s %12s %8s %12s %8s %10s %10s\n", "step", "epoch", "train_loss", "train_acc",
           "test_loss", "test_acc", "step_s", "ETA");
    fflush(stdout);
  }
  for (int64_t step = tr->start_step; step < tr->steps_total; ++step) {
    const int64_t epoch = step / tr->steps_per_epoch, k = step % tr->steps_per_epoch;
    double test_loss = NAN, test_acc = NAN;
    if (dk->eval_every > 0 && step % dk->eval_every == 0) {
      CHECK(evaluate(tr, &tr->test, tr->test.n, &test_loss, &test_acc));
      last_test_loss = test_loss;
      last_test_acc = test_acc;
    }
    int64_t n;
    const int64_t nb = batch_rows(tr, epoch, k, &n);
    CHECK(gn_diag_step(tr->diag, step, tr->theta, n, nb, tr->X0, tr->y));
    const double t0 = gn_par_wtime();
    double loss = NAN, acc = NAN;
    int st = update(tr, step, n, nb, &loss, &acc);
    if (st == GN_ENUMERIC) {
      /* theta still holds the last good state: save it for inspection before stopping. */
      char msg[2048];
      snprintf(msg, sizeof msg, "%s", gn_error_message());
      if (checkpoint(tr, step, epoch) == GN_OK)
        snprintf(msg + strlen(msg), sizeof msg - strlen(msg),
                 "\n  the last good state is saved as the checkpoint of step %lld", (long long)step);
      gn_error_set_message(msg, "");
    }
    CHECK(st);
    const double dt = gn_par_wtime() - t0;
    t_steps += dt;
    ++done;
    double after = NAN;
    if (dk->batch_change) {
      memcpy(tr->X, tr->X0, (size_t)(n * tr->model.d) * sizeof(double));
      gn_model_forward(&tr->model, tr->theta, n, tr->X, tr->logits);
      double a;
      CHECK(batch_metrics(tr, n, nb, &after, &a));
    }
    double row[N_METRICS] = {(double)step, (double)epoch, loss, acc, test_loss, test_acc, dk->lr,
                             gn_par_wtime() - t_start, loss, after, dt};
    const bool log_now = step % dk->log_every == 0 || step + 1 == tr->steps_total;
    CHECK(append_row(tr, row, log_now));
    if (log_now)
      progress(tr, step, epoch, loss, acc, last_test_loss, last_test_acc, t_steps / (double)done,
               (gn_par_wtime() - t_start) / (double)done * (double)(tr->steps_total - step - 1));
    int signum = 0;
    CHECK(gn_signals_agree(tr->par, &signum));
    if (signum && step + 1 < tr->steps_total) {
      CHECK(gn_h5_flush(tr->run));
      CHECK(checkpoint(tr, step + 1, (step + 1) / tr->steps_per_epoch));
      GN_FAIL(GN_ESTOPPED,
              "%s received: stopped after step %lld with a checkpoint in %s/checkpoints; run the same "
              "command again to continue",
              gn_signals_name(signum), (long long)(step + 1), dk->out_dir);
    }
    if (dk->every > 0 && (step + 1) % dk->every == 0 && step + 1 < tr->steps_total)
      CHECK(checkpoint(tr, step + 1, (step + 1) / tr->steps_per_epoch));
  }
  /* Final row: theta_T on the whole training and test sets. */
  const int64_t T = tr->steps_total;
  double tl, ta, vl, va;
  CHECK(evaluate(tr, &tr->train, tr->train.n, &tl, &ta));
  CHECK(evaluate(tr, &tr->test, tr->test.n, &vl, &va));
  double row[N_METRICS] = {(double)T, (double)(T / tr->steps_per_epoch), tl, ta, vl, va, dk->lr,
                           gn_par_wtime() - t_start, NAN, NAN, NAN};
  CHECK(gn_h5_append(tr->run, "/metrics", N_METRICS, METRIC_NAMES, row));
  CHECK(gn_diag_final(tr->diag, T, tr->theta));
  CHECK(checkpoint(tr, T, T / tr->steps_per_epoch));
  if (RANK0) {
    printf("final (step %lld): train_loss %.6g train_acc %.4f test_loss %.6g test_acc %.4f, "
           "%.1f s in all, %.4f s per step\n",
           (long long)T, tl, ta, vl, va, gn_par_wtime() - t_start, done ? t_steps / (double)done : 0.0);
    fflush(stdout);
  }
  return GN_OK;
}

static int create_diagnostics(trainer *tr) {
  const gn_deck *dk = tr->deck;
  char run_path[GN_PATH_MAX + 16], xmf_path[GN_PATH_MAX + 16];
  snprintf(run_path, sizeof run_path, "%s/run.h5", dk->out_dir);
  snprintf(xmf_path, sizeof xmf_path, "%s/run.xmf", dk->out_dir);
  CHECK(gn_diag_create(tr->par, dk, &tr->model, &tr->train, tr->theta, tr->run, run_path, xmf_path, &tr->diag));
  if (tr->restart_path[0]) {
    /* The baselines are those of the original step 0, kept in the checkpoint. */
    gn_h5 *ck = NULL;
    CHECK(gn_h5_open(tr->par, tr->restart_path, false, &ck));
    int st = gn_diag_load(tr->diag, ck);
    int st2 = gn_h5_close(ck);
    CHECK(st);
    CHECK(st2);
  }
  if (dk->method == GN_OPT_GN_VIVIT) {
    tr->damping = malloc((size_t)(dk->ggn_top_k > 0 ? dk->ggn_top_k : 1) * sizeof(double));
    CHECK(gn_par_agree(tr->par, tr->damping ? GN_OK : GN_RAISE(GN_ENOMEM, "out of memory")));
  }
  return GN_OK;
}

static void trainer_free(trainer *tr) {
  gn_diag_free(tr->diag);
  free(tr->damping);
  if (tr->run) gn_h5_close(tr->run);
  gn_sweep_free(tr->gn);
  gn_optim_free(&tr->opt);
  gn_model_free(&tr->model);
  gn_data_free(&tr->train);
  gn_data_free(&tr->test);
  free(tr->theta); free(tr->work); free(tr->perm);
  free(tr->idx); free(tr->X0); free(tr->X); free(tr->dX); free(tr->logits); free(tr->dlogits); free(tr->y);
  free(tr->deck_text);
}

static void print_summary(trainer *tr, const gn_memplan *plan, bool check_only) {
  if (!RANK0) return;
  const gn_deck *dk = tr->deck;
  const int64_t hp = dk->hidden + (dk->bias ? 1 : 0);
  const double nparams = 2.0 * (double)dk->blocks * (double)hp * (double)(tr->train.d / 2);
  printf("gnrev_mpi %s on %d rank%s: %s, %lld train / %lld test samples, d = %lld, %d classes\n",
         gn_version, tr->par->size, tr->par->size == 1 ? "" : "s", gn_deck_source_name(dk->source),
         (long long)tr->train.n, (long long)tr->test.n, (long long)tr->train.d, tr->train.classes);
  printf("model: %lld blocks, hidden %lld, %.0f trained parameters; optimizer %s, lr %g, loss %s\n",
         (long long)dk->blocks, (long long)dk->hidden, nparams, gn_deck_method_name(dk->method),
         dk->lr, gn_deck_loss_name(dk->loss));
  printf("batch %lld (%s), %lld steps per epoch, %lld steps; output %s\n", (long long)tr->bs,
         tr->bs == tr->train.n ? "full batch" : "mini-batch", (long long)tr->steps_per_epoch,
         (long long)tr->steps_total, dk->out_dir);
  char *table = gn_memplan_format(plan);
  if (check_only) {
    printf("%s", table ? table : "");
    char *dplan = gn_diag_plan(tr->par, dk, tr->train.d, tr->train.classes);
    if (dplan && dplan[0]) printf("diagnostics:\n%s", dplan);
    free(dplan);
  } else {
    char need[32], have[32];
    gn_sysmem_str(plan->per_rank, need, sizeof need);
    gn_sysmem_str(plan->available, have, sizeof have);
    printf("memory: about %s per rank of %s available\n", need, have);
  }
  free(table);
  if ((dk->method == GN_OPT_GN) && tr->bs > hp)
    printf("notice: batch %lld > features %lld: GN solves least-squares problems (tall case)\n",
           (long long)tr->bs, (long long)hp);
  fflush(stdout);
}

int gn_train_run(const gn_par *par, const gn_deck *deck, const char *deck_path,
                 const char *deck_source, bool check_only) {
  trainer tr_, *tr = &tr_;
  memset(tr, 0, sizeof *tr);
  tr->par = par;
  tr->deck = deck;
  tr->deck_source = deck_source;
  tr->perm_epoch = -1;
  int status = GN_OK;
  tr->deck_text = gn_deck_format(deck);
  if (!tr->deck_text) FAIL_GOTO(GN_ENOMEM, "out of memory formatting the deck");
  CHECK_GOTO(gn_data_load(par, deck, &tr->train, &tr->test));
  CHECK_GOTO(gn_par_agree(par, gn_deck_check_data(deck, deck_path, tr->train.d, tr->train.n, tr->test.n)));
  tr->bs = deck->batch_size > 0 && deck->batch_size < tr->train.n ? deck->batch_size : tr->train.n;
  tr->steps_per_epoch = (tr->train.n + tr->bs - 1) / tr->bs;
  tr->steps_total = deck->epochs * tr->steps_per_epoch;
  if (deck->max_steps > 0 && deck->max_steps < tr->steps_total) tr->steps_total = deck->max_steps;
  gn_memplan plan;
  gn_memplan_compute(par, deck, tr->train.d, tr->train.classes, tr->train.n, tr->test.n, &plan);
  /* The plan is judged before anything sized by the deck is allocated. */
  print_summary(tr, &plan, check_only);
  if (check_only && RANK0) printf("effective deck:\n%s", tr->deck_text);
  CHECK_GOTO(gn_par_agree(par, gn_memplan_check(&plan)));
  CHECK_GOTO(gn_par_agree(par, gn_model_create(deck, tr->train.d, tr->train.classes, &tr->model)));
  if (check_only) goto fail;

  const size_t np = tr->model.nparams;
  tr->theta = malloc(np * sizeof(double));
  tr->work = malloc(np * sizeof(double));
  tr->perm = malloc((size_t)tr->train.n * sizeof(int64_t));
  int st = (!tr->theta || !tr->work || !tr->perm) ? GN_RAISE(GN_ENOMEM, "out of memory for %zu parameters", np) : GN_OK;
  if (st == GN_OK) st = gn_optim_create(deck, np, &tr->opt);
  if (st == GN_OK) {
    int64_t rows = (tr->bs + par->size - 1) / par->size;
    st = reserve_rows(tr, rows > EVAL_CHUNK ? rows : EVAL_CHUNK);
  }
  CHECK_GOTO(gn_par_agree(par, st));
  gn_model_init_params(&tr->model, deck, tr->theta);
  gn_ckpt_state cs;
  CHECK_GOTO(gn_ckpt_restart(par, deck, tr->deck_text, &tr->model, tr->theta,
                             deck->method == GN_OPT_GN ? NULL : &tr->opt, tr->restart_path,
                             sizeof tr->restart_path, &cs));
  if (tr->restart_path[0]) {
    tr->start_step = cs.step;
    if (RANK0) {
      printf("restart: continuing from %s (step %lld, written on %d rank%s)\n", tr->restart_path,
             (long long)cs.step, cs.nranks, cs.nranks == 1 ? "" : "s");
      fflush(stdout);
    }
  } else if (strcmp(deck->restart, "auto") == 0) {
    /* A failed candidate may have left partial values behind: start from the true initial state. */
    gn_model_init_params(&tr->model, deck, tr->theta);
    gn_optim_free(&tr->opt);
    CHECK_GOTO(gn_par_agree(par, gn_optim_create(deck, np, &tr->opt)));
  }
  if (deck->method == GN_OPT_GN && !deck->gn_reference)
    CHECK_GOTO(gn_par_agree(par, gn_sweep_create(par, &tr->model, deck, &tr->gn)));
  CHECK_GOTO(open_outputs(tr, deck_path));
  CHECK_GOTO(create_diagnostics(tr));
  CHECK_GOTO(train_loop(tr));
fail:
  trainer_free(tr);
  return status;
}
