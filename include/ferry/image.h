/* Still images for image-to-video: decoding (PNG through libpng, JPEG
 * through libjpeg) to 8-bit RGB, and Pillow's 8-bit resampler, which both
 * of diffusers' preprocessing paths run (Image.resize: separable, the
 * horizontal pass first, each pass rounded to uint8, 22-bit fixed-point
 * coefficients), so the pixels match the reference exactly.
 *
 *     fy_image img;
 *     fy_image_load("input.png", &img);
 *     fy_image_resize(&img, 832, 480, FY_RESAMPLE_LANCZOS, &resized);
 *     fy_image_free(&img); */
#ifndef FERRY_IMAGE_H
#define FERRY_IMAGE_H

#include <stdint.h>
#include "ferry/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Rows of width x 3 bytes (R, G, B), top row first. */
typedef struct fy_image {
    int64_t width, height;
    uint8_t *rgb;
} fy_image;

/* Pillow's filter numbers (Image.Resampling). */
typedef enum fy_resample {
    FY_RESAMPLE_NEAREST = 0,
    FY_RESAMPLE_LANCZOS = 1,
    FY_RESAMPLE_BILINEAR = 2,
    FY_RESAMPLE_BICUBIC = 3,
    FY_RESAMPLE_BOX = 4,
    FY_RESAMPLE_HAMMING = 5,
} fy_resample;

/* PNG or JPEG (by content, not name), any size up to 16384 x 16384, as RGB:
 * grey is replicated, alpha dropped (PIL's convert("RGB")), palettes
 * expanded. A file that is neither, truncated or corrupt is an error naming
 * the file. EXIF orientation is not applied. */
fy_status fy_image_load(const char *path, fy_image *out);
/* An image of the given size, all zero. */
fy_status fy_image_alloc(int64_t width, int64_t height, fy_image *out);
void fy_image_free(fy_image *img);

/* Image.resize((width, height), filter) on 8-bit RGB. The filters with a
 * support (bilinear, bicubic, lanczos, box, hamming) run Pillow's
 * convolution; NEAREST is refused. The same size is a copy, as in Pillow. */
fy_status fy_image_resize(const fy_image *in, int64_t width, int64_t height, fy_resample filter, fy_image *out);
/* The width x height window at (left, top); it must lie inside. */
fy_status fy_image_crop(const fy_image *in, int64_t left, int64_t top, int64_t width, int64_t height,
                        fy_image *out);

#ifdef __cplusplus
}
#endif
#endif
