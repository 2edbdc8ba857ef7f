/* CLIPVisionModel's encoder on the engine: one SMALL group for the
 * embeddings, one BLOCK group per encoder layer. */
#include "ferry/clip_vision.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/ops.h"
#include "models/weight.h"
#include "models/workspace.h"
#include "models/clip_layer.h"

/* The embeddings group. */
enum { E_PATCH, E_CLASS, E_POS, E_PRE_W, E_PRE_B, E_COUNT };
/* One layer's group. */
enum {
    L_LN1_W, L_LN1_B, L_Q_W, L_Q_B, L_K_W, L_K_B, L_V_W, L_V_B, L_O_W, L_O_B,
    L_LN2_W, L_LN2_B, L_FC1_W, L_FC1_B, L_FC2_W, L_FC2_B, L_COUNT
};

struct fy_clip_vision {
    fy_clip_vision_config cfg;
    const fy_component *comp;
    fy_engine *engine;
    fy_ops *ops;
    int threads;
    int64_t run_layers;
    int component_id, embed_group;
    int *layer_groups;
    fy_tensor embed_w[E_COUNT];
    fy_tensor *layer_w; /* [run_layers][L_COUNT] */
};

/* ---- config and weights --------------------------------------------------- */

static fy_status positive(const fy_config *cfg, const char *key, int64_t max, int64_t *out)
{
    FY_TRY(fy_config_int(cfg, key, out));
    if (*out < 1 || *out > max)
        return fy_error(FY_ERR_FORMAT, "%s: \"%s\" is %lld; expected 1..%lld", fy_config_path(cfg), key,
                        (long long)*out, (long long)max);
    return FY_OK;
}

static fy_status read_config(const fy_config *cfg, fy_clip_vision_config *c)
{
    memset(c, 0, sizeof *c);
    const int64_t big = (int64_t)1 << 20;
    FY_TRY(positive(cfg, "hidden_size", big, &c->hidden));
    FY_TRY(positive(cfg, "num_hidden_layers", 4096, &c->layers));
    FY_TRY(positive(cfg, "num_attention_heads", 4096, &c->heads));
    FY_TRY(positive(cfg, "intermediate_size", big, &c->intermediate));
    FY_TRY(positive(cfg, "image_size", 16384, &c->image_size));
    FY_TRY(positive(cfg, "patch_size", 16384, &c->patch));
    FY_TRY(fy_config_int_or(cfg, "num_channels", 3, &c->channels));
    FY_TRY(fy_config_double_or(cfg, "layer_norm_eps", 1e-5, &c->eps));
    if (c->hidden % c->heads)
        return fy_error(FY_ERR_FORMAT, "%s: hidden_size %lld is not a multiple of num_attention_heads %lld",
                        fy_config_path(cfg), (long long)c->hidden, (long long)c->heads);
    if (c->image_size % c->patch)
        return fy_error(FY_ERR_FORMAT, "%s: image_size %lld is not a multiple of patch_size %lld", fy_config_path(cfg),
                        (long long)c->image_size, (long long)c->patch);
    if (c->channels != 3)
        return fy_error(FY_ERR_UNSUPPORTED, "%s: num_channels %lld (ferry feeds RGB images: 3)", fy_config_path(cfg),
                        (long long)c->channels);
    const char *act = NULL;
    FY_TRY(fy_config_string_or(cfg, "hidden_act", "quick_gelu", &act));
    if (strcmp(act, "gelu") != 0)
        return fy_error(FY_ERR_UNSUPPORTED, "%s: hidden_act \"%s\" is not supported (the Wan image encoder's is "
                        "\"gelu\")", fy_config_path(cfg), act);
    c->head_dim = c->hidden / c->heads;
    int64_t side = c->image_size / c->patch;
    c->tokens = 1 + side * side;
    return FY_OK;
}

