/* h5io.c — the HDF5 output layer: parallel files over MPI-IO, replicated and row-distributed
 * arrays, extendible series, attributes, and the write-aside-then-rename of restart files.
 *
 * Every public collective function ends with gn_par_agree (writes: agree_write), so all ranks
 * return the same status and message. Failures that come from the file's metadata (a missing dataset, a wrong shape) are seen
 * by every rank at the same call, so no rank waits in a collective the others skipped; arguments
 * that may differ between ranks (row ranges) are agreed before any collective HDF5 call. Messages
 * name the file, the object and what failed, with HDF5's innermost reason appended.
 *
 * A full disk: every write that grows a file first checks, on rank 0, that it leaves SPACE_MARGIN
 * free (ensure_space), so the common case is refused before HDF5 starts (GN_EIO naming the file
 * system). A write that fails anyway (a quota, another program filling the disk) may leave ranks
 * inside HDF5 waiting for the failed one: agree_write then aborts the job after GNREV_IO_TIMEOUT
 * rather than hang, and an abandoned temporary file is emptied before HDF5 closes it. */
#include "gnrev/core/h5io.h"

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "gnrev/core/fs.h"
#include "gnrev/core/real.h"
#include "gnrev/core/sysmem.h"

/* gn_real in memory; on disk every floating-point dataset is double (real.h). */
#define GN_H5_REAL GN_LA(H5T_NATIVE_DOUBLE, H5T_NATIVE_FLOAT)

enum { SERIES_CHUNK = 1024, MSG_CAP = 4096, REASON_CAP = 1024, SHAPE_CAP = 96 };

/* Bytes a write must leave free on the file system: room for what HDF5 writes of its own accord
 * (metadata at its sync points, every 256 KiB of dirty metadata by default, and at close). With
 * it, a full disk is refused before HDF5 starts a write that one rank could fail alone. */
enum { SPACE_MARGIN = 1 << 20 };

struct gn_h5 {
  gn_par par; /* the communicator facts (the communicator itself is not owned) */
  hid_t file; /* the open file, -1 once closed */
  hid_t dxpl; /* collective MPI-IO transfers */
  hid_t lcpl; /* link creation that makes intermediate groups */
  char *name; /* the path users know (the final path of an atomic file), used in messages */
  char *tmp;  /* atomic files: the temporary path actually written; NULL otherwise */
  char *dir;  /* the folder of the file (where its free space is looked up) */
  bool failed; /* a write failed on some rank (agreed): the close must not need space */
};

/* ---- errors ---------------------------------------------------------------------------------- */

static herr_t innermost_cb(unsigned n, const H5E_error2_t *err, void *data) {
  char *reason = data;
  if (n != 0) return 0;
  char minor[256] = "";
  if (H5Eget_msg(err->min_num, NULL, minor, sizeof minor) < 0) minor[0] = '\0';
  const char *desc = err->desc ? err->desc : "";
  snprintf(reason, REASON_CAP, "%s", desc[0] ? desc : minor);
  return 0;
}

int gn_h5_error(int status, const char *file, int line, const char *func, const char *fmt, ...) {
  char msg[MSG_CAP];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  char reason[REASON_CAP] = "";
  if (H5Eget_num(H5E_DEFAULT) > 0) H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_cb, reason);
  H5Eclear2(H5E_DEFAULT);
  if (reason[0]) return gn_error(status, file, line, func, "%s (HDF5: %s)", msg, reason);
  return gn_error(status, file, line, func, "%s", msg);
}

#define H5_FAIL_GOTO(st, ...)             \
  do {                                    \
    status = GN_H5_RAISE((st), __VA_ARGS__); \
    goto fail;                            \
  } while (0)

static void close_id(hid_t *id) {
  if (*id < 0) return;
  switch (H5Iget_type(*id)) {
    case H5I_DATASET: H5Dclose(*id); break;
    case H5I_DATASPACE: H5Sclose(*id); break;
    case H5I_DATATYPE: H5Tclose(*id); break;
    case H5I_ATTR: H5Aclose(*id); break;
    case H5I_GROUP: H5Gclose(*id); break;
    case H5I_GENPROP_LST: H5Pclose(*id); break;
    default: H5Oclose(*id); break;
  }
  *id = -1;
}

static void format_shape(char *buf, int ndims, const int64_t *dims) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < ndims && used < SHAPE_CAP; ++i)
    used += (size_t)snprintf(buf + used, SHAPE_CAP - used, "%s%lld", i ? " x " : "", (long long)dims[i]);
}

/* ---- failed writes ------------------------------------------------------------------------------ */

/* Seconds a rank whose write failed waits for the others (GNREV_IO_TIMEOUT, default 120). */
static double io_timeout(void) {
  const char *v = getenv("GNREV_IO_TIMEOUT");
  const double s = v ? strtod(v, NULL) : 0;
  return s > 0 && isfinite(s) ? s : 120.0;
}

/* Before an abort: a partial temporary file must not linger (any rank may do it: shared folder),
 * and the message names the file system. */
static void before_abort(void *ctx) {
  const gn_h5 *f = ctx;
  if (f->tmp) unlink(f->tmp);
  char fs[1400], msg[MSG_CAP + 1500];
  gn_fs_describe(f->dir, fs, sizeof fs);
  snprintf(msg, sizeof msg, "%s\n  %s", gn_error_message(), fs);
  gn_error_set_message(msg, gn_error_traceback());
}

/* Collective. Agrees the status of a write. A failed HDF5 write can leave the other ranks waiting
 * inside HDF5 for the one that failed: that rank then aborts the job after io_timeout() instead of
 * hanging (gn_par_agree_within). An I/O error marks the file failed and its message names the file
 * system and its free space. */
static int agree_write(gn_h5 *f, int status) {
  status = gn_par_agree_within(&f->par, status, io_timeout(), before_abort, f);
  if (status == GN_EIO && !f->failed) {
    f->failed = true;
    if (!strstr(gn_error_message(), "the file system at")) {
      char fs[1400], msg[MSG_CAP + 1500];
      gn_fs_describe(f->dir, fs, sizeof fs);
      snprintf(msg, sizeof msg, "%s; %s", gn_error_message(), fs);
      gn_error_set_message(msg, gn_error_traceback());
    }
  }
  return status;
}

/* Collective. Refuses (GN_EIO on every rank, before any HDF5 call) a write of about `bytes` (what:
 * "dataset '/x'") that would leave less than SPACE_MARGIN free where the file lives. For the
 * tests, GNREV_FAULT_SKIP_SPACE_CHECK=1 lets every write through, so that HDF5 meets the full disk
 * itself (docs/operations.md). */
