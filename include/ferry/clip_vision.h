/* The CLIP vision tower (transformers' CLIPVisionModel) on the offload
 * engine: the image encoder of Wan image-to-video.
 *
 *     fy_clip_vision_load(component, engine, layers, &enc);  "embeddings", layers.0..n-1
 *     fy_engine_reserve(engine, fy_clip_vision_activation_bytes(enc, batch));
 *     fy_engine_prepare(engine);
 *     fy_clip_vision_forward(enc, pixel_values, batch, out, NULL);
 *
 * Patch embedding (a Conv2d without bias as a GEMM over patches), the class
 * token first, position embeddings, pre_layrnorm, then pre-LN encoder
 * layers (attention scale head_dim^-0.5, exact GELU). The Wan pipeline uses
 * hidden_states[-2], the output of the second-to-last layer: it loads all
 * layers but the last, so the last one's weights are never read or moved.
 * post_layernorm (the pooled output's) is not used. Every dimension comes
 * from image_encoder/config.json. Compute is float32 through the op set;
 * weights may be f32, bf16 or f16. */
#ifndef FERRY_CLIP_VISION_H
#define FERRY_CLIP_VISION_H

#include <stdint.h>
#include "ferry/engine.h"
#include "ferry/error.h"
#include "ferry/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fy_clip_vision fy_clip_vision;

/* config.json, as read. */
typedef struct fy_clip_vision_config {
    int64_t hidden, layers, heads, head_dim, intermediate;
    int64_t image_size, patch, channels;
    int64_t tokens; /* 1 + (image_size / patch)^2 */
    double eps;
} fy_clip_vision_config;

/* Reads the config, checks the weights of the embeddings and of the first
 * `layers` encoder layers (0: all) and declares them into e as component
 * "image_encoder". The component's weights must outlive the model. */
fy_status fy_clip_vision_load(const fy_component *c, fy_engine *e, int64_t layers, fy_clip_vision **out);
void fy_clip_vision_free(fy_clip_vision *m);
const fy_clip_vision_config *fy_clip_vision_get_config(const fy_clip_vision *m);
/* Layers a forward runs (what load was given). */
int64_t fy_clip_vision_layers_run(const fy_clip_vision *m);
fy_status fy_clip_vision_set_threads(fy_clip_vision *m, int threads);

/* Device bytes a forward of `batch` images allocates. */
uint64_t fy_clip_vision_activation_bytes(const fy_clip_vision *m, int64_t batch);

/* pixel_values [batch, channels, image_size, image_size] -> out [batch,
 * tokens, hidden]: the output of the last layer run (host arrays).
 * hidden (may be NULL) gets layers_run + 1 arrays of that size:
 * hidden_states[0] (the embeddings after pre_layrnorm) and each layer's. */
fy_status fy_clip_vision_forward(fy_clip_vision *m, const float *pixel_values, int64_t batch, float *out,
                                 float *const *hidden);

#ifdef __cplusplus
}
#endif
#endif
