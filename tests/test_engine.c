/* The offload engine on the emulated device, with the synthetic model:
 * every plan matches `none` bit for bit, peaks stay inside each plan's bound
 * and the budget, impossible budgets fail before any work, layerwise hides
 * its uploads behind compute and sequential does not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cblas.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/mman.h>

#include "ferry/backend.h"
#include "ferry/engine.h"
#include "ferry/log.h"
#include "support/fyt.h"
#include "support/synth_model.h"

#define STEPS 3

static const fyt_synth_config small_cfg = {.blocks = 8, .dim = 96, .rows = 16, .bias = true};

typedef fyt_synth_result run_result;

static fy_run_options emu_options(void)
{
    fy_run_options o;
    fy_run_options_init(&o);
    o.device = FY_DEVICE_EMU;
    return o;
}

/* Declare, prepare and run steps forward passes under options o. */
static run_result run_plan(fyt_synth *s, const fy_run_options *o, int steps)
{
    run_result r = fyt_synth_run_engine(s, o, steps);
    assert_non_null(r.out);
    return r;
}

static void check_same(const fyt_synth *s, const float *a, const float *b)
{
    const fyt_synth_config *cfg = fyt_synth_cfg(s);
    assert_memory_equal(a, b, (size_t)cfg->rows * (size_t)cfg->dim * sizeof(float));
}

static fyt_synth *make_synth(const fyt_synth_config *cfg)
{
    fyt_synth *s = NULL;
    fy_status st = fyt_synth_create(cfg, &s);
    if (st != FY_OK) fail_msg("synth: %s", fy_error_message());
    return s;
}

static void test_every_plan_matches_none(void **state)
{
    fyt_synth *s = make_synth(&small_cfg);
    fy_run_options o = emu_options();
    run_result ref = run_plan(s, &o, STEPS);
    assert_int_equal(ref.status, FY_OK);

    fy_run_options variants[14];
    int n = 0;
    variants[n] = emu_options(); variants[n++].offload = FY_OFFLOAD_MODEL;
    variants[n] = emu_options(); variants[n++].offload = FY_OFFLOAD_SEQUENTIAL;
    for (int d = 1; d <= 3; d++) {
        variants[n] = emu_options();
        variants[n].offload = FY_OFFLOAD_LAYERWISE;
        variants[n++].prefetch_depth = d;
    }
    for (int stream = 0; stream < 2; stream++) {
        variants[n] = emu_options();
        variants[n].offload = FY_OFFLOAD_GROUP;
        variants[n].num_blocks_per_group = 3; /* 8 blocks: a short last group */
        variants[n++].use_stream = stream;
    }
    variants[n] = emu_options(); variants[n].offload = FY_OFFLOAD_LAYERWISE; variants[n++].resident_blocks = 3;
    variants[n] = emu_options(); variants[n].offload = FY_OFFLOAD_LAYERWISE;
    variants[n++].resident_bytes = 5 * fyt_synth_block_bytes(s);
    variants[n] = emu_options(); variants[n].offload = FY_OFFLOAD_GROUP; variants[n].num_blocks_per_group = 2;
    variants[n].use_stream = true; variants[n++].resident_blocks = 1;
    variants[n] = emu_options(); variants[n].offload = FY_OFFLOAD_LAYERWISE; variants[n++].low_cpu_mem_usage = true;
    variants[n] = emu_options(); variants[n].offload = FY_OFFLOAD_LAYERWISE; variants[n++].pin_cpu_memory = false;
    variants[n] = emu_options(); variants[n].offload = FY_OFFLOAD_LAYERWISE; variants[n++].emu_bandwidth = 4e9;
    fy_run_options_init(&variants[n++]); /* the cpu backend: weights read in place */
    for (int i = 0; i < n; i++) {
        run_result r = run_plan(s, &variants[i], STEPS);
        if (r.status != FY_OK) fail_msg("variant %d: %s", i, fy_error_message());
        check_same(s, ref.out, r.out);
        if (variants[i].device == FY_DEVICE_EMU) {
            assert_true(r.stats.peak_device <= r.plan.device_bound);
            assert_true(r.stats.peak_device > 0);
        }
        free(r.out);
    }
    free(ref.out);
    fyt_synth_free(s);
}

