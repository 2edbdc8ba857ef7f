/* The whole Wan text-to-video pipeline against pipeline.safetensors: prompt
 * ids and embeddings, every step's predictions and latents, the video — on
 * the CPU and on the emulated device under every memory option of
 * `ferry generate`, with a device budget below the model's weights. Also:
 * bad requests fail before any work, and a stop request ends the run cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "ferry/options.h"
#include "ferry/wan_t2v.h"
#include "verify/verify.h"

#define MODEL_DIR FERRY_FIXTURES_DIR "/wan-tiny/model"
#define FIXTURE_DIR FERRY_FIXTURES_DIR "/wan-tiny/fixtures"

/* Below the tiny model's 1.2 MiB of weights plus activations for `none`. */
#define TIGHT_BUDGET (1200ull * 1024)

static void verify_pipeline(const fy_run_options *o)
{
    FILE *out = tmpfile();
    assert_non_null(out);
    fy_status s = fy_verify_run(MODEL_DIR, FIXTURE_DIR, "pipeline", o, out);
    if (s != FY_OK) {
        rewind(out);
        char line[256];
        while (fgets(line, sizeof line, out)) fputs(line, stderr);
        fprintf(stderr, "%s\n", fy_error_message());
    }
    fclose(out);
    assert_int_equal(s, FY_OK);
}

static void test_cpu(void **state)
{
    (void)state;
    fy_run_options o;
    fy_run_options_init(&o);
    verify_pipeline(&o);
    o.cfg_batch = false;
    verify_pipeline(&o);
}

static void emu_options(fy_run_options *o, fy_offload_policy policy)
{
    fy_run_options_init(o);
    o->device = FY_DEVICE_EMU;
    o->offload = policy;
    o->max_memory[0] = 8ull << 20;
}

static void test_emu_every_plan(void **state)
{
    (void)state;
    fy_run_options o;
    fy_offload_policy plans[] = {FY_OFFLOAD_NONE, FY_OFFLOAD_MODEL, FY_OFFLOAD_SEQUENTIAL, FY_OFFLOAD_GROUP,
                                 FY_OFFLOAD_LAYERWISE};
    for (size_t i = 0; i < sizeof plans / sizeof plans[0]; i++) {
        emu_options(&o, plans[i]);
        if (plans[i] == FY_OFFLOAD_GROUP) o.num_blocks_per_group = 2;
        verify_pipeline(&o);
    }
    emu_options(&o, FY_OFFLOAD_GROUP);
    o.num_blocks_per_group = 2;
    o.use_stream = true;
    verify_pipeline(&o);
    emu_options(&o, FY_OFFLOAD_LAYERWISE);
    o.prefetch_depth = 2;
    o.resident_blocks = 1;
    verify_pipeline(&o);
    emu_options(&o, FY_OFFLOAD_LAYERWISE);
    o.low_cpu_mem_usage = true;
    o.cfg_batch = false;
    verify_pipeline(&o);
    emu_options(&o, FY_OFFLOAD_LAYERWISE);
    o.text_encoder_cpu_offload = true;
    o.vae_cpu_offload = true;
    o.vae_slicing = true;
    verify_pipeline(&o);
}

static void test_sequential_under_the_weights(void **state)
{
    (void)state;
    /* Streaming one block at a time with the text encoder and VAE on the
     * host fits a budget smaller than the model. */
    fy_run_options o;
    emu_options(&o, FY_OFFLOAD_SEQUENTIAL);
    o.text_encoder_cpu_offload = true;
    o.vae_cpu_offload = true;
    o.max_memory[0] = TIGHT_BUDGET;
    verify_pipeline(&o);
}

static void small_request(fy_wan_t2v_params *p)
{
    fy_wan_t2v_params_init(p);
    p->prompt = "a fox";
    p->height = 32;
    p->width = 48;
    p->num_frames = 9;
    p->steps = 3;
    p->max_sequence_length = 16;
}

static void test_bad_requests_fail_before_work(void **state)
{
    (void)state;
    fy_wan_t2v_params p;
    small_request(&p);
    p.height = 40;
    assert_int_equal(fy_wan_t2v_check(MODEL_DIR, &p), FY_ERR_INVALID);
    assert_non_null(strstr(fy_error_message(), "multiples of 16"));
    small_request(&p);
    p.num_frames = 10; /* diffusers rounds it to 9, with a warning */
    assert_int_equal(fy_wan_t2v_check(MODEL_DIR, &p), FY_OK);
    p.num_frames = 0;
    assert_int_equal(fy_wan_t2v_check(MODEL_DIR, &p), FY_ERR_INVALID);
    assert_non_null(strstr(fy_error_message(), "--num-frames 0"));
    small_request(&p);
    assert_int_equal(fy_wan_t2v_check(MODEL_DIR "/vae", &p), FY_ERR_NOT_FOUND);
    small_request(&p);
    fy_run_options o;
    emu_options(&o, FY_OFFLOAD_LAYERWISE);
    o.max_memory[0] = 4096;
    fy_wan_t2v_result r;
    assert_int_equal(fy_wan_t2v_run(MODEL_DIR, &o, &p, NULL, &r), FY_ERR_BUDGET);
    assert_null(r.video);
    assert_non_null(strstr(fy_error_message(), "fits"));
}

