/* Wan DiT loading: the config, the weight checks and the engine groups. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/wan_dit_internal.h"
#include "models/weight.h"

#define MAX_HEAD_DIM 1024 /* the rope tables' stack buffers */

/* ---- config ------------------------------------------------------------- */

/* Image-to-video: image_dim and added_kv_proj_dim come together; the
 * image tokens are projected to dim before the added K/V projections, so
 * added_kv_proj_dim must be dim. FLF2V's learned image position embedding
 * (pos_embed_seq_len) is not implemented. */
static fy_status read_image_keys(const fy_config *cfg, fy_wan_dit_config *c)
{
    if (fy_config_has(cfg, "pos_embed_seq_len"))
        return fy_error(FY_ERR_UNSUPPORTED,
                        "%s: \"pos_embed_seq_len\" is set: first-last-frame (FLF2V) transformers are not supported "
                        "yet (image-to-video configs have it null)", fy_config_path(cfg));
    FY_TRY(fy_config_int_or(cfg, "image_dim", 0, &c->image_dim));
    FY_TRY(fy_config_int_or(cfg, "added_kv_proj_dim", 0, &c->added_kv_proj_dim));
    if (!c->image_dim && !c->added_kv_proj_dim) return FY_OK;
    if (c->image_dim < 1 || c->image_dim > ((int64_t)1 << 20) || c->added_kv_proj_dim != c->dim)
        return fy_error(FY_ERR_FORMAT,
                        "%s: image_dim %lld and added_kv_proj_dim %lld: an image-to-video transformer needs both, "
                        "with added_kv_proj_dim = num_attention_heads x attention_head_dim (%lld)",
                        fy_config_path(cfg), (long long)c->image_dim, (long long)c->added_kv_proj_dim,
                        (long long)c->dim);
    return FY_OK;
}

static fy_status check_positive(const fy_config *cfg, const char *key, int64_t v, int64_t max)
{
    if (v < 1 || v > max)
        return fy_error(FY_ERR_FORMAT, "%s: \"%s\" is %lld; expected 1..%lld", fy_config_path(cfg), key,
                        (long long)v, (long long)max);
    return FY_OK;
}

static fy_status read_dims(const fy_config *cfg, fy_wan_dit_config *c)
{
    const int64_t big = (int64_t)1 << 20;
    FY_TRY(fy_config_int(cfg, "num_attention_heads", &c->heads));
    FY_TRY(check_positive(cfg, "num_attention_heads", c->heads, 4096));
    FY_TRY(fy_config_int(cfg, "attention_head_dim", &c->head_dim));
    FY_TRY(check_positive(cfg, "attention_head_dim", c->head_dim, MAX_HEAD_DIM));
    if (c->head_dim % 2)
        return fy_error(FY_ERR_FORMAT, "%s: attention_head_dim %lld is odd; rotary embedding needs pairs",
                        fy_config_path(cfg), (long long)c->head_dim);
    c->dim = c->heads * c->head_dim;
    FY_TRY(fy_config_int(cfg, "in_channels", &c->in_channels));
    FY_TRY(check_positive(cfg, "in_channels", c->in_channels, big));
    FY_TRY(fy_config_int_or(cfg, "out_channels", c->in_channels, &c->out_channels));
    FY_TRY(check_positive(cfg, "out_channels", c->out_channels, big));
    FY_TRY(fy_config_int(cfg, "ffn_dim", &c->ffn_dim));
    FY_TRY(check_positive(cfg, "ffn_dim", c->ffn_dim, big));
    FY_TRY(fy_config_int(cfg, "freq_dim", &c->freq_dim));
    FY_TRY(check_positive(cfg, "freq_dim", c->freq_dim, big));
    FY_TRY(fy_config_int(cfg, "text_dim", &c->text_dim));
    FY_TRY(check_positive(cfg, "text_dim", c->text_dim, big));
    FY_TRY(fy_config_int(cfg, "num_layers", &c->num_layers));
    FY_TRY(check_positive(cfg, "num_layers", c->num_layers, 4096));
    return FY_OK;
}