static uint64_t peak_of(fyt_synth *s, fy_offload_policy p, int per_group, bool stream)
{
    fy_run_options o = emu_options();
    o.offload = p;
    o.num_blocks_per_group = per_group;
    o.use_stream = stream;
    run_result r = run_plan(s, &o, 2);
    assert_int_equal(r.status, FY_OK);
    assert_true(r.stats.peak_device <= r.plan.device_bound);
    free(r.out);
    return r.stats.peak_device;
}

static void test_peak_ordering_and_bounds(void **state)
{
    fyt_synth *s = make_synth(&small_cfg);
    uint64_t block = fyt_synth_block_bytes(s);
    uint64_t act = fyt_synth_activation_bytes(s);
    uint64_t embed = (uint64_t)small_cfg.dim * small_cfg.dim * 4;
    uint64_t seq = peak_of(s, FY_OFFLOAD_SEQUENTIAL, 1, false);
    uint64_t lw = peak_of(s, FY_OFFLOAD_LAYERWISE, 1, false);
    uint64_t g3 = peak_of(s, FY_OFFLOAD_GROUP, 3, false);
    uint64_t g3s = peak_of(s, FY_OFFLOAD_GROUP, 3, true);
    uint64_t none = peak_of(s, FY_OFFLOAD_NONE, 1, false);
    assert_true(seq <= lw);
    assert_true(lw < g3);
    assert_true(g3 < none);
    assert_true(g3 < g3s);
    /* layerwise: resident + (d+1) slots + activations, exactly. */
    assert_int_equal(lw, embed + 2 * block + act);
    assert_int_equal(seq, embed + block + act);
    assert_int_equal(none, embed + 8 * block + act);

    fy_run_options o = emu_options();
    o.offload = FY_OFFLOAD_LAYERWISE;
    o.prefetch_depth = 2;
    o.resident_blocks = 2;
    run_result r = run_plan(s, &o, 2);
    assert_int_equal(r.status, FY_OK);
    assert_int_equal(r.plan.resident_blocks, 2);
    assert_int_equal(r.stats.peak_device, embed + 2 * block + 3 * block + act);
    free(r.out);
    fyt_synth_free(s);
}

static void test_budget_respected(void **state)
{
    fyt_synth *s = make_synth(&small_cfg);
    fy_run_options o = emu_options();
    o.offload = FY_OFFLOAD_LAYERWISE;
    o.prefetch_depth = 2;
    fy_engine *e = NULL;
    assert_int_equal(fy_engine_create(&o, &e), FY_OK);
    assert_int_equal(fyt_synth_declare(s, e), FY_OK);
    fy_plan p;
    assert_int_equal(fy_engine_evaluate_plan(e, &o, &p), FY_OK);
    fy_engine_free(e);

    o.max_memory[0] = p.device_bound; /* exactly enough */
    run_result r = run_plan(s, &o, 2);
    assert_int_equal(r.status, FY_OK);
    assert_true(r.stats.peak_device <= o.max_memory[0]);
    free(r.out);
    fyt_synth_free(s);
}