static int ensure_space(gn_h5 *f, const char *what, double bytes) {
  int status = GN_OK;
  char dataset[512];
  if (what[0] == '/') { /* a dataset's path */
    snprintf(dataset, sizeof dataset, "dataset '%s'", what);
    what = dataset;
  }
  double freeb = 0, total = 0;
  const char *skip = getenv("GNREV_FAULT_SKIP_SPACE_CHECK");
  if (f->par.rank == 0 && !(skip && strcmp(skip, "1") == 0) && gn_fs_space(f->dir, &freeb, &total) == 0 &&
      freeb < bytes + SPACE_MARGIN) {
    char fs[1400], need[32], margin[32];
    gn_fs_describe(f->dir, fs, sizeof fs);
    gn_sysmem_str((size_t)bytes, need, sizeof need);
    gn_sysmem_str(SPACE_MARGIN, margin, sizeof margin);
    status = GN_RAISE(GN_EIO, "%s: not enough free space for %s (%s, and %s kept free for HDF5's own writes): %s",
                      f->name, what, need, margin, fs);
  }
  return gn_par_agree(&f->par, status);
}

/* ---- paths ----------------------------------------------------------------------------------- */

/* Local. H5Lexists fails rather than answers when an intermediate link is missing, so every
 * prefix is checked in turn; a path that runs through a dataset does not exist. */
static bool link_exists(hid_t file, const char *path) {
  size_t len = strlen(path);
  if (len == 0 || strcmp(path, "/") == 0) return true;
  char *buf = malloc(len + 1);
  if (!buf) return false;
  memcpy(buf, path, len + 1);
  bool ok = true;
  for (size_t i = 1; i <= len && ok; ++i) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    if (buf[i - 1] == '/') continue;
    char c = buf[i];
    buf[i] = '\0';
    ok = H5Lexists(file, buf, H5P_DEFAULT) > 0;
    buf[i] = c;
  }
  free(buf);
  H5Eclear2(H5E_DEFAULT);
  return ok;
}

static int join_path(const char *group, const char *name, char **out) {
  size_t lg = strlen(group), ln = strlen(name);
  char *p = malloc(lg + ln + 2);
  CHECK_ALLOC(p);
  bool slash = lg > 0 && group[lg - 1] == '/';
  snprintf(p, lg + ln + 2, "%s%s%s", group, slash ? "" : "/", name);
  *out = p;
  return GN_OK;
}

/* ---- handles --------------------------------------------------------------------------------- */

static void free_handle(gn_h5 *f) {
  if (!f) return;
  close_id(&f->dxpl);
  close_id(&f->lcpl);
  free(f->name);
  free(f->tmp);
  free(f->dir);
  free(f);
}

static int new_handle(const gn_par *par, const char *name, gn_h5 **out) {
  /* Our messages replace HDF5's own stack dumps, which would print on every rank. */
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  *out = NULL;
  gn_h5 *f = calloc(1, sizeof *f);
  CHECK_ALLOC(f);
  f->par = *par;
  f->file = f->dxpl = f->lcpl = -1;
  int status = GN_OK;
  f->name = strdup(name);
  f->dir = strdup(name);
  if (!f->name || !f->dir) FAIL_GOTO(GN_ENOMEM, "out of memory for the name of '%s'", name);
  char *slash = strrchr(f->dir, '/');
  if (!slash) snprintf(f->dir, strlen(f->dir) + 1, ".");
  else if (slash == f->dir) slash[1] = '\0';
  else *slash = '\0';
  f->dxpl = H5Pcreate(H5P_DATASET_XFER);
  if (f->dxpl < 0 || H5Pset_dxpl_mpio(f->dxpl, H5FD_MPIO_COLLECTIVE) < 0)
    H5_FAIL_GOTO(GN_ELIB, "%s: cannot set up collective transfers", name);
  f->lcpl = H5Pcreate(H5P_LINK_CREATE);
  if (f->lcpl < 0 || H5Pset_create_intermediate_group(f->lcpl, 1) < 0)
    H5_FAIL_GOTO(GN_ELIB, "%s: cannot set up group creation", name);
  *out = f;
  return GN_OK;
fail:
  free_handle(f);
  return status;
}

static hid_t mpio_fapl(const gn_h5 *f) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0) return -1;
  if (H5Pset_fapl_mpio(fapl, f->par.comm, MPI_INFO_NULL) < 0) {
    H5Pclose(fapl);
    return -1;
  }
  return fapl;
}

static int create_on_disk(gn_h5 *f, const char *disk_path) {
  hid_t fapl = mpio_fapl(f);
  if (fapl < 0) return GN_H5_RAISE(GN_ELIB, "%s: cannot set up MPI-IO file access", f->name);
  f->file = H5Fcreate(disk_path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  int status = GN_OK;
  if (f->file < 0) status = GN_H5_RAISE(GN_EIO, "cannot create HDF5 file '%s'", disk_path);
  H5Pclose(fapl);
  return status;
}

static int stat_regular(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) GN_FAIL(GN_EIO, "cannot open '%s': %s", path, strerror(errno));
  if (!S_ISREG(st.st_mode)) GN_FAIL(GN_EIO, "cannot open '%s': not a regular file", path);
  return GN_OK;
}

/* Closes objects a caller left open so H5Fclose can succeed (the default "semi" close degree of
 * MPI-IO files refuses otherwise, and an unclosed file would hang MPI_Finalize). */
static int close_file(gn_h5 *f) {
  if (f->file < 0) return GN_OK;
  int status = GN_OK;
  unsigned kinds = H5F_OBJ_DATASET | H5F_OBJ_GROUP | H5F_OBJ_DATATYPE | H5F_OBJ_ATTR | H5F_OBJ_LOCAL;
  ssize_t left = H5Fget_obj_count(f->file, kinds);
  if (left > 0) {
    status =
        GN_RAISE(GN_EINTERNAL, "%s: %lld HDF5 objects were left open before close", f->name, (long long)left);
    hid_t *ids = malloc((size_t)left * sizeof *ids);
    if (ids) {
      ssize_t got = H5Fget_obj_ids(f->file, kinds, (size_t)left, ids);
      for (ssize_t i = 0; i < got; ++i) close_id(&ids[i]);
      free(ids);
    }
  }
  /* For an atomic file the flush makes every rank MPI_File_sync its own writes (the MPI-IO
   * driver syncs on flush, not on close); rank 0 syncs what the close itself writes. */
  if (f->tmp && status == GN_OK && H5Fflush(f->file, H5F_SCOPE_GLOBAL) < 0)
    status = GN_H5_RAISE(GN_EIO, "%s: cannot flush before closing", f->name);
  if (H5Fclose(f->file) < 0 && status == GN_OK) status = GN_H5_RAISE(GN_EIO, "%s: cannot close", f->name);
  f->file = -1;
  return status;
}

