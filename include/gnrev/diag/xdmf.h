/* xdmf.h — the ParaView index of a run (<out_dir>/run.xmf): an XDMF 2 file that shows 2-D
 * datasets of run.h5 as cell-centred images (one cell per matrix entry), singly or as time
 * series. Layout known to open in ParaView 5.11 (shared/STYLE.md): 2DCoRectMesh topology with
 * (rows+1) x (cols+1) points, ORIGIN_DXDY geometry (origin 0 0, spacing 1 1), a Cell attribute
 * whose HDF DataItem names "file.h5:/path"; a time series is a Temporal collection of such grids,
 * each with its own Time. No hyperslabs (they work only in the legacy reader). */
#ifndef GNREV_XDMF_H
#define GNREV_XDMF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One 2-D float64 dataset of the HDF5 file, rows x cols (rows run along y, cols along x). */
typedef struct {
  const char *dataset; /* HDF5 path, e.g. "/ntk/K_00000010" */
  int64_t rows, cols;
  double time;         /* the grid's Time value (the step) in a temporal series */
} gn_xdmf_image;

/* A named group of images: a Temporal collection when temporal (one grid per image, the
 * attribute keeps `name` in every grid so ParaView colours by one array), else n Uniform grids
 * named name_0, name_1, ... (n = 1: just `name`). */
typedef struct {
  const char *name;
  bool temporal;
  int n;
  const gn_xdmf_image *images;
} gn_xdmf_series;

/* Local. Writes the index to path through a temporary file in the same folder renamed over it,
 * so a reader never sees half a file. h5_file is the HDF5 file as named from the index's folder
 * (see gn_xdmf_h5_name). Errors (GN_EIO) name the file and the system reason. */
int gn_xdmf_write(const char *path, const char *h5_file, int nseries, const gn_xdmf_series *series);

/* Local. The path of h5_path relative to the folder of xmf_path (both must exist up to their
 * folders), e.g. "run.h5" for two files in one folder or "../a/run.h5": XDMF resolves HDF5 names
 * against the .xmf's folder, while a name relative to the working directory breaks as soon as
 * ParaView is started elsewhere. */
int gn_xdmf_h5_name(const char *xmf_path, const char *h5_path, char *out, size_t cap);

#endif
