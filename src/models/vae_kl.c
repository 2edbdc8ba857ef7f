/* AutoencoderKL: config, weights and groups (see ferry/vae_kl.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/dtype.h"
#include "ferry/safetensors.h"
#include "models/vae_kl_internal.h"
#include "models/weight.h"

/* ---- config -------------------------------------------------------------------------- */

static fy_status positive(const fy_config *j, const char *key, int64_t def, int64_t *out)
{
    FY_TRY(fy_config_int_or(j, key, def, out));
    if (*out < 1 || *out > (int64_t)1 << 20)
        return fy_error(FY_ERR_FORMAT, "%s: \"%s\" is %lld, expected a positive size", fy_config_path(j), key,
                        (long long)*out);
    return FY_OK;
}

static fy_status read_config(const fy_component *c, fy_vae_kl_config *k)
{
    const fy_config *j = c->config;
    if (!j) return fy_error(FY_ERR_NOT_FOUND, "%s: no config.json for the VAE", c->dir);
    memset(k, 0, sizeof *k);
    size_t n = 0;
    FY_TRY(fy_config_int_array(j, "block_out_channels", k->channels, FY_VAE_KL_MAX_LEVELS, &n));
    FY_TRY(positive(j, "in_channels", 3, &k->in_channels));
    FY_TRY(positive(j, "out_channels", 3, &k->out_channels));
    FY_TRY(positive(j, "latent_channels", 4, &k->latent_channels));
    FY_TRY(positive(j, "layers_per_block", 1, &k->layers_per_block));
    FY_TRY(positive(j, "norm_num_groups", 32, &k->groups));
    FY_TRY(fy_config_bool_or(j, "mid_block_add_attention", true, &k->mid_attention));
    /* An int or, in some configs, a [height, width] list: diffusers takes the first. */
    int64_t sizes[2];
    size_t ns = 0;
    if (fy_config_int_array(j, "sample_size", sizes, 2, &ns) == FY_OK && ns > 0) k->sample_size = sizes[0];
    else {
        fy_error_clear();
        FY_TRY(positive(j, "sample_size", 32, &k->sample_size));
    }
    if (k->sample_size < 1 || k->sample_size > (int64_t)1 << 20)
        return fy_error(FY_ERR_FORMAT, "%s: sample_size is %lld, expected a positive size", fy_config_path(j),
                        (long long)k->sample_size);
    FY_TRY(fy_config_double_or(j, "scaling_factor", 0.18215, &k->scaling_factor));
    k->shift_factor = 0.0;
    if (fy_config_has(j, "shift_factor") && fy_config_double(j, "shift_factor", &k->shift_factor) != FY_OK)
        k->shift_factor = 0.0; /* null */
    fy_error_clear();
    bool quant = false, post_quant = false;
    FY_TRY(fy_config_bool_or(j, "use_quant_conv", true, &quant));
    FY_TRY(fy_config_bool_or(j, "use_post_quant_conv", true, &post_quant));
    if (quant || post_quant)
        return fy_error(FY_ERR_UNSUPPORTED, "%s: use_quant_conv / use_post_quant_conv (ferry's AutoencoderKL is "
                        "Flux's, without them)", fy_config_path(j));
    if (n == 0) return fy_error(FY_ERR_FORMAT, "%s: block_out_channels is empty", fy_config_path(j));
    k->levels = (int)n;
    for (size_t i = 0; i < n; i++)
        if (k->channels[i] < 1 || k->channels[i] % k->groups)
            return fy_error(FY_ERR_FORMAT, "%s: block_out_channels[%zu] = %lld is not a multiple of "
                            "norm_num_groups %lld", fy_config_path(j), i, (long long)k->channels[i],
                            (long long)k->groups);
    if (!(k->scaling_factor != 0.0))
        return fy_error(FY_ERR_FORMAT, "%s: scaling_factor must not be 0", fy_config_path(j));
    return FY_OK;
}

/* ---- weights ---------------------------------------------------------------------------- */

/* name.weight / name.bias; conv k > 0: [cout, cin, k, k]; k 0: a norm [cout]; k -1: a Linear [cout, cin]. */
static fy_status param(const fy_component *c, const char *name, int64_t cout, int64_t cin, int k, fy_tensor *w)
{
    char full[160];
    int64_t want[4] = {cout, cin, k, k};
    snprintf(full, sizeof full, "%s.weight", name);
    FY_TRY(fy_weight_lookup(c, full, k > 0 ? 4 : k == 0 ? 1 : 2, want, &w[0]));
    snprintf(full, sizeof full, "%s.bias", name);
    return fy_weight_lookup(c, full, 1, want, &w[1]);
}

static fy_status push_layer(kl_part *p, kl_layer **out)
{
    if (p->n_layers == p->cap) {
        int cap = p->cap ? 2 * p->cap : 16;
        kl_layer *l = realloc(p->layers, (size_t)cap * sizeof *l);
        if (!l) return fy_error(FY_ERR_NOMEM, "VAE: out of memory");
        p->layers = l, p->cap = cap;
    }
    *out = &p->layers[p->n_layers++];
    memset(*out, 0, sizeof **out);
    return FY_OK;
}

