/* Flux's AutoencoderKL against the fixtures: encode (moments, mean, logvar,
 * the shifted and scaled latents), decode, and a tiled
 * decode (the fixture's 32-pixel tiles at a 24-pixel stride) next to the
 * same latent untiled. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/engine.h"
#include "ferry/log.h"
#include "ferry/vae_kl.h"
#include "verify/verify_flux.h"

#define VAE_TOLERANCE 1e-4
/* The fixture's tiling: tile_sample_min_size 32, overlap 0.25, in latent pixels of 8. */
#define FIXTURE_TILE_PIXELS 32
#define FIXTURE_STRIDE_PIXELS 24

static fy_status view4(const fy_st_file *f, const char *name, fy_tensor *t)
{
    FY_TRY(fy_st_view(f, name, t));
    if (t->dtype != FY_F32 || t->ndim != 4)
        return fy_error(FY_ERR_FORMAT, "%s: %s must be float32 [B, C, H, W]", fy_st_path(f), name);
    return FY_OK;
}

static fy_status compare(fy_verify_ctx *ctx, const fy_st_file *f, const char *name, float *ours)
{
    fy_tensor ref;
    FY_TRY(fy_st_view(f, name, &ref));
    fy_tensor mine = fy_tensor_wrap(ours, FY_F32, ref.ndim, ref.shape, FY_HOST);
    return fy_verify_compare(ctx, name, &mine, &ref, VAE_TOLERANCE);
}

static float *alloc_like(const fy_tensor *t, int64_t scale_hw, int64_t channels)
{
    return malloc((size_t)(t->shape[0] * channels * t->shape[2] * scale_hw * t->shape[3] * scale_hw) * sizeof(float));
}

/* Decodes `input` (untiled, or tiled) and compares with `output`. */
static fy_status check_decode(fy_verify_ctx *ctx, const fy_st_file *f, fy_vae_kl *m, const char *input,
                              const char *output, const fy_vae_kl_tiling *tiling)
{
    fy_tensor in;
    FY_TRY(view4(f, input, &in));
    int64_t up = fy_vae_kl_upscale(m);
    float *img = alloc_like(&in, up, fy_vae_kl_get_config(m)->out_channels);
    if (!img) return fy_error(FY_ERR_NOMEM, "out of memory");
    fy_status s = fy_vae_kl_decode(m, in.data, in.shape[0], in.shape[2], in.shape[3], tiling, img);
    if (s == FY_OK) s = compare(ctx, f, output, img);
    free(img);
    return s;
}

static fy_status check_encode(fy_verify_ctx *ctx, const fy_st_file *f, fy_vae_kl *m)
{
    const fy_vae_kl_config *k = fy_vae_kl_get_config(m);
    fy_tensor in;
    FY_TRY(view4(f, "encode.input", &in));
    int64_t up = fy_vae_kl_upscale(m), B = in.shape[0], h = in.shape[2] / up, w = in.shape[3] / up;
    int64_t zc = k->latent_channels, per = zc * h * w;
    float *mo = malloc((size_t)(B * 2 * per) * sizeof(float)), *part = malloc((size_t)(B * per) * sizeof(float));
    fy_status s = mo && part ? FY_OK : fy_error(FY_ERR_NOMEM, "out of memory");
    if (s == FY_OK) s = fy_vae_kl_encode(m, in.data, B, in.shape[2], in.shape[3], NULL, mo);
    if (s == FY_OK) s = compare(ctx, f, "encode.moments", mo);
    for (int half = 0; half < 2 && s == FY_OK; half++) {
        for (int64_t b = 0; b < B; b++) memcpy(part + b * per, mo + (b * 2 + half) * per, (size_t)per * sizeof(float));
        s = compare(ctx, f, half ? "encode.logvar" : "encode.mean", part);
    }
    for (int64_t b = 0; s == FY_OK && b < B; b++)
        for (int64_t i = 0; i < per; i++)
            part[b * per + i] = (mo[b * 2 * per + i] - (float)k->shift_factor) * (float)k->scaling_factor;
    if (s == FY_OK) s = compare(ctx, f, "encode.latents", part);
    /* roundtrip.output is not reproduced by decoding the encoded mean (nor
     * the mean tiled, nor a re-encoded decode): left out until its recipe
     * is known, and said so. */
    if (s == FY_OK && ctx->out) fprintf(ctx->out, "  (roundtrip.output not compared: its recipe is not known)\n");
    free(mo);
    free(part);
    return s;
}

static fy_status reserve(fy_engine *e, fy_vae_kl *m, const fy_st_file *f, const fy_vae_kl_tiling *tiling)
{
    fy_tensor dec, enc, tiled;
    FY_TRY(view4(f, "decode.input", &dec));
    FY_TRY(view4(f, "encode.input", &enc));
    FY_TRY(view4(f, "tiled.input", &tiled));
    uint64_t a = fy_vae_kl_decode_activation_bytes(m, dec.shape[2], dec.shape[3], NULL);
    uint64_t b = fy_vae_kl_encode_activation_bytes(m, enc.shape[2], enc.shape[3], NULL);
    uint64_t c = fy_vae_kl_decode_activation_bytes(m, tiled.shape[2], tiled.shape[3], NULL);
    uint64_t d = fy_vae_kl_decode_activation_bytes(m, tiled.shape[2], tiled.shape[3], tiling);
    uint64_t most = a > b ? a : b;
    most = most > c ? most : c;
    return fy_engine_reserve(e, most > d ? most : d);
}

fy_status fy_verify_flux_vae(fy_verify_ctx *ctx, const fy_st_file *fixture)
{
    const fy_component *c = ctx->model ? fy_model_component(ctx->model, "vae") : NULL;
    if (!c) return fy_error(FY_ERR_NOT_FOUND, "the model folder has no vae component");
    fy_engine *e = NULL;
    fy_vae_kl *m = NULL;
    const fy_run_options *o = ctx->options;
    fy_status s = o->vae_cpu_offload ? fy_engine_create_host(o, &e) : fy_engine_create(o, &e);
    if (s == FY_OK) s = fy_vae_kl_load(c, e, FY_VAE_KL_DECODER | FY_VAE_KL_ENCODER, &m);
    if (s == FY_OK) s = fy_vae_kl_set_threads(m, o->threads);
    int64_t up = m ? fy_vae_kl_upscale(m) : 8;
    fy_vae_kl_tiling tiling = {FIXTURE_TILE_PIXELS / up, FIXTURE_STRIDE_PIXELS / up};
    if (s == FY_OK) s = reserve(e, m, fixture, &tiling);
    if (s == FY_OK) s = fy_engine_prepare(e);
    if (s == FY_OK) s = check_decode(ctx, fixture, m, "decode.input", "decode.output", NULL);
    if (s == FY_OK) s = check_encode(ctx, fixture, m);
    if (s == FY_OK) s = check_decode(ctx, fixture, m, "tiled.input", "tiled.untiled_output", NULL);
    if (s == FY_OK) s = check_decode(ctx, fixture, m, "tiled.input", "tiled.output", &tiling);
    if (s == FY_OK) s = fy_engine_finish(e);
    if (s == FY_OK && fy_log_get_level() >= FY_LOG_INFO) fy_engine_stats_print(e, stderr);
    fy_vae_kl_free(m);
    fy_engine_free(e);
    return s;
}
