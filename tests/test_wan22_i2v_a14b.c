/* Wan2.2 I2V-A14B folders (WanImageToVideoPipeline with transformer_2 and
 * boundary_ratio, no image encoder: the transformers have no image_dim)
 * built here from wan-i2v-tiny's parts, the second expert's weights a copy
 * with one value changed. No golden fixture exists for them, so the expert
 * wiring is checked exactly: a boundary no step reaches runs transformer_2
 * alone and gives the video of a one-transformer folder holding its
 * weights, a boundary every step passes gives transformer's; a split runs
 * both, with --guidance-scale-2 on the low-noise steps only; cpu and emu
 * plans give the same bytes; a transformer_2 that disagrees is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ferry/options.h"
#include "ferry/safetensors.h"
#include "ferry/wan_t2v.h"
#include "support/fyt.h"

#define I2V FERRY_FIXTURES_DIR "/wan-i2v-tiny"
#define IMAGE I2V "/fixtures/image_other.png"
#define WEIGHTS I2V "/model/transformer/diffusion_pytorch_model.safetensors"

/* wan-i2v-tiny's transformer without its image embedder, as Wan2.2's
 * I2V experts are (image_dim null). */
static const char dit_config[] =
    "{\"_class_name\": \"WanTransformer3DModel\", \"added_kv_proj_dim\": null, \"attention_head_dim\": 24, "
    "\"cross_attn_norm\": true, \"eps\": 1e-06, \"ffn_dim\": 96, \"freq_dim\": 32, \"image_dim\": null, "
    "\"in_channels\": 36, \"num_attention_heads\": 2, \"num_layers\": 2, \"out_channels\": 16, "
    "\"patch_size\": [1, 2, 2], \"pos_embed_seq_len\": null, \"qk_norm\": \"rms_norm_across_heads\", "
    "\"rope_max_seq_len\": 1024, \"text_dim\": 32}";

static char *root;     /* the test's temporary folder */
static char *weights2; /* transformer_2's weights: proj_out.bias[0] moved */

static void write_text(const char *dir, const char *name, const char *text)
{
    char *path = fyt_path(dir, name);
    assert_int_equal(fyt_write_file(path, text, strlen(text)), 0);
    free(path);
}

static void link_to(const char *target, const char *dir, const char *name)
{
    char *path = fyt_path(dir, name);
    assert_int_equal(symlink(target, path), 0);
    free(path);
}

static void expert_dir(const char *model, const char *name, const char *weights, const char *config)
{
    char *dir = fyt_path(model, name);
    assert_int_equal(mkdir(dir, 0755), 0);
    write_text(dir, "config.json", config);
    link_to(weights, dir, "diffusion_pytorch_model.safetensors");
    free(dir);
}

/* A WanImageToVideoPipeline folder: `weights` as transformer, and with
 * weights_2 a transformer_2 and this boundary_ratio. */
static char *make_folder(const char *name, const char *weights, const char *weights_2, const char *boundary,
                         const char *config_2)
{
    char *model = fyt_path(root, name);
    assert_int_equal(mkdir(model, 0755), 0);
    static const char *const shared[] = {"scheduler", "text_encoder", "tokenizer", "vae"};
    for (int i = 0; i < 4; i++) {
        char target[512];
        snprintf(target, sizeof target, "%s/model/%s", I2V, shared[i]);
        link_to(target, model, shared[i]);
    }
    expert_dir(model, "transformer", weights, dit_config);
    char index[1024];
    snprintf(index, sizeof index,
             "{\"_class_name\": \"WanImageToVideoPipeline\", \"boundary_ratio\": %s, \"expand_timesteps\": false, "
             "\"image_encoder\": [null, null], \"image_processor\": [null, null], "
             "\"scheduler\": [\"diffusers\", \"UniPCMultistepScheduler\"], "
             "\"text_encoder\": [\"transformers\", \"UMT5EncoderModel\"], \"tokenizer\": [\"transformers\", "
             "\"T5Tokenizer\"], \"transformer\": [\"diffusers\", \"WanTransformer3DModel\"], "
             "\"transformer_2\": %s, \"vae\": [\"diffusers\", \"AutoencoderKLWan\"]}",
             weights_2 ? boundary : "null",
             weights_2 ? "[\"diffusers\", \"WanTransformer3DModel\"]" : "[null, null]");
    write_text(model, "model_index.json", index);
    if (weights_2) expert_dir(model, "transformer_2", weights_2, config_2 ? config_2 : dit_config);
    return model;
}

/* A copy of the weights with proj_out.bias[0] + 0.25: another expert. */
static char *other_weights(void)
{
    fy_st_file *f = NULL;
    assert_int_equal(fy_st_open(WEIGHTS, &f), FY_OK);
    const fy_st_info *bias = fy_st_find(f, "proj_out.bias");
    assert_non_null(bias);
    uint64_t offset = bias->offset;
    fy_st_close(f);
    size_t n = 0;
    uint8_t *bytes = fyt_read_file(WEIGHTS, &n);
    assert_non_null(bytes);
    uint64_t header = 0;
    for (int i = 7; i >= 0; i--) header = header << 8 | bytes[i];
    float v;
    memcpy(&v, bytes + 8 + header + offset, sizeof v);
    v += 0.25f;
    memcpy(bytes + 8 + header + offset, &v, sizeof v);
    char *path = fyt_path(root, "expert2.safetensors");
    assert_int_equal(fyt_write_file(path, bytes, n), 0);
    free(bytes);
    return path;
}

static int setup(void **state)
{
    (void)state;
    root = fyt_temp_dir();
    if (!root) return -1;
    weights2 = other_weights();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fyt_remove_tree(root);
    free(root);
    free(weights2);
    return 0;
}