/* name.weight [out, in] (in = 0: a vector [out]) and name.bias [out]. */
static fy_status pair(const fy_component *c, const char *prefix, int64_t out_dim, int64_t in, fy_tensor *w)
{
    char name[256];
    snprintf(name, sizeof name, "%s.weight", prefix);
    int64_t s[2] = {out_dim, in};
    FY_TRY(fy_weight_lookup(c, name, in ? 2 : 1, s, &w[0]));
    snprintf(name, sizeof name, "%s.bias", prefix);
    return fy_weight_lookup(c, name, 1, s, &w[1]);
}

static fy_status embed_weights(fy_clip_vision *m)
{
    const fy_clip_vision_config *g = &m->cfg;
    fy_tensor *w = m->embed_w;
    int64_t ps[4] = {g->hidden, g->channels, g->patch, g->patch}, pos[2] = {g->tokens, g->hidden};
    FY_TRY(fy_weight_lookup(m->comp, "vision_model.embeddings.patch_embedding.weight", 4, ps, &w[E_PATCH]));
    FY_TRY(fy_weight_lookup(m->comp, "vision_model.embeddings.class_embedding", 1, &g->hidden, &w[E_CLASS]));
    FY_TRY(fy_weight_lookup(m->comp, "vision_model.embeddings.position_embedding.weight", 2, pos, &w[E_POS]));
    return pair(m->comp, "vision_model.pre_layrnorm", g->hidden, 0, &w[E_PRE_W]);
}

static fy_status layer_weights(fy_clip_vision *m, int64_t i, fy_tensor *w)
{
    _Static_assert(L_COUNT == FY_CLIP_LAYER_WEIGHTS, "a CLIP layer's tensors");
    return fy_clip_layer_weights(m->comp, "vision_model", i, m->cfg.hidden, m->cfg.intermediate, w);
}

static fy_status declare(fy_clip_vision *m)
{
    fy_engine *e = m->engine;
    FY_TRY(fy_engine_add_component(e, "image_encoder", &m->component_id));
    FY_TRY(fy_engine_add_group(e, m->component_id, "embeddings", FY_GROUP_SMALL, m->embed_w, E_COUNT,
                               &m->embed_group));
    for (int64_t i = 0; i < m->run_layers; i++) {
        char name[64];
        snprintf(name, sizeof name, "layers.%lld", (long long)i);
        FY_TRY(fy_engine_add_group(e, m->component_id, name, FY_GROUP_BLOCK, &m->layer_w[i * L_COUNT], L_COUNT,
                                   &m->layer_groups[i]));
    }
    return FY_OK;
}

static fy_status load(fy_clip_vision *m, int64_t layers)
{
    FY_TRY(read_config(m->comp->config, &m->cfg));
    if (layers < 0 || layers > m->cfg.layers)
        return fy_error(FY_ERR_INVALID, "image encoder: %lld layers asked of %lld", (long long)layers,
                        (long long)m->cfg.layers);
    m->run_layers = layers ? layers : m->cfg.layers;
    m->layer_w = calloc((size_t)m->run_layers * L_COUNT, sizeof *m->layer_w);
    m->layer_groups = calloc((size_t)m->run_layers, sizeof *m->layer_groups);
    if (!m->layer_w || !m->layer_groups) return fy_error(FY_ERR_NOMEM, "image encoder: out of memory");
    FY_TRY(embed_weights(m));
    for (int64_t i = 0; i < m->run_layers; i++) FY_TRY(layer_weights(m, i, &m->layer_w[i * L_COUNT]));
    return declare(m);
}

/* The ops this model computes with (checked at load). */
static const fy_op CLIP_VISION_OPS[] = {FY_OP_ADD,  FY_OP_ATTENTION,  FY_OP_CONVERT, FY_OP_COPY,
                                        FY_OP_GELU, FY_OP_LAYER_NORM, FY_OP_LINEAR};

