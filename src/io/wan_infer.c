/* The config a single file's shapes imply (see single_file.h): every size
 * read from a tensor, by its diffusers name; only what no shape shows is
 * one of Wan's constants. */
#include "io/single_file.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Wan's attention heads are 128 wide in every released model. */
#define WAN_HEAD_DIM 128

/* diffusers' AutoencoderKLWan defaults: the Wan2.1 VAE's latent statistics. */
static const double wan21_latents_mean[16] = {-0.7571, -0.7089, -0.9113, 0.1075,  -0.1745, 0.9653,  -0.1517, 1.5508,
                                              0.4134,  -0.0715, 0.5517,  -0.3632, -0.1922, -0.9497, 0.2503,  -0.2921};
static const double wan21_latents_std[16] = {2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                                             3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.916};

typedef struct infer {
    const fy_st_set *w;
    fy_wan_part part;
    const char *path;
    cJSON *json;
} infer;

static fy_status cannot(const infer *in, const char *name, const char *why)
{
    char original[512];
    if (fy_wan_name_from_diffusers(in->part, name, original, sizeof original) != FY_OK)
        snprintf(original, sizeof original, "%s", name);
    return fy_error(FY_ERR_FORMAT, "%s: cannot infer the %s's config: tensor '%s' %s (pass --config DIR with a "
                    "%s/config.json)", in->path, fy_wan_part_name(in->part), original, why,
                    fy_wan_part_name(in->part));
}

/* Dimension d of a tensor of rank ndim (0: any rank >= d + 1). */
static fy_status dim(const infer *in, const char *name, int ndim, int d, int64_t *out)
{
    const fy_st_info *t = fy_st_set_find(in->w, name);
    if (!t) return cannot(in, name, "is missing");
    if ((ndim && t->ndim != ndim) || t->ndim <= d) return cannot(in, name, "has an unexpected rank");
    if (t->shape[d] <= 0) return cannot(in, name, "has an empty dimension");
    *out = t->shape[d];
    return FY_OK;
}

static bool has(const infer *in, const char *name)
{
    return fy_st_set_find(in->w, name) != NULL;
}

/* How many of `format` % i exist for i = 0, 1, ... */
static int count_indexed(const infer *in, const char *format)
{
    char name[256];
    int n = 0;
    for (;; n++) {
        snprintf(name, sizeof name, format, n);
        if (!has(in, name)) return n;
    }
}

static void put_int(infer *in, const char *key, int64_t v)
{
    cJSON_AddNumberToObject(in->json, key, (double)v);
}

/* ---- Transformer ------------------------------------------------------------------ */

static fy_status infer_dit_sizes(infer *in, int64_t *inner)
{
    int64_t in_ch = 0, pt = 0, ph = 0, pw = 0, ffn = 0, freq = 0, text = 0, out = 0;
    FY_TRY(dim(in, "patch_embedding.weight", 5, 0, inner));
    FY_TRY(dim(in, "patch_embedding.weight", 5, 1, &in_ch));
    FY_TRY(dim(in, "patch_embedding.weight", 5, 2, &pt));
    FY_TRY(dim(in, "patch_embedding.weight", 5, 3, &ph));
    FY_TRY(dim(in, "patch_embedding.weight", 5, 4, &pw));
    FY_TRY(dim(in, "blocks.0.ffn.net.0.proj.weight", 2, 0, &ffn));
    FY_TRY(dim(in, "condition_embedder.time_embedder.linear_1.weight", 2, 1, &freq));
    FY_TRY(dim(in, "condition_embedder.text_embedder.linear_1.weight", 2, 1, &text));
    FY_TRY(dim(in, "proj_out.weight", 2, 0, &out));
    if (*inner % WAN_HEAD_DIM)
        return cannot(in, "patch_embedding.weight", "gives a model width that is no multiple of Wan's 128-wide heads");
    if (out % (pt * ph * pw)) return cannot(in, "proj_out.weight", "has rows that are no multiple of the patch");
    put_int(in, "num_attention_heads", *inner / WAN_HEAD_DIM);
    put_int(in, "attention_head_dim", WAN_HEAD_DIM);
    put_int(in, "in_channels", in_ch);
    put_int(in, "out_channels", out / (pt * ph * pw));
    put_int(in, "ffn_dim", ffn);
    put_int(in, "freq_dim", freq);
    put_int(in, "text_dim", text);
    const int patch[3] = {(int)pt, (int)ph, (int)pw};
    cJSON_AddItemToObject(in->json, "patch_size", cJSON_CreateIntArray(patch, 3));
    return FY_OK;
}

