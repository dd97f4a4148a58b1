/* par.c — the only place besides the ScaLAPACK and HDF5 wrappers and the node-shared blocks
 * (shm.c) that calls MPI directly. */
#include "gnrev/core/par.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Collectives move large buffers in pieces of CHUNK elements. Besides keeping counts in int,
 * pieces of 8 MB are ~10x faster than one 100 MB MPI_Allreduce with Debian's Open MPI 4.1 on one
 * node (measured: 0.35 s vs 0.03 s for 12.5 M doubles on 2 ranks; the slow path starts between 16
 * and 32 MB). The element-wise result is the same whatever the piece size. */
enum { CHUNK = 1 << 20 };

int gn_par_mpi_status(int rc, const char *call, const char *file, int line, const char *func) {
  if (rc == MPI_SUCCESS) return GN_OK;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  return gn_error(GN_EMPI, file, line, func, "%s failed: %s", call, msg);
}

/* GNREV_RANKS_PER_NODE: 0 when unset, -1 when not a positive integer. */
static long ranks_per_node(void) {
  const char *v = getenv("GNREV_RANKS_PER_NODE");
  if (!v || !v[0]) return 0;
  char *end = NULL;
  const long k = strtol(v, &end, 10);
  return *end == '\0' && k > 0 && k <= INT_MAX ? k : -1;
}

int gn_par_open(MPI_Comm comm, gn_par *par) {
  memset(par, 0, sizeof *par);
  par->node = par->cross = MPI_COMM_NULL;
  CHECK_MPI(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN));
  CHECK_MPI(MPI_Comm_dup(comm, &par->comm));
  CHECK_MPI(MPI_Comm_rank(par->comm, &par->rank));
  CHECK_MPI(MPI_Comm_size(par->comm, &par->size));
  MPI_Comm shared = MPI_COMM_NULL;
  CHECK_MPI(MPI_Comm_split_type(par->comm, MPI_COMM_TYPE_SHARED, par->rank, MPI_INFO_NULL, &shared));
  const long k = ranks_per_node();
  if (k < 0) {
    MPI_Comm_free(&shared);
    GN_FAIL(GN_EINPUT, "GNREV_RANKS_PER_NODE = '%s'; expected a positive number of ranks", getenv("GNREV_RANKS_PER_NODE"));
  }
  if (k > 0) {
    /* Emulated nodes: consecutive ranks of each real node, k at a time. */
    int srank = 0;
    MPI_Comm_rank(shared, &srank);
    const int rc = MPI_Comm_split(shared, (int)(srank / k), srank, &par->node);
    MPI_Comm_free(&shared);
    CHECK_MPI(rc);
  } else {
    par->node = shared;
  }
  CHECK_MPI(MPI_Comm_rank(par->node, &par->node_rank));
  CHECK_MPI(MPI_Comm_size(par->node, &par->node_size));
  CHECK_MPI(MPI_Comm_split(par->comm, par->node_rank, par->rank, &par->cross));
  int sizes[3] = {par->node_rank == 0, par->node_size, -par->node_size};
  CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, sizes, 1, MPI_INT, MPI_SUM, par->comm));
  CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, sizes + 1, 2, MPI_INT, MPI_MAX, par->comm));
  par->nnodes = sizes[0];
  par->uniform = sizes[1] == -sizes[2];
  return GN_OK;
}

void gn_par_close(gn_par *par) {
  if (par->cross != MPI_COMM_NULL && par->cross != 0) MPI_Comm_free(&par->cross);
  if (par->node != MPI_COMM_NULL && par->node != 0) MPI_Comm_free(&par->node);
  if (par->comm != MPI_COMM_NULL && par->comm != 0) MPI_Comm_free(&par->comm);
}

/* After the MAX of the statuses: the message of the lowest failing rank to every rank. */
static int share_message(const gn_par *par, int status, int global);

int gn_par_agree(const gn_par *par, int status) {
  int global = status;
  if (MPI_Allreduce(&status, &global, 1, MPI_INT, MPI_MAX, par->comm) != MPI_SUCCESS)
    gn_par_die(par, GN_EMPI);
  return share_message(par, status, global);
}

