/* CLIP's text encoder on the offload engine (see ferry/clip_text.h). */
#include "ferry/clip_text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/ops.h"
#include "ferry/dtype.h"
#include "ferry/safetensors.h"
#include "models/weight.h"
#include "models/workspace.h"
#include "models/clip_layer.h"

/* A layer's weights in declaration order. */
enum { W_LN1, W_LN1B, W_Q, W_QB, W_K, W_KB, W_V, W_VB, W_O, W_OB, W_LN2, W_LN2B, W_FC1, W_FC1B, W_FC2, W_FC2B, W_COUNT };
/* A masked logit: far below any score, finite so no kernel meets inf - inf. */
#define MASKED (-1e30f)
#define VEC_SLOTS 2

typedef struct clip_layer {
    fy_tensor w[W_COUNT];
    int group;
} clip_layer;

struct fy_clip_text {
    const fy_component *c;
    fy_engine *e;
    fy_clip_text_config cfg;
    int comp, embed_group, final_group;
    fy_tensor embed[2], final_norm[2];
    clip_layer *layers;
    fy_ops *ops;
    int threads;
};

typedef struct clip_acts {
    int64_t B, L, R;
    float *x, *h, *work, *causal, *vec;
    int64_t *ids, *pos;
    fy_workspace ws;
} clip_acts;

/* ---- config and weights ------------------------------------------------------- */

static fy_status positive(const fy_config *j, const char *key, int64_t *out)
{
    FY_TRY(fy_config_int(j, key, out));
    if (*out < 1 || *out > (int64_t)1 << 30)
        return fy_error(FY_ERR_FORMAT, "%s: \"%s\" is %lld, expected a positive size", fy_config_path(j), key,
                        (long long)*out);
    return FY_OK;
}

static fy_status read_config(const fy_component *c, fy_clip_text_config *k)
{
    const fy_config *j = c->config;
    if (!j) return fy_error(FY_ERR_NOT_FOUND, "%s: no config.json for the CLIP text encoder", c->dir);
    memset(k, 0, sizeof *k);
    FY_TRY(positive(j, "vocab_size", &k->vocab_size));
    FY_TRY(positive(j, "hidden_size", &k->hidden));
    FY_TRY(positive(j, "num_attention_heads", &k->heads));
    FY_TRY(positive(j, "intermediate_size", &k->intermediate));
    FY_TRY(positive(j, "num_hidden_layers", &k->layers));
    FY_TRY(positive(j, "max_position_embeddings", &k->max_positions));
    FY_TRY(fy_config_int_or(j, "eos_token_id", 2, &k->eos_token_id));
    FY_TRY(fy_config_double_or(j, "layer_norm_eps", 1e-5, &k->eps));
    const char *act = NULL;
    FY_TRY(fy_config_string_or(j, "hidden_act", "quick_gelu", &act));
    if (strcmp(act, "quick_gelu") && strcmp(act, "gelu"))
        return fy_error(FY_ERR_UNSUPPORTED, "%s: hidden_act \"%s\" is not supported (quick_gelu, gelu)",
                        fy_config_path(j), act);
    k->quick_gelu = !strcmp(act, "quick_gelu");
    if (k->hidden % k->heads)
        return fy_error(FY_ERR_FORMAT, "%s: hidden_size %lld is not a multiple of num_attention_heads %lld",
                        fy_config_path(j), (long long)k->hidden, (long long)k->heads);
    if (!(k->eps > 0.0)) return fy_error(FY_ERR_FORMAT, "%s: layer_norm_eps must be positive", fy_config_path(j));
    return FY_OK;
}

static fy_status layer_weights(const fy_clip_text *m, int64_t i, clip_layer *l)
{
    _Static_assert(W_COUNT == FY_CLIP_LAYER_WEIGHTS, "a CLIP layer's tensors");
    return fy_clip_layer_weights(m->c, "text_model", i, m->cfg.hidden, m->cfg.intermediate, l->w);
}

