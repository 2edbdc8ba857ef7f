/* Model folders: the tiny Wan pipeline opened as diffusers lays it out, the
 * statistics `ferry info` prints (checked against counts taken from the
 * safetensors headers by Python), sharded weights, and a clear message for
 * every broken folder. Broken folders are temporary copies made of symlinks
 * to the fixtures plus edited files; the fixtures are never touched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ferry/error.h"
#include "ferry/model.h"
#include "ferry/safetensors.h"
#include "support/fyt.h"

#define MODEL_DIR FERRY_FIXTURES_DIR "/wan-tiny/model"

static const char *const wan_index =
    "{\"_class_name\": \"WanPipeline\", \"boundary_ratio\": null, \"expand_timesteps\": false,"
    " \"scheduler\": [\"diffusers\", \"UniPCMultistepScheduler\"],"
    " \"text_encoder\": [\"transformers\", \"UMT5EncoderModel\"],"
    " \"tokenizer\": [\"transformers\", \"T5Tokenizer\"],"
    " \"transformer\": [\"diffusers\", \"WanTransformer3DModel\"],"
    " \"transformer_2\": [null, null],"
    " \"vae\": [\"diffusers\", \"AutoencoderKLWan\"]}";

static void assert_message(const char *needle)
{
    if (!strstr(fy_error_message(), needle)) fail_msg("message \"%s\" lacks \"%s\"", fy_error_message(), needle);
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char *p = fyt_path(dir, name);
    assert_int_equal(fyt_write_file(p, text, strlen(text)), 0);
    free(p);
}

static void link_to(const char *target, const char *dir, const char *name)
{
    char *p = fyt_path(dir, name);
    assert_int_equal(symlink(target, p), 0);
    free(p);
}

/* A temporary model folder: the given model_index.json and a symlink to
 * every fixture component except `skip`. */
static char *temp_model(const char *index_json, const char *skip)
{
    static const char *const names[] = {"scheduler", "text_encoder", "tokenizer", "transformer", "vae"};
    char *dir = fyt_temp_dir();
    assert_non_null(dir);
    if (index_json) write_text(dir, "model_index.json", index_json);
    for (size_t i = 0; i < 5; i++) {
        if (skip && strcmp(skip, names[i]) == 0) continue;
        char *target = fyt_path(MODEL_DIR, names[i]);
        link_to(target, dir, names[i]);
        free(target);
    }
    return dir;
}

static void drop(char *dir)
{
    fyt_remove_tree(dir);
    free(dir);
}

static void expect_open_error(const char *dir, fy_status status, const char *needle)
{
    fy_model *m = (fy_model *)1;
    assert_int_equal(fy_model_open(dir, &m), status);
    assert_null(m);
    assert_message(needle);
    assert_null(strchr(fy_error_message(), '\n'));
}

/* ---- The fixture ---------------------------------------------------------------- */