static int fsync_path(const char *path, int flags) {
  int fd = open(path, flags);
  if (fd < 0) GN_FAIL(GN_EIO, "cannot open '%s' to sync it: %s", path, strerror(errno));
  /* Some file systems refuse fsync on a directory (EINVAL): nothing more can be done there. */
  if (fsync(fd) != 0 && !(errno == EINVAL && (flags & O_DIRECTORY))) {
    int e = errno;
    close(fd);
    GN_FAIL(GN_EIO, "cannot sync '%s' to disk: %s", path, strerror(e));
  }
  close(fd);
  return GN_OK;
}

/* Rank 0 only: the data reach the disk before the name does, and the new name before we return. */
static int publish(const char *tmp, const char *final_path) {
  CHECK(fsync_path(tmp, O_RDONLY));
  if (rename(tmp, final_path) != 0)
    GN_FAIL(GN_EIO, "cannot rename '%s' to '%s': %s", tmp, final_path, strerror(errno));
  const char *slash = strrchr(final_path, '/');
  char *dir = NULL;
  if (!slash) {
    dir = strdup(".");
  } else {
    size_t n = slash == final_path ? 1 : (size_t)(slash - final_path);
    dir = malloc(n + 1);
    if (dir) {
      memcpy(dir, final_path, n);
      dir[n] = '\0';
    }
  }
  CHECK_ALLOC(dir);
  int status = fsync_path(dir, O_RDONLY | O_DIRECTORY);
  free(dir);
  CHECK(status);
  return GN_OK;
}

int gn_h5_create(const gn_par *par, const char *path, gn_h5 **f) {
  gn_h5 *h = NULL;
  *f = NULL;
  int status = gn_par_agree(par, new_handle(par, path, &h));
  if (status == GN_OK) status = ensure_space(h, "a new file", 0);
  if (status == GN_OK) status = create_on_disk(h, path);
  status = gn_par_agree(par, status);
  if (status != GN_OK) {
    if (h) close_file(h);
    free_handle(h);
    return status;
  }
  *f = h;
  return GN_OK;
}

int gn_h5_open(const gn_par *par, const char *path, bool write, gn_h5 **f) {
  gn_h5 *h = NULL;
  *f = NULL;
  int status = new_handle(par, path, &h);
  if (status == GN_OK) status = stat_regular(path);
  /* Agreed before H5Fopen, which is collective: a rank that cannot see the file must not leave
   * the others waiting in it. */
  status = gn_par_agree(par, status);
  if (status == GN_OK) {
    hid_t fapl = mpio_fapl(h);
    if (fapl < 0) {
      status = GN_H5_RAISE(GN_ELIB, "%s: cannot set up MPI-IO file access", path);
    } else {
      h->file = H5Fopen(path, write ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl);
      if (h->file < 0)
        status = GN_H5_RAISE(GN_EIO, "cannot open '%s' for %s: not an HDF5 file, or not accessible", path,
                          write ? "appending" : "reading");
      H5Pclose(fapl);
    }
    status = gn_par_agree(par, status);
  }
  if (status != GN_OK) {
    if (h) close_file(h);
    free_handle(h);
    return status;
  }
  *f = h;
  return GN_OK;
}

int gn_h5_create_atomic(const gn_par *par, const char *final_path, gn_h5 **f) {
  *f = NULL;
  long pid = (long)getpid();
  CHECK(gn_par_bcast(par, &pid, sizeof pid, 0));
  gn_h5 *h = NULL;
  int status = new_handle(par, final_path, &h);
  if (status == GN_OK) {
    size_t cap = strlen(final_path) + 32;
    h->tmp = malloc(cap);
    if (!h->tmp)
      status = GN_RAISE(GN_ENOMEM, "out of memory for the temporary name of '%s'", final_path);
    else
      snprintf(h->tmp, cap, "%s.tmp.%ld", final_path, pid);
  }
  status = gn_par_agree(par, status);
  if (status == GN_OK) status = ensure_space(h, "a new file", 0);
  if (status == GN_OK) status = create_on_disk(h, h->tmp);
  status = gn_par_agree(par, status);
  if (status != GN_OK) {
    if (h) close_file(h);
    if (h && h->tmp && par->rank == 0) unlink(h->tmp);
    free_handle(h);
    return status;
  }
  *f = h;
  return GN_OK;
}

int gn_h5_close(gn_h5 *f) {
  if (!f) return GN_OK;
  int status = agree_write(f, close_file(f));
  if (f->tmp) {
    int mine = GN_OK;
    if (f->par.rank == 0) {
      if (status == GN_OK)
        mine = publish(f->tmp, f->name);
      else
        unlink(f->tmp); /* a half-written file must not linger; the old final one stays */
    }
    int published = gn_par_agree(&f->par, mine);
    if (status == GN_OK) status = published;
  }
  free_handle(f);
  return status;
}

int gn_h5_abandon(gn_h5 *f) {
  if (!f) return GN_OK;
  /* The partial file is going away: its space is freed first, so that the metadata HDF5 writes on
   * closing finds room on a full disk (a write failing on one rank there would leave the others
   * waiting). Every rank waits for the truncation before closing. */
  int freed = f->tmp && f->par.rank == 0 ? truncate(f->tmp, 0) : 0;
  (void)freed; /* if it fails, the close below may still succeed: nothing else to try */
  gn_par_agree(&f->par, GN_OK);
  int status = close_file(f);
  if (f->tmp) {
    if (f->par.rank == 0 && unlink(f->tmp) != 0 && errno != ENOENT && status == GN_OK)
      status = GN_RAISE(GN_EIO, "cannot delete the temporary file '%s': %s", f->tmp, strerror(errno));
  } else if (status == GN_OK) {
    status = GN_RAISE(GN_EINTERNAL,
                      "%s: gn_h5_abandon on a file not made by gn_h5_create_atomic "
                      "(closed, not deleted)",
                      f->name);
  }
  status = agree_write(f, status);
  free_handle(f);
  return status;
}

int gn_h5_flush(gn_h5 *f) {
  CHECK(ensure_space(f, "flushing it", 0));
  int status = GN_OK;
  if (H5Fflush(f->file, H5F_SCOPE_GLOBAL) < 0) status = GN_H5_RAISE(GN_EIO, "%s: cannot flush", f->name);
  return agree_write(f, status);
}

bool gn_h5_exists(gn_h5 *f, const char *path) { return link_exists(f->file, path); }

int gn_h5_unlink(gn_h5 *f, const char *path) {
  if (!link_exists(f->file, path)) return GN_OK;
  if (H5Ldelete(f->file, path, H5P_DEFAULT) < 0) return GN_H5_RAISE(GN_EIO, "%s: cannot remove '%s'", f->name, path);
  return GN_OK;
}

