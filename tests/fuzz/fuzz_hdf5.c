/* fuzz_hdf5.c — fuzz target of the HDF5 input reader and the data module's checks on it.
 *
 * Input, byte 0 bit 0 = 0: the rest is written as input.h5, byte for byte (a corrupt or
 * non-HDF5 file). Bit 0 = 1: the rest describes a file that is built with the HDF5 API, so the
 * fuzzer explores shapes and types rather than HDF5's own parser: for /train/x, /train/y,
 * /test/x, /test/y in turn one byte (bits 0-1: absent / dataset / a group in its place /
 * dataset; bits 2-4: float32, float64, int32, uint8, int64, 4-byte string, int8, uint64; bits
 * 5-6: rank 0-3), one byte per dimension (0-8 entries) and the raw element bytes (NaN and huge
 * labels included). Bits 1-2 and 3-4 of byte 0 are n_train + 1 and n_test + 1 (so -1, which
 * must be refused, 0 = all, 1 or 2). Then check, open and probe as data.c does and, when the
 * sets are small, gn_data_load on MPI_COMM_SELF. Properties: no crash or sanitizer report; a refusal
 * has a documented status and a message; an accepted set has finite samples and labels in
 * 0 .. classes-1. */
#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "gnrev/input/data.h"
#include "gnrev/input/data_readers.h"
#include "gnrev/input/deck.h"
#include "gnrev/core/par.h"

enum { FUZZ_H5_MAX_VALUES = 1 << 16, FUZZ_H5_MAX_DIM = 8 };

static gn_par fuzz_h5_par;
static int fuzz_h5_par_ready = 0;

static hid_t fuzz_h5_type(unsigned code) {
  switch (code & 7) {
    case 0: return H5Tcopy(H5T_NATIVE_FLOAT);
    case 1: return H5Tcopy(H5T_NATIVE_DOUBLE);
    case 2: return H5Tcopy(H5T_NATIVE_INT32);
    case 3: return H5Tcopy(H5T_NATIVE_UINT8);
    case 4: return H5Tcopy(H5T_NATIVE_INT64);
    case 5: {
      hid_t t = H5Tcopy(H5T_C_S1);
      H5Tset_size(t, 4);
      return t;
    }
    case 6: return H5Tcopy(H5T_NATIVE_INT8);
    default: return H5Tcopy(H5T_NATIVE_UINT64);
  }
}

/* Builds input.h5 from the description in c; returns 0 on success. */
static int fuzz_h5_build(fuzz_cursor *c, const char *path) {
  hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) return -1;
  static const char *const names[4] = {"/train/x", "/train/y", "/test/x", "/test/y"};
  for (int s = 0; s < 2; ++s) {
    hid_t g = H5Gcreate2(file, s ? "/test" : "/train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g >= 0) H5Gclose(g);
  }
  for (int k = 0; k < 4; ++k) {
    unsigned spec = fuzz_u8(c);
    unsigned what = spec & 3, rank = (spec >> 5) & 3;
    if (what == 0) continue;
    if (what == 2) {
      hid_t g = H5Gcreate2(file, names[k], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      if (g >= 0) H5Gclose(g);
      continue;
    }
    hsize_t dims[3] = {1, 1, 1};
    size_t count = 1;
    for (unsigned r = 0; r < rank; ++r) {
      dims[r] = fuzz_u8(c) % (FUZZ_H5_MAX_DIM + 1);
      count *= (size_t)dims[r];
    }
    hid_t type = fuzz_h5_type(spec >> 2);
    size_t elem = H5Tget_size(type);
    hid_t space = rank ? H5Screate_simple((int)rank, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t dset = H5Dcreate2(file, names[k], type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    uint8_t *buf = calloc(count * elem + 1, 1);
    if (buf) {
      size_t got;
      const uint8_t *p = fuzz_take(c, count * elem, &got);
      if (got) memcpy(buf, p, got);
      if (dset >= 0 && count) H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    }
    free(buf);
    if (dset >= 0) H5Dclose(dset);
    H5Sclose(space);
    H5Tclose(type);
  }
  H5Fclose(file);
  return 0;
}

static int fuzz_hdf5_run(const uint8_t *data, size_t size) {
  if (!fuzz_h5_par_ready) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (gn_par_open(MPI_COMM_SELF, &fuzz_h5_par) != GN_OK) abort();
    fuzz_h5_par_ready = 1;
  }
  fuzz_cursor c = {data, size};
  unsigned mode = fuzz_u8(&c);
  const char *dir = fuzz_scratch();
  char path[512];
  snprintf(path, sizeof path, "%s/input.h5", dir);
  if (mode & 1) {
    if (fuzz_h5_build(&c, path) != 0) return GN_EIO;
  } else {
    size_t got;
    const uint8_t *p = fuzz_take(&c, c.left, &got);
    fuzz_write("input.h5", p, got);
  }
  gn_deck deck;
  gn_deck_defaults(&deck);
  deck.source = GN_SRC_HDF5;
  snprintf(deck.path, sizeof deck.path, "%s", path);
  deck.n_train = (int64_t)((mode >> 1) & 3) - 1; /* -1 (refused), 0 (all), 1, 2 */
  deck.n_test = (int64_t)((mode >> 3) & 3) - 1;
  gn_error_clear();
  /* The probe first, as data.c runs it, so that only small sets go on to gn_data_load. */
  int st = gn_data_hdf5_check(path);
  if (st != GN_OK) {
    fuzz_check_refusal("hdf5 check", st);
    return st;
  }
  gn_data_h5 *h = NULL;
  st = gn_data_hdf5_open(MPI_COMM_SELF, path, &h);
  gn_data_shape shape[2];
  for (int s = 0; s < 2 && st == GN_OK; ++s) st = gn_data_hdf5_probe(h, s ? "test" : "train", &shape[s]);
  gn_data_hdf5_close(h);
  if (st != GN_OK) {
    fuzz_check_refusal("hdf5 probe", st);
    return st;
  }
  for (int s = 0; s < 2; ++s)
    if (shape[s].n_avail < 0 || shape[s].d < 0 ||
        (shape[s].d > 0 && shape[s].n_avail > FUZZ_H5_MAX_VALUES / shape[s].d))
      return GN_OK;
  gn_dataset train, test;
  st = gn_data_load(&fuzz_h5_par, &deck, &train, &test);
  if (st != GN_OK) {
    fuzz_check_refusal("hdf5 load", st);
    return st;
  }
  const gn_dataset *sets[2] = {&train, &test};
  for (int s = 0; s < 2; ++s) {
    const gn_dataset *set = sets[s];
    if (set->classes < 1 || set->n < 1 || set->d < 1)
      fuzz_violation("hdf5: accepted a set with n = %lld, d = %lld, %d classes", (long long)set->n,
                     (long long)set->d, set->classes);
    for (int64_t i = 0; i < set->n * set->d; ++i)
      if (!isfinite(set->x[i])) {
        fuzz_violation("hdf5: accepted a non-finite sample value %g", (double)set->x[i]);
        break;
      }
    for (int64_t i = 0; i < set->n; ++i)
      if (set->y[i] < 0 || set->y[i] >= set->classes) {
        fuzz_violation("hdf5: accepted label %d with %d classes", set->y[i], set->classes);
        break;
      }
  }
  gn_data_free(&train);
  gn_data_free(&test);
  return GN_OK;
}

#ifndef GN_FUZZ_NO_MAIN
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  MPI_Init(argc, argv);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_hdf5_run(data, size);
  return 0;
}
#endif
