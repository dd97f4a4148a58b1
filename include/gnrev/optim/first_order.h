/* first_order.h — the update rules of SGD and Adam with PyTorch's semantics (torch.optim.SGD and
 * torch.optim.Adam, weight decay added to the gradient), on any stretch of the parameters: the
 * methods apply them to the whole vector, and the rules' tests to values worked by hand. */
#ifndef GNREV_OPTIM_FIRST_ORDER_H
#define GNREV_OPTIM_FIRST_ORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gnrev/input/deck.h"
#include "gnrev/core/real.h"

/* Local. SGD on n entries with the deck's momentum, nesterov and weight_decay: g (the gradient,
 * overwritten) += weight_decay theta; with momentum, buf = g on the first step (first = true) and
 * mu buf + g after, and g = buf (or g + mu buf with Nesterov); theta -= lr g. buf may be NULL
 * without momentum. */
void gn_sgd_rule(const gn_deck *deck, double lr, bool first, size_t n, gn_real *theta, gn_real *g, gn_real *buf);

/* Local. Adam's update number t (t >= 1, bias corrections 1 - beta^t) on n entries with the deck's
 * beta1, beta2, eps and weight_decay: g (gradient) + weight_decay theta feeds the moments m and v,
 * theta -= (lr / (1 - beta1^t)) m / (sqrt(v) / sqrt(1 - beta2^t) + eps). */
void gn_adam_rule(const gn_deck *deck, double lr, int64_t t, size_t n, gn_real *theta, const gn_real *g, gn_real *m,
                  gn_real *v);

#endif