static void test_impossible_budget_fails_before_work(void **state)
{
    fyt_synth *s = make_synth(&small_cfg);
    uint64_t block = fyt_synth_block_bytes(s);
    uint64_t act = fyt_synth_activation_bytes(s);
    uint64_t embed = (uint64_t)small_cfg.dim * small_cfg.dim * 4;

    fy_run_options o = emu_options(); /* none needs everything */
    o.max_memory[0] = embed + 3 * block + act;
    fy_engine *e = NULL;
    assert_int_equal(fy_engine_create(&o, &e), FY_OK);
    assert_int_equal(fyt_synth_declare(s, e), FY_OK);
    assert_int_equal(fy_engine_prepare(e), FY_ERR_BUDGET);
    const char *msg = fy_error_message();
    assert_non_null(strstr(msg, "needs"));
    assert_non_null(strstr(msg, "budget"));
    assert_non_null(strstr(msg, "plan layerwise (prefetch depth 1) fits"));
    assert_int_equal(fy_engine_stats_get(e)->peak_device, 0);
    assert_int_equal(fy_engine_stats_get(e)->bytes_uploaded, 0);
    fy_engine_free(e);

    o.offload = FY_OFFLOAD_LAYERWISE;
    o.max_memory[0] = embed + block + act; /* only sequential fits */
    assert_int_equal(fy_engine_create(&o, &e), FY_OK);
    assert_int_equal(fyt_synth_declare(s, e), FY_OK);
    assert_int_equal(fy_engine_prepare(e), FY_ERR_BUDGET);
    assert_non_null(strstr(fy_error_message(), "plan sequential fits"));
    fy_engine_free(e);

    o.max_memory[0] = 1000; /* nothing fits */
    assert_int_equal(fy_engine_create(&o, &e), FY_OK);
    assert_int_equal(fyt_synth_declare(s, e), FY_OK);
    assert_int_equal(fy_engine_prepare(e), FY_ERR_BUDGET);
    assert_non_null(strstr(fy_error_message(), "no plan fits"));
    assert_int_equal(fy_engine_stats_get(e)->peak_device, 0);
    fy_engine_free(e);
    fyt_synth_free(s);
}

static void test_out_of_order_is_an_error(void **state)
{
    fyt_synth *s = make_synth(&small_cfg);
    fy_run_options o = emu_options();
    o.offload = FY_OFFLOAD_LAYERWISE;
    fy_engine *e = NULL;
    assert_int_equal(fy_engine_create(&o, &e), FY_OK);
    assert_int_equal(fyt_synth_declare(s, e), FY_OK);
    assert_int_equal(fy_engine_prepare(e), FY_OK);
    const fy_tensor *w = NULL;
    /* group 0 is embed; blocks are 1..8: ask for block 2 first */
    assert_int_equal(fy_engine_acquire(e, 3, &w), FY_ERR_INVALID);
    assert_non_null(strstr(fy_error_message(), "expected blocks.0"));
    assert_int_equal(fy_engine_release(e, 1), FY_ERR_INVALID);
    assert_int_equal(fy_engine_acquire(e, 1, &w), FY_OK);
    assert_int_equal(fy_engine_acquire(e, 1, &w), FY_ERR_INVALID);
    assert_int_equal(fy_engine_release(e, 1), FY_OK);
    fy_engine_free(e);
    fyt_synth_free(s);
}

static void test_host_copy_accounting(void **state)
{
    fyt_synth *s = make_synth(&small_cfg);
    uint64_t block = fyt_synth_block_bytes(s);
    uint64_t raw = (uint64_t)small_cfg.dim * small_cfg.dim * 4 + (uint64_t)small_cfg.dim * 4;
    fy_run_options o = emu_options();
    o.offload = FY_OFFLOAD_LAYERWISE;
    o.resident_blocks = 2;
    run_result r = run_plan(s, &o, 1);
    assert_int_equal(r.status, FY_OK);
    /* Pinned once: the streamed blocks, within 5% of their raw bytes. */
    assert_int_equal(r.stats.pinned_bytes, 6 * block);
    assert_true((double)r.stats.pinned_bytes <= 1.05 * (double)(6 * raw));
    free(r.out);

    o.low_cpu_mem_usage = true;
    r = run_plan(s, &o, 1);
    assert_int_equal(r.status, FY_OK);
    assert_int_equal(r.stats.host_bytes, 2 * block); /* the staging ring only */
    free(r.out);

    o.low_cpu_mem_usage = false;
    o.pin_cpu_memory = false;
    r = run_plan(s, &o, 1);
    assert_int_equal(r.status, FY_OK);
    assert_int_equal(r.stats.host_bytes, 0);
    free(r.out);
    fyt_synth_free(s);
}

