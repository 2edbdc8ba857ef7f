/* Flux.1: every component `ferry verify` knows for a FluxPipeline folder,
 * on the golden fixtures (FLUX.1-dev-shaped model/ and model-schnell/), on
 * the CPU and on the emulated device under every offload plan; and the CLIP
 * tokenizer's behaviour the fixtures do not show. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/clip_tokenizer.h"
#include "ferry/options.h"
#include "pipeline/verify.h"
#include "support/fyt.h"

#define DEV FERRY_FIXTURES_DIR "/flux-tiny/model"
#define SCHNELL FERRY_FIXTURES_DIR "/flux-tiny/model-schnell"
#define FIXTURES FERRY_FIXTURES_DIR "/flux-tiny/fixtures"

/* The components each run checks (those of model-schnell/ that differ are separate). */
#define TEXT "tokenizer,tokenizer_2,text_encoder,text_encoder_2"

static fy_status verify(const char *model, const char *components, const fy_run_options *o)
{
    FILE *out = fopen("/dev/null", "w");
    fy_status s = fy_verify_run(model, FIXTURES, components, o, out);
    if (s != FY_OK) print_message("verify %s: %s\n", components ? components : "all", fy_error_message());
    fclose(out);
    return s;
}

static fy_run_options options(fy_device_kind device, fy_offload_policy offload)
{
    fy_run_options o;
    fy_run_options_init(&o);
    o.device = device;
    o.offload = offload;
    o.threads = 2;
    return o;
}

static void test_text_cpu(void **state)
{
    (void)state;
    fy_run_options o = options(FY_DEVICE_CPU, FY_OFFLOAD_NONE);
    assert_int_equal(verify(DEV, TEXT, &o), FY_OK);
}

/* Every plan on the emulated device, and the text encoders moved to the host. */
static void test_text_emu_plans(void **state)
{
    (void)state;
    fy_run_options plans[7];
    int n = 0;
    plans[n++] = options(FY_DEVICE_EMU, FY_OFFLOAD_NONE);
    plans[n++] = options(FY_DEVICE_EMU, FY_OFFLOAD_MODEL);
    plans[n++] = options(FY_DEVICE_EMU, FY_OFFLOAD_SEQUENTIAL);
    plans[n] = options(FY_DEVICE_EMU, FY_OFFLOAD_GROUP), plans[n++].num_blocks_per_group = 2;
    plans[n] = options(FY_DEVICE_EMU, FY_OFFLOAD_LAYERWISE), plans[n++].prefetch_depth = 1;
    plans[n] = options(FY_DEVICE_EMU, FY_OFFLOAD_LAYERWISE), plans[n++].resident_blocks = 1;
    plans[n] = options(FY_DEVICE_EMU, FY_OFFLOAD_SEQUENTIAL), plans[n++].text_encoder_cpu_offload = true;
    for (int i = 0; i < n; i++) assert_int_equal(verify(DEV, "text_encoder,text_encoder_2", &plans[i]), FY_OK);
}

static void test_transformer_cpu(void **state)
{
    (void)state;
    fy_run_options o = options(FY_DEVICE_CPU, FY_OFFLOAD_NONE);
    assert_int_equal(verify(DEV, "transformer", &o), FY_OK);
    assert_int_equal(verify(SCHNELL, "transformer", &o), FY_OK);
}

static void test_transformer_emu_plans(void **state)
{
    (void)state;
    fy_run_options plans[6];
    int n = 0;
    plans[n++] = options(FY_DEVICE_EMU, FY_OFFLOAD_NONE);
    plans[n++] = options(FY_DEVICE_EMU, FY_OFFLOAD_SEQUENTIAL);
    plans[n] = options(FY_DEVICE_EMU, FY_OFFLOAD_GROUP), plans[n++].num_blocks_per_group = 2;
    plans[n] = options(FY_DEVICE_EMU, FY_OFFLOAD_LAYERWISE), plans[n++].prefetch_depth = 2;
    plans[n] = options(FY_DEVICE_EMU, FY_OFFLOAD_LAYERWISE), plans[n++].resident_blocks = 3;
    plans[n] = options(FY_DEVICE_EMU, FY_OFFLOAD_LAYERWISE), plans[n].resident_blocks = 1,
    plans[n++].low_cpu_mem_usage = true;
    for (int i = 0; i < n; i++) assert_int_equal(verify(i % 2 ? SCHNELL : DEV, "transformer", &plans[i]), FY_OK);
}

/* Every component and both pipelines, dev and schnell: on the CPU, and on
 * the emulated device under every plan (the text encoders and the VAE moved
 * to the host in one of them, the planner under a budget in another). */
static void test_everything_every_plan(void **state)
{
    (void)state;
    fy_run_options plans[10];
    int n = 0;
    plans[n++] = options(FY_DEVICE_CPU, FY_OFFLOAD_NONE);
    plans[n++] = options(FY_DEVICE_EMU, FY_OFFLOAD_NONE);
    plans[n++] = options(FY_DEVICE_EMU, FY_OFFLOAD_MODEL);
    plans[n++] = options(FY_DEVICE_EMU, FY_OFFLOAD_SEQUENTIAL);
    plans[n] = options(FY_DEVICE_EMU, FY_OFFLOAD_GROUP), plans[n].use_stream = true;
    plans[n++].num_blocks_per_group = 2;
    plans[n] = options(FY_DEVICE_EMU, FY_OFFLOAD_LAYERWISE), plans[n++].prefetch_depth = 2;
    plans[n] = options(FY_DEVICE_EMU, FY_OFFLOAD_LAYERWISE), plans[n++].resident_blocks = 2;
    plans[n] = options(FY_DEVICE_EMU, FY_OFFLOAD_SEQUENTIAL), plans[n].text_encoder_cpu_offload = true;
    plans[n++].vae_cpu_offload = true;
    plans[n] = options(FY_DEVICE_EMU, FY_OFFLOAD_NONE), plans[n++].vram_budget = 4 << 20;
    for (int i = 0; i < n; i++) {
        assert_int_equal(verify(DEV, NULL, &plans[i]), FY_OK);
        assert_int_equal(verify(SCHNELL, NULL, &plans[i]), FY_OK);
    }
}

