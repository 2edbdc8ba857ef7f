/* The Wan VAE: config, weights and their groups (see ferry/wan_vae.h). */
#include "ferry/wan_vae.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/dtype.h"
#include "ferry/log.h"
#include "ferry/safetensors.h"
#include "models/wan_vae_internal.h"
#include "models/weight.h"

/* ---- config ----------------------------------------------------------------- */

static fy_status positive(const fy_config *j, const char *key, int64_t *out)
{
    FY_TRY(fy_config_int(j, key, out));
    if (*out < 1 || *out > (int64_t)1 << 20)
        return fy_error(FY_ERR_FORMAT, "%s: \"%s\" is %lld, expected a positive size", fy_config_path(j), key,
                        (long long)*out);
    return FY_OK;
}

static fy_status bool_array(const fy_config *j, const char *key, bool *out, int want)
{
    size_t n = 0;
    bool v[FY_WAN_VAE_MAX_LEVELS];
    FY_TRY(fy_config_bool_array(j, key, v, FY_WAN_VAE_MAX_LEVELS, &n));
    if ((int)n != want)
        return fy_error(FY_ERR_FORMAT, "%s: \"%s\" must be an array of %d booleans (one per level but the last)",
                        fy_config_path(j), key, want);
    for (size_t i = 0; i < n; i++) out[i] = v[i];
    return FY_OK;
}

static fy_status float_list(const fy_config *j, const char *key, float *out, int64_t want)
{
    double v[FY_WAN_VAE_MAX_Z];
    size_t n = 0;
    FY_TRY(fy_config_double_array(j, key, v, FY_WAN_VAE_MAX_Z, &n));
    if ((int64_t)n != want)
        return fy_error(FY_ERR_FORMAT, "%s: \"%s\" has %zu values, z_dim is %lld", fy_config_path(j), key, n,
                        (long long)want);
    for (size_t i = 0; i < n; i++) out[i] = (float)v[i];
    return FY_OK;
}

/* Wan2.2's residual VAE: patch_size folds p x p pixels into the channels
 * around the encoder and decoder (in/out_channels count the folded ones). */
static fy_status read_variant(const fy_config *j, fy_wan_vae_config *k)
{
    FY_TRY(fy_config_bool_or(j, "is_residual", false, &k->is_residual));
    FY_TRY(fy_config_int_or(j, "patch_size", 1, &k->patch_size));
    if (k->patch_size < 1 || k->patch_size > 8)
        return fy_error(FY_ERR_FORMAT, "%s: \"patch_size\" is %lld, expected 1 to 8", fy_config_path(j),
                        (long long)k->patch_size);
    int64_t p2 = k->patch_size * k->patch_size;
    if (k->in_channels % p2 || k->out_channels % p2)
        return fy_error(FY_ERR_FORMAT,
                        "%s: in_channels %lld / out_channels %lld are not multiples of patch_size^2 %lld",
                        fy_config_path(j), (long long)k->in_channels, (long long)k->out_channels, (long long)p2);
    k->video_channels = k->out_channels / p2;
    if (k->in_channels / p2 != k->video_channels)
        return fy_error(FY_ERR_UNSUPPORTED, "%s: in_channels %lld and out_channels %lld give different pixel channels",
                        fy_config_path(j), (long long)k->in_channels, (long long)k->out_channels);
    return FY_OK;
}

