/* signals.h — turning SIGTERM, SIGUSR1 and SIGINT (what SLURM and users send before a time
 * limit or to stop a run) into a request that every rank honours at the same step. */
#ifndef GNREV_SIGNALS_H
#define GNREV_SIGNALS_H

#include "gnrev/core/par.h"

/* Local. Installs the handlers; a handler only records the signal number. Needs no MPI: main
 * calls it before MPI_Init, so a signal during start-up is honoured at the first step. */
int gn_signals_install(void);

/* Local. Back to the default actions: once training is over, a signal from the launcher (which
 * kills the remaining ranks after one exits non-zero) must end the process, not be recorded. */
void gn_signals_restore(void);

/* Collective on par->comm. The largest signal number received by any rank since installation
 * (0 if none): every rank gets the same answer, so all stop at the same step. */
int gn_signals_agree(const gn_par *par, int *signum);

/* Local. The name of a signal ("SIGTERM", ...). */
const char *gn_signals_name(int signum);

#endif
