/* optim.h — first-order optimizers on the flat parameter vector, with PyTorch's semantics
 * (torch.optim.SGD and torch.optim.Adam, weight decay added to the gradient). */
#ifndef GNREV_OPTIM_H
#define GNREV_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "gnrev/input/deck.h"

typedef struct {
  gn_method method;
  size_t n;         /* parameters */
  int64_t t;        /* updates taken (Adam's bias-correction step count) */
  double *buf1;     /* SGD: momentum buffer; Adam: exp_avg (first moment) */
  double *buf2;     /* Adam: exp_avg_sq (second moment); NULL otherwise */
  int has_buf1;     /* SGD: the momentum buffer holds a value (PyTorch starts it at the first gradient) */
} gn_optim;

/* Local. Allocates the state the deck's method needs (none for gn) for n parameters. */
int gn_optim_create(const gn_deck *deck, size_t n, gn_optim *opt);
void gn_optim_free(gn_optim *opt);

/* Local. theta -= update(grad) for SGD or Adam with the deck's hyper-parameters and step size lr.
 * grad is the gradient of the mean batch loss (already summed over ranks); it is overwritten. */
void gn_optim_step(gn_optim *opt, const gn_deck *deck, double lr, double *theta, double *grad);

/* Local. Names and pointers of the state arrays (for checkpoints): returns how many (0..2). */
int gn_optim_state(gn_optim *opt, const char *names[2], double *arrays[2]);

#endif
