/* A random-weight Wan2.1 text-to-video model folder, written in the
 * diffusers layout ferry's loader reads (model_index.json, scheduler,
 * tokenizer, text_encoder, transformer, vae), so the whole pipeline can run
 * without downloading anything: `ferry demo`, tests, and benchmarks that
 * need a full-size model's shapes and bytes but not its numbers.
 *
 * Weights are seeded normals scaled 1/sqrt(fan_in) (norm gains 1, biases
 * small), so every stage yields finite values; the video is noise-like. The
 * tokenizer is a small sentencepiece model trained at write time on a
 * built-in English text. Everything is deterministic from the seed: the
 * same params give the same bytes. Tensors are generated while they are
 * written, so a 14B model needs disk, not memory. */
#ifndef FERRY_WAN_RANDOM_H
#define FERRY_WAN_RANDOM_H

#include <stdint.h>
#include "ferry/dtype.h"
#include "ferry/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fy_wan_random_params {
    uint64_t seed;
    fy_dtype dtype;          /* every weight: FY_F32, FY_BF16 or FY_F16 */
    /* transformer (WanTransformer3DModel) */
    int dit_layers;
    int dit_heads;
    int dit_head_dim;
    int dit_ffn_dim;
    int dit_freq_dim;
    /* text encoder (UMT5EncoderModel); its d_model is the transformer's text_dim */
    int te_layers;
    int te_heads;
    int te_d_kv;
    int te_d_model;
    int te_d_ff;
    int te_vocab;            /* config vocab_size; 0 = the trained tokenizer's size, rounded up to 64 */
    /* tokenizer: pieces to aim for (a small corpus may give fewer) */
    int tokenizer_vocab;
    /* vae (AutoencoderKLWan, Wan2.1: dim_mult [1,2,4,4], z_dim 16) */
    int vae_base_dim;
    int vae_num_res_blocks;
    /* > 0: Wan2.2 T2V-A14B's layout: a second expert, transformer_2 (same
     * config, other weights), and this boundary_ratio in model_index.json;
     * 0: Wan2.1 (one transformer). */
    double boundary_ratio;
} fy_wan_random_params;

/* "demo" (seconds to write and run on 2 cores, 8 transformer blocks),
 * "wan2.1-1.3b", "wan2.1-14b" (the real configs' sizes, bf16); "wan2.2-demo"
 * and "wan2.2-a14b": the same with two experts (boundary_ratio 0.875). */
fy_status fy_wan_random_preset(const char *name, fy_wan_random_params *out);
/* The preset names, comma-separated (for help and errors). */
const char *fy_wan_random_preset_names(void);

/* Writes the model folder into dir (created if missing; must be empty or
 * absent). On failure, what was written is removed again. */
fy_status fy_wan_random_write(const fy_wan_random_params *p, const char *dir);
/* Removes what fy_wan_random_write wrote (those files only), then the
 * folder if that left it empty. */
void fy_wan_random_remove(const char *dir);

#ifdef __cplusplus
}
#endif
#endif
