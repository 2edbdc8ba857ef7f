/* The Wan2.1 diffusion transformer (diffusers' WanTransformer3DModel), text
 * to video, on the offload engine.
 *
 *     fy_wan_dit_load(component, engine, &dit);   declares "embed", blocks.0..N-1, "head"
 *     fy_engine_reserve(engine, fy_wan_dit_activation_bytes(dit, &shape)
 *                               + fy_wan_dit_context_bytes(dit, B, L));
 *     fy_engine_prepare(engine);
 *     fy_wan_dit_context_create(dit, &ctx);        optional: cross-attention K/V cache
 *     per step: fy_wan_dit_forward(dit, &shape, latents, t, text, ctx, out);
 *
 * The batch is the classifier-free-guidance pair (conditional and
 * unconditional as one batch of two), so each block's weights move once per
 * step. Every dimension comes from transformer/config.json.
 *
 * The cross-attention keys and values depend only on the text embeddings, so
 * a context computes them on the first forward that uses it and reuses them
 * afterwards; call fy_wan_dit_context_invalidate when the prompt changes.
 *
 * Compute is float32 on the host ops (ferry/ops.h), on --device cpu and emu.
 * Weights may be stored f32, bf16 or f16. */
#ifndef FERRY_WAN_DIT_H
#define FERRY_WAN_DIT_H

#include <stdbool.h>
#include <stdint.h>
#include "ferry/engine.h"
#include "ferry/error.h"
#include "ferry/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fy_wan_dit fy_wan_dit;
typedef struct fy_wan_dit_context fy_wan_dit_context;

/* transformer/config.json, as read. */
typedef struct fy_wan_dit_config {
    int64_t in_channels, out_channels;
    int64_t patch[3];          /* patch_size: frames, height, width */
    int64_t heads, head_dim;   /* num_attention_heads, attention_head_dim */
    int64_t dim;               /* heads * head_dim */
    int64_t ffn_dim, freq_dim, text_dim, num_layers;
    int64_t rope_max_seq_len;
    double eps;
    bool cross_attn_norm;
    /* Image-to-video (Wan2.1 I2V): image_dim (the image encoder's width,
     * 0 for text-to-video) and added_kv_proj_dim (= dim). */
    int64_t image_dim, added_kv_proj_dim;
} fy_wan_dit_config;

/* One forward's problem size: latents [batch, in_channels, frames, height,
 * width], text [batch, text_len, text_dim]. timestep_runs 0: one timestep
 * per batch item. Above 0: one per token (Wan2.2's expand_timesteps,
 * timesteps [batch, tokens] in patch order), whose time embedding and
 * modulation are computed once per run of equal consecutive values (text to
 * video: one run per item; image to video: two), at most timestep_runs runs
 * over the whole batch (the workspace is sized for them). */
typedef struct fy_wan_dit_shape {
    int64_t batch, frames, height, width, text_len;
    int64_t timestep_runs;
    int64_t image_len; /* image tokens [batch, image_len, image_dim]; 0 without (I2V models need them) */
} fy_wan_dit_shape;

/* Seconds spent in the last forward (wall clock on the calling thread). */
typedef struct fy_wan_dit_timing {
    double total;       /* the whole forward */
    double embed;       /* patch, time and text embeddings (+ rope tables) */
    double blocks;      /* all blocks, acquire to release */
    double block_max;   /* the slowest block */
    double head;        /* output norm, projection, unpatchify */
    double gemm;        /* inside linear layers (matrix products) */
    double attention;   /* inside the attention op */
    double weight_wait; /* inside fy_engine_acquire (weights arriving) */
    int cross_kv_computed; /* blocks whose cross K/V were computed (not cached) */
} fy_wan_dit_timing;

/* Called with each intermediate as a host float32 array (valid during the
 * call): "rope.0" / "rope.1" [1, S, 1, head_dim] (cos / sin, repeated per
 * pair as diffusers stores them), "condition_embedder.0" [B, dim] (temb),
 * "condition_embedder.1" [B, 6 dim] (timestep_proj) (per token, [B, S, dim]
 * and [B, S, 6 dim], with timestep_runs), "condition_embedder.2"
 * [B, L, dim] (text), "condition_embedder.3" [B, I, dim] (image tokens,
 * I2V), "patch_embedding" [B, S, dim] (tokens first),
 * "blocks.i" [B, S, dim], "proj_out" [B, S, out_channels * prod(patch)]. */
