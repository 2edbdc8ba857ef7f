/* diffusers' AutoencoderKL (Flux's VAE: 16 latent channels, no quant convs)
 * on the offload engine.
 *
 * Encoder: conv_in, per level layers_per_block ResnetBlock2D then (except the
 * last level) a stride-2 3x3 conv after one zero row/column at the
 * bottom/right, mid block (resnet, single-head attention over H*W with
 * GroupNorm and residual, resnet), GroupNorm, SiLU, conv_out -> 2 x latent
 * channels (mean, logvar). Decoder: conv_in, mid block, per level (reversed)
 * layers_per_block + 1 resnets then (except the last) nearest 2x + 3x3 conv,
 * GroupNorm, SiLU, conv_out. GroupNorm eps 1e-6, norm_num_groups groups.
 *
 * Components: "vae" (the decoder) and "vae_encoder", each a SMALL conv_in
 * group, one BLOCK group per resnet / attention / resampler, a SMALL head;
 * every plan applies. Batch items run one at a time, always (diffusers'
 * enable_slicing, which gives the same values); decode and encode can run
 * in overlapping tiles blended as diffusers' tiled_decode / tiled_encode do. */
#ifndef FERRY_VAE_KL_H
#define FERRY_VAE_KL_H

#include <stdbool.h>
#include <stdint.h>
#include "ferry/engine.h"
#include "ferry/error.h"
#include "ferry/model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FY_VAE_KL_MAX_LEVELS 8
#define FY_VAE_KL_DECODER 1
#define FY_VAE_KL_ENCODER 2

typedef struct fy_vae_kl_config {
    int64_t in_channels, out_channels, latent_channels, layers_per_block, groups;
    int64_t sample_size;        /* pixels: diffusers' default tile */
    int64_t channels[FY_VAE_KL_MAX_LEVELS];
    int levels;
    bool mid_attention;
    double scaling_factor, shift_factor;
} fy_vae_kl_config;

/* Tiling (diffusers' enable_tiling), in latent pixels: the decoder takes
 * tiles of tile_latent every stride_latent, blended over (tile_latent -
 * stride_latent) x the upscale pixels; the encoder takes the same tiles in
 * image pixels (x the upscale) and blends their moments over (tile_latent -
 * stride_latent) latent pixels. Only an input larger than a tile is tiled.
 * tile_latent 0: no tiling. diffusers' defaults: the config's sample_size
 * (in pixels) as the tile, overlap 1/4 (fy_vae_kl_default_tiling). */
typedef struct fy_vae_kl_tiling {
    int64_t tile_latent, stride_latent;
} fy_vae_kl_tiling;

typedef struct fy_vae_kl fy_vae_kl;

fy_status fy_vae_kl_load(const fy_component *c, fy_engine *e, int parts, fy_vae_kl **out);
void fy_vae_kl_free(fy_vae_kl *m);
const fy_vae_kl_config *fy_vae_kl_get_config(const fy_vae_kl *m);
fy_status fy_vae_kl_set_threads(fy_vae_kl *m, int threads);
/* Pixels per latent pixel (2^(levels - 1)). */
int64_t fy_vae_kl_upscale(const fy_vae_kl *m);

/* Device bytes a decode of one h x w latent (or tile) / an encode of one
 * H x W image allocates at most. */
uint64_t fy_vae_kl_decode_activation_bytes(const fy_vae_kl *m, int64_t h, int64_t w, const fy_vae_kl_tiling *t);
uint64_t fy_vae_kl_encode_activation_bytes(const fy_vae_kl *m, int64_t H, int64_t W, const fy_vae_kl_tiling *t);
/* diffusers' AutoencoderKL tiling: tile_sample_min_size = the config's
 * sample_size, tile_latent_min_size = that / upscale, overlap 0.25. */
fy_vae_kl_tiling fy_vae_kl_default_tiling(const fy_vae_kl *m);

/* latents host [B, latent_channels, h, w] -> image host [B, out_channels,
 * h * up, w * up] (unclamped). tiling may be NULL. */
fy_status fy_vae_kl_decode(fy_vae_kl *m, const float *latents, int64_t B, int64_t h, int64_t w,
                           const fy_vae_kl_tiling *tiling, float *image);
/* image host [B, in_channels, H, W] -> moments host [B, 2 x latent_channels,
 * H / up, W / up]: the mean, then the log-variance clamped to [-30, 20].
 * tiling may be NULL. */
fy_status fy_vae_kl_encode(fy_vae_kl *m, const float *image, int64_t B, int64_t H, int64_t W,
                           const fy_vae_kl_tiling *tiling, float *moments);

#ifdef __cplusplus
}
#endif
#endif
