/* xdmf.h — the ParaView index of a run (<out_dir>/run.xmf): an XDMF 2 file that shows 2-D
 * datasets of run.h5 as flat images in the x-y plane (one cell per matrix entry), singly or as
 * time series.
 *
 * Layout, chosen by what ParaView 5.11's XDMF reader does with it (tests/test_plot_xdmf.py and
 * tests/test_paraview.py check it):
 * - each image is a 2DRectMesh grid of (rows+1) x (cols+1) points with its VXVY coordinates
 *   written inline, and a Cell attribute whose HDF DataItem names "file.h5:/path". A 2DCoRectMesh
 *   would land in the y-z plane, and a composite of image data opens as an outline; rectilinear
 *   grids lie in the x-y plane and open as a coloured surface. (Shared coordinate DataItems
 *   referenced from each grid make the file smaller but abort the Xdmf3 readers; inline, those
 *   readers refuse the file with a message instead.)
 * - entry (i, j) of a matrix is the cell x in [x0 + j, x0 + j + 1], y in [i, i + 1]: columns run
 *   along x, rows along y, row 0 at the bottom.
 * - series are placed side by side along x in the order given, a gap of a tenth of the widest
 *   image (at least 2 cells) apart, so no data set covers another; the images of a non-temporal
 *   series with several images are placed side by side too, while the images of a temporal
 *   series share one place (they are the same matrix at different times).
 * No hyperslabs (they work only in the legacy reader). */
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
 * (see gn_xdmf_h5_name). The placement of every image follows the layout above. Errors (GN_EIO)
 * name the file and the system reason. */
int gn_xdmf_write(const char *path, const char *h5_file, int nseries, const gn_xdmf_series *series);

/* Local. The path of h5_path relative to the folder of xmf_path (both must exist up to their
 * folders), e.g. "run.h5" for two files in one folder or "../a/run.h5": XDMF resolves HDF5 names
 * against the .xmf's folder, while a name relative to the working directory breaks as soon as
 * ParaView is started elsewhere. */
int gn_xdmf_h5_name(const char *xmf_path, const char *h5_path, char *out, size_t cap);

#endif
