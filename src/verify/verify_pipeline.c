/* The pipeline verifier drives fy_wan_t2v_run with the fixture's request and
 * its initial latents, and compares each intermediate as the pipeline hands
 * it over, so a divergence shows at the first tensor that drifts. */
#include "verify/verify_pipeline.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/wan_t2v.h"

/* The fixtures README: whole pipeline 1e-3; text encoder 1e-5. */
#define PIPELINE_TOLERANCE 1e-3
#define EMBEDDING_TOLERANCE 1e-5
/* bf16/f16 storage: the denoised latents are held to 2e-2 (verify.c); the
 * tiny random VAE (kept f32) multiplies its input's error by about ten
 * (latents at 1e-2 decode at 9e-2), so what it decodes gets ten times that. */
#define NARROW_DECODED_TOLERANCE 2e-1

typedef struct pipeline_check {
    fy_verify_ctx *ctx;
    const fy_st_file *fixture;
    fy_status error;  /* first comparison that could not be made */
} pipeline_check;

static void note(pipeline_check *pc, fy_status s)
{
    if (s != FY_OK && pc->error == FY_OK) pc->error = s;
}

static void on_tensor(void *user, const char *name, const float *data, int ndim, const int64_t *shape)
{
    pipeline_check *pc = user;
    fy_tensor ref;
    if (!fy_st_find(pc->fixture, name) || pc->error != FY_OK) return;
    note(pc, fy_st_view(pc->fixture, name, &ref));
    if (pc->error != FY_OK) return;
    fy_tensor ours = fy_tensor_wrap((void *)data, FY_F32, ndim, shape, FY_HOST);
    double tol = strstr(name, "prompt_embeds") ? EMBEDDING_TOLERANCE : PIPELINE_TOLERANCE;
    bool decoded = strcmp(name, "video") == 0 || strcmp(name, "vae_decode.output") == 0;
    if (decoded && fy_storage_is_narrow(pc->ctx->options->storage_dtype)) tol = NARROW_DECODED_TOLERANCE;
    char label[96];
    snprintf(label, sizeof label, "pipeline.%s", name);
    note(pc, fy_verify_compare(pc->ctx, label, &ours, &ref, tol));
}

static void on_ids(void *user, const char *name, const int64_t *data, int64_t n)
{
    pipeline_check *pc = user;
    fy_tensor ref;
    if (!fy_st_find(pc->fixture, name) || pc->error != FY_OK) return;
    note(pc, fy_st_view(pc->fixture, name, &ref));
    if (pc->error != FY_OK) return;
    char label[96];
    snprintf(label, sizeof label, "pipeline.%s", name);
    note(pc, fy_verify_compare_ids(pc->ctx, label, data, (size_t)n, &ref));
}

static fy_status info_number(const cJSON *info, const char *key, const char *path, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(info, key);
    if (!cJSON_IsNumber(v)) return fy_error(FY_ERR_FORMAT, "%s: info has no number \"%s\"", path, key);
    *out = v->valuedouble;
    return FY_OK;
}

static fy_status info_string(const cJSON *info, const char *key, const char *path, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(info, key);
    if (!cJSON_IsString(v)) return fy_error(FY_ERR_FORMAT, "%s: info has no string \"%s\"", path, key);
    *out = v->valuestring;
    return FY_OK;
}

