/* The scheduler verifier: rebuilds each fixture's scheduler from the config
 * stored in the file and replays its steps. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/scheduler.h"
#include "verify/verify_scheduler.h"

static const char *const FIXTURE_FILES[] = {
    "scheduler_unipc.safetensors",
    "scheduler_unipc_shift5.safetensors",
    "scheduler_flowmatch_euler.safetensors",
};
/* The fixture made from the model's own scheduler_config.json. */
static const char MODEL_FIXTURE[] = "scheduler_unipc.safetensors";

#define STEP_TOLERANCE 1e-6
#define CHAIN_TOLERANCE 1e-5

/* ---- the config inside a fixture --------------------------------------- */

static fy_status config_from_info(const cJSON *info, const char *path, fy_config **cfg, size_t *num_steps)
{
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(info, "class");
    const cJSON *config = cJSON_GetObjectItemCaseSensitive(info, "config");
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(info, "num_inference_steps");
    if (!cJSON_IsString(cls) || !cJSON_IsObject(config) || !cJSON_IsNumber(steps))
        return fy_error(FY_ERR_FORMAT,
                        "%s: __metadata__ info needs \"class\", \"config\" and \"num_inference_steps\"", path);
    if (steps->valuedouble < 1 || steps->valuedouble > 1e6)
        return fy_error(FY_ERR_FORMAT, "%s: num_inference_steps %g is out of range", path, steps->valuedouble);
    cJSON *copy = cJSON_Duplicate(config, 1);
    if (!copy) return fy_error(FY_ERR_NOMEM, "%s: out of memory", path);
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "_class_name");
    char *text = NULL;
    if (cJSON_AddStringToObject(copy, "_class_name", cls->valuestring)) text = cJSON_PrintUnformatted(copy);
    cJSON_Delete(copy);
    if (!text) return fy_error(FY_ERR_NOMEM, "%s: out of memory", path);
    char label[1024];
    snprintf(label, sizeof label, "%s (__metadata__ info.config)", path);
    fy_status st = fy_config_parse(text, label, cfg);
    cJSON_free(text);
    if (st == FY_OK) *num_steps = (size_t)steps->valuedouble;
    return st;
}

fy_status fy_scheduler_fixture_config(const fy_st_file *f, fy_config **cfg, size_t *num_steps)
{
    if (!f || !cfg || !num_steps) return fy_error(FY_ERR_INVALID, "fy_scheduler_fixture_config: NULL argument");
    *cfg = NULL;
    const char *path = fy_st_path(f);
    const char *text = fy_st_metadata(f, "info");
    if (!text) return fy_error(FY_ERR_FORMAT, "%s: no \"info\" entry in __metadata__", path);
    cJSON *info = cJSON_Parse(text);
    if (!info) return fy_error(FY_ERR_FORMAT, "%s: __metadata__ info is not JSON", path);
    fy_status st = config_from_info(info, path, cfg, num_steps);
    cJSON_Delete(info);
    return st;
}

/* ---- comparisons ----------------------------------------------------------- */

static fy_status load_f32(const fy_st_file *f, const char *name, fy_tensor *out)
{
    fy_tensor view;
    FY_TRY(fy_st_view(f, name, &view));
    return fy_tensor_to_f32(&view, out);
}

static fy_status compare_schedule(fy_verify_ctx *ctx, const char *stem, const fy_scheduler *s,
                                  const fy_st_file *f)
{
    char name[256];
    size_t n = fy_scheduler_num_steps(s);
    fy_tensor ref;
    FY_TRY(fy_st_view(f, "timesteps", &ref));
    snprintf(name, sizeof name, "%s.timesteps", stem);
    const int64_t *ints = fy_scheduler_timesteps_int(s);
    if (ints) {
        FY_TRY(fy_verify_compare_ids(ctx, name, ints, n, &ref));
    } else {
        int64_t shape[1] = {(int64_t)n};
        fy_tensor ours = fy_tensor_wrap((void *)fy_scheduler_timesteps(s), FY_F32, 1, shape, FY_HOST);
        FY_TRY(fy_verify_compare(ctx, name, &ours, &ref, STEP_TOLERANCE));
    }
    FY_TRY(fy_st_view(f, "sigmas", &ref));
    int64_t shape[1] = {(int64_t)n + 1};
    fy_tensor ours = fy_tensor_wrap((void *)fy_scheduler_sigmas(s), FY_F32, 1, shape, FY_HOST);
    snprintf(name, sizeof name, "%s.sigmas", stem);
    return fy_verify_compare(ctx, name, &ours, &ref, STEP_TOLERANCE);
}

