/* FluxPipeline text to image (see ferry/flux_t2i.h). */
#include "ferry/flux_t2i.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/backend.h"
#include "ferry/clip_text.h"
#include "ferry/clip_tokenizer.h"
#include "ferry/engine.h"
#include "ferry/flux_dit.h"
#include "ferry/log.h"
#include "ferry/model.h"
#include "ferry/noise.h"
#include "ferry/scheduler.h"
#include "ferry/tokenizer.h"
#include "ferry/umt5.h"
#include "ferry/vae_kl.h"
#include "ferry/version.h"
#include "ferry/video_out.h"
#include "pipeline/model_classes.h"

#define FLUX_DEFAULT_SIDE 1024
#define FLUX_DEFAULT_STEPS 28
#define FLUX_DEFAULT_T5_LEN 512
#define FLUX_MAX_STEPS 10000

typedef struct flux_run {
    const fy_run_options *o;
    const fy_flux_params *p;
    const fy_flux_hooks *hooks;
    const volatile sig_atomic_t *cancel; /* the pipeline's fy_flux_t2i_cancel flag */
    fy_model *model;
    fy_engine *dev, *text_host, *vae_host;
    fy_clip_tokenizer *clip_tok;
    fy_tokenizer *t5_tok;
    fy_clip_text *clip;
    fy_umt5 *t5;
    fy_flux_dit *dit;
    fy_vae_kl *vae;
    fy_scheduler *sched;
    int64_t H, W, h, w, S, L, channels, up;
    int steps, clip_len;
    float *pooled, *embeds, *latents, *pred, *txt_ids, *img_ids;
} flux_run;

void fy_flux_sigmas(int n, float *out)
{
    /* numpy's linspace: arange(n) * step + start, the endpoint stored exactly. */
    double step = n > 1 ? (1.0 / n - 1.0) / (n - 1) : 0.0;
    for (int i = 0; i < n; i++) out[i] = (float)(i == n - 1 ? 1.0 / n : (double)i * step + 1.0);
}

void fy_flux_params_init(fy_flux_params *p)
{
    memset(p, 0, sizeof *p);
    p->guidance_scale = 3.5;
}

bool fy_flux_is_model(const char *model_dir, const fy_run_options *o)
{
    fy_model *m = NULL;
    fy_model_sources src = fy_run_options_sources(o);
    if (fy_model_open_sources(model_dir, &src, &m) != FY_OK) {
        fy_error_clear();
        return false;
    }
    const char *cls = fy_model_class(m);
    bool flux = cls && !strcmp(cls, "FluxPipeline");
    fy_model_free(m);
    return flux;
}

static void hook(const flux_run *r, const char *name, const float *data, int64_t n)
{
    if (r->p->hook) r->p->hook(r->p->hook_user, name, data, NULL, n);
}

static void hook_ids(const flux_run *r, const char *name, const int64_t *ids, int64_t n)
{
    if (r->p->hook) r->p->hook(r->p->hook_user, name, NULL, ids, n);
}

static void hook_stage(const flux_run *r, const char *stage)
{
    if (r->hooks && r->hooks->stage) r->hooks->stage(r->hooks->user, stage);
}

/* Between stages and steps: a cancel or the caller's poll stops the run. */
static fy_status stop_point(const flux_run *r, const char *where)
{
    bool stop = (r->cancel && *r->cancel) || (r->hooks && r->hooks->should_stop && r->hooks->should_stop(r->hooks->user));
    return stop ? fy_error(FY_ERR_INTERRUPTED, "stopped by the user %s", where) : FY_OK;
}

static fy_status component(const flux_run *r, const char *name, const fy_component **out)
{
    *out = fy_model_component(r->model, name);
    if (!*out) return fy_error(FY_ERR_NOT_FOUND, "%s: FluxPipeline needs a %s component", fy_model_dir(r->model), name);
    return FY_OK;
}

/* ---- sizes ------------------------------------------------------------------------------ */