static void test_open_wan_tiny(void **state)
{
    (void)state;
    fy_model *m = NULL;
    assert_int_equal(fy_model_open(MODEL_DIR, &m), FY_OK);
    assert_string_equal(fy_model_class(m), "WanPipeline");
    assert_string_equal(fy_model_dir(m), MODEL_DIR);
    assert_non_null(fy_model_index(m));
    /* transformer_2 is [null, null]; boundary_ratio and expand_timesteps are settings. */
    static const char *const names[] = {"scheduler", "text_encoder", "tokenizer", "transformer", "vae"};
    assert_int_equal(fy_model_component_count(m), 5);
    for (size_t i = 0; i < 5; i++) {
        const fy_component *c = fy_model_component_at(m, i);
        assert_string_equal(c->name, names[i]);
        assert_non_null(c->config);
        bool has_weights = strcmp(names[i], "scheduler") != 0 && strcmp(names[i], "tokenizer") != 0;
        assert_true((c->weights != NULL) == has_weights);
    }
    assert_null(fy_model_component_at(m, 5));
    const fy_component *t = fy_model_component(m, "transformer");
    assert_non_null(t);
    assert_string_equal(t->library, "diffusers");
    assert_string_equal(t->class_name, "WanTransformer3DModel");
    assert_string_equal(t->dir, MODEL_DIR "/transformer");
    assert_string_equal(fy_config_path(t->config), MODEL_DIR "/transformer/config.json");
    const fy_component *s = fy_model_component(m, "scheduler");
    assert_string_equal(fy_config_path(s->config), MODEL_DIR "/scheduler/scheduler_config.json");
    const fy_component *tok = fy_model_component(m, "tokenizer");
    assert_string_equal(fy_config_path(tok->config), MODEL_DIR "/tokenizer/tokenizer_config.json");
    assert_null(fy_model_component(m, "transformer_2"));
    assert_message("transformer_2");

    fy_tensor w;
    assert_int_equal(fy_component_weight(t, "blocks.0.attn1.to_q.weight", &w), FY_OK);
    assert_int_equal(w.ndim, 2);
    assert_int_equal(w.shape[0], 32);
    assert_int_equal(w.dtype, FY_F32);
    assert_int_not_equal(fy_component_weight(t, "blocks.9.nope", &w), FY_OK);
    assert_int_equal(fy_component_weight(s, "x", &w), FY_ERR_NOT_FOUND);
    const fy_component *te = fy_model_component(m, "text_encoder");
    assert_int_equal(fy_component_weight(te, "encoder.block.0.layer.0.SelfAttention.q.weight", &w), FY_OK);
    fy_model_free(m);
}

/* Expected numbers: python3 summing shapes and byte ranges over each
 * safetensors header of the fixture (see tests/cli/info.sh for the script). */
static void test_stats_match_headers(void **state)
{
    (void)state;
    fy_model *m = NULL;
    assert_int_equal(fy_model_open(MODEL_DIR, &m), FY_OK);
    static const struct {
        const char *name;
        uint64_t params, bytes;
        size_t tensors;
        const char *prefix;
        int blocks;
    } want[] = {
        {"text_encoder", 33184, 132736, 22, "encoder.block", 2},
        {"transformer", 40864, 163456, 69, "blocks", 2},
        {"vae", 243583, 974332, 194, "decoder.up_blocks", 4},
    };
    for (size_t i = 0; i < 3; i++) {
        fy_weight_stats st;
        assert_int_equal(fy_component_stats(fy_model_component(m, want[i].name), &st), FY_OK);
        assert_int_equal(st.params, want[i].params);
        assert_int_equal(st.bytes, want[i].bytes);
        assert_int_equal(st.params_by_dtype[FY_F32], want[i].params);
        assert_int_equal(st.tensors, want[i].tensors);
        assert_string_equal(st.blocks.prefix, want[i].prefix);
        assert_int_equal(st.blocks.count, want[i].blocks);
        assert_true(st.blocks.bytes_each_min <= st.blocks.bytes_each_max);
        assert_true(st.blocks.bytes_total <= st.bytes);
    }
    fy_weight_stats st;
    assert_int_equal(fy_component_stats(fy_model_component(m, "transformer"), &st), FY_OK);
    assert_int_equal(st.blocks.bytes_each_min, st.blocks.bytes_each_max); /* identical DiT blocks */
    assert_int_equal(st.blocks.bytes_total, 2 * st.blocks.bytes_each_max);
    assert_int_equal(fy_component_stats(fy_model_component(m, "scheduler"), &st), FY_OK);
    assert_int_equal(st.params, 0);
    assert_int_equal(st.blocks.count, 0);
    fy_model_free(m);
}

/* The dominant group is the one holding the most bytes; nested groups and
 * single "blocks" do not count. */