/* ---- datasets -------------------------------------------------------------------------------- */

static int open_dataset(gn_h5 *f, const char *path, hid_t *dset) {
  *dset = -1;
  if (!link_exists(f->file, path)) GN_FAIL(GN_EIO, "%s: no dataset '%s'", f->name, path);
  hid_t d = H5Dopen2(f->file, path, H5P_DEFAULT);
  if (d < 0) return GN_H5_RAISE(GN_EIO, "%s: cannot open dataset '%s'", f->name, path);
  *dset = d;
  return GN_OK;
}

/* The extents of a dataset; fails past 3 dimensions (none of our arrays has more). */
static int dataset_shape(gn_h5 *f, hid_t d, const char *path, int *ndims, int64_t dims[3], bool *extendible) {
  hid_t space = H5Dget_space(d);
  if (space < 0) return GN_H5_RAISE(GN_EIO, "%s: cannot read the shape of '%s'", f->name, path);
  int nd = H5Sget_simple_extent_ndims(space);
  if (nd < 0) {
    int status = GN_H5_RAISE(GN_EIO, "%s: cannot read the shape of '%s'", f->name, path);
    H5Sclose(space);
    return status;
  }
  if (nd > 3) {
    H5Sclose(space);
    GN_FAIL(GN_EINPUT, "%s: dataset '%s' has %d dimensions, at most 3 are supported", f->name, path, nd);
  }
  hsize_t hd[3] = {0, 0, 0}, hm[3] = {0, 0, 0};
  H5Sget_simple_extent_dims(space, hd, hm);
  H5Sclose(space);
  *ndims = nd;
  for (int i = 0; i < 3; ++i) dims[i] = i < nd ? (int64_t)hd[i] : 0;
  if (extendible) *extendible = nd >= 1 && hm[0] == H5S_UNLIMITED;
  return GN_OK;
}

static int check_dims(gn_h5 *f, const char *path, int ndims, const int64_t *dims) {
  if (ndims < 1 || ndims > 3)
    GN_FAIL(GN_EINTERNAL, "%s: dataset '%s' asked with %d dimensions (1 to 3 supported)", f->name, path,
            ndims);
  for (int i = 0; i < ndims; ++i)
    if (dims[i] < 0)
      GN_FAIL(GN_EINTERNAL, "%s: dataset '%s' asked with negative extent %lld", f->name, path,
              (long long)dims[i]);
  return GN_OK;
}

/* An existing dataset of the same shape and type is reused (a checkpoint rewritten in place);
 * one of another shape or type is unlinked and made anew. */
static int create_dataset(gn_h5 *f, const char *path, hid_t ftype, int ndims, const int64_t *dims,
                          hid_t *dset) {
  int status = GN_OK;
  hid_t old = -1, otype = -1, space = -1, d = -1;
  *dset = -1;
  if (link_exists(f->file, path)) {
    old = H5Oopen(f->file, path, H5P_DEFAULT);
    if (old < 0) H5_FAIL_GOTO(GN_EIO, "%s: cannot open '%s'", f->name, path);
    if (H5Iget_type(old) != H5I_DATASET)
      FAIL_GOTO(GN_EINTERNAL, "%s: '%s' exists and is not a dataset", f->name, path);
    int nd = 0;
    int64_t od[3];
    CHECK_GOTO(dataset_shape(f, old, path, &nd, od, NULL));
    otype = H5Dget_type(old);
    bool same = otype >= 0 && H5Tequal(otype, ftype) > 0 && nd == ndims;
    for (int i = 0; same && i < ndims; ++i) same = od[i] == dims[i];
    if (same) {
      *dset = old;
      old = -1;
      goto fail;
    }
    close_id(&old);
    if (H5Ldelete(f->file, path, H5P_DEFAULT) < 0)
      H5_FAIL_GOTO(GN_EIO, "%s: cannot replace dataset '%s'", f->name, path);
  }
  hsize_t hd[3];
  for (int i = 0; i < ndims; ++i) hd[i] = (hsize_t)dims[i];
  space = H5Screate_simple(ndims, hd, NULL);
  if (space < 0) H5_FAIL_GOTO(GN_ELIB, "%s: cannot make a dataspace for '%s'", f->name, path);
  d = H5Dcreate2(f->file, path, ftype, space, f->lcpl, H5P_DEFAULT, H5P_DEFAULT);
  if (d < 0) H5_FAIL_GOTO(GN_EIO, "%s: cannot create dataset '%s'", f->name, path);
  *dset = d;
  d = -1;
fail:
  close_id(&d);
  close_id(&space);
  close_id(&otype);
  close_id(&old);
  return status;
}

/* Writes (or reads) rows [row0, row0 + nrows) of a dataset whose rows hold rowelems elements,
 * from (into) buf. Ranks with no rows take part with empty selections, as collective I/O needs. */
static int transfer_rows(gn_h5 *f, hid_t d, const char *path, bool write, hid_t mtype, int64_t row0,
                         int64_t nrows, int64_t rowelems, void *buf) {
  int status = GN_OK;
  hid_t fspace = -1, mspace = -1;
  static double dummy;
  fspace = H5Dget_space(d);
  if (fspace < 0) H5_FAIL_GOTO(GN_EIO, "%s: cannot get the dataspace of '%s'", f->name, path);
  /* An empty dataset has no storage: an I/O call on it fails even with nothing selected. The
   * extent is the same on every rank, so all skip together. */
  if (H5Sget_simple_extent_npoints(fspace) == 0) goto fail;
  hsize_t nelem = (hsize_t)(nrows * rowelems);
  if (nelem > 0) {
    int nd = H5Sget_simple_extent_ndims(fspace);
    hsize_t start[3] = {(hsize_t)row0, 0, 0}, count[3] = {(hsize_t)nrows, 0, 0}, ext[3];
    H5Sget_simple_extent_dims(fspace, ext, NULL);
    for (int i = 1; i < nd; ++i) count[i] = ext[i];
    if (H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0)
      H5_FAIL_GOTO(GN_EIO, "%s: cannot select rows %lld..%lld of '%s'", f->name, (long long)row0,
                   (long long)(row0 + nrows), path);
    mspace = H5Screate_simple(1, &nelem, NULL);
  } else {
    hsize_t one = 1;
    H5Sselect_none(fspace);
    mspace = H5Screate_simple(1, &one, NULL);
    if (mspace >= 0) H5Sselect_none(mspace);
    buf = &dummy;
  }
  if (mspace < 0) H5_FAIL_GOTO(GN_ELIB, "%s: cannot make a memory dataspace for '%s'", f->name, path);
  herr_t rc = write ? H5Dwrite(d, mtype, mspace, fspace, f->dxpl, buf)
                    : H5Dread(d, mtype, mspace, fspace, f->dxpl, buf);
  if (rc < 0) H5_FAIL_GOTO(GN_EIO, "%s: cannot %s dataset '%s'", f->name, write ? "write" : "read", path);
fail:
  close_id(&mspace);
  close_id(&fspace);
  return status;
}

