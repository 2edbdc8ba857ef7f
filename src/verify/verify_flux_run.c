/* The Flux scheduler and whole pipeline against the fixtures (the
 * *_schnell files for a model without guidance embeddings). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/flux_t2i.h"
#include "ferry/scheduler.h"
#include "verify/verify_flux.h"

#define STEP_TOLERANCE 1e-6
#define PIPELINE_TOLERANCE 1e-3
/* 8-bit pixels: a few levels where a value sits on a rounding boundary. */
#define UINT8_TOLERANCE 1e-2

static fy_status compare_floats(fy_verify_ctx *ctx, const fy_st_file *f, const char *name, const float *ours,
                                int64_t n, double tol)
{
    fy_tensor ref;
    FY_TRY(fy_st_view(f, name, &ref));
    fy_tensor mine = fy_tensor_numel(&ref) == n ? fy_tensor_wrap((void *)ours, FY_F32, ref.ndim, ref.shape, FY_HOST)
                                                : fy_tensor_wrap((void *)ours, FY_F32, 1, &n, FY_HOST);
    return fy_verify_compare(ctx, name, &mine, &ref, tol);
}

/* ---- scheduler ------------------------------------------------------------------------------ */

static fy_status check_schedule(fy_verify_ctx *ctx, const fy_st_file *f, fy_scheduler *s, const char *prefix,
                                int64_t seq, int n)
{
    float *sig = malloc((size_t)n * sizeof *sig);
    if (!sig) return fy_error(FY_ERR_NOMEM, "out of memory");
    fy_flux_sigmas(n, sig);
    double mu = fy_scheduler_mu(s, seq);
    float mu_f = (float)mu;
    fy_status st = fy_scheduler_set_sigmas(s, sig, (size_t)n, mu);
    free(sig);
    char name[96];
    snprintf(name, sizeof name, "%smu", prefix);
    if (st == FY_OK) st = compare_floats(ctx, f, name, &mu_f, 1, STEP_TOLERANCE);
    snprintf(name, sizeof name, "%ssigmas", prefix);
    if (st == FY_OK) st = compare_floats(ctx, f, name, fy_scheduler_sigmas(s), n + 1, STEP_TOLERANCE);
    snprintf(name, sizeof name, "%stimesteps", prefix);
    if (st == FY_OK) st = compare_floats(ctx, f, name, fy_scheduler_timesteps(s), n, STEP_TOLERANCE);
    return st;
}

static fy_status check_steps(fy_verify_ctx *ctx, const fy_st_file *f, fy_scheduler *s, int n)
{
    fy_tensor x0;
    FY_TRY(fy_st_view(f, "sample.0", &x0));
    int64_t numel = fy_tensor_numel(&x0);
    float *x = malloc((size_t)numel * sizeof *x);
    if (!x) return fy_error(FY_ERR_NOMEM, "out of memory");
    memcpy(x, x0.data, (size_t)numel * sizeof *x);
    fy_status st = FY_OK;
    for (int i = 0; i < n && st == FY_OK; i++) {
        char name[48];
        fy_tensor v;
        snprintf(name, sizeof name, "model_output.%d", i);
        st = fy_st_view(f, name, &v);
        if (st == FY_OK) st = fy_scheduler_step(s, v.data, x, x, (size_t)numel);
        snprintf(name, sizeof name, "sample.%d", i + 1);
        if (st == FY_OK) st = compare_floats(ctx, f, name, x, numel, STEP_TOLERANCE);
    }
    free(x);
    return st;
}

static fy_status check_tables(fy_verify_ctx *ctx, const fy_st_file *f, fy_scheduler *s)
{
    for (size_t i = 0; i < fy_st_count(f); i++) {
        const char *name = fy_st_at(f, i)->name;
        long long seq = 0;
        int n = 0, used = 0;
        if (sscanf(name, "table.seq%lld.n%d.mu%n", &seq, &n, &used) != 2 || name[used] || n < 1 || seq < 1) continue;
        char prefix[64];
        snprintf(prefix, sizeof prefix, "table.seq%lld.n%d.", seq, n);
        FY_TRY(check_schedule(ctx, f, s, prefix, seq, n));
    }
    return FY_OK;
}

fy_status fy_verify_flux_scheduler(fy_verify_ctx *ctx, const fy_st_file *fixture)
{
    (void)fixture;
    const fy_component *c = ctx->model ? fy_model_component(ctx->model, "scheduler") : NULL;
    if (!c || !c->config) return fy_error(FY_ERR_NOT_FOUND, "the model folder has no scheduler config");
    fy_st_file *f = NULL;
    fy_scheduler *s = NULL;
    fy_status st = fy_flux_open_fixture(ctx, fy_flux_is_schnell(ctx->model) ? "scheduler_schnell.safetensors"
                                                                              : "scheduler.safetensors", &f);
    if (st == FY_OK) st = fy_scheduler_create_from_config(c->config, &s);
    fy_tensor x0, sig;
    if (st == FY_OK) st = fy_st_view(f, "sample.0", &x0);
    if (st == FY_OK) st = fy_st_view(f, "sigmas", &sig);
    int n = st == FY_OK ? (int)fy_tensor_numel(&sig) - 1 : 0;
    if (st == FY_OK) st = check_schedule(ctx, f, s, "", x0.shape[1], n);
    if (st == FY_OK) st = check_steps(ctx, f, s, n);
    if (st == FY_OK) st = check_tables(ctx, f, s);
    fy_scheduler_free(s);
    fy_st_close(f);
    return st;
}

