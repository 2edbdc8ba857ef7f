/* The Flux transformer: config, weights and groups (see ferry/flux_dit.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/dtype.h"
#include "ferry/safetensors.h"
#include "models/flux_dit_internal.h"
#include "models/weight.h"

/* Dimension codes of the weight tables below. */
enum { Z = 0, I, I2, I3, I6, M, IM, C, J, P, F, O, D };

typedef struct wspec {
    const char *name;
    int d0, d1; /* d1 Z: a vector */
    int castable;
} wspec;

static const wspec embed_spec[E_COUNT] = {
    {"x_embedder.weight", I, C, 0}, {"x_embedder.bias", I, Z, 0},
    {"context_embedder.weight", I, J, 0}, {"context_embedder.bias", I, Z, 0},
    {"time_text_embed.timestep_embedder.linear_1.weight", I, F, 0},
    {"time_text_embed.timestep_embedder.linear_1.bias", I, Z, 0},
    {"time_text_embed.timestep_embedder.linear_2.weight", I, I, 0},
    {"time_text_embed.timestep_embedder.linear_2.bias", I, Z, 0},
    {"time_text_embed.text_embedder.linear_1.weight", I, P, 0},
    {"time_text_embed.text_embedder.linear_1.bias", I, Z, 0},
    {"time_text_embed.text_embedder.linear_2.weight", I, I, 0},
    {"time_text_embed.text_embedder.linear_2.bias", I, Z, 0},
    {"time_text_embed.guidance_embedder.linear_1.weight", I, F, 0},
    {"time_text_embed.guidance_embedder.linear_1.bias", I, Z, 0},
    {"time_text_embed.guidance_embedder.linear_2.weight", I, I, 0},
    {"time_text_embed.guidance_embedder.linear_2.bias", I, Z, 0},
};

static const wspec double_spec[D_COUNT] = {
    {"norm1.linear.weight", I6, I, 0}, {"norm1.linear.bias", I6, Z, 0},
    {"norm1_context.linear.weight", I6, I, 0}, {"norm1_context.linear.bias", I6, Z, 0},
    {"attn.to_q.weight", I, I, 1}, {"attn.to_q.bias", I, Z, 0},
    {"attn.to_k.weight", I, I, 1}, {"attn.to_k.bias", I, Z, 0},
    {"attn.to_v.weight", I, I, 1}, {"attn.to_v.bias", I, Z, 0},
    {"attn.norm_q.weight", D, Z, 0}, {"attn.norm_k.weight", D, Z, 0},
    {"attn.add_q_proj.weight", I, I, 1}, {"attn.add_q_proj.bias", I, Z, 0},
    {"attn.add_k_proj.weight", I, I, 1}, {"attn.add_k_proj.bias", I, Z, 0},
    {"attn.add_v_proj.weight", I, I, 1}, {"attn.add_v_proj.bias", I, Z, 0},
    {"attn.norm_added_q.weight", D, Z, 0}, {"attn.norm_added_k.weight", D, Z, 0},
    {"attn.to_out.0.weight", I, I, 1}, {"attn.to_out.0.bias", I, Z, 0},
    {"attn.to_add_out.weight", I, I, 1}, {"attn.to_add_out.bias", I, Z, 0},
    {"ff.net.0.proj.weight", M, I, 1}, {"ff.net.0.proj.bias", M, Z, 0},
    {"ff.net.2.weight", I, M, 1}, {"ff.net.2.bias", I, Z, 0},
    {"ff_context.net.0.proj.weight", M, I, 1}, {"ff_context.net.0.proj.bias", M, Z, 0},
    {"ff_context.net.2.weight", I, M, 1}, {"ff_context.net.2.bias", I, Z, 0},
};

static const wspec single_spec[S_COUNT] = {
    {"norm.linear.weight", I3, I, 0}, {"norm.linear.bias", I3, Z, 0},
    {"attn.to_q.weight", I, I, 1}, {"attn.to_q.bias", I, Z, 0},
    {"attn.to_k.weight", I, I, 1}, {"attn.to_k.bias", I, Z, 0},
    {"attn.to_v.weight", I, I, 1}, {"attn.to_v.bias", I, Z, 0},
    {"attn.norm_q.weight", D, Z, 0}, {"attn.norm_k.weight", D, Z, 0},
    {"proj_mlp.weight", M, I, 1}, {"proj_mlp.bias", M, Z, 0},
    {"proj_out.weight", I, IM, 1}, {"proj_out.bias", I, Z, 0},
};

static const wspec out_spec[O_COUNT] = {
    {"norm_out.linear.weight", I2, I, 0}, {"norm_out.linear.bias", I2, Z, 0},
    {"proj_out.weight", O, I, 0}, {"proj_out.bias", O, Z, 0},
};

static int64_t dim_of(const fy_flux_dit_config *k, int code)
{
    switch (code) {
    case I: return k->inner;
    case I2: return 2 * k->inner;
    case I3: return 3 * k->inner;
    case I6: return 6 * k->inner;
    case M: return k->mlp;
    case IM: return k->inner + k->mlp;
    case C: return k->in_channels;
    case J: return k->joint_dim;
    case P: return k->pooled_dim;
    case F: return FLUX_FREQ_DIM;
    case O: return k->out_channels;
    case D: return k->head_dim;
    default: return 0;
    }
}