static void test_pin_failure_falls_back(void **state)
{
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_MEMLOCK, &old), 0);
    struct rlimit none = {0, old.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_MEMLOCK, &none), 0);
    static char probe[1 << 16];
    if (mlock(probe, sizeof probe) == 0) { /* privileged: mlock ignores the limit */
        munlock(probe, sizeof probe);
        setrlimit(RLIMIT_MEMLOCK, &old);
        skip();
    }
    fyt_synth *s = make_synth(&small_cfg);
    fy_run_options o = emu_options();
    o.offload = FY_OFFLOAD_LAYERWISE;
    run_result r = run_plan(s, &o, 1);
    setrlimit(RLIMIT_MEMLOCK, &old);
    assert_int_equal(r.status, FY_OK);
    assert_int_equal(r.stats.pinned_bytes, 0);
    assert_true(r.stats.mapped_bytes > 0);
    free(r.out);
    fyt_synth_free(s);
}

/* One block's compute time on this machine (best of a few). */
static double block_seconds(const fyt_synth *s)
{
    const fyt_synth_config *cfg = fyt_synth_cfg(s);
    float *out = malloc((size_t)cfg->rows * (size_t)cfg->dim * sizeof(float));
    assert_non_null(out);
    double best = 1e9;
    for (int i = 0; i < 5; i++) {
        double t0 = fy_backend_now();
        fyt_synth_block_host(s, 0, fyt_synth_input(s), out);
        double t = fy_backend_now() - t0;
        best = t < best ? t : best;
    }
    free(out);
    return best;
}

/* Other load on the machine (a parallel build, the copy thread losing its
 * core) only adds stall, so the claim holds if any of a few runs shows it. */
static bool overlap_attempt(fyt_synth *s, double compute)
{
    /* An upload takes ~40% of a block's compute. */
    double bw = (double)fyt_synth_block_bytes(s) / (0.4 * compute);
    fy_run_options o = emu_options();
    o.emu_bandwidth = bw;
    o.offload = FY_OFFLOAD_LAYERWISE;
    run_result lw = run_plan(s, &o, 6);
    assert_int_equal(lw.status, FY_OK);
    o.offload = FY_OFFLOAD_SEQUENTIAL;
    run_result seq = run_plan(s, &o, 6);
    assert_int_equal(seq.status, FY_OK);
    double share = lw.stats.stall_time / lw.stats.run_time;
    print_message("block compute %.2f ms, upload %.2f ms; layerwise stall %.1f%% run %.1f ms; "
                  "sequential stall %.1f%% run %.1f ms\n",
                  compute * 1e3, 0.4 * compute * 1e3, 100 * share, lw.stats.run_time * 1e3,
                  100 * seq.stats.stall_time / seq.stats.run_time, seq.stats.run_time * 1e3);
    check_same(s, lw.out, seq.out);
    bool held = share < 0.05 && seq.stats.run_time > 1.15 * lw.stats.run_time;
    free(lw.out);
    free(seq.out);
    return held;
}

static void test_layerwise_hides_uploads(void **state)
{
    (void)state;
    fyt_synth_config cfg = {.blocks = 12, .dim = 512, .rows = 384, .bias = false};
    fyt_synth *s = make_synth(&cfg);
    double compute = block_seconds(s);
    bool held = false;
    for (int attempt = 0; attempt < 4 && !held; attempt++) held = overlap_attempt(s, compute);
    assert_true(held);
    fyt_synth_free(s);
}

static int count_phase(const cJSON *events, const char *ph, int tid)
{
    int n = 0;
    const cJSON *ev;
    cJSON_ArrayForEach(ev, events) {
        const cJSON *p = cJSON_GetObjectItem(ev, "ph");
        const cJSON *t = cJSON_GetObjectItem(ev, "tid");
        if (!cJSON_IsString(p) || strcmp(p->valuestring, ph) != 0) continue;
        if (tid && (!cJSON_IsNumber(t) || t->valueint != tid)) continue;
        n++;
    }
    return n;
}

