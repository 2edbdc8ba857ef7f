/* The UMT5 encoder on the offload engine (see ferry/umt5.h for the math). */
#include "ferry/umt5.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ferry/ops.h"
#include "ferry/dtype.h"
#include "ferry/safetensors.h"
#include "models/weight.h"
#include "models/workspace.h"

/* Query rows per position-bias tile: the bias buffer is [heads, QCHUNK, len],
 * never [heads, len, len]. */
#define QCHUNK 128

/* A block's weights in declaration order; a non-gated feed-forward has no WI1. */
enum { W_LN0, W_Q, W_K, W_V, W_O, W_REL, W_LN1, W_WO, W_WI0, W_WI1, W_COUNT };

typedef struct umt5_block {
    fy_tensor w[W_COUNT];
    int group;
} umt5_block;

struct fy_umt5 {
    const fy_component *c;
    fy_engine *e;
    fy_umt5_config cfg;
    int comp, final_group;
    fy_tensor embed, final_norm;
    umt5_block *blocks;
    bool shared_bias; /* T5: block 0's relative_attention_bias serves every block */
    fy_ops *ops;      /* made by the first forward */
    int threads;
    fy_umt5_profile prof;
};

/* Activations of one forward, all on the device. */
typedef struct umt5_acts {
    int64_t B, L, R; /* R = B * L rows */
    float *x, *h, *work, *bias, *vec;
    int64_t *mask;
    int32_t *buckets; /* [2L - 1]: bucket of relative position j - i, indexed by j - i + L - 1 */
    fy_workspace ws;
} umt5_acts;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- config ----------------------------------------------------------------- */

static fy_status positive(const fy_config *j, const char *key, int64_t *out)
{
    FY_TRY(fy_config_int(j, key, out));
    if (*out < 1 || *out > (int64_t)1 << 30)
        return fy_error(FY_ERR_FORMAT, "%s: \"%s\" is %lld, expected a positive size", fy_config_path(j), key,
                        (long long)*out);
    return FY_OK;
}

static fy_status parse_act(const fy_config *j, const char *name, fy_umt5_act *out)
{
    if (!strcmp(name, "gelu_new") || !strcmp(name, "gelu_pytorch_tanh") || !strcmp(name, "gelu_fast"))
        *out = FY_UMT5_GELU_TANH;
    else if (!strcmp(name, "gelu"))
        *out = FY_UMT5_GELU;
    else if (!strcmp(name, "relu"))
        *out = FY_UMT5_RELU;
    else
        return fy_error(FY_ERR_UNSUPPORTED, "%s: activation \"%s\" is not supported (gelu_new, gelu, relu)",
                        fy_config_path(j), name);
    return FY_OK;
}

/* transformers' UMT5Config: feed_forward_proj "gated-gelu" means gated with
 * gelu_new; explicit dense_act_fn / is_gated_act keys in the file win, as
 * PretrainedConfig sets saved attributes last. */
static fy_status read_ffn(const fy_config *j, fy_umt5_config *cfg)
{
    const char *proj = NULL, *act = NULL;
    FY_TRY(fy_config_string_or(j, "feed_forward_proj", "gated-gelu", &proj));
    const char *dash = strrchr(proj, '-');
    cfg->gated = !strncmp(proj, "gated-", 6);
    act = !strcmp(proj, "gated-gelu") ? "gelu_new" : (dash ? dash + 1 : proj);
    FY_TRY(fy_config_string_or(j, "dense_act_fn", act, &act));
    FY_TRY(fy_config_bool_or(j, "is_gated_act", cfg->gated, &cfg->gated));
    return parse_act(j, act, &cfg->act);
}