static void test_block_groups(void **state)
{
    (void)state;
    char *dir = fyt_temp_dir();
    write_text(dir, "model_index.json", "{\"_class_name\": \"P\", \"net\": [\"diffusers\", \"Net\"]}");
    char *net = fyt_path(dir, "net");
    assert_int_equal(mkdir(net, 0755), 0);
    write_text(net, "config.json", "{\"_class_name\": \"Net\"}");
    const char *header =
        "{\"encoder.block.0.w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
        "\"encoder.block.1.layer.0.v\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]},"
        "\"encoder.block.1.layer.1.v\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]},"
        "\"encoder.block.1.w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[32,48]},"
        "\"head.0.w\":{\"dtype\":\"F16\",\"shape\":[100],\"data_offsets\":[48,248]},"
        "\"shared.weight\":{\"dtype\":\"BF16\",\"shape\":[10,10],\"data_offsets\":[248,448]}}";
    size_t size;
    uint8_t *bytes = fyt_st_bytes(header, 448, &size);
    char *path = fyt_path(net, "diffusion_pytorch_model.safetensors");
    assert_int_equal(fyt_write_file(path, bytes, size), 0);
    fy_model *m = NULL;
    assert_int_equal(fy_model_open(dir, &m), FY_OK);
    fy_weight_stats st;
    assert_int_equal(fy_component_stats(fy_model_component(m, "net"), &st), FY_OK);
    assert_int_equal(st.params, 4 + 2 + 2 + 4 + 100 + 100);
    assert_int_equal(st.bytes, 448);
    assert_int_equal(st.params_by_dtype[FY_F32], 12);
    assert_int_equal(st.params_by_dtype[FY_F16], 100);
    assert_int_equal(st.params_by_dtype[FY_BF16], 100);
    assert_string_equal(st.blocks.prefix, "encoder.block");
    assert_int_equal(st.blocks.count, 2);
    assert_int_equal(st.blocks.bytes_each_min, 16);
    assert_int_equal(st.blocks.bytes_each_max, 32);
    assert_int_equal(st.blocks.bytes_total, 48);
    fy_model_free(m);
    free(bytes);
    free(path);
    free(net);
    drop(dir);
}

/* Weights re-sharded the way save_pretrained(max_shard_size=...) writes them
 * load through the index with the same statistics. */
static void test_sharded_component(void **state)
{
    (void)state;
    char *dir = temp_model(wan_index, "transformer");
    char *t = fyt_path(dir, "transformer");
    assert_int_equal(fy_st_reshard(MODEL_DIR "/transformer/diffusion_pytorch_model.safetensors", t,
                                   "diffusion_pytorch_model", 50000), FY_OK);
    link_to(MODEL_DIR "/transformer/config.json", t, "config.json");
    fy_model *m = NULL;
    assert_int_equal(fy_model_open(dir, &m), FY_OK);
    const fy_component *c = fy_model_component(m, "transformer");
    assert_true(fy_st_set_file_count(c->weights) > 1);
    fy_weight_stats st;
    assert_int_equal(fy_component_stats(c, &st), FY_OK);
    assert_int_equal(st.params, 40864);
    assert_int_equal(st.bytes, 163456);
    assert_string_equal(st.blocks.prefix, "blocks");
    fy_model_free(m);
    free(t);
    drop(dir);
}

/* ---- Broken folders ---------------------------------------------------------------- */

static void test_missing_folder_and_index(void **state)
{
    (void)state;
    expect_open_error("/nonexistent/ferry-model", FY_ERR_NOT_FOUND, "/nonexistent/ferry-model");
    expect_open_error(MODEL_DIR "/model_index.json", FY_ERR_INVALID, "not a folder");
    char *dir = temp_model(NULL, NULL);
    expect_open_error(dir, FY_ERR_NOT_FOUND, "is this a diffusers model folder? expected model_index.json in");
    drop(dir);
    expect_open_error(MODEL_DIR "/transformer", FY_ERR_NOT_FOUND, "pass the model folder above it");
}

