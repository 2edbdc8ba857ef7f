/* Original Wan names <-> diffusers names: a table of real names (Wan2.1's
 * 1.3B/14B transformers and I2V, the Wan2.1 VAE, UMT5 in Wan's and
 * transformers' names) mapped both ways, every tensor of the fixture folders
 * round-tripped, and names that are no Wan tensor refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "ferry/error.h"
#include "ferry/safetensors.h"
#include "ferry/wan_names.h"

typedef struct name_case {
    fy_wan_part part;
    const char *original;
    const char *diffusers;
    bool inverse;  /* from_diffusers gives `original` back */
} name_case;

static const name_case cases[] = {
    {FY_WAN_TRANSFORMER, "patch_embedding.weight", "patch_embedding.weight", true},
    {FY_WAN_TRANSFORMER, "text_embedding.0.weight", "condition_embedder.text_embedder.linear_1.weight", true},
    {FY_WAN_TRANSFORMER, "text_embedding.2.bias", "condition_embedder.text_embedder.linear_2.bias", true},
    {FY_WAN_TRANSFORMER, "time_embedding.0.bias", "condition_embedder.time_embedder.linear_1.bias", true},
    {FY_WAN_TRANSFORMER, "time_embedding.2.weight", "condition_embedder.time_embedder.linear_2.weight", true},
    {FY_WAN_TRANSFORMER, "time_projection.1.weight", "condition_embedder.time_proj.weight", true},
    {FY_WAN_TRANSFORMER, "head.head.weight", "proj_out.weight", true},
    {FY_WAN_TRANSFORMER, "head.modulation", "scale_shift_table", true},
    {FY_WAN_TRANSFORMER, "blocks.0.self_attn.q.weight", "blocks.0.attn1.to_q.weight", true},
    {FY_WAN_TRANSFORMER, "blocks.29.self_attn.o.bias", "blocks.29.attn1.to_out.0.bias", true},
    {FY_WAN_TRANSFORMER, "blocks.3.self_attn.norm_k.weight", "blocks.3.attn1.norm_k.weight", true},
    {FY_WAN_TRANSFORMER, "blocks.39.cross_attn.v.weight", "blocks.39.attn2.to_v.weight", true},
    {FY_WAN_TRANSFORMER, "blocks.1.cross_attn.norm_q.weight", "blocks.1.attn2.norm_q.weight", true},
    {FY_WAN_TRANSFORMER, "blocks.1.cross_attn.k_img.weight", "blocks.1.attn2.add_k_proj.weight", true},
    {FY_WAN_TRANSFORMER, "blocks.1.cross_attn.v_img.bias", "blocks.1.attn2.add_v_proj.bias", true},
    {FY_WAN_TRANSFORMER, "blocks.1.cross_attn.norm_k_img.weight", "blocks.1.attn2.norm_added_k.weight", true},
    {FY_WAN_TRANSFORMER, "blocks.2.norm3.weight", "blocks.2.norm2.weight", true},
    {FY_WAN_TRANSFORMER, "blocks.2.norm3.bias", "blocks.2.norm2.bias", true},
    {FY_WAN_TRANSFORMER, "blocks.2.ffn.0.weight", "blocks.2.ffn.net.0.proj.weight", true},
    {FY_WAN_TRANSFORMER, "blocks.2.ffn.2.bias", "blocks.2.ffn.net.2.bias", true},
    {FY_WAN_TRANSFORMER, "blocks.7.modulation", "blocks.7.scale_shift_table", true},
    {FY_WAN_TRANSFORMER, "img_emb.proj.0.weight", "condition_embedder.image_embedder.norm1.weight", true},
    {FY_WAN_TRANSFORMER, "img_emb.proj.1.bias", "condition_embedder.image_embedder.ff.net.0.proj.bias", true},
    {FY_WAN_TRANSFORMER, "img_emb.proj.3.weight", "condition_embedder.image_embedder.ff.net.2.weight", true},
    {FY_WAN_TRANSFORMER, "img_emb.proj.4.bias", "condition_embedder.image_embedder.norm2.bias", true},
    {FY_WAN_TRANSFORMER, "model.diffusion_model.blocks.0.self_attn.q.weight", "blocks.0.attn1.to_q.weight", false},
    {FY_WAN_TRANSFORMER, "model.diffusion_model.head.modulation", "scale_shift_table", false},
    {FY_WAN_VAE, "conv1.weight", "quant_conv.weight", true},
    {FY_WAN_VAE, "conv2.bias", "post_quant_conv.bias", true},
    {FY_WAN_VAE, "encoder.conv1.weight", "encoder.conv_in.weight", true},
    {FY_WAN_VAE, "decoder.conv1.bias", "decoder.conv_in.bias", true},
    {FY_WAN_VAE, "encoder.head.0.gamma", "encoder.norm_out.gamma", true},
    {FY_WAN_VAE, "decoder.head.2.weight", "decoder.conv_out.weight", true},
    {FY_WAN_VAE, "encoder.middle.0.residual.0.gamma", "encoder.mid_block.resnets.0.norm1.gamma", true},
    {FY_WAN_VAE, "encoder.middle.2.residual.6.weight", "encoder.mid_block.resnets.1.conv2.weight", true},
    {FY_WAN_VAE, "decoder.middle.1.to_qkv.weight", "decoder.mid_block.attentions.0.to_qkv.weight", true},
    {FY_WAN_VAE, "decoder.middle.1.norm.gamma", "decoder.mid_block.attentions.0.norm.gamma", true},
    {FY_WAN_VAE, "encoder.downsamples.0.residual.2.bias", "encoder.down_blocks.0.conv1.bias", true},
    {FY_WAN_VAE, "encoder.downsamples.3.shortcut.weight", "encoder.down_blocks.3.conv_shortcut.weight", true},
    {FY_WAN_VAE, "encoder.downsamples.5.time_conv.weight", "encoder.down_blocks.5.time_conv.weight", true},
    {FY_WAN_VAE, "encoder.downsamples.8.resample.1.bias", "encoder.down_blocks.8.resample.1.bias", true},
    {FY_WAN_VAE, "decoder.upsamples.0.residual.3.gamma", "decoder.up_blocks.0.resnets.0.norm2.gamma", true},
    {FY_WAN_VAE, "decoder.upsamples.3.resample.1.weight", "decoder.up_blocks.0.upsamplers.0.resample.1.weight", true},
    {FY_WAN_VAE, "decoder.upsamples.3.time_conv.bias", "decoder.up_blocks.0.upsamplers.0.time_conv.bias", true},
    {FY_WAN_VAE, "decoder.upsamples.4.shortcut.weight", "decoder.up_blocks.1.resnets.0.conv_shortcut.weight", true},
    {FY_WAN_VAE, "decoder.upsamples.6.residual.6.bias", "decoder.up_blocks.1.resnets.2.conv2.bias", true},
    {FY_WAN_VAE, "decoder.upsamples.11.resample.1.bias", "decoder.up_blocks.2.upsamplers.0.resample.1.bias", true},
    {FY_WAN_VAE, "decoder.upsamples.14.residual.0.gamma", "decoder.up_blocks.3.resnets.2.norm1.gamma", true},
    {FY_WAN_TEXT_ENCODER, "token_embedding.weight", "shared.weight", true},
    {FY_WAN_TEXT_ENCODER, "norm.weight", "encoder.final_layer_norm.weight", true},
    {FY_WAN_TEXT_ENCODER, "blocks.0.attn.q.weight", "encoder.block.0.layer.0.SelfAttention.q.weight", true},
    {FY_WAN_TEXT_ENCODER, "blocks.23.attn.o.weight", "encoder.block.23.layer.0.SelfAttention.o.weight", true},
    {FY_WAN_TEXT_ENCODER, "blocks.5.pos_embedding.embedding.weight",
     "encoder.block.5.layer.0.SelfAttention.relative_attention_bias.weight", true},
    {FY_WAN_TEXT_ENCODER, "blocks.5.norm1.weight", "encoder.block.5.layer.0.layer_norm.weight", true},
    {FY_WAN_TEXT_ENCODER, "blocks.5.norm2.weight", "encoder.block.5.layer.1.layer_norm.weight", true},
    {FY_WAN_TEXT_ENCODER, "blocks.5.ffn.gate.0.weight", "encoder.block.5.layer.1.DenseReluDense.wi_0.weight", true},
    {FY_WAN_TEXT_ENCODER, "blocks.5.ffn.fc1.weight", "encoder.block.5.layer.1.DenseReluDense.wi_1.weight", true},
    {FY_WAN_TEXT_ENCODER, "blocks.5.ffn.fc2.weight", "encoder.block.5.layer.1.DenseReluDense.wo.weight", true},
    {FY_WAN_TEXT_ENCODER, "encoder.block.0.layer.0.SelfAttention.k.weight",
     "encoder.block.0.layer.0.SelfAttention.k.weight", false},
    {FY_WAN_TEXT_ENCODER, "encoder.embed_tokens.weight", "shared.weight", false},
    {FY_WAN_TEXT_ENCODER, "shared.weight", "shared.weight", false},
};

