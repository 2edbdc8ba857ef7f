/* Wan2.1 image-to-video conditioning (diffusers' WanImageToVideoPipeline
 * prepare_latents, Wan2.1: no last_image, no expand_timesteps):
 *
 *   video_condition [1, 3, F, H, W]: frame 0 the video-path image, frames
 *       1..F-1 zero (mid-grey in [-1, 1]);
 *   latent_condition = (VAE mean of video_condition - latents_mean) *
 *       (1 / latents_std), per channel (all F frames are encoded: the
 *       causal cache makes every latent frame depend on the image);
 *   mask [1, 4, T, h, w]: 1 at latent frame 0, 0 after;
 *   condition = cat(mask, latent_condition) [1, 4 + z, T, h, w].
 *
 * The transformer's input at each step is cat(latents, condition) along
 * channels: 16 + 4 + 16 = 36 for Wan2.1-I2V (and Wan2.2 I2V-A14B).
 *
 * Wan2.2 TI2V (expand_timesteps) encodes the image alone instead: one pixel
 * frame, one latent frame, normalised the same way; the pipeline keeps it
 * as the latents' first frame (see fy_wan_i2v_first_frame). */
#ifndef FERRY_WAN_I2V_H
#define FERRY_WAN_I2V_H

#include <stdint.h>
#include "ferry/error.h"
#include "ferry/options.h"
#include "ferry/wan_vae.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FY_WAN_I2V_MASK_CHANNELS 4

/* Called with each intermediate (host float32, valid during the call):
 * "video_condition", "vae_mean", "latent_condition", "mask", "condition". */
typedef void (*fy_wan_i2v_tap)(void *user, const char *name, const float *data, int ndim, const int64_t *shape);

/* The condition's shape [1, 4 + z, T, h, w] for F frames of H x W. */
fy_status fy_wan_i2v_condition_shape(const fy_wan_vae *vae, int64_t frames, int64_t height, int64_t width,
                                     int64_t out[5]);
/* Device bytes the encode of the condition video allocates under o. */
uint64_t fy_wan_i2v_condition_activation_bytes(const fy_wan_vae *vae, int64_t frames, int64_t height,
                                               int64_t width, const fy_run_options *o);
/* frame [3, height, width] in [-1, 1] -> condition (a host array of the
 * shape above) through the VAE's encoder (loaded with FY_WAN_VAE_ENCODER
 * or _BOTH) under o's slicing and tiling. */
fy_status fy_wan_i2v_condition(fy_wan_vae *vae, const fy_run_options *o, const float *frame, int64_t frames,
                               int64_t height, int64_t width, fy_wan_i2v_tap tap, void *tap_user, float *condition);

/* expand_timesteps: frame [3, height, width] in [-1, 1] as a one-frame
 * video through the encoder -> latent [1, z, 1, h, w], normalised. tap gets
 * "vae_mean" and "latent_condition". */
fy_status fy_wan_i2v_first_frame_shape(const fy_wan_vae *vae, int64_t height, int64_t width, int64_t out[5]);
fy_status fy_wan_i2v_first_frame(fy_wan_vae *vae, const fy_run_options *o, const float *frame, int64_t height,
                                 int64_t width, fy_wan_i2v_tap tap, void *tap_user, float *latent);

#ifdef __cplusplus
}
#endif
#endif
