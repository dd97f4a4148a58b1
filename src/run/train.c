/* train.c — a whole run: data, model, optimizer, diagnostics and the training loop.
 *
 * Row t of /metrics describes theta_t after t updates (runlog.h): the batch of update t+1 before
 * (batch_loss_before, from the forward the update does anyway) and after it (batch_change), the
 * train columns (full batch: that batch; mini-batch: running mean over the epoch's batches so far,
 * or the whole training set with train_eval = 'full'), the test set where evaluated. A final row
 * t = T evaluates the whole training and test sets at the final parameters.
 *
 * In full batch the batch after update t is the batch before update t+1, so batch_loss_after of
 * row t is taken from the next update's own forward: the row waits one step (it is written at
 * once where the run stops: checkpoints, signals, the end). */
#include "gnrev/run/train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gnrev/core/array.h"
#include "gnrev/core/err.h"
#include "gnrev/core/fs.h"
#include "gnrev/core/rng.h"
#include "gnrev/core/real.h"
#include "gnrev/core/shm.h"
#include "gnrev/core/sysmem.h"
#include "gnrev/core/version.h"
#include "gnrev/diag/diag.h"
#include "gnrev/diag/diag_plan.h"
#include "gnrev/input/data.h"
#include "gnrev/model/loss.h"
#include "gnrev/model/model.h"
#include "gnrev/optim/optim.h"
#include "gnrev/run/checkpoint.h"
#include "gnrev/run/lock.h"
#include "gnrev/run/memplan.h"
#include "gnrev/run/runlog.h"
#include "gnrev/run/signals.h"

enum { OPT_ARRAYS = 8 /* at most, per optimizer */ };

/* The state at the start of one update: theta_step and what a checkpoint of it holds, so that a
 * run stopped by a bad loss can save the state before the update that went wrong. */
typedef struct {
  int64_t step;                 /* the state is theta_step; -1: empty */
  double loss;                  /* its batch loss, as update `step` measured it (NaN before) */
  gn_real *theta;               /* this rank's slice of the node-shared parameters */
  gn_real *opt_state;           /* its slices of the optimizer's node-shared arrays, one after the other */
  int64_t t, has_momentum;      /* the optimizer's counters */
  double sums[GN_CKPT_SUMS], guard[GN_CKPT_GUARD];
} saved_state;

/* Seconds spent per phase of the loop, summed over the steps of this run (rank 0's clock). */
typedef struct {
  double batch, diag, update, after, rows, flush, eval, ckpt;
} phase_times;

typedef struct {
  const gn_par *par;
  const gn_deck *deck;
  char *deck_text;           /* effective deck */
  const char *deck_source;
  gn_dataset train, test;
  gn_model model;
  gn_shm theta_mem;          /* the parameters, once per node */
  gn_real *theta;
  gn_opt *opt;
  gn_diag *diag;
  gn_runlog *log;
  gn_lock *lock;             /* out_dir's lock, held from before the restart to the end */
  int64_t bs, steps_per_epoch, steps_total;
  bool full_batch;           /* one batch, the whole training set, every step */
  int64_t *perm, perm_epoch;
  int64_t cap;               /* local rows the batch buffers hold */
  int64_t *idx;
  gn_real *X0, *X, *logits;  /* batch inputs; a state and logits for evaluations */
  int32_t *y;
  int64_t n_local, n_batch;  /* the current batch: local and global rows (0: none gathered) */
  int64_t start_step;        /* first update of this run (> 0 after a restart) */
  char restart_path[GN_PATH_MAX + 64]; /* checkpoint continued from ("" if none) */
  char run_id[GN_RUN_ID_CAP]; /* this run's id in run.h5 and every checkpoint */
  char data_fp[GN_DATA_FP_CAP]; /* the fingerprint of the data loaded (gn_data_fingerprint) */
  double sums[GN_CKPT_SUMS]; /* the epoch's running loss sum, correct count, samples */
  double guard[GN_CKPT_GUARD]; /* the divergence guard's record (checkpoint.h) */
  int64_t last_ckpt;         /* step of the newest checkpoint written or continued from (-1: none) */
  saved_state saved[2];      /* the states at the start of updates t (saved[t % 2]) and t - 1 */
  bool warned_kept;          /* the warning of a pseudo-inverse that kept nothing was given */
  bool have_pending;         /* row `pending` waits for its batch_loss_after (full batch) */
  gn_metrics_row pending;
  gn_opt_record pending_rec; /* the optimizer's record of that row's update (values copied) */
  double *pending_values;
  phase_times time;
} trainer;

#define RANK0 (tr->par->rank == 0)

static int reserve_rows(trainer *tr, int64_t n) {
  if (n <= tr->cap) return GN_OK;
  const gn_model *md = &tr->model;
  const size_t r = (size_t)n;
  free(tr->idx); free(tr->X0); free(tr->X); free(tr->logits); free(tr->y);
  tr->idx = malloc(r * sizeof(int64_t));
  tr->X0 = gn_alloc(r * (size_t)md->d);
  tr->X = gn_alloc(r * (size_t)md->d);
  tr->logits = gn_alloc(r * (size_t)md->C);
  tr->y = malloc(r * sizeof(int32_t));
  if (!tr->idx || !tr->X0 || !tr->X || !tr->logits || !tr->y)
    GN_FAIL(GN_ENOMEM, "out of memory for %lld batch rows", (long long)n);
  tr->cap = n;
  return gn_model_reserve(&tr->model, n);
}

/* Collective. Mean loss and accuracy of rows [0, n) of `set` (each rank its gn_par_rows share),
 * at theta, in chunks. Uses X and logits; the current batch (X0, y) stays. */
static int evaluate(trainer *tr, const gn_dataset *set, int64_t n, double *loss, double *acc) {
  int64_t row0, nrows;
  gn_par_rows(n, tr->par->size, tr->par->rank, &row0, &nrows);
  double sums[2] = {0, 0};
  int64_t idx[GN_EVAL_ROWS];
  int32_t y[GN_EVAL_ROWS];
  for (int64_t off = 0; off < nrows; off += GN_EVAL_ROWS) {
    const int64_t k = nrows - off < GN_EVAL_ROWS ? nrows - off : GN_EVAL_ROWS;
    for (int64_t i = 0; i < k; ++i) idx[i] = row0 + off + i;
    gn_data_gather(set, idx, k, tr->X, y);
    gn_model_forward(&tr->model, tr->theta, k, tr->X, tr->logits);
    double l = 0;
    int64_t c = 0;
    gn_loss_eval(tr->deck->loss, k, tr->model.C, tr->logits, y, &l, &c);
    sums[0] += l;
    sums[1] += (double)c;
  }
  CHECK(gn_par_sum(tr->par, sums, 2));
  *loss = n > 0 ? sums[0] / (double)n : NAN;
  *acc = n > 0 ? sums[1] / (double)n : NAN;
  return GN_OK;
}

