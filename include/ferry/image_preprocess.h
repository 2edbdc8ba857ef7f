/* The two ways the Wan image-to-video pipeline prepares its input image:
 *
 *   CLIP (transformers' CLIPImageProcessor, image_processor/
 *   preprocessor_config.json): resize so the shortest edge is
 *   size.shortest_edge (the other edge int(shortest * long / short)), with
 *   the config's Pillow filter; center crop to crop_size; rescale
 *   float32(float64(u8) * rescale_factor); (x - mean) / std in float32;
 *   channels first -> pixel_values [3, crop_h, crop_w].
 *
 *   video (diffusers' VideoProcessor, not in the model folder): Lanczos
 *   resize to exactly width x height (aspect not kept, skipped at the same
 *   size), float32(u8) / 255, then 2x - 1 -> [3, height, width] in [-1, 1].
 *
 * Both resizes are Pillow's 8-bit ones (ferry/image.h). */
#ifndef FERRY_IMAGE_PREPROCESS_H
#define FERRY_IMAGE_PREPROCESS_H

#include <stdbool.h>
#include <stdint.h>
#include "ferry/error.h"
#include "ferry/image.h"

#ifdef __cplusplus
extern "C" {
#endif

/* preprocessor_config.json, as read. */
typedef struct fy_clip_preprocess {
    bool do_resize, do_center_crop, do_rescale, do_normalize;
    int64_t shortest_edge, crop_h, crop_w;
    fy_resample resample;
    double rescale_factor;
    float mean[3], std[3];
} fy_clip_preprocess;

/* Reads DIR/preprocessor_config.json (a CLIPImageProcessor's). */
fy_status fy_clip_preprocess_load(const char *dir, fy_clip_preprocess *out);
/* Output size: [3, h, w] floats. */
void fy_clip_preprocess_size(const fy_clip_preprocess *p, const fy_image *img, int64_t *h, int64_t *w);
/* img -> pixel_values [3, h, w]; resized and cropped (may be NULL) get the
 * uint8 intermediates (free them with fy_image_free). */
fy_status fy_clip_preprocess_run(const fy_clip_preprocess *p, const fy_image *img, float *pixel_values,
                                 fy_image *resized, fy_image *cropped);

/* img -> video frame [3, height, width] in [-1, 1]; resized (may be NULL)
 * gets the uint8 Lanczos resize. */
fy_status fy_video_image_preprocess(const fy_image *img, int64_t width, int64_t height, float *frame,
                                    fy_image *resized);

#ifdef __cplusplus
}
#endif
#endif