static fy_status read_config(const fy_component *c, fy_umt5_config *cfg)
{
    const fy_config *j = c->config;
    if (!j) return fy_error(FY_ERR_NOT_FOUND, "%s: no config.json for the text encoder", c->dir);
    memset(cfg, 0, sizeof *cfg);
    FY_TRY(positive(j, "vocab_size", &cfg->vocab_size));
    FY_TRY(positive(j, "d_model", &cfg->d_model));
    FY_TRY(positive(j, "d_kv", &cfg->d_kv));
    FY_TRY(positive(j, "d_ff", &cfg->d_ff));
    FY_TRY(positive(j, "num_heads", &cfg->num_heads));
    FY_TRY(positive(j, "num_layers", &cfg->num_layers));
    FY_TRY(positive(j, "relative_attention_num_buckets", &cfg->num_buckets));
    FY_TRY(positive(j, "relative_attention_max_distance", &cfg->max_distance));
    FY_TRY(fy_config_double_or(j, "layer_norm_epsilon", 1e-6, &cfg->eps));
    if (cfg->num_buckets < 4 || cfg->max_distance <= cfg->num_buckets / 4)
        return fy_error(FY_ERR_FORMAT,
                        "%s: relative_attention_num_buckets %lld / max_distance %lld: need >= 4 buckets and "
                        "a max distance above a quarter of them",
                        fy_config_path(j), (long long)cfg->num_buckets, (long long)cfg->max_distance);
    if (!(cfg->eps > 0.0)) return fy_error(FY_ERR_FORMAT, "%s: layer_norm_epsilon must be positive", fy_config_path(j));
    return read_ffn(j, cfg);
}

/* ---- weights ------------------------------------------------------------------- */

static fy_status block_weights(const fy_umt5 *m, int64_t i, umt5_block *b)
{
    const fy_umt5_config *k = &m->cfg;
    int64_t d = k->d_model, inner = k->num_heads * k->d_kv;
    static const char *const proj[4] = {"q", "k", "v", "o"};
    char name[160];
    snprintf(name, sizeof name, "encoder.block.%lld.layer.0.layer_norm.weight", (long long)i);
    FY_TRY(fy_weight_lookup2(m->c, name, d, 0, &b->w[W_LN0]));
    for (int p = 0; p < 4; p++) {
        snprintf(name, sizeof name, "encoder.block.%lld.layer.0.SelfAttention.%s.weight", (long long)i, proj[p]);
        FY_TRY(fy_weight_lookup2(m->c, name, p == 3 ? d : inner, p == 3 ? inner : d, &b->w[W_Q + p]));
    }
    snprintf(name, sizeof name, "encoder.block.%lld.layer.0.SelfAttention.relative_attention_bias.weight",
             (long long)i);
    /* T5 v1.1 keeps the table in block 0 only and every block adds the same
     * bias: later blocks get a view of block 0's (a few KB, in their group). */
    if (i > 0 && m->shared_bias) b->w[W_REL] = m->blocks[0].w[W_REL];
    else FY_TRY(fy_weight_lookup2(m->c, name, k->num_buckets, k->num_heads, &b->w[W_REL]));
    snprintf(name, sizeof name, "encoder.block.%lld.layer.1.layer_norm.weight", (long long)i);
    FY_TRY(fy_weight_lookup2(m->c, name, d, 0, &b->w[W_LN1]));
    snprintf(name, sizeof name, "encoder.block.%lld.layer.1.DenseReluDense.wo.weight", (long long)i);
    FY_TRY(fy_weight_lookup2(m->c, name, d, k->d_ff, &b->w[W_WO]));
    snprintf(name, sizeof name, "encoder.block.%lld.layer.1.DenseReluDense.%s.weight", (long long)i,
             k->gated ? "wi_0" : "wi");
    FY_TRY(fy_weight_lookup2(m->c, name, k->d_ff, d, &b->w[W_WI0]));
    if (!k->gated) return FY_OK;
    snprintf(name, sizeof name, "encoder.block.%lld.layer.1.DenseReluDense.wi_1.weight", (long long)i);
    return fy_weight_lookup2(m->c, name, k->d_ff, d, &b->w[W_WI1]);
}

/* transformers saves the table as shared.weight (encoder.embed_tokens is tied to it). */
static fy_status embed_weight(const fy_umt5 *m, fy_tensor *out)
{
    const char *name = "shared.weight";
    if (!fy_st_set_find(m->c->weights, name)) name = "encoder.embed_tokens.weight";
    if (!fy_st_set_find(m->c->weights, name))
        return fy_error(FY_ERR_NOT_FOUND, "%s: no token embedding (shared.weight or encoder.embed_tokens.weight)",
                        m->c->dir);
    return fy_weight_lookup2(m->c, name, m->cfg.vocab_size, m->cfg.d_model, out);
}

