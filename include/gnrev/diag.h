/* diag.h — the diagnostics a run records beside its losses (DESIGN.md section 5, deck
 * &diagnostics): NTK matrices and their drift, CKA of every half-block's output against step 0,
 * weight drift, and the GGN spectrum and noise. Results go to run.h5 (docs/output-format.md) and
 * the ParaView index run.xmf. */
#ifndef GNREV_DIAG_H
#define GNREV_DIAG_H

#include <stdint.h>

#include "gnrev/data.h"
#include "gnrev/deck.h"
#include "gnrev/h5io.h"
#include "gnrev/model.h"
#include "gnrev/par.h"

typedef struct gn_diag gn_diag;

/* Collective on par->comm. Prepares the diagnostics the deck switches on, with theta0 (the
 * parameters at step 0) as baseline: probe sets are the first ntk_samples / cka_samples training
 * samples. run is the open run.h5; xmf_path the ParaView index to (re)write. */
int gn_diag_create(const gn_par *par, const gn_deck *deck, const gn_model *model,
                   const gn_dataset *train, const double *theta0, gn_h5 *run, const char *xmf_path,
                   gn_diag **diag);
void gn_diag_free(gn_diag *diag);

/* Collective on par->comm. Runs the diagnostics due at `step` (step % *_every == 0, and always
 * at step 0) at parameters theta; the GGN uses the batch about to be used (local rows X_local,
 * y_local; n_global rows in all). Appends to run.h5 and rewrites run.xmf when matrices were added. */
int gn_diag_step(gn_diag *diag, int64_t step, const double *theta, int64_t n_local, int64_t n_global,
                 const double *X_local, const int32_t *y_local);

/* Collective. Cost and memory per rank of each switched-on diagnostic, as text for --check. */
char *gn_diag_plan(const gn_par *par, const gn_deck *deck, int64_t d, int C);

/* Collective. Saves / restores the baselines (theta0, step-0 NTK, step-0 CKA states) in a
 * checkpoint file under /diagnostics, so a restarted run compares against the same step 0. */
int gn_diag_save(gn_diag *diag, gn_h5 *ckpt);
int gn_diag_load(gn_diag *diag, gn_h5 *ckpt);

#endif