static fy_status check_request(flux_run *r)
{
    const fy_flux_params *p = r->p;
    r->H = p->height ? p->height : FLUX_DEFAULT_SIDE;
    r->W = p->width ? p->width : FLUX_DEFAULT_SIDE;
    r->steps = p->steps ? p->steps : FLUX_DEFAULT_STEPS;
    r->L = p->max_sequence_length ? p->max_sequence_length : FLUX_DEFAULT_T5_LEN;
    if (!p->prompt) return fy_error(FY_ERR_INVALID, "--prompt is required");
    if (r->H < 16 || r->W < 16 || r->H > 16384 || r->W > 16384 || r->H % 16 || r->W % 16)
        return fy_error(FY_ERR_INVALID, "--height %lld --width %lld: Flux needs multiples of 16 from 16 to 16384",
                        (long long)r->H, (long long)r->W);
    if (r->steps < 1 || r->steps > FLUX_MAX_STEPS)
        return fy_error(FY_ERR_INVALID, "--steps %d: give 1 to %d", r->steps, FLUX_MAX_STEPS);
    if (r->L < 1 || r->L > 4096)
        return fy_error(FY_ERR_INVALID, "max_sequence_length %lld: give 1 to 4096", (long long)r->L);
    r->h = 2 * (r->H / 16), r->w = 2 * (r->W / 16);
    r->S = (r->h / 2) * (r->w / 2);
    return FY_OK;
}

/* ---- engines and models ---------------------------------------------------------------- */

static fy_status create_engines(flux_run *r)
{
    if (r->o->device_map == FY_DEVICE_MAP_BALANCED)
        return fy_error(FY_ERR_UNSUPPORTED, "--device-map balanced: not implemented for Flux yet (--device-map auto, "
                        "which splits the blocks over the devices, is)");
    FY_TRY(fy_engine_create(r->o, &r->dev));
    if (r->o->text_encoder_cpu_offload) FY_TRY(fy_engine_create_host(r->o, &r->text_host));
    if (r->o->vae_cpu_offload) FY_TRY(fy_engine_create_host(r->o, &r->vae_host));
    return FY_OK;
}

static fy_engine *text_engine(const flux_run *r) { return r->text_host ? r->text_host : r->dev; }
static fy_engine *vae_engine(const flux_run *r) { return r->vae_host ? r->vae_host : r->dev; }

static fy_status load_text(flux_run *r)
{
    const fy_component *c = NULL;
    FY_TRY(component(r, "tokenizer", &c));
    FY_TRY(fy_clip_tokenizer_load(c->dir, &r->clip_tok));
    FY_TRY(component(r, "tokenizer_2", &c));
    FY_TRY(fy_tokenizer_load(c->dir, &r->t5_tok));
    FY_TRY(component(r, "text_encoder", &c));
    FY_TRY(fy_clip_text_load(c, text_engine(r), &r->clip));
    FY_TRY(fy_clip_text_set_threads(r->clip, r->o->threads));
    FY_TRY(component(r, "text_encoder_2", &c));
    FY_TRY(fy_umt5_load(c, text_engine(r), &r->t5));
    FY_TRY(fy_umt5_set_threads(r->t5, r->o->threads));
    int max = fy_clip_tokenizer_max_length(r->clip_tok);
    int64_t pos = fy_clip_text_get_config(r->clip)->max_positions;
    r->clip_len = max < pos ? max : (int)pos;
    return FY_OK;
}

static fy_status load_models(flux_run *r)
{
    const fy_component *c = NULL;
    FY_TRY(load_text(r));
    FY_TRY(component(r, "transformer", &c));
    FY_TRY(fy_flux_dit_load(c, r->dev, &r->dit));
    FY_TRY(fy_flux_dit_set_threads(r->dit, r->o->threads));
    const fy_flux_dit_config *k = fy_flux_dit_get_config(r->dit);
    FY_TRY(component(r, "vae", &c));
    FY_TRY(fy_vae_kl_load(c, vae_engine(r), FY_VAE_KL_DECODER, &r->vae));
    FY_TRY(fy_vae_kl_set_threads(r->vae, r->o->threads));
    r->channels = fy_vae_kl_get_config(r->vae)->latent_channels;
    r->up = fy_vae_kl_upscale(r->vae);
    if (k->in_channels != 4 * r->channels || k->n_axes != 3)
        return fy_error(FY_ERR_FORMAT, "%s: the transformer takes %lld channels, 2x2 packing of the VAE's %lld "
                        "latent channels needs %lld", fy_model_dir(r->model), (long long)k->in_channels,
                        (long long)r->channels, (long long)(4 * r->channels));
    if (r->up * 2 != 16)
        return fy_error(FY_ERR_UNSUPPORTED, "%s: the VAE upscales by %lld; FluxPipeline's packing assumes 8",
                        fy_model_dir(r->model), (long long)r->up);
    FY_TRY(component(r, "scheduler", &c));
    return fy_scheduler_create_from_config(c->config, &r->sched);
}

