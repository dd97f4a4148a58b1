/* weight_drift.c — every trained tensor (W and b of each half-block) against its step-0 value:
 * cosine, norm ratio and norm (drift.h, /weights of run.h5). theta is replicated, so every rank
 * computes the same numbers without communication. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gnrev/core/array.h"
#include "gnrev/core/err.h"
#include "gnrev/diag/drift.h"
#include "gnrev/diag/table.h"
#include "gnrev/core/real.h"

struct gn_weight_drift {
  gn_diag_ctx ctx;
  int64_t last;
  int ntens;
  size_t *toff, *tlen;   /* offset and length of each tensor in theta */
  char *tnames;          /* "block_000/F/W,block_000/F/b,..." */
  double *tnorm0;        /* each tensor's norm at step 0 */
  gn_diag_table cos, ratio, norm;
};

/* Local. The norms of theta0's tensors (create and restart). */
static void baseline(gn_weight_drift *wd) {
  const gn_real *theta0 = wd->ctx.theta0;
  for (int k = 0; k < wd->ntens; ++k) {
    double ss = 0;
    for (size_t i = 0; i < wd->tlen[k]; ++i) ss += theta0[wd->toff[k] + i] * theta0[wd->toff[k] + i];
    wd->tnorm0[k] = sqrt(ss);
  }
}

static int build_tensors(gn_weight_drift *wd) {
  const gn_model *md = wd->ctx.model;
  const bool bias = md->hp > md->h;
  wd->ntens = 2 * md->B * (bias ? 2 : 1);
  wd->toff = malloc((size_t)wd->ntens * sizeof(size_t));
  wd->tlen = malloc((size_t)wd->ntens * sizeof(size_t));
  wd->tnorm0 = malloc((size_t)wd->ntens * sizeof *wd->tnorm0);
  const size_t cap = (size_t)wd->ntens * 20 + 1;
  wd->tnames = malloc(cap);
  if (!wd->toff || !wd->tlen || !wd->tnorm0 || !wd->tnames) GN_FAIL(GN_ENOMEM, "out of memory for weight tensors");
  size_t used = 0;
  int k = 0;
  for (int b = 0; b < md->B; ++b)
    for (int s = 0; s < 2; ++s) {
      const size_t off = gn_model_offset(md, b, s), w = (size_t)(md->h * md->m);
      wd->toff[k] = off;
      wd->tlen[k++] = w;
      used += (size_t)snprintf(wd->tnames + used, cap - used, "%sblock_%03d/%s/W", used ? "," : "", b, s ? "G" : "F");
      if (bias) {
        wd->toff[k] = off + w;
        wd->tlen[k++] = (size_t)md->m;
        used += (size_t)snprintf(wd->tnames + used, cap - used, ",block_%03d/%s/b", b, s ? "G" : "F");
      }
    }
  baseline(wd);
  return GN_OK;
}

int gn_weight_drift_create(const gn_diag_ctx *ctx, gn_weight_drift **out) {
  *out = NULL;
  gn_weight_drift *wd = calloc(1, sizeof *wd);
  CHECK(gn_par_agree(ctx->par, wd ? GN_OK : GN_RAISE(GN_ENOMEM, "out of memory for the weights diagnostic")));
  wd->ctx = *ctx;
  wd->last = -1;
  const int status = gn_par_agree(ctx->par, build_tensors(wd));
  if (status != GN_OK) {
    gn_weight_drift_free(wd);
    return status;
  }
  gn_diag_table_init(&wd->cos, "/weights/cosine", wd->ntens,
                     "cosine between each trained tensor and its initial value (NaN when either is zero)", "1",
                     "snapshot,tensor");
  gn_diag_table_init(&wd->ratio, "/weights/norm_ratio", wd->ntens,
                     "||theta_t|| / ||theta_0|| per trained tensor (NaN when the initial tensor is zero)", "1",
                     "snapshot,tensor");
  gn_diag_table_init(&wd->norm, "/weights/norm", wd->ntens, "||theta_t|| per trained tensor (Frobenius)", "1",
                     "snapshot,tensor");
  *out = wd;
  return GN_OK;
}

void gn_weight_drift_free(gn_weight_drift *wd) {
  if (!wd) return;
  free(wd->toff);
  free(wd->tlen);
  free(wd->tnames);
  free(wd->tnorm0);
  gn_diag_table_free(&wd->cos);
  gn_diag_table_free(&wd->ratio);
  gn_diag_table_free(&wd->norm);
  free(wd);
}

int64_t gn_weight_drift_last(const gn_weight_drift *wd) { return wd->last; }

int gn_weight_drift_snapshot(gn_weight_drift *wd, int64_t step, const gn_real *theta) {
  const int nt = wd->ntens;
  double *buf = malloc(3 * (size_t)nt * sizeof *buf);
  CHECK(gn_par_agree(wd->ctx.par, buf ? GN_OK : GN_RAISE(GN_ENOMEM, "out of memory for weight statistics")));
  double *cosv = buf, *ratio = buf + nt, *norm = buf + 2 * nt;
  for (int k = 0; k < nt; ++k) {
    const gn_real *a = theta + wd->toff[k], *z = wd->ctx.theta0 + wd->toff[k];
    double aa = 0, az = 0;
    for (size_t i = 0; i < wd->tlen[k]; ++i) {
      aa += a[i] * a[i];
      az += a[i] * z[i];
    }
    norm[k] = sqrt(aa);
    const double n0 = wd->tnorm0[k];
    cosv[k] = (n0 > 0 && aa > 0) ? az / (norm[k] * n0) : NAN;
    ratio[k] = n0 > 0 ? norm[k] / n0 : NAN;
  }
  int status = GN_OK;
  const double s = (double)step;
  static const char *const names[] = {"step"};
  static const char *const meta[][2] = {{"step (updates taken) of the snapshot", "1"}};
  CHECK_GOTO(gn_diag_series_append(wd->ctx.run, "/weights", 1, names, &s, meta));
  CHECK_GOTO(gn_diag_table_append(wd->ctx.par, wd->ctx.run, &wd->cos, nt, cosv));
  CHECK_GOTO(gn_diag_table_append(wd->ctx.par, wd->ctx.run, &wd->ratio, nt, ratio));
  CHECK_GOTO(gn_diag_table_append(wd->ctx.par, wd->ctx.run, &wd->norm, nt, norm));
  CHECK_GOTO(gn_h5_attr_str(wd->ctx.run, "/weights", "tensors", wd->tnames));
  wd->last = step;
fail:
  free(buf);
  return status;
}

int gn_weight_drift_restart(gn_weight_drift *wd, int64_t step) {
  const gn_diag_ctx *c = &wd->ctx;
  baseline(wd);
  int64_t keep = 0, len = 0, *steps = NULL;
  CHECK(gn_diag_cut_series(c->par, c->run, "/weights", step, &keep, &steps, &len));
  wd->last = keep > 0 ? steps[keep - 1] : -1;
  free(steps);
  CHECK(gn_diag_table_reload(c->par, c->run, &wd->cos, keep));
  CHECK(gn_diag_table_reload(c->par, c->run, &wd->ratio, keep));
  return gn_diag_table_reload(c->par, c->run, &wd->norm, keep);
}
