/* The tokenizer and text encoder verifiers. */
#include "verify/verify_text_encoder.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ferry/backend.h"
#include "ferry/engine.h"
#include "ferry/log.h"
#include "ferry/tokenizer.h"
#include "ferry/umt5.h"

#define TEXT_ENCODER_TOLERANCE 1e-5
#define PIPELINE_FIXTURE "pipeline.safetensors"
#define TEXT_ENCODER_FIXTURE "text_encoder.safetensors"

/* ---- fixture helpers ---------------------------------------------------------- */

static fy_status open_info(const fy_st_file *f, cJSON **out)
{
    const char *text = fy_st_metadata(f, "info");
    if (!text) return fy_error(FY_ERR_FORMAT, "%s: no \"info\" entry in __metadata__", fy_st_path(f));
    *out = cJSON_Parse(text);
    if (!*out) return fy_error(FY_ERR_FORMAT, "%s: __metadata__ info is not JSON", fy_st_path(f));
    return FY_OK;
}

static fy_status info_string(const cJSON *info, const fy_st_file *f, const char *key, const char **out)
{
    *out = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(info, key));
    if (!*out) return fy_error(FY_ERR_FORMAT, "%s: __metadata__ info has no string \"%s\"", fy_st_path(f), key);
    return FY_OK;
}

static fy_status info_length(const cJSON *info, const fy_st_file *f, const char *key, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(info, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 1 << 20)
        return fy_error(FY_ERR_FORMAT, "%s: __metadata__ info \"%s\" must be a positive length", fy_st_path(f), key);
    *out = (int)v->valuedouble;
    return FY_OK;
}

/* An int64 tensor of rank 1 or 2 as [rows, cols]. */
static fy_status ids_view(const fy_st_file *f, const char *name, fy_tensor *t, int64_t *rows, int64_t *cols)
{
    FY_TRY(fy_st_view(f, name, t));
    if (t->dtype != FY_I64 || t->ndim < 1 || t->ndim > 2)
        return fy_error(FY_ERR_FORMAT, "%s: %s must be int64 of rank 1 or 2", fy_st_path(f), name);
    *rows = t->ndim == 2 ? t->shape[0] : 1;
    *cols = t->shape[t->ndim - 1];
    return FY_OK;
}

static bool fixture_exists(const fy_verify_ctx *ctx, const char *file, char *path, size_t size)
{
    struct stat st;
    return snprintf(path, size, "%s/%s", ctx->fixture_dir, file) < (int)size && stat(path, &st) == 0;
}

static fy_status load_tokenizer(const fy_verify_ctx *ctx, fy_tokenizer **tok)
{
    const fy_component *c = ctx->model ? fy_model_component(ctx->model, "tokenizer") : NULL;
    if (!c) return fy_error(FY_ERR_NOT_FOUND, "the model folder has no tokenizer component");
    return fy_tokenizer_load(c->dir, tok);
}

/* ---- tokenizer ------------------------------------------------------------------ */

static fy_status compare_case(fy_verify_ctx *ctx, const fy_tokenizer *tok, const fy_st_file *f, int i,
                              const char *text)
{
    char name[64];
    snprintf(name, sizeof name, "case%d.input_ids", i);
    fy_tensor ref = {0};
    int64_t rows = 0, cols = 0;
    FY_TRY(ids_view(f, name, &ref, &rows, &cols));
    /* Room for more tokens than the reference, so extra tokens show as a mismatch. */
    int max_len = (int)(rows * cols) + (int)strlen(text) + 8;
    int64_t *ids = malloc((size_t)max_len * sizeof *ids);
    if (!ids) return fy_error(FY_ERR_NOMEM, "tokenizer: out of memory");
    int n_real = 0;
    fy_status s = fy_tokenizer_encode(tok, text, max_len, ids, NULL, &n_real, NULL);
    if (s == FY_OK) s = fy_verify_compare_ids(ctx, name, ids, (size_t)n_real, &ref);
    free(ids);
    return s;
}

