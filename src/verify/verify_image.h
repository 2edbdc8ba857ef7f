/* `ferry verify --component image_processor,image_encoder` (image-to-video
 * models). */
#ifndef FERRY_VERIFY_VERIFY_IMAGE_H
#define FERRY_VERIFY_VERIFY_IMAGE_H

#include "ferry/safetensors.h"
#include "verify/verify.h"

/* image_preprocess.safetensors: for image.png (main.) and image_other.png
 * (other.): the decoded pixels, the CLIP path's resize, crop and
 * pixel_values, the video path's resize and video_image, all exact. */
fy_status fy_verify_image_processor(fy_verify_ctx *ctx, const fy_st_file *fixture);



/* image_encoder.safetensors: for each image, pixel_values through every
 * layer (hidden_states.0..n, last_hidden_state) and through the pipeline's
 * layers only (image_embeds = hidden_states[-2]), at 1e-5, on the device
 * engine or, with --image-encoder-cpu-offload, the host's. */
fy_status fy_verify_image_encoder(fy_verify_ctx *ctx, const fy_st_file *fixture);
/* condition.safetensors: for each image, the condition video (exact), the
 * VAE mean, the normalised latents and the condition (1e-5, tighter than
 * the fixtures' 1e-4 for the encoder) and the mask (exact), on the VAE's engine (the host's with
 * --vae-cpu-offload) under its tiling and slicing. */
fy_status fy_verify_condition(fy_verify_ctx *ctx, const fy_st_file *fixture);
#endif