/* fp8 storage: the transformer at the looser fp8 tolerance; the pipeline refuses. */
static void test_fp8_storage(void **state)
{
    (void)state;
    fy_run_options o = options(FY_DEVICE_EMU, FY_OFFLOAD_LAYERWISE);
    o.storage_dtype = FY_F8_E4M3;
    assert_int_equal(verify(DEV, "transformer", &o), FY_OK);
    assert_int_equal(verify(DEV, "pipeline", &o), FY_ERR_UNSUPPORTED);
}

static void test_unknown_component_names_flux_list(void **state)
{
    (void)state;
    assert_int_equal(fy_verify_run(DEV, FIXTURES, "unet", NULL, NULL), FY_ERR_INVALID);
    assert_non_null(strstr(fy_error_message(), "(valid: tokenizer, tokenizer_2, text_encoder"));
}

/* ---- the CLIP tokenizer beyond the fixtures ------------------------------------------- */

static fy_clip_tokenizer *load_clip(void)
{
    fy_clip_tokenizer *t = NULL;
    assert_int_equal(fy_clip_tokenizer_load(DEV "/tokenizer", &t), FY_OK);
    return t;
}

static void test_clip_special_tokens_in_text(void **state)
{
    (void)state;
    fy_clip_tokenizer *t = load_clip();
    int64_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(fy_clip_tokenizer_tokenize(t, "a<|endoftext|>a", &ids, &n), FY_OK);
    int64_t *plain = NULL;
    size_t np = 0;
    assert_int_equal(fy_clip_tokenizer_tokenize(t, "a", &plain, &np), FY_OK);
    assert_int_equal(np, 3);
    assert_int_equal(n, 5);
    assert_int_equal(ids[1], plain[1]);
    assert_int_equal(ids[2], fy_clip_tokenizer_eos_id(t));
    assert_int_equal(ids[3], plain[1]);
    free(ids);
    free(plain);
    fy_clip_tokenizer_free(t);
}

static void test_clip_truncation_and_padding(void **state)
{
    (void)state;
    fy_clip_tokenizer *t = load_clip();
    int64_t ids[8];
    int real = 0, dropped = 0;
    assert_int_equal(fy_clip_tokenizer_encode(t, "a b c d e f g h i j", 8, ids, &real, &dropped), FY_OK);
    assert_int_equal(real, 8);
    assert_int_equal(dropped, 4);
    assert_int_equal(ids[0], fy_clip_tokenizer_bos_id(t));
    assert_int_equal(ids[7], fy_clip_tokenizer_eos_id(t));
    assert_int_equal(fy_clip_tokenizer_encode(t, "", 8, ids, &real, &dropped), FY_OK);
    assert_int_equal(real, 2);
    assert_int_equal(ids[5], fy_clip_tokenizer_pad_id(t));
    assert_int_equal(fy_clip_tokenizer_encode(t, "x", 1, ids, NULL, NULL), FY_ERR_INVALID);
    fy_clip_tokenizer_free(t);
}

static void test_clip_bad_folders(void **state)
{
    (void)state;
    char *dir = fyt_temp_dir();
    assert_non_null(dir);
    fy_clip_tokenizer *t = NULL;
    assert_int_equal(fy_clip_tokenizer_load(dir, &t), FY_ERR_NOT_FOUND);
    assert_non_null(strstr(fy_error_message(), "vocab.json"));
    char *vocab = fyt_path(dir, "vocab.json"), *merges = fyt_path(dir, "merges.txt");
    assert_int_equal(fyt_write_file(vocab, "[1, 2]", 6), 0);
    assert_int_equal(fy_clip_tokenizer_load(dir, &t), FY_ERR_FORMAT);
    assert_non_null(strstr(fy_error_message(), "vocab.json"));
    const char *v = "{\"a\": 0, \"b\": 1, \"ab</w>\": 2, \"<|startoftext|>\": 3, \"<|endoftext|>\": 4}";
    assert_int_equal(fyt_write_file(vocab, v, strlen(v)), 0);
    assert_int_equal(fyt_write_file(merges, "#version: 0.2\na b c\n", 20), 0);
    assert_int_equal(fy_clip_tokenizer_load(dir, &t), FY_ERR_FORMAT);
    assert_non_null(strstr(fy_error_message(), "merges.txt: merge 1"));
    assert_null(t);
    free(vocab);
    free(merges);
    fyt_remove_tree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_cpu),
        cmocka_unit_test(test_text_emu_plans),
        cmocka_unit_test(test_transformer_cpu),
        cmocka_unit_test(test_transformer_emu_plans),
        cmocka_unit_test(test_everything_every_plan),
        cmocka_unit_test(test_fp8_storage),
        cmocka_unit_test(test_unknown_component_names_flux_list),
        cmocka_unit_test(test_clip_special_tokens_in_text),
        cmocka_unit_test(test_clip_truncation_and_padding),
        cmocka_unit_test(test_clip_bad_folders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
