/* backprop.c — backpropagation with the gradient summed into node-shared memory (backprop.h). */
#include "gnrev/model/backprop.h"

#include <string.h>

#include "gnrev/core/err.h"
#include "gnrev/core/shm.h"
#include "gnrev/core/real.h"

int gn_backprop_sum(const gn_par *par, const gn_model *model, const gn_real *theta, int64_t n, gn_real *X,
                    gn_real *dX, gn_real *grad, gn_real *work) {
  const int64_t d = model->d, ch = model->nmax > 0 ? model->nmax : 1;
  const size_t hm = (size_t)model->hp * (size_t)model->m;
  for (int b = model->B - 1; b >= 0; --b)
    for (int s = 1; s >= 0; --s) {
      gn_real *dst = grad + gn_model_offset(model, b, s);
      gn_real *acc = par ? work : dst;
      memset(acc, 0, hm * sizeof(gn_real));
      for (int64_t r = 0; r < n; r += ch) {
        const int64_t k = n - r < ch ? n - r : ch;
        gn_model_backward_half(model, theta, b, s, k, X + r * d, dX + r * d, acc);
      }
      if (par) {
        gn_par_pending pend;
        CHECK(gn_par_sum_to_node_begin(par, acc, hm, dst, &pend));
        CHECK(gn_par_sum_to_node_end(par, &pend));
      }
    }
  return gn_shm_sync(par);
}
