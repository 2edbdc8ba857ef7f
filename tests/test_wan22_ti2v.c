/* Wan2.2 TI2V-5B in text-to-video mode against wan22-ti2v-tiny: every
 * component and the pipeline (expand_timesteps: every token at the step's
 * t; the Wan2.2 VAE; its 48-value latents mean / std) on the CPU and on the
 * emulated device under every plan; diffusers' size rounding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/options.h"
#include "ferry/wan_t2v.h"
#include "verify/verify.h"

#define TI2V FERRY_FIXTURES_DIR "/wan22-ti2v-tiny"
#define MODEL_DIR TI2V "/model"
#define FIXTURE_DIR TI2V "/fixtures"

static void verify(const char *components, const fy_run_options *o)
{
    FILE *out = tmpfile();
    assert_non_null(out);
    fy_status s = fy_verify_run(MODEL_DIR, FIXTURE_DIR, components, o, out);
    if (s != FY_OK) {
        rewind(out);
        char line[256];
        while (fgets(line, sizeof line, out)) fputs(line, stderr);
        fprintf(stderr, "%s\n", fy_error_message());
    }
    fclose(out);
    assert_int_equal(s, FY_OK);
}

static void emu_options(fy_run_options *o, fy_offload_policy policy)
{
    fy_run_options_init(o);
    o->device = FY_DEVICE_EMU;
    o->threads = 2;
    o->offload = policy;
    o->max_memory[0] = 8ull << 20;
}

static void test_every_component_on_cpu(void **state)
{
    (void)state;
    fy_run_options o;
    fy_run_options_init(&o);
    o.threads = 2;
    verify(NULL, &o);
    o.cfg_batch = false;
    verify("pipeline", &o);
}

static void test_pipeline_every_plan_emu(void **state)
{
    (void)state;
    fy_run_options o;
    fy_offload_policy plans[] = {FY_OFFLOAD_NONE, FY_OFFLOAD_MODEL, FY_OFFLOAD_SEQUENTIAL, FY_OFFLOAD_GROUP,
                                 FY_OFFLOAD_LAYERWISE};
    for (size_t i = 0; i < sizeof plans / sizeof plans[0]; i++) {
        emu_options(&o, plans[i]);
        if (plans[i] == FY_OFFLOAD_GROUP) o.num_blocks_per_group = 2;
        verify("pipeline", &o);
    }
    emu_options(&o, FY_OFFLOAD_LAYERWISE);
    o.prefetch_depth = 2;
    o.resident_blocks = 1;
    o.cfg_batch = false;
    verify("pipeline", &o);
    emu_options(&o, FY_OFFLOAD_LAYERWISE);
    o.text_encoder_cpu_offload = true;
    o.vae_cpu_offload = true;
    verify("pipeline", &o);
    emu_options(&o, FY_OFFLOAD_LAYERWISE);
    o.vram_budget = 4ull << 20;
    verify("pipeline", &o);
    emu_options(&o, FY_OFFLOAD_LAYERWISE);
    o.vae_tiling = true; /* tiles of 256 patches cover the fixture's frames: the untiled decode */
    verify("pipeline", &o);
}

static void request(fy_wan_t2v_params *p, int height, int width, int frames)
{
    fy_wan_t2v_params_init(p);
    p->prompt = "a fox";
    p->height = height;
    p->width = width;
    p->num_frames = frames;
    p->steps = 2;
    p->max_sequence_length = 16;
}

/* Multiples of 16 are required; then rounded to the VAE's 16 x the patch's
 * 2 (a plan shows the rounded latents); frames to 4k + 1. */
static void test_size_rounding(void **state)
{
    (void)state;
    fy_wan_t2v_params p;
    request(&p, 48, 80, 8);
    assert_int_equal(fy_wan_t2v_check(MODEL_DIR, &p), FY_OK);
    request(&p, 40, 64, 5);
    assert_int_equal(fy_wan_t2v_check(MODEL_DIR, &p), FY_ERR_INVALID);
    assert_non_null(strstr(fy_error_message(), "multiples of 16"));
    request(&p, 16, 64, 5); /* below one 32-pixel patch */
    assert_int_equal(fy_wan_t2v_check(MODEL_DIR, &p), FY_ERR_INVALID);
    assert_non_null(strstr(fy_error_message(), "--height 32"));

    fy_run_options o;
    emu_options(&o, FY_OFFLOAD_LAYERWISE);
    fy_plan rounded, exact;
    request(&p, 48, 80, 8);
    assert_int_equal(fy_wan_t2v_device_plan(MODEL_DIR, &o, &p, &rounded), FY_OK);
    request(&p, 32, 64, 9);
    assert_int_equal(fy_wan_t2v_device_plan(MODEL_DIR, &o, &p, &exact), FY_OK);
    assert_int_equal(rounded.activation_bytes, exact.activation_bytes);
    assert_int_equal(rounded.device_bound, exact.device_bound);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_component_on_cpu),
        cmocka_unit_test(test_pipeline_every_plan_emu),
        cmocka_unit_test(test_size_rounding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
