/* table.h — what every diagnostic of the diag layer writes into run.h5: a table of one row per
 * snapshot (snapshots x cols, rewritten whole at each snapshot), 1-D series of one value per
 * snapshot, and the cut back to the snapshots before a restart step. */
#ifndef GNREV_DIAG_TABLE_H
#define GNREV_DIAG_TABLE_H

#include <stdint.h>

#include "gnrev/core/h5io.h"
#include "gnrev/core/par.h"

enum { GN_DIAG_PATH_CAP = 96 };

/* A snapshots x cols table of run.h5. */
typedef struct {
  char path[GN_DIAG_PATH_CAP];
  const char *desc, *units, *dims;  /* the dataset's attributes */
  int64_t rows, cols, cap;
  double *data;                     /* rows x cols */
} gn_diag_table;

/* Local. An empty table of cols columns at path, with its attributes (static strings). */
void gn_diag_table_init(gn_diag_table *t, const char *path, int64_t cols, const char *desc, const char *units,
                        const char *dims);
void gn_diag_table_free(gn_diag_table *t);

/* Collective. Appends a row of n <= cols values (the rest NaN) and rewrites the dataset; replacing
 * a dataset whose shape grew drops its attributes, so it is described every time. */
int gn_diag_table_append(const gn_par *par, gn_h5 *run, gn_diag_table *t, int64_t n, const double *row);

/* Collective. Loads the first `keep` rows of the table from run.h5 (restart) and rewrites it. */
int gn_diag_table_reload(const gn_par *par, gn_h5 *run, gn_diag_table *t, int64_t keep);

/* Collective. Appends one value to each 1-D series group/names[i], describing them (meta[i] =
 * description, units; dims "snapshot") on their first row. */
int gn_diag_series_append(gn_h5 *run, const char *group, int n, const char *const *names,
                          const double *values, const char *const (*meta)[2]);

/* Collective. Keeps the snapshots of group taken before `step`: truncates its series to the *keep
 * rows whose group/step is below step. *steps (malloc'ed, *len entries, NULL when the group has
 * none) lists every snapshot's step as found, kept or not, so the caller can drop what belonged to
 * the cut ones. */
int gn_diag_cut_series(const gn_par *par, gn_h5 *run, const char *group, int64_t step, int64_t *keep,
                       int64_t **steps, int64_t *len);

#endif
