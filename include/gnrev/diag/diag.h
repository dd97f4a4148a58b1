/* diag.h — the diagnostics a run records beside its losses (docs/algorithm.md, deck
 * &diagnostics): NTK matrices and their drift, CKA of every half-block's output against step 0,
 * weight drift, and the GGN spectrum and noise. Results go to run.h5 (docs/output-format.md,
 * groups /ntk, /cka, /weights, /ggn) and the ParaView index run.xmf. */
#ifndef GNREV_DIAG_H
#define GNREV_DIAG_H

#include <stddef.h>
#include <stdint.h>

#include "gnrev/input/data.h"
#include "gnrev/input/deck.h"
#include "gnrev/core/h5io.h"
#include "gnrev/model/model.h"
#include "gnrev/core/par.h"
#include "gnrev/core/real.h"

typedef struct gn_diag gn_diag;

/* Collective on par->comm. Prepares the diagnostics the deck switches on, with theta0 (the
 * parameters at step 0, copied) as baseline: probe sets are the first ntk_samples / cka_samples
 * training samples; the step-0 NTK and CKA states are computed here. run is the open run.h5 and
 * run_path the name it was opened with; xmf_path the ParaView index to (re)write (NULL: none).
 * par, deck, model and train must outlive the diag. The model's workspace (gn_model_reserve) must
 * hold at least one row; probe sets are evaluated in chunks of model->nmax rows and the
 * diagnostics overwrite that workspace. With every diagnostic off, *diag is a valid object whose
 * calls do nothing. */
int gn_diag_create(const gn_par *par, const gn_deck *deck, const gn_model *model,
                   const gn_dataset *train, const gn_real *theta0, gn_h5 *run, const char *run_path,
                   const char *xmf_path, gn_diag **diag);
void gn_diag_free(gn_diag *diag);

/* Collective on par->comm. Runs the diagnostics due at `step` (step % *_every == 0, which
 * includes step 0) at parameters theta, unless already recorded at that step; the GGN uses the
 * first ggn_samples rows of the batch about to be used (this rank's gn_par_rows(n_global) share
 * in X_local, y_local; n_global = 0 skips the GGN). Appends to run.h5 and rewrites run.xmf when
 * matrices were added. */
int gn_diag_step(gn_diag *diag, int64_t step, const gn_real *theta, int64_t n_local, int64_t n_global,
                 const gn_real *X_local, const int32_t *y_local);

/* Collective on par->comm. The NTK, CKA and weight diagnostics at the final parameters (step T),
 * whatever their period, unless already recorded at T (the GGN needs a batch: not run). */
int gn_diag_final(gn_diag *diag, int64_t step, const gn_real *theta);

/* Collective. gn_diag_save writes theta0 under /diagnostics of an open checkpoint file.
 * gn_diag_load reads it back from the checkpoint of step `step` (its attribute "step"), rebuilds
 * the baselines from it (step-0 NTK and CKA states are deterministic functions of theta0 and the
 * probe set, so nothing larger is stored), and cuts the diagnostics already in run.h5 back to the
 * snapshots taken before that step, so a restarted run compares against the same step 0 and
 * appends where the checkpoint left off. */
int gn_diag_save(gn_diag *diag, gn_h5 *ckpt);
int gn_diag_load(gn_diag *diag, gn_h5 *ckpt);

#endif
