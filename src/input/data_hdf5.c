/* data_hdf5.c — reader of HDF5 input files (/train/x, /train/y, /test/x, /test/y) with parallel
 * HDF5: each rank reads its own hyperslab of rows. HDF5 converts any floating-point x to float32
 * and any integer y to int32 on the way. Values are used as stored (no normalisation).
 *
 * The file is opened on the node communicator, not the run's: every node needs the whole set in
 * its own window, so each node is an independent group of readers splitting the rows among
 * its ranks. Opening on the run's communicator would make collective MPI-IO merge requests for
 * the same rows from different nodes and ship data between nodes for no gain. */
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gnrev/core/h5io.h"
#include "gnrev/input/data_readers.h"

/* Rows per collective read are capped so no single MPI-IO request nears 2 GiB. */
enum { READ_BYTES = 1 << 28 };

struct gn_data_h5 {
  hid_t file;             /* the open file */
  hid_t fapl;             /* its MPI-IO access property list */
  char path[GN_PATH_MAX]; /* for messages */
  H5E_auto2_t old_func;   /* HDF5's error printer, restored on close */
  void *old_data;
};

static const char *class_name(H5T_class_t c) {
  switch (c) {
    case H5T_INTEGER: return "integer";
    case H5T_FLOAT: return "floating-point";
    case H5T_STRING: return "string";
    case H5T_COMPOUND: return "compound";
    case H5T_ENUM: return "enum";
    case H5T_ARRAY: return "array";
    default: return "non-numeric";
  }
}

static void close_id(hid_t id, herr_t (*closer)(hid_t)) {
  if (id >= 0) closer(id);
}

int gn_data_hdf5_check(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) GN_FAIL(GN_EIO, "cannot open the HDF5 input %s: %s", path, strerror(errno));
  fclose(f);
  H5E_auto2_t func;
  void *data;
  H5Eget_auto2(H5E_DEFAULT, &func, &data);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  htri_t is = H5Fis_hdf5(path);
  H5Eset_auto2(H5E_DEFAULT, func, data);
  if (is <= 0) GN_FAIL(GN_EINPUT, "%s is not an HDF5 file (source = hdf5 expects one)", path);
  return GN_OK;
}

int gn_data_hdf5_open(MPI_Comm comm, const char *path, gn_data_h5 **h) {
  *h = NULL;
  gn_data_h5 *f = calloc(1, sizeof *f);
  CHECK_ALLOC(f);
  snprintf(f->path, sizeof f->path, "%s", path);
  /* Our messages replace HDF5's error stack printout, which would repeat on every rank. */
  H5Eget_auto2(H5E_DEFAULT, &f->old_func, &f->old_data);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  f->file = -1;
  f->fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (f->fapl < 0 || H5Pset_fapl_mpio(f->fapl, comm, MPI_INFO_NULL) < 0) {
    int status = GN_RAISE(GN_ELIB, "cannot set up parallel HDF5 access for %s", path);
    gn_data_hdf5_close(f);
    return status;
  }
  f->file = H5Fopen(path, H5F_ACC_RDONLY, f->fapl);
  if (f->file < 0) {
    /* HDF5's reason tells a damaged file (truncated, a bad superblock) from one it cannot reach. */
    int status = GN_H5_RAISE(GN_EIO, "cannot open %s with parallel HDF5", path);
    gn_data_hdf5_close(f);
    return status;
  }
  *h = f;
  return GN_OK;
}

void gn_data_hdf5_close(gn_data_h5 *h) {
  if (!h) return;
  close_id(h->file, H5Fclose);
  close_id(h->fapl, H5Pclose);
  H5Eset_auto2(H5E_DEFAULT, h->old_func, h->old_data);
  free(h);
}