static fy_status infer_dit(infer *in)
{
    cJSON_AddStringToObject(in->json, "_class_name", "WanTransformer3DModel");
    int64_t inner = 0;
    FY_TRY(infer_dit_sizes(in, &inner));
    int layers = count_indexed(in, "blocks.%d.attn1.to_q.weight");
    if (layers == 0) return cannot(in, "blocks.0.attn1.to_q.weight", "is missing");
    put_int(in, "num_layers", layers);
    cJSON_AddBoolToObject(in->json, "cross_attn_norm", has(in, "blocks.0.norm2.weight"));
    if (has(in, "blocks.0.attn1.norm_q.weight")) cJSON_AddStringToObject(in->json, "qk_norm", "rms_norm_across_heads");
    else cJSON_AddNullToObject(in->json, "qk_norm");
    cJSON_AddNumberToObject(in->json, "eps", 1e-6);
    put_int(in, "rope_max_seq_len", 1024);
    if (has(in, "condition_embedder.image_embedder.norm1.weight")) { /* image to video */
        int64_t image_dim = 0, seq = 0;
        FY_TRY(dim(in, "condition_embedder.image_embedder.norm1.weight", 1, 0, &image_dim));
        put_int(in, "image_dim", image_dim);
        put_int(in, "added_kv_proj_dim", inner);
        if (has(in, "condition_embedder.image_embedder.pos_embed")) {
            FY_TRY(dim(in, "condition_embedder.image_embedder.pos_embed", 3, 1, &seq));
            put_int(in, "pos_embed_seq_len", seq);
        } else {
            cJSON_AddNullToObject(in->json, "pos_embed_seq_len");
        }
    } else {
        cJSON_AddNullToObject(in->json, "image_dim");
        cJSON_AddNullToObject(in->json, "added_kv_proj_dim");
        cJSON_AddNullToObject(in->json, "pos_embed_seq_len");
    }
    return FY_OK;
}

/* ---- VAE ------------------------------------------------------------------------- */

/* The encoder's flat list: per level two residual blocks, then a resampler
 * (none after the last level): 3 L - 1 entries. */
static fy_status infer_vae_levels(infer *in, int64_t base)
{
    int entries = 0;
    char name[256];
    for (int i = 0;; i++) {
        snprintf(name, sizeof name, "encoder.down_blocks.%d.conv1.weight", i);
        bool res = has(in, name);
        snprintf(name, sizeof name, "encoder.down_blocks.%d.resample.1.weight", i);
        if (!res && !has(in, name)) break;
        entries = i + 1;
    }
    if (entries < 2 || (entries + 1) % 3) return cannot(in, "encoder.down_blocks.0.conv1.weight",
                                                       "starts no encoder of Wan2.1's layout (two residual blocks "
                                                       "per level)");
    int levels = (entries + 1) / 3;
    int mult[16];
    bool temporal[16];
    if (levels > 16) return cannot(in, "encoder.down_blocks.0.conv1.weight", "starts more than 16 levels");
    for (int l = 0; l < levels; l++) {
        int64_t width = 0;
        snprintf(name, sizeof name, "encoder.down_blocks.%d.conv1.weight", 3 * l);
        FY_TRY(dim(in, name, 5, 0, &width));
        if (width % base) return cannot(in, name, "has a width that is no multiple of the first level's");
        mult[l] = (int)(width / base);
        snprintf(name, sizeof name, "encoder.down_blocks.%d.time_conv.weight", 3 * l + 2);
        temporal[l] = has(in, name);
    }
    cJSON_AddItemToObject(in->json, "dim_mult", cJSON_CreateIntArray(mult, levels));
    cJSON *t = cJSON_AddArrayToObject(in->json, "temperal_downsample");
    for (int l = 0; t && l + 1 < levels; l++) cJSON_AddItemToArray(t, cJSON_CreateBool(temporal[l]));
    return FY_OK;
}