/* --vae-tiling alone is diffusers' enable_tiling(): the VAE config's
 * sample_size as the tile, overlap 1/4; --vae-tile / --vae-tile-stride set them. */
static fy_vae_kl_tiling tiling(const flux_run *r)
{
    fy_vae_kl_tiling t = {0, 0};
    if (!r->o->vae_tiling) return t;
    if (!r->o->vae_tile_explicit && !r->o->vae_tile_stride_explicit) return fy_vae_kl_default_tiling(r->vae);
    t.tile_latent = r->o->vae_tile[0] / r->up;
    t.stride_latent = r->o->vae_tile_stride[0] / r->up;
    return t;
}

static uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* Each engine reserves the most any model on it allocates at once. */
static fy_status reserve_and_prepare(flux_run *r)
{
    uint64_t text = max_u64(fy_clip_text_activation_bytes(r->clip, 1, r->clip_len),
                            fy_umt5_activation_bytes(r->t5, 1, r->L));
    uint64_t dit = fy_flux_dit_activation_bytes(r->dit, 1, r->S, r->L);
    fy_vae_kl_tiling t = tiling(r);
    uint64_t vae = fy_vae_kl_decode_activation_bytes(r->vae, r->h, r->w, &t);
    uint64_t dev = dit;
    if (!r->text_host) dev = max_u64(dev, text);
    if (!r->vae_host) dev = max_u64(dev, vae);
    FY_TRY(fy_engine_reserve(r->dev, dev));
    if (r->text_host) FY_TRY(fy_engine_reserve(r->text_host, text));
    if (r->vae_host) FY_TRY(fy_engine_reserve(r->vae_host, vae));
    FY_TRY(fy_engine_prepare(r->dev));
    if (r->text_host) FY_TRY(fy_engine_prepare(r->text_host));
    if (r->vae_host) FY_TRY(fy_engine_prepare(r->vae_host));
    return FY_OK;
}

/* ---- text ------------------------------------------------------------------------------- */

static fy_status encode_clip(flux_run *r)
{
    int64_t d = fy_clip_text_get_config(r->clip)->hidden;
    int64_t *ids = malloc((size_t)r->clip_len * sizeof *ids);
    r->pooled = malloc((size_t)d * sizeof(float));
    if (!ids || !r->pooled) {
        free(ids);
        return fy_error(FY_ERR_NOMEM, "out of memory");
    }
    int dropped = 0;
    fy_status s = fy_clip_tokenizer_encode(r->clip_tok, r->p->prompt, r->clip_len, ids, NULL, &dropped);
    if (s == FY_OK && dropped)
        fy_warn("the prompt is longer than CLIP's %d tokens: the last %d were dropped for the pooled "
                    "embedding", r->clip_len - 2, dropped);
    if (s == FY_OK) hook_ids(r, "clip.input_ids", ids, r->clip_len);
    if (s == FY_OK) s = fy_clip_text_forward(r->clip, ids, 1, r->clip_len, NULL, r->pooled, NULL);
    if (s == FY_OK) hook(r, "pooled_prompt_embeds", r->pooled, d);
    free(ids);
    return s;
}

/* T5 without an attention mask, as the pipeline calls it: padding is encoded too. */
static fy_status encode_t5(flux_run *r)
{
    int64_t d = fy_umt5_get_config(r->t5)->d_model, L = r->L;
    int64_t *ids = malloc((size_t)L * sizeof *ids), *mask = malloc((size_t)L * sizeof *mask);
    r->embeds = malloc((size_t)(L * d) * sizeof(float));
    fy_status s = ids && mask && r->embeds ? FY_OK : fy_error(FY_ERR_NOMEM, "out of memory");
    int dropped = 0;
    if (s == FY_OK) s = fy_tokenizer_encode(r->t5_tok, r->p->prompt, (int)L, ids, mask, NULL, &dropped);
    if (s == FY_OK && dropped)
        fy_warn("the prompt is longer than max_sequence_length %lld T5 tokens: the last %d were dropped",
                    (long long)L, dropped);
    for (int64_t i = 0; s == FY_OK && i < L; i++) mask[i] = 1;
    if (s == FY_OK) hook_ids(r, "t5.input_ids", ids, L);
    if (s == FY_OK) s = fy_umt5_forward(r->t5, ids, mask, 1, L, r->embeds, NULL);
    if (s == FY_OK) hook(r, "prompt_embeds", r->embeds, L * d);
    free(ids);
    free(mask);
    return s;
}