/* Checks that dataset name exists with the wanted type class and rank; returns its dims. */
static int dataset_dims(gn_data_h5 *h, const char *split, const char *name, H5T_class_t want_class,
                        int want_rank, const char *meaning, hsize_t dims[2]) {
  char group[32], path[64];
  snprintf(group, sizeof group, "/%s", split);
  snprintf(path, sizeof path, "/%s/%s", split, name);
  if (H5Lexists(h->file, group, H5P_DEFAULT) <= 0 || H5Lexists(h->file, path, H5P_DEFAULT) <= 0)
    GN_FAIL(GN_EINPUT,
            "%s: dataset %s is missing; an HDF5 input holds /train/x and /test/x (samples x "
            "features, floating point) and /train/y and /test/y (samples, integer labels)",
            h->path, path);
  int status = GN_OK;
  hid_t dset = H5Dopen2(h->file, path, H5P_DEFAULT), type = -1, space = -1;
  if (dset < 0) FAIL_GOTO(GN_EINPUT, "%s: %s is not a dataset", h->path, path);
  type = H5Dget_type(dset);
  space = H5Dget_space(dset);
  if (type < 0 || space < 0) FAIL_GOTO(GN_ELIB, "%s: cannot read the type and shape of %s", h->path, path);
  H5T_class_t cls = H5Tget_class(type);
  if (cls != want_class)
    FAIL_GOTO(GN_EINPUT, "%s: dataset %s holds %s values, expected %s", h->path, path, class_name(cls),
              class_name(want_class));
  int rank = H5Sget_simple_extent_ndims(space);
  if (rank != want_rank) {
    hsize_t all[H5S_MAX_RANK];
    char shape[256] = "";
    if (rank > 0 && rank <= H5S_MAX_RANK && H5Sget_simple_extent_dims(space, all, NULL) == rank)
      for (int i = 0; i < rank; ++i) {
        size_t used = strlen(shape);
        snprintf(shape + used, sizeof shape - used, "%s%llu", i ? " x " : "", (unsigned long long)all[i]);
      }
    FAIL_GOTO(GN_EINPUT, "%s: dataset %s has rank %d (shape %s), expected rank %d (%s)", h->path, path, rank,
              rank > 0 ? shape : "scalar", want_rank, meaning);
  }
  if (H5Sget_simple_extent_dims(space, dims, NULL) != rank)
    FAIL_GOTO(GN_ELIB, "%s: cannot read the shape of %s", h->path, path);
fail:
  close_id(space, H5Sclose);
  close_id(type, H5Tclose);
  close_id(dset, H5Dclose);
  return status;
}

int gn_data_hdf5_probe(gn_data_h5 *h, const char *split, gn_data_shape *shape) {
  hsize_t xd[2] = {0, 0}, yd[2] = {0, 0};
  CHECK(dataset_dims(h, split, "x", H5T_FLOAT, 2, "samples x features", xd));
  CHECK(dataset_dims(h, split, "y", H5T_INTEGER, 1, "one label per sample", yd));
  if (xd[0] != yd[0])
    GN_FAIL(GN_EINPUT, "%s: /%s/x holds %llu samples but /%s/y holds %llu labels", h->path, split,
            (unsigned long long)xd[0], split, (unsigned long long)yd[0]);
  shape->n_avail = (int64_t)xd[0];
  shape->d = (int64_t)xd[1];
  snprintf(shape->what, sizeof shape->what, "%s:/%s/x", h->path, split);
  return GN_OK;
}

/* Collective reads of rows [row0, row0 + nrows) of one dataset (cols per row) in chunks; every
 * rank makes the same number of H5Dread calls, with an empty selection when its rows are done. */
