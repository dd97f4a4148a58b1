/* checkpoint.h — checkpoint files <out_dir>/checkpoints/step_%08d.h5 (docs/output-format.md):
 * written atomically (temporary name, fsync, rename), the newest `keep` kept plus step 0. */
#ifndef GNREV_CHECKPOINT_H
#define GNREV_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>

#include "gnrev/input/deck.h"
#include "gnrev/core/h5io.h"
#include "gnrev/model/model.h"
#include "gnrev/optim/optim.h"
#include "gnrev/core/par.h"
#include "gnrev/core/real.h"
#include "gnrev/run/runlog.h"

/* Running sums over the epoch's batches so far (the mini-batch train columns' running mean):
 * loss sum, correct count, samples (root attributes epoch_loss_sum, epoch_correct_sum,
 * epoch_samples). */
enum { GN_CKPT_SUMS = 3 };

/* The divergence guard's record (root attributes loss_first, loss_min, best_step, best_loss): the
 * first and the lowest batch loss measured in the run, and the checkpoint whose own state has the
 * lowest measured loss (its step, -1 when none; that loss). The pruning never deletes that one. */
enum { GN_CKPT_GUARD = 4 };
enum { GN_GUARD_FIRST, GN_GUARD_MIN, GN_GUARD_BEST_STEP, GN_GUARD_BEST_LOSS };

/* What a checkpoint records besides the model. */
typedef struct {
  int64_t step;        /* updates taken */
  int64_t epoch;       /* epoch of the next batch */
  const char *deck;    /* effective deck text */
  const char *deck_source; /* the deck file as given */
  /* Called before the file is closed, to add more state (diagnostic baselines); may be NULL. */
  int (*extra)(void *ctx, gn_h5 *file);
  void *extra_ctx;
  const double *sums;        /* GN_CKPT_SUMS running sums, or NULL to leave them out */
  const char *run_id;        /* the run's id, as in run.h5 */
  const char *data_fp;       /* the fingerprint of the data trained on (gn_data_fingerprint) */
  const double *guard;       /* GN_CKPT_GUARD values, or NULL to leave them out */
} gn_ckpt_meta;

/* Collective on par->comm. Writes the checkpoint of `meta->step` into deck->out_dir, then
 * removes the oldest ones beyond deck->keep (never step 0, nor the best of meta->guard). */
int gn_ckpt_write(const gn_par *par, const gn_deck *deck, const gn_ckpt_meta *meta,
                  const gn_model *model, const gn_real *theta, gn_opt *opt);

/* What a restart recovered. */
typedef struct {
  int64_t step, epoch;   /* updates taken; epoch of the next batch */
  int nranks;            /* ranks of the run that wrote it */
  double sums[GN_CKPT_SUMS]; /* the epoch's running sums at the checkpoint */
  int64_t found, damaged;    /* restart = 'auto': checkpoint files found, and those found damaged
                              * (each moved aside as <name>.damaged) */
  char run_id[GN_RUN_ID_CAP]; /* the id of the run that wrote it ("" from an older version) */
  char data_fp[GN_DATA_FP_CAP]; /* the fingerprint of its data ("" from an older version) */
  double guard[GN_CKPT_GUARD];  /* the guard's record (older versions: NaN, inf, -1, inf) */
} gn_ckpt_state;

/* Local. The path of the checkpoint of a step (buf of GN_PATH_MAX + 32 bytes or more). */
void gn_ckpt_path(const gn_deck *deck, int64_t step, char *buf, size_t cap);

/* Collective on par->comm. The checkpoint to restart from, as deck->restart says: "none" gives
 * an empty path; "auto" the newest checkpoint in out_dir that loads (damaged ones are skipped
 * with a warning on rank 0 and renamed <name>.damaged, never deleted), or empty when there is
 * none; anything else is a path that must load. On success the checkpoint has been read into
 * theta and opt after checking its format version, its completeness marker, its checksums
 * (weights, fixed C and U, optimizer state, the attributes that steer a continuation) and that its
 * step matches its name (GN_EIO when damaged), that the fixed C and U equal the model's (GN_EINPUT
 * otherwise), and that its deck differs from deck_text only in keys that may change between runs
 * (GN_EINPUT naming the differing keys otherwise; allowed changes are reported on rank 0). With
 * dry (gnrev_mpi --check) the decision is the same but nothing on disk changes: a damaged
 * checkpoint is reported with the name a run would give it, and left as it is. */
int gn_ckpt_restart(const gn_par *par, const gn_deck *deck, const char *deck_text,
                    const gn_model *model, gn_real *theta, gn_opt *opt, bool dry, char *path, size_t cap,
                    gn_ckpt_state *state);

#endif
