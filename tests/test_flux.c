/* Flux.1: every component `ferry verify` knows for a FluxPipeline folder,
 * on the golden fixtures (FLUX.1-dev-shaped model/ and model-schnell/), on
 * the CPU and on the emulated device under every offload plan; and the CLIP
 * tokenizer's behaviour the fixtures do not show. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ferry/clip_tokenizer.h"
#include "ferry/dtype.h"
#include "ferry/flux_t2i.h"
#include "ferry/safetensors.h"
#include "ferry/tensor.h"
#include "ferry/options.h"
#include "verify/verify.h"
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

/* ---- bf16 weights (the real checkpoints' dtype) ---------------------------------------- */

static void round_file(const char *src, const char *dst, bool as_bf16)
{
    fy_st_file *f = NULL;
    assert_int_equal(fy_st_open(src, &f), FY_OK);
    fy_st_writer *w = NULL;
    assert_int_equal(fy_st_writer_create(&w), FY_OK);
    size_t n = fy_st_count(f);
    void **keep = calloc(n, sizeof *keep);
    for (size_t i = 0; i < n; i++) {
        const fy_st_info *info = fy_st_at(f, i);
        fy_tensor v, f32;
        assert_int_equal(fy_st_view(f, info->name, &v), FY_OK);
        assert_int_equal(fy_tensor_to_f32(&v, &f32), FY_OK);
        size_t count = (size_t)fy_tensor_numel(&f32);
        uint16_t *b = malloc(count * 2);
        assert_int_equal(fy_convert(b, FY_BF16, f32.data, FY_F32, count), FY_OK);
        if (as_bf16) {
            keep[i] = b;
            assert_int_equal(fy_st_writer_add(w, info->name, FY_BF16, v.ndim, v.shape, b, count * 2), FY_OK);
        } else {
            float *r = malloc(count * sizeof *r);
            assert_int_equal(fy_convert(r, FY_F32, b, FY_BF16, count), FY_OK);
            free(b);
            keep[i] = r;
            assert_int_equal(fy_st_writer_add(w, info->name, FY_F32, v.ndim, v.shape, r, count * 4), FY_OK);
        }
        fy_tensor_free(&f32);
    }
    assert_int_equal(fy_st_writer_finish(w, dst), FY_OK);
    fy_st_writer_free(w);
    for (size_t i = 0; i < n; i++) free(keep[i]);
    free(keep);
    fy_st_close(f);
}

/* Copies model/ into dir with every weight rounded to bf16, stored as bf16
 * (as_bf16) or as those values in f32; other files are linked. */
static void copy_rounded(const char *model, const char *dir, bool as_bf16)
{
    DIR *top = opendir(model);
    assert_non_null(top);
    for (struct dirent *c; (c = readdir(top));) {
        if (c->d_name[0] == '.') continue;
        char *src = fyt_path(model, c->d_name), *dst = fyt_path(dir, c->d_name);
        struct stat st;
        assert_int_equal(stat(src, &st), 0);
        if (!S_ISDIR(st.st_mode)) {
            assert_int_equal(symlink(src, dst), 0);
        } else {
            assert_int_equal(mkdir(dst, 0755), 0);
            DIR *sub = opendir(src);
            assert_non_null(sub);
            for (struct dirent *f; (f = readdir(sub));) {
                if (f->d_name[0] == '.') continue;
                char *fs = fyt_path(src, f->d_name), *fd = fyt_path(dst, f->d_name);
                size_t len = strlen(f->d_name);
                if (len > 12 && !strcmp(f->d_name + len - 12, ".safetensors")) round_file(fs, fd, as_bf16);
                else assert_int_equal(symlink(fs, fd), 0);
                free(fs);
                free(fd);
            }
            closedir(sub);
        }
        free(src);
        free(dst);
    }
    closedir(top);
}

static float *generate(const char *model, fy_device_kind device)
{
    fy_run_options o = options(device, device == FY_DEVICE_EMU ? FY_OFFLOAD_LAYERWISE : FY_OFFLOAD_NONE);
    fy_flux_params p;
    fy_flux_params_init(&p);
    p.prompt = "a red fox sitting in the snow";
    p.height = 48, p.width = 64, p.steps = 2, p.max_sequence_length = 16, p.seed = 3;
    fy_flux_result r;
    fy_status s = fy_flux_t2i_run(model, &o, &p, &r);
    if (s != FY_OK) print_message("generate: %s\n", fy_error_message());
    assert_int_equal(s, FY_OK);
    return r.image;
}

/* bf16 weights give the image their f32-stored values give (the ops
 * convert exactly), on the CPU and streamed on emu. */
static void test_bf16_weights(void **state)
{
    (void)state;
    char *tmp = fyt_temp_dir();
    char *a = fyt_path(tmp, "bf16"), *b = fyt_path(tmp, "f32");
    assert_int_equal(mkdir(a, 0755), 0);
    assert_int_equal(mkdir(b, 0755), 0);
    copy_rounded(DEV, a, true);
    copy_rounded(DEV, b, false);
    size_t n = 48 * 64 * 3;
    float *ref = generate(b, FY_DEVICE_CPU);
    for (int d = 0; d < 2; d++) {
        float *img = generate(a, d ? FY_DEVICE_EMU : FY_DEVICE_CPU);
        double worst = 0.0;
        for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)img[i] - ref[i]));
        print_message("bf16 vs f32-stored, %s: max |diff| %.3g\n", d ? "emu" : "cpu", worst);
        assert_true(worst <= 1e-5);
        free(img);
    }
    free(ref);
    fyt_remove_tree(tmp);
    free(a);
    free(b);
    free(tmp);
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
        cmocka_unit_test(test_bf16_weights),
        cmocka_unit_test(test_unknown_component_names_flux_list),
        cmocka_unit_test(test_clip_special_tokens_in_text),
        cmocka_unit_test(test_clip_truncation_and_padding),
        cmocka_unit_test(test_clip_bad_folders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