fy_status fy_clip_vision_load(const fy_component *c, fy_engine *e, int64_t layers, fy_clip_vision **out)
{
    if (!c || !e || !out) return fy_error(FY_ERR_INVALID, "fy_clip_vision_load: NULL argument");
    *out = NULL;
    if (!c->config || !c->weights)
        return fy_error(FY_ERR_FORMAT, "%s: the image encoder needs config.json and its weights", c->dir);
    FY_TRY(fy_engine_ops_require(e, CLIP_VISION_OPS, sizeof CLIP_VISION_OPS / sizeof CLIP_VISION_OPS[0]));
    fy_clip_vision *m = calloc(1, sizeof *m);
    if (!m) return fy_error(FY_ERR_NOMEM, "image encoder: out of memory");
    m->comp = c;
    m->engine = e;
    fy_status st = load(m, layers);
    if (st != FY_OK) {
        fy_clip_vision_free(m);
        return st;
    }
    *out = m;
    return FY_OK;
}

void fy_clip_vision_free(fy_clip_vision *m)
{
    if (!m) return;
    fy_ops_free(m->ops);
    free(m->layer_w);
    free(m->layer_groups);
    free(m);
}

const fy_clip_vision_config *fy_clip_vision_get_config(const fy_clip_vision *m)
{
    return &m->cfg;
}

int64_t fy_clip_vision_layers_run(const fy_clip_vision *m)
{
    return m->run_layers;
}

fy_status fy_clip_vision_set_threads(fy_clip_vision *m, int threads)
{
    if (threads < 0) return fy_error(FY_ERR_INVALID, "--threads %d: must be 0 (all cores) or more", threads);
    fy_ops_free(m->ops);
    m->ops = NULL;
    m->threads = threads;
    return FY_OK;
}

/* ---- activations ----------------------------------------------------------- */

typedef struct acts {
    int64_t B, R, np; /* items, token rows (B * tokens), patches per item */
    float *patches, *x, *h, *q, *k, *v, *o, *f, *vec;
    fy_workspace ws;
} acts;

static int64_t vec_floats(const fy_clip_vision_config *g)
{
    int64_t pos = g->tokens * g->hidden;
    return 2 * (pos > g->intermediate ? pos : g->intermediate);
}

/* The activations: one engine buffer. */
static void acts_table(const fy_clip_vision_config *g, acts *a, fy_workspace *t)
{
    int64_t rh = a->R * g->hidden;
    fy_ws_init(t, "image encoder activations");
    FY_WS_ADD(t, a->patches, a->B * a->np * g->channels * g->patch * g->patch, NULL);
    FY_WS_ADD(t, a->x, rh, NULL);
    FY_WS_ADD(t, a->h, rh, NULL);
    FY_WS_ADD(t, a->q, rh, NULL);
    FY_WS_ADD(t, a->k, rh, NULL);
    FY_WS_ADD(t, a->v, rh, NULL);
    FY_WS_ADD(t, a->o, rh, NULL);
    FY_WS_ADD(t, a->f, a->R * g->intermediate, NULL);
    FY_WS_ADD(t, a->vec, vec_floats(g), NULL);
}

uint64_t fy_clip_vision_activation_bytes(const fy_clip_vision *m, int64_t batch)
{
    if (!m || batch < 1) return 0;
    acts a = {.B = batch, .R = batch * m->cfg.tokens, .np = m->cfg.tokens - 1};
    fy_workspace t;
    acts_table(&m->cfg, &a, &t);
    return fy_ws_bytes(&t) + fy_engine_ops_scratch_bound(m->engine, false);
}

static fy_status alloc_acts(fy_clip_vision *m, acts *a)
{
    acts_table(&m->cfg, a, &a->ws);
    return fy_ws_alloc(&a->ws, m->engine);
}

/* ---- the math -------------------------------------------------------------- */

