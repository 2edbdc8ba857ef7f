/* The planner's first estimate, before anything runs: a step's declared
 * FLOPs over the device's rate (the weights' bytes when a model declares
 * none), and a mixture of experts weighed by each expert's share of the
 * steps. Two components of 4 blocks each ("transformer" and its successor
 * "transformer_2"), a budget that keeps everything resident: the predicted
 * step is then the compute alone, so each case's figure is exact given the
 * rate the engine reports. No timing is checked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ferry/engine.h"
#include "ferry/log.h"

#define BLOCKS 4
#define DIM 64

static float weights[2][BLOCKS + 1][DIM * DIM];

/* Components transformer and transformer_2 (its successor): an embed and
 * BLOCKS blocks each, block FLOPs flops[c] (0: not declared), steps[c]
 * passes (-1: not declared). */
static fy_engine *make_engine(const double flops[2], const int steps[2])
{
    fy_run_options o;
    fy_run_options_init(&o);
    o.device = FY_DEVICE_EMU;
    o.vram_budget = 64ull << 20;
    fy_engine *e = NULL;
    assert_int_equal(fy_engine_create(&o, &e), FY_OK);
    static const char *const names[2] = {"transformer", "transformer_2"};
    for (int c = 0; c < 2; c++) {
        int comp, g;
        assert_int_equal(fy_engine_add_component(e, names[c], &comp), FY_OK);
        for (int b = 0; b <= BLOCKS; b++) {
            int64_t shape[2] = {DIM, DIM};
            fy_tensor t = fy_tensor_wrap(weights[c][b], FY_F32, 2, shape, FY_HOST);
            char name[32];
            snprintf(name, sizeof name, b ? "blocks.%d" : "embed", b - 1);
            assert_int_equal(fy_engine_add_group(e, comp, name, b ? FY_GROUP_BLOCK : FY_GROUP_SMALL, &t, 1, &g), FY_OK);
            if (b && flops[c] > 0) assert_int_equal(fy_engine_set_group_flops(e, g, flops[c]), FY_OK);
        }
        if (steps[c] >= 0) assert_int_equal(fy_engine_set_component_steps(e, names[c], steps[c]), FY_OK);
    }
    assert_int_equal(fy_engine_declare_successor(e, "transformer", "transformer_2"), FY_OK);
    assert_int_equal(fy_engine_prepare(e), FY_OK);
    return e;
}

static void test_estimates(void **state)
{
    (void)state;
    const double block_bytes = DIM * DIM * sizeof(float), guess = 64.0; /* the planner's FLOP per byte */
    static const struct {
        double flops[2];
        int steps[2];
        double want_flops; /* a mean step's FLOPs; < 0: the bytes guess of one transformer pass */
    } cases[] = {
        {{1e9, 3e9}, {-1, -1}, BLOCKS * 1e9},                    /* no steps: a pass of transformer */
        {{1e9, 3e9}, {1, 0}, BLOCKS * 1e9},
        {{1e9, 3e9}, {0, 1}, BLOCKS * 3e9},
        {{1e9, 3e9}, {1, 1}, BLOCKS * 2e9},
        {{1e9, 3e9}, {9, 41}, BLOCKS * (9 * 1e9 + 41 * 3e9) / 50},
        {{2e9, 2e9}, {9, 41}, BLOCKS * 2e9},
        {{0, 0}, {-1, -1}, -1},                                   /* nothing declared: from bytes */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fy_engine *e = make_engine(cases[i].flops, cases[i].steps);
        const fy_engine_stats *s = fy_engine_stats_get(e);
        double want = cases[i].want_flops >= 0 ? cases[i].want_flops : BLOCKS * block_bytes * guess;
        assert_true(s->flop_rate > 0);
        want /= s->flop_rate;
        if (fabs(s->predicted_initial_step_s - want) > 1e-9 * want)
            fail_msg("case %zu: predicted %.9g s, want %.9g s", i, s->predicted_initial_step_s, want);
        fy_engine_free(e);
    }
}

static void test_bad_declarations(void **state)
{
    (void)state;
    fy_run_options o;
    fy_run_options_init(&o);
    fy_engine *e = NULL;
    assert_int_equal(fy_engine_create(&o, &e), FY_OK);
    int comp, g;
    int64_t shape[2] = {DIM, DIM};
    fy_tensor t = fy_tensor_wrap(weights[0][0], FY_F32, 2, shape, FY_HOST);
    assert_int_equal(fy_engine_add_component(e, "transformer", &comp), FY_OK);
    assert_int_equal(fy_engine_add_group(e, comp, "blocks.0", FY_GROUP_BLOCK, &t, 1, &g), FY_OK);
    static const struct { int group; double flops; fy_status want; } flops[] = {
        {0, 1e9, FY_OK}, {0, 0, FY_OK}, {1, 1e9, FY_ERR_INVALID}, {-1, 1e9, FY_ERR_INVALID},
        {0, -1, FY_ERR_INVALID}, {0, NAN, FY_ERR_INVALID}, {0, INFINITY, FY_ERR_INVALID}};
    for (size_t i = 0; i < sizeof flops / sizeof flops[0]; i++)
        assert_int_equal(fy_engine_set_group_flops(e, flops[i].group, flops[i].flops), flops[i].want);
    static const struct { const char *name; int steps; fy_status want; } steps[] = {
        {"transformer", 10, FY_OK}, {"transformer", 0, FY_OK}, {"transformer_2", 10, FY_ERR_INVALID},
        {NULL, 10, FY_ERR_INVALID}, {"transformer", -1, FY_ERR_INVALID}};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        assert_int_equal(fy_engine_set_component_steps(e, steps[i].name, steps[i].steps), steps[i].want);
    fy_engine_free(e);
}

int main(void)
{
    fy_log_set_level(FY_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_estimates),
        cmocka_unit_test(test_bad_declarations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
