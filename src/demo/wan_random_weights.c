/* The random Wan model's tensors, named and shaped as diffusers
 * (WanTransformer3DModel, AutoencoderKLWan) and transformers
 * (UMT5EncoderModel) save them; src/models/ reads exactly these. Linear and
 * conv weights are normal(0, 1/sqrt(fan_in)), norm gains 1, biases small. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>

#include "demo/wan_random_internal.h"

#define BIAS_STD 0.02

typedef struct namer {
    char buf[256];
} namer;

static const char *nm(namer *n, const char *fmt, const char *prefix, const char *suffix)
{
    /* Names are short; one too long would reach the writer empty and be refused. */
    if (snprintf(n->buf, sizeof n->buf, fmt, prefix, suffix) >= (int)sizeof n->buf) n->buf[0] = '\0';
    return n->buf;
}

static fy_status linear(rnd_file *f, const char *prefix, int64_t in, int64_t out, bool bias)
{
    namer n;
    int64_t shape[2] = {out, in};
    FY_TRY(rnd_normal(f, nm(&n, "%s.%s", prefix, "weight"), 2, shape, 1.0 / sqrt((double)in)));
    return bias ? rnd_normal(f, nm(&n, "%s.%s", prefix, "bias"), 1, &out, BIAS_STD) : FY_OK;
}

static fy_status gain(rnd_file *f, const char *name, int64_t dim)
{
    return rnd_const(f, name, 1, &dim, 1.0);
}

/* ---- text encoder (UMT5: every layer has its own relative position bias) --- */

static fy_status umt5_layer(rnd_file *f, const fy_wan_random_params *p, int l)
{
    int64_t d = p->te_d_model, inner = (int64_t)p->te_heads * p->te_d_kv, ff = p->te_d_ff;
    char at[128], mlp[128];
    snprintf(at, sizeof at, "encoder.block.%d.layer.0", l);
    snprintf(mlp, sizeof mlp, "encoder.block.%d.layer.1", l);
    namer n;
    int64_t qkv[2] = {inner, d}, o[2] = {d, inner}, rel[2] = {32, p->te_heads};
    /* T5 has no 1/sqrt(d_kv) in its attention: its init folds it into q. */
    FY_TRY(rnd_normal(f, nm(&n, "%s.%s", at, "SelfAttention.q.weight"), 2, qkv, 1.0 / sqrt((double)d * p->te_d_kv)));
    FY_TRY(rnd_normal(f, nm(&n, "%s.%s", at, "SelfAttention.k.weight"), 2, qkv, 1.0 / sqrt((double)d)));
    FY_TRY(rnd_normal(f, nm(&n, "%s.%s", at, "SelfAttention.v.weight"), 2, qkv, 1.0 / sqrt((double)d)));
    FY_TRY(rnd_normal(f, nm(&n, "%s.%s", at, "SelfAttention.o.weight"), 2, o, 1.0 / sqrt((double)inner)));
    FY_TRY(rnd_normal(f, nm(&n, "%s.%s", at, "SelfAttention.relative_attention_bias.weight"), 2, rel, 0.1));
    FY_TRY(gain(f, nm(&n, "%s.%s", at, "layer_norm.weight"), d));
    FY_TRY(linear(f, nm(&n, "%s.%s", mlp, "DenseReluDense.wi_0"), d, ff, false));
    FY_TRY(linear(f, nm(&n, "%s.%s", mlp, "DenseReluDense.wi_1"), d, ff, false));
    FY_TRY(linear(f, nm(&n, "%s.%s", mlp, "DenseReluDense.wo"), ff, d, false));
    return gain(f, nm(&n, "%s.%s", mlp, "layer_norm.weight"), d);
}

fy_status rnd_write_text_encoder(const fy_wan_random_params *p, int te_vocab, const char *path)
{
    rnd_file *f = NULL;
    FY_TRY(rnd_file_create(p->seed ^ 0x7E47ull, p->dtype, &f));
    int64_t emb[2] = {te_vocab, p->te_d_model};
    fy_status s = FY_OK;
    for (int l = 0; s == FY_OK && l < p->te_layers; l++) s = umt5_layer(f, p, l);
    if (s == FY_OK) s = gain(f, "encoder.final_layer_norm.weight", p->te_d_model);
    if (s == FY_OK) s = rnd_normal(f, "shared.weight", 2, emb, 1.0);
    if (s == FY_OK) s = rnd_file_finish(f, path);
    rnd_file_free(f);
    return s;
}

/* ---- transformer ----------------------------------------------------------- */

static fy_status dit_attention(rnd_file *f, const char *prefix, int64_t dim)
{
    static const char *const proj[4] = {"to_q", "to_k", "to_v", "to_out.0"};
    namer n;
    for (int j = 0; j < 4; j++) FY_TRY(linear(f, nm(&n, "%s.%s", prefix, proj[j]), dim, dim, true));
    FY_TRY(gain(f, nm(&n, "%s.%s", prefix, "norm_q.weight"), dim));
    return gain(f, nm(&n, "%s.%s", prefix, "norm_k.weight"), dim);
}

