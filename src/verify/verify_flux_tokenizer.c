/* Flux's two tokenizers against the fixtures: CLIP (BPE) and T5
 * (sentencepiece), each on the manifest's strings, unpadded and as the
 * pipeline pads and truncates them. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/clip_tokenizer.h"
#include "ferry/tokenizer.h"
#include "verify/verify_flux.h"

typedef fy_status (*encode_fn)(const void *tok, const char *text, int max_len, int64_t *ids, int *n_real);

static fy_status clip_encode(const void *tok, const char *text, int max_len, int64_t *ids, int *n_real)
{
    return fy_clip_tokenizer_encode(tok, text, max_len, ids, n_real, NULL);
}

static fy_status t5_encode(const void *tok, const char *text, int max_len, int64_t *ids, int *n_real)
{
    return fy_tokenizer_encode(tok, text, max_len, ids, NULL, n_real, NULL);
}

/* case{i}.input_ids (unpadded: room for more, so extra tokens show) and
 * case{i}.input_ids_padded (the reference's length). */
static fy_status compare_case(fy_verify_ctx *ctx, const fy_st_file *f, encode_fn enc, const void *tok, int i,
                              const char *text)
{
    const char *suffix[2] = {"input_ids", "input_ids_padded"};
    for (int k = 0; k < 2; k++) {
        char name[64];
        snprintf(name, sizeof name, "case%d.%s", i, suffix[k]);
        fy_tensor ref = {0};
        FY_TRY(fy_st_view(f, name, &ref));
        int64_t n = fy_tensor_numel(&ref);
        int max_len = k == 0 ? (int)n + (int)strlen(text) + 8 : (int)n;
        int64_t *ids = malloc((size_t)max_len * sizeof *ids);
        if (!ids) return fy_error(FY_ERR_NOMEM, "tokenizer: out of memory");
        int n_real = 0;
        fy_status s = enc(tok, text, max_len, ids, &n_real);
        if (s == FY_OK) s = fy_verify_compare_ids(ctx, name, ids, k == 0 ? (size_t)n_real : (size_t)max_len, &ref);
        free(ids);
        FY_TRY(s);
    }
    return FY_OK;
}

static fy_status compare_cases(fy_verify_ctx *ctx, const fy_st_file *f, encode_fn enc, const void *tok)
{
    cJSON *info = NULL;
    FY_TRY(fy_flux_fixture_info(f, &info));
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(info, "cases");
    fy_status s = cJSON_IsArray(cases) ? FY_OK
                                       : fy_error(FY_ERR_FORMAT, "%s: __metadata__ info has no \"cases\" array",
                                                  fy_st_path(f));
    int i = 0;
    for (const cJSON *c = cases ? cases->child : NULL; c && s == FY_OK; c = c->next, i++) {
        const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "text"));
        if (!text) s = fy_error(FY_ERR_FORMAT, "%s: case %d has no text", fy_st_path(f), i);
        else s = compare_case(ctx, f, enc, tok, i, text);
    }
    cJSON_Delete(info);
    return s;
}

static fy_status component_dir(const fy_verify_ctx *ctx, const char *name, const char **dir)
{
    const fy_component *c = ctx->model ? fy_model_component(ctx->model, name) : NULL;
    if (!c) return fy_error(FY_ERR_NOT_FOUND, "the model folder has no %s component", name);
    *dir = c->dir;
    return FY_OK;
}

fy_status fy_verify_flux_tokenizer(fy_verify_ctx *ctx, const fy_st_file *fixture)
{
    const char *dir = NULL;
    FY_TRY(component_dir(ctx, "tokenizer", &dir));
    fy_clip_tokenizer *tok = NULL;
    FY_TRY(fy_clip_tokenizer_load(dir, &tok));
    fy_status s = compare_cases(ctx, fixture, clip_encode, tok);
    fy_clip_tokenizer_free(tok);
    return s;
}

fy_status fy_verify_flux_tokenizer_2(fy_verify_ctx *ctx, const fy_st_file *fixture)
{
    const char *dir = NULL;
    FY_TRY(component_dir(ctx, "tokenizer_2", &dir));
    fy_tokenizer *tok = NULL;
    FY_TRY(fy_tokenizer_load(dir, &tok));
    fy_status s = compare_cases(ctx, fixture, t5_encode, tok);
    fy_tokenizer_free(tok);
    return s;
}
