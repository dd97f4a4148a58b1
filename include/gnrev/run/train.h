/* train.h — a whole run: data, model, optimizer, the training loop, metrics and checkpoints. */
#ifndef GNREV_TRAIN_H
#define GNREV_TRAIN_H

#include <stdbool.h>

#include "gnrev/input/deck.h"
#include "gnrev/core/par.h"

/* How gn_train_run is to run. */
typedef struct {
  bool check_only;   /* --check: check and report, train nothing, change nothing on disk */
  int plan_ranks;    /* --plan: > 0 sizes the memory plan for a job of this many ranks ... */
  int plan_per_node; /* ... this many per node, instead of the ranks of this job */
} gn_train_opts;

/* Collective on par->comm. Runs the deck (deck_path and deck_source are recorded in the outputs).
 * With opts->check_only, loads and checks the data, prints the resolved configuration, the data summary,
 * the memory plan and the line saying how a run would start in out_dir ("restart: would ...") on
 * rank 0, and returns without training or changing anything on disk: GN_OK, or the status a run
 * would refuse to start with. Every error is agreed over all ranks before return, except those
 * that abort (gn_par_die). */
int gn_train_run(const gn_par *par, const gn_deck *deck, const char *deck_path,
                 const char *deck_source, const gn_train_opts *opts);

#endif