static void test_table(void **state)
{
    (void)state;
    char out[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const name_case *c = &cases[i];
        if (fy_wan_name_to_diffusers(c->part, c->original, out, sizeof out) != FY_OK)
            fail_msg("%s: %s not mapped", fy_wan_part_name(c->part), c->original);
        if (strcmp(out, c->diffusers) != 0) fail_msg("%s -> %s, want %s", c->original, out, c->diffusers);
        if (!c->inverse) continue;
        if (fy_wan_name_from_diffusers(c->part, c->diffusers, out, sizeof out) != FY_OK)
            fail_msg("%s: %s not mapped back", fy_wan_part_name(c->part), c->diffusers);
        if (strcmp(out, c->original) != 0) fail_msg("%s <- %s, want %s", c->diffusers, out, c->original);
    }
}

typedef struct bad_case {
    fy_wan_part part;
    const char *name;
} bad_case;

static const bad_case bad[] = {
    {FY_WAN_TRANSFORMER, "blocks.0.attn1.to_q.weight"},   /* already diffusers */
    {FY_WAN_TRANSFORMER, "blocks.0.self_attn.x.weight"},
    {FY_WAN_TRANSFORMER, "blocks.x.self_attn.q.weight"},
    {FY_WAN_TRANSFORMER, "blocks.01.self_attn.q.weight"},
    {FY_WAN_TRANSFORMER, "head.head."},
    {FY_WAN_TRANSFORMER, "head.modulation.extra"},
    {FY_WAN_TRANSFORMER, ""},
    {FY_WAN_VAE, "encoder.downsamples.0.residual.1.weight"},
    {FY_WAN_VAE, "decoder.middle.3.residual.0.gamma"},
    {FY_WAN_VAE, "decoder.upsamples.4.resample.1.weight"},
    {FY_WAN_VAE, "decoder.upsamples.3.residual.0.gamma"},
    {FY_WAN_VAE, "quant_conv.weight"},
    {FY_WAN_TEXT_ENCODER, "encoder.block.0.layer.2.foo.weight"},
    {FY_WAN_TEXT_ENCODER, "blocks.0.attn.x.weight"},
    {FY_WAN_TEXT_ENCODER, "lm_head.weight"},
};

