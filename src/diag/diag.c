/* diag.c — the diagnostics scheduler (diag.h): keeps theta0, decides which diagnostic is due at a
 * step, saves and restores the baseline with the checkpoints, and keeps the ParaView index run.xmf
 * in step with the matrices written. Each diagnostic lives in its own file (drift.h). */
#include "gnrev/diag/diag.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gnrev/core/err.h"
#include "gnrev/core/shm.h"
#include "gnrev/diag/drift.h"
#include "gnrev/diag/table.h"
#include "gnrev/diag/xdmf.h"
#include "gnrev/core/real.h"

enum { NAME_CAP = 4096 };

struct gn_diag {
  gn_diag_ctx ctx;
  char *run_path, *xmf_path;
  char h5_name[NAME_CAP]; /* run.h5 as named from run.xmf's folder */
  gn_shm theta0_mem;      /* the baseline, node-shared (ctx.theta0 points into it) */
  gn_real *theta0;
  gn_ntk_drift *ntk;      /* each NULL when its diagnostic is off */
  gn_cka_drift *cka;
  gn_weight_drift *weights;
  gn_ggn_noise *ggn;
};

static bool due(int64_t every, int64_t step, int64_t last) { return every > 0 && step % every == 0 && step > last; }

static bool any_on(const gn_deck *dk) {
  return dk->ntk_every > 0 || dk->cka_every > 0 || dk->weights_every > 0 || dk->ggn_every > 0;
}

/* Collective. Flushes run.h5 (ParaView reads it as it is on disk) and rewrites run.xmf on rank 0:
 * the saved NTK matrices as one time series over steps, the CKA table as one image. */
static int write_index(gn_diag *dg) {
  if (!dg->xmf_path) return GN_OK;
  const gn_par *par = dg->ctx.par;
  CHECK(gn_h5_flush(dg->ctx.run));
  int status = GN_OK;
  if (par->rank == 0) {
    const int64_t *steps = NULL;
    int64_t nsaved = 0, rows = 0, cka_rows = 0, cka_cols = 0;
    if (dg->ntk) gn_ntk_drift_saved(dg->ntk, &steps, &nsaved, &rows);
    if (dg->cka) gn_cka_drift_shape(dg->cka, &cka_rows, &cka_cols);
    if (!dg->h5_name[0]) status = gn_xdmf_h5_name(dg->xmf_path, dg->run_path, dg->h5_name, sizeof dg->h5_name);
    gn_xdmf_image *ims = malloc((size_t)(nsaved + 1) * sizeof *ims);
    char (*paths)[GN_DIAG_PATH_CAP] = malloc((size_t)(nsaved + 1) * sizeof *paths);
    if (status == GN_OK && (!ims || !paths)) status = GN_RAISE(GN_ENOMEM, "out of memory for the ParaView index");
    if (status == GN_OK) {
      for (int64_t i = 0; i < nsaved; ++i) {
        snprintf(paths[i], GN_DIAG_PATH_CAP, "/ntk/K_%08lld", (long long)steps[i]);
        ims[i] = (gn_xdmf_image){.dataset = paths[i], .rows = rows, .cols = rows, .time = (double)steps[i]};
      }
      gn_xdmf_series se[2];
      int ns = 0;
      if (nsaved > 0 && nsaved <= INT_MAX)
        se[ns++] = (gn_xdmf_series){.name = "ntk", .temporal = true, .n = (int)nsaved, .images = ims};
      gn_xdmf_image cka = {.dataset = "/cka/value", .rows = cka_rows, .cols = cka_cols};
      if (cka_rows > 0) se[ns++] = (gn_xdmf_series){.name = "cka", .temporal = false, .n = 1, .images = &cka};
      status = gn_xdmf_write(dg->xmf_path, dg->h5_name, ns, se);
    }
    free(ims);
    free(paths);
  }
  return gn_par_agree(par, status);
}