/* A vector weight as f32: in place, or converted into scratch slot 0 or 1. */
static fy_status vec_f32(fy_clip_vision *m, const acts *a, const fy_tensor *t, int slot, const float **out)
{
    if (t->dtype == FY_F32) return *out = t->data, FY_OK;
    float *dst = a->vec + (size_t)slot * (size_t)(vec_floats(&m->cfg) / 2);
    FY_TRY(m->ops->convert(m->ops, fy_f32(dst), fy_view_of(t->data, t->dtype), (size_t)fy_tensor_numel(t)));
    *out = dst;
    return FY_OK;
}

static fy_status linear(fy_clip_vision *m, const acts *a, const float *x, const fy_tensor *w, const fy_tensor *b,
                        float *y, int64_t rows)
{
    int64_t N = w->shape[0], K = fy_tensor_numel(w) / N;
    const float *bias = NULL;
    if (b) FY_TRY(vec_f32(m, a, b, 0, &bias));
    return m->ops->linear(m->ops, fy_f32(x), (fy_weight){w->data, w->dtype, NULL, 0}, fy_f32(bias), fy_f32(y), rows, K,
                          N);
}

static fy_status layer_norm(fy_clip_vision *m, const acts *a, const float *x, const fy_tensor *w, float *out)
{
    const float *g = NULL, *b = NULL;
    FY_TRY(vec_f32(m, a, &w[0], 0, &g));
    FY_TRY(vec_f32(m, a, &w[1], 1, &b));
    return m->ops->layer_norm(m->ops, fy_f32(x), fy_f32(g), fy_f32(b), fy_f32(out), a->R, m->cfg.hidden,
                              (float)m->cfg.eps);
}

/* pixel_values -> patches [B * np, C * p * p] in the conv weight's (c, kh, kw) order. */
static fy_status upload_patches(fy_clip_vision *m, const float *pixels, const acts *a)
{
    const fy_clip_vision_config *g = &m->cfg;
    int64_t p = g->patch, side = g->image_size / p, S = g->image_size, len = g->channels * p * p;
    float *host = malloc(sizeof *host * (size_t)(a->B * a->np * len));
    if (!host) return fy_error(FY_ERR_NOMEM, "image encoder: out of memory");
    for (int64_t b = 0; b < a->B; b++)
        for (int64_t py = 0; py < side; py++)
            for (int64_t px = 0; px < side; px++) {
                float *dst = host + ((b * side + py) * side + px) * len;
                for (int64_t c = 0; c < g->channels; c++)
                    for (int64_t y = 0; y < p; y++, dst += p)
                        memcpy(dst, pixels + ((b * g->channels + c) * S + py * p + y) * S + px * p,
                               sizeof *dst * (size_t)p);
            }
    fy_status st = fy_engine_upload(m->engine, a->patches, host, sizeof *host * (size_t)(a->B * a->np * len));
    free(host);
    return st;
}

/* x = pre_layrnorm(cat(class, patches) + position). */
static fy_status embeddings(fy_clip_vision *m, const fy_tensor *e, acts *a)
{
    const fy_clip_vision_config *g = &m->cfg;
    int64_t H = g->hidden, T = g->tokens;
    FY_TRY(linear(m, a, a->patches, &e[E_PATCH], NULL, a->h, a->B * a->np));
    const float *cls = NULL, *pos = NULL;
    FY_TRY(vec_f32(m, a, &e[E_CLASS], 0, &cls));
    FY_TRY(vec_f32(m, a, &e[E_POS], 1, &pos));
    for (int64_t b = 0; b < a->B; b++) {
        float *item = a->x + b * T * H;
        FY_TRY(m->ops->copy(m->ops, item, cls, sizeof(float) * (size_t)H));
        FY_TRY(m->ops->copy(m->ops, item + H, a->h + b * a->np * H, sizeof(float) * (size_t)(a->np * H)));
        FY_TRY(m->ops->add(m->ops, fy_f32(item), fy_f32(pos), fy_f32(item), T * H));
    }
    return layer_norm(m, a, a->x, &e[E_PRE_W], a->x);
}