typedef void (*fy_wan_dit_tap)(void *user, const char *name, const float *data, int ndim,
                               const int64_t *shape);

/* Reads the config, checks every weight (name and shape) and declares the
 * groups into e: component "transformer", SMALL group "embed", one BLOCK
 * group per block, SMALL group "head", in execution order. The component's
 * weights must outlive the model. Image-to-video configs (image_dim,
 * added_kv_proj_dim) add the image embedder to "embed" and the image
 * keys/values (add_k_proj, add_v_proj, norm_added_k) to each block; FLF2V's
 * pos_embed_seq_len fails with FY_ERR_UNSUPPORTED. */
fy_status fy_wan_dit_load(const fy_component *c, fy_engine *e, fy_wan_dit **out);
void fy_wan_dit_free(fy_wan_dit *m);
const fy_wan_dit_config *fy_wan_dit_get_config(const fy_wan_dit *m);
/* Compute threads (0 = one per core; the default). */
fy_status fy_wan_dit_set_threads(fy_wan_dit *m, int threads);
void fy_wan_dit_set_tap(fy_wan_dit *m, fy_wan_dit_tap fn, void *user);
const fy_wan_dit_timing *fy_wan_dit_last_timing(const fy_wan_dit *m);

/* The runs of equal consecutive values in per-token timesteps [B, S]
 * (each item's run boundaries are runs too): what timestep_runs must cover. */
int64_t fy_wan_dit_count_runs(const float *timesteps, int64_t batch, int64_t tokens);
/* Checks the shape against the config (patch divisibility, rope length). */
fy_status fy_wan_dit_check_shape(const fy_wan_dit *m, const fy_wan_dit_shape *s);
/* Device bytes one forward allocates (its workspace), 0 for a bad shape. */
uint64_t fy_wan_dit_activation_bytes(const fy_wan_dit *m, const fy_wan_dit_shape *s);

/* Arithmetic of one block's forward at shape s (multiply-adds count 2; the
 * text's and image's keys and values counted unless a context caches them),
 * and the same declared to the engine for every block group
 * (fy_engine_set_group_flops): the planner's first estimate of a step. */
double fy_wan_dit_block_flops(const fy_wan_dit *m, const fy_wan_dit_shape *s, bool cross_kv_cached);
fy_status fy_wan_dit_declare_flops(fy_wan_dit *m, const fy_wan_dit_shape *s, bool cross_kv_cached);

/* latents [B, C_in, F, H, W], timesteps [B] (floats; [B, tokens] with
 * timestep_runs), text [B, L, text_dim] -> out [B, C_out, F, H, W]; all host
 * arrays. cache may be NULL. */
fy_status fy_wan_dit_forward(fy_wan_dit *m, const fy_wan_dit_shape *s, const float *latents,
                             const float *timesteps, const float *text, fy_wan_dit_context *cache,
                             float *out);

/* The same with image tokens (I2V): image [B, image_len, image_dim]. The
 * cross-attention attends the text and the image tokens separately (two
 * softmaxes, outputs summed before to_out), as diffusers' WanAttnProcessor
 * does; a context caches both keys and values. */
fy_status fy_wan_dit_forward_image(fy_wan_dit *m, const fy_wan_dit_shape *s, const float *latents,
                                   const float *timesteps, const float *text, const float *image,
                                   fy_wan_dit_context *cache, float *out);

/* ---- Cross-attention K/V cache ----------------------------------------- */
/* Device bytes a context holds for this batch and text length. */
uint64_t fy_wan_dit_context_bytes(const fy_wan_dit *m, int64_t batch, int64_t text_len);
/* With image tokens too (s->image_len). */
uint64_t fy_wan_dit_context_bytes_for(const fy_wan_dit *m, const fy_wan_dit_shape *s);
/* Its buffers come from the engine pool on first use (so after prepare); it
 * must be freed before the engine. */
fy_status fy_wan_dit_context_create(fy_wan_dit *m, fy_wan_dit_context **out);
/* The next forward recomputes every block's K/V (the prompt changed). */
void fy_wan_dit_context_invalidate(fy_wan_dit_context *c);
void fy_wan_dit_context_free(fy_wan_dit_context *c);

#ifdef __cplusplus
}
#endif
#endif