static int64_t row_elems(int ndims, const int64_t *dims) {
  int64_t n = 1;
  for (int i = 1; i < ndims; ++i) n *= dims[i];
  return n;
}

static int write_replicated(gn_h5 *f, const char *path, int ndims, const int64_t *dims, hid_t mtype,
                            hid_t ftype, size_t elsize, const void *data) {
  CHECK(check_dims(f, path, ndims, dims));
  hid_t d = -1;
  CHECK(create_dataset(f, path, ftype, ndims, dims, &d));
  int64_t row0 = 0, nrows = 0, re = row_elems(ndims, dims);
  gn_par_rows(dims[0], f->par.size, f->par.rank, &row0, &nrows);
  const char *base = nrows > 0 ? (const char *)data + (size_t)(row0 * re) * elsize : NULL;
  int status = transfer_rows(f, d, path, true, mtype, row0, nrows, re, (void *)base);
  close_id(&d);
  CHECK(status);
  return GN_OK;
}

/* Bytes of an array of these extents (0 for extents check_dims will refuse). */
static double array_bytes(int ndims, const int64_t *dims, size_t elsize) {
  double n = (double)elsize;
  for (int i = 0; i < ndims && i < 3; ++i) n *= dims[i] > 0 ? (double)dims[i] : 0.0;
  return n;
}

int gn_h5_write_f64(gn_h5 *f, const char *path, int ndims, const int64_t *dims, const double *data) {
  CHECK(ensure_space(f, path, array_bytes(ndims, dims, sizeof(double))));
  return agree_write(f, write_replicated(f, path, ndims, dims, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, sizeof(double),
                                         data));
}

int gn_h5_write_real(gn_h5 *f, const char *path, int ndims, const int64_t *dims, const gn_real *data) {
  CHECK(ensure_space(f, path, array_bytes(ndims, dims, sizeof(double))));
  return agree_write(f, write_replicated(f, path, ndims, dims, GN_H5_REAL, H5T_IEEE_F64LE, sizeof(gn_real), data));
}

int gn_h5_write_i64(gn_h5 *f, const char *path, int ndims, const int64_t *dims, const int64_t *data) {
  CHECK(ensure_space(f, path, array_bytes(ndims, dims, sizeof(int64_t))));
  return agree_write(f, write_replicated(f, path, ndims, dims, H5T_NATIVE_INT64, H5T_STD_I64LE, sizeof(int64_t),
                                         data));
}

/* Each rank reads its share of the rows (so the file is read once, collectively), then the
 * shares are broadcast, so every rank ends with the whole array. Into node-shared memory
 * (node_shared) the shares are those of the node's ranks: every node reads the whole array once,
 * nothing is broadcast, and the node's ranks see it all after a gn_shm_sync. */
static int read_replicated(gn_h5 *f, const char *path, int ndims, const int64_t *dims, hid_t mtype,
                           bool integer_only, size_t elsize, void *data, bool node_shared) {
  int status = check_dims(f, path, ndims, dims);
  hid_t d = -1, type = -1;
  int64_t re = 1;
  if (status == GN_OK) status = open_dataset(f, path, &d);
  if (status == GN_OK) {
    int nd = 0;
    int64_t found[3];
    status = dataset_shape(f, d, path, &nd, found, NULL);
    bool same = status == GN_OK && nd == ndims;
    for (int i = 0; same && i < ndims; ++i) same = found[i] == dims[i];
    if (status == GN_OK && !same) {
      char want[SHAPE_CAP], got[SHAPE_CAP];
      format_shape(want, ndims, dims);
      format_shape(got, nd, found);
      status = GN_RAISE(GN_EINPUT, "%s: dataset '%s' has shape %s, expected %s", f->name, path,
                        nd ? got : "scalar", want);
    }
  }
  if (status == GN_OK) {
    type = H5Dget_type(d);
    H5T_class_t cls = type >= 0 ? H5Tget_class(type) : H5T_NO_CLASS;
    if (cls != H5T_INTEGER && (integer_only || cls != H5T_FLOAT))
      status = GN_RAISE(GN_EINPUT, "%s: dataset '%s' holds %s, expected %s", f->name, path,
                        cls == H5T_FLOAT    ? "floating-point numbers"
                        : cls == H5T_STRING ? "strings"
                                            : "non-numbers",
                        integer_only ? "integers" : "numbers");
  }
  if (status == GN_OK) {
    int64_t row0 = 0, nrows = 0;
    re = row_elems(ndims, dims);
    if (node_shared)
      gn_par_rows(dims[0], f->par.node_size, f->par.node_rank, &row0, &nrows);
    else
      gn_par_rows(dims[0], f->par.size, f->par.rank, &row0, &nrows);
    char *base = nrows > 0 ? (char *)data + (size_t)(row0 * re) * elsize : NULL;
    status = transfer_rows(f, d, path, false, mtype, row0, nrows, re, base);
  }
  close_id(&type);
  close_id(&d);
  CHECK(gn_par_agree(&f->par, status));
  if (node_shared) return GN_OK;
  for (int r = 0; r < f->par.size; ++r) {
    int64_t row0 = 0, nrows = 0;
    gn_par_rows(dims[0], f->par.size, r, &row0, &nrows);
    if (nrows > 0)
      CHECK(gn_par_bcast(&f->par, (char *)data + (size_t)(row0 * re) * elsize, (size_t)(nrows * re) * elsize,
                         r));
  }
  return GN_OK;
}

int gn_h5_read_f64(gn_h5 *f, const char *path, int ndims, const int64_t *dims, double *data) {
  return gn_par_agree(&f->par,
                      read_replicated(f, path, ndims, dims, H5T_NATIVE_DOUBLE, false, sizeof(double), data, false));
}

int gn_h5_read_f64_node(gn_h5 *f, const char *path, int ndims, const int64_t *dims, double *data) {
  return gn_par_agree(&f->par,
                      read_replicated(f, path, ndims, dims, H5T_NATIVE_DOUBLE, false, sizeof(double), data, true));
}

int gn_h5_read_real(gn_h5 *f, const char *path, int ndims, const int64_t *dims, gn_real *data) {
  return gn_par_agree(&f->par, read_replicated(f, path, ndims, dims, GN_H5_REAL, false, sizeof(gn_real), data, false));
}

