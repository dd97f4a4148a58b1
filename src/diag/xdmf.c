/* xdmf.c — writes the XDMF 2 index that lets ParaView open run.h5 matrices as images, laid out side
 * by side in the x-y plane (xdmf.h). */
/* realpath is an X/Open extension that _POSIX_C_SOURCE alone hides. */
#define _XOPEN_SOURCE 700
#include "gnrev/diag/xdmf.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gnrev/core/err.h"

/* Local. Writes s with the five XML special characters escaped (names and paths are user-chosen). */
static void put_escaped(FILE *f, const char *s) {
  for (; *s; ++s) switch (*s) {
      case '&': fputs("&amp;", f); break;
      case '<': fputs("&lt;", f); break;
      case '>': fputs("&gt;", f); break;
      case '"': fputs("&quot;", f); break;
      case '\'': fputs("&apos;", f); break;
      default: fputc(*s, f);
    }
}

/* Local. The left edge x0 of every image, series after series (see xdmf.h): temporal series share
 * one place, other images get their own; a gap of a tenth of the widest image separates them. */
static void layout(int nseries, const gn_xdmf_series *series, int64_t *x0) {
  int64_t widest = 0;
  for (int s = 0; s < nseries; ++s)
    for (int i = 0; i < series[s].n; ++i)
      if (series[s].images[i].cols > widest) widest = series[s].images[i].cols;
  const int64_t gap = widest / 10 > 2 ? widest / 10 : 2;
  int64_t x = 0;
  int k = 0;
  for (int s = 0; s < nseries; ++s) {
    const gn_xdmf_series *se = &series[s];
    if (se->n < 1) continue;
    int64_t width = 0;
    for (int i = 0; i < se->n; ++i, ++k) {
      x0[k] = x;
      if (!se->temporal)
        x += se->images[i].cols + gap;
      else if (se->images[i].cols > width)
        width = se->images[i].cols;
    }
    if (se->temporal) x += width + gap;
  }
}

/* Local. One coordinate axis inline: npoints values start, start + 1, ... (a reference to a shared
 * DataItem would be shorter, but it aborts the Xdmf3 readers, which a ParaView user may pick). */
static void put_axis(FILE *f, const char *indent, int64_t start, int64_t npoints) {
  fprintf(f, "%s    <DataItem Format=\"XML\" NumberType=\"Float\" Precision=\"8\" Dimensions=\"%lld\">", indent,
          (long long)npoints);
  for (int64_t v = 0; v < npoints; ++v) fprintf(f, v ? " %lld" : "%lld", (long long)(start + v));
  fprintf(f, "</DataItem>\n");
}

/* Local. One Uniform grid: image im with its left edge at x = x0. */
static void put_grid(FILE *f, const char *indent, const char *grid_name, const char *attr_name,
                     const char *h5_file, const gn_xdmf_image *im, bool with_time, int64_t x0) {
  fprintf(f, "%s<Grid Name=\"", indent);
  put_escaped(f, grid_name);
  fprintf(f, "\" GridType=\"Uniform\">\n");
  if (with_time) fprintf(f, "%s  <Time Value=\"%.17g\"/>\n", indent, im->time);
  /* Cell data: the mesh has one more point than cells along each axis (y slowest). */
  fprintf(f, "%s  <Topology TopologyType=\"2DRectMesh\" Dimensions=\"%lld %lld\"/>\n", indent,
          (long long)im->rows + 1, (long long)im->cols + 1);
  fprintf(f, "%s  <Geometry GeometryType=\"VXVY\">\n", indent);
  put_axis(f, indent, x0, im->cols + 1);
  put_axis(f, indent, 0, im->rows + 1);
  fprintf(f, "%s  </Geometry>\n", indent);
  fprintf(f, "%s  <Attribute Name=\"", indent);
  put_escaped(f, attr_name);
  fprintf(f, "\" AttributeType=\"Scalar\" Center=\"Cell\">\n");
  fprintf(f, "%s    <DataItem Format=\"HDF\" NumberType=\"Float\" Precision=\"8\" Dimensions=\"%lld %lld\">",
          indent, (long long)im->rows, (long long)im->cols);
  put_escaped(f, h5_file);
  fputc(':', f);
  put_escaped(f, im->dataset);
  fprintf(f, "</DataItem>\n%s  </Attribute>\n%s</Grid>\n", indent, indent);
}