static fy_status read_levels(const fy_config *j, fy_wan_vae_config *k)
{
    size_t n = 0;
    FY_TRY(fy_config_int_array(j, "dim_mult", k->dim_mult, FY_WAN_VAE_MAX_LEVELS, &n));
    if (n < 1) return fy_error(FY_ERR_FORMAT, "%s: \"dim_mult\" is empty", fy_config_path(j));
    k->n_levels = (int)n;
    for (size_t i = 0; i < n; i++)
        if (k->dim_mult[i] < 1 || k->dim_mult[i] > 1024)
            return fy_error(FY_ERR_FORMAT, "%s: \"dim_mult\"[%zu] must be positive", fy_config_path(j), i);
    FY_TRY(bool_array(j, "temperal_downsample", k->temperal_downsample, k->n_levels - 1));
    int down_t = 0;
    for (int i = 0; i < k->n_levels - 1; i++) down_t += k->temperal_downsample[i];
    k->spatial_ratio = (int64_t)1 << (k->n_levels - 1);
    k->temporal_ratio = (int64_t)1 << down_t;
    if (down_t > 2) /* chunks of 4 frames cannot be halved more than twice */
        return fy_error(FY_ERR_UNSUPPORTED, "%s: more than 2 temporal downsamplings are not supported",
                        fy_config_path(j));
    if (fy_config_has(j, "attn_scales")) {
        size_t na = 0;
        FY_TRY(fy_config_double_array(j, "attn_scales", k->attn_scales, FY_WAN_VAE_MAX_LEVELS, &na));
        k->n_attn_scales = (int)na;
    }
    return FY_OK;
}

static fy_status read_config(const fy_component *c, fy_wan_vae_config *k)
{
    const fy_config *j = c->config;
    if (!j) return fy_error(FY_ERR_NOT_FOUND, "%s: no config.json for the VAE", c->dir);
    memset(k, 0, sizeof *k);
    FY_TRY(positive(j, "base_dim", &k->base_dim));
    k->decoder_base_dim = k->base_dim;
    if (fy_config_has(j, "decoder_base_dim")) FY_TRY(positive(j, "decoder_base_dim", &k->decoder_base_dim));
    FY_TRY(positive(j, "z_dim", &k->z_dim));
    if (k->z_dim > FY_WAN_VAE_MAX_Z)
        return fy_error(FY_ERR_UNSUPPORTED, "%s: z_dim %lld is above %d", fy_config_path(j), (long long)k->z_dim,
                        FY_WAN_VAE_MAX_Z);
    FY_TRY(positive(j, "num_res_blocks", &k->num_res_blocks));
    k->in_channels = k->out_channels = 3;
    if (fy_config_has(j, "in_channels")) FY_TRY(positive(j, "in_channels", &k->in_channels));
    if (fy_config_has(j, "out_channels")) FY_TRY(positive(j, "out_channels", &k->out_channels));
    FY_TRY(read_variant(j, k));
    FY_TRY(read_levels(j, k));
    FY_TRY(float_list(j, "latents_mean", k->latents_mean, k->z_dim));
    FY_TRY(float_list(j, "latents_std", k->latents_std, k->z_dim));
    for (int64_t i = 0; i < k->z_dim; i++)
        if (!(k->latents_std[i] > 0.0f))
            return fy_error(FY_ERR_FORMAT, "%s: \"latents_std\"[%lld] must be positive", fy_config_path(j), (long long)i);
    return FY_OK;
}

/* ---- weights ------------------------------------------------------------------- */

/* A weight with exactly this shape, appended to the group's tensors; *idx its index. */
static fy_status weight(const fy_component *c, const char *name, int ndim, const int64_t *shape, fy_tensor *w,
                        int *nw, int *idx)
{
    if (*nw >= VAE_MAX_W) return fy_error(FY_ERR_INTERNAL, "vae: too many tensors in the group of %s", name);
    FY_TRY(fy_weight_lookup(c, name, ndim, shape, &w[*nw]));
    *idx = (*nw)++;
    return FY_OK;
}

typedef vae_builder builder;

/* prefix.weight [c_out, c_in, (kt,) kh, kw] and prefix.bias [c_out]; 2D convs have kt = 0. */
static fy_status conv_def(builder *b, const char *prefix, int64_t c_out, int64_t c_in, int64_t kt, int64_t k,
                          bool cached, vae_conv *cv)
{
    char name[256];
    int64_t shape[5] = {c_out, c_in, kt, k, k};
    if (!kt) shape[2] = k; /* nn.Conv2d: [c_out, c_in, k, k] */
    *cv = (vae_conv){.c_out = c_out, .c_in = c_in, .kt = kt ? kt : 1, .kh = k, .kw = k, .cache = -1};
    snprintf(name, sizeof name, "%s.weight", prefix);
    FY_TRY(weight(b->c, name, kt ? 5 : 4, shape, b->w, b->nw, &cv->w));
    snprintf(name, sizeof name, "%s.bias", prefix);
    FY_TRY(weight(b->c, name, 1, &c_out, b->w, b->nw, &cv->b));
    if (cached) cv->cache = b->part->n_caches++;
    return FY_OK;
}

