/* Flux.1's transformer (diffusers' FluxTransformer2DModel) on the offload
 * engine.
 *
 *   img = x_embedder(latents [B, S, in_channels]);  txt = context_embedder(t5 [B, L, joint_dim])
 *   temb = MLP_t(sinusoid(1000 t)) + MLP_g(sinusoid(1000 g)) + MLP_p(pooled)   (no MLP_g: schnell)
 *   RoPE over cat(txt_ids, img_ids): 3 axes of axes_dims_rope, adjacent pairs
 *   double blocks: AdaLayerNormZero per stream, one joint attention (text
 *     first; q/k RMSNorm per stream, then RoPE), gated residuals, per-stream
 *     gelu_tanh feed-forward
 *   single blocks: on cat(txt, img): AdaLayerNormZeroSingle, attention (no
 *     output projection) and gelu_tanh(proj_mlp) side by side, proj_out, gated
 *   out = proj_out(LN(img) (1 + scale) + shift), [scale, shift] = norm_out(silu(temb))
 *
 * The timestep and guidance are passed as the pipeline passes them (t/1000
 * and the guidance scale); the model multiplies both by 1000. Every dimension
 * comes from config.json. Groups: component "transformer": SMALL
 * "embedders", one BLOCK per double block then per single block, SMALL
 * "norm_out"; every plan applies, and the blocks' Linear weights may be
 * stored in fp8 (--storage-dtype). */
#ifndef FERRY_FLUX_DIT_H
#define FERRY_FLUX_DIT_H

#include <stdbool.h>
#include <stdint.h>
#include "ferry/engine.h"
#include "ferry/error.h"
#include "ferry/model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FY_FLUX_MAX_AXES 8

typedef struct fy_flux_dit_config {
    int64_t heads, head_dim, inner, mlp, double_layers, single_layers;
    int64_t in_channels, out_channels, joint_dim, pooled_dim;
    int64_t axes[FY_FLUX_MAX_AXES];
    int n_axes;
    bool guidance_embeds;
    double theta;
} fy_flux_dit_config;

typedef struct fy_flux_dit fy_flux_dit;

/* An intermediate the forward hands out when asked: name (as the fixtures
 * name it: "x_embedder", "temb", "double.0.hidden_states", "norm_out", ...),
 * host data [batch, rows, cols]. */
typedef void (*fy_flux_tap_fn)(void *user, const char *name, const float *data, int64_t batch, int64_t rows,
                               int64_t cols);

fy_status fy_flux_dit_load(const fy_component *c, fy_engine *e, fy_flux_dit **out);
void fy_flux_dit_free(fy_flux_dit *m);
const fy_flux_dit_config *fy_flux_dit_get_config(const fy_flux_dit *m);
fy_status fy_flux_dit_set_threads(fy_flux_dit *m, int threads);
void fy_flux_dit_set_tap(fy_flux_dit *m, fy_flux_tap_fn fn, void *user);
/* Device bytes a forward over batch items of img_tokens + txt_tokens allocates at most. */
uint64_t fy_flux_dit_activation_bytes(const fy_flux_dit *m, int64_t batch, int64_t img_tokens, int64_t txt_tokens);

/* RoPE tables for n positions ids [n, n_axes]: cos, sin [n, head_dim / 2]
 * (one value per rotated pair; angles in float64, rounded to float32). */
fy_status fy_flux_rope_tables(const fy_flux_dit_config *k, const float *ids, int64_t n, float *cos_t, float *sin_t);

/* img [B, S, in_channels], txt [B, L, joint_dim], pooled [B, pooled_dim],
 * timestep [B] (t / 1000), guidance [B] (NULL for a model without guidance
 * embeddings), img_ids [S, n_axes], txt_ids [L, n_axes]: all host f32.
 * out: host [B, S, out_channels]. */
fy_status fy_flux_dit_forward(fy_flux_dit *m, const float *img, const float *txt, const float *pooled,
                              const float *timestep, const float *guidance, const float *img_ids,
                              const float *txt_ids, int64_t B, int64_t S, int64_t L, float *out);

#ifdef __cplusplus
}
#endif
#endif