/* Local. The whole index into f, image k of the series in order with its left edge at x0[k]. */
static void put_index(FILE *f, const char *h5_file, int nseries, const gn_xdmf_series *series, const int64_t *x0) {
  fprintf(f, "<?xml version=\"1.0\" ?>\n<!DOCTYPE Xdmf SYSTEM \"Xdmf.dtd\" []>\n");
  fprintf(f, "<!-- gnrev: matrices of ");
  put_escaped(f, h5_file);
  fprintf(f, " as images in the x-y plane, side by side (docs/output-format.md); open this file in "
          "ParaView (XDMF Reader). -->\n");
  fprintf(f, "<Xdmf Version=\"2.0\">\n <Domain>\n");
  int k = 0;
  for (int s = 0; s < nseries; ++s) {
    const gn_xdmf_series *se = &series[s];
    if (se->n < 1) continue;
    if (se->temporal) {
      fprintf(f, "  <Grid Name=\"");
      put_escaped(f, se->name);
      fprintf(f, "\" GridType=\"Collection\" CollectionType=\"Temporal\">\n");
      for (int i = 0; i < se->n; ++i, ++k) {
        char gname[256];
        snprintf(gname, sizeof gname, "%s_%.0f", se->name, se->images[i].time);
        put_grid(f, "   ", gname, se->name, h5_file, &se->images[i], true, x0[k]);
      }
      fprintf(f, "  </Grid>\n");
    } else {
      for (int i = 0; i < se->n; ++i, ++k) {
        char gname[256];
        if (se->n == 1)
          snprintf(gname, sizeof gname, "%s", se->name);
        else
          snprintf(gname, sizeof gname, "%s_%d", se->name, i);
        put_grid(f, "  ", gname, se->name, h5_file, &se->images[i], false, x0[k]);
      }
    }
  }
  fprintf(f, " </Domain>\n</Xdmf>\n");
}

int gn_xdmf_write(const char *path, const char *h5_file, int nseries, const gn_xdmf_series *series) {
  size_t total = 0;
  for (int s = 0; s < nseries; ++s)
    for (int i = 0; i < series[s].n; ++i, ++total)
      if (series[s].images[i].rows < 1 || series[s].images[i].cols < 1)
        GN_FAIL(GN_EINTERNAL, "%s: image %s of series %s is %lld x %lld", path, series[s].images[i].dataset,
                series[s].name, (long long)series[s].images[i].rows, (long long)series[s].images[i].cols);
  int status = GN_OK;
  FILE *f = NULL;
  const size_t cap = strlen(path) + 32;
  char *tmp = malloc(cap);
  int64_t *x0 = malloc((total ? total : 1) * sizeof *x0);
  if (!tmp || !x0) FAIL_GOTO(GN_ENOMEM, "out of memory for the ParaView index %s", path);
  layout(nseries, series, x0);
  snprintf(tmp, cap, "%s.tmp.%ld", path, (long)getpid());
  f = fopen(tmp, "w");
  if (!f) FAIL_GOTO(GN_EIO, "cannot write the ParaView index %s: %s", path, strerror(errno));
  put_index(f, h5_file, nseries, series, x0);
  int bad = ferror(f);
  if (fclose(f) != 0) bad = 1;
  f = NULL;
  if (bad || rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    FAIL_GOTO(GN_EIO, "cannot write the ParaView index %s: %s", path, strerror(e));
  }
fail:
  if (f) {
    fclose(f);
    unlink(tmp);
  }
  free(tmp);
  free(x0);
  return status;
}

/* Local. Canonical folder of path (its dirname resolved by realpath) into out (PATH_MAX). */
static int folder_of(const char *path, char *out) {
  char buf[PATH_MAX];
  snprintf(buf, sizeof buf, "%s", path);
  char *slash = strrchr(buf, '/');
  const char *dir = ".";
  if (slash == buf)
    dir = "/";
  else if (slash) {
    *slash = '\0';
    dir = buf;
  }
  if (!realpath(dir, out)) GN_FAIL(GN_EIO, "cannot resolve the folder '%s' of %s: %s", dir, path, strerror(errno));
  return GN_OK;
}

int gn_xdmf_h5_name(const char *xmf_path, const char *h5_path, char *out, size_t cap) {
  char from[PATH_MAX], to[PATH_MAX];
  CHECK(folder_of(xmf_path, from));
  CHECK(folder_of(h5_path, to));
  const char *base = strrchr(h5_path, '/');
  base = base ? base + 1 : h5_path;
  /* Longest common prefix ending at a folder boundary. */
  size_t common = 0;
  for (size_t i = 0;; ++i) {
    const bool end_f = from[i] == '\0' || from[i] == '/', end_t = to[i] == '\0' || to[i] == '/';
    if (end_f && end_t) common = i;
    if (from[i] != to[i] || from[i] == '\0') break;
  }
  size_t used = 0;
  out[0] = '\0';
  for (const char *p = from + common; *p; ++p)
    if (*p == '/' && p[1] != '\0') used += (size_t)snprintf(out + used, used < cap ? cap - used : 0, "../");
  const char *rest = to + common;
  while (*rest == '/') ++rest;
  if (*rest) used += (size_t)snprintf(out + used, used < cap ? cap - used : 0, "%s/", rest);
  used += (size_t)snprintf(out + used, used < cap ? cap - used : 0, "%s", base);
  if (used >= cap) GN_FAIL(GN_EINTERNAL, "the HDF5 name of %s seen from %s is too long", h5_path, xmf_path);
  return GN_OK;
}
