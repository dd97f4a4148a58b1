/* testopt.h — a method's direction through the one optimizer interface (header-only, for tests).
 *
 * One gn_opt_step at lr = 0 leaves theta as it is and the step's direction in opt->delta: the
 * tests compare that direction with independent computations. */
#ifndef GNREV_TESTOPT_H
#define GNREV_TESTOPT_H

#include <string.h>

#include "gnrev/optim/optim.h"

/* Collective. delta (nparams) = the direction of method (with gn_reference) on the batch whose local
 * rows are X, y (n of n_global), gn_real like theta and X; record (NULL, or room for the method's
 * per-update record) gets that record's values (double in both builds). Returns the step's status. */
__attribute__((unused)) static int gt_direction(const gn_par *par, const gn_model *md, const gn_deck *dk,
                                                gn_method method, bool reference, gn_real *theta, int64_t n,
                                                int64_t n_global, const gn_real *X, const int32_t *y, int64_t step,
                                                gn_real *delta, double *record) {
  gn_deck d = *dk;
  d.method = method;
  d.gn_reference = reference;
  d.lr = 0.0;
  gn_opt *opt = NULL;
  int st = gn_opt_create(par, &d, md, &opt);
  if (st != GN_OK) return st;
  const gn_batch b = {.step = step, .n = n, .n_global = n_global, .X0 = X, .y = y};
  gn_step_info info;
  st = gn_opt_step(opt, theta, &b, &info);
  if (st == GN_OK) memcpy(delta, opt->delta, md->nparams * sizeof(gn_real));
  gn_opt_record rec;
  if (st == GN_OK && record && gn_opt_last_record(opt, &rec)) memcpy(record, rec.values, (size_t)rec.n * sizeof(double));
  gn_opt_free(opt);
  return st;
}

#endif
