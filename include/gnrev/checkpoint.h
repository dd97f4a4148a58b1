/* checkpoint.h — checkpoint files <out_dir>/checkpoints/step_%08d.h5 (docs/output-format.md):
 * written atomically (temporary name, fsync, rename), the newest `keep` kept plus step 0. */
#ifndef GNREV_CHECKPOINT_H
#define GNREV_CHECKPOINT_H

#include <stdint.h>

#include "gnrev/deck.h"
#include "gnrev/model.h"
#include "gnrev/optim.h"
#include "gnrev/par.h"

/* What a checkpoint records besides the model. */
typedef struct {
  int64_t step;        /* updates taken */
  int64_t epoch;       /* epoch of the next batch */
  const char *deck;    /* effective deck text */
  const char *deck_source; /* the deck file as given */
} gn_ckpt_meta;

/* Collective on par->comm. Writes the checkpoint of `meta->step` into deck->out_dir, then
 * removes the oldest ones beyond deck->keep (never step 0). */
int gn_ckpt_write(const gn_par *par, const gn_deck *deck, const gn_ckpt_meta *meta,
                  const gn_model *model, const double *theta, gn_optim *opt);

/* Local. The path of the checkpoint of a step (buf of size GN_PATH_MAX + 32). */
void gn_ckpt_path(const gn_deck *deck, int64_t step, char *buf, size_t cap);

#endif
