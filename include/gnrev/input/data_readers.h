/* data_readers.h — internal interface of the data module: what data.c (windows, normalisation,
 * dispatch) and the one-format readers data_idx.c, data_cifar.c, data_hdf5.c and
 * data_synthetic.c expect of each other, and the check of IDX files against the data sets gnrev
 * knows (data_known.c). Not part of the public API.
 *
 * Every reader works in two steps. A probe, run by every rank, opens the files, checks headers
 * and sizes and reports the shape, so a file that one rank cannot see fails before any
 * collective work starts. A read then fills float32 samples and int32 labels for a range of
 * rows, into memory data.c provides (the node-shared window or a private heap block). */
#ifndef GNREV_DATA_READERS_H
#define GNREV_DATA_READERS_H

#include <stdbool.h>
#include <stdint.h>

#include "gnrev/input/deck.h"
#include "gnrev/core/par.h"
#include "gnrev/input/pixels.h"

/* What one split (training or test set) of a source holds. */
typedef struct {
  int64_t n_avail;             /* samples the source holds */
  int64_t d;                   /* features per sample */
  char what[GN_PATH_MAX + 64]; /* the file (and dataset) holding the samples, for messages */
} gn_data_shape;

/* ---- IDX (MNIST, Fashion-MNIST): data_idx.c ------------------------------------------------ */

/* One split's pair of IDX files: what their headers say (from the probe) and the MD5 of each
 * file's content after decompression (from the read), by which data_known.c recognises them. */
typedef struct {
  int64_t count;                       /* samples: images = labels */
  int64_t rows, cols;                  /* image size in pixels */
  char images[GN_PATH_MAX + 64];       /* the files opened (.gz or plain) */
  char labels[GN_PATH_MAX + 64];
  char images_md5[33], labels_md5[33]; /* hex, as md5sum prints for the plain file; "" if not read */
} gn_data_idx_files;

/* Local. prefix is "train" or "t10k". Opens dir/<prefix>-images-idx3-ubyte(.gz) and
 * dir/<prefix>-labels-idx1-ubyte(.gz) (.gz tried first), checks both magic numbers and that the
 * image and label counts agree; reports the count and d = rows * cols in shape, the headers and
 * file names in files (its MD5s set to ""). */
int gn_data_idx_probe(const char *dir, const char *prefix, gn_data_shape *shape, gn_data_idx_files *files);

/* Local. Reads the first n images (normalised with nrm) into x (n x d) and their labels into y,
 * checking that both files are as long as their headers say and that every label is < 10. Both
 * files are read to their end, and the MD5 of what was read goes into files->images_md5 and
 * files->labels_md5. shape is what gn_data_idx_probe reported; a file that changed since is an
 * error. */
int gn_data_idx_read(const char *dir, const char *prefix, const gn_data_shape *shape, int64_t n,
                     const gn_pixel_norm *nrm, float *x, int32_t *y, gn_data_idx_files *files);

/* ---- known data sets: data_known.c ----------------------------------------------------------- */

/* Local. source is mnist or fashion-mnist, split 0 (train) or 1 (t10k). Refuses headers that the
 * source's data set cannot have: images other than 28 x 28, or more samples than its split holds
 * (60 000 / 10 000). Files of another size are no subset of MNIST or Fashion-MNIST. */
int gn_data_known_check_header(gn_source source, int split, const gn_data_idx_files *files);

/* Local. After gn_data_idx_read: refuses a file whose content MD5 is that of a known file other
 * than the one its name says (Fashion-MNIST's under source = 'mnist', the test images read as
 * training images, ...), naming what the file is. Unknown content (a subset of your own) passes:
 * its header was checked by gn_data_known_check_header. */
int gn_data_known_check_content(gn_source source, int split, const gn_data_idx_files *files);

/* ---- CIFAR-10 binary: data_cifar.c ---------------------------------------------------------- */

/* Local. train: dir/data_batch_1.bin .. data_batch_5.bin in that order; else dir/test_batch.bin.
 * Checks that each file exists and its size is a multiple of the 3073-byte record. d = 3072. */
int gn_data_cifar_probe(const char *dir, bool train, gn_data_shape *shape);

/* Local. Reads the first n records (pixels normalised with nrm, kept in the file's channel-major
 * R, G, B order) into x (n x 3072) and their labels into y, checking that every label of every
 * file, not only the first n, is < 10. */
int gn_data_cifar_read(const char *dir, bool train, int64_t n, const gn_pixel_norm *nrm, float *x,
                       int32_t *y);

/* ---- HDF5 (/train/x, /train/y, /test/x, /test/y): data_hdf5.c ------------------------------ */

typedef struct gn_data_h5 gn_data_h5;

/* Local. Checks that path is a readable HDF5 file (before any collective open, so a file that
 * one rank cannot see fails cleanly). */
int gn_data_hdf5_check(const char *path);

/* Collective on comm. Opens path read-only through MPI-IO on comm. */
int gn_data_hdf5_open(MPI_Comm comm, const char *path, gn_data_h5 **h);

/* Local after the collective open (metadata only). split is "train" or "test": checks that
 * /<split>/x is a floating-point n x d array and /<split>/y an integer array of n entries. */
int gn_data_hdf5_probe(gn_data_h5 *h, const char *split, gn_data_shape *shape);

/* Collective on the open's comm; every rank calls it with its own rows (possibly none). Reads
 * rows [row0, row0 + nrows) of /<split>/x (converted to float32 by HDF5) into x (nrows x d) and
 * of /<split>/y (converted to int32) into y. max_rows is the largest nrows of any rank, so that
 * every rank makes the same number of collective reads. */
int gn_data_hdf5_read(gn_data_h5 *h, const char *split, int64_t d, int64_t row0, int64_t nrows,
                      int64_t max_rows, float *x, int32_t *y);

/* Collective on the open's comm, like gn_data_hdf5_read. Scans rows [row0, row0 + nrows) of
 * /<split>/y, which may lie past the rows kept, so that the class count is a property of the file
 * and not of n_train / n_test: a negative label is an error naming its row; *max_label is the
 * largest label seen (-1 if none). */
int gn_data_hdf5_labels(gn_data_h5 *h, const char *split, int64_t row0, int64_t nrows, int64_t max_rows,
                        int64_t *max_label);

/* Collective on the open's comm. Closes every id; h may be NULL. */
void gn_data_hdf5_close(gn_data_h5 *h);

/* ---- synthetic teacher-student data: data_synthetic.c --------------------------------------- */

/* Local. Checks dim, classes, synthetic_train and synthetic_test; reports the shape of the
 * training (sub = 0) or test (sub = 1) set. */
int gn_data_synth_probe(const gn_deck *deck, int sub, gn_data_shape *shape);

/* Local. Generates rows [row0, row0 + nrows) of the set sub (0 train, 1 test) into x (nrows x d)
 * and y: x_ij = normal(seed, GN_RNG_SYNTH_X, sub, i*d + j) rounded to float32, teacher
 * W_jc = normal(seed, GN_RNG_SYNTH_TEACHER, 0, j*C + c), y_i = argmax_c sum_j x_ij W_jc (first
 * maximum), the sum taken in double over the float32 x. */
int gn_data_synth_fill(const gn_deck *deck, int sub, int64_t row0, int64_t nrows, float *x, int32_t *y);

#endif
