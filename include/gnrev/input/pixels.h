/* pixels.h — 8-bit image pixels to normalised float32 samples, shared by the image readers
 * (data_idx.c, data_cifar.c) and the data module that chooses each source's statistics. */
#ifndef GNREV_INPUT_PIXELS_H
#define GNREV_INPUT_PIXELS_H

#include <stdint.h>

/* v = (p/255 - mean[c]) / std[c], computed in double and rounded once, with c = feature /
 * per_channel (channel-major feature order). A lookup table per channel. */
typedef struct {
  int channels;        /* 1 (grey) or 3 (R, G, B) */
  int64_t per_channel; /* features per channel */
  float lut[3][256];   /* normalised value of each pixel byte, per channel */
} gn_pixel_norm;

/* Local. Fills the lookup table of nrm for the given per-channel means and standard deviations
 * (on the [0, 1] pixel scale). */
void gn_pixel_norm_init(gn_pixel_norm *nrm, int channels, int64_t per_channel, const double *mean,
                        const double *std);

/* Local. out[j] = normalised pix[j] for j < channels * per_channel (one sample). */
void gn_pixels_to_float(const gn_pixel_norm *nrm, const uint8_t *pix, float *out);

#endif
