/* pixels.c — pixel normalisation by lookup table (pixels.h). */
#include "gnrev/input/pixels.h"

void gn_pixel_norm_init(gn_pixel_norm *nrm, int channels, int64_t per_channel, const double *mean,
                        const double *std) {
  nrm->channels = channels;
  nrm->per_channel = per_channel;
  for (int c = 0; c < channels; ++c)
    for (int p = 0; p < 256; ++p) nrm->lut[c][p] = (float)(((double)p / 255.0 - mean[c]) / std[c]);
}

void gn_pixels_to_float(const gn_pixel_norm *nrm, const uint8_t *pix, float *out) {
  for (int c = 0; c < nrm->channels; ++c) {
    const float *lut = nrm->lut[c];
    const uint8_t *p = pix + c * nrm->per_channel;
    float *o = out + c * nrm->per_channel;
    for (int64_t j = 0; j < nrm->per_channel; ++j) o[j] = lut[p[j]];
  }
}
