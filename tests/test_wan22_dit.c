/* The Wan DiT with Wan2.2's per-token timesteps (expand_timesteps) against
 * wan22-ti2v-tiny: `ferry verify --component transformer` (per-token,
 * uniform and scalar timesteps, every intermediate) on the CPU and on the
 * emulated device under every plan with a budget of exactly the plan's
 * bound; runs of equal timesteps split across row chunks give the whole
 * forward; a forward with more runs than its shape reserved is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/engine.h"
#include "ferry/model.h"
#include "ferry/safetensors.h"
#include "ferry/wan_dit.h"
#include "models/wan_dit_internal.h"
#include "verify/verify.h"

#define MODEL_DIR FERRY_FIXTURES_DIR "/wan22-ti2v-tiny/model"
#define FIXTURE_DIR FERRY_FIXTURES_DIR "/wan22-ti2v-tiny/fixtures"
#define FIXTURE FIXTURE_DIR "/transformer.safetensors"

static fy_tensor fixture_tensor(const char *name)
{
    fy_st_file *f = NULL;
    assert_int_equal(fy_st_open(FIXTURE, &f), FY_OK);
    fy_tensor view, out = {0};
    assert_int_equal(fy_st_view(f, name, &view), FY_OK);
    assert_int_equal(fy_tensor_to_f32(&view, &out), FY_OK);
    fy_st_close(f);
    return out;
}

/* The fixture's shape with its per-token timestep's runs. */
static fy_wan_dit_shape fixture_shape(void)
{
    fy_tensor x = fixture_tensor("hidden_states"), e = fixture_tensor("encoder_hidden_states"),
              t = fixture_tensor("timestep");
    fy_wan_dit_shape s = {x.shape[0], x.shape[2], x.shape[3], x.shape[4], e.shape[1], 0, 0};
    s.timestep_runs = fy_wan_dit_count_runs(t.data, t.shape[0], t.shape[1]);
    fy_tensor_free(&x);
    fy_tensor_free(&e);
    fy_tensor_free(&t);
    return s;
}

static uint64_t plan_bound(const fy_run_options *o)
{
    fy_model *model = NULL;
    assert_int_equal(fy_model_open(MODEL_DIR, &model), FY_OK);
    fy_engine *e = NULL;
    assert_int_equal(fy_engine_create(o, &e), FY_OK);
    fy_wan_dit *m = NULL;
    assert_int_equal(fy_wan_dit_load(fy_model_component(model, "transformer"), e, &m), FY_OK);
    fy_wan_dit_shape s = fixture_shape();
    uint64_t act = fy_wan_dit_activation_bytes(m, &s) + fy_wan_dit_context_bytes(m, s.batch, s.text_len);
    assert_true(act > 0);
    assert_int_equal(fy_engine_reserve(e, act), FY_OK);
    fy_plan p;
    assert_int_equal(fy_engine_evaluate_plan(e, o, &p), FY_OK);
    fy_wan_dit_free(m);
    fy_engine_free(e);
    fy_model_free(model);
    return p.device_bound;
}

static fy_status verify(const fy_run_options *o)
{
    fy_status st = fy_verify_run(MODEL_DIR, FIXTURE_DIR, "transformer", o, NULL);
    if (st != FY_OK) print_error("verify: %s\n", fy_error_message());
    return st;
}

static void test_runs(void **state)
{
    (void)state;
    fy_tensor t = fixture_tensor("timestep"), u = fixture_tensor("uniform.timestep");
    /* sample 0: frame 0 at 0, the rest at 937 (two runs); sample 1: arbitrary values */
    int64_t runs = fy_wan_dit_count_runs(t.data, t.shape[0], t.shape[1]);
    assert_true(runs >= 3 && runs <= t.shape[0] * t.shape[1]);
    assert_int_equal(fy_wan_dit_count_runs(t.data, 1, t.shape[1]), 2);
    assert_int_equal(fy_wan_dit_count_runs(u.data, u.shape[0], u.shape[1]), 2); /* one per item */
    fy_tensor_free(&t);
    fy_tensor_free(&u);
}

static void test_cpu(void **state)
{
    (void)state;
    fy_run_options o;
    fy_run_options_init(&o);
    o.threads = 2;
    assert_int_equal(verify(&o), FY_OK);
}

