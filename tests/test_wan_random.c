/* The random-weight Wan model (`ferry demo`'s): the folder it writes opens
 * as a WanPipeline, its tokenizer encodes with T5's ids, every loader takes
 * its weights (the device plan loads them all), the weights have the scales
 * asked for, the same seed gives the same bytes, and it never writes into or
 * cleans up a folder that holds something else. Needs no fixtures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ferry/config.h"
#include "ferry/dtype.h"
#include "ferry/error.h"
#include "ferry/model.h"
#include "ferry/safetensors.h"
#include "ferry/tokenizer.h"
#include "ferry/wan_random.h"
#include "ferry/wan_t2v.h"
#include "support/fyt.h"

static const char *const files[] = {
    "model_index.json",
    "scheduler/scheduler_config.json",
    "tokenizer/spiece.model",
    "tokenizer/tokenizer_config.json",
    "tokenizer/special_tokens_map.json",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "transformer/config.json",
    "transformer/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
};
#define FILE_COUNT (sizeof files / sizeof files[0])

static void assert_message(const char *needle)
{
    if (!strstr(fy_error_message(), needle)) fail_msg("message \"%s\" lacks \"%s\"", fy_error_message(), needle);
}

/* A new folder (inside a temp dir) holding the demo model with this seed. */
static char *demo_model(char **parent, uint64_t seed)
{
    *parent = fyt_temp_dir();
    assert_non_null(*parent);
    char *dir = fyt_path(*parent, "model");
    fy_wan_random_params p;
    assert_int_equal(fy_wan_random_preset("demo", &p), FY_OK);
    p.seed = seed;
    if (fy_wan_random_write(&p, dir) != FY_OK) fail_msg("%s", fy_error_message());
    return dir;
}

static void free_model(char *parent, char *dir)
{
    fyt_remove_tree(parent);
    free(parent);
    free(dir);
}

static void test_folder_opens_as_wan_pipeline(void **state)
{
    (void)state;
    char *parent, *dir = demo_model(&parent, 0);
    fy_model *m = NULL;
    assert_int_equal(fy_model_open(dir, &m), FY_OK);
    assert_string_equal(fy_model_class(m), "WanPipeline");
    fy_weight_stats ws;
    assert_int_equal(fy_component_stats(fy_model_component(m, "transformer"), &ws), FY_OK);
    assert_string_equal(ws.blocks.prefix, "blocks");
    assert_int_equal(ws.blocks.count, 8);
    assert_true(ws.params_by_dtype[FY_BF16] == ws.params);
    assert_int_equal(fy_component_stats(fy_model_component(m, "text_encoder"), &ws), FY_OK);
    assert_int_equal(ws.blocks.count, 2);
    const fy_component *sched = fy_model_component(m, "scheduler");
    double shift = 0;
    assert_int_equal(fy_config_double(sched->config, "flow_shift", &shift), FY_OK);
    assert_true(shift == 3.0);
    fy_model_free(m);
    free_model(parent, dir);
}

static void test_tokenizer_has_t5_ids(void **state)
{
    (void)state;
    char *parent, *dir = demo_model(&parent, 0);
    char *tok_dir = fyt_path(dir, "tokenizer");
    fy_tokenizer *tok = NULL;
    assert_int_equal(fy_tokenizer_load(tok_dir, &tok), FY_OK);
    assert_int_equal(fy_tokenizer_pad_id(tok), 0);
    assert_int_equal(fy_tokenizer_eos_id(tok), 1);
    int vocab = fy_tokenizer_vocab_size(tok);
    assert_true(vocab > 64 && vocab <= 384);

    int64_t ids[32], mask[32];
    int n_real = 0;
    assert_int_equal(fy_tokenizer_encode(tok, "A red fox runs through fresh snow", 32, ids, mask, &n_real, NULL), FY_OK);
    assert_true(n_real > 2 && n_real < 32);
    assert_int_equal(ids[n_real - 1], 1);
    assert_int_equal(ids[n_real], 0);
    for (int i = 0; i < n_real - 1; i++) assert_true(ids[i] > 2 && ids[i] < vocab); /* corpus words: no <unk> */

    /* The text encoder's embedding covers every id the tokenizer gives. */
    char *cfg_path = fyt_path(dir, "text_encoder/config.json");
    fy_config *cfg = NULL;
    int64_t te_vocab = 0;
    assert_int_equal(fy_config_load(cfg_path, &cfg), FY_OK);
    assert_int_equal(fy_config_int(cfg, "vocab_size", &te_vocab), FY_OK);
    assert_true(te_vocab >= vocab && te_vocab % 64 == 0);
    fy_config_free(cfg);
    free(cfg_path);
    fy_tokenizer_free(tok);
    free(tok_dir);
    free_model(parent, dir);
}

/* Loading every component into a device engine runs each loader's name and
 * shape checks against what was written. */