/* ---- config ------------------------------------------------------------------------ */

static fy_status positive(const fy_config *j, const char *key, int64_t *out)
{
    FY_TRY(fy_config_int(j, key, out));
    if (*out < 1 || *out > (int64_t)1 << 24)
        return fy_error(FY_ERR_FORMAT, "%s: \"%s\" is %lld, expected a positive size", fy_config_path(j), key,
                        (long long)*out);
    return FY_OK;
}

static fy_status read_axes(const fy_config *j, fy_flux_dit_config *k)
{
    size_t n = 0;
    FY_TRY(fy_config_int_array(j, "axes_dims_rope", k->axes, FY_FLUX_MAX_AXES, &n));
    int64_t sum = 0;
    for (size_t a = 0; a < n; a++) {
        if (k->axes[a] < 2 || k->axes[a] % 2)
            return fy_error(FY_ERR_FORMAT, "%s: axes_dims_rope[%zu] = %lld must be even and positive",
                            fy_config_path(j), a, (long long)k->axes[a]);
        sum += k->axes[a];
    }
    if (n == 0 || sum != k->head_dim)
        return fy_error(FY_ERR_FORMAT, "%s: axes_dims_rope sums to %lld, attention_head_dim is %lld",
                        fy_config_path(j), (long long)sum, (long long)k->head_dim);
    k->n_axes = (int)n;
    return FY_OK;
}

static fy_status read_config(const fy_component *c, fy_flux_dit_config *k)
{
    const fy_config *j = c->config;
    if (!j) return fy_error(FY_ERR_NOT_FOUND, "%s: no config.json for the transformer", c->dir);
    memset(k, 0, sizeof *k);
    int64_t patch = 1;
    FY_TRY(positive(j, "num_attention_heads", &k->heads));
    FY_TRY(positive(j, "attention_head_dim", &k->head_dim));
    FY_TRY(positive(j, "num_layers", &k->double_layers));
    FY_TRY(fy_config_int(j, "num_single_layers", &k->single_layers));
    FY_TRY(positive(j, "in_channels", &k->in_channels));
    FY_TRY(positive(j, "joint_attention_dim", &k->joint_dim));
    FY_TRY(positive(j, "pooled_projection_dim", &k->pooled_dim));
    FY_TRY(fy_config_int_or(j, "patch_size", 1, &patch));
    FY_TRY(fy_config_bool_or(j, "guidance_embeds", false, &k->guidance_embeds));
    k->out_channels = k->in_channels;
    if (fy_config_has(j, "out_channels") && fy_config_int(j, "out_channels", &k->out_channels) != FY_OK)
        k->out_channels = k->in_channels; /* null: in_channels */
    fy_error_clear();
    if (patch != 1)
        return fy_error(FY_ERR_UNSUPPORTED, "%s: patch_size %lld (Flux.1 uses 1)", fy_config_path(j), (long long)patch);
    if (k->single_layers < 0)
        return fy_error(FY_ERR_FORMAT, "%s: num_single_layers must not be negative", fy_config_path(j));
    if (k->head_dim % 2)
        return fy_error(FY_ERR_FORMAT, "%s: attention_head_dim must be even (RoPE pairs)", fy_config_path(j));
    k->inner = k->heads * k->head_dim;
    k->mlp = 4 * k->inner;
    k->theta = 10000.0;
    return read_axes(j, k);
}

/* ---- weights ------------------------------------------------------------------------ */

static fy_status weight(const fy_flux_dit *m, const char *name, const wspec *sp, fy_tensor *out)
{
    return fy_weight_lookup2(m->c, name, dim_of(&m->cfg, sp->d0), dim_of(&m->cfg, sp->d1), out);
}

static fy_status group_weights(fy_flux_dit *m, const char *prefix, const wspec *spec, int n, flux_group *g)
{
    g->n = n;
    g->w = calloc((size_t)n, sizeof *g->w);
    if (!g->w) return fy_error(FY_ERR_NOMEM, "transformer: out of memory");
    for (int k = 0; k < n; k++) {
        char name[192];
        snprintf(name, sizeof name, "%s%s", prefix, spec[k].name);
        FY_TRY(weight(m, name, &spec[k], &g->w[k]));
    }
    return FY_OK;
}

static fy_status declare(fy_flux_dit *m, const char *name, fy_group_kind kind, flux_group *g, const wspec *spec)
{
    FY_TRY(fy_engine_add_group(m->e, m->comp, name, kind, g->w, g->n, &g->id));
    for (int k = 0; kind == FY_GROUP_BLOCK && k < g->n; k++)
        if (spec[k].castable) FY_TRY(fy_engine_mark_castable(m->e, g->id, k));
    return FY_OK;
}

