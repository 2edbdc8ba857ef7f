/* The Wan2.1 and Wan2.2 video VAEs (diffusers' AutoencoderKLWan) on the
 * offload engine.
 *
 *     fy_wan_vae_load(component, engine, FY_WAN_VAE_DECODER, &vae);
 *     fy_engine_reserve(engine, fy_wan_vae_decode_activation_bytes(vae, &shape, options));
 *     fy_engine_prepare(engine);
 *     fy_wan_vae_decode(vae, &shape, latents, options, video);
 *
 * Causal 3D convolutions with diffusers' temporal feature cache: the decoder
 * runs one latent frame at a time, the encoder frame 0 and then chunks of 4
 * frames, so device memory grows with the (tile) resolution, never with the
 * frame count. Activations live in the engine's pool and are freed frame by
 * frame; the feature cache is per tile.
 *
 * Weights: components "vae.decoder" and "vae.encoder", each with SMALL groups
 * for the convolutions in and out and one BLOCK group per residual block,
 * attention block and resampler, in execution order. Each latent frame (each
 * tile's) runs every decoder block in order (the engine's cyclic order). A
 * decode-only run loads FY_WAN_VAE_DECODER: nothing of the encoder is
 * declared, so nothing of it moves (with both loaded, a decode streams no
 * encoder block, but the encoder's SMALL groups are resident).
 *
 * Compute is float32 on the host ops (ferry/ops.h), on --device cpu and emu;
 * weights may be stored f32, bf16 or f16. Every dimension comes from
 * vae/config.json.
 *
 * Wan2.2 (is_residual, patch_size 2): residual down / up blocks with their
 * parameter-free shortcuts, and 2x2 pixels folded into the channels before
 * the encoder and unfolded after the decoder (on the host), so the video
 * here always has video_channels (3) at full resolution. As in diffusers,
 * the tiles (--vae-tile, --vae-tile-stride) are then counted in patches:
 * 256 covers 512 pixels. */
#ifndef FERRY_WAN_VAE_H
#define FERRY_WAN_VAE_H

#include <stdbool.h>
#include <stdint.h>
#include "ferry/engine.h"
#include "ferry/error.h"
#include "ferry/model.h"
#include "ferry/options.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FY_WAN_VAE_MAX_LEVELS 8
#define FY_WAN_VAE_MAX_Z 256

typedef struct fy_wan_vae fy_wan_vae;

/* vae/config.json, as read. */
typedef struct fy_wan_vae_config {
    int64_t base_dim, decoder_base_dim, z_dim, num_res_blocks;
    int64_t in_channels, out_channels; /* the encoder's input / decoder's output (patches) */
    bool is_residual;                   /* Wan2.2: residual down / up blocks */
    int64_t patch_size;                 /* Wan2.2: 2 (pixels folded into channels), else 1 */
    int64_t video_channels;             /* out_channels / patch_size^2 (3) */
    int n_levels;                                   /* len(dim_mult) */
    int64_t dim_mult[FY_WAN_VAE_MAX_LEVELS];
    bool temperal_downsample[FY_WAN_VAE_MAX_LEVELS]; /* n_levels - 1 entries */
    int n_attn_scales;
    double attn_scales[FY_WAN_VAE_MAX_LEVELS];
    float latents_mean[FY_WAN_VAE_MAX_Z], latents_std[FY_WAN_VAE_MAX_Z];
    int64_t spatial_ratio;  /* 2^(n_levels - 1), in patches (pixels: times patch_size) */
    int64_t temporal_ratio; /* 2^(temporal downsamples) */
} fy_wan_vae_config;

enum { FY_WAN_VAE_DECODER = 1, FY_WAN_VAE_ENCODER = 2, FY_WAN_VAE_BOTH = 3 };

/* Latents [batch, z_dim, frames, height, width] to decode. */
typedef struct fy_wan_vae_decode_shape {
    int64_t batch, frames, height, width;
} fy_wan_vae_decode_shape;