static fy_status load_weights(fy_clip_text *m)
{
    if (!m->c->weights) return fy_error(FY_ERR_NOT_FOUND, "%s: the text encoder has no weights", m->c->dir);
    int64_t d = m->cfg.hidden;
    FY_TRY(fy_weight_lookup2(m->c, "text_model.embeddings.token_embedding.weight", m->cfg.vocab_size, d,
                             &m->embed[0]));
    FY_TRY(fy_weight_lookup2(m->c, "text_model.embeddings.position_embedding.weight", m->cfg.max_positions, d,
                             &m->embed[1]));
    for (int64_t i = 0; i < m->cfg.layers; i++) FY_TRY(layer_weights(m, i, &m->layers[i]));
    FY_TRY(fy_weight_lookup2(m->c, "text_model.final_layer_norm.weight", d, 0, &m->final_norm[0]));
    return fy_weight_lookup2(m->c, "text_model.final_layer_norm.bias", d, 0, &m->final_norm[1]);
}

static fy_status declare(fy_clip_text *m)
{
    FY_TRY(fy_engine_add_component(m->e, m->c->name ? m->c->name : "text_encoder", &m->comp));
    FY_TRY(fy_engine_add_group(m->e, m->comp, "embeddings", FY_GROUP_SMALL, m->embed, 2, &m->embed_group));
    for (int64_t i = 0; i < m->cfg.layers; i++) {
        char name[64];
        snprintf(name, sizeof name, "encoder.layers.%lld", (long long)i);
        FY_TRY(fy_engine_add_group(m->e, m->comp, name, FY_GROUP_BLOCK, m->layers[i].w, W_COUNT,
                                   &m->layers[i].group));
    }
    return fy_engine_add_group(m->e, m->comp, "final_layer_norm", FY_GROUP_SMALL, m->final_norm, 2,
                               &m->final_group);
}

/* The ops this model computes with (checked at load). */
static const fy_op CLIP_TEXT_OPS[] = {FY_OP_ADD,        FY_OP_ATTENTION, FY_OP_CONVERT, FY_OP_EMBEDDING, FY_OP_GELU,
                                      FY_OP_LAYER_NORM, FY_OP_LINEAR,    FY_OP_SCALE,   FY_OP_SILU};

fy_status fy_clip_text_load(const fy_component *c, fy_engine *e, fy_clip_text **out)
{
    if (!c || !e || !out) return fy_error(FY_ERR_INVALID, "fy_clip_text_load: NULL argument");
    *out = NULL;
    FY_TRY(fy_engine_ops_require(e, CLIP_TEXT_OPS, sizeof CLIP_TEXT_OPS / sizeof CLIP_TEXT_OPS[0]));
    fy_clip_text *m = calloc(1, sizeof *m);
    if (!m) return fy_error(FY_ERR_NOMEM, "text encoder: out of memory");
    m->c = c;
    m->e = e;
    fy_status s = read_config(c, &m->cfg);
    if (s == FY_OK && !(m->layers = calloc((size_t)m->cfg.layers, sizeof *m->layers)))
        s = fy_error(FY_ERR_NOMEM, "text encoder: out of memory");
    if (s == FY_OK) s = load_weights(m);
    if (s == FY_OK) s = declare(m);
    if (s != FY_OK) {
        fy_clip_text_free(m);
        return s;
    }
    *out = m;
    return FY_OK;
}

void fy_clip_text_free(fy_clip_text *m)
{
    if (!m) return;
    fy_ops_free(m->ops);
    free(m->layers);
    free(m);
}

const fy_clip_text_config *fy_clip_text_get_config(const fy_clip_text *m) { return &m->cfg; }

fy_status fy_clip_text_set_threads(fy_clip_text *m, int threads)
{
    if (threads < 0) return fy_error(FY_ERR_INVALID, "--threads %d: must be 0 (all cores) or more", threads);
    if (m->ops) return fy_error(FY_ERR_INVALID, "text encoder: threads are set before the first forward");
    m->threads = threads;
    return FY_OK;
}

/* ---- activations ----------------------------------------------------------------- */

static int64_t work_floats(const fy_clip_text_config *k, int64_t R)
{
    return R * (4 * k->hidden > k->intermediate ? 4 * k->hidden : k->intermediate);
}