static fy_status gamma_def(builder *b, const char *prefix, int64_t c, int ones, int *idx)
{
    char name[256];
    int64_t shape[4] = {c, 1, 1, 1};
    snprintf(name, sizeof name, "%s.gamma", prefix);
    return weight(b->c, name, 1 + ones, shape, b->w, b->nw, idx);
}

static fy_status layer_begin(vae_part *p, const char *name, vae_kind kind, int64_t c_in, int64_t c_out,
                             vae_layer **out)
{
    vae_layer *l = realloc(p->layers, (size_t)(p->n_layers + 1) * sizeof *l);
    if (!l) return fy_error(FY_ERR_NOMEM, "vae: out of memory");
    p->layers = l;
    l = &p->layers[p->n_layers++];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    snprintf(l->name, sizeof l->name, "%s", name);
    l->c_in = c_in;
    l->c_out = c_out;
    l->sc.w = l->time.w = -1;
    *out = l;
    return FY_OK;
}

fy_status vae_add_resnet(const fy_component *c, vae_part *p, const char *prefix, int64_t in, int64_t out)
{
    vae_layer *l = NULL;
    FY_TRY(layer_begin(p, prefix, VAE_RESNET, in, out, &l));
    builder b = {c, p, l->w, &l->nw};
    char name[192];
    FY_TRY(gamma_def(&b, (snprintf(name, sizeof name, "%s.norm1", prefix), name), in, 3, &l->norm1));
    FY_TRY(conv_def(&b, (snprintf(name, sizeof name, "%s.conv1", prefix), name), out, in, 3, 3, true, &l->conv1));
    FY_TRY(gamma_def(&b, (snprintf(name, sizeof name, "%s.norm2", prefix), name), out, 3, &l->norm2));
    FY_TRY(conv_def(&b, (snprintf(name, sizeof name, "%s.conv2", prefix), name), out, out, 3, 3, true, &l->conv2));
    if (in != out)
        FY_TRY(conv_def(&b, (snprintf(name, sizeof name, "%s.conv_shortcut", prefix), name), out, in, 1, 1, false,
                        &l->sc));
    return FY_OK;
}

static fy_status add_attention(const fy_component *c, vae_part *p, const char *prefix, int64_t dim)
{
    vae_layer *l = NULL;
    FY_TRY(layer_begin(p, prefix, VAE_ATTN, dim, dim, &l));
    builder b = {c, p, l->w, &l->nw};
    char name[192];
    FY_TRY(gamma_def(&b, (snprintf(name, sizeof name, "%s.norm", prefix), name), dim, 2, &l->norm1));
    FY_TRY(conv_def(&b, (snprintf(name, sizeof name, "%s.to_qkv", prefix), name), 3 * dim, dim, 0, 1, false, &l->qkv));
    return conv_def(&b, (snprintf(name, sizeof name, "%s.proj", prefix), name), dim, dim, 0, 1, false, &l->proj);
}

fy_status vae_add_resample(const fy_component *c, vae_part *p, const char *prefix, vae_kind kind, int64_t dim,
                           int64_t out)
{
    vae_layer *l = NULL;
    FY_TRY(layer_begin(p, prefix, kind, dim, out, &l));
    builder b = {c, p, l->w, &l->nw};
    char name[192];
    FY_TRY(conv_def(&b, (snprintf(name, sizeof name, "%s.resample.1", prefix), name), out, dim, 0, 3, false,
                    &l->spatial));
    snprintf(name, sizeof name, "%s.time_conv", prefix);
    if (kind == VAE_UP3D) return conv_def(&b, name, 2 * dim, dim, 3, 1, true, &l->time);
    if (kind == VAE_DOWN3D) return conv_def(&b, name, dim, dim, 3, 1, true, &l->time);
    return FY_OK;
}

