/* backprop.h — backpropagation whose parameter gradient is summed over every rank into
 * node-shared memory half-block by half-block, so that no rank holds more than one half-block of
 * gradient (SGD, Adam, and J^T w for the Moore-Penrose and ViViT steps). */
#ifndef GNREV_MODEL_BACKPROP_H
#define GNREV_MODEL_BACKPROP_H

#include <stdint.h>

#include "gnrev/core/par.h"
#include "gnrev/model/model.h"
#include "gnrev/core/real.h"

/* Collective on par->comm. X (n x d) holds X_B of this rank's rows on entry, dX its state cotangent;
 * on return X holds X_0 and dX dL/dX_0. grad (nparams, node-shared: shm.h) = the sum over all
 * ranks of the parameter gradient of their rows, visible on every rank of each node. The rows are
 * walked in chunks of model->nmax; work holds hp * m doubles (one half-block). par == NULL: this
 * process's rows only, grad private. */
int gn_backprop_sum(const gn_par *par, const gn_model *model, const gn_real *theta, int64_t n, gn_real *X,
                    gn_real *dX, gn_real *grad, gn_real *work);

#endif