static int64_t vec_floats(const fy_clip_text_config *k)
{
    return VEC_SLOTS * (k->hidden > k->intermediate ? k->hidden : k->intermediate);
}

/* The activations: an engine buffer each. */
static void acts_table(const fy_clip_text_config *k, clip_acts *a, fy_workspace *t)
{
    fy_ws_init(t, NULL);
    FY_WS_ADD(t, a->x, a->R * k->hidden, "clip hidden");
    FY_WS_ADD(t, a->h, a->R * k->hidden, "clip normed");
    FY_WS_ADD(t, a->work, work_floats(k, a->R), "clip work");
    FY_WS_ADD(t, a->causal, k->heads * a->L * a->L, "clip causal mask");
    FY_WS_ADD(t, a->vec, vec_floats(k), "clip vectors");
    FY_WS_ADD(t, a->ids, a->R, "clip ids");
    FY_WS_ADD(t, a->pos, a->R, "clip positions");
}

uint64_t fy_clip_text_activation_bytes(const fy_clip_text *m, int64_t batch, int64_t len)
{
    if (!m || batch < 1 || len < 1) return 0;
    clip_acts a = {.B = batch, .L = len, .R = batch * len};
    fy_workspace t;
    acts_table(&m->cfg, &a, &t);
    return fy_ws_bytes(&t) + fy_engine_ops_scratch_bound(m->e, false);
}

static void free_acts(fy_engine *e, clip_acts *a)
{
    fy_ws_free(&a->ws, e);
}

static fy_status alloc_acts(fy_clip_text *m, clip_acts *a)
{
    acts_table(&m->cfg, a, &a->ws);
    return fy_ws_alloc(&a->ws, m->e);
}

static fy_status prepare_inputs(fy_clip_text *m, const int64_t *ids, clip_acts *a)
{
    int64_t H = m->cfg.heads, L = a->L;
    float *mask = malloc((size_t)(H * L * L) * sizeof *mask);
    int64_t *pos = malloc((size_t)a->R * sizeof *pos);
    fy_status s = mask && pos ? FY_OK : fy_error(FY_ERR_NOMEM, "text encoder: out of memory");
    for (int64_t i = 0; s == FY_OK && i < H * L * L; i++) mask[i] = (i % L) > (i / L) % L ? MASKED : 0.0f;
    for (int64_t r = 0; s == FY_OK && r < a->R; r++) pos[r] = r % L;
    if (s == FY_OK) s = fy_engine_upload(m->e, a->causal, mask, (size_t)(H * L * L) * sizeof *mask);
    if (s == FY_OK) s = fy_engine_upload(m->e, a->pos, pos, (size_t)a->R * sizeof *pos);
    if (s == FY_OK) s = fy_engine_upload(m->e, a->ids, ids, (size_t)a->R * sizeof *ids);
    free(mask);
    free(pos);
    return s;
}

/* ---- the math --------------------------------------------------------------------- */

/* A vector weight as f32: in place, or converted into vector slot `slot`. */
static fy_status vec(fy_clip_text *m, const fy_tensor *t, clip_acts *a, int slot, const float **out)
{
    *out = t->data;
    if (t->dtype == FY_F32) return FY_OK;
    float *dst = a->vec + slot * (vec_floats(&m->cfg) / VEC_SLOTS);
    *out = dst;
    return m->ops->convert(m->ops, fy_f32(dst), fy_view_of(t->data, t->dtype), (size_t)fy_tensor_numel(t));
}

static fy_status linear(fy_clip_text *m, const float *x, const fy_tensor *w, const fy_tensor *b, float *y,
                        clip_acts *a)
{
    const float *bias = NULL;
    FY_TRY(vec(m, b, a, 0, &bias));
    return m->ops->linear(m->ops, fy_f32(x), (fy_weight){w->data, w->dtype, NULL, 0}, fy_f32(bias), fy_f32(y), a->R,
                          w->shape[1], w->shape[0]);
}