static void test_trace_file(void **state)
{
    fyt_synth *s = make_synth(&small_cfg);
    char *dir = fyt_temp_dir();
    char *path = fyt_path(dir, "trace.json");
    fy_run_options o = emu_options();
    o.offload = FY_OFFLOAD_LAYERWISE;
    o.trace_path = path;
    run_result r = run_plan(s, &o, 2);
    assert_int_equal(r.status, FY_OK);
    assert_int_equal(fyt_count_files(dir), 1); /* no temp file left */
    size_t n = 0;
    char *text = fyt_read_file(path, &n);
    assert_non_null(text);
    cJSON *root = cJSON_ParseWithLength(text, n);
    assert_non_null(root);
    const cJSON *events = cJSON_GetObjectItem(root, "traceEvents");
    assert_true(cJSON_IsArray(events));
    assert_true(count_phase(events, "X", 1) >= 2 * 8);       /* each block's compute */
    assert_true(count_phase(events, "X", 2) >= 8);           /* uploads on the copy track */
    assert_true(count_phase(events, "C", 0) >= 3);           /* device memory counter */
    assert_int_equal(count_phase(events, "M", 0), 3);
    cJSON_Delete(root);
    free(text);
    free(r.out);

    o.trace_path = "/nonexistent-dir/trace.json";
    r = run_plan(s, &o, 1);
    assert_int_equal(r.status, FY_ERR_IO);
    assert_non_null(strstr(fy_error_message(), "/nonexistent-dir/trace.json"));
    free(r.out);
    free(path);
    fyt_remove_tree(dir);
    free(dir);
    fyt_synth_free(s);
}

static void test_stats_print(void **state)
{
    fyt_synth *s = make_synth(&small_cfg);
    fy_run_options o = emu_options();
    o.offload = FY_OFFLOAD_LAYERWISE;
    fy_engine *e = NULL;
    assert_int_equal(fy_engine_create(&o, &e), FY_OK);
    assert_int_equal(fyt_synth_declare(s, e), FY_OK);
    assert_int_equal(fy_engine_prepare(e), FY_OK);
    float *out = calloc((size_t)small_cfg.rows * small_cfg.dim, sizeof(float));
    assert_int_equal(fyt_synth_run(s, e, 2, out), FY_OK);
    assert_int_equal(fy_engine_finish(e), FY_OK);
    char buf[2048] = {0};
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    fy_engine_stats_print(e, f);
    fclose(f);
    assert_non_null(strstr(buf, "offload: layerwise on emu"));
    assert_non_null(strstr(buf, "stall"));
    assert_non_null(strstr(buf, "device peak"));
    assert_non_null(strstr(buf, "pinned"));
    const fy_engine_stats *st = fy_engine_stats_get(e);
    /* 7 blocks streamed per step after the first prefetch, plus wrap-around. */
    assert_true(st->bytes_uploaded >= 2 * 8 * fyt_synth_block_bytes(s) - 2 * fyt_synth_block_bytes(s));
    assert_int_equal(fy_engine_group_tier(e, 1), FY_TIER_PINNED);
    assert_int_equal(fy_engine_group_tier(e, 0), FY_TIER_DEVICE);
    free(out);
    fy_engine_free(e);
    fyt_synth_free(s);
}

int main(void)
{
    openblas_set_num_threads(1);
    fy_log_set_level(FY_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_plan_matches_none),
        cmocka_unit_test(test_peak_ordering_and_bounds),
        cmocka_unit_test(test_budget_respected),
        cmocka_unit_test(test_impossible_budget_fails_before_work),
        cmocka_unit_test(test_out_of_order_is_an_error),
        cmocka_unit_test(test_host_copy_accounting),
        cmocka_unit_test(test_pin_failure_falls_back),
        cmocka_unit_test(test_layerwise_hides_uploads),
        cmocka_unit_test(test_trace_file),
        cmocka_unit_test(test_stats_print),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
