/* Original Wan names <-> diffusers names (see ferry/wan_names.h).
 *
 * A name is split into a scope (the top level, a transformer block, a VAE
 * residual block, ...) and matched against that scope's table. A rule
 * ending in '.' matches a prefix and carries the rest over (".weight",
 * ".bias", ".gamma"); any other rule matches the whole rest. The same tables
 * read right to left give the inverse. */
#include "ferry/wan_names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct name_rule {
    const char *original;
    const char *diffusers;
} name_rule;

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- Tables ---------------------------------------------------------------- */

static const name_rule dit_top[] = {
    {"patch_embedding.", "patch_embedding."},
    {"text_embedding.0.", "condition_embedder.text_embedder.linear_1."},
    {"text_embedding.2.", "condition_embedder.text_embedder.linear_2."},
    {"time_embedding.0.", "condition_embedder.time_embedder.linear_1."},
    {"time_embedding.2.", "condition_embedder.time_embedder.linear_2."},
    {"time_projection.1.", "condition_embedder.time_proj."},
    {"head.head.", "proj_out."},
    {"head.modulation", "scale_shift_table"},
    {"img_emb.proj.0.", "condition_embedder.image_embedder.norm1."},
    {"img_emb.proj.1.", "condition_embedder.image_embedder.ff.net.0.proj."},
    {"img_emb.proj.3.", "condition_embedder.image_embedder.ff.net.2."},
    {"img_emb.proj.4.", "condition_embedder.image_embedder.norm2."},
    {"img_emb.emb_pos", "condition_embedder.image_embedder.pos_embed"},
};

/* The original block applies norm1 (self-attention), norm3 (cross-attention)
 * and norm2 (FFN); diffusers numbers them in order. Only the cross-attention
 * norm has weights: blocks.N.norm1/norm2 are Wan's T5 names. */
static const name_rule dit_block[] = {
    {"self_attn.q.", "attn1.to_q."},
    {"self_attn.k.", "attn1.to_k."},
    {"self_attn.v.", "attn1.to_v."},
    {"self_attn.o.", "attn1.to_out.0."},
    {"self_attn.norm_q.", "attn1.norm_q."},
    {"self_attn.norm_k.", "attn1.norm_k."},
    {"cross_attn.q.", "attn2.to_q."},
    {"cross_attn.k.", "attn2.to_k."},
    {"cross_attn.v.", "attn2.to_v."},
    {"cross_attn.o.", "attn2.to_out.0."},
    {"cross_attn.norm_q.", "attn2.norm_q."},
    {"cross_attn.norm_k.", "attn2.norm_k."},
    {"cross_attn.k_img.", "attn2.add_k_proj."},
    {"cross_attn.v_img.", "attn2.add_v_proj."},
    {"cross_attn.norm_k_img.", "attn2.norm_added_k."},
    {"norm3.", "norm2."},
    {"ffn.0.", "ffn.net.0.proj."},
    {"ffn.2.", "ffn.net.2."},
    {"modulation", "scale_shift_table"},
};

static const name_rule vae_top[] = {
    {"conv1.", "quant_conv."},
    {"conv2.", "post_quant_conv."},
    {"encoder.conv1.", "encoder.conv_in."},
    {"decoder.conv1.", "decoder.conv_in."},
    {"encoder.head.0.", "encoder.norm_out."},
    {"encoder.head.2.", "encoder.conv_out."},
    {"decoder.head.0.", "decoder.norm_out."},
    {"decoder.head.2.", "decoder.conv_out."},
    {"encoder.middle.1.", "encoder.mid_block.attentions.0."},
    {"decoder.middle.1.", "decoder.mid_block.attentions.0."},
};

/* Scopes holding one residual block each. */
static const name_rule vae_residual_scope[] = {
    {"encoder.middle.0.", "encoder.mid_block.resnets.0."},
    {"encoder.middle.2.", "encoder.mid_block.resnets.1."},
    {"decoder.middle.0.", "decoder.mid_block.resnets.0."},
    {"decoder.middle.2.", "decoder.mid_block.resnets.1."},
};

static const name_rule vae_residual[] = {
    {"residual.0.", "norm1."},
    {"residual.2.", "conv1."},
    {"residual.3.", "norm2."},
    {"residual.6.", "conv2."},
    {"shortcut.", "conv_shortcut."},
};

/* A resampler keeps its names (resample.1, time_conv) on both sides. */
static const name_rule vae_resample[] = {
    {"resample.1.", "resample.1."},
    {"time_conv.", "time_conv."},
};

/* Wan's own T5 encoder, per block. */
static const name_rule t5_top[] = {
    {"token_embedding.", "shared."},
    {"norm.", "encoder.final_layer_norm."},
};