static fy_status layer_norm(fy_clip_text *m, const fy_tensor *w, const fy_tensor *b, const float *x, float *out,
                            clip_acts *a)
{
    const float *scale = NULL, *shift = NULL;
    FY_TRY(vec(m, w, a, 0, &scale));
    FY_TRY(vec(m, b, a, 1, &shift));
    return m->ops->layer_norm(m->ops, fy_f32(x), fy_f32(scale), fy_f32(shift), fy_f32(out), a->R, m->cfg.hidden,
                              (float)m->cfg.eps);
}

static fy_status attention(fy_clip_text *m, const fy_tensor *w, clip_acts *a)
{
    int64_t d = m->cfg.hidden, H = m->cfg.heads, D = d / H;
    float *q = a->work, *k = q + a->R * d, *v = k + a->R * d, *o = v + a->R * d;
    FY_TRY(layer_norm(m, &w[W_LN1], &w[W_LN1B], a->x, a->h, a));
    FY_TRY(linear(m, a->h, &w[W_Q], &w[W_QB], q, a));
    FY_TRY(linear(m, a->h, &w[W_K], &w[W_KB], k, a));
    FY_TRY(linear(m, a->h, &w[W_V], &w[W_VB], v, a));
    FY_TRY(m->ops->attention(m->ops, fy_f32(q), fy_f32(k), fy_f32(v), fy_f32(o), a->B, H, a->L, a->L, D,
                             1.0f / sqrtf((float)D), fy_f32(a->causal), NULL));
    FY_TRY(linear(m, o, &w[W_O], &w[W_OB], a->h, a));
    return m->ops->add(m->ops, fy_f32(a->x), fy_f32(a->h), fy_f32(a->x), a->R * d);
}

/* quick_gelu(x) = x * sigmoid(1.702 x) = silu(1.702 x) / 1.702. */
static fy_status activation(fy_clip_text *m, float *h, int64_t n)
{
    if (!m->cfg.quick_gelu) return m->ops->gelu(m->ops, fy_f32(h), fy_f32(h), n);
    FY_TRY(m->ops->scale(m->ops, fy_f32(h), 1.702f, fy_f32(h), n));
    FY_TRY(m->ops->silu(m->ops, fy_f32(h), fy_f32(h), n));
    return m->ops->scale(m->ops, fy_f32(h), 1.0f / 1.702f, fy_f32(h), n);
}

static fy_status mlp(fy_clip_text *m, const fy_tensor *w, clip_acts *a)
{
    float *h1 = a->work;
    FY_TRY(layer_norm(m, &w[W_LN2], &w[W_LN2B], a->x, a->h, a));
    FY_TRY(linear(m, a->h, &w[W_FC1], &w[W_FC1B], h1, a));
    FY_TRY(activation(m, h1, a->R * m->cfg.intermediate));
    FY_TRY(linear(m, h1, &w[W_FC2], &w[W_FC2B], a->h, a));
    return m->ops->add(m->ops, fy_f32(a->x), fy_f32(a->h), fy_f32(a->x), a->R * m->cfg.hidden);
}

static fy_status download(fy_clip_text *m, float *dst, const float *src, const clip_acts *a)
{
    if (!dst) return FY_OK;
    return fy_engine_download(m->e, dst, src, (size_t)a->R * (size_t)m->cfg.hidden * sizeof(float));
}

static fy_status embed(fy_clip_text *m, clip_acts *a, float *const *hidden)
{
    const fy_tensor *w = NULL;
    int64_t d = m->cfg.hidden;
    FY_TRY(fy_engine_acquire(m->e, m->embed_group, &w));
    fy_status s = m->ops->embedding(m->ops, fy_view_of(w[0].data, w[0].dtype), a->ids, fy_f32(a->x), a->R, d);
    if (s == FY_OK) s = m->ops->embedding(m->ops, fy_view_of(w[1].data, w[1].dtype), a->pos, fy_f32(a->h), a->R, d);
    if (s == FY_OK) s = m->ops->add(m->ops, fy_f32(a->x), fy_f32(a->h), fy_f32(a->x), a->R * d);
    fy_status r = fy_engine_release(m->e, m->embed_group);
    FY_TRY(s);
    FY_TRY(r);
    return hidden ? download(m, hidden[0], a->x, a) : FY_OK;
}