static fy_status add_mid(const fy_component *c, vae_part *p, const char *root, int64_t dim)
{
    char name[128];
    snprintf(name, sizeof name, "%s.mid_block.resnets.0", root);
    FY_TRY(vae_add_resnet(c, p, name, dim, dim));
    snprintf(name, sizeof name, "%s.mid_block.attentions.0", root);
    FY_TRY(add_attention(c, p, name, dim));
    snprintf(name, sizeof name, "%s.mid_block.resnets.1", root);
    return vae_add_resnet(c, p, name, dim, dim);
}

/* Wan2.1's up blocks: every block after the first takes half the channels,
 * as the previous upsampler halves them. */
static fy_status add_up_blocks(fy_wan_vae *m, vae_part *p, const int64_t *dims)
{
    const fy_wan_vae_config *k = &m->cfg;
    int L = k->n_levels;
    for (int i = 0; i < L; i++) {
        int64_t cur = i > 0 ? dims[i] / 2 : dims[i], out = dims[i + 1];
        char name[128];
        for (int64_t j = 0; j <= k->num_res_blocks; j++) {
            snprintf(name, sizeof name, "decoder.up_blocks.%d.resnets.%lld", i, (long long)j);
            FY_TRY(vae_add_resnet(m->c, p, name, cur, out));
            cur = out;
        }
        if (i == L - 1) break;
        snprintf(name, sizeof name, "decoder.up_blocks.%d.upsamplers.0", i);
        bool temporal = k->temperal_downsample[L - 2 - i]; /* temperal_upsample = reversed */
        FY_TRY(vae_add_resample(m->c, p, name, temporal ? VAE_UP3D : VAE_UP2D, out, out / 2));
    }
    return FY_OK;
}

/* WanDecoder3d: conv_in, mid block, up blocks. */
static fy_status build_decoder(fy_wan_vae *m)
{
    const fy_wan_vae_config *k = &m->cfg;
    vae_part *p = &m->dec;
    int L = k->n_levels;
    int64_t dims[FY_WAN_VAE_MAX_LEVELS + 1];
    dims[0] = k->decoder_base_dim * k->dim_mult[L - 1];
    for (int i = 0; i < L; i++) dims[i + 1] = k->decoder_base_dim * k->dim_mult[L - 1 - i];
    builder in = {m->c, p, p->in.w, &p->in.nw};
    FY_TRY(conv_def(&in, "post_quant_conv", k->z_dim, k->z_dim, 1, 1, false, &p->pre));
    FY_TRY(conv_def(&in, "decoder.conv_in", dims[0], k->z_dim, 3, 3, true, &p->conv_in));
    FY_TRY(add_mid(m->c, p, "decoder", dims[0]));
    if (k->is_residual) FY_TRY(vae22_add_up_blocks(m, p, dims));
    else FY_TRY(add_up_blocks(m, p, dims));
    builder o = {m->c, p, p->out.w, &p->out.nw};
    FY_TRY(gamma_def(&o, "decoder.norm_out", dims[L], 3, &p->norm_out));
    return conv_def(&o, "decoder.conv_out", k->out_channels, dims[L], 3, 3, true, &p->conv_out);
}

static bool attn_at(const fy_wan_vae_config *k, double scale)
{
    for (int i = 0; i < k->n_attn_scales; i++)
        if (k->attn_scales[i] == scale) return true;
    return false;
}

/* Wan2.1's down blocks: one flat list of residual blocks, attention blocks
 * and resamplers. */
