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

typedef struct fy_i2v_state {
    bool on;                   /* a WanImageToVideoPipeline folder */
    fy_clip_vision *encoder;   /* all layers but the last */
    fy_clip_preprocess proc;
    int64_t image_len, image_dim;
    float *image_embeds;       /* [batch, image_len, image_dim]: the same tokens for every batch item */
    float *condition;          /* [1, 4 + z, T, h, w] */
    int64_t cond_shape[5], cond_numel;
} fy_i2v_state;

/* Whether the folder is image-to-video (model_index.json's class), and the
 * request's image options against it: --image on a text-to-video folder,
 * none on an I2V one when need_image (a run; a plan needs none), and
 * --last-image (first-last-frame, not implemented) are refused. */
fy_status fy_i2v_check(const fy_model *m, const fy_wan_t2v_params *p, bool need_image, bool *is_i2v);
/* Loads the image encoder into e and reads the image processor's config. */
fy_status fy_i2v_load(fy_i2v_state *s, const fy_model *m, fy_engine *e, int threads);
/* Device bytes the image encoder's forward allocates. */
uint64_t fy_i2v_encoder_bytes(const fy_i2v_state *s);
/* The image's CLIP tokens (batch copies) and the condition through vae's
 * encoder; tensor (may be NULL) gets "image_embeds", "video_image",
 * "condition". */
fy_status fy_i2v_encode(fy_i2v_state *s, const fy_wan_t2v_params *p, int64_t batch, fy_wan_vae *vae,
                        const fy_run_options *o, const int64_t latent_shape[5], fy_i2v_tensor_fn tensor, void *user);
/* input [batch, z + 4 + z, T, h, w] = batch copies of cat(latents, condition). */
void fy_i2v_input(const fy_i2v_state *s, const float *latents, int64_t latent_numel, int64_t batch, float *input);
void fy_i2v_free(fy_i2v_state *s);

#endif
