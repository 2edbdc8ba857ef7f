/* Configs inferred from single files' shapes: a Wan-sized transformer
 * (128-wide heads; text to video and image to video) written here in the
 * original names gives the sizes it was written with, and the fixture's VAE
 * and text encoder, renamed to the original names, give their folders'
 * config.json values. What no shape can give fails naming the tensor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/config.h"
#include "ferry/error.h"
#include "ferry/model.h"
#include "ferry/safetensors.h"
#include "ferry/wan_names.h"
#include "support/fyt.h"

#define MODEL_DIR FERRY_FIXTURES_DIR "/wan-tiny/model"

typedef struct shaped {
    const char *name;
    int ndim;
    int64_t shape[5];
} shaped;

/* A Wan transformer of width 256 (two heads), 2 layers, ffn 512, 16
 * channels, patch 1x2x2, text 64, frequencies 96. */
static const shaped dit[] = {
    {"model.diffusion_model.patch_embedding.weight", 5, {256, 16, 1, 2, 2}},
    {"model.diffusion_model.patch_embedding.bias", 1, {256}},
    {"model.diffusion_model.text_embedding.0.weight", 2, {256, 64}},
    {"model.diffusion_model.text_embedding.2.weight", 2, {256, 256}},
    {"model.diffusion_model.time_embedding.0.weight", 2, {256, 96}},
    {"model.diffusion_model.time_embedding.2.weight", 2, {256, 256}},
    {"model.diffusion_model.time_projection.1.weight", 2, {1536, 256}},
    {"model.diffusion_model.head.head.weight", 2, {64, 256}},
    {"model.diffusion_model.head.modulation", 3, {1, 2, 256}},
    {"model.diffusion_model.blocks.0.self_attn.q.weight", 2, {256, 256}},
    {"model.diffusion_model.blocks.0.self_attn.norm_q.weight", 1, {256}},
    {"model.diffusion_model.blocks.0.norm3.weight", 1, {256}},
    {"model.diffusion_model.blocks.0.ffn.0.weight", 2, {512, 256}},
    {"model.diffusion_model.blocks.1.self_attn.q.weight", 2, {256, 256}},
};

static const shaped i2v_extra[] = {
    {"model.diffusion_model.img_emb.proj.0.weight", 1, {40}},
    {"model.diffusion_model.blocks.0.cross_attn.k_img.weight", 2, {256, 256}},
};

static char *write_dit(const char *dir, const char *file, bool i2v, bool drop_patch)
{
    char *path = fyt_path(dir, file);
    fy_st_writer *w = NULL;
    assert_int_equal(fy_st_writer_create(&w), FY_OK);
    float *zeros = calloc(1536 * 256, sizeof *zeros);
    assert_non_null(zeros);
    size_t n = sizeof dit / sizeof dit[0];
    for (size_t i = drop_patch ? 2 : 0; i < n + (i2v ? 2 : 0); i++) {
        const shaped *t = i < n ? &dit[i] : &i2v_extra[i - n];
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= t->shape[d];
        assert_int_equal(fy_st_writer_add(w, t->name, FY_F32, t->ndim, t->shape, zeros, (uint64_t)numel * 4), FY_OK);
    }
    assert_int_equal(fy_st_writer_finish(w, path), FY_OK);
    fy_st_writer_free(w);
    free(zeros);
    return path;
}

static int64_t int_of(const fy_config *c, const char *key)
{
    int64_t v = -1;
    if (fy_config_int(c, key, &v) != FY_OK) fail_msg("%s: %s", key, fy_error_message());
    return v;
}

static const fy_config *config_of(fy_model *m, const char *component)
{
    const fy_component *c = fy_model_component(m, component);
    assert_non_null(c);
    assert_non_null(c->config);
    return c->config;
}

static void test_transformer_config(void **state)
{
    (void)state;
    char *dir = fyt_temp_dir();
    for (int i2v = 0; i2v < 2; i2v++) {
        char *path = write_dit(dir, i2v ? "i2v.safetensors" : "t2v.safetensors", i2v, false);
        fy_model_sources src = {.transformer = path};
        fy_model *m = NULL;
        if (fy_model_open_sources(MODEL_DIR, &src, &m) != FY_OK) fail_msg("%s", fy_error_message());
        const fy_config *c = config_of(m, "transformer");
        assert_int_equal(int_of(c, "num_attention_heads"), 2);
        assert_int_equal(int_of(c, "attention_head_dim"), 128);
        assert_int_equal(int_of(c, "in_channels"), 16);
        assert_int_equal(int_of(c, "out_channels"), 16);
        assert_int_equal(int_of(c, "ffn_dim"), 512);
        assert_int_equal(int_of(c, "freq_dim"), 96);
        assert_int_equal(int_of(c, "text_dim"), 64);
        assert_int_equal(int_of(c, "num_layers"), 2);
        int64_t patch[3];
        size_t n = 0;
        assert_int_equal(fy_config_int_array(c, "patch_size", patch, 3, &n), FY_OK);
        assert_true(n == 3 && patch[0] == 1 && patch[1] == 2 && patch[2] == 2);
        bool cross = false;
        assert_int_equal(fy_config_bool(c, "cross_attn_norm", &cross), FY_OK);
        assert_true(cross);
        const char *qk = NULL;
        assert_int_equal(fy_config_string(c, "qk_norm", &qk), FY_OK);
        assert_string_equal(qk, "rms_norm_across_heads");
        assert_int_equal(fy_config_has(c, "image_dim"), i2v);
        if (i2v) {
            assert_int_equal(int_of(c, "image_dim"), 40);
            assert_int_equal(int_of(c, "added_kv_proj_dim"), 256);
        }
        assert_string_equal(fy_model_component(m, "transformer")->single_file, path);
        fy_model_free(m);
        free(path);
    }
    fyt_remove_tree(dir);
    free(dir);
}