static int steps_seen;

static void count_step(void *user, int i, int n, double seconds)
{
    (void)user;
    (void)i;
    (void)n;
    (void)seconds;
    steps_seen++;
}

static bool stop_after_one(void *user)
{
    (void)user;
    return steps_seen >= 1;
}

static void test_stop_between_steps(void **state)
{
    (void)state;
    fy_wan_t2v_params p;
    small_request(&p);
    fy_run_options o;
    fy_run_options_init(&o);
    fy_wan_t2v_hooks hooks = {0};
    hooks.step = count_step;
    hooks.should_stop = stop_after_one;
    fy_wan_t2v_result r;
    steps_seen = 0;
    assert_int_equal(fy_wan_t2v_run(MODEL_DIR, &o, &p, &hooks, &r), FY_ERR_INTERRUPTED);
    assert_int_equal(steps_seen, 1);
    assert_null(r.video);
}

static void test_seeded_run_is_reproducible(void **state)
{
    (void)state;
    fy_wan_t2v_params p;
    small_request(&p);
    p.seed = 42;
    fy_run_options o;
    fy_run_options_init(&o);
    fy_wan_t2v_result a, b;
    assert_int_equal(fy_wan_t2v_run(MODEL_DIR, &o, &p, NULL, &a), FY_OK);
    emu_options(&o, FY_OFFLOAD_LAYERWISE);
    assert_int_equal(fy_wan_t2v_run(MODEL_DIR, &o, &p, NULL, &b), FY_OK);
    assert_int_equal(a.frames, 9);
    assert_int_equal(a.height, 32);
    assert_int_equal(a.width, 48);
    size_t n = (size_t)(a.frames * a.height * a.width * 3);
    assert_memory_equal(a.video, b.video, n * sizeof(float));
    assert_true(b.report.engine.bytes_uploaded > 0);
    fy_wan_t2v_result_free(&a);
    fy_wan_t2v_result_free(&b);
}

/* Half the tiny model's weights (text encoder, transformer, vae files). */
#define HALF_MODEL_HOST (650ull * 1000)

/* --max-memory cpu at half the model's bytes: blocks come from disk, the
 * video is bit-identical to the all-in-RAM run and matches the fixtures. */
static void test_disk_tier_half_host_budget(void **state)
{
    (void)state;
    fy_wan_t2v_params p;
    small_request(&p);
    p.seed = 7;
    fy_run_options cases[3];
    fy_run_options_init(&cases[0]);
    emu_options(&cases[1], FY_OFFLOAD_LAYERWISE);
    emu_options(&cases[2], FY_OFFLOAD_SEQUENTIAL);
    cases[2].text_encoder_cpu_offload = true;
    /* The device engine without the text encoder streams 618 KiB of blocks. */
    uint64_t budget[3] = {HALF_MODEL_HOST, HALF_MODEL_HOST, 300ull * 1000};
    for (int i = 0; i < 3; i++) {
        fy_run_options o = cases[i];
        fy_wan_t2v_result ram, disk;
        assert_int_equal(fy_wan_t2v_run(MODEL_DIR, &o, &p, NULL, &ram), FY_OK);
        assert_int_equal(ram.report.engine.disk_groups, 0);
        o.max_memory_cpu = budget[i];
        assert_int_equal(fy_wan_t2v_run(MODEL_DIR, &o, &p, NULL, &disk), FY_OK);
        assert_true(disk.report.engine.disk_groups > 0);
        assert_true(disk.report.engine.disk_bytes_read > 0);
        assert_true(disk.report.engine.host_bound <= budget[i]);
        assert_true(disk.report.first_step_s > 0);
        size_t n = (size_t)(ram.frames * ram.height * ram.width * 3);
        assert_memory_equal(ram.video, disk.video, n * sizeof(float));
        fy_wan_t2v_result_free(&ram);
        fy_wan_t2v_result_free(&disk);
        verify_pipeline(&o);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu),
        cmocka_unit_test(test_emu_every_plan),
        cmocka_unit_test(test_sequential_under_the_weights),
        cmocka_unit_test(test_bad_requests_fail_before_work),
        cmocka_unit_test(test_stop_between_steps),
        cmocka_unit_test(test_seeded_run_is_reproducible),
        cmocka_unit_test(test_disk_tier_half_host_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