static const name_rule t5_block[] = {
    {"attn.q.", "layer.0.SelfAttention.q."},
    {"attn.k.", "layer.0.SelfAttention.k."},
    {"attn.v.", "layer.0.SelfAttention.v."},
    {"attn.o.", "layer.0.SelfAttention.o."},
    {"pos_embedding.embedding.", "layer.0.SelfAttention.relative_attention_bias."},
    {"norm1.", "layer.0.layer_norm."},
    {"norm2.", "layer.1.layer_norm."},
    {"ffn.gate.0.", "layer.1.DenseReluDense.wi_0."},
    {"ffn.fc1.", "layer.1.DenseReluDense.wi_1."},
    {"ffn.fc2.", "layer.1.DenseReluDense.wo."},
};

/* The Wan2.1 VAE decoder: per level, num_res_blocks + 1 = 3 residual blocks
 * then an upsampler (none after the last level), in one flat list. */
#define VAE_UP_RESNETS 3
#define VAE_UP_STRIDE (VAE_UP_RESNETS + 1)

/* ---- Matching -------------------------------------------------------------- */

typedef enum direction { TO_DIFFUSERS, FROM_DIFFUSERS } direction;

static const char *rule_from(const name_rule *r, direction d)
{
    return d == TO_DIFFUSERS ? r->original : r->diffusers;
}

static const char *rule_to(const name_rule *r, direction d)
{
    return d == TO_DIFFUSERS ? r->diffusers : r->original;
}

/* An output buffer being filled; `bad` once it overflowed. */
typedef struct out_buf {
    char *s;
    size_t size, len;
    bool bad;
} out_buf;

static void put(out_buf *o, const char *text)
{
    size_t n = strlen(text);
    if (o->bad || o->len + n + 1 > o->size) {
        o->bad = true;
        return;
    }
    memcpy(o->s + o->len, text, n + 1);
    o->len += n;
}

static void putf_index(out_buf *o, const char *before, long index, const char *after)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%ld", index);
    put(o, before);
    put(o, buf);
    put(o, after);
}

static fy_status done(out_buf *o)
{
    return o->bad ? fy_error(FY_ERR_INVALID, "tensor name longer than %zu characters", o->size) : FY_OK;
}

/* Match name against rules; on success append the mapped name and return true. */
static bool apply(const name_rule *rules, size_t n, direction d, const char *name, out_buf *o)
{
    for (size_t i = 0; i < n; i++) {
        const char *from = rule_from(&rules[i], d);
        size_t len = strlen(from);
        bool prefix = from[len - 1] == '.';
        if (prefix ? strncmp(name, from, len) != 0 || !name[len] : strcmp(name, from) != 0) continue;
        put(o, rule_to(&rules[i], d));
        if (prefix) put(o, name + len);
        return true;
    }
    return false;
}

/* "<prefix><digits>." at the start of name: the index, and where the rest begins. */
static const char *indexed(const char *name, const char *prefix, long *index)
{
    size_t len = strlen(prefix);
    if (strncmp(name, prefix, len) != 0) return NULL;
    const char *p = name + len;
    if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9')) return NULL;
    char *end;
    long v = strtol(p, &end, 10);
    if (*end != '.' || end - p > 6) return NULL;
    *index = v;
    return end + 1;
}

/* ---- Transformer ------------------------------------------------------------ */

static bool map_dit(direction d, const char *name, out_buf *o)
{
    static const char comfy_prefix[] = "model.diffusion_model.";
    if (d == TO_DIFFUSERS && strncmp(name, comfy_prefix, sizeof comfy_prefix - 1) == 0)
        name += sizeof comfy_prefix - 1;
    long block;
    const char *rest = indexed(name, "blocks.", &block);
    if (rest) {
        putf_index(o, "blocks.", block, ".");
        return apply(dit_block, COUNT(dit_block), d, rest, o);
    }
    return apply(dit_top, COUNT(dit_top), d, name, o);
}

/* ---- VAE -------------------------------------------------------------------- */

static bool map_residual_scope(direction d, const char *name, out_buf *o)
{
    for (size_t i = 0; i < COUNT(vae_residual_scope); i++) {
        const char *from = rule_from(&vae_residual_scope[i], d);
        size_t len = strlen(from);
        if (strncmp(name, from, len) != 0) continue;
        put(o, rule_to(&vae_residual_scope[i], d));
        return apply(vae_residual, COUNT(vae_residual), d, name + len, o);
    }
    return false;
}

/* The encoder's list is flat on both sides: residual blocks and resamplers. */
static bool map_vae_down(direction d, const char *name, out_buf *o)
{
    long i;
    const char *rest = indexed(name, d == TO_DIFFUSERS ? "encoder.downsamples." : "encoder.down_blocks.", &i);
    if (!rest) return false;
    putf_index(o, d == TO_DIFFUSERS ? "encoder.down_blocks." : "encoder.downsamples.", i, ".");
    return apply(vae_residual, COUNT(vae_residual), d, rest, o) ||
           apply(vae_resample, COUNT(vae_resample), d, rest, o);
}

static bool map_vae_up_to_diffusers(const char *name, out_buf *o)
{
    long i;
    const char *rest = indexed(name, "decoder.upsamples.", &i);
    if (!rest) return false;
    long level = i / VAE_UP_STRIDE, k = i % VAE_UP_STRIDE;
    if (k == VAE_UP_RESNETS) {
        putf_index(o, "decoder.up_blocks.", level, ".upsamplers.0.");
        return apply(vae_resample, COUNT(vae_resample), TO_DIFFUSERS, rest, o);
    }
    putf_index(o, "decoder.up_blocks.", level, ".resnets.");
    putf_index(o, "", k, ".");
    return apply(vae_residual, COUNT(vae_residual), TO_DIFFUSERS, rest, o);
}

