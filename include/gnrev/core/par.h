/* par.h — the MPI layer: communicator facts, the sample split, reductions and the two ways an
 * error ends a run (agreed by all ranks, or aborted by the one rank that saw it). */
#ifndef GNREV_PAR_H
#define GNREV_PAR_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "gnrev/core/err.h"
#include "gnrev/core/real.h"

typedef struct {
  MPI_Comm comm;  /* the run's communicator (a dup of MPI_COMM_WORLD or a test's) */
  int rank;       /* rank in comm */
  int size;       /* ranks in comm */
  MPI_Comm node;  /* ranks sharing this node's memory (see gn_par_open) */
  int node_rank;  /* rank in node */
  int node_size;  /* ranks in node */
  MPI_Comm cross; /* one rank of every node: those with this node_rank (the node leaders for 0) */
  int nnodes;     /* nodes */
  int uniform;    /* every node has node_size ranks */
} gn_par;

#define CHECK_MPI(call)                                                            \
  do {                                                                             \
    int gn_m_ = (call);                                                            \
    if (gn_m_ != MPI_SUCCESS) {                                                    \
      char gn_ms_[MPI_MAX_ERROR_STRING];                                           \
      int gn_ml_ = 0;                                                              \
      MPI_Error_string(gn_m_, gn_ms_, &gn_ml_);                                    \
      return gn_error(GN_EMPI, __FILE__, __LINE__, __func__, "%s failed: %s", #call, gn_ms_); \
    }                                                                              \
  } while (0)

/* Local. GN_OK, or GN_EMPI with MPI's description of rc, recorded at file:line (func). */
int gn_par_mpi_status(int rc, const char *call, const char *file, int line, const char *func);

/* CHECK_MPI for functions that free resources at a label `fail` (see CHECK_GOTO). */
#define CHECK_MPI_GOTO(call) CHECK_GOTO(gn_par_mpi_status((call), #call, __FILE__, __LINE__, __func__))

/* Collective on comm. Fills par for comm (duplicated, so library traffic cannot mix with ours)
 * and splits off the shared-memory node communicator. GNREV_RANKS_PER_NODE=k (for tests) makes
 * every k consecutive ranks of a shared-memory node act as one node, so that several nodes can be
 * tried on one machine. Errors return MPI codes as MPI_ERRORS_RETURN; a bad GNREV_RANKS_PER_NODE
 * is GN_EINPUT. */
int gn_par_open(MPI_Comm comm, gn_par *par);

/* Collective on par->comm. Frees the communicators made by gn_par_open. */
void gn_par_close(gn_par *par);

/* Collective on par->comm. Every rank passes its local status; returns the largest over all
 * ranks. When some rank failed, the message and traceback of the lowest failing rank are copied
 * into every rank's error buffer, prefixed with "rank R: " when R != 0, so rank 0 can print one
 * report and every rank can exit cleanly with the same code. */
int gn_par_agree(const gn_par *par, int status);

/* Collective on par->comm. gn_par_agree for a status that may come from a library that left the
 * other ranks waiting inside it (parallel HDF5 after a failed write: one rank returns the error
 * while the others wait at its internal barrier). A rank with an error waits at most `seconds` for
 * the others; then it calls before_abort(ctx) (may be NULL), prints its message and aborts the job
 * with its status (gn_par_die). Every rank of the call must use this function, not gn_par_agree:
 * the two reductions do not match each other. */
int gn_par_agree_within(const gn_par *par, int status, double seconds, void (*before_abort)(void *), void *ctx);

/* Local. Prints "gnrev_mpi: rank R: <status>: <message>" and the traceback to stderr, then
 * MPI_Abort(comm): for errors seen by one rank inside collective work, where waiting for the
 * others would hang. Never returns. */
void gn_par_die(const gn_par *par, int status) __attribute__((noreturn));

/* Local. Prints the current error once (rank 0 only) in the form "gnrev_mpi: <status>: msg". */
void gn_par_report(const gn_par *par, int status);

/* Local. The contiguous block split of n items over size ranks with block ceil(n/size), as
 * ScaLAPACK's 1-D block layout expects: rank r owns [row0, row0 + nrows); trailing ranks may own
 * none. Returns the block size ceil(n/size) (at least 1). */
int64_t gn_par_rows(int64_t n, int size, int rank, int64_t *row0, int64_t *nrows);

/* Local. MPI counts and displacements of every rank's gn_par_rows(n, size) share, in units of
 * `per` elements (cnt[r], dsp[r] for r < size): for gathers of row-split arrays. */
void gn_par_counts(int64_t n, int size, int64_t per, int *cnt, int *dsp);

/* Collective on par->comm. In-place sum of n doubles over all ranks (chunked past INT_MAX). */
int gn_par_sum(const gn_par *par, double *buf, size_t n);

/* The same for n gn_real (real.h). */
int gn_par_sum_real(const gn_par *par, gn_real *buf, size_t n);

/* Collective on par->comm. In-place sum of n int64 over all ranks. */
int gn_par_sum_i64(const gn_par *par, int64_t *buf, size_t n);

/* Collective on par->comm. In-place max of n doubles over all ranks. */
int gn_par_max(const gn_par *par, double *buf, size_t n);

/* Collective on par->comm. Broadcast of n bytes from rank root (chunked past INT_MAX). */
int gn_par_bcast(const gn_par *par, void *buf, size_t n, int root);

/* A sum into node-shared memory in flight (gn_par_sum_to_node_begin / _end). */
typedef struct {
  int n;               /* requests */
  MPI_Request *req;
  int *counts;         /* per piece, the node ranks' shares */
  const gn_real *src;  /* what the sum was started with, for the second stage */
  gn_real *dst;
  size_t len;
} gn_par_pending;

/* Collective on par->comm. dst (len values of node-shared memory, shm.h) = the sum over every
 * rank of its private src (len values). Within a node the sum is reduce-scattered in pieces
 * straight into dst, each node rank receiving a share; across nodes each share is summed once
 * (by the ranks of equal node_rank) or, on nodes of unequal sizes, by the node leaders. Begin
 * starts the first stage and returns (src and dst stay untouched by the caller until _end);
 * _end completes it. dst is visible to the whole node only after a gn_shm_sync. */
int gn_par_sum_to_node_begin(const gn_par *par, const gn_real *src, size_t len, gn_real *dst, gn_par_pending *p);
int gn_par_sum_to_node_end(const gn_par *par, gn_par_pending *p);

/* Local. Wall-clock seconds. */
double gn_par_wtime(void);

#endif