static int read_rows(gn_data_h5 *h, const char *path, hid_t memtype, size_t elem, int64_t cols, int64_t row0,
                     int64_t nrows, int64_t max_rows, void *buf) {
  int status = GN_OK;
  hid_t dset = -1, fspace = -1, mspace = -1, dxpl = -1;
  dset = H5Dopen2(h->file, path, H5P_DEFAULT);
  if (dset < 0) {
    status = GN_H5_RAISE(GN_EIO, "%s: cannot open dataset %s", h->path, path);
    goto fail;
  }
  fspace = H5Dget_space(dset);
  dxpl = H5Pcreate(H5P_DATASET_XFER);
  if (fspace < 0 || dxpl < 0 || H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE) < 0)
    FAIL_GOTO(GN_ELIB, "%s: cannot set up the parallel read of %s", h->path, path);
  int rank = cols > 1 || H5Sget_simple_extent_ndims(fspace) == 2 ? 2 : 1;
  int64_t chunk = (int64_t)(READ_BYTES / (elem * (size_t)cols));
  if (chunk < 1) chunk = 1;
  static char none[16];
  for (int64_t r = 0; r < max_rows; r += chunk) {
    int64_t k = nrows - r < chunk ? nrows - r : chunk;
    if (k < 0) k = 0;
    hsize_t start[2] = {(hsize_t)(row0 + r), 0}, count[2] = {(hsize_t)k, (hsize_t)cols};
    hsize_t mdims[2] = {(hsize_t)(k ? k : 1), (hsize_t)cols};
    mspace = H5Screate_simple(rank, mdims, NULL);
    if (mspace < 0) FAIL_GOTO(GN_ELIB, "%s: cannot describe the rows of %s", h->path, path);
    herr_t sel = 0;
    if (k)
      sel = H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL);
    else if (H5Sselect_none(fspace) < 0 || H5Sselect_none(mspace) < 0)
      sel = -1;
    if (sel < 0) FAIL_GOTO(GN_ELIB, "%s: cannot select rows of %s", h->path, path);
    void *dst = k ? (char *)buf + (size_t)r * (size_t)cols * elem : (void *)none;
    if (H5Dread(dset, memtype, mspace, fspace, dxpl, dst) < 0) {
      status = GN_H5_RAISE(GN_EIO, "%s: reading rows %lld..%lld of %s failed", h->path, (long long)(row0 + r),
                           (long long)(row0 + r + k - 1), path);
      goto fail;
    }
    H5Sclose(mspace);
    mspace = -1;
  }
fail:
  close_id(mspace, H5Sclose);
  close_id(dxpl, H5Pclose);
  close_id(fspace, H5Sclose);
  close_id(dset, H5Dclose);
  return status;
}

int gn_data_hdf5_read(gn_data_h5 *h, const char *split, int64_t d, int64_t row0, int64_t nrows,
                      int64_t max_rows, float *x, int32_t *y) {
  char path[64];
  snprintf(path, sizeof path, "/%s/x", split);
  CHECK(read_rows(h, path, H5T_NATIVE_FLOAT, sizeof(float), d, row0, nrows, max_rows, x));
  snprintf(path, sizeof path, "/%s/y", split);
  CHECK(read_rows(h, path, H5T_NATIVE_INT32, sizeof(int32_t), 1, row0, nrows, max_rows, y));
  return GN_OK;
}

int gn_data_hdf5_labels(gn_data_h5 *h, const char *split, int64_t row0, int64_t nrows, int64_t max_rows,
                        int64_t *max_label) {
  *max_label = -1;
  int32_t *y = malloc((size_t)(nrows > 0 ? nrows : 1) * sizeof *y);
  CHECK_ALLOC(y);
  char path[64];
  snprintf(path, sizeof path, "/%s/y", split);
  int status = GN_OK;
  CHECK_GOTO(read_rows(h, path, H5T_NATIVE_INT32, sizeof(int32_t), 1, row0, nrows, max_rows, y));
  for (int64_t i = 0; i < nrows; ++i) {
    if (y[i] < 0)
      FAIL_GOTO(GN_EINPUT, "%s: %s[%lld] = %d; labels must be 0, 1, ..., C-1", h->path, path,
                (long long)(row0 + i), y[i]);
    if (y[i] > *max_label) *max_label = y[i];
  }
fail:
  free(y);
  return status;
}