static void test_unknown_names(void **state)
{
    (void)state;
    char out[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (fy_wan_name_to_diffusers(bad[i].part, bad[i].name, out, sizeof out) != FY_ERR_NOT_FOUND)
            fail_msg("%s: \"%s\" mapped to \"%s\"", fy_wan_part_name(bad[i].part), bad[i].name, out);
    }
    assert_int_equal(fy_wan_name_from_diffusers(FY_WAN_VAE, "decoder.up_blocks.0.resnets.3.conv1.weight", out,
                                                sizeof out),
                     FY_ERR_NOT_FOUND);
    char tiny[8];
    assert_int_equal(fy_wan_name_to_diffusers(FY_WAN_TRANSFORMER, "head.head.weight", tiny, sizeof tiny),
                     FY_ERR_INVALID);
    assert_true(fy_wan_name_ignored("scaled_fp8"));
    assert_true(fy_wan_name_ignored("encoder.block.0.layer.0.SelfAttention.q.scale_input"));
    assert_false(fy_wan_name_ignored("encoder.block.0.layer.0.SelfAttention.q.weight"));
}

/* Every tensor of the fixture folders maps to an original name and back. */
static void round_trip_file(fy_wan_part part, const char *path)
{
    fy_st_file *f = NULL;
    assert_int_equal(fy_st_open(path, &f), FY_OK);
    char original[256], back[256];
    for (size_t i = 0; i < fy_st_count(f); i++) {
        const char *name = fy_st_at(f, i)->name;
        if (fy_wan_name_from_diffusers(part, name, original, sizeof original) != FY_OK)
            fail_msg("%s: %s has no original name", path, name);
        assert_int_equal(fy_wan_name_to_diffusers(part, original, back, sizeof back), FY_OK);
        if (strcmp(back, name) != 0) fail_msg("%s -> %s -> %s", name, original, back);
    }
    fy_st_close(f);
}

static void test_fixture_round_trip(void **state)
{
    (void)state;
    static const char *const models[] = {"wan-tiny", "wan-i2v-tiny"};
    char path[1024];
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s/model/transformer/diffusion_pytorch_model.safetensors",
                 FERRY_FIXTURES_DIR, models[i]);
        round_trip_file(FY_WAN_TRANSFORMER, path);
        snprintf(path, sizeof path, "%s/%s/model/vae/diffusion_pytorch_model.safetensors", FERRY_FIXTURES_DIR,
                 models[i]);
        round_trip_file(FY_WAN_VAE, path);
        snprintf(path, sizeof path, "%s/%s/model/text_encoder/model.safetensors", FERRY_FIXTURES_DIR, models[i]);
        round_trip_file(FY_WAN_TEXT_ENCODER, path);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_unknown_names),
        cmocka_unit_test(test_fixture_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
