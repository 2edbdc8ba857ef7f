/* The Wan text-to-video pipeline (diffusers' WanPipeline.__call__): Wan2.1,
 * Wan2.2 A14B's two experts (transformer_2, boundary_ratio) and Wan2.2
 * TI2V-5B's per-token timesteps (expand_timesteps) with its VAE.
 *
 * Memory policy lives in the engines, not here: this file declares what runs
 * where (which engine each component's weights go to), reserves the largest
 * stage's activations, and then runs the stages in order. */
#include "ferry/wan_t2v.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "ferry/log.h"
#include "ferry/model.h"
#include "ferry/noise.h"
#include "ferry/prompt.h"
#include "ferry/scheduler.h"
#include "ferry/tokenizer.h"
#include "ferry/umt5.h"
#include "ferry/wan_dit.h"
#include "ferry/wan_vae.h"
#include "mem/pool.h"
#include "mem/trace.h"
#include "pipeline/device_map.h"
#include "pipeline/model_classes.h"
#include "ferry/wan_i2v.h"
#include "pipeline/wan_i2v_internal.h"

const char *const FY_WAN_DEFAULT_NEGATIVE_PROMPT =
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，"
    "JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，"
    "手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走";

void fy_wan_t2v_params_init(fy_wan_t2v_params *p)
{
    memset(p, 0, sizeof *p);
    p->height = 480;
    p->width = 832;
    p->num_frames = 81;
    p->steps = 50;
    p->guidance_scale = 5.0;
    p->guidance_scale_2 = NAN;
    p->max_sequence_length = 512;
}

#define T2V_MAX_ENGINES 3
/* Guidance beyond this only amplifies noise into overflow. */
#define FY_WAN_GUIDANCE_MAX 1e4

/* Everything one run holds; freed together by run_free. */
typedef struct t2v_run {
    const fy_run_options *options;
    fy_run_options host_offloaded; /* options points here once the planner moved components to the host */
    const fy_wan_t2v_params *params;
    const fy_wan_t2v_hooks *hooks;
    fy_model *model;
    fy_engine *device;       /* the compute device: the transformer, and the rest unless offloaded */
    fy_engine *text_engine;  /* == device unless --text-encoder-cpu-offload or --device-map */
    fy_engine *vae_engine;   /* == device unless --vae-cpu-offload or --device-map */
    fy_engine *image_engine; /* image to video: the text encoder's device unless --image-encoder-cpu-offload */
    fy_i2v_state i2v;        /* image to video (i2v.on) */
    fy_engine *engines[T2V_MAX_ENGINES]; /* each distinct engine once, the transformer's first */
    char engine_names[T2V_MAX_ENGINES][16]; /* "emu:1", "host" */
    int n_engines;
    fy_tokenizer *tokenizer;
    fy_umt5 *text_encoder;
    fy_wan_dit *dits[2];     /* transformer; transformer_2 (NULL without one) */
    fy_wan_dit_context *cross_kv[2][2]; /* per expert: the batch, or cond and uncond */
    double boundary;         /* boundary_ratio x num_train_timesteps; NAN: one transformer */
    bool expand_timesteps;   /* the transformer gets one timestep per latent token */
    fy_wan_t2v_params sized; /* the request with diffusers' size rounding; params points here */
    int expert;              /* the expert the last step ran; -1 before the first */
    bool no_cross_kv; /* the budget has no room to keep the text's K/V: recomputed each step */
    fy_wan_vae *vae;
    fy_scheduler *scheduler;
    bool guidance;
    int64_t text_len, text_dim;
    int64_t latent_shape[5];  /* [1, z, F', H', W'] */
    int64_t latent_numel;
    int64_t tokens;           /* the transformer's patch tokens per item */
    float *embeds;            /* [2, L, text_dim]: prompt, negative prompt */
    float *latents;
    float *video;
    double t_start;
    bool quiet; /* a plan made for a run that follows: the run gives the warnings */
    const volatile sig_atomic_t *cancel; /* a pipeline's fy_wan_t2v_cancel flag */
    fy_wan_t2v_report report;
} t2v_run;

static void hook_stage(const t2v_run *r, const char *stage)
{
    if (r->hooks && r->hooks->stage) r->hooks->stage(r->hooks->user, stage);
}

static void hook_tensor(const t2v_run *r, const char *name, const float *data, int ndim,
                        const int64_t *shape)
{
    if (r->hooks && r->hooks->tensor) r->hooks->tensor(r->hooks->user, name, data, ndim, shape);
}

static void hook_ids(const t2v_run *r, const char *name, const int64_t *data, int64_t n)
{
    if (r->hooks && r->hooks->ids) r->hooks->ids(r->hooks->user, name, data, n);
}

static bool stop_requested(const t2v_run *r)
{
    if (r->cancel && *r->cancel) return true;
    return r->hooks && r->hooks->should_stop && r->hooks->should_stop(r->hooks->user);
}

/* ---- Checks before any work -------------------------------------------- */

static fy_status stop_point(const t2v_run *r, const char *where)
{
    if (stop_requested(r)) return fy_error(FY_ERR_INTERRUPTED, "stopped by the user %s", where);
    return FY_OK;
}

static fy_status component_or_fail(const fy_model *m, const char *name, const fy_component **out)
{
    *out = fy_model_component(m, name);
    if (*out) return FY_OK;
    return fy_error(FY_ERR_NOT_FOUND,
                    "%s: the model has no '%s' component; a Wan2.1 text-to-video folder needs "
                    "tokenizer, text_encoder, transformer, vae and scheduler",
                    fy_model_dir(m), name);
}

/* diffusers' vae_scale_factor_spatial/temporal and the DiT's patch, and
 * model_index.json's boundary_ratio (NAN: none). */
typedef struct t2v_factors {
    int64_t spatial, temporal, patch_h, patch_w, z_dim;
    double boundary_ratio;
    bool expand_timesteps; /* Wan2.2 TI2V: one timestep per latent token */
    fy_i2v_mode i2v;         /* how the image goes in (FY_I2V_OFF: text to video) */
    bool clip;               /* the transformer reads CLIP image tokens */
    bool need_image;         /* a run (a plan runs nothing and needs no image) */
} t2v_factors;

static fy_status check_family(const fy_model *m)
{
    const char *cls = fy_model_class(m);
    if (!cls || (strcmp(cls, "WanPipeline") != 0 && strcmp(cls, "WanImageToVideoPipeline") != 0))
        return fy_error(FY_ERR_UNSUPPORTED,
                        "%s: model_index.json names pipeline class '%s'; ferry generate runs "
                        "WanPipeline (text-to-video) and WanImageToVideoPipeline (image-to-video) models",
                        fy_model_dir(m), cls ? cls : "(none)");
    const char *needed[] = {"tokenizer", "text_encoder", "transformer", "vae", "scheduler"};
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++) {
        const fy_component *c;
        FY_TRY(component_or_fail(m, needed[i], &c));
    }
    const fy_component *sched = fy_model_component(m, "scheduler");
    if (!sched->config)
        return fy_error(FY_ERR_NOT_FOUND, "%s/scheduler_config.json: missing (the scheduler is built from it)",
                        sched->dir);
    return fy_model_check_classes(m);
}

/* ---- model_index.json's pipeline settings ------------------------------ */

static bool is_component_key(const char *key)
{
    static const char *const known[] = {"tokenizer",  "text_encoder",  "transformer",    "transformer_2",
                                        "vae",        "scheduler",     "image_encoder", "image_processor"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(key, known[i]) == 0) return true;
    return false;
}

/* A key ferry does not implement would change the video; refusing it is
 * better than a silently different result. */
static fy_status unknown_key(const fy_config *index, const char *key)
{
    const char *lib = NULL, *cls = NULL;
    if (!fy_config_has(index, key)) return FY_OK; /* null: diffusers' default */
    if (fy_config_pair(index, key, &lib, &cls) == FY_OK && !lib) return FY_OK; /* [null, null]: absent */
    fy_error_clear();
    return fy_error(FY_ERR_UNSUPPORTED,
                    "%s: \"%s\" is a WanPipeline setting or component ferry does not implement; it would change the "
                    "video, so ferry refuses the folder rather than ignore it (remove the key if it is not needed)",
                    fy_config_path(index), key);
}

static fy_status read_boundary(const fy_model *m, t2v_factors *f)
{
    const fy_config *index = fy_model_index(m);
    f->boundary_ratio = NAN;
    if (fy_config_has(index, "boundary_ratio")) {
        FY_TRY(fy_config_double(index, "boundary_ratio", &f->boundary_ratio));
        if (!(f->boundary_ratio >= 0 && f->boundary_ratio <= 1))
            return fy_error(FY_ERR_FORMAT, "%s: boundary_ratio %g: use a fraction of the schedule from 0 to 1 "
                            "(Wan2.2 T2V-A14B's is 0.875)", fy_config_path(index), f->boundary_ratio);
    }
    bool expert_2 = fy_model_component(m, "transformer_2") != NULL;
    fy_error_clear();
    if (expert_2 && isnan(f->boundary_ratio))
        return fy_error(FY_ERR_FORMAT, "%s: the folder has a transformer_2 but no boundary_ratio: the step at "
                        "which the low-noise expert takes over is unknown (Wan2.2 T2V-A14B's is 0.875)",
                        fy_config_path(index));
    if (!expert_2 && !isnan(f->boundary_ratio))
        return fy_error(FY_ERR_FORMAT, "%s: boundary_ratio %g but no transformer_2: the steps below the boundary "
                        "have no expert to run", fy_config_path(index), f->boundary_ratio);
    return FY_OK;
}

static fy_status read_settings(const fy_model *m, t2v_factors *f)
{
    const fy_config *index = fy_model_index(m);
    FY_TRY(fy_config_bool_or(index, "expand_timesteps", false, &f->expand_timesteps));
    size_t n = fy_config_key_count(index);
    for (size_t i = 0; i < n; i++) {
        const char *key = fy_config_key_at(index, i);
        if (key[0] == '_' || is_component_key(key) || strcmp(key, "boundary_ratio") == 0 ||
            strcmp(key, "expand_timesteps") == 0)
            continue;
        FY_TRY(unknown_key(index, key));
    }
    return read_boundary(m, f);
}

