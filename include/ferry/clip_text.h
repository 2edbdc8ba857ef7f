/* CLIP's text encoder (transformers' CLIPTextModel), as FluxPipeline uses it
 * for its pooled prompt embedding, running on the offload engine.
 *
 *   x = token_embedding[ids] + position_embedding[0..L)
 *   per layer (pre-LN):
 *     x += out_proj(causal_attention(q_proj, k_proj, v_proj of LN1(x)))  (1/sqrt(d_head))
 *     x += fc2(act(fc1(LN2(x))))          act: quick_gelu x*sigmoid(1.702x), or gelu
 *   last_hidden_state = final_layer_norm(x)
 *   pooler_output[b] = last_hidden_state[b, eos_index[b]]
 *
 * eos_index: with the config's eos_token_id == 2 (the legacy configs, Flux's
 * included) the first position of the highest id (argmax), else the first
 * position holding eos_token_id. No attention mask besides the causal one,
 * as the pipeline calls it; no projection.
 *
 * Groups: component "text_encoder": SMALL "embeddings", one BLOCK per layer,
 * SMALL "final_layer_norm"; every plan applies. Weights f32, bf16 or f16. */
#ifndef FERRY_CLIP_TEXT_H
#define FERRY_CLIP_TEXT_H

#include <stdbool.h>
#include <stdint.h>
#include "ferry/engine.h"
#include "ferry/error.h"
#include "ferry/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fy_clip_text_config {
    int64_t vocab_size, hidden, heads, intermediate, layers, max_positions, eos_token_id;
    double eps;
    bool quick_gelu; /* else exact gelu */
} fy_clip_text_config;

typedef struct fy_clip_text fy_clip_text;

fy_status fy_clip_text_load(const fy_component *c, fy_engine *e, fy_clip_text **out);
void fy_clip_text_free(fy_clip_text *m);
const fy_clip_text_config *fy_clip_text_get_config(const fy_clip_text *m);
fy_status fy_clip_text_set_threads(fy_clip_text *m, int threads);
/* Device bytes a forward over batch x len tokens allocates at most. */
uint64_t fy_clip_text_activation_bytes(const fy_clip_text *m, int64_t batch, int64_t len);
/* The position pooling reads for each row of ids [batch, len] (see above). */
int64_t fy_clip_text_eos_index(const fy_clip_text *m, const int64_t *ids, int64_t len);

/* ids: host [batch, len] (len <= max_positions). Outputs, each NULL or host
 * f32: last [batch, len, hidden], pooled [batch, hidden]; hidden: NULL or
 * layers + 1 pointers (each NULL or [batch, len, hidden]): the embeddings,
 * then each layer's output. */
fy_status fy_clip_text_forward(fy_clip_text *m, const int64_t *ids, int64_t batch, int64_t len, float *last,
                               float *pooled, float *const *hidden);

#ifdef __cplusplus
}
#endif
#endif