int gn_diag_create(const gn_par *par, const gn_deck *deck, const gn_model *model,
                   const gn_dataset *train, const gn_real *theta0, gn_h5 *run, const char *run_path,
                   const char *xmf_path, gn_diag **out) {
  *out = NULL;
  gn_diag *dg = calloc(1, sizeof *dg);
  int status = dg ? GN_OK : GN_RAISE(GN_ENOMEM, "out of memory for the diagnostics");
  CHECK(gn_par_agree(par, status));
  dg->theta0_mem.win = MPI_WIN_NULL;
  dg->run_path = strdup(run_path ? run_path : "run.h5");
  dg->xmf_path = xmf_path ? strdup(xmf_path) : NULL;
  if (!dg->run_path || (xmf_path && !dg->xmf_path))
    status = GN_RAISE(GN_ENOMEM, "out of memory for the diagnostics' file names");
  else if (model->nmax < 1)
    status = GN_RAISE(GN_EINTERNAL, "diagnostics: the model workspace holds no rows (call gn_model_reserve first)");
  CHECK_GOTO(gn_par_agree(par, status));
  /* theta0 is kept only when a diagnostic compares against it, once per node. */
  if (any_on(deck)) {
    CHECK_GOTO(gn_par_agree(par, gn_shm_alloc(par, model->nparams * sizeof(gn_real), "the diagnostics' copy of theta0",
                                              &dg->theta0_mem)));
    dg->theta0 = dg->theta0_mem.base;
    size_t lo, hi;
    gn_shm_slice(par, model->nparams, sizeof(gn_real), &lo, &hi);
    memcpy(dg->theta0 + lo, theta0 + lo, (hi - lo) * sizeof(gn_real));
    CHECK_GOTO(gn_shm_sync(par));
  }
  dg->ctx = (gn_diag_ctx){.par = par, .deck = deck, .model = model, .run = run, .theta0 = dg->theta0};
  if (deck->ntk_every > 0) CHECK_GOTO(gn_ntk_drift_create(&dg->ctx, train, &dg->ntk));
  if (deck->cka_every > 0) CHECK_GOTO(gn_cka_drift_create(&dg->ctx, train, &dg->cka));
  if (deck->weights_every > 0) CHECK_GOTO(gn_weight_drift_create(&dg->ctx, &dg->weights));
  if (deck->ggn_every > 0 && deck->ggn_samples > 0) CHECK_GOTO(gn_ggn_noise_create(&dg->ctx, &dg->ggn));
  *out = dg;
  return GN_OK;
fail:
  gn_diag_free(dg);
  return status;
}

void gn_diag_free(gn_diag *dg) {
  if (!dg) return;
  gn_ntk_drift_free(dg->ntk);
  gn_cka_drift_free(dg->cka);
  gn_weight_drift_free(dg->weights);
  gn_ggn_noise_free(dg->ggn);
  gn_shm_free(&dg->theta0_mem);
  free(dg->run_path);
  free(dg->xmf_path);
  free(dg);
}

int gn_diag_step(gn_diag *dg, int64_t step, const gn_real *theta, int64_t n_local, int64_t n_global,
                 const gn_real *X_local, const int32_t *y_local) {
  const gn_deck *dk = dg->ctx.deck;
  if (dg->ntk && due(dk->ntk_every, step, gn_ntk_drift_last(dg->ntk))) {
    CHECK(gn_ntk_drift_snapshot(dg->ntk, step, theta));
    if (dk->ntk_save_matrix) CHECK(write_index(dg));
  }
  if (dg->cka && due(dk->cka_every, step, gn_cka_drift_last(dg->cka))) {
    CHECK(gn_cka_drift_snapshot(dg->cka, step, theta));
    CHECK(write_index(dg));
  }
  if (dg->weights && due(dk->weights_every, step, gn_weight_drift_last(dg->weights)))
    CHECK(gn_weight_drift_snapshot(dg->weights, step, theta));
  if (dg->ggn && n_global > 0 && due(dk->ggn_every, step, gn_ggn_noise_last(dg->ggn)))
    CHECK(gn_ggn_noise_snapshot(dg->ggn, step, theta, n_local, n_global, X_local, y_local));
  return GN_OK;
}

int gn_diag_final(gn_diag *dg, int64_t step, const gn_real *theta) {
  if (dg->ntk && step > gn_ntk_drift_last(dg->ntk)) {
    CHECK(gn_ntk_drift_snapshot(dg->ntk, step, theta));
    if (dg->ctx.deck->ntk_save_matrix) CHECK(write_index(dg));
  }
  if (dg->cka && step > gn_cka_drift_last(dg->cka)) {
    CHECK(gn_cka_drift_snapshot(dg->cka, step, theta));
    CHECK(write_index(dg));
  }
  if (dg->weights && step > gn_weight_drift_last(dg->weights)) CHECK(gn_weight_drift_snapshot(dg->weights, step, theta));
  return GN_OK;
}

int gn_diag_save(gn_diag *dg, gn_h5 *ckpt) {
  if (!dg || !dg->theta0) return GN_OK;
  const int64_t n = (int64_t)dg->ctx.model->nparams;
  CHECK(gn_h5_write_real(ckpt, "/diagnostics/theta0", 1, &n, dg->theta0));
  return gn_h5_describe(ckpt, "/diagnostics/theta0",
                        "parameters at step 0, the diagnostics' baseline (flat order of /optimizer)", "1", "parameter");
}

int gn_diag_load(gn_diag *dg, gn_h5 *ckpt) {
  if (!dg->theta0) return GN_OK;
  int64_t step = 0;
  CHECK(gn_h5_read_attr_i64(ckpt, "/", "step", &step));
  const int64_t n = (int64_t)dg->ctx.model->nparams;
  CHECK(gn_h5_read_real_node(ckpt, "/diagnostics/theta0", 1, &n, dg->theta0));
  CHECK(gn_shm_sync(dg->ctx.par));
  if (dg->ntk) CHECK(gn_ntk_drift_restart(dg->ntk, step));
  if (dg->cka) CHECK(gn_cka_drift_restart(dg->cka, step));
  if (dg->weights) CHECK(gn_weight_drift_restart(dg->weights, step));
  if (dg->ggn) CHECK(gn_ggn_noise_restart(dg->ggn, step));
  return write_index(dg);
}