/* Step i gets the reference sample.i, so each comparison sees one step. */
static fy_status compare_one_step(fy_verify_ctx *ctx, const char *stem, fy_scheduler *s,
                                  const fy_st_file *f, size_t i, fy_tensor *ours)
{
    char name[256];
    fy_tensor mo = {0}, x = {0}, want = {0};
    snprintf(name, sizeof name, "model_output.%zu", i);
    fy_status st = load_f32(f, name, &mo);
    snprintf(name, sizeof name, "sample.%zu", i);
    if (st == FY_OK) st = load_f32(f, name, &x);
    snprintf(name, sizeof name, "sample.%zu", i + 1);
    if (st == FY_OK) st = load_f32(f, name, &want);
    size_t n = (size_t)fy_tensor_numel(ours);
    if (st == FY_OK && ((size_t)fy_tensor_numel(&mo) != n || (size_t)fy_tensor_numel(&x) != n))
        st = fy_error(FY_ERR_FORMAT, "%s: model_output.%zu and sample.%zu differ in size from sample.0",
                      fy_st_path(f), i, i);
    if (st == FY_OK) st = fy_scheduler_step(s, mo.data, x.data, ours->data, n);
    if (snprintf(name, sizeof name, "%s.sample.%zu", stem, i + 1) >= (int)sizeof name) name[0] = '\0';
    if (st == FY_OK) st = fy_verify_compare(ctx, name, ours, &want, STEP_TOLERANCE);
    fy_tensor_free(&mo);
    fy_tensor_free(&x);
    fy_tensor_free(&want);
    return st;
}

/* The whole chain fed its own outputs, as a pipeline runs it. */
static fy_status compare_chain(fy_verify_ctx *ctx, const char *stem, fy_scheduler *s, const fy_st_file *f,
                               fy_tensor *x)
{
    char name[256];
    size_t steps = fy_scheduler_num_steps(s);
    size_t n = (size_t)fy_tensor_numel(x);
    fy_scheduler_reset(s);
    fy_status st = FY_OK;
    for (size_t i = 0; i < steps && st == FY_OK; i++) {
        fy_tensor mo = {0};
        snprintf(name, sizeof name, "model_output.%zu", i);
        st = load_f32(f, name, &mo);
        if (st == FY_OK && (size_t)fy_tensor_numel(&mo) != n)
            st = fy_error(FY_ERR_FORMAT, "%s: %s differs in size from sample.0", fy_st_path(f), name);
        if (st == FY_OK) st = fy_scheduler_step(s, mo.data, x->data, x->data, n);
        fy_tensor_free(&mo);
    }
    fy_tensor want = {0};
    snprintf(name, sizeof name, "sample.%zu", steps);
    if (st == FY_OK) st = load_f32(f, name, &want);
    if (snprintf(name, sizeof name, "%s.chain.sample.%zu", stem, steps) >= (int)sizeof name) name[0] = '\0';
    if (st == FY_OK) st = fy_verify_compare(ctx, name, x, &want, CHAIN_TOLERANCE);
    fy_tensor_free(&want);
    return st;
}

