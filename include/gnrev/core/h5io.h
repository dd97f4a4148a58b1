/* h5io.h — the HDF5 layer (parallel HDF5 over MPI-IO). Every call here is Collective on the
 * file's communicator with identical arguments on every rank, unless it says Local, and returns
 * the same status and message on every rank. HDF5 is called only here and in the input reader
 * data_hdf5.c. Datasets are written in double precision (labels as int32/int64), whatever the
 * build: the _real calls take gn_real arrays (real.h) and HDF5 converts them, exactly. */
#ifndef GNREV_H5IO_H
#define GNREV_H5IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gnrev/core/par.h"
#include "gnrev/core/real.h"

typedef struct gn_h5 gn_h5;

/* Local. Records an error like gn_error (err.h), with the innermost entry of HDF5's error stack
 * (its most specific reason, such as "truncated file: eof = ...") appended as " (HDF5: ...)", and
 * clears the stack. Call it right after the failing HDF5 call: the next HDF5 call clears the stack. */
int gn_h5_error(int status, const char *file, int line, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
#define GN_H5_RAISE(status, ...) gn_h5_error((status), __FILE__, __LINE__, __func__, __VA_ARGS__)

/* Creates path (truncating), or opens it for reading (write = false) or appending (write =
 * true, must exist). Errors (GN_EIO) name the path and the HDF5 reason and reach every rank; on
 * error *f is NULL. Turns HDF5's automatic error printing off for the whole process. */
int gn_h5_create(const gn_par *par, const char *path, gn_h5 **f);
int gn_h5_open(const gn_par *par, const char *path, bool write, gn_h5 **f);
/* Closes every id; after gn_h5_create_atomic, flushes to disk and renames tmp -> final, and no
 * rank returns before the new name is in place. If that fails the temporary file is deleted
 * and the old final file (if any) is left as it was. f is freed in every case; NULL is a no-op. */
int gn_h5_close(gn_h5 *f);

/* Creates "<final>.tmp.<pid-of-rank-0>" for writing; gn_h5_close then fsyncs and renames it to
 * final (rank 0), so a reader sees either the old file or the whole new one. gn_h5_abandon
 * closes and deletes the temporary file instead (f freed; NULL is a no-op); on a file not made
 * by gn_h5_create_atomic it only closes it and returns GN_EINTERNAL. */
int gn_h5_create_atomic(const gn_par *par, const char *final_path, gn_h5 **f);
int gn_h5_abandon(gn_h5 *f);

/* Groups are created on demand by every write (intermediate groups included).
 * Local. Whether path names an object (a path running through a dataset does not). */
bool gn_h5_exists(gn_h5 *f, const char *path);
/* Collective (same path on every rank). Removes the link path names (a missing one is not an
 * error). The file does not shrink: HDF5 reuses the space only for objects written later. */
int gn_h5_unlink(gn_h5 *f, const char *path);

/* Attributes on an object (group or dataset, "/" for the root; a missing object is created as a
 * group). Scalars; an existing attribute of that name is replaced, whatever its type. Strings
 * are variable-length UTF-8 (h5py reads them as str). */
int gn_h5_attr_str(gn_h5 *f, const char *obj, const char *name, const char *value);
int gn_h5_attr_i64(gn_h5 *f, const char *obj, const char *name, int64_t value);
int gn_h5_attr_f64(gn_h5 *f, const char *obj, const char *name, double value);
/* Readers: value buffers malloc'ed for strings (caller frees; NULL on error). Missing object or
 * attribute: GN_EIO naming it; wrong type (a string read as a number, a float as an integer):
 * GN_EINPUT. Fixed-length string attributes written by other tools are read too. */
int gn_h5_read_attr_str(gn_h5 *f, const char *obj, const char *name, char **value);
int gn_h5_read_attr_i64(gn_h5 *f, const char *obj, const char *name, int64_t *value);
int gn_h5_read_attr_f64(gn_h5 *f, const char *obj, const char *name, double *value);

/* Describes a dataset for readers: attributes description, units, dims (e.g. "sample,class").
 * The dataset must exist (GN_EIO otherwise); a NULL string skips that attribute. */
int gn_h5_describe(gn_h5 *f, const char *path, const char *description, const char *units,
                   const char *dims);

/* A replicated array (the same on every rank) of rank 1..3 with dims[]: each rank writes a
 * contiguous share of the leading dimension (gn_par_rows), so no rank writes it all. An existing
 * dataset of the same shape and type is overwritten in place; any other is replaced. */
int gn_h5_write_f64(gn_h5 *f, const char *path, int ndims, const int64_t *dims, const double *data);
int gn_h5_write_real(gn_h5 *f, const char *path, int ndims, const int64_t *dims, const gn_real *data);
int gn_h5_write_i64(gn_h5 *f, const char *path, int ndims, const int64_t *dims, const int64_t *data);
/* Reads a whole array into every rank; its shape must equal dims (else GN_EINPUT naming both).
 * Missing dataset: GN_EIO. read_i64 refuses floating-point data (GN_EINPUT). */
int gn_h5_read_f64(gn_h5 *f, const char *path, int ndims, const int64_t *dims, double *data);
int gn_h5_read_real(gn_h5 *f, const char *path, int ndims, const int64_t *dims, gn_real *data);
int gn_h5_read_i64(gn_h5 *f, const char *path, int ndims, const int64_t *dims, int64_t *data);
/* The same into node-shared memory (shm.h): each node reads the array once, its ranks a share of
 * the rows each; complete on every rank of the node after a gn_shm_sync. */
int gn_h5_read_f64_node(gn_h5 *f, const char *path, int ndims, const int64_t *dims, double *data);
int gn_h5_read_real_node(gn_h5 *f, const char *path, int ndims, const int64_t *dims, gn_real *data);
/* Local. Shape of a dataset (ndims <= 3; missing: GN_EIO, more dimensions: GN_EINPUT). */
int gn_h5_shape(gn_h5 *f, const char *path, int *ndims, int64_t dims[3]);

/* A row-distributed 2-D array (rows x cols globally): this rank holds rows [row0, row0+nrows)
 * (nrows may be 0, local then unused). Ranges outside the array, or not adding up to rows over
 * all ranks, give GN_EINTERNAL on every rank. Overwrites like gn_h5_write_f64. */
int gn_h5_write_rows_f64(gn_h5 *f, const char *path, int64_t rows, int64_t cols, int64_t row0,
                         int64_t nrows, const double *local);
int gn_h5_write_rows_real(gn_h5 *f, const char *path, int64_t rows, int64_t cols, int64_t row0, int64_t nrows,
                          const gn_real *local);
/* Reads this rank's rows [row0, row0 + nrows) of a rows x cols dataset (nrows may be 0); a shape
 * other than rows x cols is GN_EINPUT. */
int gn_h5_read_rows_f64(gn_h5 *f, const char *path, int64_t rows, int64_t cols, int64_t row0, int64_t nrows,
                        double *local);
int gn_h5_read_rows_real(gn_h5 *f, const char *path, int64_t rows, int64_t cols, int64_t row0, int64_t nrows,
                         gn_real *local);
/* Extendible 1-D series: appends one value to each dataset group/names[i] (created, chunked,
 * on first use). Every rank passes the same values; rank 0 writes them. Each series grows by
 * one, whatever its length (series added later are shorter). */
int gn_h5_append(gn_h5 *f, const char *group, int n, const char *const *names, const double *values);
/* Truncates every 1-D series in group to its first len entries (restart); shorter ones and
 * other objects are left alone, a missing group is not an error. */
int gn_h5_truncate_series(gn_h5 *f, const char *group, int64_t len);
/* Local after a collective open. Length of a series (0 if absent, -1 if not a 1-D dataset). */
int64_t gn_h5_series_len(gn_h5 *f, const char *path);

/* Flushes the file's buffers to the operating system (the run file stays readable mid-run); with
 * MPI-IO this also syncs every rank's writes to disk, so call it per log line, not per value. */
int gn_h5_flush(gn_h5 *f);

#endif