static void test_transformer_uninferable(void **state)
{
    (void)state;
    char *dir = fyt_temp_dir();
    char *path = write_dit(dir, "no_patch.safetensors", false, true);
    fy_model_sources src = {.transformer = path};
    fy_model *m = NULL;
    assert_int_equal(fy_model_open_sources(MODEL_DIR, &src, &m), FY_ERR_FORMAT);
    assert_null(m);
    assert_non_null(strstr(fy_error_message(), "no_patch.safetensors"));
    assert_non_null(strstr(fy_error_message(), "'patch_embedding.weight' is missing"));
    assert_non_null(strstr(fy_error_message(), "--config"));
    free(path);
    fyt_remove_tree(dir);
    free(dir);
}

/* A folder's weights, in the original names, written to dir/file. */
static char *write_original(const char *dir, const char *file, fy_wan_part part, const char *weights)
{
    char *path = fyt_path(dir, file);
    fy_st_file *f = NULL;
    assert_int_equal(fy_st_open(weights, &f), FY_OK);
    fy_st_writer *w = NULL;
    assert_int_equal(fy_st_writer_create(&w), FY_OK);
    char original[256];
    for (size_t i = 0; i < fy_st_count(f); i++) {
        const fy_st_info *t = fy_st_at(f, i);
        assert_int_equal(fy_wan_name_from_diffusers(part, t->name, original, sizeof original), FY_OK);
        assert_int_equal(fy_st_writer_add(w, original, t->dtype, t->ndim, t->shape, t->data, t->nbytes), FY_OK);
    }
    assert_int_equal(fy_st_writer_finish(w, path), FY_OK);
    fy_st_writer_free(w);
    fy_st_close(f);
    return path;
}

/* Every key the folder's config and the inferred one share holds the same value. */
static void same_values(const fy_config *folder, const fy_config *inferred, const char *const *keys)
{
    for (size_t i = 0; keys[i]; i++) {
        double a[32], b[32];
        size_t na = 0, nb = 0;
        if (fy_config_double_array(folder, keys[i], a, 32, &na) == FY_OK) {
            if (fy_config_double_array(inferred, keys[i], b, 32, &nb) != FY_OK) fail_msg("%s", keys[i]);
            assert_int_equal(na, nb);
            for (size_t k = 0; k < na; k++) assert_float_equal(a[k], b[k], 0.0);
            continue;
        }
        fy_error_clear();
        bool fa[8], fb[8];
        if (fy_config_bool_array(folder, keys[i], fa, 8, &na) == FY_OK) {
            assert_int_equal(fy_config_bool_array(inferred, keys[i], fb, 8, &nb), FY_OK);
            assert_int_equal(na, nb);
            for (size_t k = 0; k < na; k++) assert_int_equal(fa[k], fb[k]);
            continue;
        }
        fy_error_clear();
        if (int_of(folder, keys[i]) != int_of(inferred, keys[i])) fail_msg("%s differs", keys[i]);
    }
}

static void test_vae_and_text_encoder_configs(void **state)
{
    (void)state;
    char *dir = fyt_temp_dir();
    char *vae = write_original(dir, "vae.safetensors", FY_WAN_VAE,
                               MODEL_DIR "/vae/diffusion_pytorch_model.safetensors");
    char *t5 = write_original(dir, "t5.safetensors", FY_WAN_TEXT_ENCODER, MODEL_DIR "/text_encoder/model.safetensors");
    fy_model_sources src = {.vae = vae, .text_encoder = t5};
    fy_model *files = NULL, *folder = NULL;
    if (fy_model_open_sources(MODEL_DIR, &src, &files) != FY_OK) fail_msg("%s", fy_error_message());
    assert_int_equal(fy_model_open(MODEL_DIR, &folder), FY_OK);
    static const char *const vae_keys[] = {"base_dim", "z_dim", "num_res_blocks", "in_channels", "out_channels",
                                           "dim_mult", "temperal_downsample", "latents_mean", "latents_std", NULL};
    static const char *const t5_keys[] = {"vocab_size", "d_model", "d_kv", "d_ff", "num_heads", "num_layers",
                                          "relative_attention_num_buckets", "relative_attention_max_distance",
                                          NULL};
    same_values(config_of(folder, "vae"), config_of(files, "vae"), vae_keys);
    same_values(config_of(folder, "text_encoder"), config_of(files, "text_encoder"), t5_keys);
    /* The same tensors, by their diffusers names. */
    fy_tensor a, b;
    static const char up[] = "decoder.up_blocks.0.upsamplers.0.time_conv.weight";
    assert_int_equal(fy_component_weight(fy_model_component(files, "vae"), up, &a), FY_OK);
    assert_int_equal(fy_component_weight(fy_model_component(folder, "vae"), up, &b), FY_OK);
    assert_memory_equal(a.data, b.data, fy_tensor_nbytes(&a));
    fy_model_free(files);
    fy_model_free(folder);
    free(vae);
    free(t5);
    fyt_remove_tree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transformer_config),
        cmocka_unit_test(test_transformer_uninferable),
        cmocka_unit_test(test_vae_and_text_encoder_configs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