static void test_emu_every_plan(void **state)
{
    (void)state;
    static const struct {
        fy_offload_policy policy;
        int per_group, depth, resident;
    } plans[] = {
        {FY_OFFLOAD_NONE, 0, 0, -1},      {FY_OFFLOAD_MODEL, 0, 0, -1},     {FY_OFFLOAD_SEQUENTIAL, 0, 0, -1},
        {FY_OFFLOAD_GROUP, 2, 0, -1},     {FY_OFFLOAD_LAYERWISE, 0, 1, -1}, {FY_OFFLOAD_LAYERWISE, 0, 2, 1},
    };
    for (size_t i = 0; i < sizeof plans / sizeof *plans; i++) {
        fy_run_options o;
        fy_run_options_init(&o);
        o.device = FY_DEVICE_EMU;
        o.threads = 2;
        o.offload = plans[i].policy;
        if (plans[i].per_group) o.num_blocks_per_group = plans[i].per_group;
        if (plans[i].depth) o.prefetch_depth = plans[i].depth;
        if (plans[i].resident >= 0) o.resident_blocks = plans[i].resident;
        o.max_memory[0] = plan_bound(&o); /* exactly enough: the per-run workspace is reserved honestly */
        assert_int_equal(verify(&o), FY_OK);
    }
}

/* One forward on a cpu engine with the fixture's inputs and timesteps t. */
static void forward(fy_wan_dit_shape s, const float *t, int64_t row_chunk, fy_status want, float *out)
{
    fy_model *model = NULL;
    assert_int_equal(fy_model_open(MODEL_DIR, &model), FY_OK);
    fy_run_options o;
    fy_run_options_init(&o);
    fy_engine *e = NULL;
    assert_int_equal(fy_engine_create(&o, &e), FY_OK);
    fy_wan_dit *m = NULL;
    assert_int_equal(fy_wan_dit_load(fy_model_component(model, "transformer"), e, &m), FY_OK);
    assert_int_equal(fy_wan_dit_set_threads(m, 2), FY_OK);
    fy_wan_dit_set_row_chunk(m, row_chunk);
    assert_int_equal(fy_engine_reserve(e, fy_wan_dit_activation_bytes(m, &s)), FY_OK);
    assert_int_equal(fy_engine_prepare(e), FY_OK);
    fy_tensor x = fixture_tensor("hidden_states"), text = fixture_tensor("encoder_hidden_states");
    fy_status st = fy_wan_dit_forward(m, &s, x.data, t, text.data, NULL, out);
    assert_int_equal(st, want);
    if (st != FY_OK) assert_non_null(strstr(fy_error_message(), "runs"));
    assert_int_equal(fy_engine_finish(e), FY_OK);
    fy_tensor_free(&x);
    fy_tensor_free(&text);
    fy_wan_dit_free(m);
    fy_engine_free(e);
    fy_model_free(model);
}

static double max_rel_diff(const float *a, const float *b, int64_t n)
{
    double d = 0, r = 0;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        r = fmax(r, fabs((double)b[i]));
    }
    return d / r;
}

/* Chunks of 5 rows cut items and runs of the 12-token items anywhere. */
static void test_chunks_cut_runs(void **state)
{
    (void)state;
    fy_wan_dit_shape s = fixture_shape();
    fy_tensor t = fixture_tensor("timestep"), ref = fixture_tensor("output");
    int64_t n = fy_tensor_numel(&ref);
    float *whole = malloc((size_t)n * sizeof *whole), *parts = malloc((size_t)n * sizeof *parts);
    forward(s, t.data, 0, FY_OK, whole);
    forward(s, t.data, 5, FY_OK, parts);
    assert_true(max_rel_diff(whole, ref.data, n) <= 1e-5);
    assert_true(max_rel_diff(parts, whole, n) <= 1e-6);
    fy_wan_dit_shape tight = s;
    tight.timestep_runs = s.timestep_runs - 1;
    forward(tight, t.data, 0, FY_ERR_INVALID, parts);
    tight.timestep_runs = s.batch - 1; /* fewer than one run per item: a bad shape */
    forward(tight, t.data, 0, FY_ERR_INVALID, parts);
    free(whole);
    free(parts);
    fy_tensor_free(&t);
    fy_tensor_free(&ref);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs),
        cmocka_unit_test(test_cpu),
        cmocka_unit_test(test_emu_every_plan),
        cmocka_unit_test(test_chunks_cut_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