int gn_h5_read_real_node(gn_h5 *f, const char *path, int ndims, const int64_t *dims, gn_real *data) {
  return gn_par_agree(&f->par, read_replicated(f, path, ndims, dims, GN_H5_REAL, false, sizeof(gn_real), data, true));
}

int gn_h5_read_i64(gn_h5 *f, const char *path, int ndims, const int64_t *dims, int64_t *data) {
  return gn_par_agree(&f->par,
                      read_replicated(f, path, ndims, dims, H5T_NATIVE_INT64, true, sizeof(int64_t), data, false));
}

int gn_h5_shape(gn_h5 *f, const char *path, int *ndims, int64_t dims[3]) {
  hid_t d = -1;
  CHECK(open_dataset(f, path, &d));
  int status = dataset_shape(f, d, path, ndims, dims, NULL);
  close_id(&d);
  CHECK(status);
  return GN_OK;
}

/* Rows [row0, row0 + nrows) of a rows x cols dataset into local, as mtype. */
static int read_rows(gn_h5 *f, const char *path, int64_t rows, int64_t cols, int64_t row0, int64_t nrows, hid_t mtype,
                     void *local) {
  int status = rows < 0 || cols < 0 || row0 < 0 || nrows < 0 || row0 > rows - nrows
                   ? GN_RAISE(GN_EINTERNAL, "%s: rows [%lld, %lld) of dataset '%s' lie outside its %lld rows", f->name,
                              (long long)row0, (long long)(row0 + nrows), path, (long long)rows)
                   : GN_OK;
  CHECK(gn_par_agree(&f->par, status));
  hid_t d = -1;
  status = open_dataset(f, path, &d);
  if (status == GN_OK) {
    int nd = 0;
    int64_t found[3];
    status = dataset_shape(f, d, path, &nd, found, NULL);
    if (status == GN_OK && (nd != 2 || found[0] != rows || found[1] != cols))
      status = GN_RAISE(GN_EINPUT, "%s: dataset '%s' is not %lld x %lld", f->name, path, (long long)rows, (long long)cols);
  }
  CHECK(gn_par_agree(&f->par, status));
  status = transfer_rows(f, d, path, false, mtype, row0, nrows, cols, local);
  close_id(&d);
  return gn_par_agree(&f->par, status);
}

int gn_h5_read_rows_f64(gn_h5 *f, const char *path, int64_t rows, int64_t cols, int64_t row0, int64_t nrows,
                        double *local) {
  return read_rows(f, path, rows, cols, row0, nrows, H5T_NATIVE_DOUBLE, local);
}

int gn_h5_read_rows_real(gn_h5 *f, const char *path, int64_t rows, int64_t cols, int64_t row0, int64_t nrows,
                         gn_real *local) {
  return read_rows(f, path, rows, cols, row0, nrows, GN_H5_REAL, local);
}

/* Rows [row0, row0 + nrows) of a rows x cols double dataset from local, held as mtype. */
static int write_rows(gn_h5 *f, const char *path, int64_t rows, int64_t cols, int64_t row0, int64_t nrows, hid_t mtype,
                      const void *local) {
  /* The row ranges differ between ranks: agree on them before any collective HDF5 call. */
  int status = GN_OK;
  if (rows < 0 || cols < 0 || row0 < 0 || nrows < 0 || row0 > rows - nrows)
    status = GN_RAISE(GN_EINTERNAL, "%s: rows [%lld, %lld) of dataset '%s' lie outside its %lld rows",
                      f->name, (long long)row0, (long long)(row0 + nrows), path, (long long)rows);
  int64_t total = status == GN_OK ? nrows : 0;
  CHECK(gn_par_sum_i64(&f->par, &total, 1));
  CHECK(gn_par_agree(&f->par, status));
  if (total != rows)
    GN_FAIL(GN_EINTERNAL, "%s: the ranks hold %lld rows of dataset '%s' in total, it has %lld", f->name,
            (long long)total, path, (long long)rows);
  const int64_t dims[2] = {rows, cols};
  CHECK(ensure_space(f, path, array_bytes(2, dims, sizeof(double))));
  hid_t d = -1;
  status = create_dataset(f, path, H5T_IEEE_F64LE, 2, dims, &d);
  if (status == GN_OK) status = transfer_rows(f, d, path, true, mtype, row0, nrows, cols, (void *)local);
  close_id(&d);
  return agree_write(f, status);
}

int gn_h5_write_rows_f64(gn_h5 *f, const char *path, int64_t rows, int64_t cols, int64_t row0, int64_t nrows,
                         const double *local) {
  return write_rows(f, path, rows, cols, row0, nrows, H5T_NATIVE_DOUBLE, local);
}

int gn_h5_write_rows_real(gn_h5 *f, const char *path, int64_t rows, int64_t cols, int64_t row0, int64_t nrows,
                          const gn_real *local) {
  return write_rows(f, path, rows, cols, row0, nrows, GN_H5_REAL, local);
}

/* ---- series ---------------------------------------------------------------------------------- */

static int open_series(gn_h5 *f, const char *path, hid_t *dset) {
  if (link_exists(f->file, path)) {
    CHECK(open_dataset(f, path, dset));
    return GN_OK;
  }
  int status = GN_OK;
  hid_t space = -1, dcpl = -1;
  hsize_t zero = 0, unlimited = H5S_UNLIMITED, chunk = SERIES_CHUNK;
  space = H5Screate_simple(1, &zero, &unlimited);
  dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (space < 0 || dcpl < 0 || H5Pset_chunk(dcpl, 1, &chunk) < 0)
    H5_FAIL_GOTO(GN_ELIB, "%s: cannot set up series '%s'", f->name, path);
  *dset = H5Dcreate2(f->file, path, H5T_IEEE_F64LE, space, f->lcpl, dcpl, H5P_DEFAULT);
  if (*dset < 0) H5_FAIL_GOTO(GN_EIO, "%s: cannot create series '%s'", f->name, path);
fail:
  close_id(&dcpl);
  close_id(&space);
  return status;
}

static int append_one(gn_h5 *f, const char *group, const char *name, double value) {
  char *path = NULL;
  CHECK(join_path(group, name, &path));
  hid_t d = -1;
  int status = open_series(f, path, &d);
  int nd = 0;
  int64_t dims[3];
  bool extendible = false;
  if (status == GN_OK) status = dataset_shape(f, d, path, &nd, dims, &extendible);
  if (status == GN_OK && (nd != 1 || !extendible))
    status = GN_RAISE(GN_EINTERNAL, "%s: '%s' is not an extendible 1-D series", f->name, path);
  if (status == GN_OK) {
    hsize_t len = (hsize_t)dims[0] + 1;
    if (H5Dset_extent(d, &len) < 0)
      status =
          GN_H5_RAISE(GN_EIO, "%s: cannot extend series '%s' to %lld entries", f->name, path, (long long)len);
  }
  if (status == GN_OK)
    status = transfer_rows(f, d, path, true, H5T_NATIVE_DOUBLE, dims[0], f->par.rank == 0 ? 1 : 0, 1, &value);
  close_id(&d);
  free(path);
  CHECK(status);
  return GN_OK;
}