static fy_status load_weights(fy_flux_dit *m)
{
    const fy_flux_dit_config *k = &m->cfg;
    if (!m->c->weights) return fy_error(FY_ERR_NOT_FOUND, "%s: the transformer has no weights", m->c->dir);
    m->doubles = calloc((size_t)k->double_layers, sizeof *m->doubles);
    m->singles = calloc((size_t)k->single_layers + 1, sizeof *m->singles);
    if (!m->doubles || !m->singles) return fy_error(FY_ERR_NOMEM, "transformer: out of memory");
    FY_TRY(group_weights(m, "", embed_spec, k->guidance_embeds ? E_COUNT : E_G1, &m->embed));
    FY_TRY(fy_engine_add_component(m->e, m->c->name ? m->c->name : "transformer", &m->comp));
    FY_TRY(declare(m, "embedders", FY_GROUP_SMALL, &m->embed, embed_spec));
    char prefix[96];
    for (int64_t i = 0; i < k->double_layers; i++) {
        snprintf(prefix, sizeof prefix, "transformer_blocks.%lld.", (long long)i);
        FY_TRY(group_weights(m, prefix, double_spec, D_COUNT, &m->doubles[i]));
        prefix[strlen(prefix) - 1] = 0;
        FY_TRY(declare(m, prefix, FY_GROUP_BLOCK, &m->doubles[i], double_spec));
    }
    for (int64_t i = 0; i < k->single_layers; i++) {
        snprintf(prefix, sizeof prefix, "single_transformer_blocks.%lld.", (long long)i);
        FY_TRY(group_weights(m, prefix, single_spec, S_COUNT, &m->singles[i]));
        prefix[strlen(prefix) - 1] = 0;
        FY_TRY(declare(m, prefix, FY_GROUP_BLOCK, &m->singles[i], single_spec));
    }
    FY_TRY(group_weights(m, "", out_spec, O_COUNT, &m->out));
    return declare(m, "norm_out", FY_GROUP_SMALL, &m->out, out_spec);
}

/* The ops this model computes with (checked at load). */
static const fy_op FLUX_OPS[] = {
    FY_OP_ADD,       FY_OP_ATTENTION,           FY_OP_CONVERT, FY_OP_COPY,     FY_OP_GATED_ADD,
    FY_OP_GELU_TANH, FY_OP_LAYER_NORM_MODULATE, FY_OP_LINEAR,  FY_OP_RMS_NORM, FY_OP_ROPE,
    FY_OP_SILU};

fy_status fy_flux_dit_load(const fy_component *c, fy_engine *e, fy_flux_dit **out)
{
    if (!c || !e || !out) return fy_error(FY_ERR_INVALID, "fy_flux_dit_load: NULL argument");
    *out = NULL;
    FY_TRY(fy_engine_ops_require(e, FLUX_OPS, sizeof FLUX_OPS / sizeof FLUX_OPS[0]));
    fy_flux_dit *m = calloc(1, sizeof *m);
    if (!m) return fy_error(FY_ERR_NOMEM, "transformer: out of memory");
    m->c = c;
    m->e = e;
    fy_status s = read_config(c, &m->cfg);
    if (s == FY_OK) s = load_weights(m);
    if (s != FY_OK) {
        fy_flux_dit_free(m);
        return s;
    }
    *out = m;
    return FY_OK;
}

void fy_flux_dit_free(fy_flux_dit *m)
{
    if (!m) return;
    fy_ops_free(m->ops);
    for (int64_t i = 0; m->doubles && i < m->cfg.double_layers; i++) free(m->doubles[i].w);
    for (int64_t i = 0; m->singles && i < m->cfg.single_layers; i++) free(m->singles[i].w);
    free(m->doubles);
    free(m->singles);
    free(m->embed.w);
    free(m->out.w);
    free(m);
}

const fy_flux_dit_config *fy_flux_dit_get_config(const fy_flux_dit *m) { return &m->cfg; }

fy_status fy_flux_dit_set_threads(fy_flux_dit *m, int threads)
{
    if (threads < 0) return fy_error(FY_ERR_INVALID, "--threads %d: must be 0 (all cores) or more", threads);
    if (m->ops) return fy_error(FY_ERR_INVALID, "transformer: threads are set before the first forward");
    m->threads = threads;
    return FY_OK;
}

void fy_flux_dit_set_tap(fy_flux_dit *m, fy_flux_tap_fn fn, void *user)
{
    m->tap = fn;
    m->tap_user = user;
}

fy_status fy_flux_rope_tables(const fy_flux_dit_config *k, const float *ids, int64_t n, float *cos_t, float *sin_t)
{
    if (!k || !ids || !cos_t || !sin_t) return fy_error(FY_ERR_INVALID, "fy_flux_rope_tables: NULL argument");
    int64_t half = k->head_dim / 2;
    for (int64_t t = 0; t < n; t++) {
        int64_t col = 0;
        for (int a = 0; a < k->n_axes; a++) {
            double pos = (double)ids[t * k->n_axes + a];
            for (int64_t j = 0; j < k->axes[a] / 2; j++, col++) {
                double freq = 1.0 / pow(k->theta, (double)(2 * j) / (double)k->axes[a]);
                cos_t[t * half + col] = (float)cos(pos * freq);
                sin_t[t * half + col] = (float)sin(pos * freq);
            }
        }
    }
    return FY_OK;
}