static fy_status compare_cases(fy_verify_ctx *ctx, const fy_tokenizer *tok, const fy_st_file *f)
{
    cJSON *info = NULL;
    FY_TRY(open_info(f, &info));
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(info, "cases");
    fy_status s = cJSON_IsArray(cases) ? FY_OK
                                       : fy_error(FY_ERR_FORMAT, "%s: __metadata__ info has no \"cases\" array",
                                                  fy_st_path(f));
    int i = 0;
    for (const cJSON *c = cases ? cases->child : NULL; c && s == FY_OK; c = c->next, i++) {
        const char *text = NULL;
        s = info_string(c, f, "text", &text);
        if (s == FY_OK) s = compare_case(ctx, tok, f, i, text);
    }
    cJSON_Delete(info);
    return s;
}

/* Padded, truncated ids of text_encoder.safetensors' texts. */
static fy_status compare_padded(fy_verify_ctx *ctx, const fy_tokenizer *tok, const fy_st_file *f)
{
    cJSON *info = NULL;
    FY_TRY(open_info(f, &info));
    const cJSON *texts = cJSON_GetObjectItemCaseSensitive(info, "texts");
    int max_len = 0, n = cJSON_GetArraySize(texts);
    fy_tensor ref_ids = {0}, ref_mask = {0};
    int64_t rows = 0, cols = 0, mrows = 0, mcols = 0;
    fy_status s = info_length(info, f, "max_length", &max_len);
    if (s == FY_OK) s = ids_view(f, "input_ids", &ref_ids, &rows, &cols);
    if (s == FY_OK) s = ids_view(f, "attention_mask", &ref_mask, &mrows, &mcols);
    if (s == FY_OK && (!cJSON_IsArray(texts) || rows != n || mrows != n))
        s = fy_error(FY_ERR_FORMAT, "%s: info \"texts\" must list one text per input_ids row", fy_st_path(f));
    size_t cells = (size_t)n * (size_t)max_len;
    int64_t *ids = malloc((cells ? cells : 1) * sizeof *ids), *mask = malloc((cells ? cells : 1) * sizeof *mask);
    if (s == FY_OK && (!ids || !mask)) s = fy_error(FY_ERR_NOMEM, "tokenizer: out of memory");
    for (int i = 0; i < n && s == FY_OK; i++) {
        const char *text = cJSON_GetStringValue(cJSON_GetArrayItem(texts, i));
        if (!text) s = fy_error(FY_ERR_FORMAT, "%s: info \"texts\"[%d] is not a string", fy_st_path(f), i);
        if (s == FY_OK)
            s = fy_tokenizer_encode(tok, text, max_len, ids + (size_t)i * (size_t)max_len,
                                    mask + (size_t)i * (size_t)max_len, NULL, NULL);
    }
    if (s == FY_OK) s = fy_verify_compare_ids(ctx, "text_encoder.input_ids", ids, cells, &ref_ids);
    if (s == FY_OK) s = fy_verify_compare_ids(ctx, "text_encoder.attention_mask", mask, cells, &ref_mask);
    free(ids);
    free(mask);
    cJSON_Delete(info);
    return s;
}

fy_status fy_verify_tokenizer(fy_verify_ctx *ctx, const fy_st_file *fixture)
{
    if (!ctx || !fixture) return fy_error(FY_ERR_INVALID, "fy_verify_tokenizer: no fixture");
    fy_tokenizer *tok = NULL;
    FY_TRY(load_tokenizer(ctx, &tok));
    fy_status s = compare_cases(ctx, tok, fixture);
    char path[4096];
    if (s == FY_OK && fixture_exists(ctx, TEXT_ENCODER_FIXTURE, path, sizeof path)) {
        fy_st_file *f = NULL;
        s = fy_st_open(path, &f);
        if (s == FY_OK) s = compare_padded(ctx, tok, f);
        fy_st_close(f);
    }
    fy_tokenizer_free(tok);
    return s;
}

/* ---- text encoder ------------------------------------------------------------------ */

