/* lock.h — one run per out_dir: the lock file <out_dir>/gnrev.lock, made atomically (O_EXCL) by
 * rank 0 and naming the host, pid and start time of its holder (docs/operations.md). */
#ifndef GNREV_RUN_LOCK_H
#define GNREV_RUN_LOCK_H

#include "gnrev/core/par.h"

typedef struct gn_lock gn_lock;

/* Collective on par->comm. Takes the lock of out_dir (which must exist). A lock held by a running
 * process, or by any process on another host (whose liveness cannot be checked from here), is
 * GN_EINPUT naming its holder; a lock left by a process of this host that no longer runs (or
 * whose pid now belongs to a later process), or by an earlier run of the same SLURM job (a
 * requeue, SLURM_JOB_ID) on any host, is reported on stderr and taken over. *lock is NULL on
 * error. */
int gn_lock_take(const gn_par *par, const char *out_dir, gn_lock **lock);

/* Collective on par->comm. What gn_lock_take would meet, changing nothing (gnrev_mpi --check): the
 * same refusal, or GN_OK when a run could take the lock now (there is none, or a stale one, which
 * is said on stderr and left in place). out_dir need not exist. */
int gn_lock_probe(const gn_par *par, const char *out_dir);

/* Local (rank 0 does the work). Removes the lock file if it is still ours and frees lock; NULL is
 * a no-op. */
void gn_lock_release(gn_lock *lock);

#endif