int gn_par_agree_within(const gn_par *par, int status, double seconds, void (*before_abort)(void *), void *ctx) {
  int global = status;
  MPI_Request req;
  if (MPI_Iallreduce(&status, &global, 1, MPI_INT, MPI_MAX, par->comm, &req) != MPI_SUCCESS)
    gn_par_die(par, GN_EMPI);
  if (status == GN_OK) {
    if (MPI_Wait(&req, MPI_STATUS_IGNORE) != MPI_SUCCESS) gn_par_die(par, GN_EMPI);
  } else {
    const double deadline = MPI_Wtime() + seconds;
    for (int done = 0; !done;) {
      if (MPI_Test(&req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) gn_par_die(par, GN_EMPI);
      if (done) break;
      if (MPI_Wtime() > deadline) {
        char msg[8192];
        snprintf(msg, sizeof msg,
                 "%s\n  the other ranks did not reach agreement on this error within %g s (GNREV_IO_TIMEOUT): "
                 "they wait inside the I/O library for this rank, so the job is aborted",
                 gn_error_message(), seconds);
        gn_error_set_message(msg, gn_error_traceback());
        if (before_abort) before_abort(ctx);
        gn_par_die(par, status);
      }
      nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
    }
  }
  return share_message(par, status, global);
}

static int share_message(const gn_par *par, int status, int global) {
  if (global == GN_OK) return GN_OK;
  int mine = status != GN_OK ? par->rank : INT_MAX, first = mine;
  if (MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, par->comm) != MPI_SUCCESS)
    gn_par_die(par, GN_EMPI);
  if (first == INT_MAX) return global;
  /* The message travels in a fixed-size buffer: long enough for every deck report we make. */
  enum { CAP = 16384 };
  char *buf = calloc(2 * CAP, 1);
  if (!buf) gn_par_die(par, GN_ENOMEM);
  int first_status = status;
  if (par->rank == first) {
    if (first == 0)
      snprintf(buf, CAP, "%s", gn_error_message());
    else
      snprintf(buf, CAP, "rank %d: %s", first, gn_error_message());
    snprintf(buf + CAP, CAP, "%s", gn_error_traceback());
  }
  if (MPI_Bcast(buf, 2 * CAP, MPI_CHAR, first, par->comm) != MPI_SUCCESS ||
      MPI_Bcast(&first_status, 1, MPI_INT, first, par->comm) != MPI_SUCCESS)
    gn_par_die(par, GN_EMPI);
  buf[CAP - 1] = buf[2 * CAP - 1] = '\0';
  gn_error_set_message(buf, buf + CAP);
  free(buf);
  return first_status;
}

/* The message escaped (it may quote the deck or a file name), or as it is if memory is short. */
static void print_message(const char *prefix, int status) {
  char *safe = gn_escape_text(gn_error_message());
  fprintf(stderr, "gnrev_mpi: %s%s: %s\n", prefix, gn_status_name(status), safe ? safe : gn_error_message());
  free(safe);
}

void gn_par_report(const gn_par *par, int status) {
  if (par->rank != 0) return;
  print_message("", status);
  if (getenv("GNREV_TRACEBACK") || status == GN_EINTERNAL)
    fprintf(stderr, "%s\n", gn_error_traceback());
  fflush(stderr);
}

void gn_par_die(const gn_par *par, int status) {
  char prefix[32];
  snprintf(prefix, sizeof prefix, "rank %d: ", par ? par->rank : -1);
  print_message(prefix, status);
  fprintf(stderr, "%s\n", gn_error_traceback());
  fflush(stderr);
  MPI_Abort(par ? par->comm : MPI_COMM_WORLD, status ? status : 1);
  exit(status ? status : 1);
}

int64_t gn_par_rows(int64_t n, int size, int rank, int64_t *row0, int64_t *nrows) {
  int64_t nb = size > 0 ? (n + size - 1) / size : n;
  if (nb < 1) nb = 1;
  int64_t start = (int64_t)rank * nb;
  if (start > n) start = n;
  int64_t count = n - start < nb ? n - start : nb;
  if (row0) *row0 = start;
  if (nrows) *nrows = count;
  return nb;
}

void gn_par_counts(int64_t n, int size, int64_t per, int *cnt, int *dsp) {
  for (int r = 0; r < size; ++r) {
    int64_t row0, nrows;
    gn_par_rows(n, size, r, &row0, &nrows);
    cnt[r] = (int)(nrows * per);
    dsp[r] = (int)(row0 * per);
  }
}

/* In-place allreduce of n elements of `type` (elem bytes each), in pieces of CHUNK. */
static int allreduce(MPI_Comm comm, void *buf, size_t n, MPI_Datatype type, size_t elem, MPI_Op op) {
  for (size_t off = 0; off < n; off += CHUNK) {
    const int len = (int)(n - off < CHUNK ? n - off : CHUNK);
    CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * elem, len, type, op, comm));
  }
  return GN_OK;
}

int gn_par_sum(const gn_par *par, double *buf, size_t n) {
  return allreduce(par->comm, buf, n, MPI_DOUBLE, sizeof(double), MPI_SUM);
}