static fy_status dit_block(rnd_file *f, int i, int64_t dim, int64_t ffn)
{
    char b[64];
    snprintf(b, sizeof b, "blocks.%d", i);
    namer n;
    FY_TRY(dit_attention(f, nm(&n, "%s.%s", b, "attn1"), dim));
    FY_TRY(dit_attention(f, nm(&n, "%s.%s", b, "attn2"), dim));
    FY_TRY(gain(f, nm(&n, "%s.%s", b, "norm2.weight"), dim));
    FY_TRY(rnd_const(f, nm(&n, "%s.%s", b, "norm2.bias"), 1, &dim, 0.0));
    FY_TRY(linear(f, nm(&n, "%s.%s", b, "ffn.net.0.proj"), dim, ffn, true));
    FY_TRY(linear(f, nm(&n, "%s.%s", b, "ffn.net.2"), ffn, dim, true));
    int64_t sst[3] = {1, 6, dim};
    /* diffusers: torch.randn(1, 6, dim) / dim**0.5 */
    return rnd_normal(f, nm(&n, "%s.%s", b, "scale_shift_table"), 3, sst, 1.0 / sqrt((double)dim));
}

fy_status rnd_write_transformer(const fy_wan_random_params *p, int expert, const char *path)
{
    int64_t dim = (int64_t)p->dit_heads * p->dit_head_dim, ffn = p->dit_ffn_dim, z = 16;
    int64_t pe[5] = {dim, z, 1, 2, 2}, head_sst[3] = {1, 2, dim};
    rnd_file *f = NULL;
    FY_TRY(rnd_file_create(p->seed ^ 0xD17ull ^ ((uint64_t)expert << 20), p->dtype, &f));
    fy_status s = rnd_normal(f, "patch_embedding.weight", 5, pe, 1.0 / sqrt((double)(z * 4)));
    if (s == FY_OK) s = rnd_normal(f, "patch_embedding.bias", 1, &dim, BIAS_STD);
    if (s == FY_OK) s = linear(f, "condition_embedder.time_embedder.linear_1", p->dit_freq_dim, dim, true);
    if (s == FY_OK) s = linear(f, "condition_embedder.time_embedder.linear_2", dim, dim, true);
    if (s == FY_OK) s = linear(f, "condition_embedder.time_proj", dim, 6 * dim, true);
    if (s == FY_OK) s = linear(f, "condition_embedder.text_embedder.linear_1", p->te_d_model, dim, true);
    if (s == FY_OK) s = linear(f, "condition_embedder.text_embedder.linear_2", dim, dim, true);
    for (int i = 0; s == FY_OK && i < p->dit_layers; i++) s = dit_block(f, i, dim, ffn);
    if (s == FY_OK) s = rnd_normal(f, "scale_shift_table", 3, head_sst, 1.0 / sqrt((double)dim));
    if (s == FY_OK) s = linear(f, "proj_out", dim, z * 4, true);
    if (s == FY_OK) s = rnd_file_finish(f, path);
    rnd_file_free(f);
    return s;
}

/* ---- vae (Wan2.1: dim_mult [1, 2, 4, 4], temperal_downsample [F, T, T]) ------ */

enum { VAE_LEVELS = 4, VAE_Z = 16 };
static const int vae_mult[VAE_LEVELS] = {1, 2, 4, 4};
static const bool vae_temporal[VAE_LEVELS - 1] = {false, true, true};

/* kt = 0: a 2D conv [out, in, k, k]; else 3D [out, in, kt, k, k]. */
static fy_status conv(rnd_file *f, const char *prefix, int64_t out, int64_t in, int64_t kt, int64_t k)
{
    namer n;
    int64_t shape[5] = {out, in, kt ? kt : k, k, k};
    int ndim = kt ? 5 : 4;
    double fan_in = (double)in * (kt ? kt : 1) * k * k;
    FY_TRY(rnd_normal(f, nm(&n, "%s.%s", prefix, "weight"), ndim, shape, 1.0 / sqrt(fan_in)));
    return rnd_normal(f, nm(&n, "%s.%s", prefix, "bias"), 1, &out, BIAS_STD);
}

/* WanRMS_norm gamma: [c, 1, 1, 1] (ones = 3) or [c, 1, 1] (ones = 2). */
static fy_status vae_gain(rnd_file *f, const char *prefix, int64_t c, int ones)
{
    namer n;
    int64_t shape[4] = {c, 1, 1, 1};
    return rnd_const(f, nm(&n, "%s.%s", prefix, "gamma"), 1 + ones, shape, 1.0);
}

static fy_status resnet(rnd_file *f, const char *prefix, int64_t in, int64_t out)
{
    namer n;
    FY_TRY(vae_gain(f, nm(&n, "%s.%s", prefix, "norm1"), in, 3));
    FY_TRY(conv(f, nm(&n, "%s.%s", prefix, "conv1"), out, in, 3, 3));
    FY_TRY(vae_gain(f, nm(&n, "%s.%s", prefix, "norm2"), out, 3));
    FY_TRY(conv(f, nm(&n, "%s.%s", prefix, "conv2"), out, out, 3, 3));
    return in != out ? conv(f, nm(&n, "%s.%s", prefix, "conv_shortcut"), out, in, 1, 1) : FY_OK;
}