/* Factors divide and multiply sizes: each is bounded before any arithmetic. */
#define FY_FACTOR_MAX 64

/* diffusers reads the factors from the config; the VAE's layers decide the
 * real ratios, so a config that disagrees would give a video of another size. */
static fy_status check_vae_ratios(const fy_config *cfg, const t2v_factors *f)
{
    int64_t mult[8];
    bool down[8];
    size_t levels = 0, n_down = 0;
    int64_t patch = 1;
    FY_TRY(fy_config_int_array(cfg, "dim_mult", mult, 8, &levels));
    FY_TRY(fy_config_bool_array(cfg, "temperal_downsample", down, 8, &n_down));
    FY_TRY(fy_config_int_range_or(cfg, "patch_size", 1, 1, FY_FACTOR_MAX, &patch));
    if (levels < 1 || n_down != levels - 1)
        return fy_error(FY_ERR_FORMAT, "%s: \"temperal_downsample\" needs one entry per \"dim_mult\" level but the last",
                        fy_config_path(cfg));
    int64_t spatial = patch << (levels - 1), temporal = 1;
    for (size_t i = 0; i < n_down; i++) temporal <<= down[i];
    if (f->spatial != spatial)
        return fy_error(FY_ERR_FORMAT, "%s: key \"scale_factor_spatial\" is %lld but the VAE's layers downsample %lldx; "
                        "set it to %lld", fy_config_path(cfg), (long long)f->spatial, (long long)spatial,
                        (long long)spatial);
    if (f->temporal != temporal)
        return fy_error(FY_ERR_FORMAT, "%s: key \"scale_factor_temporal\" is %lld but the VAE's layers downsample %lldx; "
                        "set it to %lld", fy_config_path(cfg), (long long)f->temporal, (long long)temporal,
                        (long long)temporal);
    return FY_OK;
}

static fy_status read_factors(const fy_model *m, t2v_factors *f)
{
    const fy_component *vae = fy_model_component(m, "vae");
    const fy_component *dit = fy_model_component(m, "transformer");
    if (!vae->config || !dit->config)
        return fy_error(FY_ERR_FORMAT, "%s: the vae or transformer has no config.json", fy_model_dir(m));
    FY_TRY(fy_config_int_range_or(vae->config, "scale_factor_spatial", 8, 1, FY_FACTOR_MAX, &f->spatial));
    FY_TRY(fy_config_int_range_or(vae->config, "scale_factor_temporal", 4, 1, FY_FACTOR_MAX, &f->temporal));
    FY_TRY(fy_config_int_range(vae->config, "z_dim", 1, 1024, &f->z_dim));
    FY_TRY(check_vae_ratios(vae->config, f));
    int64_t patch[3];
    FY_TRY(fy_config_int_array_range(dit->config, "patch_size", 1, FY_FACTOR_MAX, patch, 3));
    f->patch_h = patch[1];
    f->patch_w = patch[2];
    return FY_OK;
}

/* The experts run on the same latents and text: their interfaces must agree. */
static fy_status check_experts_agree(const fy_model *m)
{
    const fy_component *a = fy_model_component(m, "transformer"), *b = fy_model_component(m, "transformer_2");
    fy_error_clear();
    if (!b) return FY_OK;
    if (!a->config || !b->config) return fy_error(FY_ERR_FORMAT, "%s: an expert has no config.json", fy_model_dir(m));
    static const char *const keys[] = {"in_channels", "out_channels", "text_dim"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        int64_t x, y;
        FY_TRY(fy_config_int(a->config, keys[i], &x));
        FY_TRY(fy_config_int(b->config, keys[i], &y));
        if (x != y)
            return fy_error(FY_ERR_FORMAT, "%s: %s %lld, but transformer's is %lld: the two experts must share their "
                            "inputs and outputs", fy_config_path(b->config), keys[i], (long long)y, (long long)x);
    }
    int64_t ia = 0, ib = 0;
    FY_TRY(fy_config_int_or(a->config, "image_dim", 0, &ia));
    FY_TRY(fy_config_int_or(b->config, "image_dim", 0, &ib));
    if (ia != ib)
        return fy_error(FY_ERR_FORMAT, "%s: image_dim %lld, but transformer's is %lld: the two experts must read the "
                        "same image tokens", fy_config_path(b->config), (long long)ib, (long long)ia);
    int64_t pa[3], pb[3];
    size_t na = 0, nb = 0;
    FY_TRY(fy_config_int_array(a->config, "patch_size", pa, 3, &na));
    FY_TRY(fy_config_int_array(b->config, "patch_size", pb, 3, &nb));
    if (na != nb || memcmp(pa, pb, na * sizeof *pa) != 0)
        return fy_error(FY_ERR_FORMAT, "%s: patch_size differs from transformer's: the two experts must share it",
                        fy_config_path(b->config));
    return FY_OK;
}

static fy_status check_guidance_2(const fy_model *m, const fy_wan_t2v_params *p, const t2v_factors *f)
{
    if (isnan(p->guidance_scale_2)) return FY_OK;
    if (isnan(f->boundary_ratio))
        return fy_error(FY_ERR_INVALID, "--guidance-scale-2 %g: %s has one transformer (no boundary_ratio in "
                        "model_index.json); the second scale is for Wan2.2's low-noise expert", p->guidance_scale_2,
                        fy_model_dir(m));
    if (!isfinite(p->guidance_scale_2) || fabs(p->guidance_scale_2) > FY_WAN_GUIDANCE_MAX)
        return fy_error(FY_ERR_INVALID, "--guidance-scale-2 %g: use a finite scale from -10000 to 10000 (Wan2.2 "
                        "T2V-A14B's is 3.0)", p->guidance_scale_2);
    return FY_OK;
}

/* diffusers' WanPipeline: height and width must be multiples of 16, then
 * are rounded down to multiples of the VAE's factor times the patch (Wan2.2
 * TI2V: 32), and num_frames to 4k + 1 (num_frames // 4 * 4 + 1), each with
 * a warning. */
static fy_status size_request(const t2v_factors *f, fy_wan_t2v_params *p, bool warn)
{
    int64_t mh = f->spatial * f->patch_h, mw = f->spatial * f->patch_w;
    if (p->height <= 0 || p->width <= 0 || p->height % 16 || p->width % 16 || p->height > 8192 || p->width > 8192)
        return fy_error(FY_ERR_INVALID,
                        "--height %d --width %d: both must be positive multiples of 16, at most 8192 (then rounded "
                        "down to multiples of %lld x %lld: the VAE's %lldx downsampling times the transformer's "
                        "patch); try --height %lld --width %lld",
                        p->height, p->width, (long long)mh, (long long)mw, (long long)f->spatial,
                        (long long)(p->height > mh ? p->height / mh * mh : mh),
                        (long long)(p->width > mw ? p->width / mw * mw : mw));
    int height = (int)(p->height / mh * mh), width = (int)(p->width / mw * mw);
    if (!height || !width)
        return fy_error(FY_ERR_INVALID, "--height %d --width %d: below one latent patch of %lld x %lld pixels; try "
                        "--height %lld --width %lld", p->height, p->width, (long long)mh, (long long)mw,
                        (long long)mh, (long long)mw);
    if (warn && (height != p->height || width != p->width))
        fy_warn("--height %d --width %d: rounded down to %d x %d, multiples of %lld x %lld (the VAE's %lldx "
                "downsampling times the transformer's patch), as diffusers does", p->height, p->width, height, width,
                (long long)mh, (long long)mw, (long long)f->spatial);
    p->height = height;
    p->width = width;
    if (p->num_frames < 1 || p->num_frames > 4096)
        return fy_error(FY_ERR_INVALID, "--num-frames %d: use 1 to 4096 frames (%lld*k + 1)", p->num_frames,
                        (long long)f->temporal);
    int frames = (int)((p->num_frames - 1) % f->temporal ? p->num_frames / f->temporal * f->temporal + 1
                                                         : p->num_frames);
    if (warn && frames != p->num_frames)
        fy_warn("--num-frames %d: Wan needs %lld*k + 1 frames; using %d, as diffusers does", p->num_frames,
                (long long)f->temporal, frames);
    p->num_frames = frames;
    return FY_OK;
}

/* Checks the request; sized gets it with diffusers' size rounding (warned
 * about when warn). */
static fy_status check_request(const fy_model *m, const fy_wan_t2v_params *p, t2v_factors *f,
                               fy_wan_t2v_params *sized, bool warn)
{
    *sized = *p;
    FY_TRY(check_family(m));
    FY_TRY(read_factors(m, f));
    FY_TRY(read_settings(m, f));
    FY_TRY(fy_i2v_check(m, p, f->expand_timesteps, f->need_image, &f->i2v, &f->clip));
    FY_TRY(check_experts_agree(m));
    FY_TRY(check_guidance_2(m, p, f));
    if (!p->prompt) return fy_error(FY_ERR_INVALID, "no prompt given (--prompt \"...\")");
    if (p->steps < 1 || p->steps > 10000)
        return fy_error(FY_ERR_INVALID, "--steps %d: use 1 to 10000 steps", p->steps);
    if (p->max_sequence_length < 1 || p->max_sequence_length > 4096)
        return fy_error(FY_ERR_INVALID, "max_sequence_length %d: use 1 to 4096", p->max_sequence_length);
    /* inf or a huge scale turns every latent into inf/NaN: an all-black video. */
    if (!isfinite(p->guidance_scale) || fabs(p->guidance_scale) > FY_WAN_GUIDANCE_MAX)
        return fy_error(FY_ERR_INVALID, "--guidance-scale %g: use a finite scale from -10000 to 10000 (the model "
                        "card's is 5.0)", p->guidance_scale);
    return size_request(f, sized, warn);
}

fy_status fy_wan_t2v_check(const char *model_dir, const fy_wan_t2v_params *p)
{
    return fy_wan_t2v_check_with(model_dir, NULL, p);
}

fy_status fy_wan_t2v_check_with(const char *model_dir, const fy_run_options *o, const fy_wan_t2v_params *p)
{
    fy_model *m = NULL;
    fy_model_sources src = fy_run_options_sources(o);
    FY_TRY(fy_model_open_sources(model_dir, &src, &m));
    t2v_factors f = {.need_image = true};
    fy_wan_t2v_params sized;
    fy_status s = check_request(m, p, &f, &sized, false);
    fy_model_free(m);
    return s;
}