static void test_every_loader_takes_it(void **state)
{
    (void)state;
    char *parent, *dir = demo_model(&parent, 0);
    fy_wan_t2v_params p;
    fy_wan_t2v_params_init(&p);
    p.prompt = "a fox";
    p.height = 64;
    p.width = 96;
    p.num_frames = 17;
    p.steps = 2;
    p.max_sequence_length = 64;
    assert_int_equal(fy_wan_t2v_check(dir, &p), FY_OK);
    fy_run_options o;
    fy_run_options_init(&o);
    o.device = FY_DEVICE_EMU;
    o.offload = FY_OFFLOAD_LAYERWISE;
    fy_plan plan;
    if (fy_wan_t2v_device_plan(dir, &o, &p, &plan) != FY_OK) fail_msg("%s", fy_error_message());
    assert_int_equal(plan.policy, FY_OFFLOAD_LAYERWISE);
    assert_int_equal(plan.slots, 2);
    assert_true(plan.device_bound > plan.ring_bytes && plan.ring_bytes > 0);
    free_model(parent, dir);
}

static void tensor_moments(const fy_st_file *f, const char *name, double *mean, double *sd)
{
    const fy_st_info *t = fy_st_find(f, name);
    assert_non_null(t);
    assert_int_equal(t->dtype, FY_BF16);
    size_t n = (size_t)(t->nbytes / 2);
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) {
        double v = fy_bf16_to_f32(((const uint16_t *)t->data)[i]);
        assert_true(isfinite(v));
        s += v;
        s2 += v * v;
    }
    *mean = s / (double)n;
    *sd = sqrt(s2 / (double)n - *mean * *mean);
}

static void test_weight_scales(void **state)
{
    (void)state;
    char *parent, *dir = demo_model(&parent, 0);
    char *path = fyt_path(dir, "transformer/diffusion_pytorch_model.safetensors");
    fy_st_file *f = NULL;
    assert_int_equal(fy_st_open(path, &f), FY_OK);
    double mean, sd;
    tensor_moments(f, "blocks.3.ffn.net.2.weight", &mean, &sd); /* fan_in = ffn_dim 1536 */
    assert_true(fabs(mean) < 0.002);
    assert_true(fabs(sd - 1.0 / sqrt(1536.0)) < 0.05 / sqrt(1536.0));
    tensor_moments(f, "blocks.3.attn1.norm_q.weight", &mean, &sd);
    assert_true(mean == 1.0 && sd < 1e-6);
    fy_st_close(f);
    free(path);
    free_model(parent, dir);
}

static void test_same_seed_same_bytes(void **state)
{
    (void)state;
    char *pa, *a = demo_model(&pa, 7);
    char *pb, *b = demo_model(&pb, 7);
    char *pc, *c = demo_model(&pc, 8);
    for (size_t i = 0; i < FILE_COUNT; i++) {
        char *fa = fyt_path(a, files[i]), *fb = fyt_path(b, files[i]);
        size_t na = 0, nb = 0;
        void *da = fyt_read_file(fa, &na), *db = fyt_read_file(fb, &nb);
        assert_non_null(da);
        assert_non_null(db);
        if (na != nb || memcmp(da, db, na) != 0) fail_msg("%s differs between two writes with one seed", files[i]);
        free(da);
        free(db);
        free(fa);
        free(fb);
    }
    char *fa = fyt_path(a, files[8]), *fc = fyt_path(c, files[8]);
    size_t na = 0, nc = 0;
    void *da = fyt_read_file(fa, &na), *dc = fyt_read_file(fc, &nc);
    assert_true(na == nc && memcmp(da, dc, na) != 0);
    free(da);
    free(dc);
    free(fa);
    free(fc);
    free_model(pa, a);
    free_model(pb, b);
    free_model(pc, c);
}

/* A folder with anything in it is the user's: refused, left as it was; and
 * the remover takes only the writer's own files. */
static void test_never_touches_other_files(void **state)
{
    (void)state;
    char *dir = fyt_temp_dir();
    char *mine = fyt_path(dir, "notes.txt");
    assert_int_equal(fyt_write_file(mine, "keep", 4), 0);
    fy_wan_random_params p;
    assert_int_equal(fy_wan_random_preset("demo", &p), FY_OK);
    assert_int_equal(fy_wan_random_write(&p, dir), FY_ERR_INVALID);
    assert_message("not empty");
    assert_int_equal(fyt_count_files(dir), 1);

    char *model = fyt_path(dir, "model");
    assert_int_equal(fy_wan_random_write(&p, model), FY_OK);
    char *extra = fyt_path(model, "vae/mine.txt");
    assert_int_equal(fyt_write_file(extra, "x", 1), 0);
    fy_wan_random_remove(model);
    struct stat st;
    assert_int_equal(stat(extra, &st), 0);
    char *index = fyt_path(model, "model_index.json");
    assert_int_not_equal(stat(index, &st), 0);
    fy_wan_random_remove(model); /* twice is harmless */

    free(index);
    free(extra);
    free(model);
    free(mine);
    fyt_remove_tree(dir);
    free(dir);
}