typedef struct te_run {
    fy_engine *e;
    fy_umt5 *m;
    fy_tokenizer *tok;
    fy_st_file *pipe;      /* pipeline.safetensors, when present */
    const char *texts[2];  /* its cleaned prompt and negative prompt */
    int pipe_len;          /* its max_sequence_length */
    cJSON *pipe_info;
} te_run;

static fy_status create_engine(const fy_run_options *o, fy_engine **e)
{
    return o->text_encoder_cpu_offload ? fy_engine_create_host(o, e) : fy_engine_create(o, e);
}

static fy_status open_pipeline(fy_verify_ctx *ctx, te_run *r)
{
    char path[4096];
    if (!fixture_exists(ctx, PIPELINE_FIXTURE, path, sizeof path)) {
        if (ctx->out) fprintf(ctx->out, "  (no %s: prompt embeddings not compared)\n", PIPELINE_FIXTURE);
        return FY_OK;
    }
    FY_TRY(fy_st_open(path, &r->pipe));
    FY_TRY(open_info(r->pipe, &r->pipe_info));
    FY_TRY(info_string(r->pipe_info, r->pipe, "prompt_cleaned", &r->texts[0]));
    FY_TRY(info_string(r->pipe_info, r->pipe, "negative_prompt_cleaned", &r->texts[1]));
    FY_TRY(info_length(r->pipe_info, r->pipe, "max_sequence_length", &r->pipe_len));
    return load_tokenizer(ctx, &r->tok);
}

static fy_status setup(fy_verify_ctx *ctx, te_run *r, int64_t batch, int64_t len)
{
    const fy_component *c = ctx->model ? fy_model_component(ctx->model, "text_encoder") : NULL;
    if (!c) return fy_error(FY_ERR_NOT_FOUND, "the model folder has no text_encoder component");
    FY_TRY(open_pipeline(ctx, r));
    FY_TRY(create_engine(ctx->options, &r->e));
    FY_TRY(fy_umt5_load(c, r->e, &r->m));
    FY_TRY(fy_umt5_set_threads(r->m, ctx->options->threads));
    uint64_t act = fy_umt5_activation_bytes(r->m, batch, len);
    uint64_t act_pipe = r->pipe ? fy_umt5_activation_bytes(r->m, 2, r->pipe_len) : 0;
    FY_TRY(fy_engine_reserve(r->e, act > act_pipe ? act : act_pipe));
    return fy_engine_prepare(r->e);
}

static void teardown(te_run *r)
{
    fy_umt5_free(r->m);
    fy_engine_free(r->e);
    fy_tokenizer_free(r->tok);
    cJSON_Delete(r->pipe_info);
    fy_st_close(r->pipe);
}

static fy_status compare_hidden(fy_verify_ctx *ctx, const fy_st_file *f, float *const *hidden, int64_t layers,
                                const int64_t *shape)
{
    char name[64];
    for (int64_t k = 0; k <= layers + 1; k++) {
        if (k <= layers) snprintf(name, sizeof name, "hidden_states.%lld", (long long)k);
        else snprintf(name, sizeof name, "last_hidden_state");
        fy_tensor ref, ours = fy_tensor_wrap(hidden[k <= layers ? k : layers], FY_F32, 3, shape, FY_HOST);
        FY_TRY(fy_st_view(f, name, &ref));
        FY_TRY(fy_verify_compare(ctx, name, &ours, &ref, TEXT_ENCODER_TOLERANCE));
    }
    return FY_OK;
}

static fy_status run_fixture(fy_verify_ctx *ctx, te_run *r, const fy_st_file *f, const int64_t *ids,
                             const int64_t *mask, int64_t batch, int64_t len)
{
    const fy_umt5_config *cfg = fy_umt5_get_config(r->m);
    int64_t layers = cfg->num_layers, shape[3] = {batch, len, cfg->d_model};
    size_t each = (size_t)(batch * len * cfg->d_model);
    float **hidden = calloc((size_t)layers + 1, sizeof *hidden);
    fy_status s = hidden ? FY_OK : fy_error(FY_ERR_NOMEM, "text encoder: out of memory");
    for (int64_t k = 0; k <= layers && s == FY_OK; k++)
        if (!(hidden[k] = malloc(each * sizeof(float)))) s = fy_error(FY_ERR_NOMEM, "text encoder: out of memory");
    if (s == FY_OK) s = fy_umt5_forward(r->m, ids, mask, batch, len, NULL, hidden);
    if (s == FY_OK) s = compare_hidden(ctx, f, hidden, layers, shape);
    for (int64_t k = 0; hidden && k <= layers; k++) free(hidden[k]);
    free(hidden);
    return s;
}

