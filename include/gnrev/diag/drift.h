/* drift.h — the diagnostics one by one, as the scheduler (diag.c) drives them: each measures its
 * quantity at a snapshot against its step-0 baseline, appends to its group of run.h5, and on a
 * restart rebuilds its baseline from theta0 and cuts its group back to the restart step.
 * Internal to the diag layer. */
#ifndef GNREV_DIAG_DRIFT_H
#define GNREV_DIAG_DRIFT_H

#include <stdint.h>

#include "gnrev/core/h5io.h"
#include "gnrev/core/par.h"
#include "gnrev/input/data.h"
#include "gnrev/input/deck.h"
#include "gnrev/model/model.h"
#include "gnrev/core/real.h"

/* What every diagnostic shares. */
typedef struct {
  const gn_par *par;
  const gn_deck *deck;
  const gn_model *model;
  gn_h5 *run;            /* the open run.h5 */
  const gn_real *theta0;  /* the baseline parameters (step 0), owned by the scheduler */
} gn_diag_ctx;

/* NTK on a probe set (/ntk): similarity, alignment, scale, relative change against K_0, the
 * leading eigenvalues, the trace of each half-block's term, and K itself when ntk_save_matrix. */
typedef struct gn_ntk_drift gn_ntk_drift;
int gn_ntk_drift_create(const gn_diag_ctx *ctx, const gn_dataset *train, gn_ntk_drift **out);
int gn_ntk_drift_snapshot(gn_ntk_drift *nd, int64_t step, const gn_real *theta);
int gn_ntk_drift_restart(gn_ntk_drift *nd, int64_t step);
int64_t gn_ntk_drift_last(const gn_ntk_drift *nd);
/* Local. The steps whose K is saved in run.h5 (K_<step>, rows x rows). */
void gn_ntk_drift_saved(const gn_ntk_drift *nd, const int64_t **steps, int64_t *n, int64_t *rows);
void gn_ntk_drift_free(gn_ntk_drift *nd);

/* CKA of the state after every half-block against step 0 on a probe set (/cka). */
typedef struct gn_cka_drift gn_cka_drift;
int gn_cka_drift_create(const gn_diag_ctx *ctx, const gn_dataset *train, gn_cka_drift **out);
int gn_cka_drift_snapshot(gn_cka_drift *cd, int64_t step, const gn_real *theta);
int gn_cka_drift_restart(gn_cka_drift *cd, int64_t step);
int64_t gn_cka_drift_last(const gn_cka_drift *cd);
/* Local. Snapshots x half-blocks of /cka/value. */
void gn_cka_drift_shape(const gn_cka_drift *cd, int64_t *rows, int64_t *cols);
void gn_cka_drift_free(gn_cka_drift *cd);

/* Cosine, norm ratio and norm of every trained tensor against step 0 (/weights). */
typedef struct gn_weight_drift gn_weight_drift;
int gn_weight_drift_create(const gn_diag_ctx *ctx, gn_weight_drift **out);
int gn_weight_drift_snapshot(gn_weight_drift *wd, int64_t step, const gn_real *theta);
int gn_weight_drift_restart(gn_weight_drift *wd, int64_t step);
int64_t gn_weight_drift_last(const gn_weight_drift *wd);
void gn_weight_drift_free(gn_weight_drift *wd);

/* The GGN spectrum and noise on the first ggn_samples rows of a batch (/ggn). */
typedef struct gn_ggn_noise gn_ggn_noise;
int gn_ggn_noise_create(const gn_diag_ctx *ctx, gn_ggn_noise **out);
int gn_ggn_noise_snapshot(gn_ggn_noise *gd, int64_t step, const gn_real *theta, int64_t n_local, int64_t n_global,
                          const gn_real *X_local, const int32_t *y_local);
int gn_ggn_noise_restart(gn_ggn_noise *gd, int64_t step);
int64_t gn_ggn_noise_last(const gn_ggn_noise *gd);
void gn_ggn_noise_free(gn_ggn_noise *gd);

#endif