/* Local. Gathers batch k of epoch e into X0, y: global positions [k bs, k bs + nb) of the epoch's
 * order, this rank taking its gn_par_rows share. A full batch is gathered once. */
static void gather_batch(trainer *tr, int64_t epoch, int64_t k) {
  const int64_t n = tr->train.n;
  if (tr->full_batch && tr->n_batch > 0) return;
  if (tr->perm_epoch != epoch) {
    if (tr->deck->shuffle && !tr->full_batch)
      gn_rng_permutation((uint64_t)tr->deck->seed, GN_RNG_SHUFFLE, (uint32_t)epoch, n, tr->perm);
    else
      for (int64_t i = 0; i < n; ++i) tr->perm[i] = i;
    tr->perm_epoch = epoch;
  }
  const int64_t start = k * tr->bs, nb = n - start < tr->bs ? n - start : tr->bs;
  int64_t row0, nrows;
  gn_par_rows(nb, tr->par->size, tr->par->rank, &row0, &nrows);
  for (int64_t i = 0; i < nrows; ++i) tr->idx[i] = tr->perm[start + row0 + i];
  gn_data_gather(&tr->train, tr->idx, nrows, tr->X0, tr->y);
  tr->n_local = nrows;
  tr->n_batch = nb;
}

/* Collective. The current batch's mean loss and accuracy at theta, by one forward of all its local
 * rows: the same arithmetic as the forward of an update on that batch. */
static int batch_loss(trainer *tr, double *loss, double *acc) {
  const int64_t n = tr->n_local;
  if (n > 0) memcpy(tr->X, tr->X0, (size_t)(n * tr->model.d) * sizeof(gn_real));
  gn_model_forward(&tr->model, tr->theta, n, tr->X, tr->logits);
  double l = 0;
  int64_t c = 0;
  gn_loss_eval(tr->deck->loss, n, tr->model.C, tr->logits, tr->y, &l, &c);
  double sums[2] = {l, (double)c};
  CHECK(gn_par_sum(tr->par, sums, 2));
  *loss = sums[0] / (double)tr->n_batch;
  *acc = sums[1] / (double)tr->n_batch;
  return GN_OK;
}

static int save_diag(void *ctx, gn_h5 *f) { return gn_diag_save((gn_diag *)ctx, f); }

static int checkpoint(trainer *tr, int64_t step, int64_t epoch) {
  const double t0 = gn_par_wtime();
  gn_ckpt_meta meta = {.step = step, .epoch = epoch, .deck = tr->deck_text, .deck_source = tr->deck_source,
                       .extra = save_diag, .extra_ctx = tr->diag, .sums = tr->sums, .run_id = tr->run_id,
                       .data_fp = tr->data_fp, .guard = tr->guard};
  CHECK(gn_ckpt_write(tr->par, tr->deck, &meta, &tr->model, tr->theta, tr->opt));
  tr->last_ckpt = step;
  tr->time.ckpt += gn_par_wtime() - t0;
  return GN_OK;
}

/* Collective. Writes the row waiting for its batch_loss_after, measuring it now if after is NaN and
 * batch_change asks for it (the run stops here, or a checkpoint must find every row written). */
static int flush_pending(trainer *tr, double after, bool flush) {
  if (!tr->have_pending) return GN_OK;
  const double t0 = gn_par_wtime();
  if (isnan(after) && tr->deck->batch_change) {
    double acc;
    CHECK(batch_loss(tr, &after, &acc));
  }
  tr->pending.batch_loss_after = after;
  CHECK(gn_runlog_append(tr->log, &tr->pending, tr->pending_values ? &tr->pending_rec : NULL, flush));
  tr->have_pending = false;
  tr->time.rows += gn_par_wtime() - t0;
  return GN_OK;
}

/* Local. Copies the optimizer's record of the last update for the row that waits. */
static int keep_record(trainer *tr) {
  gn_opt_record rec;
  if (!gn_opt_last_record(tr->opt, &rec)) return GN_OK;
  if (!tr->pending_values) {
    tr->pending_values = gn_alloc_f64((size_t)rec.n);
    if (!tr->pending_values) GN_FAIL(GN_ENOMEM, "out of memory for the optimizer's record");
  }
  memcpy(tr->pending_values, rec.values, (size_t)rec.n * sizeof(double));
  tr->pending_rec = rec;
  tr->pending_rec.values = tr->pending_values;
  return GN_OK;
}

/* "1.2" / "-" for a value measured or not in this row. */
static void fmt_value(double v, const char *fmt, char *buf, size_t cap) {
  if (isnan(v)) snprintf(buf, cap, "-");
  else snprintf(buf, cap, fmt, v);
}

