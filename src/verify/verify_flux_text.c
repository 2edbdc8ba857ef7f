/* Flux's two text encoders against the fixtures: CLIP (every layer, the
 * final state, the pooled output at the end-of-text) and T5 v1.1 (every
 * block, the final state), on the options' device and plan. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/clip_text.h"
#include "ferry/engine.h"
#include "ferry/log.h"
#include "ferry/umt5.h"
#include "verify/verify_flux.h"

#define TEXT_TOLERANCE 1e-5

static fy_status ids_view(const fy_st_file *f, fy_tensor *t, int64_t *batch, int64_t *len)
{
    FY_TRY(fy_st_view(f, "input_ids", t));
    if (t->dtype != FY_I64 || t->ndim != 2)
        return fy_error(FY_ERR_FORMAT, "%s: input_ids must be int64 [batch, len]", fy_st_path(f));
    *batch = t->shape[0];
    *len = t->shape[1];
    return FY_OK;
}

static fy_status create_engine(const fy_run_options *o, fy_engine **e)
{
    return o->text_encoder_cpu_offload ? fy_engine_create_host(o, e) : fy_engine_create(o, e);
}

static const fy_component *component(const fy_verify_ctx *ctx, const char *name)
{
    const fy_component *c = ctx->model ? fy_model_component(ctx->model, name) : NULL;
    if (!c) fy_error(FY_ERR_NOT_FOUND, "the model folder has no %s component", name);
    return c;
}

static fy_status compare(fy_verify_ctx *ctx, const fy_st_file *f, const char *name, const float *ours, int ndim,
                         const int64_t *shape)
{
    fy_tensor ref, mine = fy_tensor_wrap((void *)ours, FY_F32, ndim, shape, FY_HOST);
    FY_TRY(fy_st_view(f, name, &ref));
    return fy_verify_compare(ctx, name, &mine, &ref, TEXT_TOLERANCE);
}

/* n + 1 host buffers of `each` floats (NULL on failure; free with free_bufs). */
static float **alloc_bufs(int64_t n, size_t each)
{
    float **b = calloc((size_t)n + 1, sizeof *b);
    for (int64_t k = 0; b && k <= n; k++)
        if (!(b[k] = malloc(each * sizeof(float)))) {
            for (int64_t j = 0; j < k; j++) free(b[j]);
            free(b);
            return NULL;
        }
    return b;
}

static void free_bufs(float **b, int64_t n)
{
    for (int64_t k = 0; b && k <= n; k++) free(b[k]);
    free(b);
}

/* ---- CLIP ---------------------------------------------------------------------------- */

static fy_status clip_compare(fy_verify_ctx *ctx, const fy_st_file *f, fy_clip_text *m, const int64_t *ids,
                              int64_t B, int64_t L)
{
    const fy_clip_text_config *k = fy_clip_text_get_config(m);
    int64_t shape[3] = {B, L, k->hidden}, pshape[2] = {B, k->hidden};
    size_t each = (size_t)(B * L * k->hidden);
    float **hidden = alloc_bufs(k->layers + 1, each);
    if (!hidden) return fy_error(FY_ERR_NOMEM, "text encoder: out of memory");
    float *last = hidden[k->layers + 1], *pooled = malloc((size_t)(B * k->hidden) * sizeof(float));
    fy_status s = pooled ? FY_OK : fy_error(FY_ERR_NOMEM, "text encoder: out of memory");
    if (s == FY_OK) s = fy_clip_text_forward(m, ids, B, L, last, pooled, hidden);
    if (s == FY_OK) s = compare(ctx, f, "embeddings", hidden[0], 3, shape);
    for (int64_t l = 0; s == FY_OK && l < k->layers; l++) {
        char name[32];
        snprintf(name, sizeof name, "layers.%lld", (long long)l);
        s = compare(ctx, f, name, hidden[l + 1], 3, shape);
    }
    if (s == FY_OK) s = compare(ctx, f, "last_hidden_state", last, 3, shape);
    if (s == FY_OK) s = compare(ctx, f, "pooler_output", pooled, 2, pshape);
    int64_t eos[64];
    for (int64_t b = 0; b < B && b < 64; b++) eos[b] = fy_clip_text_eos_index(m, ids + b * L, L);
    fy_tensor ref;
    if (s == FY_OK && fy_st_find(f, "eos_index") && (s = fy_st_view(f, "eos_index", &ref)) == FY_OK)
        s = fy_verify_compare_ids(ctx, "eos_index", eos, (size_t)(B < 64 ? B : 64), &ref);
    free(pooled);
    free_bufs(hidden, k->layers + 1);
    return s;
}