static fy_status add_down_blocks(fy_wan_vae *m, vae_part *p, const int64_t *dims)
{
    const fy_wan_vae_config *k = &m->cfg;
    int L = k->n_levels;
    int flat = 0;
    double scale = 1.0;
    char name[128];
    for (int i = 0; i < L; i++) {
        int64_t cur = dims[i], out = dims[i + 1];
        for (int64_t j = 0; j < k->num_res_blocks; j++) {
            snprintf(name, sizeof name, "encoder.down_blocks.%d", flat++);
            FY_TRY(vae_add_resnet(m->c, p, name, cur, out));
            if (attn_at(k, scale)) {
                snprintf(name, sizeof name, "encoder.down_blocks.%d", flat++);
                FY_TRY(add_attention(m->c, p, name, out));
            }
            cur = out;
        }
        if (i == L - 1) break;
        snprintf(name, sizeof name, "encoder.down_blocks.%d", flat++);
        FY_TRY(vae_add_resample(m->c, p, name, k->temperal_downsample[i] ? VAE_DOWN3D : VAE_DOWN2D, out, out));
        scale /= 2.0;
    }
    return FY_OK;
}

/* WanEncoder3d: conv_in, down blocks, mid block, head, quant_conv. */
static fy_status build_encoder(fy_wan_vae *m)
{
    const fy_wan_vae_config *k = &m->cfg;
    vae_part *p = &m->enc;
    int L = k->n_levels;
    int64_t dims[FY_WAN_VAE_MAX_LEVELS + 1];
    dims[0] = k->base_dim;
    for (int i = 0; i < L; i++) dims[i + 1] = k->base_dim * k->dim_mult[i];
    builder in = {m->c, p, p->in.w, &p->in.nw};
    FY_TRY(conv_def(&in, "encoder.conv_in", dims[0], k->in_channels, 3, 3, true, &p->conv_in));
    if (k->is_residual) FY_TRY(vae22_add_down_blocks(m, p, dims));
    else FY_TRY(add_down_blocks(m, p, dims));
    FY_TRY(add_mid(m->c, p, "encoder", dims[L]));
    builder o = {m->c, p, p->out.w, &p->out.nw};
    FY_TRY(gamma_def(&o, "encoder.norm_out", dims[L], 3, &p->norm_out));
    FY_TRY(conv_def(&o, "encoder.conv_out", 2 * k->z_dim, dims[L], 3, 3, true, &p->conv_out));
    return conv_def(&o, "quant_conv", 2 * k->z_dim, 2 * k->z_dim, 1, 1, false, &p->post);
}

static fy_status declare_part(fy_wan_vae *m, vae_part *p, const char *comp, const char *root)
{
    char name[96];
    FY_TRY(fy_engine_add_component(m->e, comp, &p->comp));
    /* diffusers' Wan recipe loads the VAE in float32 whatever the pipeline's
     * dtype: its rounding is what the decoded pixels show, and its weights
     * are read once per video. */
    FY_TRY(fy_engine_keep_stored(m->e, p->comp));
    snprintf(name, sizeof name, "%s.conv_in", root);
    FY_TRY(fy_engine_add_group(m->e, p->comp, name, FY_GROUP_SMALL, p->in.w, p->in.nw, &p->in.group));
    for (int i = 0; i < p->n_layers; i++) {
        vae_layer *l = &p->layers[i];
        FY_TRY(fy_engine_add_group(m->e, p->comp, l->name, FY_GROUP_BLOCK, l->w, l->nw, &l->group));
    }
    snprintf(name, sizeof name, "%s.conv_out", root);
    return fy_engine_add_group(m->e, p->comp, name, FY_GROUP_SMALL, p->out.w, p->out.nw, &p->out.group);
}

static fy_status load_parts(fy_wan_vae *m, int parts)
{
    if (!m->c->weights) return fy_error(FY_ERR_NOT_FOUND, "%s: the VAE has no weights", m->c->dir);
    if (parts & FY_WAN_VAE_DECODER) {
        m->dec.present = true;
        FY_TRY(build_decoder(m));
        FY_TRY(declare_part(m, &m->dec, "vae.decoder", "decoder"));
    }
    if (parts & FY_WAN_VAE_ENCODER) {
        m->enc.present = true;
        FY_TRY(build_encoder(m));
        FY_TRY(declare_part(m, &m->enc, "vae.encoder", "encoder"));
    }
    return FY_OK;
}

