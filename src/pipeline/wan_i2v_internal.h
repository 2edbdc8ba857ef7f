/* The image-to-video parts of the Wan pipeline (wan_t2v.c runs them for a
 * WanImageToVideoPipeline folder): the image, its CLIP tokens, the
 * condition, and the transformer's 36-channel input. */
#ifndef FERRY_PIPELINE_WAN_I2V_INTERNAL_H
#define FERRY_PIPELINE_WAN_I2V_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include "ferry/clip_vision.h"
#include "ferry/image_preprocess.h"
#include "ferry/model.h"
#include "ferry/options.h"
#include "ferry/wan_t2v.h"
#include "ferry/wan_vae.h"

typedef void (*fy_i2v_tensor_fn)(void *user, const char *name, const float *data, int ndim, const int64_t *shape);

/* How the folder's pipeline puts the image in (diffusers'
 * WanImageToVideoPipeline.prepare_latents and its denoising loop). */
typedef enum fy_i2v_mode {
    FY_I2V_OFF,         /* text to video */
    FY_I2V_CONCAT,      /* Wan2.1 I2V, Wan2.2 I2V-A14B: cat(latents, mask, condition) channels */
    FY_I2V_FIRST_FRAME, /* Wan2.2 TI2V (expand_timesteps): the image is latent frame 0, its tokens at t = 0 */
} fy_i2v_mode;

typedef struct fy_i2v_state {
    fy_i2v_mode mode;
    bool clip;                 /* the transformer reads CLIP image tokens (its config's image_dim) */
    fy_clip_vision *encoder;   /* all layers but the last (clip only) */
    fy_clip_preprocess proc;
    int64_t image_len, image_dim;
    float *image_embeds;       /* [batch, image_len, image_dim]: the same tokens for every batch item */
    float *condition;          /* CONCAT [1, 4 + z, T, h, w]; FIRST_FRAME [1, z, 1, h, w] */
    int64_t cond_shape[5], cond_numel;
} fy_i2v_state;

/* The request's image options against the folder: mode gets how it runs,
 * clip whether the transformer takes the image encoder's tokens. A
 * WanImageToVideoPipeline folder is image to video (FIRST_FRAME with
 * expand_timesteps), and needs --image when need_image (a run; a plan needs
 * none); a WanPipeline folder with expand_timesteps (Wan2.2 TI2V) is
 * FIRST_FRAME given an image, text to video without; --image elsewhere,
 * and --last-image (first-last-frame, not implemented), are refused. */
fy_status fy_i2v_check(const fy_model *m, const fy_wan_t2v_params *p, bool expand_timesteps, bool need_image,
                       fy_i2v_mode *mode, bool *clip);
/* Loads the image encoder into e (clip only) and reads the image processor's config. */
fy_status fy_i2v_load(fy_i2v_state *s, const fy_model *m, fy_engine *e, int threads);
/* Device bytes the image encoder's forward allocates. */
uint64_t fy_i2v_encoder_bytes(const fy_i2v_state *s);
/* Device bytes the image's VAE encode allocates. */
uint64_t fy_i2v_condition_bytes(const fy_i2v_state *s, const fy_wan_vae *vae, const fy_wan_t2v_params *p,
                                const fy_run_options *o);
/* The image's CLIP tokens (batch copies; clip only) and the condition
 * through vae's encoder; tensor (may be NULL) gets "image_embeds",
 * "video_image", "condition". A second call replaces the first's. */
fy_status fy_i2v_encode(fy_i2v_state *s, const fy_wan_t2v_params *p, int64_t batch, fy_wan_vae *vae,
                        const fy_run_options *o, const int64_t latent_shape[5], fy_i2v_tensor_fn tensor, void *user);
/* CONCAT: input [batch, z + 4 + z, T, h, w] = batch copies of
 * cat(latents, condition). FIRST_FRAME: batch copies of the blend below. */
void fy_i2v_input(const fy_i2v_state *s, const float *latents, const int64_t latent_shape[5], int64_t batch,
                  float *input);
/* FIRST_FRAME: out = (1 - mask) * condition + mask * latents, the mask 0 at
 * latent frame 0 and 1 after, as diffusers computes it (out may be latents). */
void fy_i2v_blend(const fy_i2v_state *s, const float *latents, const int64_t latent_shape[5], float *out);
/* FIRST_FRAME: the per-token timesteps [batch, tokens] (patch order),
 * mask * t: 0 for latent frame 0's tokens, t after. */
void fy_i2v_token_timesteps(const int64_t latent_shape[5], const int64_t patch[3], float t, int64_t batch,
                            float *out);
void fy_i2v_free(fy_i2v_state *s);

#endif