static fy_status run_layers(fy_clip_text *m, clip_acts *a, float *const *hidden)
{
    for (int64_t i = 0; i < m->cfg.layers; i++) {
        const fy_tensor *w = NULL;
        FY_TRY(fy_engine_acquire(m->e, m->layers[i].group, &w));
        fy_status s = attention(m, w, a);
        if (s == FY_OK) s = mlp(m, w, a);
        fy_status r = fy_engine_release(m->e, m->layers[i].group);
        FY_TRY(s);
        FY_TRY(r);
        if (hidden) FY_TRY(download(m, hidden[i + 1], a->x, a));
    }
    return FY_OK;
}

int64_t fy_clip_text_eos_index(const fy_clip_text *m, const int64_t *ids, int64_t len)
{
    int64_t best = 0;
    for (int64_t l = 0; l < len; l++) {
        if (m->cfg.eos_token_id == 2) {
            if (ids[l] > ids[best]) best = l;
        } else if (ids[l] == m->cfg.eos_token_id) {
            return l;
        }
    }
    return m->cfg.eos_token_id == 2 ? best : len - 1;
}

static fy_status finish(fy_clip_text *m, const int64_t *ids, clip_acts *a, float *last, float *pooled)
{
    const fy_tensor *w = NULL;
    FY_TRY(fy_engine_acquire(m->e, m->final_group, &w));
    fy_status s = layer_norm(m, &w[0], &w[1], a->x, a->h, a);
    fy_status r = fy_engine_release(m->e, m->final_group);
    FY_TRY(s);
    FY_TRY(r);
    FY_TRY(download(m, last, a->h, a));
    size_t d = (size_t)m->cfg.hidden;
    for (int64_t b = 0; pooled && b < a->B; b++) {
        int64_t row = b * a->L + fy_clip_text_eos_index(m, ids + b * a->L, a->L);
        FY_TRY(fy_engine_download(m->e, pooled + (size_t)b * d, a->h + (size_t)row * d, d * sizeof(float)));
    }
    return FY_OK;
}

static fy_status check_inputs(const fy_clip_text *m, const int64_t *ids, int64_t batch, int64_t len)
{
    if (!ids || batch < 1 || len < 1 || batch > (1 << 20))
        return fy_error(FY_ERR_INVALID, "text encoder: need ids of at least one token");
    if (len > m->cfg.max_positions)
        return fy_error(FY_ERR_INVALID, "text encoder: %lld tokens, the model has %lld positions (%s)",
                        (long long)len, (long long)m->cfg.max_positions, fy_config_path(m->c->config));
    for (int64_t r = 0; r < batch * len; r++)
        if (ids[r] < 0 || ids[r] >= m->cfg.vocab_size)
            return fy_error(FY_ERR_INVALID, "text encoder: token id %lld is outside the vocabulary of %lld (%s)",
                            (long long)ids[r], (long long)m->cfg.vocab_size, fy_config_path(m->c->config));
    return FY_OK;
}

fy_status fy_clip_text_forward(fy_clip_text *m, const int64_t *ids, int64_t batch, int64_t len, float *last,
                               float *pooled, float *const *hidden)
{
    if (!m) return fy_error(FY_ERR_INVALID, "fy_clip_text_forward: NULL model");
    FY_TRY(check_inputs(m, ids, batch, len));
    if (!m->ops) FY_TRY(fy_engine_ops_create(m->e, m->threads, &m->ops));
    clip_acts a = {.B = batch, .L = len, .R = batch * len};
    fy_status s = alloc_acts(m, &a);
    if (s == FY_OK) s = prepare_inputs(m, ids, &a);
    if (s == FY_OK) s = embed(m, &a, hidden);
    if (s == FY_OK) s = run_layers(m, &a, hidden);
    if (s == FY_OK) s = finish(m, ids, &a, last, pooled);
    free_acts(m->e, &a);
    return s;
}