static fy_status declare(fy_umt5 *m)
{
    int per_block = m->cfg.gated ? W_COUNT : W_COUNT - 1;
    FY_TRY(fy_engine_add_component(m->e, m->c->name ? m->c->name : "text_encoder", &m->comp));
    /* The token embeddings are not a group: fy_engine_gather_rows keeps them in host memory. */
    for (int64_t i = 0; i < m->cfg.num_layers; i++) {
        char name[64];
        snprintf(name, sizeof name, "encoder.block.%lld", (long long)i);
        FY_TRY(fy_engine_add_group(m->e, m->comp, name, FY_GROUP_BLOCK, m->blocks[i].w, per_block,
                                   &m->blocks[i].group));
    }
    return fy_engine_add_group(m->e, m->comp, "final_layer_norm", FY_GROUP_SMALL, &m->final_norm, 1,
                               &m->final_group);
}

/* T5 (model_type "t5", T5EncoderModel) has the position-bias table in block 0
 * only; UMT5 one per block. */
static bool shared_position_bias(const fy_component *c)
{
    const char *type = NULL;
    if (fy_config_string_or(c->config, "model_type", "", &type) != FY_OK) type = "";
    fy_error_clear();
    return !strcmp(type, "t5") || (c->class_name && !strcmp(c->class_name, "T5EncoderModel"));
}

static fy_status load_weights(fy_umt5 *m)
{
    if (!m->c->weights) return fy_error(FY_ERR_NOT_FOUND, "%s: the text encoder has no weights", m->c->dir);
    m->shared_bias = shared_position_bias(m->c);
    FY_TRY(embed_weight(m, &m->embed));
    for (int64_t i = 0; i < m->cfg.num_layers; i++) FY_TRY(block_weights(m, i, &m->blocks[i]));
    return fy_weight_lookup2(m->c, "encoder.final_layer_norm.weight", m->cfg.d_model, 0, &m->final_norm);
}

/* The ops this model computes with (checked at load). */
static const fy_op UMT5_OPS[] = {FY_OP_ADD,           FY_OP_ATTENTION, FY_OP_CONVERT, FY_OP_GATED_GELU,
                                 FY_OP_GELU,          FY_OP_GELU_TANH, FY_OP_LINEAR,  FY_OP_MUL,
                                 FY_OP_RELATIVE_BIAS, FY_OP_RELU,      FY_OP_RMS_NORM};

fy_status fy_umt5_load(const fy_component *c, fy_engine *e, fy_umt5 **out)
{
    if (!c || !e || !out) return fy_error(FY_ERR_INVALID, "fy_umt5_load: NULL argument");
    *out = NULL;
    FY_TRY(fy_engine_ops_require(e, UMT5_OPS, sizeof UMT5_OPS / sizeof UMT5_OPS[0]));
    fy_umt5 *m = calloc(1, sizeof *m);
    if (!m) return fy_error(FY_ERR_NOMEM, "text encoder: out of memory");
    m->c = c;
    m->e = e;
    fy_status s = read_config(c, &m->cfg);
    if (s == FY_OK) {
        m->blocks = calloc((size_t)m->cfg.num_layers, sizeof *m->blocks);
        if (!m->blocks) s = fy_error(FY_ERR_NOMEM, "text encoder: out of memory");
    }
    if (s == FY_OK) s = load_weights(m);
    if (s == FY_OK) s = declare(m);
    if (s != FY_OK) {
        fy_umt5_free(m);
        return s;
    }
    *out = m;
    return FY_OK;
}

void fy_umt5_free(fy_umt5 *m)
{
    if (!m) return;
    fy_ops_free(m->ops);
    free(m->blocks);
    free(m);
}

const fy_umt5_config *fy_umt5_get_config(const fy_umt5 *m)
{
    return &m->cfg;
}

fy_status fy_umt5_set_threads(fy_umt5 *m, int threads)
{
    if (threads < 0) return fy_error(FY_ERR_INVALID, "--threads %d: must be 0 (all cores) or more", threads);
    if (m->ops) return fy_error(FY_ERR_INVALID, "text encoder: threads are set before the first forward");
    m->threads = threads;
    return FY_OK;
}

const fy_umt5_profile *fy_umt5_get_profile(const fy_umt5 *m)
{
    return &m->prof;
}

/* ---- activations ------------------------------------------------------------ */

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

static int64_t work_floats(const fy_umt5_config *k, int64_t R)
{
    int64_t inner = k->num_heads * k->d_kv;
    return R * max64(4 * inner, (k->gated ? 2 : 1) * k->d_ff);
}