int gn_h5_append(gn_h5 *f, const char *group, int n, const char *const *names, const double *values) {
  char what[256];
  snprintf(what, sizeof what, "a row of '%s'", group);
  /* At worst every series starts a new chunk. */
  CHECK(ensure_space(f, what, (double)n * SERIES_CHUNK * sizeof(double)));
  int status = GN_OK;
  if (n < 0 || (n > 0 && (!names || !values)))
    status = GN_RAISE(GN_EINTERNAL, "%s: gn_h5_append to '%s' with %d names", f->name, group, n);
  for (int i = 0; status == GN_OK && i < n; ++i) status = append_one(f, group, names[i], values[i]);
  return agree_write(f, status);
}

typedef struct {
  char **names; /* link names in the group, in name order */
  size_t n, cap;
  int status;
} name_list;

static herr_t collect_name(hid_t group, const char *name, const H5L_info_t *info, void *data) {
  (void)group;
  (void)info;
  name_list *l = data;
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 16;
    char **grown = realloc(l->names, cap * sizeof *grown);
    if (!grown) {
      l->status = GN_ENOMEM;
      return -1;
    }
    l->names = grown;
    l->cap = cap;
  }
  l->names[l->n] = strdup(name);
  if (!l->names[l->n]) {
    l->status = GN_ENOMEM;
    return -1;
  }
  ++l->n;
  return 0;
}

static int truncate_one(gn_h5 *f, const char *path, int64_t len) {
  hid_t o = H5Oopen(f->file, path, H5P_DEFAULT);
  if (o < 0) return GN_H5_RAISE(GN_EIO, "%s: cannot open '%s'", f->name, path);
  int status = GN_OK;
  if (H5Iget_type(o) == H5I_DATASET) {
    int nd = 0;
    int64_t dims[3];
    bool extendible = false;
    status = dataset_shape(f, o, path, &nd, dims, &extendible);
    if (status == GN_OK && nd == 1 && extendible && dims[0] > len) {
      hsize_t hl = (hsize_t)len;
      if (H5Dset_extent(o, &hl) < 0)
        status = GN_H5_RAISE(GN_EIO, "%s: cannot truncate series '%s' to %lld entries", f->name, path,
                          (long long)len);
    }
  }
  close_id(&o);
  return status;
}

static int truncate_series(gn_h5 *f, const char *group, int64_t len) {
  if (len < 0)
    GN_FAIL(GN_EINTERNAL, "%s: series in '%s' truncated to %lld entries", f->name, group, (long long)len);
  if (!link_exists(f->file, group)) return GN_OK;
  int status = GN_OK;
  name_list l = {NULL, 0, 0, GN_OK};
  hid_t g = H5Gopen2(f->file, group, H5P_DEFAULT);
  if (g < 0) H5_FAIL_GOTO(GN_EIO, "%s: cannot open group '%s'", f->name, group);
  /* Name order is the same on every rank, so the collective H5Dset_extent calls line up. */
  if (H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_name, &l) < 0) {
    if (l.status != GN_OK) FAIL_GOTO(l.status, "%s: out of memory listing group '%s'", f->name, group);
    H5_FAIL_GOTO(GN_EIO, "%s: cannot list group '%s'", f->name, group);
  }
  for (size_t i = 0; i < l.n; ++i) {
    char *path = NULL;
    CHECK_GOTO(join_path(group, l.names[i], &path));
    status = truncate_one(f, path, len);
    free(path);
    CHECK_GOTO(status);
  }
fail:
  close_id(&g);
  for (size_t i = 0; i < l.n; ++i) free(l.names[i]);
  free(l.names);
  return status;
}

int gn_h5_truncate_series(gn_h5 *f, const char *group, int64_t len) {
  return agree_write(f, truncate_series(f, group, len));
}

int64_t gn_h5_series_len(gn_h5 *f, const char *path) {
  if (!link_exists(f->file, path)) return 0;
  hid_t d = H5Dopen2(f->file, path, H5P_DEFAULT);
  if (d < 0) {
    H5Eclear2(H5E_DEFAULT);
    return -1;
  }
  int64_t len = -1;
  hid_t space = H5Dget_space(d);
  hsize_t n = 0;
  if (space >= 0 && H5Sget_simple_extent_ndims(space) == 1 && H5Sget_simple_extent_dims(space, &n, NULL) == 1)
    len = (int64_t)n;
  close_id(&space);
  close_id(&d);
  H5Eclear2(H5E_DEFAULT);
  return len;
}

/* ---- attributes ------------------------------------------------------------------------------ */

static int open_object(gn_h5 *f, const char *obj, bool create, hid_t *id) {
  *id = -1;
  if (!link_exists(f->file, obj)) {
    if (!create) GN_FAIL(GN_EIO, "%s: no object '%s'", f->name, obj);
    *id = H5Gcreate2(f->file, obj, f->lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (*id < 0) return GN_H5_RAISE(GN_EIO, "%s: cannot create group '%s'", f->name, obj);
    return GN_OK;
  }
  *id = H5Oopen(f->file, obj, H5P_DEFAULT);
  if (*id < 0) return GN_H5_RAISE(GN_EIO, "%s: cannot open '%s'", f->name, obj);
  return GN_OK;
}

static int write_attr(gn_h5 *f, const char *obj, const char *name, hid_t type, const void *value) {
  int status = GN_OK;
  hid_t o = -1, space = -1, a = -1;
  CHECK_GOTO(open_object(f, obj, true, &o));
  htri_t exists = H5Aexists(o, name);
  if (exists < 0) H5_FAIL_GOTO(GN_EIO, "%s: cannot look up attribute '%s' of '%s'", f->name, name, obj);
  if (exists > 0 && H5Adelete(o, name) < 0)
    H5_FAIL_GOTO(GN_EIO, "%s: cannot replace attribute '%s' of '%s'", f->name, name, obj);
  space = H5Screate(H5S_SCALAR);
  if (space < 0) H5_FAIL_GOTO(GN_ELIB, "%s: cannot make a scalar dataspace", f->name);
  a = H5Acreate2(o, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0) H5_FAIL_GOTO(GN_EIO, "%s: cannot create attribute '%s' of '%s'", f->name, name, obj);
  if (H5Awrite(a, type, value) < 0)
    H5_FAIL_GOTO(GN_EIO, "%s: cannot write attribute '%s' of '%s'", f->name, name, obj);
fail:
  close_id(&a);
  close_id(&space);
  close_id(&o);
  return status;
}

static hid_t vl_utf8_type(void) {
  hid_t t = H5Tcopy(H5T_C_S1);
  if (t < 0) return -1;
  if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
    H5Tclose(t);
    return -1;
  }
  return t;
}

