/* runlog.c — run.h5's layout and rows (runlog.h). The /metrics columns, their order and their
 * descriptions are defined here and nowhere else. */
#include "gnrev/run/runlog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gnrev/core/err.h"
#include "gnrev/core/real.h"
#include "gnrev/core/version.h"

struct gn_runlog {
  const gn_par *par;
  gn_h5 *file;
  char path[GN_PATH_MAX + 16];
  bool described;  /* the /metrics columns carry their descriptions */
};

static const char *const NAMES[] = {"step", "epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr",
                                    "wall_s", "batch_loss_before", "batch_loss_after", "step_s"};
enum { N_METRICS = sizeof NAMES / sizeof *NAMES };

/* description, units; every column's dims is "row" */
static const char *const DESC[N_METRICS][2] = {
    {"updates taken: the row describes theta_step", "1"},
    {"epoch of the row's batch", "1"},
    {"full batch: mean loss of the batch at theta_step; mini-batch: running mean over the epoch's batches "
     "so far (the whole training set at evaluations with train_eval = 'full'); final row: whole training set",
     "nats (ce) or 1 (mse)"},
    {"accuracy, measured as train_loss", "fraction"},
    {"mean loss on the test set at theta_step; NaN where not evaluated", "nats (ce) or 1 (mse)"},
    {"accuracy on the test set at theta_step; NaN where not evaluated", "fraction"},
    {"step size", "1"},
    {"wall-clock seconds since the start of training", "s"},
    {"loss of the row's batch just before its own update", "nats (ce) or 1 (mse)"},
    {"loss of the same batch just after its own update; NaN unless batch_change", "nats (ce) or 1 (mse)"},
    {"seconds taken by the update (rank 0)", "s"}};

static void row_values(const gn_metrics_row *r, double v[N_METRICS]) {
  const double vals[N_METRICS] = {r->step, r->epoch, r->train_loss, r->train_acc, r->test_loss, r->test_acc,
                                  r->lr, r->wall_s, r->batch_loss_before, r->batch_loss_after, r->step_s};
  memcpy(v, vals, sizeof vals);
}

/* Collective. Continues an existing run.h5 from meta->restart_step. */
static int reopen(gn_runlog *log, const gn_deck *deck, const gn_runlog_meta *meta, const char *rec_group) {
  const gn_par *par = log->par;
  CHECK(gn_h5_open(par, log->path, true, &log->file));
  gn_h5 *f = log->file;
  CHECK(gn_h5_truncate_series(f, "/metrics", meta->restart_step));
  if (rec_group) CHECK(gn_h5_truncate_series(f, rec_group, meta->restart_step));
  char *prev = NULL, note[GN_PATH_MAX + 256];
  if (gn_h5_read_attr_str(f, "/", "restarts", &prev) != GN_OK) {
    gn_error_clear();
    prev = NULL;
  }
  snprintf(note, sizeof note, "%s%sstep %lld on %d ranks from %s", prev ? prev : "", prev ? "; " : "",
           (long long)meta->restart_step, par->size, meta->restart_path);
  free(prev);
  CHECK(gn_h5_attr_str(f, "/", "restarts", note));
  const char *const ids[2][2] = {{"run_id", meta->run_id}, {"data_fingerprint", meta->data_fp}};
  for (int i = 0; i < 2; ++i) {
    char *id = NULL;
    if (gn_h5_read_attr_str(f, "/", ids[i][0], &id) != GN_OK) {
      gn_error_clear();
      CHECK(gn_h5_attr_str(f, "/", ids[i][0], ids[i][1]));
    }
    free(id);
  }
  CHECK(gn_h5_attr_i64(f, "/", "nranks", par->size));
  CHECK(gn_h5_attr_str(f, "/", "deck", meta->deck_text));
  log->described = gn_h5_series_len(f, "/metrics/step") > 0;
  (void)deck;
  return GN_OK;
}