static fy_status add_resnet(const fy_component *c, kl_part *p, const char *name, int64_t cin, int64_t cout)
{
    kl_layer *l = NULL;
    FY_TRY(push_layer(p, &l));
    *l = (kl_layer){.kind = KL_RESNET, .cin = cin, .cout = cout, .nw = cin == cout ? 8 : 10};
    snprintf(l->name, sizeof l->name, "%s", name);
    char n[128];
    snprintf(n, sizeof n, "%s.norm1", name);
    FY_TRY(param(c, n, cin, 0, 0, &l->w[0]));
    snprintf(n, sizeof n, "%s.conv1", name);
    FY_TRY(param(c, n, cout, cin, 3, &l->w[2]));
    snprintf(n, sizeof n, "%s.norm2", name);
    FY_TRY(param(c, n, cout, 0, 0, &l->w[4]));
    snprintf(n, sizeof n, "%s.conv2", name);
    FY_TRY(param(c, n, cout, cout, 3, &l->w[6]));
    if (cin == cout) return FY_OK;
    snprintf(n, sizeof n, "%s.conv_shortcut", name);
    return param(c, n, cout, cin, 1, &l->w[8]);
}

static fy_status add_attention(const fy_component *c, kl_part *p, const char *name, int64_t ch)
{
    kl_layer *l = NULL;
    FY_TRY(push_layer(p, &l));
    *l = (kl_layer){.kind = KL_ATTN, .cin = ch, .cout = ch, .nw = 10};
    snprintf(l->name, sizeof l->name, "%s", name);
    static const char *const parts[5] = {"group_norm", "to_q", "to_k", "to_v", "to_out.0"};
    for (int i = 0; i < 5; i++) {
        char n[128];
        snprintf(n, sizeof n, "%s.%s", name, parts[i]);
        FY_TRY(param(c, n, ch, ch, i ? -1 : 0, &l->w[2 * i]));
    }
    return FY_OK;
}

static fy_status add_resample(const fy_component *c, kl_part *p, const char *name, kl_kind kind, int64_t ch)
{
    kl_layer *l = NULL;
    FY_TRY(push_layer(p, &l));
    *l = (kl_layer){.kind = kind, .cin = ch, .cout = ch, .nw = 2};
    snprintf(l->name, sizeof l->name, "%s", name);
    char n[128];
    snprintf(n, sizeof n, "%s.conv", name);
    return param(c, n, ch, ch, 3, &l->w[0]);
}

static fy_status add_mid(const fy_vae_kl *m, kl_part *p, const char *root, int64_t ch)
{
    char n[96];
    snprintf(n, sizeof n, "%s.mid_block.resnets.0", root);
    FY_TRY(add_resnet(m->c, p, n, ch, ch));
    if (m->cfg.mid_attention) {
        snprintf(n, sizeof n, "%s.mid_block.attentions.0", root);
        FY_TRY(add_attention(m->c, p, n, ch));
    }
    snprintf(n, sizeof n, "%s.mid_block.resnets.1", root);
    return add_resnet(m->c, p, n, ch, ch);
}

static fy_status head(const fy_vae_kl *m, kl_part *p, const char *root)
{
    char n[96];
    snprintf(n, sizeof n, "%s.conv_norm_out", root);
    FY_TRY(param(m->c, n, p->head_ch, 0, 0, &p->out[0]));
    snprintf(n, sizeof n, "%s.conv_out", root);
    return param(m->c, n, p->out_ch, p->head_ch, 3, &p->out[2]);
}

static fy_status load_decoder(fy_vae_kl *m)
{
    const fy_vae_kl_config *k = &m->cfg;
    kl_part *p = &m->dec;
    int L = k->levels;
    p->in_ch = k->latent_channels, p->mid_ch = k->channels[L - 1];
    p->head_ch = k->channels[0], p->out_ch = k->out_channels;
    FY_TRY(param(m->c, "decoder.conv_in", p->mid_ch, p->in_ch, 3, p->in));
    FY_TRY(add_mid(m, p, "decoder", p->mid_ch));
    int64_t prev = p->mid_ch;
    for (int i = 0; i < L; i++) {
        int64_t out = k->channels[L - 1 - i];
        for (int64_t j = 0; j <= k->layers_per_block; j++) {
            char n[96];
            snprintf(n, sizeof n, "decoder.up_blocks.%d.resnets.%lld", i, (long long)j);
            FY_TRY(add_resnet(m->c, p, n, j ? out : prev, out));
        }
        if (i + 1 < L) {
            char n[96];
            snprintf(n, sizeof n, "decoder.up_blocks.%d.upsamplers.0", i);
            FY_TRY(add_resample(m->c, p, n, KL_UP, out));
        }
        prev = out;
    }
    return head(m, p, "decoder");
}