int gn_par_sum_real(const gn_par *par, gn_real *buf, size_t n) {
  return allreduce(par->comm, buf, n, GN_MPI_REAL, sizeof(gn_real), MPI_SUM);
}

int gn_par_sum_i64(const gn_par *par, int64_t *buf, size_t n) {
  return allreduce(par->comm, buf, n, MPI_INT64_T, sizeof(int64_t), MPI_SUM);
}

int gn_par_max(const gn_par *par, double *buf, size_t n) {
  return allreduce(par->comm, buf, n, MPI_DOUBLE, sizeof(double), MPI_MAX);
}

/* The share of node rank r in piece [off, off + len): counts as ranks of the node see them. */
static void piece_share(size_t len, int nsize, int r, int *lo, int *cnt) {
  const size_t a = len * (size_t)r / (size_t)nsize, b = len * (size_t)(r + 1) / (size_t)nsize;
  *lo = (int)a;
  *cnt = (int)(b - a);
}

int gn_par_sum_to_node_begin(const gn_par *par, const gn_real *src, size_t len, gn_real *dst, gn_par_pending *p) {
  memset(p, 0, sizeof *p);
  p->src = src;
  p->dst = dst;
  p->len = len;
  const size_t pieces = (len + CHUNK - 1) / CHUNK;
  p->req = malloc((pieces ? pieces : 1) * sizeof(MPI_Request));
  /* Non-blocking collectives read their count arrays until they complete: one per piece. */
  p->counts = malloc((pieces ? pieces : 1) * (size_t)par->node_size * sizeof(int));
  if (!p->req || !p->counts) {
    free(p->req);
    free(p->counts);
    p->req = NULL;
    p->counts = NULL;
    GN_FAIL(GN_ENOMEM, "out of memory for %zu reduction requests", pieces);
  }
  int status = GN_OK;
  for (size_t k = 0; k < pieces && status == GN_OK; ++k) {
    const size_t off = k * CHUNK, n = len - off < CHUNK ? len - off : CHUNK;
    if (par->uniform) {
      /* Each node rank receives its share of the node's sum of this piece in place in dst. */
      int lo = 0, cnt = 0, *counts = p->counts + k * (size_t)par->node_size;
      for (int r = 0; r < par->node_size; ++r) piece_share(n, par->node_size, r, &lo, &counts[r]);
      piece_share(n, par->node_size, par->node_rank, &lo, &cnt);
      status = gn_par_mpi_status(MPI_Ireduce_scatter(src + off, dst + off + lo, counts, GN_MPI_REAL, MPI_SUM,
                                                     par->node, &p->req[p->n]),
                                 "MPI_Ireduce_scatter", __FILE__, __LINE__, __func__);
    } else {
      /* Nodes of unequal sizes: the node leader receives the node's sum of the piece. */
      status = gn_par_mpi_status(MPI_Ireduce(src + off, dst + off, (int)n, GN_MPI_REAL, MPI_SUM, 0, par->node,
                                             &p->req[p->n]),
                                 "MPI_Ireduce", __FILE__, __LINE__, __func__);
    }
    if (status == GN_OK) ++p->n;
  }
  return status;
}

int gn_par_sum_to_node_end(const gn_par *par, gn_par_pending *p) {
  int status = gn_par_mpi_status(MPI_Waitall(p->n, p->req, MPI_STATUSES_IGNORE), "MPI_Waitall", __FILE__,
                                 __LINE__, __func__);
  free(p->req);
  free(p->counts);
  p->req = NULL;
  p->counts = NULL;
  CHECK(status);
  if (par->nnodes <= 1) return GN_OK;
  /* Across nodes: the shares of equal node rank, or the leaders' whole pieces, summed once. */
  for (size_t off = 0; off < p->len; off += CHUNK) {
    const size_t n = p->len - off < CHUNK ? p->len - off : CHUNK;
    if (par->uniform) {
      int lo = 0, cnt = 0;
      piece_share(n, par->node_size, par->node_rank, &lo, &cnt);
      if (cnt > 0) CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, p->dst + off + lo, cnt, GN_MPI_REAL, MPI_SUM, par->cross));
    } else if (par->node_rank == 0) {
      CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, p->dst + off, (int)n, GN_MPI_REAL, MPI_SUM, par->cross));
    }
  }
  return GN_OK;
}

int gn_par_bcast(const gn_par *par, void *buf, size_t n, int root) {
  for (size_t off = 0; off < n; off += CHUNK) {
    int len = (int)(n - off < CHUNK ? n - off : CHUNK);
    CHECK_MPI(MPI_Bcast((char *)buf + off, len, MPI_BYTE, root, par->comm));
  }
  return GN_OK;
}

double gn_par_wtime(void) { return MPI_Wtime(); }