/* Collective. A new run.h5 with the run's identity in its root attributes. */
static int create(gn_runlog *log, const gn_runlog_meta *meta) {
  CHECK(gn_h5_create(log->par, log->path, &log->file));
  gn_h5 *f = log->file;
  CHECK(gn_h5_attr_str(f, "/", "format", "gnrev-run-1"));
  CHECK(gn_h5_attr_str(f, "/", "run_id", meta->run_id));
  CHECK(gn_h5_attr_str(f, "/", "data_fingerprint", meta->data_fp));
  CHECK(gn_h5_attr_str(f, "/", "deck", meta->deck_text));
  CHECK(gn_h5_attr_str(f, "/", "deck_source", meta->deck_source ? meta->deck_source : ""));
  CHECK(gn_h5_attr_str(f, "/", "deck_path", meta->deck_path ? meta->deck_path : ""));
  CHECK(gn_h5_attr_i64(f, "/", "nranks", log->par->size));
  CHECK(gn_h5_attr_str(f, "/", "version", gn_version));
  CHECK(gn_h5_attr_str(f, "/", "precision", GN_PRECISION_NAME));
  CHECK(gn_h5_attr_str(f, "/", "compiler", __VERSION__));
  CHECK(gn_h5_attr_str(f, "/", "cflags", gn_build_cflags));
  CHECK(gn_h5_attr_i64(f, "/", "nparams", (int64_t)meta->nparams));
  if (meta->restart_path && meta->restart_path[0]) CHECK(gn_h5_attr_str(f, "/", "restarts", meta->restart_path));
  return GN_OK;
}

int gn_runlog_open(const gn_par *par, const gn_deck *deck, const gn_runlog_meta *meta, const char *rec_group,
                   gn_runlog **out) {
  *out = NULL;
  gn_runlog *log = calloc(1, sizeof *log);
  CHECK(gn_par_agree(par, log ? GN_OK : GN_RAISE(GN_ENOMEM, "out of memory")));
  log->par = par;
  snprintf(log->path, sizeof log->path, "%s/run.h5", deck->out_dir);
  struct stat sb;
  int exists = stat(log->path, &sb) == 0;
  int status = gn_par_bcast(par, &exists, sizeof exists, 0);
  if (status == GN_OK)
    status = meta->restart_step > 0 && exists ? reopen(log, deck, meta, rec_group) : create(log, meta);
  if (status != GN_OK) {
    gn_error_trace(__FILE__, __LINE__, __func__);
    gn_runlog_close(log);
    return status;
  }
  *out = log;
  return GN_OK;
}

int gn_runlog_close(gn_runlog *log) {
  if (!log) return GN_OK;
  int st = log->file ? gn_h5_close(log->file) : GN_OK;
  free(log);
  return st;
}

int gn_runlog_peek(const gn_par *par, const char *out_dir, gn_runlog_found *found) {
  memset(found, 0, sizeof *found);
  char path[GN_PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/run.h5", out_dir);
  struct stat sb;
  int exists = stat(path, &sb) == 0;
  CHECK(gn_par_bcast(par, &exists, sizeof exists, 0));
  if (!exists) return GN_OK;
  found->exists = true;
  gn_h5 *f = NULL;
  CHECK(gn_h5_open(par, path, false, &f));
  found->rows = gn_h5_series_len(f, "/metrics/step");
  if (found->rows < 0) found->rows = 0;
  char *id = NULL;
  if (gn_h5_read_attr_str(f, "/", "run_id", &id) == GN_OK)
    snprintf(found->run_id, sizeof found->run_id, "%s", id);
  else
    gn_error_clear();
  free(id);
  return gn_h5_close(f);
}

gn_h5 *gn_runlog_file(gn_runlog *log) { return log->file; }

const char *gn_runlog_path(const gn_runlog *log) { return log->path; }

static int describe(gn_runlog *log) {
  for (int i = 0; i < N_METRICS; ++i) {
    char path[64];
    snprintf(path, sizeof path, "/metrics/%s", NAMES[i]);
    CHECK(gn_h5_describe(log->file, path, DESC[i][0], DESC[i][1], "row"));
  }
  log->described = true;
  return GN_OK;
}

/* Local. After a failed write to run.h5: says what it keeps and how to go on. Returns status. */
static int not_appended(const gn_runlog *log, int64_t step, int status) {
  if (status != GN_EIO) return status;
  char msg[8192];
  snprintf(msg, sizeof msg,
           "%s\n  %s keeps the rows before step %lld: free some space, then run the same command to continue "
           "from the newest checkpoint",
           gn_error_message(), log->path, (long long)step);
  gn_error_set_message(msg, gn_error_traceback());
  return status;
}

int gn_runlog_append(gn_runlog *log, const gn_metrics_row *row, const gn_opt_record *rec, bool flush) {
  double v[N_METRICS];
  row_values(row, v);
  const int64_t step = (int64_t)row->step;
  CHECK(not_appended(log, step, gn_h5_append(log->file, "/metrics", N_METRICS, NAMES, v)));
  if (!log->described) CHECK(not_appended(log, step, describe(log)));
  if (rec) CHECK(not_appended(log, step, gn_h5_append(log->file, rec->group, rec->n, rec->names, rec->values)));
  return flush ? not_appended(log, step, gn_h5_flush(log->file)) : GN_OK;
}

int gn_runlog_flush(gn_runlog *log) { return gn_h5_flush(log->file); }