static fy_status load_encoder(fy_vae_kl *m)
{
    const fy_vae_kl_config *k = &m->cfg;
    kl_part *p = &m->enc;
    int L = k->levels;
    p->in_ch = k->in_channels, p->mid_ch = k->channels[0];
    p->head_ch = k->channels[L - 1], p->out_ch = 2 * k->latent_channels;
    FY_TRY(param(m->c, "encoder.conv_in", p->mid_ch, p->in_ch, 3, p->in));
    int64_t prev = k->channels[0];
    for (int i = 0; i < L; i++) {
        int64_t out = k->channels[i];
        for (int64_t j = 0; j < k->layers_per_block; j++) {
            char n[96];
            snprintf(n, sizeof n, "encoder.down_blocks.%d.resnets.%lld", i, (long long)j);
            FY_TRY(add_resnet(m->c, p, n, j ? out : prev, out));
        }
        if (i + 1 < L) {
            char n[96];
            snprintf(n, sizeof n, "encoder.down_blocks.%d.downsamplers.0", i);
            FY_TRY(add_resample(m->c, p, n, KL_DOWN, out));
        }
        prev = out;
    }
    FY_TRY(add_mid(m, p, "encoder", prev));
    return head(m, p, "encoder");
}

static fy_status declare(fy_vae_kl *m, kl_part *p, const char *comp, const char *root)
{
    char n[96];
    FY_TRY(fy_engine_add_component(m->e, comp, &p->comp));
    snprintf(n, sizeof n, "%s.conv_in", root);
    FY_TRY(fy_engine_add_group(m->e, p->comp, n, FY_GROUP_SMALL, p->in, 2, &p->in_group));
    for (int i = 0; i < p->n_layers; i++) {
        kl_layer *l = &p->layers[i];
        FY_TRY(fy_engine_add_group(m->e, p->comp, l->name, FY_GROUP_BLOCK, l->w, l->nw, &l->group));
    }
    snprintf(n, sizeof n, "%s.conv_out", root);
    return fy_engine_add_group(m->e, p->comp, n, FY_GROUP_SMALL, p->out, 4, &p->out_group);
}

/* The ops this model computes with (checked at load). */
static const fy_op VAE_KL_OPS[] = {FY_OP_ADD,    FY_OP_CONV3D, FY_OP_CONVERT,           FY_OP_GROUP_NORM,
                                   FY_OP_LINEAR, FY_OP_SILU,   FY_OP_UPSAMPLE_NEAREST2X};

fy_status fy_vae_kl_load(const fy_component *c, fy_engine *e, int parts, fy_vae_kl **out)
{
    if (!c || !e || !out || !(parts & (FY_VAE_KL_DECODER | FY_VAE_KL_ENCODER)))
        return fy_error(FY_ERR_INVALID, "fy_vae_kl_load: bad argument");
    *out = NULL;
    FY_TRY(fy_engine_ops_require(e, VAE_KL_OPS, sizeof VAE_KL_OPS / sizeof VAE_KL_OPS[0]));
    fy_vae_kl *m = calloc(1, sizeof *m);
    if (!m) return fy_error(FY_ERR_NOMEM, "VAE: out of memory");
    m->c = c, m->e = e, m->parts = parts;
    fy_status s = read_config(c, &m->cfg);
    if (s == FY_OK && !c->weights) s = fy_error(FY_ERR_NOT_FOUND, "%s: the VAE has no weights", c->dir);
    if (s == FY_OK && (parts & FY_VAE_KL_DECODER)) s = load_decoder(m);
    if (s == FY_OK && (parts & FY_VAE_KL_ENCODER)) s = load_encoder(m);
    if (s == FY_OK && (parts & FY_VAE_KL_DECODER)) s = declare(m, &m->dec, "vae", "decoder");
    if (s == FY_OK && (parts & FY_VAE_KL_ENCODER)) s = declare(m, &m->enc, "vae_encoder", "encoder");
    if (s != FY_OK) {
        fy_vae_kl_free(m);
        return s;
    }
    *out = m;
    return FY_OK;
}

void fy_vae_kl_free(fy_vae_kl *m)
{
    if (!m) return;
    fy_ops_free(m->ops);
    free(m->dec.layers);
    free(m->enc.layers);
    free(m);
}

const fy_vae_kl_config *fy_vae_kl_get_config(const fy_vae_kl *m) { return &m->cfg; }

fy_vae_kl_tiling fy_vae_kl_default_tiling(const fy_vae_kl *m)
{
    int64_t tile = m->cfg.sample_size / fy_vae_kl_upscale(m);
    if (tile < 1) tile = 1;
    int64_t stride = tile * 3 / 4;
    return (fy_vae_kl_tiling){tile, stride < 1 ? 1 : stride};
}

int64_t fy_vae_kl_upscale(const fy_vae_kl *m) { return (int64_t)1 << (m->cfg.levels - 1); }

fy_status fy_vae_kl_set_threads(fy_vae_kl *m, int threads)
{
    if (threads < 0) return fy_error(FY_ERR_INVALID, "--threads %d: must be 0 (all cores) or more", threads);
    if (m->ops) return fy_error(FY_ERR_INVALID, "VAE: threads are set before the first run");
    m->threads = threads;
    return FY_OK;
}