static fy_status read_config(const fy_config *cfg, fy_wan_dit_config *c)
{
    memset(c, 0, sizeof *c);
    FY_TRY(read_dims(cfg, c));
    size_t n = 0;
    FY_TRY(fy_config_int_array(cfg, "patch_size", c->patch, 3, &n));
    if (n != 3)
        return fy_error(FY_ERR_FORMAT, "%s: \"patch_size\" has %zu entries; expected 3 (frames, height, width)",
                        fy_config_path(cfg), n);
    for (int i = 0; i < 3; i++) FY_TRY(check_positive(cfg, "patch_size", c->patch[i], 64));
    FY_TRY(fy_config_double(cfg, "eps", &c->eps));
    if (!(c->eps > 0 && c->eps < 1))
        return fy_error(FY_ERR_FORMAT, "%s: \"eps\" is %g; expected a small positive number", fy_config_path(cfg), c->eps);
    FY_TRY(fy_config_bool(cfg, "cross_attn_norm", &c->cross_attn_norm));
    FY_TRY(fy_config_int(cfg, "rope_max_seq_len", &c->rope_max_seq_len));
    FY_TRY(check_positive(cfg, "rope_max_seq_len", c->rope_max_seq_len, (int64_t)1 << 30));
    const char *qk = NULL;
    FY_TRY(fy_config_string(cfg, "qk_norm", &qk));
    if (strcmp(qk, "rms_norm_across_heads") != 0)
        return fy_error(FY_ERR_UNSUPPORTED, "%s: qk_norm \"%s\" is not supported (only \"rms_norm_across_heads\")",
                        fy_config_path(cfg), qk);
    return read_image_keys(cfg, c);
}

/* ---- weights ------------------------------------------------------------ */

/* A Linear's weight [out, in] and bias [out] into w[0], w[1]. */
static fy_status linear_weights(const fy_component *c, const char *prefix, int64_t in, int64_t out_dim,
                                fy_tensor *w)
{
    char name[384]; /* callers build prefixes of up to 320 bytes */
    snprintf(name, sizeof name, "%s.weight", prefix);
    FY_TRY(fy_weight_lookup_linear(c, name, out_dim, in, &w[0]));
    snprintf(name, sizeof name, "%s.bias", prefix);
    return fy_weight_lookup2(c, name, out_dim, 0, &w[1]);
}

static fy_status embed_weights(fy_wan_dit *m)
{
    const fy_component *c = m->comp;
    const fy_wan_dit_config *g = &m->cfg;
    fy_tensor *w = m->embed_w;
    int64_t ps[5] = {g->dim, g->in_channels, g->patch[0], g->patch[1], g->patch[2]};
    FY_TRY(fy_weight_lookup(c, "patch_embedding.weight", 5, ps, &w[WE_PATCH_W]));
    FY_TRY(fy_weight_lookup2(c, "patch_embedding.bias", g->dim, 0, &w[WE_PATCH_B]));
    FY_TRY(linear_weights(c, "condition_embedder.time_embedder.linear_1", g->freq_dim, g->dim, &w[WE_TIME1_W]));
    FY_TRY(linear_weights(c, "condition_embedder.time_embedder.linear_2", g->dim, g->dim, &w[WE_TIME2_W]));
    FY_TRY(linear_weights(c, "condition_embedder.time_proj", g->dim, 6 * g->dim, &w[WE_TPROJ_W]));
    FY_TRY(linear_weights(c, "condition_embedder.text_embedder.linear_1", g->text_dim, g->dim, &w[WE_TEXT1_W]));
    FY_TRY(linear_weights(c, "condition_embedder.text_embedder.linear_2", g->dim, g->dim, &w[WE_TEXT2_W]));
    if (!g->image_dim) return FY_OK;
    const char *img = "condition_embedder.image_embedder";
    char name[128];
    snprintf(name, sizeof name, "%s.norm1.weight", img);
    FY_TRY(fy_weight_lookup2(c, name, g->image_dim, 0, &w[WE_IMG_N1_W]));
    snprintf(name, sizeof name, "%s.norm1.bias", img);
    FY_TRY(fy_weight_lookup2(c, name, g->image_dim, 0, &w[WE_IMG_N1_B]));
    snprintf(name, sizeof name, "%s.ff.net.0.proj", img);
    FY_TRY(linear_weights(c, name, g->image_dim, g->image_dim, &w[WE_IMG_FF1_W]));
    snprintf(name, sizeof name, "%s.ff.net.2", img);
    FY_TRY(linear_weights(c, name, g->image_dim, g->dim, &w[WE_IMG_FF2_W]));
    snprintf(name, sizeof name, "%s.norm2.weight", img);
    FY_TRY(fy_weight_lookup2(c, name, g->dim, 0, &w[WE_IMG_N2_W]));
    snprintf(name, sizeof name, "%s.norm2.bias", img);
    return fy_weight_lookup2(c, name, g->dim, 0, &w[WE_IMG_N2_B]);
}