static int64_t bias_floats(const fy_umt5_config *k, int64_t L)
{
    return k->num_heads * (L < QCHUNK ? L : QCHUNK) * L;
}

static int64_t vec_floats(const fy_umt5_config *k)
{
    return max64(k->d_model, k->num_buckets * k->num_heads);
}

/* The activations: an engine buffer each. */
static void acts_table(const fy_umt5_config *k, umt5_acts *a, fy_workspace *t)
{
    fy_ws_init(t, NULL);
    FY_WS_ADD(t, a->x, a->R * k->d_model, "text_encoder hidden");
    FY_WS_ADD(t, a->h, a->R * k->d_model, "text_encoder normed");
    FY_WS_ADD(t, a->work, work_floats(k, a->R), "text_encoder work");
    FY_WS_ADD(t, a->bias, bias_floats(k, a->L), "text_encoder position bias");
    FY_WS_ADD(t, a->vec, vec_floats(k), "text_encoder vectors");
    FY_WS_ADD(t, a->mask, a->R, "text_encoder mask");
    FY_WS_ADD(t, a->buckets, 2 * a->L - 1, "text_encoder buckets");
}

uint64_t fy_umt5_activation_bytes(const fy_umt5 *m, int64_t batch, int64_t len)
{
    if (!m || batch < 1 || len < 1) return 0;
    umt5_acts a = {.B = batch, .L = len, .R = batch * len};
    fy_workspace t;
    acts_table(&m->cfg, &a, &t);
    return fy_ws_bytes(&t) + fy_engine_ops_scratch_bound(m->e, false);
}

static void free_acts(fy_engine *e, umt5_acts *a)
{
    fy_ws_free(&a->ws, e);
}

static fy_status alloc_acts(fy_umt5 *m, umt5_acts *a)
{
    acts_table(&m->cfg, a, &a->ws);
    return fy_ws_alloc(&a->ws, m->e);
}

/* ---- the math ------------------------------------------------------------------ */

/* T5's bidirectional bucket of relative position rel = key - query, in
 * float32 as torch computes it (the boundaries between log-spaced buckets
 * depend on that rounding). */
static int32_t relative_bucket(int64_t rel, int64_t num_buckets, int64_t max_distance)
{
    int64_t half = num_buckets / 2, max_exact = half / 2;
    int64_t out = rel > 0 ? half : 0, n = rel < 0 ? -rel : rel;
    if (n < max_exact) return (int32_t)(out + n);
    float scaled = logf((float)n / (float)max_exact) / (float)log((double)max_distance / (double)max_exact) *
                   (float)(half - max_exact);
    int64_t large = max_exact + (int64_t)scaled;
    return (int32_t)(out + (large < half - 1 ? large : half - 1));
}

static fy_status prepare_inputs(fy_umt5 *m, const int64_t *mask, umt5_acts *a)
{
    int64_t n = 2 * a->L - 1;
    int32_t *buckets = malloc((size_t)n * sizeof *buckets);
    if (!buckets) return fy_error(FY_ERR_NOMEM, "text encoder: out of memory");
    for (int64_t r = 0; r < n; r++)
        buckets[r] = relative_bucket(r - (a->L - 1), m->cfg.num_buckets, m->cfg.max_distance);
    fy_status s = fy_engine_upload(m->e, a->buckets, buckets, (size_t)n * sizeof *buckets);
    free(buckets);
    size_t bytes = (size_t)a->R * sizeof(int64_t);
    if (s == FY_OK) s = fy_engine_upload(m->e, a->mask, mask, bytes);
    return s;
}

/* A small float vector (norm scale, bias table) as f32: in place, or converted into scratch. */
static fy_status as_f32(fy_umt5 *m, const fy_tensor *t, float *scratch, const float **out)
{
    *out = t->data;
    if (t->dtype == FY_F32) return FY_OK;
    *out = scratch;
    return m->ops->convert(m->ops, fy_f32(scratch), fy_view_of(t->data, t->dtype), (size_t)fy_tensor_numel(t));
}

static fy_status linear(fy_umt5 *m, const float *x, const fy_tensor *w, float *y, int64_t rows)
{
    double t0 = now_s();
    int64_t n = w->shape[0], k = w->shape[1];
    fy_status s =
        m->ops->linear(m->ops, fy_f32(x), (fy_weight){w->data, w->dtype, NULL, 0}, FY_NO_VIEW, fy_f32(y), rows, k, n);
    m->prof.linear += now_s() - t0;
    return s;
}