static fy_status compare_steps(fy_verify_ctx *ctx, const char *stem, fy_scheduler *s, const fy_st_file *f)
{
    fy_tensor x0 = {0}, ours = {0};
    FY_TRY(load_f32(f, "sample.0", &x0));
    fy_status st = fy_tensor_alloc(&ours, FY_F32, x0.ndim, x0.shape);
    for (size_t i = 0; st == FY_OK && i < fy_scheduler_num_steps(s); i++)
        st = compare_one_step(ctx, stem, s, f, i, &ours);
    if (st == FY_OK) st = compare_chain(ctx, stem, s, f, &x0);
    fy_tensor_free(&ours);
    fy_tensor_free(&x0);
    return st;
}

/* ---- per file ------------------------------------------------------------ */

static void stem_of(const char *file, char *stem, size_t size)
{
    snprintf(stem, size, "%s", file);
    char *dot = strstr(stem, ".safetensors");
    if (dot) *dot = '\0';
}

static fy_status open_fixture(const fy_verify_ctx *ctx, const char *file, fy_st_file **f)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", ctx->fixture_dir, file) >= (int)sizeof path)
        return fy_error(FY_ERR_INVALID, "%s: fixture path too long", ctx->fixture_dir);
    return fy_st_open(path, f);
}

static fy_status verify_file(fy_verify_ctx *ctx, const char *file)
{
    char stem[256];
    stem_of(file, stem, sizeof stem);
    fy_st_file *f = NULL;
    fy_config *cfg = NULL;
    fy_scheduler *s = NULL;
    size_t steps = 0;
    fy_status st = open_fixture(ctx, file, &f);
    if (st == FY_OK) st = fy_scheduler_fixture_config(f, &cfg, &steps);
    if (st == FY_OK) st = fy_scheduler_create_from_config(cfg, &s);
    if (st == FY_OK) st = fy_scheduler_set_timesteps(s, steps);
    if (st == FY_OK) st = compare_schedule(ctx, stem, s, f);
    if (st == FY_OK) st = compare_steps(ctx, stem, s, f);
    fy_scheduler_free(s);
    fy_config_free(cfg);
    fy_st_close(f);
    return st;
}

/* The model folder's scheduler_config.json must give the schedule the
 * fixture was made with. */
static fy_status verify_model_config(fy_verify_ctx *ctx)
{
    const fy_component *c = fy_model_component(ctx->model, "scheduler");
    if (!c || !c->config) {
        fy_error_clear();
        return FY_OK;
    }
    fy_st_file *f = NULL;
    fy_config *fixture_cfg = NULL;
    fy_scheduler *s = NULL;
    size_t steps = 0;
    fy_status st = open_fixture(ctx, MODEL_FIXTURE, &f);
    if (st == FY_OK) st = fy_scheduler_fixture_config(f, &fixture_cfg, &steps);
    if (st == FY_OK) st = fy_scheduler_create_from_config(c->config, &s);
    if (st == FY_OK) st = fy_scheduler_set_timesteps(s, steps);
    if (st == FY_OK) st = compare_schedule(ctx, "model.scheduler", s, f);
    fy_scheduler_free(s);
    fy_config_free(fixture_cfg);
    fy_st_close(f);
    return st;
}

fy_status fy_verify_scheduler(fy_verify_ctx *ctx, const fy_st_file *fixture)
{
    (void)fixture;
    if (!ctx || !ctx->fixture_dir) return fy_error(FY_ERR_INVALID, "fy_verify_scheduler: no fixture folder");
    fy_status first = FY_OK;
    char first_msg[1024] = "";
    for (size_t i = 0; i < sizeof FIXTURE_FILES / sizeof FIXTURE_FILES[0]; i++) {
        fy_status st = verify_file(ctx, FIXTURE_FILES[i]);
        if (st != FY_OK && first == FY_OK) {
            first = st;
            snprintf(first_msg, sizeof first_msg, "%s", fy_error_message());
        }
    }
    if (ctx->model) {
        fy_status st = verify_model_config(ctx);
        if (st != FY_OK && first == FY_OK) {
            first = st;
            snprintf(first_msg, sizeof first_msg, "%s", fy_error_message());
        }
    }
    if (first != FY_OK) return fy_error(first, "%s", first_msg);
    return FY_OK;
}