/* The image keys and values of attn2 (I2V). */
static fy_status added_kv_weights(fy_wan_dit *m, const char *prefix, fy_tensor *w)
{
    char name[320];
    int64_t d = m->cfg.dim;
    snprintf(name, sizeof name, "%s.add_k_proj", prefix);
    FY_TRY(linear_weights(m->comp, name, d, d, &w[WB_ADD_K_W]));
    snprintf(name, sizeof name, "%s.add_v_proj", prefix);
    FY_TRY(linear_weights(m->comp, name, d, d, &w[WB_ADD_V_W]));
    snprintf(name, sizeof name, "%s.norm_added_k.weight", prefix);
    return fy_weight_lookup2(m->comp, name, d, 0, &w[WB_NORM_ADDED_K]);
}

static fy_status attention_weights(fy_wan_dit *m, const char *prefix, fy_tensor *w)
{
    static const char *const proj[4] = {"to_q", "to_k", "to_v", "to_out.0"};
    char name[256];
    int64_t d = m->cfg.dim;
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s.%s", prefix, proj[i]);
        FY_TRY(linear_weights(m->comp, name, d, d, &w[WA_Q_W + 2 * i]));
    }
    snprintf(name, sizeof name, "%s.norm_q.weight", prefix);
    FY_TRY(fy_weight_lookup2(m->comp, name, d, 0, &w[WA_NORM_Q]));
    snprintf(name, sizeof name, "%s.norm_k.weight", prefix);
    return fy_weight_lookup2(m->comp, name, d, 0, &w[WA_NORM_K]);
}

static fy_status block_weights(fy_wan_dit *m, int64_t i, fy_tensor *w)
{
    const fy_wan_dit_config *g = &m->cfg;
    char p[128], name[256];
    snprintf(p, sizeof p, "blocks.%lld", (long long)i);
    snprintf(name, sizeof name, "%s.attn1", p);
    FY_TRY(attention_weights(m, name, &w[WB_ATTN1]));
    snprintf(name, sizeof name, "%s.attn2", p);
    FY_TRY(attention_weights(m, name, &w[WB_ATTN2]));
    if (g->image_dim) FY_TRY(added_kv_weights(m, name, w));
    if (g->cross_attn_norm) {
        snprintf(name, sizeof name, "%s.norm2.weight", p);
        FY_TRY(fy_weight_lookup2(m->comp, name, g->dim, 0, &w[WB_NORM2_W]));
        snprintf(name, sizeof name, "%s.norm2.bias", p);
        FY_TRY(fy_weight_lookup2(m->comp, name, g->dim, 0, &w[WB_NORM2_B]));
    }
    snprintf(name, sizeof name, "%s.ffn.net.0.proj", p);
    FY_TRY(linear_weights(m->comp, name, g->dim, g->ffn_dim, &w[WB_FFN1_W]));
    snprintf(name, sizeof name, "%s.ffn.net.2", p);
    FY_TRY(linear_weights(m->comp, name, g->ffn_dim, g->dim, &w[WB_FFN2_W]));
    int64_t sst[3] = {1, 6, g->dim};
    snprintf(name, sizeof name, "%s.scale_shift_table", p);
    return fy_weight_lookup(m->comp, name, 3, sst, &w[WB_SST]);
}