static fy_status attention(fy_clip_vision *m, const fy_tensor *w, acts *a)
{
    const fy_clip_vision_config *g = &m->cfg;
    FY_TRY(layer_norm(m, a, a->x, &w[L_LN1_W], a->h));
    FY_TRY(linear(m, a, a->h, &w[L_Q_W], &w[L_Q_B], a->q, a->R));
    FY_TRY(linear(m, a, a->h, &w[L_K_W], &w[L_K_B], a->k, a->R));
    FY_TRY(linear(m, a, a->h, &w[L_V_W], &w[L_V_B], a->v, a->R));
    FY_TRY(m->ops->attention(m->ops, fy_f32(a->q), fy_f32(a->k), fy_f32(a->v), fy_f32(a->o), a->B, g->heads, g->tokens,
                             g->tokens, g->head_dim, 1.0f / sqrtf((float)g->head_dim), FY_NO_VIEW, NULL));
    FY_TRY(linear(m, a, a->o, &w[L_O_W], &w[L_O_B], a->h, a->R));
    return m->ops->add(m->ops, fy_f32(a->x), fy_f32(a->h), fy_f32(a->x), a->R * g->hidden);
}

static fy_status mlp(fy_clip_vision *m, const fy_tensor *w, acts *a)
{
    const fy_clip_vision_config *g = &m->cfg;
    FY_TRY(layer_norm(m, a, a->x, &w[L_LN2_W], a->h));
    FY_TRY(linear(m, a, a->h, &w[L_FC1_W], &w[L_FC1_B], a->f, a->R));
    FY_TRY(m->ops->gelu(m->ops, fy_f32(a->f), fy_f32(a->f), a->R * g->intermediate));
    FY_TRY(linear(m, a, a->f, &w[L_FC2_W], &w[L_FC2_B], a->h, a->R));
    return m->ops->add(m->ops, fy_f32(a->x), fy_f32(a->h), fy_f32(a->x), a->R * g->hidden);
}

static fy_status download(fy_clip_vision *m, float *dst, const acts *a)
{
    if (!dst) return FY_OK;
    return fy_engine_download(m->engine, dst, a->x, sizeof(float) * (size_t)(a->R * m->cfg.hidden));
}

static fy_status run(fy_clip_vision *m, const float *pixels, acts *a, float *out, float *const *hidden)
{
    FY_TRY(upload_patches(m, pixels, a));
    const fy_tensor *w = NULL;
    FY_TRY(fy_engine_acquire(m->engine, m->embed_group, &w));
    fy_status st = embeddings(m, w, a);
    fy_status rel = fy_engine_release(m->engine, m->embed_group);
    FY_TRY(st);
    FY_TRY(rel);
    if (hidden) FY_TRY(download(m, hidden[0], a));
    for (int64_t i = 0; i < m->run_layers; i++) {
        FY_TRY(fy_engine_acquire(m->engine, m->layer_groups[i], &w));
        st = attention(m, w, a);
        if (st == FY_OK) st = mlp(m, w, a);
        rel = fy_engine_release(m->engine, m->layer_groups[i]);
        FY_TRY(st);
        FY_TRY(rel);
        if (hidden) FY_TRY(download(m, hidden[i + 1], a));
    }
    return download(m, out, a);
}

fy_status fy_clip_vision_forward(fy_clip_vision *m, const float *pixel_values, int64_t batch, float *out,
                                 float *const *hidden)
{
    if (!m || !pixel_values || !out || batch < 1 || batch > 4096)
        return fy_error(FY_ERR_INVALID, "fy_clip_vision_forward: bad argument");
    if (!m->ops) FY_TRY(fy_engine_ops_create(m->engine, m->threads, &m->ops));
    acts a = {.B = batch, .R = batch * m->cfg.tokens, .np = m->cfg.tokens - 1};
    FY_TRY(alloc_acts(m, &a));
    fy_status st = run(m, pixel_values, &a, out, hidden);
    fy_ws_free(&a.ws, m->engine);
    return st;
}