static void test_presets(void **state)
{
    (void)state;
    fy_wan_random_params p;
    assert_int_equal(fy_wan_random_preset("wan2.1-1.3b", &p), FY_OK);
    assert_int_equal(p.dit_layers, 30);
    assert_int_equal(p.dit_heads * p.dit_head_dim, 1536);
    assert_int_equal(p.dit_ffn_dim, 8960);
    assert_int_equal(p.te_d_model, 4096);
    assert_int_equal(p.te_vocab, 256384);
    assert_int_equal(fy_wan_random_preset("wan2.1-14b", &p), FY_OK);
    assert_int_equal(p.dit_heads * p.dit_head_dim, 5120);
    assert_int_equal(p.dit_layers, 40);
    assert_true(p.boundary_ratio == 0);
    assert_int_equal(fy_wan_random_preset("wan2.2-a14b", &p), FY_OK);
    assert_int_equal(p.dit_heads * p.dit_head_dim, 5120);
    assert_true(p.boundary_ratio == 0.875);
    assert_int_equal(fy_wan_random_preset("wan9", &p), FY_ERR_INVALID);
    assert_message("demo, wan2.1-1.3b, wan2.1-14b");

    assert_int_equal(fy_wan_random_preset("demo", &p), FY_OK);
    p.dit_head_dim = 33;
    char *dir = fyt_temp_dir();
    assert_int_equal(fy_wan_random_write(&p, dir), FY_ERR_INVALID);
    assert_message("even");
    assert_int_equal(fyt_count_files(dir), 0);
    fyt_remove_tree(dir);
    free(dir);
}

/* ---- the generated-tensor writer ----------------------------------------- */

static fy_status fill_index(void *user, uint64_t offset, void *dst, size_t nbytes)
{
    (void)user;
    for (size_t i = 0; i < nbytes / 4; i++) ((float *)dst)[i] = (float)(offset / 4 + i);
    return FY_OK;
}

static fy_status fill_fails(void *user, uint64_t offset, void *dst, size_t nbytes)
{
    (void)user, (void)offset, (void)dst, (void)nbytes;
    return fy_error(FY_ERR_IO, "no more numbers");
}

static void test_writer_generated_tensors(void **state)
{
    (void)state;
    char *dir = fyt_temp_dir();
    char *path = fyt_path(dir, "g.safetensors");
    /* 3 Mi floats: more than one fill chunk. */
    int64_t shape[2] = {3, 1 << 20};
    float small[2] = {5, 6};
    int64_t two = 2;
    fy_st_writer *w = NULL;
    assert_int_equal(fy_st_writer_create(&w), FY_OK);
    assert_int_equal(fy_st_writer_add(w, "a", FY_F32, 1, &two, small, sizeof small), FY_OK);
    assert_int_equal(fy_st_writer_add_generated(w, "b", FY_F32, 2, shape, fill_index, NULL), FY_OK);
    assert_int_equal(fy_st_writer_add_generated(w, "c", FY_F32, 2, shape, NULL, NULL), FY_ERR_INVALID);
    assert_int_equal(fy_st_writer_finish(w, path), FY_OK);
    fy_st_writer_free(w);

    fy_st_file *f = NULL;
    assert_int_equal(fy_st_open(path, &f), FY_OK);
    const fy_st_info *b = fy_st_find(f, "b");
    assert_non_null(b);
    const float *v = b->data;
    for (int64_t i = 0; i < shape[0] * shape[1]; i += 4099) assert_true(v[i] == (float)i);
    assert_true(v[shape[0] * shape[1] - 1] == (float)(shape[0] * shape[1] - 1));
    assert_true(((const float *)fy_st_find(f, "a")->data)[1] == 6.0f);
    fy_st_close(f);

    char *bad = fyt_path(dir, "bad.safetensors");
    assert_int_equal(fy_st_writer_create(&w), FY_OK);
    assert_int_equal(fy_st_writer_add_generated(w, "x", FY_F32, 2, shape, fill_fails, NULL), FY_OK);
    assert_int_equal(fy_st_writer_finish(w, bad), FY_ERR_IO);
    assert_message("no more numbers");
    fy_st_writer_free(w);
    assert_int_equal(fyt_count_files(dir), 1); /* no bad.safetensors, no temp file */

    free(bad);
    free(path);
    fyt_remove_tree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_folder_opens_as_wan_pipeline),
        cmocka_unit_test(test_tokenizer_has_t5_ids),
        cmocka_unit_test(test_every_loader_takes_it),
        cmocka_unit_test(test_weight_scales),
        cmocka_unit_test(test_same_seed_same_bytes),
        cmocka_unit_test(test_never_touches_other_files),
        cmocka_unit_test(test_presets),
        cmocka_unit_test(test_writer_generated_tensors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