/* The ops this model computes with (checked at load). */
static const fy_op WAN_VAE_OPS[] = {
    FY_OP_ADD,  FY_OP_CHANNEL_RMS_NORM,  FY_OP_CONV3D, FY_OP_CONVERT, FY_OP_COPY, FY_OP_PERMUTE, FY_OP_SCALE,
    FY_OP_SILU, FY_OP_UPSAMPLE_NEAREST2X};

fy_status fy_wan_vae_load(const fy_component *c, fy_engine *e, int parts, fy_wan_vae **out)
{
    if (!c || !e || !out) return fy_error(FY_ERR_INVALID, "fy_wan_vae_load: NULL argument");
    *out = NULL;
    if (!(parts & FY_WAN_VAE_BOTH) || (parts & ~FY_WAN_VAE_BOTH))
        return fy_error(FY_ERR_INVALID, "fy_wan_vae_load: parts must be DECODER, ENCODER or both");
    FY_TRY(fy_engine_ops_require(e, WAN_VAE_OPS, sizeof WAN_VAE_OPS / sizeof WAN_VAE_OPS[0]));
    fy_wan_vae *m = calloc(1, sizeof *m);
    if (!m) return fy_error(FY_ERR_NOMEM, "vae: out of memory");
    m->c = c;
    m->e = e;
    fy_status s = read_config(c, &m->cfg);
    if (s == FY_OK) s = load_parts(m, parts);
    if (s != FY_OK) {
        fy_wan_vae_free(m);
        return s;
    }
    *out = m;
    return FY_OK;
}

void fy_wan_vae_free(fy_wan_vae *m)
{
    if (!m) return;
    fy_ops_free(m->ops);
    free(m->dec.layers);
    free(m->enc.layers);
    free(m);
}

const fy_wan_vae_config *fy_wan_vae_get_config(const fy_wan_vae *m)
{
    return &m->cfg;
}

/* ---- settings ------------------------------------------------------------------ */

fy_status fy_wan_vae_set_threads(fy_wan_vae *m, int threads)
{
    if (threads < 0) return fy_error(FY_ERR_INVALID, "--threads %d: must be 0 (all cores) or more", threads);
    if (m->ops) return fy_error(FY_ERR_INVALID, "vae: threads are set before the first decode");
    m->threads = threads;
    return FY_OK;
}

/* ---- latent normalisation -------------------------------------------------------- */

static fy_status check_latents(const fy_wan_vae *m, const int64_t *s)
{
    if (s[1] != m->cfg.z_dim)
        return fy_error(FY_ERR_INVALID, "vae: latents have %lld channels, z_dim is %lld", (long long)s[1],
                        (long long)m->cfg.z_dim);
    for (int i = 0; i < 5; i++)
        if (s[i] < 1) return fy_error(FY_ERR_INVALID, "vae: empty latent shape");
    return FY_OK;
}

fy_status fy_wan_vae_normalize(const fy_wan_vae *m, float *x, const int64_t s[5])
{
    FY_TRY(check_latents(m, s));
    int64_t per = s[2] * s[3] * s[4];
    for (int64_t b = 0; b < s[0]; b++)
        for (int64_t c = 0; c < s[1]; c++) {
            float mean = m->cfg.latents_mean[c], inv = 1.0f / m->cfg.latents_std[c];
            float *p = x + (b * s[1] + c) * per;
            for (int64_t i = 0; i < per; i++) p[i] = (p[i] - mean) * inv;
        }
    return FY_OK;
}

fy_status fy_wan_vae_denormalize(const fy_wan_vae *m, float *x, const int64_t s[5])
{
    FY_TRY(check_latents(m, s));
    int64_t per = s[2] * s[3] * s[4];
    for (int64_t b = 0; b < s[0]; b++)
        for (int64_t c = 0; c < s[1]; c++) {
            float mean = m->cfg.latents_mean[c], inv = 1.0f / m->cfg.latents_std[c];
            float *p = x + (b * s[1] + c) * per;
            for (int64_t i = 0; i < per; i++) p[i] = p[i] / inv + mean;
        }
    return FY_OK;
}