/* ---- latents ------------------------------------------------------------------------------ */

/* (1, C, h, w) -> (1, (h/2)(w/2), 4C): token (y/2)(w/2) + x/2, channel 4c + 2(y%2) + x%2. */
static void pack(const float *in, int64_t C, int64_t h, int64_t w, float *out)
{
    for (int64_t c = 0; c < C; c++)
        for (int64_t y = 0; y < h; y++)
            for (int64_t x = 0; x < w; x++)
                out[((y / 2) * (w / 2) + x / 2) * 4 * C + c * 4 + (y % 2) * 2 + x % 2] = in[(c * h + y) * w + x];
}

static void unpack(const float *in, int64_t C, int64_t h, int64_t w, float *out)
{
    for (int64_t c = 0; c < C; c++)
        for (int64_t y = 0; y < h; y++)
            for (int64_t x = 0; x < w; x++)
                out[(c * h + y) * w + x] = in[((y / 2) * (w / 2) + x / 2) * 4 * C + c * 4 + (y % 2) * 2 + x % 2];
}

static fy_status init_latents(flux_run *r)
{
    size_t n = (size_t)(r->channels * r->h * r->w);
    float *noise = malloc(n * sizeof *noise);
    r->latents = malloc(n * sizeof(float));
    r->pred = malloc(n * sizeof(float));
    r->img_ids = calloc((size_t)r->S * 3, sizeof(float));
    r->txt_ids = calloc((size_t)r->L * 3, sizeof(float));
    fy_status s = noise && r->latents && r->pred && r->img_ids && r->txt_ids ? FY_OK
                                                                              : fy_error(FY_ERR_NOMEM, "out of memory");
    if (s == FY_OK && r->p->noise) memcpy(noise, r->p->noise, n * sizeof *noise);
    else if (s == FY_OK) s = fy_randn(r->p->seed, noise, n);
    if (s == FY_OK) pack(noise, r->channels, r->h, r->w, r->latents);
    for (int64_t t = 0; t < r->S; t++) {
        r->img_ids[t * 3 + 1] = (float)(t / (r->w / 2));
        r->img_ids[t * 3 + 2] = (float)(t % (r->w / 2));
    }
    free(noise);
    if (s == FY_OK) {
        hook(r, "text_ids", r->txt_ids, r->L * 3);
        hook(r, "latent_image_ids", r->img_ids, r->S * 3);
        hook(r, "latents.0", r->latents, (int64_t)n);
    }
    return s;
}

/* ---- denoising ------------------------------------------------------------------------------ */

static fy_status schedule(flux_run *r)
{
    float *sig = malloc((size_t)r->steps * sizeof *sig);
    if (!sig) return fy_error(FY_ERR_NOMEM, "out of memory");
    fy_flux_sigmas(r->steps, sig);
    double mu = fy_scheduler_mu(r->sched, r->S);
    float mu_f = (float)mu;
    hook(r, "mu", &mu_f, 1);
    fy_status s = fy_scheduler_set_sigmas(r->sched, sig, (size_t)r->steps, mu);
    free(sig);
    if (s == FY_OK) {
        hook(r, "sigmas", fy_scheduler_sigmas(r->sched), r->steps + 1);
        hook(r, "timesteps", fy_scheduler_timesteps(r->sched), r->steps);
    }
    return s;
}

