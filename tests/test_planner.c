/* The planner (--vram-budget) on the emulated device with the synthetic
 * model, bandwidth throttled so that streaming a block takes about twice
 * its compute: at budgets that allow no, half and all blocks resident, the
 * predicted step time matches the measured one within 10% (medians of
 * several steps), and the chosen plan is the fastest measured candidate
 * (within 5%). Blocks compute for tens of ms so a busy 2-core machine's
 * noise stays small against them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/backend.h"
#include "ferry/engine.h"
#include "ferry/log.h"
#include "support/synth_model.h"

#define STEPS 7
#define BLOCKS 8

void openblas_set_num_threads(int n);

static const fyt_synth_config cfg = {.blocks = BLOCKS, .dim = 512, .rows = 2048, .bias = true};

typedef struct outcome {
    fy_engine_stats stats;
    fy_plan plan;
} outcome;

static fyt_synth *synth;
static double block_compute; /* s, one block on the host */

static double measure_block(void)
{
    size_t n = (size_t)cfg.rows * (size_t)cfg.dim;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    memcpy(a, fyt_synth_input(synth), n * sizeof *a);
    double best = 1e9;
    for (int i = 0; i < 5; i++) {
        double t0 = fy_backend_now();
        fyt_synth_block_host(synth, i % BLOCKS, a, b);
        double d = fy_backend_now() - t0;
        best = d < best ? d : best;
    }
    free(a);
    free(b);
    return best;
}

static int setup(void **state)
{
    (void)state;
    openblas_set_num_threads(1); /* leave a core to the copy thread */
    if (fyt_synth_create(&cfg, &synth) != FY_OK) return -1;
    block_compute = measure_block();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fyt_synth_free(synth);
    return 0;
}

static fy_run_options base_options(void)
{
    fy_run_options o;
    fy_run_options_init(&o);
    o.device = FY_DEVICE_EMU;
    /* streaming one block takes about twice its compute */
    o.emu_bandwidth = (double)fyt_synth_block_bytes(synth) / (2.0 * block_compute);
    return o;
}

static outcome run(const fy_run_options *o)
{
    outcome r;
    memset(&r, 0, sizeof r);
    fyt_synth_result x = fyt_synth_run_engine(synth, o, STEPS);
    free(x.out);
    if (x.status != FY_OK) fail_msg("run: %s", fy_error_message());
    r.stats = x.stats;
    r.plan = x.plan;
    return r;
}

/* The device bound of a hand-picked plan, without running it. */
static uint64_t bound_of(fy_offload_policy policy, int depth, int k)
{
    fy_run_options o = base_options();
    o.offload = policy;
    o.prefetch_depth = depth;
    o.resident_blocks = policy == FY_OFFLOAD_NONE ? -1 : k;
    fy_engine *e = NULL;
    assert_int_equal(fy_engine_create(&o, &e), FY_OK);
    assert_int_equal(fyt_synth_declare(synth, e), FY_OK);
    fy_plan p;
    assert_int_equal(fy_engine_evaluate_plan(e, &o, &p), FY_OK);
    fy_engine_free(e);
    return p.device_bound;
}

/* The largest K a streaming plan can keep resident within budget (-1: none fits). */
static int largest_k(fy_offload_policy policy, int depth, uint64_t budget)
{
    for (int k = BLOCKS - 1; k >= 0; k--)
        if (bound_of(policy, depth, k) <= budget) return k;
    return -1;
}

/* The cost model's step time for a hand-picked plan with the nominal
 * compute (every group block_compute, gap one block) and bandwidth. */
static double predicted(fy_offload_policy policy, int depth, int k)
{
    fy_run_options o = base_options();
    fy_engine *e = NULL;
    assert_int_equal(fy_engine_create(&o, &e), FY_OK);
    assert_int_equal(fyt_synth_declare(synth, e), FY_OK);
    assert_int_equal(fy_engine_prepare(e), FY_OK); /* none: sets the step component */
    o.offload = policy;
    o.prefetch_depth = depth;
    o.resident_blocks = policy == FY_OFFLOAD_NONE ? -1 : k;
    fy_plan p;
    assert_int_equal(fy_engine_evaluate_plan(e, &o, &p), FY_OK);
    double compute[BLOCKS + 1];
    for (int i = 0; i <= BLOCKS; i++) compute[i] = block_compute;
    double t = fy_engine_predict_step(e, &p, o.emu_bandwidth, compute, block_compute);
    fy_engine_free(e);
    return t;
}

static double measured_candidate(fy_offload_policy policy, int depth, int k, uint64_t budget)
{
    fy_run_options o = base_options();
    o.max_memory[0] = budget;
    o.offload = policy;
    o.prefetch_depth = depth;
    o.resident_blocks = policy == FY_OFFLOAD_NONE ? -1 : k;
    outcome r = run(&o);
    return r.stats.measured_step_s;
}