static fy_status mid_block(rnd_file *f, const char *root, int64_t dim)
{
    namer n;
    FY_TRY(resnet(f, nm(&n, "%s.%s", root, "mid_block.resnets.0"), dim, dim));
    FY_TRY(vae_gain(f, nm(&n, "%s.%s", root, "mid_block.attentions.0.norm"), dim, 2));
    FY_TRY(conv(f, nm(&n, "%s.%s", root, "mid_block.attentions.0.to_qkv"), 3 * dim, dim, 0, 1));
    FY_TRY(conv(f, nm(&n, "%s.%s", root, "mid_block.attentions.0.proj"), dim, dim, 0, 1));
    return resnet(f, nm(&n, "%s.%s", root, "mid_block.resnets.1"), dim, dim);
}

static fy_status vae_encoder(rnd_file *f, const fy_wan_random_params *p)
{
    int64_t base = p->vae_base_dim, dims[VAE_LEVELS + 1] = {base};
    for (int i = 0; i < VAE_LEVELS; i++) dims[i + 1] = base * vae_mult[i];
    FY_TRY(conv(f, "encoder.conv_in", dims[0], 3, 3, 3));
    int flat = 0;
    char name[96];
    for (int i = 0; i < VAE_LEVELS; i++) {
        int64_t cur = dims[i], out = dims[i + 1];
        for (int j = 0; j < p->vae_num_res_blocks; j++, cur = out) {
            snprintf(name, sizeof name, "encoder.down_blocks.%d", flat++);
            FY_TRY(resnet(f, name, cur, out));
        }
        if (i == VAE_LEVELS - 1) break;
        namer n;
        snprintf(name, sizeof name, "encoder.down_blocks.%d", flat++);
        FY_TRY(conv(f, nm(&n, "%s.%s", name, "resample.1"), out, out, 0, 3));
        if (vae_temporal[i]) FY_TRY(conv(f, nm(&n, "%s.%s", name, "time_conv"), out, out, 3, 1));
    }
    int64_t top = dims[VAE_LEVELS];
    FY_TRY(mid_block(f, "encoder", top));
    FY_TRY(vae_gain(f, "encoder.norm_out", top, 3));
    FY_TRY(conv(f, "encoder.conv_out", 2 * VAE_Z, top, 3, 3));
    return conv(f, "quant_conv", 2 * VAE_Z, 2 * VAE_Z, 1, 1);
}

/* Every up block after the first takes half the channels: the previous
 * upsampler halves them. */
static fy_status vae_decoder(rnd_file *f, const fy_wan_random_params *p)
{
    int64_t base = p->vae_base_dim, dims[VAE_LEVELS + 1];
    dims[0] = base * vae_mult[VAE_LEVELS - 1];
    for (int i = 0; i < VAE_LEVELS; i++) dims[i + 1] = base * vae_mult[VAE_LEVELS - 1 - i];
    FY_TRY(conv(f, "post_quant_conv", VAE_Z, VAE_Z, 1, 1));
    FY_TRY(conv(f, "decoder.conv_in", dims[0], VAE_Z, 3, 3));
    FY_TRY(mid_block(f, "decoder", dims[0]));
    char name[96];
    for (int i = 0; i < VAE_LEVELS; i++) {
        int64_t cur = i > 0 ? dims[i] / 2 : dims[i], out = dims[i + 1];
        for (int j = 0; j <= p->vae_num_res_blocks; j++, cur = out) {
            snprintf(name, sizeof name, "decoder.up_blocks.%d.resnets.%d", i, j);
            FY_TRY(resnet(f, name, cur, out));
        }
        if (i == VAE_LEVELS - 1) break;
        namer n;
        snprintf(name, sizeof name, "decoder.up_blocks.%d.upsamplers.0", i);
        FY_TRY(conv(f, nm(&n, "%s.%s", name, "resample.1"), out / 2, out, 0, 3));
        if (vae_temporal[VAE_LEVELS - 2 - i]) FY_TRY(conv(f, nm(&n, "%s.%s", name, "time_conv"), 2 * out, out, 3, 1));
    }
    FY_TRY(vae_gain(f, "decoder.norm_out", dims[VAE_LEVELS], 3));
    return conv(f, "decoder.conv_out", 3, dims[VAE_LEVELS], 3, 3);
}

fy_status rnd_write_vae(const fy_wan_random_params *p, const char *path)
{
    rnd_file *f = NULL;
    FY_TRY(rnd_file_create(p->seed ^ 0x7AEull, p->dtype, &f));
    fy_status s = vae_encoder(f, p);
    if (s == FY_OK) s = vae_decoder(f, p);
    if (s == FY_OK) s = rnd_file_finish(f, path);
    rnd_file_free(f);
    return s;
}