/* Video [batch, in_channels, frames, height, width] to encode. */
typedef struct fy_wan_vae_encode_shape {
    int64_t batch, frames, height, width;
} fy_wan_vae_encode_shape;

/* Reads the config, checks every weight (name and shape) of the parts asked
 * for (FY_WAN_VAE_DECODER, _ENCODER or _BOTH) and declares them into e,
 * decoder first. The component's weights must outlive the model. */
fy_status fy_wan_vae_load(const fy_component *c, fy_engine *e, int parts, fy_wan_vae **out);
void fy_wan_vae_free(fy_wan_vae *m);
const fy_wan_vae_config *fy_wan_vae_get_config(const fy_wan_vae *m);
/* Compute threads (0 = one per core; the default), before the first run. */
fy_status fy_wan_vae_set_threads(fy_wan_vae *m, int threads);

/* The run options that shape a decode or encode:
 *   --vae-slicing          batch items one at a time (else the batch together);
 *   --vae-tiling           diffusers' enable_tiling(): tiles of --vae-tile
 *                          pixels (h x w) every --vae-tile-stride pixels,
 *                          overlaps blended linearly, when the frame is larger
 *                          than a tile (tiled_decode / tiled_encode).
 * Automatic tiling: without --vae-tiling, a decode or encode whose untiled
 * activations do not fit what the engine's device budget leaves beside the
 * plan's weights is tiled with --vae-tile / --vae-tile-stride, and says so on
 * the info log. activation_bytes makes the same decision. */
bool fy_wan_vae_decode_uses_tiles(const fy_wan_vae *m, const fy_wan_vae_decode_shape *s, const fy_run_options *o);

/* Output shapes: video [B, out_channels, 1 + r_t (T - 1), h r_s, w r_s];
 * latents [B, z_dim, 1 + ((F - 1) / 4) (4 / r_t), h / r_s, w / r_s] (the
 * encoder reads frame 0 and whole chunks of 4 frames; diffusers drops the rest). */
fy_status fy_wan_vae_decode_output_shape(const fy_wan_vae *m, const fy_wan_vae_decode_shape *s, int64_t out[5]);
fy_status fy_wan_vae_encode_output_shape(const fy_wan_vae *m, const fy_wan_vae_encode_shape *s, int64_t out[5]);

/* Device bytes a decode / encode allocates at most under options o (its
 * slicing and tiling); 0 for a bad shape or tile. */
uint64_t fy_wan_vae_decode_activation_bytes(const fy_wan_vae *m, const fy_wan_vae_decode_shape *s,
                                            const fy_run_options *o);
uint64_t fy_wan_vae_encode_activation_bytes(const fy_wan_vae *m, const fy_wan_vae_encode_shape *s,
                                            const fy_run_options *o);

/* latents -> video (host arrays), clamped to [-1, 1]. */
fy_status fy_wan_vae_decode(fy_wan_vae *m, const fy_wan_vae_decode_shape *s, const float *latents,
                            const fy_run_options *o, float *video);
/* video -> moments [B, 2 z_dim, T, h, w] (quant_conv's output: mean then
 * logvar, unclamped). mean and logvar (may be NULL) get its halves, logvar
 * clamped to [-30, 20] as DiagonalGaussianDistribution does. */
fy_status fy_wan_vae_encode(fy_wan_vae *m, const fy_wan_vae_encode_shape *s, const float *video,
                            const fy_run_options *o, float *moments, float *mean, float *logvar);

/* The pipeline's latent normalisation with latents_mean / latents_std, in
 * place over latents [B, z_dim, T, h, w], in float32 as diffusers computes it:
 * normalize x = (x - mean) * (1 / std); denormalize x = x / (1 / std) + mean. */
fy_status fy_wan_vae_normalize(const fy_wan_vae *m, float *latents, const int64_t shape[5]);
fy_status fy_wan_vae_denormalize(const fy_wan_vae *m, float *latents, const int64_t shape[5]);

#ifdef __cplusplus
}
#endif
#endif
