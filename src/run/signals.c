/* signals.c — the handler sets a flag and nothing else (async-signal-safe); the training loop
 * reduces the flag once per step so no rank is left alone in a collective. */
#include "gnrev/run/signals.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t received = 0;

static void on_signal(int signum) {
  if (signum > received) received = signum;
}

int gn_signals_install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  /* Installed before MPI_Init: system calls interrupted by the signal (in MPI's start-up, in file
   * reads) resume instead of failing with EINTR. */
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  const int sigs[] = {SIGTERM, SIGUSR1, SIGINT};
  for (size_t i = 0; i < sizeof sigs / sizeof *sigs; ++i)
    if (sigaction(sigs[i], &sa, NULL) != 0) GN_FAIL(GN_EINTERNAL, "cannot install the handler of signal %d", sigs[i]);
  return GN_OK;
}

void gn_signals_restore(void) {
  signal(SIGTERM, SIG_DFL);
  signal(SIGUSR1, SIG_DFL);
  signal(SIGINT, SIG_DFL);
}

int gn_signals_agree(const gn_par *par, int *signum) {
  double v = (double)received;
  CHECK(gn_par_max(par, &v, 1));
  *signum = (int)v;
  return GN_OK;
}

const char *gn_signals_name(int signum) {
  switch (signum) {
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    case SIGINT: return "SIGINT";
    default: return "a signal";
  }
}