static fy_status denoise(flux_run *r)
{
    size_t n = (size_t)(r->channels * r->h * r->w);
    const float *ts = fy_scheduler_timesteps(r->sched);
    float guidance = (float)r->p->guidance_scale;
    bool use_g = fy_flux_dit_get_config(r->dit)->guidance_embeds;
    hook_stage(r, "denoising");
    for (int i = 0; i < r->steps; i++) {
        char where[48];
        snprintf(where, sizeof where, "before step %d of %d", i + 1, r->steps);
        FY_TRY(stop_point(r, where));
        double t0 = fy_backend_now();
        float t = ts[i] / 1000.0f;
        char name[48];
        snprintf(name, sizeof name, "step%d.timestep", i);
        hook(r, name, &t, 1);
        FY_TRY(fy_flux_dit_forward(r->dit, r->latents, r->embeds, r->pooled, &t, use_g ? &guidance : NULL,
                                   r->img_ids, r->txt_ids, 1, r->S, r->L, r->pred));
        snprintf(name, sizeof name, "step%d.noise_pred", i);
        hook(r, name, r->pred, (int64_t)n);
        FY_TRY(fy_scheduler_step(r->sched, r->pred, r->latents, r->latents, n));
        snprintf(name, sizeof name, "latents.%d", i + 1);
        hook(r, name, r->latents, (int64_t)n);
        fy_debug("step %d/%d", i + 1, r->steps);
        if (r->hooks && r->hooks->step) r->hooks->step(r->hooks->user, i, r->steps, fy_backend_now() - t0);
    }
    return FY_OK;
}

static fy_status decode(flux_run *r, fy_flux_result *out)
{
    const fy_vae_kl_config *k = fy_vae_kl_get_config(r->vae);
    size_t n = (size_t)(r->channels * r->h * r->w), px = (size_t)(r->H * r->W);
    float *lat = malloc(n * sizeof *lat), *dec = malloc(3 * px * sizeof *dec);
    out->image = malloc(3 * px * sizeof(float));
    fy_status s = lat && dec && out->image ? FY_OK : fy_error(FY_ERR_NOMEM, "out of memory");
    if (s == FY_OK) {
        unpack(r->latents, r->channels, r->h, r->w, lat);
        hook(r, "latents_unpacked", lat, (int64_t)n);
        for (size_t i = 0; i < n; i++) lat[i] = lat[i] / (float)k->scaling_factor + (float)k->shift_factor;
        hook(r, "vae_decode.input", lat, (int64_t)n);
        fy_vae_kl_tiling t = tiling(r);
        s = fy_vae_kl_decode(r->vae, lat, 1, r->h, r->w, &t, dec);
    }
    if (s == FY_OK) {
        hook(r, "vae_decode.output", dec, (int64_t)(3 * px));
        for (size_t c = 0; c < 3; c++)
            for (size_t i = 0; i < px; i++) {
                float v = dec[c * px + i] * 0.5f + 0.5f;
                out->image[i * 3 + c] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
            }
        hook(r, "image", out->image, (int64_t)(3 * px));
        out->height = r->H, out->width = r->W;
    }
    free(lat);
    free(dec);
    return s;
}

/* ---- the run ------------------------------------------------------------------------------- */

/* What one image allocates: dropped after each, the weights kept. */
static void request_free(flux_run *r)
{
    free(r->pooled);
    free(r->embeds);
    free(r->latents);
    free(r->pred);
    free(r->txt_ids);
    free(r->img_ids);
    r->pooled = r->embeds = r->latents = r->pred = r->txt_ids = r->img_ids = NULL;
}

static void run_free(flux_run *r)
{
    fy_clip_tokenizer_free(r->clip_tok);
    fy_tokenizer_free(r->t5_tok);
    fy_clip_text_free(r->clip);
    fy_umt5_free(r->t5);
    fy_flux_dit_free(r->dit);
    fy_vae_kl_free(r->vae);
    fy_scheduler_free(r->sched);
    fy_engine_free(r->dev);
    fy_engine_free(r->text_host);
    fy_engine_free(r->vae_host);
    fy_model_free(r->model);
    request_free(r);
    memset(r, 0, sizeof *r);
}

static fy_status check_class(const fy_model *m, const char *model_dir)
{
    const char *cls = fy_model_class(m);
    if (!cls || strcmp(cls, "FluxPipeline"))
        return fy_error(FY_ERR_UNSUPPORTED, "%s: model_index.json names %s, not FluxPipeline", model_dir,
                        cls ? cls : "no class");
    return fy_model_check_classes(m);
}

static fy_status open_and_load(flux_run *r, const char *model_dir)
{
    FY_TRY(check_request(r));
    fy_model_sources src = fy_run_options_sources(r->o);
    FY_TRY(fy_model_open_sources(model_dir, &src, &r->model));
    FY_TRY(check_class(r->model, model_dir));
    FY_TRY(create_engines(r));
    FY_TRY(load_models(r));
    return reserve_and_prepare(r);
}