static fy_status infer_vae(infer *in)
{
    cJSON_AddStringToObject(in->json, "_class_name", "AutoencoderKLWan");
    int64_t base = 0, z = 0, in_ch = 0, out_ch = 0;
    FY_TRY(dim(in, "encoder.conv_in.weight", 5, 0, &base));
    FY_TRY(dim(in, "encoder.conv_in.weight", 5, 1, &in_ch));
    FY_TRY(dim(in, "decoder.conv_out.weight", 5, 0, &out_ch));
    FY_TRY(dim(in, "post_quant_conv.weight", 5, 0, &z));
    if (z != 16) return cannot(in, "post_quant_conv.weight", "gives a latent width other than the Wan2.1 VAE's 16");
    put_int(in, "base_dim", base);
    put_int(in, "z_dim", z);
    put_int(in, "in_channels", in_ch);
    put_int(in, "out_channels", out_ch);
    put_int(in, "num_res_blocks", 2);
    cJSON_AddArrayToObject(in->json, "attn_scales");
    cJSON_AddNumberToObject(in->json, "dropout", 0.0);
    cJSON_AddBoolToObject(in->json, "is_residual", false);
    FY_TRY(infer_vae_levels(in, base));
    cJSON_AddItemToObject(in->json, "latents_mean", cJSON_CreateDoubleArray(wan21_latents_mean, 16));
    cJSON_AddItemToObject(in->json, "latents_std", cJSON_CreateDoubleArray(wan21_latents_std, 16));
    return FY_OK;
}

/* ---- Text encoder ----------------------------------------------------------------- */

static fy_status infer_t5(infer *in)
{
    cJSON *arch = cJSON_AddArrayToObject(in->json, "architectures");
    if (arch) cJSON_AddItemToArray(arch, cJSON_CreateString("UMT5EncoderModel"));
    int64_t vocab = 0, d_model = 0, inner = 0, d_ff = 0, buckets = 0, heads = 0;
    FY_TRY(dim(in, "shared.weight", 2, 0, &vocab));
    FY_TRY(dim(in, "shared.weight", 2, 1, &d_model));
    FY_TRY(dim(in, "encoder.block.0.layer.0.SelfAttention.q.weight", 2, 0, &inner));
    FY_TRY(dim(in, "encoder.block.0.layer.1.DenseReluDense.wi_0.weight", 2, 0, &d_ff));
    FY_TRY(dim(in, "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", 2, 0, &buckets));
    FY_TRY(dim(in, "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", 2, 1, &heads));
    if (inner % heads)
        return cannot(in, "encoder.block.0.layer.0.SelfAttention.q.weight", "has rows that are no multiple of the "
                      "heads the relative attention bias gives");
    int layers = count_indexed(in, "encoder.block.%d.layer.0.SelfAttention.q.weight");
    cJSON_AddStringToObject(in->json, "model_type", "umt5");
    put_int(in, "vocab_size", vocab);
    put_int(in, "d_model", d_model);
    put_int(in, "d_kv", inner / heads);
    put_int(in, "d_ff", d_ff);
    put_int(in, "num_heads", heads);
    put_int(in, "num_layers", layers);
    put_int(in, "relative_attention_num_buckets", buckets);
    put_int(in, "relative_attention_max_distance", 128);
    cJSON_AddStringToObject(in->json, "feed_forward_proj", "gated-gelu");
    cJSON_AddStringToObject(in->json, "dense_act_fn", "gelu_new");
    cJSON_AddBoolToObject(in->json, "is_gated_act", true);
    cJSON_AddNumberToObject(in->json, "layer_norm_epsilon", 1e-6);
    cJSON_AddBoolToObject(in->json, "scalable_attention", true);
    return FY_OK;
}

fy_status fy_wan_infer_config(fy_wan_part part, const fy_st_set *weights, char **json)
{
    *json = NULL;
    const fy_st_file *f = fy_st_set_file(weights, 0);
    infer in = {weights, part, f ? fy_st_path(f) : "single file", cJSON_CreateObject()};
    if (!in.json) return fy_error(FY_ERR_NOMEM, "%s: out of memory", in.path);
    fy_status st;
    switch (part) {
    case FY_WAN_TRANSFORMER: st = infer_dit(&in); break;
    case FY_WAN_VAE: st = infer_vae(&in); break;
    case FY_WAN_TEXT_ENCODER: st = infer_t5(&in); break;
    default: st = fy_error(FY_ERR_INVALID, "fy_wan_infer_config: unknown part %d", (int)part); break;
    }
    if (st == FY_OK) {
        *json = cJSON_PrintUnformatted(in.json);
        if (!*json) st = fy_error(FY_ERR_NOMEM, "%s: out of memory", in.path);
    }
    cJSON_Delete(in.json);
    return st;
}