static void fmt_hms(double s, char *buf, size_t cap) {
  if (!isfinite(s) || s < 0) s = 0;
  const long t = (long)(s + 0.5);
  snprintf(buf, cap, "%02ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
}

static void progress_header(const trainer *tr) {
  if (!RANK0) return;
  printf("%8s %9s %12s %8s %12s %8s %11s %10s %9s %9s\n", "step", "epoch", "train_loss", "train_acc",
         "test_loss", "test_acc", "mean_step_s", "samples/s", "elapsed", "ETA");
  fflush(stdout);
}

/* One progress line: the row's values ("-" for those not measured in it), the mean step time of
 * this run so far, throughput and times. */
static void progress(const trainer *tr, const gn_metrics_row *row, double mean_step_s, double samples_s,
                     double elapsed, double eta) {
  if (!RANK0) return;
  char ep[48], tl[24], ta[24], vl[24], va[24], el[48], et[48];
  snprintf(ep, sizeof ep, "%lld/%lld", (long long)row->epoch + 1, (long long)tr->deck->epochs);
  fmt_value(row->train_loss, "%.6g", tl, sizeof tl);
  fmt_value(row->train_acc, "%.4f", ta, sizeof ta);
  fmt_value(row->test_loss, "%.6g", vl, sizeof vl);
  fmt_value(row->test_acc, "%.4f", va, sizeof va);
  fmt_hms(elapsed, el, sizeof el);
  fmt_hms(eta, et, sizeof et);
  printf("%8lld %9s %12s %8s %12s %8s %11.4f %10.1f %9s %9s\n", (long long)row->step, ep, tl, ta, vl, va,
         mean_step_s, samples_s, el, et);
  fflush(stdout);
}

/* The train columns of row `step` of a mini-batch run (running mean, or the whole set). */
static int train_columns(trainer *tr, int64_t step, const gn_step_info *info, double *loss, double *acc) {
  const int64_t k = step % tr->steps_per_epoch;
  if (k == 0) memset(tr->sums, 0, sizeof tr->sums);
  tr->sums[0] += info->loss * (double)tr->n_batch;
  tr->sums[1] += info->acc * (double)tr->n_batch;
  tr->sums[2] += (double)tr->n_batch;
  *loss = tr->sums[0] / tr->sums[2];
  *acc = tr->sums[1] / tr->sums[2];
  const gn_deck *dk = tr->deck;
  if (dk->train_eval == GN_TRAIN_FULL && dk->eval_every > 0 && step % dk->eval_every == 0)
    CHECK(evaluate(tr, &tr->train, tr->train.n, loss, acc));
  return GN_OK;
}

/* ---- the divergence guard --------------------------------------------------------------------- */

/* The guard's copies hold each rank's slice of the node-shared state (gn_shm_slice), so a node
 * holds two copies in all, whatever its rank count. */
static void state_slice(const trainer *tr, size_t n, size_t *lo, size_t *hi) {
  gn_shm_slice(tr->par, n, sizeof(gn_real), lo, hi);
}

/* Collective. Room for the two saved states. */
static int alloc_saved(trainer *tr) {
  gn_opt_array arrays[OPT_ARRAYS];
  const int k = gn_opt_arrays(tr->opt, arrays, OPT_ARRAYS);
  size_t n = 0, lo, hi;
  for (int i = 0; i < k; ++i) {
    state_slice(tr, arrays[i].n, &lo, &hi);
    n += hi - lo;
  }
  state_slice(tr, tr->model.nparams, &lo, &hi);
  int st = GN_OK;
  for (int s = 0; s < 2 && st == GN_OK; ++s) {
    saved_state *ss = &tr->saved[s];
    ss->step = -1;
    ss->theta = gn_alloc(hi - lo);
    ss->opt_state = gn_alloc(n);
    if (!ss->theta || !ss->opt_state)
      st = GN_RAISE(GN_ENOMEM, "out of memory for the divergence guard's copies of %zu parameters", hi - lo);
  }
  return gn_par_agree(tr->par, st);
}

/* Local. Copies this rank's slices of the state at the start of update `step` (theta_step, the
 * optimizer) and the running sums and the guard's record into saved[step % 2];
 * saved[(step - 1) % 2] keeps the one before. The node's state is consistent here: the previous
 * update ended with gn_shm_sync. */
static void keep_state(trainer *tr, int64_t step) {
  saved_state *ss = &tr->saved[step % 2];
  ss->step = step;
  ss->loss = NAN;
  size_t lo, hi;
  state_slice(tr, tr->model.nparams, &lo, &hi);
  memcpy(ss->theta, tr->theta + lo, (hi - lo) * sizeof(gn_real));
  gn_opt_array arrays[OPT_ARRAYS];
  const int k = gn_opt_arrays(tr->opt, arrays, OPT_ARRAYS);
  size_t off = 0;
  for (int i = 0; i < k; ++i) {
    state_slice(tr, arrays[i].n, &lo, &hi);
    memcpy(ss->opt_state + off, arrays[i].data + lo, (hi - lo) * sizeof(gn_real));
    off += hi - lo;
  }
  ss->t = tr->opt->t;
  ss->has_momentum = tr->opt->has_momentum;
  memcpy(ss->sums, tr->sums, sizeof ss->sums);
  memcpy(ss->guard, tr->guard, sizeof ss->guard);
}

/* Collective. The live state back from a saved one (the run stops after checkpointing it). */
static int put_back(trainer *tr, const saved_state *ss) {
  size_t lo, hi;
  state_slice(tr, tr->model.nparams, &lo, &hi);
  memcpy(tr->theta + lo, ss->theta, (hi - lo) * sizeof(gn_real));
  gn_opt_array arrays[OPT_ARRAYS];
  const int k = gn_opt_arrays(tr->opt, arrays, OPT_ARRAYS);
  size_t off = 0;
  for (int i = 0; i < k; ++i) {
    state_slice(tr, arrays[i].n, &lo, &hi);
    memcpy(arrays[i].data + lo, ss->opt_state + off, (hi - lo) * sizeof(gn_real));
    off += hi - lo;
  }
  tr->opt->t = ss->t;
  tr->opt->has_momentum = ss->has_momentum;
  memcpy(tr->sums, ss->sums, sizeof tr->sums);
  memcpy(tr->guard, ss->guard, sizeof tr->guard);
  return gn_shm_sync(tr->par);
}

/* Rank 0. The checkpoint this run wrote of a diverged state (theta_step, before its loss was seen)
 * is renamed <name>.diverged: restart = 'auto' must not pick it, and nothing is deleted. */
static void set_aside_diverged(trainer *tr, int64_t step) {
  if (!RANK0) return;
  char path[GN_PATH_MAX + 64], aside[GN_PATH_MAX + 80];
  gn_ckpt_path(tr->deck, step, path, sizeof path);
  snprintf(aside, sizeof aside, "%s.diverged", path);
  if (rename(path, aside) != 0) {
    fprintf(stderr, "gnrev_mpi: warning: cannot rename the diverged checkpoint %s: %s\n", path, strerror(errno));
    fflush(stderr);
  }
}

/* Collective. Update `step` failed (GN_ENUMERIC, its message set). With theta_good (the update
 * measured a finite loss at theta_step, then its own arithmetic failed) theta_step is the good
 * state; otherwise (a non-finite or diverged loss) theta_step is bad and the good state is the one
 * before. That state is put back and checkpointed, never the diverged weights, and the message says
 * how to continue from it with a smaller lr. Returns GN_ENUMERIC. */
static int stop_numeric(trainer *tr, int64_t step, const gn_step_info *info, bool theta_good, bool suggest_lr) {
  char msg[8192], trace[4096];
  snprintf(msg, sizeof msg, "%s", gn_error_message());
  snprintf(trace, sizeof trace, "%s", gn_error_traceback());
  tr->saved[step % 2].loss = info->loss;
  const saved_state *good = &tr->saved[(theta_good ? step : step + 1) % 2];
  const bool have = good->step == (theta_good ? step : step - 1) && isfinite(good->loss);
  const int64_t diverged_ckpt = tr->last_ckpt; /* before the checkpoint below */
  const double best = tr->guard[GN_GUARD_BEST_STEP], best_loss = tr->guard[GN_GUARD_BEST_LOSS];
  /* The row waiting for its batch_loss_after gets the loss this update measured. */
  int st = flush_pending(tr, isnan(info->loss) ? INFINITY : info->loss, true);
  const size_t used = strlen(msg);
  if (!have) {
    snprintf(msg + used, sizeof msg - used,
             "\n  no earlier state of this run with a finite measured loss is in memory; the checkpoints in "
             "%s/checkpoints are as they were",
             tr->deck->out_dir);
  } else {
    const int64_t s = good->step;
    const double loss = good->loss;
    const int back = put_back(tr, good);
    if (st == GN_OK) st = back;
    if (st == GN_OK) st = checkpoint(tr, s, s / tr->steps_per_epoch);
    char path[GN_PATH_MAX + 64];
    gn_ckpt_path(tr->deck, s, path, sizeof path);
    if (st == GN_OK) {
      if (!theta_good && diverged_ckpt == step) set_aside_diverged(tr, step);
      snprintf(msg + used, sizeof msg - used,
               "\n  the last state with a finite measured loss (step %lld, batch loss %.6g) is saved as %s", (long long)s,
               loss, path);
      if (suggest_lr) {
        const size_t at = strlen(msg);
        snprintf(msg + at, sizeof msg - at,
                 "; to continue from it with a smaller step size, run the same command with\n"
                 "    -P optim:lr=%g -P \"checkpoint:restart='%s'\"",
                 tr->deck->lr / 10, path);
      }
      if (best >= 0 && best != (double)s) {
        const size_t at = strlen(msg);
        gn_ckpt_path(tr->deck, (int64_t)best, path, sizeof path);
        snprintf(msg + at, sizeof msg - at, "\n  (the checkpoint with the lowest measured loss is %s, batch loss %.6g)",
                 path, best_loss);
      }
    } else {
      snprintf(msg + used, sizeof msg - used, "\n  the last good state (step %lld) could not be saved: %s",
               (long long)s, gn_error_message());
    }
  }
  gn_error_set_message(msg, trace);
  return GN_ENUMERIC;
}

/* Collective. Whether an update moved theta by more than its rounding: ||after - before|| >
 * 2^-52 ||before|| (so a bit-identical theta, or one changed only in zeros by a vanishing step, has
 * not moved). before is this rank's slice of theta_step; the sums run over every rank's slice (each
 * node counts the whole vector once, which leaves the ratio as it is). */
static int moved(const trainer *tr, const gn_real *before, bool *yes) {
  size_t lo, hi;
  state_slice(tr, tr->model.nparams, &lo, &hi);
  double s[2] = {0, 0}; /* |after - before|^2, |before|^2 */
  for (size_t i = lo; i < hi; ++i) {
    const double d = tr->theta[i] - before[i - lo];
    s[0] += d * d;
    s[1] += before[i - lo] * before[i - lo];
  }
  CHECK(gn_par_sum(tr->par, s, 2));
  *yes = s[0] > 0x1p-104 * s[1];
  return GN_OK;
}

/* Whether a batch loss diverges: above divergence_factor times the lowest loss so far and above the
 * first one (near convergence a loss may grow by a large factor and still be tiny). */
static bool diverged(const trainer *tr, double loss) {
  const double f = tr->deck->divergence_factor;
  return f > 0 && isfinite(tr->guard[GN_GUARD_MIN]) && loss > f * tr->guard[GN_GUARD_MIN] &&
         loss > tr->guard[GN_GUARD_FIRST];
}

/* Collective. After update `step` succeeded: its loss against the guard (exit 5 when it diverges),
 * then into the guard's record; the checkpoint of theta_step, if any, becomes the best one when its
 * loss is the lowest yet. The first update of a run must move theta (lr > 0, as the deck demands):
 * one that does not will not next time either. Later updates are not held to it, since a run that
 * has converged to the precision of doubles legitimately stops moving. */
static int guard_step(trainer *tr, int64_t step, const gn_step_info *info) {
  tr->saved[step % 2].loss = info->loss;
  if (diverged(tr, info->loss)) {
    gn_error(GN_ENUMERIC, __FILE__, __LINE__, __func__,
             "step %lld: the batch loss %.6g is more than divergence_factor = %g times the lowest so far (%.6g) and "
             "above the first (%.6g): the run diverges",
             (long long)step, info->loss, tr->deck->divergence_factor, tr->guard[GN_GUARD_MIN],
             tr->guard[GN_GUARD_FIRST]);
    return stop_numeric(tr, step, info, false, true);
  }
  double *g = tr->guard;
  if (isnan(g[GN_GUARD_FIRST])) g[GN_GUARD_FIRST] = info->loss;
  if (info->loss < g[GN_GUARD_MIN]) g[GN_GUARD_MIN] = info->loss;
  if (tr->last_ckpt == step && info->loss < g[GN_GUARD_BEST_LOSS]) {
    g[GN_GUARD_BEST_STEP] = (double)step;
    g[GN_GUARD_BEST_LOSS] = info->loss;
  }
  bool has_moved = true;
  if (step == tr->start_step) CHECK(moved(tr, tr->saved[step % 2].theta, &has_moved));
  if (!has_moved) {
    gn_error(GN_ENUMERIC, __FILE__, __LINE__, __func__,
             "step %lld: the update changed no parameter (theta moved by less than its rounding, lr = %g), so "
             "training cannot progress. Pseudo-inverses that keep no singular value (&optim atol, rtol) or a "
             "damping so large that the step vanishes (pinv = 'damped') do this",
             (long long)step, tr->deck->lr);
    return stop_numeric(tr, step, info, true, false);
  }
  return GN_OK;
}

/* Rank 0, once per run. A pseudo-inverse that kept no singular value leaves its half-block as it
 * was; the optimizer's record (series kept_bBBB_S and sigma_max_bBBB_S, see gn.c) says which. */
static void warn_kept_nothing(trainer *tr, int64_t step) {
  gn_opt_record rec;
  if (tr->warned_kept || !RANK0 || !gn_opt_last_record(tr->opt, &rec)) return;
  for (int i = 0; i < rec.n; ++i) {
    int b;
    char half;
    if (sscanf(rec.names[i], "kept_b%d_%c", &b, &half) != 2 || rec.values[i] != 0) continue;
    char want[64];
    double sigma = NAN;
    snprintf(want, sizeof want, "sigma_max_b%03d_%c", b, half);
    for (int j = 0; j < rec.n; ++j)
      if (strcmp(rec.names[j], want) == 0) sigma = rec.values[j];
    const gn_deck *dk = tr->deck;
    fprintf(stderr,
            "gnrev_mpi: warning: step %lld: the pseudo-inverse of block %d, %c kept no singular value: sigma_max = "
            "%.6g is below max(rtol * sigma_max, atol) = max(%g * %.6g, %g) (&optim rtol, atol), so that half-block "
            "does not change (said once per run)\n",
            (long long)step, b, half, sigma, dk->rtol, sigma, dk->atol);
    fflush(stderr);
    tr->warned_kept = true;
    return;
  }
}

static void print_timing(const trainer *tr, int64_t done) {
  if (!RANK0 || done == 0) return;
  const phase_times *t = &tr->time;
  const double n = (double)done;
  printf("time per step (s): update %.4f; besides it batch %.4f, batch change %.4f, rows %.4f, flushes %.4f, "
         "evaluations %.4f, diagnostics %.4f, checkpoints %.4f\n",
         t->update / n, t->batch / n, t->after / n, t->rows / n, t->flush / n, t->eval / n, t->diag / n, t->ckpt / n);
}

static int train_loop(trainer *tr) {
  const gn_deck *dk = tr->deck;
  const double t_start = gn_par_wtime();
  int64_t done = 0;
  if (tr->start_step == 0) CHECK(checkpoint(tr, 0, 0));
  progress_header(tr);
  for (int64_t step = tr->start_step; step < tr->steps_total; ++step) {
    const int64_t epoch = step / tr->steps_per_epoch, k = step % tr->steps_per_epoch;
    gn_metrics_row row = {.step = (double)step, .epoch = (double)epoch, .test_loss = NAN, .test_acc = NAN,
                          .lr = dk->lr, .batch_loss_after = NAN};
    double t0 = gn_par_wtime();
    if (dk->eval_every > 0 && step % dk->eval_every == 0)
      CHECK(evaluate(tr, &tr->test, tr->test.n, &row.test_loss, &row.test_acc));
    tr->time.eval += gn_par_wtime() - t0;
    t0 = gn_par_wtime();
    gather_batch(tr, epoch, k);
    tr->time.batch += gn_par_wtime() - t0;
    t0 = gn_par_wtime();
    CHECK(gn_diag_step(tr->diag, step, tr->theta, tr->n_local, tr->n_batch, tr->X0, tr->y));
    tr->time.diag += gn_par_wtime() - t0;

    keep_state(tr, step);
    t0 = gn_par_wtime();
    const gn_batch batch = {.step = step, .n = tr->n_local, .n_global = tr->n_batch, .X0 = tr->X0, .y = tr->y};
    gn_step_info info;
    const int st = gn_opt_step(tr->opt, tr->theta, &batch, &info);
    const double dt = gn_par_wtime() - t0;
    if (st == GN_ENUMERIC) CHECK(stop_numeric(tr, step, &info, isfinite(info.loss), true));
    CHECK(st);
    warn_kept_nothing(tr, step);
    CHECK(guard_step(tr, step, &info));
    tr->time.update += dt;
    ++done;
    /* The update's own forward measured theta_step on this batch: in full batch that is also the
     * batch after the previous update. */
    CHECK(flush_pending(tr, info.loss, false));
    row.batch_loss_before = info.loss;
    row.step_s = dt;
    if (tr->full_batch) {
      row.train_loss = info.loss;
      row.train_acc = info.acc;
    } else {
      CHECK(train_columns(tr, step, &info, &row.train_loss, &row.train_acc));
    }
    if (dk->batch_change && !tr->full_batch) {
      t0 = gn_par_wtime();
      double a;
      CHECK(batch_loss(tr, &row.batch_loss_after, &a));
      tr->time.after += gn_par_wtime() - t0;
    }
    row.wall_s = gn_par_wtime() - t_start;
    const bool log_now = step % dk->log_every == 0 || step + 1 == tr->steps_total;
    t0 = gn_par_wtime();
    if (tr->full_batch) {
      tr->pending = row;
      tr->have_pending = true;
      CHECK(keep_record(tr));
    } else {
      gn_opt_record rec;
      CHECK(gn_runlog_append(tr->log, &row, gn_opt_last_record(tr->opt, &rec) ? &rec : NULL, false));
    }
    tr->time.rows += gn_par_wtime() - t0;
    if (log_now) {
      t0 = gn_par_wtime();
      CHECK(gn_runlog_flush(tr->log));
      tr->time.flush += gn_par_wtime() - t0;
      const double elapsed = gn_par_wtime() - t_start;
      progress(tr, &row, tr->time.update / (double)done,
               (double)done * (double)tr->bs / (tr->time.update > 0 ? tr->time.update : 1e-300), elapsed,
               elapsed / (double)done * (double)(tr->steps_total - step - 1));
    }
    int signum = 0;
    CHECK(gn_signals_agree(tr->par, &signum));
    const bool ckpt_due = dk->every > 0 && (step + 1) % dk->every == 0 && step + 1 < tr->steps_total;
    if ((signum && step + 1 < tr->steps_total) || ckpt_due) {
      CHECK(flush_pending(tr, NAN, true));
      CHECK(checkpoint(tr, step + 1, (step + 1) / tr->steps_per_epoch));
    }
    if (signum && step + 1 < tr->steps_total)
      GN_FAIL(GN_ESTOPPED,
              "%s received: stopped after step %lld with a checkpoint in %s/checkpoints; run the same "
              "command again to continue",
              gn_signals_name(signum), (long long)(step + 1), dk->out_dir);
  }
  /* Final row: theta_T on the whole training and test sets. */
  const int64_t T = tr->steps_total;
  gn_metrics_row last = {.step = (double)T, .epoch = (double)(T / tr->steps_per_epoch), .lr = dk->lr,
                         .batch_loss_before = NAN, .batch_loss_after = NAN, .step_s = NAN};
  double t0 = gn_par_wtime();
  CHECK(evaluate(tr, &tr->train, tr->train.n, &last.train_loss, &last.train_acc));
  CHECK(evaluate(tr, &tr->test, tr->test.n, &last.test_loss, &last.test_acc));
  tr->time.eval += gn_par_wtime() - t0;
  /* In full batch the whole training set is the batch: its loss at theta_T is the last row's after. */
  CHECK(flush_pending(tr, dk->batch_change ? last.train_loss : NAN, false));
  last.wall_s = gn_par_wtime() - t_start;
  CHECK(gn_runlog_append(tr->log, &last, NULL, false));
  CHECK(gn_diag_final(tr->diag, T, tr->theta));
  CHECK(checkpoint(tr, T, T / tr->steps_per_epoch));
  if (RANK0) {
    printf("final (step %lld): train_loss %.6g train_acc %.4f test_loss %.6g test_acc %.4f, %.1f s in all, "
           "%.4f s mean step\n",
           (long long)T, last.train_loss, last.train_acc, last.test_loss, last.test_acc, gn_par_wtime() - t_start,
           done ? tr->time.update / (double)done : 0.0);
    print_timing(tr, done);
    fflush(stdout);
  }
  return GN_OK;
}

static int create_diagnostics(trainer *tr) {
  const gn_deck *dk = tr->deck;
  char xmf_path[GN_PATH_MAX + 16];
  snprintf(xmf_path, sizeof xmf_path, "%s/run.xmf", dk->out_dir);
  CHECK(gn_diag_create(tr->par, dk, &tr->model, &tr->train, tr->theta, gn_runlog_file(tr->log),
                       gn_runlog_path(tr->log), xmf_path, &tr->diag));
  if (tr->restart_path[0]) {
    /* The baselines are those of the original step 0, kept in the checkpoint. */
    gn_h5 *ck = NULL;
    CHECK(gn_h5_open(tr->par, tr->restart_path, false, &ck));
    const int st = gn_diag_load(tr->diag, ck);
    const int st2 = gn_h5_close(ck);
    CHECK(st);
    CHECK(st2);
  }
  return GN_OK;
}

static void trainer_free(trainer *tr) {
  gn_diag_free(tr->diag);
  gn_runlog_close(tr->log);
  gn_lock_release(tr->lock);
  gn_opt_free(tr->opt);
  gn_model_free(&tr->model);
  gn_data_free(&tr->train);
  gn_data_free(&tr->test);
  gn_shm_free(&tr->theta_mem);
  for (int s = 0; s < 2; ++s) {
    free(tr->saved[s].theta);
    free(tr->saved[s].opt_state);
  }
  free(tr->pending_values);
  free(tr->perm);
  free(tr->idx); free(tr->X0); free(tr->X); free(tr->logits); free(tr->y);
  free(tr->deck_text);
}

/* Rank 0. --plan: whether a node of the planned job would fit a node like this one. */
static void print_plan_verdict(const gn_memplan *plan) {
  char need[32], have[32];
  gn_sysmem_str(plan->per_node, need, sizeof need);
  gn_sysmem_str(plan->available, have, sizeof have);
  const bool fits = plan->available == 0 || plan->per_node <= plan->available;
  printf("plan: %d ranks on %d node%s of %d ranks need about %s per node; a node like this one (%s available) %s\n",
         plan->ranks_per_node * plan->nodes, plan->nodes, plan->nodes == 1 ? "" : "s", plan->ranks_per_node, need,
         have, fits ? "would hold one" : "would not");
}

static void print_summary(trainer *tr, const gn_memplan *plan, bool check_only) {
  if (!RANK0) return;
  const gn_deck *dk = tr->deck;
  const int64_t hp = dk->hidden + (dk->bias ? 1 : 0);
  const double nparams = 2.0 * (double)dk->blocks * (double)hp * (double)(tr->train.d / 2);
  printf("gnrev_mpi %s on %d rank%s: %s, %lld train / %lld test samples, d = %lld, %d classes\n",
         gn_version, tr->par->size, tr->par->size == 1 ? "" : "s", gn_deck_source_name(dk->source),
         (long long)tr->train.n, (long long)tr->test.n, (long long)tr->train.d, tr->train.classes);
  printf("model: %lld blocks, hidden %lld, %s%s, %.0f trained parameters; optimizer %s, lr %g, loss %s\n",
         (long long)dk->blocks, (long long)dk->hidden, gn_deck_activation_name(dk->activation),
         dk->linear_first_block ? " (block 1 linear)" : "", nparams, gn_deck_method_name(dk->method), dk->lr,
         gn_deck_loss_name(dk->loss));
  printf("batch %lld (%s), %lld steps per epoch, %lld steps; output %s\n", (long long)tr->bs,
         tr->full_batch ? "full batch" : "mini-batch", (long long)tr->steps_per_epoch,
         (long long)tr->steps_total, dk->out_dir);
  char *table = gn_memplan_format(plan);
  if (check_only) {
    printf("%s", table ? table : "");
    char *dplan = gn_diag_plan(tr->par, dk, tr->train.d, tr->train.classes);
    if (dplan && dplan[0]) printf("diagnostics:\n%s", dplan);
    free(dplan);
  } else {
    char rank[32], node[32], have[32];
    gn_sysmem_str(plan->per_rank, rank, sizeof rank);
    gn_sysmem_str(plan->per_node, node, sizeof node);
    gn_sysmem_str(plan->available, have, sizeof have);
    printf("memory: about %s per node (%d ranks, %s each besides what they share) of %s available\n", node,
           plan->ranks_per_node, rank, have);
  }
  free(table);
  if ((dk->method == GN_OPT_GN) && tr->bs > hp)
    printf("notice: batch %lld > features %lld: GN solves least-squares problems (tall case)\n",
           (long long)tr->bs, (long long)hp);
  fflush(stdout);
}

/* Collective. theta = the initial parameters, each rank of a node drawing its slice. */
static int init_params(trainer *tr) {
  size_t lo, hi;
  gn_shm_slice(tr->par, tr->model.nparams, sizeof(gn_real), &lo, &hi);
  gn_model_init_params(&tr->model, tr->deck, lo, hi, tr->theta);
  return gn_shm_sync(tr->par);
}

/* Collective. out_dir must be a folder or not exist yet (a run creates it): a file of that name
 * would make the lock or MPI-IO fail inside it, with a reason that does not say why. */
static int out_dir_usable(const trainer *tr) {
  const char *dir = tr->deck->out_dir;
  int st = GN_OK;
  struct stat sb;
  if (RANK0 && stat(dir, &sb) != 0) {
    if (errno != ENOENT) st = GN_RAISE(GN_EIO, "cannot create output folder %s: %s", dir, strerror(errno));
  } else if (RANK0 && !S_ISDIR(sb.st_mode)) {
    st = GN_RAISE(GN_EIO, "out_dir %s exists and is not a folder: give out_dir a folder (it is created if missing)",
                  dir);
  }
  return gn_par_agree(tr->par, st);
}

/* Collective. Makes out_dir this run's before anything in it is read or written: a run creates it
 * and takes its lock; --check (dry) changes nothing and judges the lock as taking it would. */
static int claim_out_dir(trainer *tr, bool dry) {
  CHECK(out_dir_usable(tr));
  if (dry) return gn_lock_probe(tr->par, tr->deck->out_dir);
  int st = GN_OK;
  if (RANK0 && gn_mkdir_p(tr->deck->out_dir) != 0)
    st = GN_RAISE(GN_EIO, "cannot create output folder %s: %s", tr->deck->out_dir, strerror(errno));
  CHECK(gn_par_agree(tr->par, st));
  return gn_lock_take(tr->par, tr->deck->out_dir, &tr->lock);
}

/* Collective. restart = 'auto' found no checkpoint that loads: starting afresh would replace
 * run.h5, so it is refused when run.h5 holds rows or when checkpoints were there but damaged. */
static int may_start_afresh(trainer *tr, const gn_ckpt_state *cs) {
  const gn_deck *dk = tr->deck;
  gn_runlog_found found;
  CHECK(gn_runlog_peek(tr->par, dk->out_dir, &found));
  if (found.rows == 0 && cs->damaged == 0) return GN_OK;
  char what[GN_PATH_MAX + 256];
  if (found.rows > 0 && cs->damaged > 0)
    snprintf(what, sizeof what, "out_dir %s holds run.h5 with %lld rows but every one of its %lld checkpoints is "
             "damaged (each kept as <name>.damaged)", dk->out_dir, (long long)found.rows, (long long)cs->damaged);
  else if (found.rows > 0)
    snprintf(what, sizeof what, "out_dir %s holds run.h5 with %lld rows but no checkpoint to continue it from",
             dk->out_dir, (long long)found.rows);
  else
    snprintf(what, sizeof what, "every one of the %lld checkpoints in out_dir %s is damaged (each kept as "
             "<name>.damaged)", (long long)cs->damaged, dk->out_dir);
  GN_FAIL(GN_EINPUT,
          "%s: restart = 'auto' will not start afresh over it. To start afresh anyway, set &checkpoint "
          "restart = 'none' (run.h5 is then replaced) or use another out_dir; to continue from a checkpoint "
          "kept elsewhere, name it in restart",
          what);
}

/* Collective. A fresh run id in tr->run_id: 128 random bits from rank 0. */
static int new_run_id(trainer *tr) {
  unsigned char bits[16] = {0};
  if (RANK0) {
    FILE *fp = fopen("/dev/urandom", "rb");
    const size_t got = fp ? fread(bits, 1, sizeof bits, fp) : 0;
    if (fp) fclose(fp);
    if (got != sizeof bits) {
      /* No /dev/urandom: the clock and the pid still tell runs apart. */
      const uint64_t a = (uint64_t)(gn_par_wtime() * 1e9), b = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull;
      memcpy(bits, &a, 8);
      memcpy(bits + 8, &b, 8);
    }
  }
  CHECK(gn_par_bcast(tr->par, bits, sizeof bits, 0));
  for (int i = 0; i < 16; ++i) snprintf(tr->run_id + 2 * i, 3, "%02x", bits[i]);
  return GN_OK;
}

/* Collective. A checkpoint continues into out_dir's run.h5 only if both carry the same run id;
 * files of older versions, without one, are continued with a warning. */
static int same_run(trainer *tr, const gn_ckpt_state *cs) {
  gn_runlog_found found;
  CHECK(gn_runlog_peek(tr->par, tr->deck->out_dir, &found));
  snprintf(tr->run_id, sizeof tr->run_id, "%s", cs->run_id);
  if (!found.exists) return GN_OK;
  if (found.run_id[0] && cs->run_id[0] && strcmp(found.run_id, cs->run_id) != 0)
    GN_FAIL(GN_EINPUT,
            "%s/run.h5 belongs to another run (run_id %s) than checkpoint %s (run_id %s): refusing to append "
            "to it. Continue the checkpoint in an out_dir without run.h5 (a new run.h5 then starts at its step), "
            "or move that run.h5 away",
            tr->deck->out_dir, found.run_id, tr->restart_path, cs->run_id);
  if ((!found.run_id[0] || !cs->run_id[0]) && RANK0) {
    fprintf(stderr,
            "gnrev_mpi: warning: %s has no run_id (written by an older gnrev): cannot check that %s/run.h5 "
            "belongs to the run of checkpoint %s; continuing\n",
            !cs->run_id[0] ? tr->restart_path : "run.h5", tr->deck->out_dir, tr->restart_path);
    fflush(stderr);
  }
  if (!tr->run_id[0]) snprintf(tr->run_id, sizeof tr->run_id, "%s", found.run_id);
  return GN_OK;
}

/* Local (the same on every rank). A checkpoint continues only on the data it was trained on. */
static int same_data(trainer *tr, const gn_ckpt_state *cs) {
  if (!cs->data_fp[0]) {
    if (RANK0) {
      fprintf(stderr, "gnrev_mpi: warning: checkpoint %s has no data_fingerprint (written by an older gnrev): "
              "cannot check that the data are those it was trained on; continuing\n", tr->restart_path);
      fflush(stderr);
    }
    return GN_OK;
  }
  if (strcmp(cs->data_fp, tr->data_fp) != 0)
    GN_FAIL(GN_EINPUT,
            "the data differ from those checkpoint %s was trained on (a data file replaced or changed?):\n"
            "  checkpoint: %s\n  now:        %s\n"
            "  restore the data it was trained on, or start afresh with restart = 'none' or another out_dir",
            tr->restart_path, cs->data_fp, tr->data_fp);
  return GN_OK;
}

/* How a run of the deck starts (decide_start). */
typedef struct {
  gn_ckpt_state cs;        /* resuming: what the checkpoint tr->restart_path holds */
  bool complete;           /* resuming from a checkpoint of the final step: nothing left to do */
  char fresh_why[GN_PATH_MAX + 96]; /* starting afresh: why */
} start_plan;

/* Collective. How the run starts, from out_dir as it is and the deck's restart: from the checkpoint
 * gn_ckpt_restart picks (tr->restart_path, loaded into theta and the optimizer), afresh
 * (restart_path ""), or refused (the status and message the run exits with: out_dir in use by
 * another run, a checkpoint of another deck, run or data, restart = 'auto' over a run it cannot
 * continue). The run and --check (dry: nothing on disk changes, no lock is taken) both decide
 * here, so --check says what the run will do. */
static int decide_start(trainer *tr, bool dry, start_plan *sp) {
  const gn_deck *deck = tr->deck;
  memset(sp, 0, sizeof *sp);
  CHECK(claim_out_dir(tr, dry));
  CHECK(init_params(tr));
  CHECK(gn_ckpt_restart(tr->par, deck, tr->deck_text, &tr->model, tr->theta, tr->opt, dry, tr->restart_path,
                        sizeof tr->restart_path, &sp->cs));
  if (tr->restart_path[0]) {
    CHECK(same_run(tr, &sp->cs));
    CHECK(same_data(tr, &sp->cs));
    sp->complete = sp->cs.step >= tr->steps_total;
    return GN_OK;
  }
  if (strcmp(deck->restart, "auto") == 0) {
    CHECK(may_start_afresh(tr, &sp->cs));
    snprintf(sp->fresh_why, sizeof sp->fresh_why, "no checkpoint in %s/checkpoints", deck->out_dir);
    return GN_OK;
  }
  /* restart = 'none' replaces run.h5 whatever it holds: only whether it is there is said. */
  char path[GN_PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/run.h5", deck->out_dir);
  int there = RANK0 && access(path, F_OK) == 0;
  CHECK(gn_par_bcast(tr->par, &there, sizeof there, 0));
  snprintf(sp->fresh_why, sizeof sp->fresh_why, "restart = 'none'%s", there ? ": run.h5 would be replaced" : "");
  return GN_OK;
}

/* Collective. Takes out_dir, then theta, the optimizer and the step to start from: a checkpoint as
 * the deck's restart says, or the initial state; *complete when that checkpoint is already the final
 * step. */
static int restore(trainer *tr, bool *complete) {
  start_plan sp;
  CHECK(decide_start(tr, false, &sp));
  *complete = sp.complete;
  if (tr->restart_path[0]) {
    const gn_ckpt_state *cs = &sp.cs;
    tr->start_step = cs->step;
    tr->last_ckpt = cs->step;
    memcpy(tr->guard, cs->guard, sizeof tr->guard);
    memcpy(tr->sums, cs->sums, sizeof tr->sums);
    if (RANK0) {
      printf("restart: continuing from %s (step %lld, written on %d rank%s)\n", tr->restart_path,
             (long long)cs->step, cs->nranks, cs->nranks == 1 ? "" : "s");
      fflush(stdout);
    }
  } else if (strcmp(tr->deck->restart, "auto") == 0) {
    /* A failed candidate may have left partial values behind: start from the true initial state. */
    CHECK(init_params(tr));
    CHECK(gn_opt_reset(tr->opt));
  }
  if (!tr->run_id[0]) CHECK(new_run_id(tr));
  return GN_OK;
}

/* Collective. --check: the line saying how a run of this deck would start, from the same decision
 * (decide_start) with nothing on disk changed. A refusal is printed and returned with its status,
 * so --check exits as the run would. */
static int report_start(trainer *tr) {
  start_plan sp;
  const int st = decide_start(tr, true, &sp);
  if (RANK0) {
    char *msg = st != GN_OK ? gn_escape_text(gn_error_message()) : NULL;
    if (st != GN_OK)
      printf("restart: would refuse: %s\n", msg ? msg : gn_error_message());
    else if (tr->restart_path[0])
      printf("restart: would resume from step %lld (%s)%s\n", (long long)sp.cs.step, tr->restart_path,
             sp.complete ? ": the run is complete, nothing left to do" : "");
    else
      printf("restart: would start fresh: %s\n", sp.fresh_why);
    free(msg);
    fflush(stdout);
  }
  return st;
}

/* Local. steps_total = epochs x steps_per_epoch, bounded by max_steps, in checked arithmetic: a
 * product past int64 (epochs = 2**57) is refused unless max_steps bounds it. */
static int count_steps(trainer *tr) {
  const gn_deck *dk = tr->deck;
  int64_t total = 0;
  const bool overflow = __builtin_mul_overflow(dk->epochs, tr->steps_per_epoch, &total);
  if (dk->max_steps > 0 && (overflow || dk->max_steps < total)) total = dk->max_steps;
  else if (overflow)
    GN_FAIL(GN_EINPUT,
            "epochs = %lld with %lld steps per epoch is more than 2^63 - 1 steps: lower epochs, or set "
            "max_steps in &run",
            (long long)dk->epochs, (long long)tr->steps_per_epoch);
  tr->steps_total = total;
  return GN_OK;
}

int gn_train_run(const gn_par *par, const gn_deck *deck, const char *deck_path,
                 const char *deck_source, const gn_train_opts *opts) {
  const bool check_only = opts->check_only;
  trainer tr_, *tr = &tr_;
  memset(tr, 0, sizeof *tr);
  tr->par = par;
  tr->deck = deck;
  tr->deck_source = deck_source;
  tr->perm_epoch = -1;
  tr->last_ckpt = -1;
  tr->guard[GN_GUARD_FIRST] = NAN;
  tr->guard[GN_GUARD_MIN] = INFINITY;
  tr->guard[GN_GUARD_BEST_STEP] = -1;
  tr->guard[GN_GUARD_BEST_LOSS] = INFINITY;
  int status = GN_OK;
  tr->deck_text = gn_deck_format(deck);
  if (!tr->deck_text) FAIL_GOTO(GN_ENOMEM, "out of memory formatting the deck");
  CHECK_GOTO(gn_data_load(par, deck, &tr->train, &tr->test));
  CHECK_GOTO(gn_par_agree(par, gn_deck_check_data(deck, deck_path, tr->train.d, tr->train.n, tr->test.n)));
  CHECK_GOTO(gn_data_fingerprint(par, &tr->train, &tr->test, tr->data_fp, sizeof tr->data_fp));
  tr->bs = deck->batch_size > 0 && deck->batch_size < tr->train.n ? deck->batch_size : tr->train.n;
  tr->full_batch = tr->bs == tr->train.n;
  tr->steps_per_epoch = (tr->train.n + tr->bs - 1) / tr->bs;
  CHECK_GOTO(gn_par_agree(par, count_steps(tr)));
  gn_memplan plan;
  gn_par layout = *par;
  if (opts->plan_ranks > 0) {
    /* --plan: another job's layout. The memory plan reads only the rank and node counts. */
    layout.size = opts->plan_ranks;
    layout.node_size = opts->plan_per_node < opts->plan_ranks ? opts->plan_per_node : opts->plan_ranks;
    layout.nnodes = (layout.size + layout.node_size - 1) / layout.node_size;
    layout.uniform = layout.size % layout.node_size == 0;
  }
  gn_memplan_compute(&layout, deck, tr->train.d, tr->train.classes, tr->train.n, tr->train.n_pool, tr->test.n, &plan);
  plan.planned = opts->plan_ranks > 0;
  /* The plan is judged before anything sized by the deck is allocated. */
  print_summary(tr, &plan, check_only);
  if (check_only && RANK0) printf("effective deck:\n%s", tr->deck_text);
  /* A planned layout is not this job: it is reported, not refused, and the rest of --check goes on. */
  if (opts->plan_ranks > 0 && RANK0) print_plan_verdict(&plan);
  if (opts->plan_ranks == 0) CHECK_GOTO(gn_par_agree(par, gn_memplan_check(&plan)));
  CHECK_GOTO(gn_par_agree(par, gn_model_create(par, deck, tr->train.d, tr->train.classes, &tr->model)));
  /* The parameters and the optimizer hold a checkpoint while it is checked, for --check too. */
  const size_t np = tr->model.nparams;
  CHECK_GOTO(gn_par_agree(par, gn_shm_alloc(par, np * sizeof(gn_real), "the parameters", &tr->theta_mem)));
  tr->theta = tr->theta_mem.base;
  CHECK_GOTO(gn_opt_create(par, deck, &tr->model, &tr->opt));
  if (check_only) {
    status = report_start(tr);
    goto fail;
  }

  tr->perm = malloc((size_t)tr->train.n * sizeof(int64_t));
  int st = !tr->perm ? GN_RAISE(GN_ENOMEM, "out of memory for the order of %lld samples", (long long)tr->train.n) : GN_OK;
  if (st == GN_OK) {
    const int64_t rows = (tr->bs + par->size - 1) / par->size;
    st = reserve_rows(tr, rows > GN_EVAL_ROWS ? rows : GN_EVAL_ROWS);
  }
  CHECK_GOTO(gn_par_agree(par, st));
  CHECK_GOTO(alloc_saved(tr));
  bool complete = false;
  CHECK_GOTO(restore(tr, &complete));
  if (complete) {
    if (RANK0) {
      printf("run complete: %s already holds all %lld steps (checkpoint %s); nothing to do. Raise epochs or "
             "max_steps to continue it, or use another out_dir for a new run.\n",
             deck->out_dir, (long long)tr->steps_total, tr->restart_path);
      fflush(stdout);
    }
    goto fail;
  }
  int status_dir = GN_OK;
  if (RANK0 && gn_mkdir_p(deck->out_dir) != 0)
    status_dir = GN_RAISE(GN_EIO, "cannot create output folder %s: %s", deck->out_dir, strerror(errno));
  CHECK_GOTO(gn_par_agree(par, status_dir));
  gn_opt_record rec;
  const gn_runlog_meta meta = {.deck_text = tr->deck_text, .deck_source = deck_source, .deck_path = deck_path,
                               .nparams = np, .restart_step = tr->restart_path[0] ? tr->start_step : 0,
                               .restart_path = tr->restart_path, .run_id = tr->run_id, .data_fp = tr->data_fp};
  CHECK_GOTO(gn_runlog_open(par, deck, &meta, gn_opt_last_record(tr->opt, &rec) ? rec.group : NULL, &tr->log));
  CHECK_GOTO(create_diagnostics(tr));
  CHECK_GOTO(train_loop(tr));
fail:
  trainer_free(tr);
  return status;
}