static void test_bad_index(void **state)
{
    (void)state;
    char *dir = temp_model("{\"_class_name\": \"WanPipeline\",", NULL);
    expect_open_error(dir, FY_ERR_FORMAT, "model_index.json: not JSON");
    drop(dir);
    dir = temp_model("{\"vae\": [\"diffusers\", \"AutoencoderKLWan\"]}", NULL);
    expect_open_error(dir, FY_ERR_NOT_FOUND, "model_index.json: missing required key \"_class_name\"");
    drop(dir);
    dir = temp_model("{\"_class_name\": \"P\", \"vae\": [\"diffusers\"]}", NULL);
    expect_open_error(dir, FY_ERR_FORMAT, "key \"vae\" is not a [\"library\", \"Class\"] pair");
    drop(dir);
    dir = temp_model("{\"_class_name\": \"P\", \"..\": [\"diffusers\", \"X\"]}", NULL);
    expect_open_error(dir, FY_ERR_FORMAT, "is not a folder name");
    drop(dir);
}

static void test_missing_component_folder(void **state)
{
    (void)state;
    char *dir = temp_model(wan_index, "vae");
    expect_open_error(dir, FY_ERR_NOT_FOUND, "/vae: component folder missing");
    assert_message("AutoencoderKLWan");
    drop(dir);
}

/* A transformer folder built by hand: config and weights chosen per case. */
static char *model_with_transformer(const char *config_target, const char *weights_name)
{
    char *dir = temp_model(wan_index, "transformer");
    char *t = fyt_path(dir, "transformer");
    assert_int_equal(mkdir(t, 0755), 0);
    if (config_target) link_to(config_target, t, "config.json");
    if (weights_name)
        link_to(MODEL_DIR "/transformer/diffusion_pytorch_model.safetensors", t, weights_name);
    free(t);
    return dir;
}

static void test_missing_config_or_weights(void **state)
{
    (void)state;
    char *dir = model_with_transformer(NULL, "diffusion_pytorch_model.safetensors");
    expect_open_error(dir, FY_ERR_NOT_FOUND, "transformer/config.json: missing");
    drop(dir);
    dir = model_with_transformer(MODEL_DIR "/transformer/config.json", NULL);
    expect_open_error(dir, FY_ERR_NOT_FOUND, "no weights: expected diffusion_pytorch_model.safetensors");
    drop(dir);
    dir = model_with_transformer(MODEL_DIR "/transformer/config.json", "diffusion_pytorch_model.bin");
    expect_open_error(dir, FY_ERR_UNSUPPORTED, "safetensors only");
    drop(dir);
    /* A transformers-library component looks for model.safetensors, not the diffusers name. */
    dir = model_with_transformer(MODEL_DIR "/transformer/config.json", "model.safetensors");
    expect_open_error(dir, FY_ERR_NOT_FOUND, "diffusion_pytorch_model");
    drop(dir);
}

static void test_truncated_weights(void **state)
{
    (void)state;
    char *dir = temp_model(wan_index, "transformer");
    char *t = fyt_path(dir, "transformer");
    assert_int_equal(mkdir(t, 0755), 0);
    link_to(MODEL_DIR "/transformer/config.json", t, "config.json");
    size_t size;
    void *bytes = fyt_read_file(MODEL_DIR "/transformer/diffusion_pytorch_model.safetensors", &size);
    assert_non_null(bytes);
    char *w = fyt_path(t, "diffusion_pytorch_model.safetensors");
    assert_int_equal(fyt_write_file(w, bytes, size / 2), 0);
    expect_open_error(dir, FY_ERR_FORMAT, "diffusion_pytorch_model.safetensors");
    free(bytes);
    free(w);
    free(t);
    drop(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_wan_tiny),
        cmocka_unit_test(test_stats_match_headers),
        cmocka_unit_test(test_block_groups),
        cmocka_unit_test(test_sharded_component),
        cmocka_unit_test(test_missing_folder_and_index),
        cmocka_unit_test(test_bad_index),
        cmocka_unit_test(test_missing_component_folder),
        cmocka_unit_test(test_missing_config_or_weights),
        cmocka_unit_test(test_truncated_weights),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