static fy_status finish(flux_run *r)
{
    fy_engine *engines[3] = {r->text_host, r->dev, r->vae_host};
    for (int i = 0; i < 3; i++)
        if (engines[i]) FY_TRY(fy_engine_finish(engines[i]));
    if (fy_log_get_level() >= FY_LOG_INFO)
        for (int i = 0; i < 3; i++)
            if (engines[i]) fy_engine_stats_print(engines[i], stderr);
    return FY_OK;
}

static fy_status image_stages(flux_run *r, fy_flux_result *out)
{
    FY_TRY(stop_point(r, "after loading"));
    hook_stage(r, "text encoder");
    FY_TRY(encode_clip(r));
    FY_TRY(encode_t5(r));
    FY_TRY(stop_point(r, "after the text encoders"));
    FY_TRY(init_latents(r));
    FY_TRY(schedule(r));
    FY_TRY(denoise(r));
    FY_TRY(stop_point(r, "before the VAE decode"));
    hook_stage(r, "vae decode");
    FY_TRY(decode(r, out));
    return stop_point(r, "after the VAE decode");
}

/* ---- pipeline: one load, several images ----------------------------------------------------- */

struct fy_flux_pipeline {
    char *model_dir;
    char *trace_path;     /* the options' --trace, copied */
    fy_run_options options;
    flux_run run;         /* the loaded components (run.model set) */
    int64_t loaded_H, loaded_W, loaded_L; /* the shape they were sized for */
    volatile sig_atomic_t cancel;
};

static char *copy_text(const char *text)
{
    if (!text) return NULL;
    size_t n = strlen(text) + 1;
    char *c = malloc(n);
    if (c) memcpy(c, text, n);
    return c;
}

fy_status fy_flux_t2i_open(const char *model_dir, const fy_run_options *o, fy_flux_pipeline **out)
{
    if (!out) return fy_error(FY_ERR_INVALID, "fy_flux_t2i_open: NULL output");
    *out = NULL;
    if (!model_dir || !o) return fy_error(FY_ERR_INVALID, "fy_flux_t2i_open: NULL model folder or options");
    FY_TRY(fy_run_options_validate(o));
    fy_model *m = NULL;
    fy_model_sources src = fy_run_options_sources(o);
    FY_TRY(fy_model_open_sources(model_dir, &src, &m));
    fy_status s = check_class(m, model_dir);
    fy_model_free(m);
    if (s != FY_OK) return s;
    fy_flux_pipeline *p = calloc(1, sizeof *p);
    if (!p) return fy_error(FY_ERR_NOMEM, "out of memory for the pipeline");
    p->options = *o;
    p->model_dir = copy_text(model_dir);
    p->trace_path = copy_text(o->trace_path);
    p->options.trace_path = p->trace_path;
    if (!p->model_dir || (o->trace_path && !p->trace_path)) {
        fy_flux_t2i_close(p);
        return fy_error(FY_ERR_NOMEM, "out of memory for the pipeline");
    }
    *out = p;
    return FY_OK;
}

/* Loaded weights serve a request of the shape they were sized for; another
 * shape loads them again. */
static fy_status load_or_reuse(fy_flux_pipeline *pipe)
{
    flux_run *r = &pipe->run;
    if (r->model) {
        if (r->H == pipe->loaded_H && r->W == pipe->loaded_W && r->L == pipe->loaded_L) return FY_OK;
        flux_run ctx = {.o = r->o, .p = r->p, .hooks = r->hooks, .cancel = r->cancel};
        run_free(r);
        *r = ctx;
    }
    hook_stage(r, "loading");
    FY_TRY(stop_point(r, "before loading"));
    FY_TRY(open_and_load(r, pipe->model_dir));
    pipe->loaded_H = r->H, pipe->loaded_W = r->W, pipe->loaded_L = r->L;
    return FY_OK;
}