/* The request the fixture was made with (its __metadata__ "info"). */
static fy_status read_request(const cJSON *info, const char *path, fy_wan_t2v_params *p)
{
    double h = 0, w = 0, frames = 0, steps = 0, guidance = 0, max_len = 0;
    FY_TRY(info_string(info, "prompt", path, &p->prompt));
    FY_TRY(info_string(info, "negative_prompt", path, &p->negative_prompt));
    FY_TRY(info_number(info, "height", path, &h));
    FY_TRY(info_number(info, "width", path, &w));
    FY_TRY(info_number(info, "num_frames", path, &frames));
    FY_TRY(info_number(info, "num_inference_steps", path, &steps));
    FY_TRY(info_number(info, "guidance_scale", path, &guidance));
    FY_TRY(info_number(info, "max_sequence_length", path, &max_len));
    p->height = (int)h;
    p->width = (int)w;
    p->num_frames = (int)frames;
    p->steps = (int)steps;
    p->guidance_scale = guidance;
    /* Wan2.2 A14B: the low-noise expert's scale, when the call gave one. */
    const cJSON *g2 = cJSON_GetObjectItemCaseSensitive(info, "guidance_scale_2");
    if (cJSON_IsNumber(g2)) p->guidance_scale_2 = g2->valuedouble;
    p->max_sequence_length = (int)max_len;
    return FY_OK;
}

static fy_status run_pipeline(fy_verify_ctx *ctx, const fy_st_file *fixture, const cJSON *info)
{
    const char *path = fy_st_path(fixture);
    fy_wan_t2v_params p;
    fy_wan_t2v_params_init(&p);
    FY_TRY(read_request(info, path, &p));
    fy_tensor latents0;
    FY_TRY(fy_st_view(fixture, "latents.0", &latents0));
    if (latents0.dtype != FY_F32) return fy_error(FY_ERR_FORMAT, "%s: latents.0 is not float32", path);
    p.initial_latents = latents0.data;
    /* Image to video: the fixture's image, in the fixture folder. */
    char image[4096];
    const cJSON *img = cJSON_GetObjectItemCaseSensitive(info, "image");
    if (cJSON_IsString(img)) {
        snprintf(image, sizeof image, "%s/%s", ctx->fixture_dir, img->valuestring);
        p.image = image;
    }

    pipeline_check pc = {ctx, fixture, FY_OK};
    fy_wan_t2v_hooks hooks = {0};
    hooks.user = &pc;
    hooks.tensor = on_tensor;
    hooks.ids = on_ids;
    fy_wan_t2v_result result;
    fy_status s = fy_wan_t2v_run(fy_model_dir(ctx->model), ctx->options, &p, &hooks, &result);
    fy_wan_t2v_result_free(&result);
    return s != FY_OK ? s : pc.error;
}

fy_status fy_verify_pipeline(fy_verify_ctx *ctx, const fy_st_file *fixture)
{
    /* fp8's rounding, compounded over the denoising steps and amplified by
     * the tiny random VAE, is far beyond any tolerance that would still
     * catch a bug (decoded video rel-err 0.16 for e4m3): measured in
     * bench/RESULTS.md as PSNR, not verified. */
    if (ctx->options->storage_dtype != FY_DTYPE_COUNT && !fy_storage_is_narrow(ctx->options->storage_dtype))
        return fy_error(FY_ERR_UNSUPPORTED, "--component pipeline compares with diffusers' full-precision run and "
                        "cannot pass with --storage-dtype %s: verify --component transformer with it, or drop "
                        "--storage-dtype", fy_storage_dtype_flag_name(ctx->options->storage_dtype));
    if (ctx->weights_tolerance > 0) /* the same holds for GGUF's rounded weights */
        return fy_error(FY_ERR_UNSUPPORTED, "--component pipeline compares with diffusers' full-precision run and "
                        "cannot pass with a GGUF transformer of rounded (quantised, f16 or bf16) weights: verify "
                        "--component transformer with it (the video's PSNR is in bench/RESULTS.md)");
    const char *text = fy_st_metadata(fixture, "info");
    if (!text) return fy_error(FY_ERR_FORMAT, "%s: no __metadata__ \"info\"", fy_st_path(fixture));
    cJSON *info = cJSON_Parse(text);
    if (!info) return fy_error(FY_ERR_FORMAT, "%s: __metadata__ \"info\" is not JSON", fy_st_path(fixture));
    fy_status s = run_pipeline(ctx, fixture, info);
    cJSON_Delete(info);
    return s;
}