static fy_status head_weights(fy_wan_dit *m)
{
    const fy_wan_dit_config *g = &m->cfg;
    int64_t sst[3] = {1, 2, g->dim};
    FY_TRY(fy_weight_lookup(m->comp, "scale_shift_table", 3, sst, &m->head_w[WH_SST]));
    return linear_weights(m->comp, "proj_out", g->dim, fy_wan_patch_len(g, g->out_channels), &m->head_w[WH_PROJ_W]);
}

/* ---- groups ------------------------------------------------------------- */

/* Without cross_attn_norm the block has no norm2, without image_dim no
 * image K/V: their slots are left out of the group, so the group holds only
 * real tensors. */
bool fy_wan_block_has(const fy_wan_dit_config *c, int slot)
{
    if (!c->cross_attn_norm && (slot == WB_NORM2_W || slot == WB_NORM2_B)) return false;
    return c->image_dim || slot < WB_ADD_K_W;
}

static int pack_block(const fy_wan_dit *m, const fy_tensor *w, fy_tensor *packed)
{
    int n = 0;
    for (int i = 0; i < WB_COUNT; i++)
        if (fy_wan_block_has(&m->cfg, i)) packed[n++] = w[i];
    return n;
}

/* Layerwise casting (--storage-dtype): the blocks' Linear weights may be
 * stored in fp8; their biases, the q/k and cross-attention norms, the
 * modulation table and every non-block weight (patch embedding, condition
 * embedder, proj_out, the head's table) stay as stored, as diffusers' skip
 * list for Wan keeps them. */
static fy_status mark_castable(const fy_wan_dit *m, int group)
{
    static const int linear[] = {
        WB_ATTN1 + WA_Q_W, WB_ATTN1 + WA_K_W, WB_ATTN1 + WA_V_W, WB_ATTN1 + WA_O_W,
        WB_ATTN2 + WA_Q_W, WB_ATTN2 + WA_K_W, WB_ATTN2 + WA_V_W, WB_ATTN2 + WA_O_W,
        WB_FFN1_W, WB_FFN2_W, WB_ADD_K_W, WB_ADD_V_W,
    };
    for (size_t i = 0; i < sizeof linear / sizeof linear[0]; i++) {
        if (!fy_wan_block_has(&m->cfg, linear[i])) continue;
        int at = 0; /* its index in the packed group: absent slots are left out */
        for (int j = 0; j < linear[i]; j++) at += fy_wan_block_has(&m->cfg, j);
        FY_TRY(fy_engine_mark_castable(m->engine, group, at));
    }
    return FY_OK;
}

static fy_status declare_groups(fy_wan_dit *m)
{
    fy_engine *e = m->engine;
    FY_TRY(fy_engine_add_component(e, m->comp->name ? m->comp->name : "transformer", &m->component_id));
    m->embed_count = m->cfg.image_dim ? WE_COUNT : WE_T2V_COUNT;
    FY_TRY(fy_engine_add_group(e, m->component_id, "embed", FY_GROUP_SMALL, m->embed_w, m->embed_count,
                               &m->embed_group));
    for (int64_t i = 0; i < m->cfg.num_layers; i++) {
        fy_tensor packed[WB_COUNT];
        int n = pack_block(m, &m->block_w[i * WB_COUNT], packed);
        char name[64];
        snprintf(name, sizeof name, "blocks.%lld", (long long)i);
        FY_TRY(fy_engine_add_group(e, m->component_id, name, FY_GROUP_BLOCK, packed, n, &m->block_groups[i]));
        FY_TRY(mark_castable(m, m->block_groups[i]));
        m->block_count = n;
    }
    return fy_engine_add_group(e, m->component_id, "head", FY_GROUP_SMALL, m->head_w, WH_COUNT, &m->head_group);
}

/* Quantised weights need a linear that decodes them on the device. */
static fy_status require_linear(const fy_wan_dit *m, const fy_tensor *w)
{
    if (!fy_dtype_is_quant(w->dtype)) return FY_OK;
    return fy_ops_require(fy_engine_backend(m->engine), FY_OP_LINEAR, FY_F32, w->dtype);
}

static fy_status check_quant_support(fy_wan_dit *m)
{
    for (int64_t i = 0; i < m->cfg.num_layers * WB_COUNT; i++) FY_TRY(require_linear(m, &m->block_w[i]));
    for (int i = 0; i < WE_COUNT; i++) FY_TRY(require_linear(m, &m->embed_w[i]));
    for (int i = 0; i < WH_COUNT; i++) FY_TRY(require_linear(m, &m->head_w[i]));
    return FY_OK;
}