/* ---- pipeline --------------------------------------------------------------------------------- */

typedef struct hook_ctx {
    fy_verify_ctx *ctx;
    const fy_st_file *f;
    fy_status status;
} hook_ctx;

static void on_hook(void *user, const char *name, const float *data, const int64_t *ids, int64_t n)
{
    hook_ctx *h = user;
    if (h->status != FY_OK || !fy_st_find(h->f, name)) return;
    fy_tensor ref;
    if (ids) {
        h->status = fy_st_view(h->f, name, &ref);
        if (h->status == FY_OK) h->status = fy_verify_compare_ids(h->ctx, name, ids, (size_t)n, &ref);
        return;
    }
    h->status = compare_floats(h->ctx, h->f, name, data, n, PIPELINE_TOLERANCE);
}

static fy_status info_number(const cJSON *info, const fy_st_file *f, const char *key, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(info, key);
    if (!cJSON_IsNumber(v)) return fy_error(FY_ERR_FORMAT, "%s: __metadata__ info has no number \"%s\"",
                                            fy_st_path(f), key);
    *out = v->valuedouble;
    return FY_OK;
}

static fy_status read_params(const fy_st_file *f, cJSON *info, fy_flux_params *p)
{
    double h = 0, w = 0, steps = 0, g = 0, len = 0;
    p->prompt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(info, "prompt"));
    if (!p->prompt) return fy_error(FY_ERR_FORMAT, "%s: __metadata__ info has no prompt", fy_st_path(f));
    FY_TRY(info_number(info, f, "height", &h));
    FY_TRY(info_number(info, f, "width", &w));
    FY_TRY(info_number(info, f, "num_inference_steps", &steps));
    FY_TRY(info_number(info, f, "guidance_scale", &g));
    FY_TRY(info_number(info, f, "max_sequence_length", &len));
    p->height = (int64_t)h, p->width = (int64_t)w, p->steps = (int)steps;
    p->guidance_scale = g, p->max_sequence_length = (int)len;
    fy_tensor noise;
    FY_TRY(fy_st_view(f, "noise", &noise));
    p->noise = noise.data;
    return FY_OK;
}

static fy_status compare_uint8(fy_verify_ctx *ctx, const fy_st_file *f, const fy_flux_result *r)
{
    fy_tensor ref;
    FY_TRY(fy_st_view(f, "image_uint8", &ref));
    int64_t n = r->height * r->width * 3;
    if (ref.dtype != FY_U8 || fy_tensor_numel(&ref) != n)
        return fy_error(FY_ERR_FORMAT, "%s: image_uint8 must be uint8 of the image's size", fy_st_path(f));
    float *a = malloc(2 * (size_t)n * sizeof *a), *b = a ? a + n : NULL;
    if (!a) return fy_error(FY_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        a[i] = nearbyintf(r->image[i] * 255.0f);
        b[i] = ((const uint8_t *)ref.data)[i];
    }
    fy_tensor ta = fy_tensor_wrap(a, FY_F32, ref.ndim, ref.shape, FY_HOST);
    fy_tensor tb = fy_tensor_wrap(b, FY_F32, ref.ndim, ref.shape, FY_HOST);
    fy_status s = fy_verify_compare(ctx, "image_uint8", &ta, &tb, UINT8_TOLERANCE);
    free(a);
    return s;
}

fy_status fy_verify_flux_pipeline(fy_verify_ctx *ctx, const fy_st_file *fixture)
{
    (void)fixture;
    if (ctx->options->storage_dtype != FY_DTYPE_COUNT)
        return fy_error(FY_ERR_UNSUPPORTED, "--component pipeline compares with diffusers' full-precision run and "
                        "cannot pass with --storage-dtype: verify --component transformer with it, or drop "
                        "--storage-dtype");
    fy_st_file *f = NULL;
    cJSON *info = NULL;
    fy_flux_params p;
    fy_flux_params_init(&p);
    fy_flux_result r = {0};
    fy_status s = fy_flux_open_fixture(ctx, fy_flux_is_schnell(ctx->model) ? "pipeline_schnell.safetensors"
                                                                             : "pipeline.safetensors", &f);
    if (s == FY_OK) s = fy_flux_fixture_info(f, &info);
    if (s == FY_OK) s = read_params(f, info, &p);
    hook_ctx h = {ctx, f, FY_OK};
    p.hook = on_hook, p.hook_user = &h;
    if (s == FY_OK) s = fy_flux_t2i_run(fy_model_dir(ctx->model), ctx->options, &p, &r);
    if (s == FY_OK) s = h.status;
    if (s == FY_OK) s = compare_uint8(ctx, f, &r);
    fy_flux_result_free(&r);
    cJSON_Delete(info);
    fy_st_close(f);
    return s;
}