static bool map_vae_up_from_diffusers(const char *name, out_buf *o)
{
    long level, k;
    const char *rest = indexed(name, "decoder.up_blocks.", &level);
    if (!rest) return false;
    const char *inner;
    if ((inner = indexed(rest, "resnets.", &k)) != NULL) {
        if (k >= VAE_UP_RESNETS) return false;
        putf_index(o, "decoder.upsamples.", level * VAE_UP_STRIDE + k, ".");
        return apply(vae_residual, COUNT(vae_residual), FROM_DIFFUSERS, inner, o);
    }
    if ((inner = indexed(rest, "upsamplers.", &k)) != NULL && k == 0) {
        putf_index(o, "decoder.upsamples.", level * VAE_UP_STRIDE + VAE_UP_RESNETS, ".");
        return apply(vae_resample, COUNT(vae_resample), FROM_DIFFUSERS, inner, o);
    }
    return false;
}

static bool map_vae(direction d, const char *name, out_buf *o)
{
    if (apply(vae_top, COUNT(vae_top), d, name, o)) return true;
    if (map_residual_scope(d, name, o) || (o->len = 0, map_vae_down(d, name, o))) return true;
    o->len = 0;
    return d == TO_DIFFUSERS ? map_vae_up_to_diffusers(name, o) : map_vae_up_from_diffusers(name, o);
}

/* ---- Text encoder ------------------------------------------------------------ */

/* The transformers names ComfyUI's UMT5 files keep. */
static bool is_transformers_t5_name(const char *name)
{
    long i;
    if (strcmp(name, "shared.weight") == 0 || strcmp(name, "encoder.final_layer_norm.weight") == 0) return true;
    const char *rest = indexed(name, "encoder.block.", &i);
    char scratch[256];
    out_buf o = {scratch, sizeof scratch, 0, false};
    return rest && apply(t5_block, COUNT(t5_block), FROM_DIFFUSERS, rest, &o);
}

static bool map_t5(direction d, const char *name, out_buf *o)
{
    long block;
    const char *rest;
    if (d == TO_DIFFUSERS) {
        if (is_transformers_t5_name(name)) {
            put(o, name);
            return true;
        }
        if (strcmp(name, "encoder.embed_tokens.weight") == 0) {
            put(o, "shared.weight"); /* transformers ties the two */
            return true;
        }
        if ((rest = indexed(name, "blocks.", &block)) != NULL) {
            putf_index(o, "encoder.block.", block, ".");
            return apply(t5_block, COUNT(t5_block), d, rest, o);
        }
        return apply(t5_top, COUNT(t5_top), d, name, o);
    }
    if ((rest = indexed(name, "encoder.block.", &block)) != NULL) {
        putf_index(o, "blocks.", block, ".");
        return apply(t5_block, COUNT(t5_block), d, rest, o);
    }
    return apply(t5_top, COUNT(t5_top), d, name, o);
}

/* ---- API --------------------------------------------------------------------- */

static fy_status map_name(fy_wan_part part, direction d, const char *name, char *out, size_t size)
{
    if (!name || !out || size == 0) return fy_error(FY_ERR_INVALID, "fy_wan_name: NULL argument");
    out_buf o = {out, size, 0, false};
    out[0] = '\0';
    bool found = false;
    switch (part) {
    case FY_WAN_TRANSFORMER: found = map_dit(d, name, &o); break;
    case FY_WAN_VAE: found = map_vae(d, name, &o); break;
    case FY_WAN_TEXT_ENCODER: found = map_t5(d, name, &o); break;
    default: return fy_error(FY_ERR_INVALID, "fy_wan_name: unknown part %d", (int)part);
    }
    if (!found) {
        out[0] = '\0';
        return FY_ERR_NOT_FOUND;
    }
    return done(&o);
}

fy_status fy_wan_name_to_diffusers(fy_wan_part part, const char *original, char *out, size_t size)
{
    return map_name(part, TO_DIFFUSERS, original, out, size);
}

fy_status fy_wan_name_from_diffusers(fy_wan_part part, const char *diffusers, char *out, size_t size)
{
    return map_name(part, FROM_DIFFUSERS, diffusers, out, size);
}

const char *fy_wan_part_name(fy_wan_part part)
{
    switch (part) {
    case FY_WAN_TRANSFORMER: return "transformer";
    case FY_WAN_VAE: return "vae";
    case FY_WAN_TEXT_ENCODER: return "text_encoder";
    default: return "?";
    }
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

bool fy_wan_name_ignored(const char *original)
{
    return original && (strcmp(original, "scaled_fp8") == 0 || ends_with(original, ".scale_input") ||
                        ends_with(original, ".input_scale") || ends_with(original, ".comfy_quant"));
}
