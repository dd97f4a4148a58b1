/* data.h — training and test sets in memory.
 *
 * Every rank can read every sample (mini-batches are drawn from the whole set), but the samples
 * are stored once per node, in an MPI shared-memory window, as float32 already normalised (a
 * private copy per rank when the window cannot be made or GNREV_DATA_PRIVATE=1 is set). */
#ifndef GNREV_DATA_H
#define GNREV_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gnrev/input/deck.h"
#include "gnrev/core/par.h"
#include "gnrev/core/real.h"

typedef struct {
  int64_t n;          /* samples trained on (the first n of the pool) */
  int64_t n_pool;     /* samples held: n, or every training sample of the source when a diagnostic
                       * draws random probes from them (gn_data_wants_pool) */
  int64_t d;          /* features per sample (even for the model) */
  int classes;        /* number of classes C; labels are 0..C-1 */
  const float *x;     /* n_pool x d row-major, normalised; node-shared, read-only */
  const int32_t *y;   /* n_pool labels; node-shared, read-only */
  MPI_Win win;        /* window owning x and y (MPI_WIN_NULL if heap-owned) */
  void *heap;         /* heap block owning x and y when no window is used */
} gn_dataset;

/* Collective on par->comm. Loads the training and test sets named by the deck (source, path,
 * n_train, n_test; synthetic sizes and seed), normalised as docs/input-format.md says, and checks
 * them (magic numbers, sizes, truncation, labels in range, matching train/test d and C). Errors
 * name the file and what was wrong, and are agreed over all ranks (gn_par_agree) before return,
 * so every rank returns the same status. */
int gn_data_load(const gn_par *par, const gn_deck *deck, gn_dataset *train, gn_dataset *test);

/* Local. Whether the deck's diagnostics draw random probes from every training sample the source
 * holds (then the training set holds them all, n_pool > n). */
bool gn_data_wants_pool(const gn_deck *deck);
/* Collective on par->comm. A fingerprint of what was loaded, in out (at most cap bytes, 160 are
 * enough): per set, n, d, the classes and the CRC-32 of the samples as held (float32, normalised)
 * and of the labels. Each node's rank 0 computes it; nodes that loaded different data (a file that
 * differs between nodes) are GN_EINPUT. */
int gn_data_fingerprint(const gn_par *par, const gn_dataset *train, const gn_dataset *test, char *out,
                        size_t cap);

/* Collective on par->comm. Frees what gn_data_load made. */
void gn_data_free(gn_dataset *set);

/* Local. Copies rows idx[0..n) of set into x (n x d doubles, row-major) and y (n labels; y may
 * be NULL when only the samples are wanted). */
void gn_data_gather(const gn_dataset *set, const int64_t *idx, int64_t n, gn_real *x, int32_t *y);

#endif
