/* runlog.h — run.h5, the record of a run (docs/output-format.md): its root attributes, one
 * /metrics row per update plus a final row, the optimizer's per-update record (/gn, /vivit), and
 * the cut back to a checkpoint's step when a run continues. The diagnostics write their own
 * groups into the same file (gn_runlog_file). */
#ifndef GNREV_RUN_RUNLOG_H
#define GNREV_RUN_RUNLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gnrev/core/h5io.h"
#include "gnrev/core/par.h"
#include "gnrev/input/deck.h"
#include "gnrev/optim/optim.h"

/* One row of /metrics; NaN marks a value not measured in that row. */
typedef struct {
  double step;              /* updates taken: the row describes theta_step */
  double epoch;             /* epoch of the row's batch */
  double train_loss, train_acc; /* full batch: the batch at theta_step; mini-batch: running mean over
                                 * the epoch's batches so far (or the whole training set at
                                 * evaluations with train_eval = 'full'); final row: whole set */
  double test_loss, test_acc;   /* the test set at theta_step where evaluated */
  double lr;
  double wall_s;            /* seconds since training started */
  double batch_loss_before; /* the row's batch just before its own update */
  double batch_loss_after;  /* the same batch just after it (batch_change) */
  double step_s;            /* seconds the update took (rank 0) */
} gn_metrics_row;

typedef struct gn_runlog gn_runlog;

/* Room for a run id: 32 hex digits drawn at a run's first start, kept by its continuations. */
enum { GN_RUN_ID_CAP = 40 };
/* Room for the data fingerprint (gn_data_fingerprint). */
enum { GN_DATA_FP_CAP = 256 };

/* What identifies the run in run.h5's root attributes. */
typedef struct {
  const char *deck_text;    /* effective deck */
  const char *deck_source;  /* the deck file as given */
  const char *deck_path;    /* where it was read from */
  size_t nparams;
  int64_t restart_step;     /* > 0: continue <out_dir>/run.h5 from this step (rows t < step stay) */
  const char *restart_path; /* the checkpoint continued from ("" when starting afresh) */
  const char *run_id;       /* the run's id (root attribute run_id) */
  const char *data_fp;      /* the fingerprint of the data (root attribute data_fingerprint) */
} gn_runlog_meta;

/* Collective on par->comm. Creates <out_dir>/run.h5, or opens it to continue when
 * meta->restart_step > 0 and it exists: the /metrics series and the optimizer's record group are
 * cut to restart_step rows and the restart is noted in the root attribute `restarts` (a file of an
 * older version gets the run_id and data_fingerprint it lacked). rec_group
 * (NULL: none) names the optimizer's record group. */
int gn_runlog_open(const gn_par *par, const gn_deck *deck, const gn_runlog_meta *meta, const char *rec_group,
                   gn_runlog **log);
/* Collective. Closes the file; NULL is a no-op. */
int gn_runlog_close(gn_runlog *log);

/* What an existing <out_dir>/run.h5 holds, looked at before a run decides how to start. */
typedef struct {
  bool exists;    /* the file is there */
  int64_t rows;   /* its /metrics rows (0 when absent or empty) */
  char run_id[GN_RUN_ID_CAP]; /* its root attribute run_id ("" when absent: an older file) */
} gn_runlog_found;

/* Collective on par->comm. Looks at <out_dir>/run.h5 without changing it; a file that is there but
 * cannot be read as HDF5 is GN_EIO. */
int gn_runlog_peek(const gn_par *par, const char *out_dir, gn_runlog_found *found);

/* Local. The open run.h5 (for the diagnostics' groups) and the path it was opened with. */
gn_h5 *gn_runlog_file(gn_runlog *log);
const char *gn_runlog_path(const gn_runlog *log);

/* Collective. Appends a /metrics row and, when rec is not NULL, the optimizer's record of the
 * row's update; with flush, flushes the file (a sync of every rank's writes: once per log line). */
int gn_runlog_append(gn_runlog *log, const gn_metrics_row *row, const gn_opt_record *rec, bool flush);

/* Collective. Flushes run.h5 to the operating system. */
int gn_runlog_flush(gn_runlog *log);

#endif