static int attr_str(gn_h5 *f, const char *obj, const char *name, const char *value) {
  if (!value) GN_FAIL(GN_EINTERNAL, "%s: NULL value for attribute '%s' of '%s'", f->name, name, obj);
  hid_t t = vl_utf8_type();
  if (t < 0) return GN_H5_RAISE(GN_ELIB, "%s: cannot make a string type", f->name);
  int status = write_attr(f, obj, name, t, &value);
  H5Tclose(t);
  return status;
}

int gn_h5_attr_str(gn_h5 *f, const char *obj, const char *name, const char *value) {
  return agree_write(f, attr_str(f, obj, name, value));
}

int gn_h5_attr_i64(gn_h5 *f, const char *obj, const char *name, int64_t value) {
  return agree_write(f, write_attr(f, obj, name, H5T_NATIVE_INT64, &value));
}

int gn_h5_attr_f64(gn_h5 *f, const char *obj, const char *name, double value) {
  return agree_write(f, write_attr(f, obj, name, H5T_NATIVE_DOUBLE, &value));
}

/* Opens attribute name of obj, checks it holds one value of an accepted class, returns its type. */
static int open_attr(gn_h5 *f, const char *obj, const char *name, unsigned accept, const char *what,
                     hid_t *obj_id, hid_t *attr, hid_t *type) {
  *attr = *type = -1;
  CHECK(open_object(f, obj, false, obj_id));
  htri_t exists = H5Aexists(*obj_id, name);
  if (exists < 0) return GN_H5_RAISE(GN_EIO, "%s: cannot look up attribute '%s' of '%s'", f->name, name, obj);
  if (exists == 0) GN_FAIL(GN_EIO, "%s: '%s' has no attribute '%s'", f->name, obj, name);
  *attr = H5Aopen(*obj_id, name, H5P_DEFAULT);
  if (*attr < 0) return GN_H5_RAISE(GN_EIO, "%s: cannot open attribute '%s' of '%s'", f->name, name, obj);
  *type = H5Aget_type(*attr);
  hid_t space = H5Aget_space(*attr);
  hssize_t npoints = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
  if (space >= 0) H5Sclose(space);
  if (*type < 0 || npoints < 0)
    return GN_H5_RAISE(GN_EIO, "%s: cannot inspect attribute '%s' of '%s'", f->name, name, obj);
  H5T_class_t cls = H5Tget_class(*type);
  if (cls < 0 || cls >= 32 || !(accept & (1u << cls)))
    GN_FAIL(GN_EINPUT, "%s: attribute '%s' of '%s' is not %s", f->name, name, obj, what);
  if (npoints != 1)
    GN_FAIL(GN_EINPUT, "%s: attribute '%s' of '%s' holds %lld values, expected one", f->name, name, obj,
            (long long)npoints);
  return GN_OK;
}

static int read_attr_str(gn_h5 *f, const char *obj, const char *name, char **value) {
  *value = NULL;
  hid_t o = -1, a = -1, t = -1, mt = -1;
  int status = open_attr(f, obj, name, 1u << H5T_STRING, "a string", &o, &a, &t);
  if (status != GN_OK) goto fail;
  mt = H5Tcopy(H5T_C_S1);
  if (mt < 0) H5_FAIL_GOTO(GN_ELIB, "%s: cannot make a string type", f->name);
  if (H5Tis_variable_str(t) > 0) {
    char *p = NULL;
    if (H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Tset_cset(mt, H5Tget_cset(t)) < 0 || H5Aread(a, mt, &p) < 0)
      H5_FAIL_GOTO(GN_EIO, "%s: cannot read attribute '%s' of '%s'", f->name, name, obj);
    *value = strdup(p ? p : "");
    H5free_memory(p);
  } else {
    /* Fixed-length strings (written by other tools) are read with room for a terminator. */
    size_t n = H5Tget_size(t);
    *value = calloc(n + 1, 1);
    if (*value && (H5Tset_size(mt, n + 1) < 0 || H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0 ||
                   H5Aread(a, mt, *value) < 0)) {
      free(*value);
      *value = NULL;
      H5_FAIL_GOTO(GN_EIO, "%s: cannot read attribute '%s' of '%s'", f->name, name, obj);
    }
  }
  if (!*value) FAIL_GOTO(GN_ENOMEM, "%s: out of memory reading attribute '%s' of '%s'", f->name, name, obj);
fail:
  close_id(&mt);
  close_id(&t);
  close_id(&a);
  close_id(&o);
  return status;
}

static int read_attr_num(gn_h5 *f, const char *obj, const char *name, bool integer, void *value) {
  hid_t o = -1, a = -1, t = -1;
  unsigned accept = integer ? 1u << H5T_INTEGER : (1u << H5T_INTEGER) | (1u << H5T_FLOAT);
  int status = open_attr(f, obj, name, accept, integer ? "an integer" : "a number", &o, &a, &t);
  if (status == GN_OK && H5Aread(a, integer ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE, value) < 0)
    status = GN_H5_RAISE(GN_EIO, "%s: cannot read attribute '%s' of '%s'", f->name, name, obj);
  close_id(&t);
  close_id(&a);
  close_id(&o);
  return status;
}

int gn_h5_read_attr_str(gn_h5 *f, const char *obj, const char *name, char **value) {
  int status = gn_par_agree(&f->par, read_attr_str(f, obj, name, value));
  if (status != GN_OK) {
    free(*value);
    *value = NULL;
  }
  return status;
}

int gn_h5_read_attr_i64(gn_h5 *f, const char *obj, const char *name, int64_t *value) {
  return gn_par_agree(&f->par, read_attr_num(f, obj, name, true, value));
}

int gn_h5_read_attr_f64(gn_h5 *f, const char *obj, const char *name, double *value) {
  return gn_par_agree(&f->par, read_attr_num(f, obj, name, false, value));
}

static int describe(gn_h5 *f, const char *path, const char *description, const char *units,
                    const char *dims) {
  hid_t d = -1;
  CHECK(open_dataset(f, path, &d));
  close_id(&d);
  if (description) CHECK(attr_str(f, path, "description", description));
  if (units) CHECK(attr_str(f, path, "units", units));
  if (dims) CHECK(attr_str(f, path, "dims", dims));
  return GN_OK;
}

int gn_h5_describe(gn_h5 *f, const char *path, const char *description, const char *units, const char *dims) {
  return agree_write(f, describe(f, path, description, units, dims));
}