/* ---- Engines and models ------------------------------------------------ */

static fy_status add_engine(t2v_run *r, fy_engine *e, const char *name)
{
    r->engines[r->n_engines] = e;
    snprintf(r->engine_names[r->n_engines], sizeof r->engine_names[0], "%s", name);
    r->n_engines++;
    return FY_OK;
}

static fy_status engine_on_device(t2v_run *r, int device, fy_engine **out)
{
    char name[16];
    snprintf(name, sizeof name, "%s:%d", fy_device_kind_name(r->options->device), device);
    for (int i = 0; i < r->n_engines; i++)
        if (strcmp(r->engine_names[i], name) == 0) return *out = r->engines[i], FY_OK;
    fy_run_options o = *r->options;
    o.device_index = device;
    /* The run writes one trace of all its engines (write_trace); each
     * engine writing its own to the same path would keep only the last. */
    o.trace_path = NULL;
    int devices[FY_MAX_DEVICES];
    if (o.device_map == FY_DEVICE_MAP_AUTO && fy_device_map_devices(&o, devices) == 1) {
        /* accelerate's "auto" on one device: what fits stays, the rest runs
         * from the host; here the planner decides which blocks and streams
         * the others ahead of use. */
        o.vram_budget = o.max_memory[device];
        o.vram_budget_auto = !o.vram_budget;
    }
    FY_TRY(fy_engine_create(&o, out));
    return add_engine(r, *out, name);
}

static uint64_t component_bytes(const t2v_run *r, const char *name)
{
    fy_weight_stats ws;
    return fy_component_stats(fy_model_component(r->model, name), &ws) == FY_OK ? ws.bytes : 0;
}

/* --device-map balanced: text encoder, transformer and VAE over the devices by size. */
static fy_status place_balanced(t2v_run *r)
{
    static const char *const names[3] = {"transformer", "text_encoder", "vae"};
    uint64_t bytes[3];
    int device_of[3];
    for (int i = 0; i < 3; i++) bytes[i] = component_bytes(r, names[i]);
    /* The experts share the transformer's engine (one runs at a time). */
    if (fy_model_component(r->model, "transformer_2")) bytes[0] += component_bytes(r, "transformer_2");
    fy_error_clear();
    FY_TRY(fy_device_map_balanced(r->options, bytes, 3, device_of));
    FY_TRY(engine_on_device(r, device_of[0], &r->device));
    FY_TRY(engine_on_device(r, device_of[1], &r->text_engine));
    return engine_on_device(r, device_of[2], &r->vae_engine);
}

/* On cpu the weights are read in place: a device budget would be ignored in
 * silence, so say so (a warning, not an error: scripts pass one set of flags
 * to every device). */
static void warn_device_budget_on_cpu(const fy_run_options *o)
{
    bool budget = o->vram_budget || o->vram_budget_auto;
    for (int d = 0; d < FY_MAX_DEVICES; d++) budget = budget || o->max_memory[d];
    if (o->device == FY_DEVICE_CPU && budget)
        fy_warn("--max-memory DEV=SIZE and --vram-budget budget a device: on --device cpu the weights are read in "
                "place and they do nothing (use --device emu to rehearse a GPU's budget)");
}

/* Options a script may pass that change nothing in this pipeline: said, not ignored. */
static void warn_inert_options(const fy_run_options *o)
{
    if (o->record_stream)
        fy_warn("--record-stream: ferry's copy stream orders each slot's reuse with events already (what "
                "record_stream does for PyTorch's caching allocator); it changes nothing here");
}

