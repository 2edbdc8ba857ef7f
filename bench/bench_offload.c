/* Offload plans on the emulated device at a throttled bandwidth: each plan's
 * run time against `none` (everything resident) and against the floor
 * max(compute, streamed bytes / bandwidth), where compute is none's time.
 *
 *   bench_offload [bandwidth GB/s ...]     default: 2 and 0.5
 *   BENCH_ONLY="layerwise d=1" runs one plan (and none); BENCH_TRACE=FILE writes its trace.
 *
 * Prints one markdown table per bandwidth (bench/RESULTS.md keeps them). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/engine.h"
#include "ferry/log.h"

/* The tests' synthetic model (tests/support is linked into every benchmark). */
#include "support/synth_model.h"

#define STEPS 3

typedef struct bench_case {
    const char *label;
    fy_offload_policy policy;
    int depth, per_group, resident;
    bool stream, low_cpu;
} bench_case;

static const bench_case cases[] = {
    {"none", FY_OFFLOAD_NONE, 1, 1, -1, false, false},
    {"model", FY_OFFLOAD_MODEL, 1, 1, -1, false, false},
    {"sequential", FY_OFFLOAD_SEQUENTIAL, 1, 1, -1, false, false},
    {"group 4", FY_OFFLOAD_GROUP, 1, 4, -1, false, false},
    {"group 4 use_stream", FY_OFFLOAD_GROUP, 1, 4, -1, true, false},
    {"layerwise d=1", FY_OFFLOAD_LAYERWISE, 1, 1, -1, false, false},
    {"layerwise d=2", FY_OFFLOAD_LAYERWISE, 2, 1, -1, false, false},
    {"layerwise d=1 resident 8", FY_OFFLOAD_LAYERWISE, 1, 1, 8, false, false},
    {"layerwise d=1 low_cpu_mem", FY_OFFLOAD_LAYERWISE, 1, 1, -1, false, true},
};

typedef struct bench_result {
    double seconds;
    uint64_t streamed;
    double stall;
    uint64_t peak;
} bench_result;

static int run_case(fyt_synth *s, const bench_case *c, double bw, bench_result *r)
{
    fy_run_options o;
    fy_run_options_init(&o);
    o.device = FY_DEVICE_EMU;
    o.emu_bandwidth = bw;
    o.offload = c->policy;
    o.prefetch_depth = c->depth;
    o.num_blocks_per_group = c->per_group;
    o.use_stream = c->stream;
    o.resident_blocks = c->resident;
    o.low_cpu_mem_usage = c->low_cpu;
    o.trace_path = getenv("BENCH_TRACE");
    const fyt_synth_config *cfg = fyt_synth_cfg(s);
    float *out = malloc((size_t)cfg->rows * (size_t)cfg->dim * sizeof(float));
    fy_engine *e = NULL;
    fy_status st = out ? fy_engine_create(&o, &e) : FY_ERR_NOMEM;
    if (st == FY_OK) st = fyt_synth_declare(s, e);
    if (st == FY_OK) st = fy_engine_prepare(e);
    if (st == FY_OK) st = fy_backend_synchronize(fy_engine_backend(e)); /* loading is not the run */
    double t0 = fy_backend_now();
    if (st == FY_OK) st = fyt_synth_run(s, e, STEPS, out);
    r->seconds = fy_backend_now() - t0;
    if (st == FY_OK) st = fy_engine_finish(e);
    if (st == FY_OK) {
        const fy_engine_stats *stats = fy_engine_stats_get(e);
        r->streamed = stats->bytes_uploaded - fy_engine_plan(e)->resident_bytes;
        r->stall = stats->stall_time;
        r->peak = stats->peak_device;
    } else {
        fprintf(stderr, "bench_offload: %s: %s\n", c->label, fy_error_message());
    }
    fy_engine_free(e);
    free(out);
    return st == FY_OK ? 0 : 1;
}

static int bench_bandwidth(fyt_synth *s, double gbps)
{
    double bw = gbps * 1e9;
    size_t n = sizeof cases / sizeof cases[0];
    bench_result res[sizeof cases / sizeof cases[0]];
    const char *only = getenv("BENCH_ONLY");
    for (size_t i = 0; i < n; i++) {
        if (only && i && strcmp(only, cases[i].label) != 0) {
            res[i] = res[0];
            continue;
        }
        if (run_case(s, &cases[i], bw, &res[i]) != 0) return 1;
    }
    double compute = res[0].seconds;
    printf("\n### Emulated device at %.2f GB/s\n\n", gbps);
    printf("| plan | time (ms) | vs none | floor (ms) | vs floor | stall | peak device (MiB) |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < n; i++) {
        double wire = (double)res[i].streamed / bw;
        double floor = compute > wire ? compute : wire;
        printf("| %s | %.1f | %.2fx | %.1f | %.2fx | %.1f%% | %.1f |\n", cases[i].label, res[i].seconds * 1e3,
               res[i].seconds / compute, floor * 1e3, res[i].seconds / floor,
               100.0 * res[i].stall / res[i].seconds, (double)res[i].peak / 1048576.0);
    }
    return 0;
}

int main(int argc, char **argv)
{
    openblas_set_num_threads(1);
    fy_log_set_level(FY_LOG_ERROR);
    fyt_synth_config cfg = {.blocks = 16, .dim = 1024, .rows = 256, .bias = true};
    fyt_synth *s = NULL;
    if (fyt_synth_create(&cfg, &s) != FY_OK) {
        fprintf(stderr, "bench_offload: %s\n", fy_error_message());
        return 1;
    }
    printf("synthetic model: %d blocks of %dx%d f32 (+bias), %d rows, %d steps, 1 BLAS thread\n", cfg.blocks,
           cfg.dim, cfg.dim, cfg.rows, STEPS);
    int rc = 0;
    if (argc > 1) {
        for (int i = 1; i < argc && rc == 0; i++) rc = bench_bandwidth(s, atof(argv[i]));
    } else {
        rc = bench_bandwidth(s, 2.0);
        if (rc == 0) rc = bench_bandwidth(s, 0.5);
    }
    fyt_synth_free(s);
    return rc;
}