static fy_status load_weights(fy_wan_dit *m)
{
    FY_TRY(embed_weights(m));
    for (int64_t i = 0; i < m->cfg.num_layers; i++) FY_TRY(block_weights(m, i, &m->block_w[i * WB_COUNT]));
    FY_TRY(head_weights(m));
    return check_quant_support(m);
}

static fy_status alloc_model(fy_wan_dit *m)
{
    const fy_wan_dit_config *g = &m->cfg;
    m->block_w = calloc((size_t)(g->num_layers * WB_COUNT), sizeof *m->block_w);
    m->block_groups = calloc((size_t)g->num_layers, sizeof *m->block_groups);
    int64_t widest = g->dim * 6;
    if (g->image_dim > widest) widest = g->image_dim;
    if (g->ffn_dim > widest) widest = g->ffn_dim;
    int64_t proj = fy_wan_patch_len(g, g->out_channels);
    if (proj > widest) widest = proj;
    m->vec_slot = widest;
    if (!m->block_w || !m->block_groups) return fy_error(FY_ERR_NOMEM, "wan transformer: out of memory");
    return FY_OK;
}

/* The ops this model computes with (checked at load). */
static const fy_op WAN_DIT_OPS[] = {FY_OP_ADD,    FY_OP_ATTENTION, FY_OP_CONVERT,    FY_OP_GATED_ADD,
                                    FY_OP_GELU,   FY_OP_GELU_TANH, FY_OP_LAYER_NORM, FY_OP_LAYER_NORM_MODULATE,
                                    FY_OP_LINEAR, FY_OP_RMS_NORM,  FY_OP_ROPE,       FY_OP_SILU};

fy_status fy_wan_dit_load(const fy_component *c, fy_engine *e, fy_wan_dit **out)
{
    if (!c || !e || !out) return fy_error(FY_ERR_INVALID, "fy_wan_dit_load: NULL argument");
    *out = NULL;
    FY_TRY(fy_engine_ops_require(e, WAN_DIT_OPS, sizeof WAN_DIT_OPS / sizeof WAN_DIT_OPS[0]));
    if (!c->config || !c->weights)
        return fy_error(FY_ERR_FORMAT, "%s: the transformer needs config.json and its weights", c->dir);
    fy_wan_dit *m = calloc(1, sizeof *m);
    if (!m) return fy_error(FY_ERR_NOMEM, "wan transformer: out of memory");
    m->comp = c;
    m->engine = e;
    fy_status st = read_config(c->config, &m->cfg);
    if (st == FY_OK) st = alloc_model(m);
    if (st == FY_OK) st = load_weights(m);
    if (st == FY_OK) st = declare_groups(m);
    if (st != FY_OK) {
        fy_wan_dit_free(m);
        return st;
    }
    *out = m;
    return FY_OK;
}

void fy_wan_dit_free(fy_wan_dit *m)
{
    if (!m) return;
    fy_ops_free(m->ops);
    free(m->block_w);
    free(m->block_groups);
    free(m);
}

const fy_wan_dit_config *fy_wan_dit_get_config(const fy_wan_dit *m)
{
    return &m->cfg;
}

fy_status fy_wan_dit_set_threads(fy_wan_dit *m, int threads)
{
    if (threads < 0) return fy_error(FY_ERR_INVALID, "wan transformer: %d threads", threads);
    /* The next forward makes its ops with this many threads. */
    fy_ops_free(m->ops);
    m->ops = NULL;
    m->threads = threads;
    return FY_OK;
}

void fy_wan_dit_set_row_chunk(fy_wan_dit *m, int64_t rows)
{
    m->row_chunk = rows > 0 ? rows : 0;
}

void fy_wan_dit_set_tap(fy_wan_dit *m, fy_wan_dit_tap fn, void *user)
{
    m->tap = fn;
    m->tap_user = user;
}

const fy_wan_dit_timing *fy_wan_dit_last_timing(const fy_wan_dit *m)
{
    return &m->timing;
}