fy_status fy_verify_flux_text_encoder(fy_verify_ctx *ctx, const fy_st_file *fixture)
{
    const fy_component *c = component(ctx, "text_encoder");
    if (!c) return FY_ERR_NOT_FOUND;
    fy_tensor ids;
    int64_t B = 0, L = 0;
    FY_TRY(ids_view(fixture, &ids, &B, &L));
    fy_engine *e = NULL;
    fy_clip_text *m = NULL;
    fy_status s = create_engine(ctx->options, &e);
    if (s == FY_OK) s = fy_clip_text_load(c, e, &m);
    if (s == FY_OK) s = fy_clip_text_set_threads(m, ctx->options->threads);
    if (s == FY_OK) s = fy_engine_reserve(e, fy_clip_text_activation_bytes(m, B, L));
    if (s == FY_OK) s = fy_engine_prepare(e);
    if (s == FY_OK) s = clip_compare(ctx, fixture, m, ids.data, B, L);
    if (s == FY_OK) s = fy_engine_finish(e);
    if (s == FY_OK && fy_log_get_level() >= FY_LOG_INFO) fy_engine_stats_print(e, stderr);
    fy_clip_text_free(m);
    fy_engine_free(e);
    return s;
}

/* ---- T5 ------------------------------------------------------------------------------- */

/* The pipeline runs T5 without a mask: every position is a key. */
static fy_status t5_compare(fy_verify_ctx *ctx, const fy_st_file *f, fy_umt5 *m, const int64_t *ids, int64_t B,
                            int64_t L)
{
    const fy_umt5_config *k = fy_umt5_get_config(m);
    int64_t shape[3] = {B, L, k->d_model};
    size_t each = (size_t)(B * L * k->d_model);
    float **hidden = alloc_bufs(k->num_layers, each);
    int64_t *mask = malloc((size_t)(B * L) * sizeof *mask);
    fy_status s = hidden && mask ? FY_OK : fy_error(FY_ERR_NOMEM, "text encoder: out of memory");
    for (int64_t i = 0; s == FY_OK && i < B * L; i++) mask[i] = 1;
    if (s == FY_OK) s = fy_umt5_forward(m, ids, mask, B, L, NULL, hidden);
    if (s == FY_OK) s = compare(ctx, f, "embeddings", hidden[0], 3, shape);
    /* hidden[k] is block k-1's output; the last block's shows in last_hidden_state. */
    for (int64_t l = 0; s == FY_OK && l + 1 < k->num_layers; l++) {
        char name[32];
        snprintf(name, sizeof name, "layers.%lld", (long long)l);
        s = compare(ctx, f, name, hidden[l + 1], 3, shape);
    }
    if (s == FY_OK) s = compare(ctx, f, "last_hidden_state", hidden[k->num_layers], 3, shape);
    free(mask);
    free_bufs(hidden, k->num_layers);
    return s;
}

fy_status fy_verify_flux_text_encoder_2(fy_verify_ctx *ctx, const fy_st_file *fixture)
{
    const fy_component *c = component(ctx, "text_encoder_2");
    if (!c) return FY_ERR_NOT_FOUND;
    fy_tensor ids;
    int64_t B = 0, L = 0;
    FY_TRY(ids_view(fixture, &ids, &B, &L));
    fy_engine *e = NULL;
    fy_umt5 *m = NULL;
    fy_status s = create_engine(ctx->options, &e);
    if (s == FY_OK) s = fy_umt5_load(c, e, &m);
    if (s == FY_OK) s = fy_umt5_set_threads(m, ctx->options->threads);
    if (s == FY_OK) s = fy_engine_reserve(e, fy_umt5_activation_bytes(m, B, L));
    if (s == FY_OK) s = fy_engine_prepare(e);
    if (s == FY_OK) s = t5_compare(ctx, fixture, m, ids.data, B, L);
    if (s == FY_OK) s = fy_engine_finish(e);
    if (s == FY_OK && fy_log_get_level() >= FY_LOG_INFO) fy_engine_stats_print(e, stderr);
    fy_umt5_free(m);
    fy_engine_free(e);
    return s;
}