static fy_status rms_norm(fy_umt5 *m, const fy_tensor *w, const float *x, float *out, umt5_acts *a)
{
    double t0 = now_s();
    const float *scale = NULL;
    FY_TRY(as_f32(m, w, a->vec, &scale));
    fy_status s =
        m->ops->rms_norm(m->ops, fy_f32(x), fy_f32(scale), fy_f32(out), a->R, m->cfg.d_model, (float)m->cfg.eps);
    m->prof.other += now_s() - t0;
    return s;
}

static fy_status add_residual(fy_umt5 *m, umt5_acts *a)
{
    double t0 = now_s();
    fy_status s = m->ops->add(m->ops, fy_f32(a->x), fy_f32(a->h), fy_f32(a->x), a->R * m->cfg.d_model);
    m->prof.other += now_s() - t0;
    return s;
}

/* softmax(q k^T + bias + mask) v, with T5's unscaled scores, in query tiles. */
static fy_status attend(fy_umt5 *m, const fy_tensor *rel, const float *q, const float *k, const float *v,
                        float *o, umt5_acts *a)
{
    double t0 = now_s();
    int64_t H = m->cfg.num_heads, D = m->cfg.d_kv, L = a->L, inner = H * D;
    const float *table = NULL;
    FY_TRY(as_f32(m, rel, a->vec, &table));
    for (int64_t q0 = 0; q0 < L; q0 += QCHUNK) {
        int64_t nq = L - q0 < QCHUNK ? L - q0 : QCHUNK;
        FY_TRY(m->ops->relative_bias(m->ops, fy_f32(table), a->buckets, fy_f32(a->bias), H, L, q0, nq));
        for (int64_t b = 0; b < a->B; b++) {
            int64_t qrow = b * L + q0, krow = b * L;
            FY_TRY(m->ops->attention(m->ops, fy_f32(q + qrow * inner), fy_f32(k + krow * inner),
                                     fy_f32(v + krow * inner), fy_f32(o + qrow * inner), 1, H, nq, L, D, 1.0f,
                                     fy_f32(a->bias), a->mask + krow));
        }
    }
    m->prof.attention += now_s() - t0;
    return FY_OK;
}

static fy_status self_attention(fy_umt5 *m, const fy_tensor *w, umt5_acts *a)
{
    int64_t inner = m->cfg.num_heads * m->cfg.d_kv;
    float *q = a->work, *k = q + a->R * inner, *v = k + a->R * inner, *o = v + a->R * inner;
    FY_TRY(rms_norm(m, &w[W_LN0], a->x, a->h, a));
    FY_TRY(linear(m, a->h, &w[W_Q], q, a->R));
    FY_TRY(linear(m, a->h, &w[W_K], k, a->R));
    FY_TRY(linear(m, a->h, &w[W_V], v, a->R));
    FY_TRY(attend(m, &w[W_REL], q, k, v, o, a));
    FY_TRY(linear(m, o, &w[W_O], a->h, a->R));
    return add_residual(m, a);
}

static fy_status activation(fy_umt5 *m, float *h0, const float *h1, int64_t n)
{
    double t0 = now_s();
    fy_status s;
    if (m->cfg.act == FY_UMT5_GELU_TANH && h1) {
        s = m->ops->gated_gelu(m->ops, fy_f32(h0), fy_f32(h1), fy_f32(h0), n);
    } else {
        if (m->cfg.act == FY_UMT5_GELU_TANH) s = m->ops->gelu_tanh(m->ops, fy_f32(h0), fy_f32(h0), n);
        else if (m->cfg.act == FY_UMT5_GELU) s = m->ops->gelu(m->ops, fy_f32(h0), fy_f32(h0), n);
        else s = m->ops->relu(m->ops, fy_f32(h0), fy_f32(h0), n);
        if (s == FY_OK && h1) s = m->ops->mul(m->ops, fy_f32(h0), fy_f32(h1), fy_f32(h0), n);
    }
    m->prof.other += now_s() - t0;
    return s;
}