fy_status fy_flux_t2i_generate(fy_flux_pipeline *pipe, const fy_flux_params *p, const fy_flux_hooks *hooks,
                               fy_flux_result *out)
{
    if (!pipe || !p || !out) return fy_error(FY_ERR_INVALID, "fy_flux_t2i_generate: NULL pipeline, params or result");
    memset(out, 0, sizeof *out);
    pipe->cancel = 0;
    double t0 = fy_backend_now();
    flux_run *r = &pipe->run;
    r->o = &pipe->options, r->p = p, r->hooks = hooks, r->cancel = &pipe->cancel;
    /* A bad request is refused before anything is unloaded. */
    FY_TRY(check_request(r));
    fy_status s = load_or_reuse(pipe);
    if (s == FY_OK) s = image_stages(r, out);
    if (r->model) {
        fy_status fs = finish(r);
        if (s == FY_OK) s = fs;
    }
    request_free(r);
    r->hooks = NULL, r->p = NULL;
    if (s != FY_OK) fy_flux_result_free(out);
    /* Half loaded, or failed mid-pass: the next request starts over. A stop
     * comes between steps and leaves the weights whole. */
    if (s != FY_OK && s != FY_ERR_INTERRUPTED) run_free(r);
    out->seconds = fy_backend_now() - t0;
    return s;
}

void fy_flux_t2i_cancel(fy_flux_pipeline *pipe)
{
    if (pipe) pipe->cancel = 1;
}

void fy_flux_t2i_close(fy_flux_pipeline *pipe)
{
    if (!pipe) return;
    run_free(&pipe->run);
    free(pipe->model_dir);
    free(pipe->trace_path);
    free(pipe);
}

fy_status fy_flux_t2i_run(const char *model_dir, const fy_run_options *o, const fy_flux_params *p,
                          fy_flux_result *out)
{
    if (!model_dir || !o || !p || !out) return fy_error(FY_ERR_INVALID, "fy_flux_t2i_run: NULL argument");
    memset(out, 0, sizeof *out);
    fy_flux_pipeline *pipe = NULL;
    FY_TRY(fy_flux_t2i_open(model_dir, o, &pipe));
    fy_status s = fy_flux_t2i_generate(pipe, p, NULL, out);
    fy_flux_t2i_close(pipe);
    return s;
}

void fy_flux_result_free(fy_flux_result *r)
{
    if (!r) return;
    free(r->image);
    r->image = NULL;
}

fy_flux_result *fy_flux_result_new(void)
{
    fy_flux_result *r = calloc(1, sizeof *r);
    if (!r) fy_error(FY_ERR_NOMEM, "out of memory for a result");
    return r;
}

void fy_flux_result_delete(fy_flux_result *r)
{
    fy_flux_result_free(r);
    free(r);
}

/* The PNG with the settings as text chunks: the CLI and the bindings write
 * through this one function, so their files are the same bytes. */
fy_status fy_flux_t2i_save(const char *path, const fy_flux_result *r, const fy_flux_params *p,
                           bool (*should_stop)(void *user), void *user)
{
    if (!path || !r || !r->image || !p) return fy_error(FY_ERR_INVALID, "fy_flux_t2i_save: NULL path, image or params");
    char seed[32], steps[16], guidance[32], size[48];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)p->seed);
    snprintf(steps, sizeof steps, "%d", p->steps ? p->steps : FLUX_DEFAULT_STEPS);
    snprintf(guidance, sizeof guidance, "%g", p->guidance_scale);
    snprintf(size, sizeof size, "%lldx%lld", (long long)r->width, (long long)r->height);
    const char *tags[] = {"prompt", p->prompt ? p->prompt : "", "seed", seed, "num_inference_steps", steps,
                          "guidance_scale", guidance, "size", size, "software", "ferry " FERRY_VERSION, NULL};
    fy_video_options vo = {.crf = -1, .should_stop = should_stop, .user = user, .metadata = tags};
    return fy_video_write_opts(path, r->image, 1, (int)r->height, (int)r->width, 1, FY_VIDEO_PNG, &vo);
}

fy_status fy_flux_t2i_plan(const char *model_dir, const fy_run_options *o, const fy_flux_params *p, FILE *out)
{
    if (!model_dir || !o || !p || !out) return fy_error(FY_ERR_INVALID, "fy_flux_t2i_plan: NULL argument");
    flux_run r = {.o = o, .p = p};
    fy_status s = open_and_load(&r, model_dir);
    if (s == FY_OK) {
        if (r.text_host) fy_engine_plan_print(r.text_host, "text encoders (host)", out);
        fy_engine_plan_print(r.dev, "device", out);
        if (r.vae_host) fy_engine_plan_print(r.vae_host, "VAE (host)", out);
    }
    run_free(&r);
    return s;
}