static void check_budget(uint64_t budget, const char *label)
{
    fy_run_options o = base_options();
    o.max_memory[0] = budget;
    o.vram_budget = budget;
    /* Other tests may share the 2 cores for a while: up to three tries. */
    outcome chosen;
    double err = 1;
    for (int attempt = 0; attempt < 3 && err >= 0.10; attempt++) {
        chosen = run(&o);
        err = fabs(chosen.stats.predicted_step_s - chosen.stats.measured_step_s) / chosen.stats.measured_step_s;
    }
    const fy_engine_stats *s = &chosen.stats;
    fprintf(stderr,
            "planner %-5s budget %llu: plan %s depth %d resident %d; predicted %.4f s (initial %.4f s), "
            "measured %.4f s (%.1f%%), copy %.1f MB/s, block compute %.4f s\n",
            label, (unsigned long long)budget, fy_offload_policy_name(chosen.plan.policy), chosen.plan.depth,
            chosen.plan.resident_blocks, s->predicted_step_s, s->predicted_initial_step_s, s->measured_step_s,
            100 * err, s->copy_bandwidth / 1e6, block_compute);
    assert_true(chosen.plan.device_bound <= budget);
    assert_true(s->predicted_step_s > 0);
    assert_true(err < 0.10);

    /* The candidates: each policy at the largest K it can keep resident,
     * measured in their own runs (the chosen plan among them). */
    typedef struct { fy_offload_policy policy; int depth, k; double t; } cand;
    cand c[4];
    int n = 0;
    if (bound_of(FY_OFFLOAD_NONE, 1, 0) <= budget) c[n++] = (cand){FY_OFFLOAD_NONE, 1, BLOCKS, 0};
    static const struct { fy_offload_policy policy; int depth; } kinds[] = {
        {FY_OFFLOAD_LAYERWISE, 1}, {FY_OFFLOAD_LAYERWISE, 2}, {FY_OFFLOAD_SEQUENTIAL, 1}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        int k = largest_k(kinds[i].policy, kinds[i].depth, budget);
        if (k >= 0) c[n++] = (cand){kinds[i].policy, kinds[i].depth, k, 0};
    }
    int mine = -1, best = 0;
    for (int i = 0; i < n; i++) {
        bool same = c[i].policy == chosen.plan.policy && c[i].k == chosen.plan.resident_blocks &&
                    (c[i].policy != FY_OFFLOAD_LAYERWISE || c[i].depth == chosen.plan.depth);
        if (same) mine = i;
    }
    assert_true(mine >= 0); /* the planner keeps the largest K its policy allows */
    /* A noisy machine: a plan's time is the best of up to three runs, retried
     * only while the chosen one trails. */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < n; i++) {
            double t = measured_candidate(c[i].policy, c[i].depth, c[i].k, budget);
            if (round == 0 || t < c[i].t) c[i].t = t;
            fprintf(stderr, "  candidate %s depth %d resident %d: %.4f s\n", fy_offload_policy_name(c[i].policy),
                    c[i].depth, c[i].k, t);
        }
        best = 0;
        for (int i = 1; i < n; i++)
            if (c[i].t < c[best].t) best = i;
        if (c[mine].t <= c[best].t * 1.05) break;
        if (round == 2) fprintf(stderr, "  (chosen plan trails the best by %.1f%%)\n", 100 * (c[mine].t / c[best].t - 1));
    }
    /* Plans the cost model cannot tell apart (e.g. depth 1 with K resident
     * and depth 2 with K-1 when uploads outlast compute) count as one: the
     * best measured of the chosen plan's tie class must be within 5%. */
    double p_mine = predicted(c[mine].policy, c[mine].depth, c[mine].k), t_class = c[mine].t;
    for (int i = 0; i < n; i++)
        if (fabs(predicted(c[i].policy, c[i].depth, c[i].k) - p_mine) <= 0.01 * p_mine && c[i].t < t_class)
            t_class = c[i].t;
    assert_true(t_class <= c[best].t * 1.05);
}

static void test_budget_no_resident(void **state)
{
    (void)state;
    check_budget(bound_of(FY_OFFLOAD_LAYERWISE, 1, 0), "none");
}

static void test_budget_half_resident(void **state)
{
    (void)state;
    check_budget(bound_of(FY_OFFLOAD_LAYERWISE, 1, BLOCKS / 2), "half");
}

static void test_budget_all_resident(void **state)
{
    (void)state;
    check_budget(bound_of(FY_OFFLOAD_NONE, 1, 0), "all");
}

static void test_budget_too_small(void **state)
{
    (void)state;
    fy_run_options o = base_options();
    o.vram_budget = fyt_synth_block_bytes(synth);
    fy_engine *e = NULL;
    assert_int_equal(fy_engine_create(&o, &e), FY_OK);
    assert_int_equal(fyt_synth_declare(synth, e), FY_OK);
    assert_int_equal(fy_engine_prepare(e), FY_ERR_BUDGET);
    assert_non_null(strstr(fy_error_message(), "--vram-budget"));
    fy_engine_free(e);
}

static void test_options(void **state)
{
    (void)state;
    fy_run_options o;
    fy_run_options_init(&o);
    char *argv[] = {"x", "--vram-budget", "8GiB", "--offload", "layerwise"};
    bool consumed = false;
    for (int i = 1; i < 5;) {
        assert_int_equal(fy_run_options_parse_arg(&o, 5, argv, &i, &consumed), FY_OK);
        assert_true(consumed);
    }
    assert_int_equal(o.vram_budget, 8ull << 30);
    assert_int_equal(fy_run_options_validate(&o), FY_ERR_INVALID);
    assert_non_null(strstr(fy_error_message(), "--vram-budget"));
    fy_run_options_init(&o);
    char *argv2[] = {"x", "--vram-budget", "auto"};
    int i = 1;
    assert_int_equal(fy_run_options_parse_arg(&o, 3, argv2, &i, &consumed), FY_OK);
    assert_true(o.vram_budget_auto);
    assert_int_equal(fy_run_options_validate(&o), FY_OK);
}

int main(void)
{
    fy_log_set_level(FY_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_budget_too_small),
        cmocka_unit_test(test_budget_no_resident),
        cmocka_unit_test(test_budget_half_resident),
        cmocka_unit_test(test_budget_all_resident),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