static fy_status feed_forward(fy_umt5 *m, const fy_tensor *w, umt5_acts *a)
{
    float *h0 = a->work, *h1 = m->cfg.gated ? a->work + a->R * m->cfg.d_ff : NULL;
    FY_TRY(rms_norm(m, &w[W_LN1], a->x, a->h, a));
    FY_TRY(linear(m, a->h, &w[W_WI0], h0, a->R));
    if (h1) FY_TRY(linear(m, a->h, &w[W_WI1], h1, a->R));
    FY_TRY(activation(m, h0, h1, a->R * m->cfg.d_ff));
    FY_TRY(linear(m, h0, &w[W_WO], a->h, a->R));
    return add_residual(m, a);
}

static fy_status download(fy_umt5 *m, float *dst, const float *src, const umt5_acts *a)
{
    if (!dst) return FY_OK;
    return fy_engine_download(m->e, dst, src, (size_t)a->R * (size_t)m->cfg.d_model * sizeof(float));
}

static fy_status run_blocks(fy_umt5 *m, umt5_acts *a, float *const *hidden)
{
    for (int64_t i = 0; i < m->cfg.num_layers; i++) {
        const fy_tensor *w = NULL;
        FY_TRY(fy_engine_acquire(m->e, m->blocks[i].group, &w));
        fy_status s = self_attention(m, w, a);
        if (s == FY_OK) s = feed_forward(m, w, a);
        fy_status r = fy_engine_release(m->e, m->blocks[i].group);
        FY_TRY(s);
        FY_TRY(r);
        if (hidden && i + 1 < m->cfg.num_layers) FY_TRY(download(m, hidden[i + 1], a->x, a));
    }
    return FY_OK;
}

static fy_status run_forward(fy_umt5 *m, const int64_t *ids, umt5_acts *a, float *last, float *const *hidden)
{
    const fy_tensor *w = NULL;
    double t0 = now_s();
    FY_TRY(fy_engine_gather_rows(m->e, &m->embed, ids, a->R, a->x));
    m->prof.other += now_s() - t0;
    fy_status s, r;
    if (hidden) FY_TRY(download(m, hidden[0], a->x, a));
    FY_TRY(run_blocks(m, a, hidden));
    FY_TRY(fy_engine_acquire(m->e, m->final_group, &w));
    s = rms_norm(m, &w[0], a->x, a->h, a);
    r = fy_engine_release(m->e, m->final_group);
    FY_TRY(s);
    FY_TRY(r);
    if (hidden) FY_TRY(download(m, hidden[m->cfg.num_layers], a->h, a));
    return download(m, last, a->h, a);
}

static fy_status check_inputs(const fy_umt5 *m, const int64_t *ids, const int64_t *mask, int64_t batch,
                              int64_t len)
{
    if (!ids || !mask || batch < 1 || len < 1 || batch > ((int64_t)1 << 20) || len > ((int64_t)1 << 20))
        return fy_error(FY_ERR_INVALID, "text encoder: need ids and mask of at least one token (got %lld x %lld)",
                        (long long)batch, (long long)len);
    for (int64_t r = 0; r < batch * len; r++)
        if (ids[r] < 0 || ids[r] >= m->cfg.vocab_size)
            return fy_error(FY_ERR_INVALID, "text encoder: token id %lld (item %lld, position %lld) is outside "
                            "the vocabulary of %lld (%s)",
                            (long long)ids[r], (long long)(r / len), (long long)(r % len),
                            (long long)m->cfg.vocab_size, fy_config_path(m->c->config));
    return FY_OK;
}

fy_status fy_umt5_forward(fy_umt5 *m, const int64_t *ids, const int64_t *mask, int64_t batch, int64_t len,
                          float *last, float *const *hidden)
{
    if (!m) return fy_error(FY_ERR_INVALID, "fy_umt5_forward: NULL model");
    FY_TRY(check_inputs(m, ids, mask, batch, len));
    if (!m->ops) FY_TRY(fy_engine_ops_create(m->e, m->threads, &m->ops));
    double t0 = now_s();
    umt5_acts a = {.B = batch, .L = len, .R = batch * len};
    fy_status s = alloc_acts(m, &a);
    if (s == FY_OK) s = prepare_inputs(m, mask, &a);
    if (s == FY_OK) s = run_forward(m, ids, &a, last, hidden);
    free_acts(m->e, &a);
    m->prof.total += now_s() - t0;
    m->prof.tokens += batch * len;
    return s;
}
