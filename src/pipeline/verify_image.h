/* `ferry verify --component image_processor,image_encoder` (image-to-video
 * models). */
#ifndef FERRY_PIPELINE_VERIFY_IMAGE_H
#define FERRY_PIPELINE_VERIFY_IMAGE_H

#include "ferry/safetensors.h"
#include "pipeline/verify.h"

/* image_preprocess.safetensors: for image.png (main.) and image_other.png
 * (other.): the decoded pixels, the CLIP path's resize, crop and
 * pixel_values, the video path's resize and video_image, all exact. */
fy_status fy_verify_image_processor(fy_verify_ctx *ctx, const fy_st_file *fixture);

#endif