static fy_status compare_prompt(fy_verify_ctx *ctx, te_run *r, int i, const char *stem, const int64_t *ids,
                                const int64_t *mask, float *embeds)
{
    char name[96];
    int64_t L = r->pipe_len, shape[3] = {1, L, fy_umt5_get_config(r->m)->d_model};
    fy_tensor ref = {0};
    snprintf(name, sizeof name, "%s.input_ids", stem);
    FY_TRY(fy_st_view(r->pipe, name, &ref));
    FY_TRY(fy_verify_compare_ids(ctx, name, ids + i * L, (size_t)L, &ref));
    snprintf(name, sizeof name, "%s.attention_mask", stem);
    FY_TRY(fy_st_view(r->pipe, name, &ref));
    FY_TRY(fy_verify_compare_ids(ctx, name, mask + i * L, (size_t)L, &ref));
    snprintf(name, sizeof name, "%s_embeds", stem);
    FY_TRY(fy_st_view(r->pipe, name, &ref));
    fy_tensor ours = fy_tensor_wrap(embeds + i * L * shape[2], FY_F32, 3, shape, FY_HOST);
    snprintf(name, sizeof name, "pipeline.%s_embeds", stem);
    return fy_verify_compare(ctx, name, &ours, &ref, TEXT_ENCODER_TOLERANCE);
}

static fy_status run_pipeline(fy_verify_ctx *ctx, te_run *r)
{
    if (!r->pipe) return FY_OK;
    size_t L = (size_t)r->pipe_len, d = (size_t)fy_umt5_get_config(r->m)->d_model;
    int64_t *ids = malloc(2 * L * sizeof *ids), *mask = malloc(2 * L * sizeof *mask);
    float *embeds = malloc(2 * L * d * sizeof *embeds);
    fy_status s = ids && mask && embeds ? FY_OK : fy_error(FY_ERR_NOMEM, "text encoder: out of memory");
    if (s == FY_OK) s = fy_umt5_encode_prompts(r->m, r->tok, r->texts, NULL, 2, r->pipe_len, embeds, ids, mask, NULL);
    if (s == FY_OK) s = compare_prompt(ctx, r, 0, "prompt", ids, mask, embeds);
    if (s == FY_OK) s = compare_prompt(ctx, r, 1, "negative_prompt", ids, mask, embeds);
    free(ids);
    free(mask);
    free(embeds);
    return s;
}

fy_status fy_verify_text_encoder(fy_verify_ctx *ctx, const fy_st_file *fixture)
{
    if (!ctx || !fixture || !ctx->options) return fy_error(FY_ERR_INVALID, "fy_verify_text_encoder: no fixture");
    fy_tensor ids = {0}, mask = {0};
    int64_t batch = 0, len = 0, mb = 0, ml = 0;
    FY_TRY(ids_view(fixture, "input_ids", &ids, &batch, &len));
    FY_TRY(ids_view(fixture, "attention_mask", &mask, &mb, &ml));
    if (mb != batch || ml != len)
        return fy_error(FY_ERR_FORMAT, "%s: attention_mask and input_ids differ in shape", fy_st_path(fixture));
    te_run r = {0};
    fy_status s = setup(ctx, &r, batch, len);
    if (s == FY_OK) s = run_fixture(ctx, &r, fixture, ids.data, mask.data, batch, len);
    if (s == FY_OK) s = run_pipeline(ctx, &r);
    if (s == FY_OK) s = fy_engine_finish(r.e);
    if (s == FY_OK && fy_log_get_level() >= FY_LOG_INFO) fy_engine_stats_print(r.e, stderr);
    teardown(&r);
    return s;
}