static void request(fy_wan_t2v_params *p)
{
    fy_wan_t2v_params_init(p);
    p->prompt = "a fox";
    p->image = IMAGE;
    p->height = 32;
    p->width = 48;
    p->num_frames = 9;
    p->steps = 4;
    p->max_sequence_length = 16;
    p->seed = 5;
}

static fy_run_options cpu(void)
{
    fy_run_options o;
    fy_run_options_init(&o);
    o.threads = 2;
    return o;
}

static size_t video_bytes(const fy_wan_t2v_result *r)
{
    return (size_t)(r->frames * r->height * r->width * 3) * sizeof(float);
}

static void run_ok(const char *model, const fy_run_options *o, const fy_wan_t2v_params *p, fy_wan_t2v_result *r)
{
    fy_status s = fy_wan_t2v_run(model, o, p, NULL, r);
    if (s != FY_OK) fail_msg("%s: %s", model, fy_error_message());
}

static void test_experts_by_boundary(void **state)
{
    (void)state;
    char *one_a = make_folder("one_a", WEIGHTS, NULL, NULL, NULL);
    char *one_b = make_folder("one_b", weights2, NULL, NULL, NULL);
    char *high = make_folder("all_high", WEIGHTS, weights2, "0.0", NULL);
    char *low = make_folder("all_low", WEIGHTS, weights2, "1.0", NULL);
    char *split = make_folder("split", WEIGHTS, weights2, "0.875", NULL);
    fy_wan_t2v_params p;
    request(&p);
    fy_run_options o = cpu();
    fy_wan_t2v_result a, b, h, l, s;
    run_ok(one_a, &o, &p, &a);
    run_ok(one_b, &o, &p, &b);
    run_ok(high, &o, &p, &h);
    run_ok(low, &o, &p, &l);
    run_ok(split, &o, &p, &s);
    size_t n = video_bytes(&a);
    assert_memory_not_equal(a.video, b.video, n);
    assert_memory_equal(h.video, a.video, n);
    assert_memory_equal(l.video, b.video, n);
    assert_int_equal(h.report.expert_steps[0], 4);
    assert_int_equal(l.report.expert_steps[1], 4);
    assert_true(s.report.expert_steps[0] > 0 && s.report.expert_steps[1] > 0);
    assert_int_equal(s.report.switch_step, s.report.expert_steps[0]);
    assert_memory_not_equal(s.video, a.video, n);
    assert_memory_not_equal(s.video, b.video, n);

    /* --guidance-scale-2 is the low-noise steps' scale: all high, no change. */
    p.guidance_scale_2 = 2.0;
    fy_wan_t2v_result h2, s2;
    run_ok(high, &o, &p, &h2);
    run_ok(split, &o, &p, &s2);
    assert_memory_equal(h2.video, a.video, n);
    assert_memory_not_equal(s2.video, s.video, n);

    fy_wan_t2v_result *all[] = {&a, &b, &h, &l, &s, &h2, &s2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) fy_wan_t2v_result_free(all[i]);
    free(one_a);
    free(one_b);
    free(high);
    free(low);
    free(split);
}

static fy_run_options emu(fy_offload_policy policy)
{
    fy_run_options o = cpu();
    o.device = FY_DEVICE_EMU;
    o.offload = policy;
    o.max_memory[0] = 8ull << 20;
    return o;
}

static void test_plans_same_bytes(void **state)
{
    (void)state;
    char *split = make_folder("split_plans", WEIGHTS, weights2, "0.875", NULL);
    fy_run_options cases[5] = {emu(FY_OFFLOAD_NONE), emu(FY_OFFLOAD_SEQUENTIAL), emu(FY_OFFLOAD_LAYERWISE),
                               emu(FY_OFFLOAD_LAYERWISE), emu(FY_OFFLOAD_GROUP)};
    cases[3].vram_budget = 3ull << 20;
    cases[4].num_blocks_per_group = 2;
    cases[4].vae_cpu_offload = true;
    fy_wan_t2v_params p;
    request(&p);
    fy_run_options o = cpu();
    fy_wan_t2v_result ref;
    run_ok(split, &o, &p, &ref);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fy_wan_t2v_result r;
        run_ok(split, &cases[i], &p, &r);
        assert_memory_equal(r.video, ref.video, video_bytes(&ref));
        assert_true(r.report.switch_step > 0);
        fy_wan_t2v_result_free(&r);
    }
    fy_wan_t2v_result_free(&ref);
    free(split);
}

/* Experts that read different inputs, or an image encoder the folder lacks. */
static void test_refusals(void **state)
{
    (void)state;
    char config_2[sizeof dit_config + 16];
    snprintf(config_2, sizeof config_2, "%s", dit_config);
    char *at = strstr(config_2, "\"in_channels\": 36");
    assert_non_null(at);
    memcpy(at, "\"in_channels\": 16", 17);
    char *bad = make_folder("bad_expert", WEIGHTS, weights2, "0.875", config_2);
    fy_wan_t2v_params p;
    request(&p);
    assert_int_equal(fy_wan_t2v_check(bad, &p), FY_ERR_FORMAT);
    assert_non_null(strstr(fy_error_message(), "in_channels"));
    p.image = NULL;
    char *split = make_folder("split_refusals", WEIGHTS, weights2, "0.875", NULL);
    assert_int_equal(fy_wan_t2v_check(split, &p), FY_ERR_INVALID);
    assert_non_null(strstr(fy_error_message(), "--image"));
    free(bad);
    free(split);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_experts_by_boundary),
        cmocka_unit_test(test_plans_same_bytes),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
