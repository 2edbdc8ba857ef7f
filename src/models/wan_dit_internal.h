/* Shared between the Wan DiT's files: the model struct, the weight order of
 * each group, and the embedding helpers. */
#ifndef FERRY_MODELS_WAN_DIT_INTERNAL_H
#define FERRY_MODELS_WAN_DIT_INTERNAL_H

#include "ferry/ops.h"
#include "ferry/ops.h"
#include "ferry/wan_dit.h"

/* Weights of the "embed" group, in declared order. */
enum {
    WE_PATCH_W, WE_PATCH_B,
    WE_TIME1_W, WE_TIME1_B, WE_TIME2_W, WE_TIME2_B,
    WE_TPROJ_W, WE_TPROJ_B,
    WE_TEXT1_W, WE_TEXT1_B, WE_TEXT2_W, WE_TEXT2_B,
    WE_T2V_COUNT,
    /* I2V's image embedder: LayerNorm -> Linear -> GELU -> Linear -> LayerNorm */
    WE_IMG_N1_W = WE_T2V_COUNT, WE_IMG_N1_B, WE_IMG_FF1_W, WE_IMG_FF1_B, WE_IMG_FF2_W, WE_IMG_FF2_B,
    WE_IMG_N2_W, WE_IMG_N2_B,
    WE_COUNT
};

/* One attention's weights, relative to its first (attn1 or attn2). */
enum { WA_Q_W, WA_Q_B, WA_K_W, WA_K_B, WA_V_W, WA_V_B, WA_O_W, WA_O_B, WA_NORM_Q, WA_NORM_K, WA_COUNT };

/* Weights of a block group; I2V's image key/value projections
 * (attn2.add_k_proj, add_v_proj, norm_added_k) follow WB_SST (absent for
 * text-to-video). */
enum {
    WB_ATTN1 = 0,
    WB_ATTN2 = WA_COUNT,
    WB_NORM2_W = 2 * WA_COUNT, WB_NORM2_B, /* absent (NULL views) without cross_attn_norm */
    WB_FFN1_W, WB_FFN1_B, WB_FFN2_W, WB_FFN2_B,
    WB_SST,
    WB_ADD_K_W, WB_ADD_K_B, WB_ADD_V_W, WB_ADD_V_B, WB_NORM_ADDED_K,
    WB_COUNT
};

enum { WH_SST, WH_PROJ_W, WH_PROJ_B, WH_COUNT };

struct fy_wan_dit {
    fy_wan_dit_config cfg;
    const fy_component *comp;
    fy_engine *engine;
    fy_ops *ops; /* made by the first forward (after the plan's allocations) */
    int threads;
    int component_id;
    int embed_group, head_group;
    int *block_groups;          /* [num_layers] */
    int block_count;            /* weights per block group */
    int embed_count;            /* weights in the embed group */
    fy_tensor embed_w[WE_COUNT];
    fy_tensor head_w[WH_COUNT];
    fy_tensor *block_w;         /* [num_layers][block_count] */
    float *vec_scratch;         /* dtype conversions of vectors (biases, norms): 4 slots in
                                   the forward's workspace */
    int64_t vec_slot;           /* floats per scratch slot */
    int64_t row_chunk;          /* token rows per chunk (0: the default, 2048) */
    fy_wan_dit_tap tap;
    void *tap_user;
    fy_wan_dit_timing timing;
};

struct fy_wan_dit_context {
    fy_wan_dit *model;
    int64_t batch, text_len, image_len;
    float *kv;        /* [num_layers][2][batch * (text_len + image_len) * dim], engine pool:
                         text keys, text values, image keys, image values */
    bool *valid;      /* per block */
};

/* Binds the context's buffers for this batch and text length (allocating on
 * first use; a different size is a new prompt: buffers renewed, K/V invalid). */
fy_status fy_wan_context_bind(fy_wan_dit_context *c, fy_wan_dit *m, int64_t batch, int64_t text_len,
                              int64_t image_len);
/* Every block's K/V is present (the text embedding can be skipped). */
bool fy_wan_context_complete(const fy_wan_dit_context *c);

/* Whether a block group holds weight slot WB_* under this config. */
bool fy_wan_block_has(const fy_wan_dit_config *c, int slot);

/* Token rows per chunk of the per-row work (tests force small chunks to
 * check the split against the whole; 0 = the default). */
void fy_wan_dit_set_row_chunk(fy_wan_dit *m, int64_t rows);

/* Per-token patch: C * pt * ph * pw values (c, pt, ph, pw order, as Conv3d's weight). */
int64_t fy_wan_patch_len(const fy_wan_dit_config *c, int64_t channels);
/* latents [B, C, F, H, W] -> patches [B, S, C*pt*ph*pw]. */
void fy_wan_patchify(const fy_wan_dit_config *c, const float *x, float *out, int64_t B, int64_t C,
                     int64_t F, int64_t H, int64_t W);
/* y [B, S, pt*ph*pw*C] (proj_out order) -> out [B, C, F, H, W]. */
void fy_wan_unpatchify(const fy_wan_dit_config *c, const float *y, float *out, int64_t B, int64_t C,
                       int64_t F, int64_t H, int64_t W);
/* diffusers' Timesteps(freq_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
 * in float32 as torch computes it: out [B, freq_dim] = [cos, sin]. */
void fy_wan_timestep_sinusoid(const float *t, int64_t B, int64_t freq_dim, float *out);
/* WanRotaryPosEmbed for a grid of F x H x W tokens (patched sizes): cos/sin
 * [S, head_dim / 2] per rotation pair, time then height then width pairs. */
void fy_wan_rope_tables(const fy_wan_dit_config *c, int64_t F, int64_t H, int64_t W, float *cos_t,
                        float *sin_t);

#endif