static fy_status create_engines(t2v_run *r)
{
    const fy_run_options *o = r->options;
    if (!r->quiet) warn_device_budget_on_cpu(o);
    if (!r->quiet) warn_inert_options(o);
    if (o->device_map == FY_DEVICE_MAP_BALANCED) {
        FY_TRY(place_balanced(r));
    } else {
        /* --device-map auto over several devices: one engine on the first,
         * which places blocks on the others itself (src/mem/spill.c). */
        int devices[FY_MAX_DEVICES];
        int first = o->device_map == FY_DEVICE_MAP_AUTO ? (fy_device_map_devices(o, devices), devices[0])
                                                        : o->device_index;
        FY_TRY(engine_on_device(r, first, &r->device));
        r->text_engine = r->vae_engine = r->device;
    }
    bool on_host = o->device == FY_DEVICE_CPU;
    fy_engine *host = NULL;
    if ((o->text_encoder_cpu_offload || o->vae_cpu_offload) && !on_host) {
        FY_TRY(fy_engine_create_host(o, &host));
        FY_TRY(add_engine(r, host, "host"));
    }
    r->image_engine = r->text_engine;
    if (o->image_encoder_cpu_offload && !on_host && !host) {
        FY_TRY(fy_engine_create_host(o, &host));
        FY_TRY(add_engine(r, host, "host"));
    }
    if (o->image_encoder_cpu_offload && !on_host) r->image_engine = host;
    if (o->text_encoder_cpu_offload && !on_host) r->text_engine = host;
    if (o->vae_cpu_offload && !on_host) r->vae_engine = host;
    return FY_OK;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static fy_wan_dit_shape dit_shape(const t2v_run *r, int64_t batch)
{
    fy_wan_dit_shape s = {batch, r->latent_shape[2], r->latent_shape[3], r->latent_shape[4], r->text_len, 0, 0};
    s.image_len = r->i2v.image_len;
    /* Per-token timesteps: text to video, every token at the step's t;
     * Wan2.2 TI2V's image, the first frame's tokens at 0 and the rest at t. */
    if (r->expand_timesteps) s.timestep_runs = r->i2v.mode == FY_I2V_FIRST_FRAME ? 2 * batch : batch;
    return s;
}

static int dit_batch(const t2v_run *r)
{
    return r->guidance && r->options->cfg_batch ? 2 : 1;
}

static int n_cross_kv(const t2v_run *r)
{
    return r->guidance && !r->options->cfg_batch ? 2 : 1;
}

/* Keeping the text's K/V for every block saves each step after the first
 * two GEMMs per block, but costs device memory all run long (1.56 GiB for
 * the 14B): when the plan fits only without it, compute them every step. */
static uint64_t transformer_need(t2v_run *r, fy_engine *e, uint64_t others)
{
    fy_wan_dit_shape ds = dit_shape(r, dit_batch(r));
    /* One expert runs at a time, and the first's K/V are freed at the switch. */
    uint64_t work = 0, kv = 0;
    for (int x = 0; x < 2 && r->dits[x]; x++) {
        work = max_u64(work, fy_wan_dit_activation_bytes(r->dits[x], &ds));
        kv = max_u64(kv, (uint64_t)n_cross_kv(r) * fy_wan_dit_context_bytes_for(r->dits[x], &ds));
    }
    if (fy_engine_fits(e, max_u64(others, work + kv))) return max_u64(others, work + kv);
    /* Without them either way: if nothing fits even so, prepare's error then
     * names the true minimum. */
    r->no_cross_kv = true;
    char a[32];
    if (fy_engine_fits(e, max_u64(others, work)))
        fy_info("the text's keys and values for every block (%s) do not fit beside the plan: the transformer "
                "computes them at each step instead (raise the budget to keep them)", fy_format_bytes(kv, a, sizeof a));
    return max_u64(others, work);
}

static int expert_of_step(const t2v_run *r, int i);

/* What the planner's first estimate needs: each block's FLOPs at this size
 * and, with two experts, how many passes each makes (the schedule's split at
 * the boundary; two a step when the guidance branches run apart). */
static fy_status declare_work(t2v_run *r, fy_engine *e)
{
    fy_wan_dit_shape ds = dit_shape(r, dit_batch(r));
    int passes[2] = {0, 0}, per_step = r->guidance && !r->options->cfg_batch ? 2 : 1;
    size_t n = fy_scheduler_num_steps(r->scheduler);
    for (size_t i = 0; i < n; i++) passes[expert_of_step(r, (int)i)] += per_step;
    for (int x = 0; x < 2 && r->dits[x]; x++) {
        FY_TRY(fy_wan_dit_declare_flops(r->dits[x], &ds, !r->no_cross_kv));
        if (r->dits[1]) FY_TRY(fy_engine_set_component_steps(e, x ? "transformer_2" : "transformer", passes[x]));
    }
    return FY_OK;
}

/* Each engine reserves the largest activation need among the stages it runs
 * (the stages run one after another). */
static fy_status reserve_and_prepare(t2v_run *r, const fy_wan_vae_decode_shape *vs)
{
    uint64_t te = fy_umt5_activation_bytes(r->text_encoder, 2, r->text_len);
    uint64_t vae = fy_wan_vae_decode_activation_bytes(r->vae, vs, r->options);
    /* the image's encode, before the denoising */
    vae = max_u64(vae, fy_i2v_condition_bytes(&r->i2v, r->vae, r->params, r->options));
    for (int i = 0; i < r->n_engines; i++) {
        fy_engine *e = r->engines[i];
        uint64_t need = 0;
        if (e == r->text_engine) need = max_u64(need, te);
        if (e == r->image_engine && r->i2v.clip) need = max_u64(need, fy_i2v_encoder_bytes(&r->i2v));
        if (e == r->vae_engine) need = max_u64(need, vae);
        if (e == r->device) need = transformer_need(r, e, need);
        if (e == r->device) FY_TRY(declare_work(r, e));
        FY_TRY(fy_engine_reserve(e, need));
        fy_status s = fy_engine_prepare(e);
        if (s != FY_OK) return fy_error_prefix(s, "--device %s: ", r->engine_names[i]);
    }
    return FY_OK;
}

/* "text_encoder, transformer": the components engine e computes. */
static void engine_holds(const t2v_run *r, const fy_engine *e, char *buf, size_t n)
{
    snprintf(buf, n, "%s%s%s%s%s", e == r->image_engine && r->i2v.clip ? "image_encoder " : "",
             e == r->text_engine ? "text_encoder " : "", e == r->device ? "transformer " : "",
             e == r->device && r->dits[1] ? "transformer_2 " : "", e == r->vae_engine ? "vae " : "");
    size_t len = strlen(buf);
    if (len) buf[len - 1] = '\0';
}

static const char *engine_name(const t2v_run *r, const fy_engine *e)
{
    for (int i = 0; i < r->n_engines; i++)
        if (r->engines[i] == e) return r->engine_names[i];
    return "the device";
}

/* Blocks in the transformer's engine: all of them, and the most any one
 * component has (groups move within a component). */
static void count_blocks(const fy_engine *e, int *total, int *largest)
{
    *total = *largest = 0;
    int n = fy_engine_group_count(e);
    for (int i = 0; i < n; i++) {
        fy_group_info a, b;
        if (fy_engine_group_info(e, i, &a) != FY_OK || a.kind != FY_GROUP_BLOCK) continue;
        (*total)++;
        int same = 0;
        for (int j = 0; j < n; j++)
            same += fy_engine_group_info(e, j, &b) == FY_OK && b.kind == FY_GROUP_BLOCK &&
                    strcmp(a.component, b.component) == 0;
        if (same > *largest) *largest = same;
    }
}

/* The engine clamps --resident-blocks and --num-blocks-per-group to the
 * blocks it has; a larger number is likely a typo or another model's, so
 * say so rather than clamp in silence. */
static void warn_block_counts(const t2v_run *r)
{
    const fy_run_options *o = r->options;
    if (r->quiet || (o->resident_blocks <= 0 && o->num_blocks_per_group <= 1)) return;
    int total, largest;
    count_blocks(r->device, &total, &largest);
    char holds[64];
    engine_holds(r, r->device, holds, sizeof holds);
    if (o->resident_blocks > total)
        fy_warn("--resident-blocks %d: %s holds only %d blocks (%s); keeping all %d resident", o->resident_blocks,
                engine_name(r, r->device), total, holds, total);
    if (o->num_blocks_per_group > largest)
        fy_warn("--num-blocks-per-group %d: the largest component on %s has %d blocks; each component's blocks "
                "move as one group", o->num_blocks_per_group, engine_name(r, r->device), largest);
}

/* The video's schedule: its steps and shift (the config's unless given). */
static fy_status make_scheduler(t2v_run *r)
{
    fy_scheduler_free(r->scheduler);
    r->scheduler = NULL;
    FY_TRY(fy_scheduler_create_from_config(fy_model_component(r->model, "scheduler")->config, &r->scheduler));
    if (r->params->flow_shift > 0) FY_TRY(fy_scheduler_set_shift(r->scheduler, r->params->flow_shift));
    return fy_scheduler_set_timesteps(r->scheduler, (size_t)r->params->steps);
}

/* The prompt's cross-attention K/V caches, per expert, when the plan keeps them. */
static fy_status create_cross_kv(t2v_run *r)
{
    for (int x = 0; x < 2 && r->dits[x]; x++)
        for (int i = 0; i < n_cross_kv(r) && !r->no_cross_kv; i++)
            FY_TRY(fy_wan_dit_context_create(r->dits[x], &r->cross_kv[x][i]));
    return FY_OK;
}

/* The transformer takes what the folder's pipeline gives it: Wan2.1 I2V
 * and Wan2.2 I2V-A14B, the latents + mask + condition channels (and, with
 * image_dim, the image encoder's tokens); text to video and Wan2.2 TI2V's
 * image, the latents alone. */
static fy_status check_transformer_kind(const t2v_run *r, const fy_wan_dit_config *dc, const t2v_factors *f)
{
    const char *path = fy_config_path(fy_model_component(r->model, "transformer")->config);
    if (f->i2v != FY_I2V_CONCAT && dc->image_dim)
        return fy_error(FY_ERR_FORMAT, "%s: an image-to-video transformer (image_dim %lld) in a text-to-video folder "
                        "(WanPipeline): use the I2V folder's model_index.json", path, (long long)dc->image_dim);
    if (f->i2v == FY_I2V_FIRST_FRAME && (dc->patch[0] != 1 || dc->patch[1] != 2 || dc->patch[2] != 2))
        return fy_error(FY_ERR_UNSUPPORTED, "%s: patch_size [%lld, %lld, %lld]: diffusers' expand_timesteps image to "
                        "video masks the timesteps with a stride of 2 (patch_size [1, 2, 2], Wan2.2 TI2V's); other "
                        "patches are not run", path, (long long)dc->patch[0], (long long)dc->patch[1],
                        (long long)dc->patch[2]);
    if (f->i2v != FY_I2V_CONCAT) return FY_OK;
    int64_t want = 2 * f->z_dim + FY_WAN_I2V_MASK_CHANNELS;
    if (dc->image_dim != r->i2v.image_dim)
        return fy_error(FY_ERR_FORMAT, "%s: image_dim %lld, but the image encoder's tokens are %lld wide", path,
                        (long long)dc->image_dim, (long long)r->i2v.image_dim);
    if (dc->in_channels != want || dc->out_channels != f->z_dim)
        return fy_error(FY_ERR_FORMAT, "%s: in_channels %lld, out_channels %lld: an image-to-video transformer takes "
                        "%lld channels (latents, mask, condition) and gives %lld", path, (long long)dc->in_channels,
                        (long long)dc->out_channels, (long long)want, (long long)f->z_dim);
    return FY_OK;
}

static fy_status load_models(t2v_run *r, const t2v_factors *f)
{
    const fy_model *m = r->model;
    int threads = r->options->threads;
    hook_stage(r, "loading tokenizer");
    FY_TRY(fy_tokenizer_load(fy_model_component(m, "tokenizer")->dir, &r->tokenizer));
    hook_stage(r, "loading text encoder");
    FY_TRY(fy_umt5_load(fy_model_component(m, "text_encoder"), r->text_engine, &r->text_encoder));
    FY_TRY(fy_umt5_set_threads(r->text_encoder, threads));
    r->i2v.mode = f->i2v;
    r->i2v.clip = f->clip;
    FY_TRY(fy_i2v_load(&r->i2v, m, r->image_engine, threads));
    if (!f->clip && r->options->image_encoder_cpu_offload && !r->quiet)
        fy_warn("--image-encoder-cpu-offload: %s runs no image encoder (%s); the flag does nothing", fy_model_dir(m),
                f->i2v == FY_I2V_OFF ? "text to video" : "its transformer reads no image tokens");
    hook_stage(r, "loading transformer");
    FY_TRY(fy_wan_dit_load(fy_model_component(m, "transformer"), r->device, &r->dits[0]));
    FY_TRY(fy_wan_dit_set_threads(r->dits[0], threads));
    if (!isnan(f->boundary_ratio)) {
        /* The low-noise expert: its own component and groups in the same
         * engine, declared after the high-noise one (the order they run). */
        FY_TRY(fy_wan_dit_load(fy_model_component(m, "transformer_2"), r->device, &r->dits[1]));
        FY_TRY(fy_wan_dit_set_threads(r->dits[1], threads));
        /* Timesteps only fall: once transformer_2 runs, transformer is done,
         * and transformer_2's resident weights take its device memory. */
        FY_TRY(fy_engine_declare_successor(r->device, "transformer", "transformer_2"));
    }
    hook_stage(r, "loading vae");
    /* Image to video encodes the condition video too. */
    FY_TRY(fy_wan_vae_load(fy_model_component(m, "vae"), r->vae_engine, f->i2v != FY_I2V_OFF ? FY_WAN_VAE_BOTH : FY_WAN_VAE_DECODER,
                           &r->vae));
    FY_TRY(fy_wan_vae_set_threads(r->vae, threads));
    FY_TRY(make_scheduler(r));
    int64_t train_steps = 1000;
    FY_TRY(fy_config_int_or(fy_model_component(m, "scheduler")->config, "num_train_timesteps", 1000, &train_steps));
    r->boundary = f->boundary_ratio * (double)train_steps; /* NAN stays NAN */

    const fy_wan_dit_config *dc = fy_wan_dit_get_config(r->dits[0]);
    FY_TRY(check_transformer_kind(r, dc, f));
    r->text_dim = dc->text_dim;
    r->text_len = r->params->max_sequence_length;
    int64_t shape[5] = {1, f->z_dim, (r->params->num_frames - 1) / f->temporal + 1,
                        r->params->height / f->spatial, r->params->width / f->spatial};
    memcpy(r->latent_shape, shape, sizeof shape);
    r->latent_numel = shape[1] * shape[2] * shape[3] * shape[4];
    r->expand_timesteps = f->expand_timesteps;
    r->tokens = shape[2] / dc->patch[0] * (shape[3] / dc->patch[1]) * (shape[4] / dc->patch[2]);
    for (int x = 0; x < 2 && r->dits[x]; x++)
        FY_TRY(fy_wan_dit_check_shape(r->dits[x],
                                      &(fy_wan_dit_shape){1, shape[2], shape[3], shape[4], r->text_len, 0,
                                                          r->i2v.image_len}));

    warn_block_counts(r);
    fy_wan_vae_decode_shape vs = {1, shape[2], shape[3], shape[4]};
    /* Pinning the host copy and uploading resident weights: the slow part of loading. */
    hook_stage(r, "loading weights into place");
    FY_TRY(reserve_and_prepare(r, &vs));
    return create_cross_kv(r);
}

/* ---- Stages ------------------------------------------------------------- */

static fy_status clean_prompts(const t2v_run *r, char **prompt, char **negative)
{
    const char *neg = r->params->negative_prompt ? r->params->negative_prompt : FY_WAN_DEFAULT_NEGATIVE_PROMPT;
    FY_TRY(fy_prompt_clean(r->params->prompt, prompt));
    return fy_prompt_clean(neg, negative);
}

static fy_status encode_text(t2v_run *r)
{
    hook_stage(r, "text encoder");
    char *texts[2] = {NULL, NULL};
    int64_t n = r->text_len;
    int64_t *ids = malloc(sizeof *ids * 2 * (size_t)n);
    int64_t *mask = malloc(sizeof *mask * 2 * (size_t)n);
    r->embeds = malloc(sizeof *r->embeds * 2 * (size_t)(n * r->text_dim));
    fy_status s = ids && mask && r->embeds ? FY_OK : fy_error(FY_ERR_NOMEM, "out of host memory for the prompt");
    if (s == FY_OK) s = clean_prompts(r, &texts[0], &texts[1]);
    /* The negative prompt is encoded even without guidance only when used. */
    int count = r->guidance ? 2 : 1;
    static const char *const labels[2] = {"prompt", "negative prompt"};
    if (s == FY_OK)
        s = fy_umt5_encode_prompts(r->text_encoder, r->tokenizer, (const char *const *)texts, labels, count,
                                   (int)n, r->embeds, ids, mask, NULL);
    if (s == FY_OK) {
        int64_t shape[3] = {1, n, r->text_dim};
        hook_ids(r, "prompt.input_ids", ids, n);
        hook_ids(r, "prompt.attention_mask", mask, n);
        hook_tensor(r, "prompt_embeds", r->embeds, 3, shape);
        if (r->guidance) {
            hook_ids(r, "negative_prompt.input_ids", ids + n, n);
            hook_ids(r, "negative_prompt.attention_mask", mask + n, n);
            hook_tensor(r, "negative_prompt_embeds", r->embeds + n * r->text_dim, 3, shape);
        }
    }
    free(texts[0]);
    free(texts[1]);
    free(ids);
    free(mask);
    return s;
}

static void hook_tensor_cb(void *user, const char *name, const float *data, int ndim, const int64_t *shape)
{
    hook_tensor(user, name, data, ndim, shape);
}

/* Image to video: the image's CLIP tokens and the condition, once per video. */
static fy_status encode_image(t2v_run *r)
{
    if (r->i2v.mode == FY_I2V_OFF) return FY_OK;
    hook_stage(r, "image encoder");
    double t0 = fy_backend_now();
    FY_TRY(fy_i2v_encode(&r->i2v, r->params, 2, r->vae, r->options, r->latent_shape, hook_tensor_cb, r));
    r->report.image_s = fy_backend_now() - t0;
    return FY_OK;
}

static fy_status init_latents(t2v_run *r)
{
    r->latents = malloc(sizeof *r->latents * (size_t)r->latent_numel);
    if (!r->latents) return fy_error(FY_ERR_NOMEM, "out of host memory for the latents");
    if (r->params->initial_latents) {
        memcpy(r->latents, r->params->initial_latents, sizeof *r->latents * (size_t)r->latent_numel);
        return FY_OK;
    }
    /* randn_tensor(shape, generator=torch.Generator("cpu").manual_seed(seed)) */
    return fy_randn(r->params->seed, r->latents, (size_t)r->latent_numel);
}

static void guide(const float *cond, const float *uncond, double scale, float *out, int64_t n)
{
    float g = (float)scale;
    for (int64_t i = 0; i < n; i++) out[i] = uncond[i] + g * (cond[i] - uncond[i]);
}

/* The per-token timesteps [batch, tokens] of expand_timesteps: diffusers'
 * mask (all ones in text to video; 0 at the image's frame) times t. */
static void token_timesteps(const t2v_run *r, const fy_wan_dit *dit, float t, int64_t batch, float *out)
{
    if (r->i2v.mode == FY_I2V_FIRST_FRAME) {
        fy_i2v_token_timesteps(r->latent_shape, fy_wan_dit_get_config(dit)->patch, t, batch, out);
        return;
    }
    for (int64_t i = 0; i < batch * r->tokens; i++) out[i] = t;
}

/* One transformer pass over `batch` copies of the latents with the given
 * text rows; pred gets [batch, C, F', H', W']. */
static fy_status dit_pass(t2v_run *r, fy_wan_dit *dit, int64_t batch, const float *text, fy_wan_dit_context *kv,
                          float timestep, float *input, float *pred)
{
    for (int64_t b = 1; b < batch; b++)
        memcpy(input + b * r->latent_numel, r->latents, sizeof *input * (size_t)r->latent_numel);
    memcpy(input, r->latents, sizeof *input * (size_t)r->latent_numel);
    fy_wan_dit_shape shape = dit_shape(r, batch);
    /* image to video: [latents; mask; condition] per item, or the image as the first frame */
    if (r->i2v.mode != FY_I2V_OFF) fy_i2v_input(&r->i2v, r->latents, r->latent_shape, batch, input);
    if (!r->expand_timesteps) {
        float t[2] = {timestep, timestep};
        if (r->i2v.clip) return fy_wan_dit_forward_image(dit, &shape, input, t, text, r->i2v.image_embeds, kv, pred);
        return fy_wan_dit_forward(dit, &shape, input, t, text, kv, pred);
    }
    float *t = malloc(sizeof *t * (size_t)(batch * r->tokens));
    if (!t) return fy_error(FY_ERR_NOMEM, "out of host memory for the per-token timesteps");
    token_timesteps(r, dit, timestep, batch, t);
    fy_status s = fy_wan_dit_forward(dit, &shape, input, t, text, kv, pred);
    free(t);
    return s;
}

/* What the transformer received: [1, tokens] timesteps; with the image as
 * the first frame, its input [1, z, F', H', W'] too. */
static void hook_token_inputs(const t2v_run *r, int i, const fy_wan_dit *dit, float t)
{
    if (!r->hooks || !r->hooks->tensor) return;
    char name[64];
    float *row = malloc(sizeof *row * (size_t)r->tokens);
    if (row) {
        token_timesteps(r, dit, t, 1, row);
        int64_t shape[2] = {1, r->tokens};
        snprintf(name, sizeof name, "step%d.timestep", i);
        hook_tensor(r, name, row, 2, shape);
    }
    free(row);
    if (r->i2v.mode != FY_I2V_FIRST_FRAME) return;
    float *input = malloc(sizeof *input * (size_t)r->latent_numel);
    if (input) {
        fy_i2v_blend(&r->i2v, r->latents, r->latent_shape, input);
        snprintf(name, sizeof name, "step%d.latent_model_input", i);
        hook_tensor(r, name, input, 5, r->latent_shape);
    }
    free(input);
}

static void hook_step(const t2v_run *r, int i, const char *what, const float *data)
{
    char name[64];
    snprintf(name, sizeof name, "step%d.%s", i, what);
    hook_tensor(r, name, data, 5, r->latent_shape);
}

static void hook_latents(const t2v_run *r, int i)
{
    char name[32];
    snprintf(name, sizeof name, "latents.%d", i);
    hook_tensor(r, name, r->latents, 5, r->latent_shape);
}

/* diffusers: the high-noise `transformer` while t >= boundary (the int64
 * timestep against the float boundary; equality included), else
 * `transformer_2`. Both guidance branches of a step use the same expert. */
static int expert_of_step(const t2v_run *r, int i)
{
    if (isnan(r->boundary)) return 0;
    /* UniPC's int64 timesteps are exact as floats; Euler's are float32. */
    return (double)fy_scheduler_timesteps(r->scheduler)[i] >= r->boundary ? 0 : 1;
}

/* guidance_scale_2 defaults to guidance_scale; whether guidance runs at all
 * depends on guidance_scale alone, in both stages. */
static double guidance_of(const t2v_run *r, int expert)
{
    if (expert == 1 && !isnan(r->params->guidance_scale_2)) return r->params->guidance_scale_2;
    return r->params->guidance_scale;
}

static void free_cross_kv(t2v_run *r, int expert)
{
    for (int i = 0; i < 2; i++) {
        fy_wan_dit_context_free(r->cross_kv[expert][i]);
        r->cross_kv[expert][i] = NULL;
    }
}

/* Timesteps only fall, so the high-noise expert never runs again: its
 * text K/V go back to the engine for the low-noise expert's. */
static void enter_expert(t2v_run *r, int i, int expert)
{
    if (r->expert >= 0 && r->expert != expert) {
        free_cross_kv(r, r->expert);
        if (r->report.switch_step < 0) r->report.switch_step = i;
        fy_info("step %d: switching from %s to %s (timestep %g, boundary %g)", i,
                r->expert ? "transformer_2" : "transformer", expert ? "transformer_2" : "transformer",
                (double)fy_scheduler_timesteps(r->scheduler)[i], r->boundary);
    }
    r->expert = expert;
    r->report.expert_steps[expert]++;
}

static fy_status denoise_step(t2v_run *r, int i, float *input, float *pred, float *guided)
{
    float t = fy_scheduler_timesteps(r->scheduler)[i];
    int64_t n = r->latent_numel, row = r->text_len * r->text_dim;
    int x = expert_of_step(r, i);
    enter_expert(r, i, x);
    fy_wan_dit *dit = r->dits[x];
    fy_wan_dit_context **kv = r->cross_kv[x];
    /* The engine prefetches the next expert's first blocks during this
     * expert's last pass (the uncond one of two). */
    bool last = x == 0 && i + 1 < (int)fy_scheduler_num_steps(r->scheduler) && expert_of_step(r, i + 1) == 1;
    if (!r->guidance) {
        if (last) FY_TRY(fy_engine_hand_over(r->device, "transformer", "transformer_2"));
        FY_TRY(dit_pass(r, dit, 1, r->embeds, kv[0], t, input, guided));
    } else if (r->options->cfg_batch) {
        if (last) FY_TRY(fy_engine_hand_over(r->device, "transformer", "transformer_2"));
        FY_TRY(dit_pass(r, dit, 2, r->embeds, kv[0], t, input, pred));
    } else {
        FY_TRY(dit_pass(r, dit, 1, r->embeds, kv[0], t, input, pred));
        if (last) FY_TRY(fy_engine_hand_over(r->device, "transformer", "transformer_2"));
        FY_TRY(dit_pass(r, dit, 1, r->embeds + row, kv[1], t, input, pred + n));
    }
    char name[64];
    int64_t expert_id = x;
    snprintf(name, sizeof name, "step%d.expert", i);
    hook_ids(r, name, &expert_id, 1);
    const int64_t *ints = fy_scheduler_timesteps_int(r->scheduler);
    snprintf(name, sizeof name, "step%d.timestep", i);
    if (r->expand_timesteps) hook_token_inputs(r, i, dit, t);
    else if (ints) hook_ids(r, name, &ints[i], 1);
    if (r->guidance) {
        double g = guidance_of(r, x);
        float gf = (float)g;
        int64_t one = 1;
        snprintf(name, sizeof name, "step%d.guidance_scale", i);
        hook_tensor(r, name, &gf, 1, &one);
        guide(pred, pred + n, g, guided, n);
        hook_step(r, i, "noise_pred_cond", pred);
        hook_step(r, i, "noise_pred_uncond", pred + n);
    }
    hook_step(r, i, "noise_pred", guided);
    FY_TRY(fy_scheduler_step(r->scheduler, guided, r->latents, r->latents, (size_t)n));
    hook_latents(r, i + 1);
    return FY_OK;
}

static fy_status denoise(t2v_run *r)
{
    hook_stage(r, "denoising");
    int64_t n = r->latent_numel;
    int steps = (int)fy_scheduler_num_steps(r->scheduler);
    hook_ids(r, "timesteps", fy_scheduler_timesteps_int(r->scheduler), steps);
    int64_t *experts = malloc(sizeof *experts * (size_t)steps);
    if (experts) {
        for (int i = 0; i < steps; i++) experts[i] = expert_of_step(r, i);
        hook_ids(r, "experts", experts, steps);
        free(experts);
    }
    hook_latents(r, 0);
    float *input = malloc(sizeof *input * 2 * (size_t)(n + r->i2v.cond_numel));
    float *pred = malloc(sizeof *pred * 2 * (size_t)n);
    float *guided = malloc(sizeof *guided * (size_t)n);
    fy_status s = input && pred && guided ? FY_OK : fy_error(FY_ERR_NOMEM, "out of host memory for the denoising loop");
    for (int i = 0; s == FY_OK && i < steps; i++) {
        if (stop_requested(r)) {
            s = fy_error(FY_ERR_INTERRUPTED, "stopped by the user after %d of %d steps", i, steps);
            break;
        }
        /* A model file changed under the run: stop now, not after the video. */
        s = fy_model_check_unchanged(r->model);
        if (s != FY_OK) break;
        double t0 = fy_backend_now(), stall0 = fy_engine_stats_get(r->device)->stall_time;
        s = denoise_step(r, i, input, pred, guided);
        double dt = fy_backend_now() - t0;
        if (i < FY_WAN_T2V_REPORT_STEPS) r->report.step_stall_s[i] = fy_engine_stats_get(r->device)->stall_time - stall0;
        r->report.step_s_mean += dt / steps;
        if (i == 0) {
            r->report.first_step_s = fy_backend_now() - r->t_start;
            r->report.first_step_disk_bytes = fy_engine_stats_get(r->device)->disk_bytes_read;
        }
        if (s == FY_OK && r->hooks && r->hooks->step) r->hooks->step(r->hooks->user, i, steps, dt);
    }
    free(input);
    free(pred);
    free(guided);
    if (s == FY_OK && r->i2v.mode == FY_I2V_FIRST_FRAME) {
        /* diffusers blends once more before the decode: the image's frame is the condition's */
        fy_i2v_blend(&r->i2v, r->latents, r->latent_shape, r->latents);
        hook_tensor(r, "latents.final", r->latents, 5, r->latent_shape);
    }
    /* The prompt's cross-attention K/V are done with: the VAE decode, which
     * shares the engine's activation reserve, gets their device memory. */
    for (int x = 0; x < 2; x++) free_cross_kv(r, x);
    return s;
}

/* video = clamp(decoded * 0.5 + 0.5, 0, 1), from (C, F, H, W) to (F, H, W, C). */
static void to_video(const float *decoded, int64_t frames, int64_t h, int64_t w, float *video)
{
    int64_t plane = frames * h * w;
    for (int64_t p = 0; p < plane; p++)
        for (int c = 0; c < 3; c++) {
            float v = decoded[c * plane + p] * 0.5f + 0.5f;
            video[p * 3 + c] = v < 0 ? 0 : (v > 1 ? 1 : v);
        }
}

static fy_status decode(t2v_run *r)
{
    hook_stage(r, "vae decode");
    if (stop_requested(r)) return fy_error(FY_ERR_INTERRUPTED, "stopped by the user before the VAE decode");
    FY_TRY(fy_wan_vae_denormalize(r->vae, r->latents, r->latent_shape));
    hook_tensor(r, "vae_decode.input", r->latents, 5, r->latent_shape);
    fy_wan_vae_decode_shape vs = {1, r->latent_shape[2], r->latent_shape[3], r->latent_shape[4]};
    int64_t out_shape[5];
    FY_TRY(fy_wan_vae_decode_output_shape(r->vae, &vs, out_shape));
    int64_t frames = out_shape[2], h = out_shape[3], w = out_shape[4];
    size_t count = (size_t)(frames * h * w);
    float *decoded = malloc(sizeof *decoded * 3 * count);
    r->video = malloc(sizeof *r->video * 3 * count);
    if (!decoded || !r->video) {
        free(decoded);
        return fy_error(FY_ERR_NOMEM, "out of host memory for the decoded video");
    }
    fy_status s = fy_wan_vae_decode(r->vae, &vs, r->latents, r->options, decoded);
    if (s == FY_OK) {
        hook_tensor(r, "vae_decode.output", decoded, 5, out_shape);
        to_video(decoded, frames, h, w, r->video);
        int64_t vshape[5] = {1, frames, h, w, 3};
        hook_tensor(r, "video", r->video, 5, vshape);
        r->report.frames = frames;
        r->report.height = h;
        r->report.width = w;
    }
    free(decoded);
    return s;
}

/* ---- Run ---------------------------------------------------------------- */

static fy_status finish_engines(t2v_run *r)
{
    fy_status s = FY_OK;
    for (int i = 0; i < r->n_engines; i++) {
        fy_status si = fy_engine_finish(r->engines[i]);
        if (s == FY_OK) s = si;
    }
    if (r->device) r->report.engine = *fy_engine_stats_get(r->device);
    for (int i = 0; i < r->n_engines; i++) {
        fy_wan_t2v_engine_use *u = &r->report.engines[i];
        const fy_engine *e = r->engines[i];
        snprintf(u->name, sizeof u->name, "%s", r->engine_names[i]);
        engine_holds(r, e, u->components, sizeof u->components);
        u->stats = *fy_engine_stats_get(e);
    }
    r->report.n_engines = r->n_engines;
    for (int i = 0; i < r->n_engines; i++) {
        for (int g = 0; g < fy_engine_group_count(r->engines[i]); g++) {
            fy_group_info info;
            if (fy_engine_group_info(r->engines[i], g, &info) == FY_OK) r->report.weight_bytes += info.bytes;
        }
    }
    return s;
}

static void run_init(t2v_run *r)
{
    memset(r, 0, sizeof *r);
    r->boundary = NAN;
    r->expert = -1;
    r->report.switch_step = -1;
}

/* The loaded components and their engines (the model folder stays open). */
static void free_components(t2v_run *r)
{
    for (int x = 0; x < 2; x++) {
        for (int i = 0; i < 2; i++) fy_wan_dit_context_free(r->cross_kv[x][i]);
        fy_wan_dit_free(r->dits[x]);
        r->dits[x] = NULL;
    }
    memset(r->cross_kv, 0, sizeof r->cross_kv);
    fy_umt5_free(r->text_encoder);
    fy_i2v_free(&r->i2v);
    fy_wan_vae_free(r->vae);
    fy_tokenizer_free(r->tokenizer);
    fy_scheduler_free(r->scheduler);
    for (int i = 0; i < r->n_engines; i++) fy_engine_free(r->engines[i]);
    r->text_encoder = NULL;
    r->vae = NULL;
    r->tokenizer = NULL;
    r->scheduler = NULL;
    r->n_engines = 0;
    r->device = r->text_engine = r->vae_engine = r->image_engine = NULL;
    r->no_cross_kv = false;
}

static void run_free(t2v_run *r)
{
    free_components(r);
    fy_model_free(r->model);
    free(r->embeds);
    free(r->latents);
    free(r->video);
}

static uint64_t peak_rss_bytes(void)
{
    struct rusage u;
    if (getrusage(RUSAGE_SELF, &u) != 0) return 0;
    return (uint64_t)u.ru_maxrss * 1024;
}

/* Components the planner may move to the host itself when the device
 * budget has no plan for them all, cheapest first: the text encoder and the
 * image encoder run once a video, the VAE decodes all of it. */
static const struct host_move { bool te, ie, vae; } host_moves[] = {
    {true, false, false}, {false, true, false}, {true, true, false},
    {false, false, true}, {true, false, true}, {true, true, true},
};

/* The planner chooses (a budget, no forced plan, one device) and some
 * component is still on the device. */
static bool planner_may_move(const fy_run_options *o)
{
    return (o->vram_budget || o->vram_budget_auto) && !o->offload_explicit && o->device != FY_DEVICE_CPU &&
           o->device_map == FY_DEVICE_MAP_NONE && !o->use_fsdp_inference;
}

static bool apply_move(const fy_run_options *asked, const struct host_move *m, bool i2v, fy_run_options *out)
{
    if (m->ie && !i2v) return false;
    *out = *asked;
    out->text_encoder_cpu_offload |= m->te;
    out->image_encoder_cpu_offload |= m->ie;
    out->vae_cpu_offload |= m->vae;
    return out->text_encoder_cpu_offload != asked->text_encoder_cpu_offload ||
           out->image_encoder_cpu_offload != asked->image_encoder_cpu_offload ||
           out->vae_cpu_offload != asked->vae_cpu_offload;
}

static void move_flags(const fy_run_options *asked, const fy_run_options *v, char *buf, size_t n)
{
    snprintf(buf, n, "%s%s%s", v->text_encoder_cpu_offload && !asked->text_encoder_cpu_offload
                                   ? "--text-encoder-cpu-offload " : "",
             v->image_encoder_cpu_offload && !asked->image_encoder_cpu_offload ? "--image-encoder-cpu-offload " : "",
             v->vae_cpu_offload && !asked->vae_cpu_offload ? "--vae-cpu-offload " : "");
    size_t len = strlen(buf);
    if (len) buf[len - 1] = '\0';
}

/* The device's smallest plan (sequential, nothing resident) as loaded now. */
static uint64_t smallest_bound(const t2v_run *r)
{
    fy_run_options o = *r->options;
    o.offload = FY_OFFLOAD_SEQUENTIAL;
    o.resident_blocks = 0;
    o.resident_bytes = 0;
    fy_plan p;
    return r->device && fy_engine_evaluate_plan(r->device, &o, &p) == FY_OK ? p.device_bound : 0;
}

/* Engines and components for the request; when the budget fits no plan and
 * the planner chooses, again with the text encoder, image encoder or VAE on
 * the host (said in one line), before giving up. The weights were scanned
 * by the first attempt. */
static fy_status load_fitting(t2v_run *r, const t2v_factors *f)
{
    FY_TRY(create_engines(r));
    fy_status s = load_models(r, f);
    if (s != FY_ERR_BUDGET || !planner_may_move(r->options)) return s;
    char first[1024], flags[96], a[32];
    snprintf(first, sizeof first, "%s", fy_error_message());
    const fy_run_options asked = *r->options;
    fy_model_set_check_finite(r->model, false);
    for (size_t i = 0; i < sizeof host_moves / sizeof host_moves[0]; i++) {
        fy_run_options v;
        if (!apply_move(&asked, &host_moves[i], f->i2v, &v)) continue;
        free_components(r);
        r->host_offloaded = v;
        r->options = &r->host_offloaded;
        s = create_engines(r);
        if (s == FY_OK) s = load_models(r, f);
        move_flags(&asked, &v, flags, sizeof flags);
        if (s == FY_OK) {
            if (!r->quiet)
                fy_info("no plan fits the device budget with every component on it: running as with %s (the "
                        "planner's choice), device bound %s", flags,
                        fy_format_bytes(fy_engine_plan(r->device)->device_bound, a, sizeof a));
            return FY_OK;
        }
        if (s != FY_ERR_BUDGET) return s;
    }
    return fy_error(FY_ERR_BUDGET, "%s; with %s as well the smallest plan needs %s", first, flags,
                    fy_format_bytes(smallest_bound(r), a, sizeof a));
}

/* Open the folder, create the engines and load every component for the
 * request's shape. */
static fy_status load_stages(t2v_run *r, const char *model_dir)
{
    t2v_factors f = {.need_image = true};
    fy_model_sources src = fy_run_options_sources(r->options);
    FY_TRY(fy_model_open_sources(model_dir, &src, &r->model));
    fy_model_set_check_finite(r->model, r->options->check_weights);
    FY_TRY(check_request(r->model, r->params, &f, &r->sized, true));
    r->params = &r->sized;
    r->guidance = r->params->guidance_scale > 1.0;
    /* Weights stored in bf16/f16 are widened block by block on use; the
     * host and emulated devices compute in f32 whatever --dtype says. */
    if (r->options->compute_dtype != FY_F32 && r->options->device != FY_DEVICE_CUDA)
        fy_warn("--dtype %s: the %s device computes in f32 (weights keep their stored dtype until used)",
                fy_dtype_name(r->options->compute_dtype), fy_device_kind_name(r->options->device));
    FY_TRY(load_fitting(r, &f));
    return stop_point(r, "while the model loaded");
}

/* One video from loaded components: t0 is when the request began, t1 when
 * its loading ended. */
static fy_status video_stages(t2v_run *r, double t0, double t1)
{
    FY_TRY(encode_text(r));
    FY_TRY(stop_point(r, "after the text encoder"));
    FY_TRY(encode_image(r));
    double t2 = fy_backend_now();
    FY_TRY(init_latents(r));
    FY_TRY(denoise(r));
    double t3 = fy_backend_now();
    FY_TRY(decode(r));
    FY_TRY(stop_point(r, "during the VAE decode"));
    /* Weights read through a mapping see a file rewritten in place. */
    FY_TRY(fy_model_check_unchanged(r->model));
    double t4 = fy_backend_now();
    r->report.load_s = t1 - t0;
    r->report.text_encoder_s = t2 - t1;
    r->report.denoise_s = t3 - t2;
    r->report.vae_s = t4 - t3;
    r->report.total_s = t4 - t0;
    return FY_OK;
}

/* --trace: every engine's timeline in one file, each its own process,
 * named by device and components ("emu:1 (text_encoder transformer)"). */
static fy_status write_trace(const t2v_run *r)
{
    const char *path = r->options->trace_path;
    if (!path || !*path || r->n_engines == 0) return FY_OK;
    char labels[T2V_MAX_ENGINES][96];
    const char *names[T2V_MAX_ENGINES];
    for (int i = 0; i < r->n_engines; i++) {
        char holds[64];
        engine_holds(r, r->engines[i], holds, sizeof holds);
        snprintf(labels[i], sizeof labels[i], "ferry %s (%s)", r->engine_names[i], holds);
        names[i] = labels[i];
    }
    return fy_engines_write_trace(r->engines, names, r->n_engines, path);
}

/* The trace is written after a failed run too (it shows where the run
 * went), but the run's own error stays the message. After a finished video
 * a failed trace is a warning: the video is the result, and it is kept. */
static void trace_after_run(const t2v_run *r, fy_status s)
{
    char first[1024];
    snprintf(first, sizeof first, "%s", fy_error_message());
    if (write_trace(r) == FY_OK) return;
    if (s == FY_OK) fy_warn("%s; the video is kept without it", fy_error_message());
    else fy_error(s, "%s", first);
}

/* ---- Pipeline: one load, several videos ------------------------------------ */

struct fy_wan_t2v_pipeline {
    char *model_dir;
    char *trace_path;          /* the options' --trace, copied */
    fy_run_options options;
    t2v_run run;               /* the loaded components (run.model set) */
    fy_wan_t2v_params loaded;  /* the request they were loaded for */
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

fy_status fy_wan_t2v_open(const char *model_dir, const fy_run_options *o, fy_wan_t2v_pipeline **out)
{
    *out = NULL;
    if (!model_dir || !o) return fy_error(FY_ERR_INVALID, "fy_wan_t2v_open: NULL model folder or options");
    FY_TRY(fy_run_options_validate(o));
    FY_TRY(fy_run_options_check_files(o));
    /* The family and components now, not at the first video. */
    fy_model *m = NULL;
    fy_model_sources src = fy_run_options_sources(o);
    FY_TRY(fy_model_open_sources(model_dir, &src, &m));
    fy_status s = check_family(m);
    fy_model_free(m);
    if (s != FY_OK) return s;
    fy_wan_t2v_pipeline *p = calloc(1, sizeof *p);
    if (!p) return fy_error(FY_ERR_NOMEM, "out of memory for the pipeline");
    run_init(&p->run);
    p->options = *o;
    p->model_dir = copy_text(model_dir);
    p->trace_path = copy_text(o->trace_path);
    p->options.trace_path = p->trace_path;
    if (!p->model_dir || (o->trace_path && !p->trace_path)) {
        fy_wan_t2v_close(p);
        return fy_error(FY_ERR_NOMEM, "out of memory for the pipeline");
    }
    *out = p;
    return FY_OK;
}

/* What the loaded components were sized for: a request with another shape
 * (or guidance on where it was off) loads them again. */
static bool same_shape(const fy_wan_t2v_params *a, const fy_wan_t2v_params *b)
{
    return a->height == b->height && a->width == b->width && a->num_frames == b->num_frames &&
           a->max_sequence_length == b->max_sequence_length && (a->guidance_scale > 1.0) == (b->guidance_scale > 1.0) &&
           !a->image == !b->image; /* Wan2.2 TI2V: with an image, the VAE's encoder and its activations too */
}

/* A loaded run made ready for the next video: the last one's buffers and
 * report dropped, a fresh schedule and prompt K/V caches. */
static fy_status reuse_run(t2v_run *r)
{
    t2v_factors f = {.need_image = true};
    FY_TRY(check_request(r->model, r->params, &f, &r->sized, true));
    r->params = &r->sized;
    free(r->embeds);
    free(r->latents);
    free(r->video);
    r->embeds = r->latents = r->video = NULL;
    memset(&r->report, 0, sizeof r->report);
    r->report.switch_step = -1;
    r->expert = -1;
    FY_TRY(make_scheduler(r));
    free_cross_kv(r, 0);
    free_cross_kv(r, 1);
    return create_cross_kv(r);
}

static fy_status pipeline_stages(fy_wan_t2v_pipeline *pipe, const fy_wan_t2v_params *p)
{
    t2v_run *r = &pipe->run;
    double t0 = fy_backend_now();
    if (r->model && !same_shape(&pipe->loaded, p)) {
        run_free(r);
        run_init(r);
    }
    /* After the planner moved components to the host, the run keeps its options. */
    if (r->options != &r->host_offloaded) r->options = &pipe->options;
    r->params = p;
    r->cancel = &pipe->cancel;
    r->t_start = t0;
    if (r->model) {
        FY_TRY(reuse_run(r));
    } else {
        pipe->loaded = *p;
        FY_TRY(load_stages(r, pipe->model_dir));
    }
    return video_stages(r, t0, fy_backend_now());
}

fy_status fy_wan_t2v_generate(fy_wan_t2v_pipeline *pipe, const fy_wan_t2v_params *p, const fy_wan_t2v_hooks *hooks,
                              fy_wan_t2v_result *out)
{
    if (!pipe || !p || !out) return fy_error(FY_ERR_INVALID, "fy_wan_t2v_generate: NULL pipeline, params or result");
    memset(out, 0, sizeof *out);
    pipe->cancel = 0;
    pipe->run.hooks = hooks;
    fy_status s = pipeline_stages(pipe, p);
    t2v_run *r = &pipe->run;
    fy_status fs = finish_engines(r);
    if (s == FY_OK) s = fs;
    trace_after_run(r, s);
    r->report.peak_host_bytes = peak_rss_bytes();
    if (s == FY_OK) {
        out->video = r->video;
        r->video = NULL;
        out->frames = r->report.frames;
        out->height = r->report.height;
        out->width = r->report.width;
        out->report = r->report;
    }
    r->hooks = NULL;
    if (s != FY_OK && s != FY_ERR_INTERRUPTED) {
        /* Half loaded, or failed mid-pass: the next request starts over. */
        run_free(r);
        run_init(r);
        return s;
    }
    /* The weights stay loaded for the next video (a stop comes between
     * steps, leaving them whole); its buffers go now. */
    free(r->embeds);
    free(r->latents);
    r->embeds = r->latents = NULL;
    return s;
}

/* "layerwise (prefetch depth 1, 2 blocks resident)" */
static void plan_text(const fy_plan *pl, char *buf, size_t size)
{
    if (pl->fsdp) {
        snprintf(buf, size, "fsdp over %d ranks", pl->ranks);
        return;
    }
    int n = snprintf(buf, size, "%s", fy_offload_policy_name(pl->policy));
    if (n < 0 || (size_t)n >= size) return;
    if (pl->policy == FY_OFFLOAD_LAYERWISE)
        n += snprintf(buf + n, size - (size_t)n, " (prefetch depth %d", pl->depth);
    else if (pl->policy == FY_OFFLOAD_GROUP)
        n += snprintf(buf + n, size - (size_t)n, " (%d blocks per group", pl->blocks_per_unit);
    else
        return;
    if ((size_t)n >= size) return;
    if (pl->resident_blocks > 0)
        n += snprintf(buf + n, size - (size_t)n, ", %d blocks resident", pl->resident_blocks);
    if ((size_t)n < size) snprintf(buf + n, size - (size_t)n, ")");
}

fy_status fy_wan_t2v_describe(const fy_wan_t2v_pipeline *pipe, char *buf, size_t size)
{
    const t2v_run *r = pipe ? &pipe->run : NULL;
    if (!r || !r->model || !r->params || !r->scheduler || !r->device || size == 0)
        return fy_error(FY_ERR_INVALID, "fy_wan_t2v_describe: no video is being made");
    const fy_wan_t2v_params *p = r->params;
    char plan[96];
    plan_text(fy_engine_plan(r->device), plan, sizeof plan);
    snprintf(buf, size, "%s: %dx%d, %d frames, %d steps, guidance %g, seed %llu, %s (shift %g), plan %s on %s",
             r->model ? fy_model_dir(r->model) : pipe->model_dir, p->width, p->height, p->num_frames, p->steps,
             p->guidance_scale, (unsigned long long)p->seed, fy_scheduler_class_name(r->scheduler),
             fy_scheduler_get_shift(r->scheduler), plan, r->engine_names[0]);
    return FY_OK;
}

void fy_wan_t2v_cancel(fy_wan_t2v_pipeline *pipe)
{
    if (pipe) pipe->cancel = 1;
}

void fy_wan_t2v_close(fy_wan_t2v_pipeline *pipe)
{
    if (!pipe) return;
    run_free(&pipe->run);
    free(pipe->model_dir);
    free(pipe->trace_path);
    free(pipe);
}

fy_status fy_wan_t2v_run(const char *model_dir, const fy_run_options *o, const fy_wan_t2v_params *p,
                         const fy_wan_t2v_hooks *hooks, fy_wan_t2v_result *out)
{
    memset(out, 0, sizeof *out);
    fy_wan_t2v_pipeline *pipe = NULL;
    FY_TRY(fy_wan_t2v_open(model_dir, o, &pipe));
    fy_status s = fy_wan_t2v_generate(pipe, p, hooks, out);
    fy_wan_t2v_close(pipe);
    return s;
}

fy_wan_t2v_result *fy_wan_t2v_result_new(void)
{
    fy_wan_t2v_result *r = calloc(1, sizeof *r);
    if (!r) fy_error(FY_ERR_NOMEM, "out of memory for a result");
    return r;
}

void fy_wan_t2v_result_delete(fy_wan_t2v_result *r)
{
    fy_wan_t2v_result_free(r);
    free(r);
}

/* Open the folder, create the engines and load the models as a run would
 * (the engines are prepared: resident weights go into place), run nothing. */
static fy_status load_for_plan(t2v_run *r, const char *model_dir, const fy_run_options *o,
                               const fy_wan_t2v_params *p, bool quiet)
{
    run_init(r);
    r->quiet = quiet;
    r->options = o;
    r->params = p;
    r->guidance = p->guidance_scale > 1.0;
    t2v_factors f = {.need_image = false};
    fy_model_sources src = fy_run_options_sources(r->options);
    FY_TRY(fy_model_open_sources(model_dir, &src, &r->model));
    fy_model_set_check_finite(r->model, r->options->check_weights);
    FY_TRY(check_request(r->model, p, &f, &r->sized, !quiet));
    r->params = &r->sized;
    return load_fitting(r, &f);
}

/* `ferry plan`: each engine's plan, printed. */
fy_status fy_wan_t2v_plan(const char *model_dir, const fy_run_options *o, const fy_wan_t2v_params *p, FILE *out)
{
    t2v_run r;
    fy_status s = load_for_plan(&r, model_dir, o, p, false);
    for (int i = 0; s == FY_OK && i < r.n_engines; i++) {
        const fy_engine *e = r.engines[i];
        char holds[64], title[96];
        engine_holds(&r, e, holds, sizeof holds);
        snprintf(title, sizeof title, "%s holds %s", r.engine_names[i], holds);
        fy_engine_plan_print(e, title, out);
    }
    run_free(&r);
    return s;
}

fy_status fy_wan_t2v_device_plan(const char *model_dir, const fy_run_options *o, const fy_wan_t2v_params *p,
                                 fy_plan *out)
{
    memset(out, 0, sizeof *out);
    t2v_run r;
    fy_status s = load_for_plan(&r, model_dir, o, p, true);
    if (s == FY_OK) *out = *fy_engine_plan(r.device);
    run_free(&r);
    return s;
}

void fy_wan_t2v_result_free(fy_wan_t2v_result *r)
{
    if (!r) return;
    free(r->video);
    memset(r, 0, sizeof *r);
}

static double mib(uint64_t bytes)
{
    return (double)bytes / (1024.0 * 1024.0);
}

void fy_wan_t2v_report_print(const fy_wan_t2v_report *r, FILE *f)
{
    const fy_engine_stats *e = &r->engine;
    double stall_share = e->run_time > 0 ? 100.0 * e->stall_time / e->run_time : 0;
    fprintf(f, "video        %lld frames, %lldx%lld\n", (long long)r->frames, (long long)r->width,
            (long long)r->height);
    fprintf(f, "time         load %.2f s, text encoder %.2f s, denoising %.2f s (%.2f s/step), "
               "vae %.2f s, total %.2f s\n",
            r->load_s, r->text_encoder_s, r->denoise_s, r->step_s_mean, r->vae_s, r->total_s);
    bool clip = false; /* Wan2.2's image to video runs no image encoder */
    for (int i = 0; i < r->n_engines; i++) clip = clip || strstr(r->engines[i].components, "image_encoder");
    if (r->image_s > 0)
        fprintf(f, "image        %scondition encode %.2f s\n", clip ? "image encoder and " : "", r->image_s);
    fprintf(f, "device       peak %.1f MiB", mib(e->peak_device));
    if (e->device_budget) fprintf(f, " of %.1f MiB budget", mib(e->device_budget));
    for (int k = 0; k < e->n_spill; k++) {
        fprintf(f, "; device %d peak %.1f MiB of %.1f MiB for %d blocks", e->spill[k].device, mib(e->spill[k].peak),
                mib(e->spill[k].budget), e->spill[k].blocks);
    }
    fprintf(f, "\nhost         peak RSS %.1f MiB, pinned %.1f MiB\n", mib(r->peak_host_bytes),
            mib(e->pinned_bytes));
    fprintf(f, "weights      %.1f MiB moved in %llu uploads, stall %.2f s (%.1f%% of the run)\n",
            mib(e->bytes_uploaded), (unsigned long long)e->uploads, e->stall_time, stall_share);
    for (int i = 0; r->n_engines > 1 && i < r->n_engines; i++) {
        const fy_engine_stats *x = &r->engines[i].stats;
        fprintf(f, "  %-10s %s: peak %.1f MiB", r->engines[i].name, r->engines[i].components, mib(x->peak_device));
        if (x->device_budget) fprintf(f, " of %.1f MiB budget", mib(x->device_budget));
        fprintf(f, ", %.1f MiB moved\n", mib(x->bytes_uploaded));
    }
    if (e->disk_groups) {
        double disk_share = e->run_time > 0 ? 100.0 * e->disk_stall_time / e->run_time : 0;
        fprintf(f, "disk         %d blocks on disk (host budget %.1f MiB): %.1f MiB read at %.2f GB/s (%s), "
                   "disk stall %.2f s (%.1f%% of the run)\n",
                e->disk_groups, mib(e->host_budget), mib(e->disk_bytes_read), e->disk_bandwidth / 1e9,
                e->disk_direct ? "O_DIRECT" : "buffered", e->disk_stall_time, disk_share);
    }
    if (r->first_step_s > 0) {
        fprintf(f, "cold start   first denoising step done %.2f s after the start", r->first_step_s);
        if (e->disk_bandwidth > 0)
            fprintf(f, "; weights %.1f MiB / %.2f GB/s disk = %.2f s, %.1f MiB read from disk by then",
                    mib(r->weight_bytes), e->disk_bandwidth / 1e9, (double)r->weight_bytes / e->disk_bandwidth,
                    mib(r->first_step_disk_bytes));
        fputc('\n', f);
    }
    if (e->ranks > 0)
        fprintf(f, "fsdp         rank %d of %d holds %.1f KiB of %.1f KiB of blocks, %.1f MiB all-gathered\n", e->rank,
                e->ranks, (double)e->shard_bytes / 1024.0, (double)e->sharded_bytes / 1024.0, mib(e->bytes_gathered));
    if (r->switch_step >= 0)
        fprintf(f, "experts      transformer %d steps, transformer_2 %d steps from step %d; the switch waited "
                   "%.3f ms for weights, %.1f MiB given back\n", r->expert_steps[0], r->expert_steps[1], r->switch_step,
                e->switch_stall_time * 1e3, mib(e->switch_freed_bytes));
    if (e->predicted_step_s > 0) {
        char budget[32] = "unlimited";
        if (e->vram_budget) snprintf(budget, sizeof budget, "%.1f MiB", mib(e->vram_budget));
        fprintf(f, "planner      %s budget: step predicted %.3f s (initial %.3f s, after step 1 %.3f s), measured "
                   "%.3f s (first step %.3f s)\n", budget, e->predicted_step_s, e->predicted_initial_step_s,
                e->predicted_after_first_s, e->measured_step_s, e->first_step_s);
    }
}
