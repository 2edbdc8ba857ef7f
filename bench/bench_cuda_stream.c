/* Streaming on a real GPU: does a layerwise plan hide the uploads behind
 * compute, on a real copy engine over PCIe?
 *
 *     bench_cuda_stream [--blocks N] [--block-mib M] [--steps S] [--planner]
 *
 * A synthetic model of N blocks of M MiB (default 16 x 640 MiB: a Wan2.1-14B
 * block in bf16 is ~670 MiB) runs through the engine on --device cuda. Each
 * block's "compute" is a kernel that occupies the compute stream for a set
 * time (fy_cuda_busy: the model ops have no CUDA kernels yet), chosen as a
 * multiple of one block's upload time at the measured pinned bandwidth, so
 * the same run covers copy-bound and compute-bound steps. For each plan:
 * none (every block resident), sequential, layerwise at depth 1 and 2, the
 * step time (host clock, until the step's last kernel has run, while the
 * copy stream may already prefetch the next step; the median of the steps
 * after the first) against resident and against the
 * floor max(compute, streamed bytes / bandwidth).
 *
 * --planner instead checks the planner on the GPU: at three --vram-budget
 * values (a quarter, half and most of the model), the plan it picks, its
 * step time predicted before step 1 and after it (block times off the
 * compute stream's events), and the measured step time.
 *
 * Without a GPU (or a build without CUDA) it says so and exits 0. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/backend.h"
#include "ferry/engine.h"
#include "ferry/options.h"
#ifdef FERRY_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

#define MIB (1024.0 * 1024.0)
#define MAX_STEPS 16

typedef struct bench_args {
    int blocks, block_mib, steps;
    bool planner;
} bench_args;


static int parse_args(int argc, char **argv, bench_args *a)
{
    *a = (bench_args){16, 640, 4, false};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--blocks") == 0 && i + 1 < argc) a->blocks = atoi(argv[++i]);
        else if (strcmp(argv[i], "--block-mib") == 0 && i + 1 < argc) a->block_mib = atoi(argv[++i]);
        else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) a->steps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--planner") == 0) a->planner = true;
        else {
            fprintf(stderr, "usage: %s [--blocks N] [--block-mib M] [--steps S] [--planner]\n", argv[0]);
            return -1;
        }
    }
    if (a->blocks < 2 || a->block_mib < 1 || a->steps < 2 || a->steps > MAX_STEPS) {
        fprintf(stderr, "%s: need --blocks >= 2, --block-mib >= 1, --steps 2..%d\n", argv[0], MAX_STEPS);
        return -1;
    }
    return 0;
}

#ifdef FERRY_HAVE_CUDA

/* 0: the blocks are only streamed, which measures the bandwidth the copy
 * engine reaches over the whole set of pinned blocks (the probe reads one
 * hot buffer). */
static const double COMPUTE_PER_UPLOAD[] = {0.0, 0.5, 1.0, 2.0, 4.0};
#define N_RATIOS ((int)(sizeof COMPUTE_PER_UPLOAD / sizeof COMPUTE_PER_UPLOAD[0]))

static fy_run_options cuda_options(fy_offload_policy policy, int depth)
{
    fy_run_options o;
    fy_run_options_init(&o);
    o.device = FY_DEVICE_CUDA;
    o.device_index = 0;
    o.offload = policy;
    o.prefetch_depth = depth;
    return o;
}

/* Pinned host-to-device bandwidth over `bytes`, best of a few copies. */
static fy_status measure_bandwidth(size_t bytes, double *pinned_bw, double *pageable_bw)
{
    fy_run_options o = cuda_options(FY_OFFLOAD_NONE, 1);
    fy_backend *b = NULL;
    FY_TRY(fy_backend_create(&o, &b));
    void *host = NULL, *dev = NULL;
    bool locked = false;
    fy_status s = b->vt->alloc_pinned(b, bytes, &host, &locked);
    if (s == FY_OK) s = b->vt->alloc_device(b, bytes, &dev);
    char *pageable = s == FY_OK ? malloc(bytes) : NULL;
    if (s == FY_OK && !pageable) s = fy_error(FY_ERR_NOMEM, "out of host memory");
    if (s == FY_OK) {
        memset(host, 1, bytes);
        memset(pageable, 1, bytes);
    }
    double *bws[2] = {pinned_bw, pageable_bw};
    const void *srcs[2] = {host, pageable};
    for (int k = 0; k < 2 && s == FY_OK; k++) {
        double best = 0;
        for (int r = 0; r < 4 && s == FY_OK; r++) {
            double t0 = fy_backend_now();
            s = fy_backend_copy_h2d_async(b, dev, srcs[k], bytes, FY_STREAM_COPY, "bandwidth");
            if (s == FY_OK) s = fy_backend_synchronize(b);
            double bw = (double)bytes / (fy_backend_now() - t0);
            best = bw > best ? bw : best;
        }
        *bws[k] = best;
    }
    if (!locked && s == FY_OK) fprintf(stderr, "warning: the bandwidth buffer could not be pinned\n");
    free(pageable);
    if (dev) b->vt->free_device(b, dev, bytes);
    if (host) b->vt->free_pinned(b, host, bytes);
    fy_backend_free(b);
    return s;
}

typedef struct synth {
    float *host;       /* blocks x block_elems */
    float embed[64];
    fy_tensor *w;      /* one tensor per block */
    int64_t block_elems;
} synth;

static fy_status declare(const bench_args *a, synth *m, fy_engine *e, int *groups)
{
    int comp, embed;
    FY_TRY(fy_engine_add_component(e, "transformer", &comp));
    int64_t n = 64;
    fy_tensor t = fy_tensor_wrap(m->embed, FY_F32, 1, &n, FY_HOST);
    FY_TRY(fy_engine_add_group(e, comp, "embed", FY_GROUP_SMALL, &t, 1, &embed));
    for (int i = 0; i < a->blocks; i++) {
        char name[32];
        snprintf(name, sizeof name, "blocks.%d", i);
        FY_TRY(fy_engine_add_group(e, comp, name, FY_GROUP_BLOCK, &m->w[i], 1, &groups[i]));
    }
    return fy_engine_reserve(e, 0);
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Median step time (after the first) for each compute time. */
static fy_status run_plan(const bench_args *a, synth *m, const fy_run_options *o, const double *compute,
                          double *step_s, uint64_t *peak)
{
    fy_engine *e = NULL;
    int *groups = calloc((size_t)a->blocks, sizeof *groups);
    if (!groups) return fy_error(FY_ERR_NOMEM, "out of memory");
    fy_status s = fy_engine_create(o, &e);
    if (s == FY_OK) s = declare(a, m, e, groups);
    if (s == FY_OK) s = fy_engine_prepare(e);
    fy_backend *b = s == FY_OK ? fy_engine_backend(e) : NULL;
    void *stream = b ? fy_cuda_stream_handle(b, FY_STREAM_COMPUTE) : NULL;
    fy_event *done = NULL;
    if (s == FY_OK) s = b->vt->event_create(b, &done);
    if (s == FY_OK) s = fy_backend_synchronize(b);
    for (int r = 0; r < N_RATIOS && s == FY_OK; r++) {
        double times[MAX_STEPS];
        for (int step = 0; step < a->steps && s == FY_OK; step++) {
            double t0 = fy_backend_now();
            for (int i = 0; i < a->blocks && s == FY_OK; i++) {
                const fy_tensor *w = NULL;
                s = fy_engine_acquire(e, groups[i], &w);
                if (s == FY_OK && compute[r] > 0) s = fy_cuda_busy(compute[r], stream);
                if (s == FY_OK) s = fy_engine_release(e, groups[i]);
            }
            /* The step ends when its compute does: the copy stream is
             * already prefetching the next step's first blocks. */
            if (s == FY_OK) s = fy_backend_event_record(b, done, FY_STREAM_COMPUTE);
            if (s == FY_OK) s = b->vt->event_synchronize(b, done);
            times[step] = fy_backend_now() - t0;
        }
        qsort(times + 1, (size_t)(a->steps - 1), sizeof *times, cmp_double);
        step_s[r] = times[1 + (a->steps - 1) / 2];
    }
    if (done) b->vt->event_destroy(b, done);
    if (s == FY_OK) s = fy_engine_finish(e);
    if (s == FY_OK) *peak = fy_engine_stats_get(e)->peak_device;
    fy_engine_free(e);
    free(groups);
    return s;
}

static fy_status synth_create(const bench_args *a, synth *m)
{
    memset(m, 0, sizeof *m);
    m->block_elems = (int64_t)a->block_mib * 1024 * 1024 / 4;
    m->host = malloc((size_t)a->blocks * (size_t)m->block_elems * sizeof(float));
    m->w = calloc((size_t)a->blocks, sizeof *m->w);
    if (!m->host || !m->w) return fy_error(FY_ERR_NOMEM, "out of host memory for %d blocks", a->blocks);
    for (int i = 0; i < a->blocks; i++) {
        float *p = m->host + (size_t)i * (size_t)m->block_elems;
        for (int64_t k = 0; k < m->block_elems; k += 1024) p[k] = (float)i; /* touch every page */
        m->w[i] = fy_tensor_wrap(p, FY_F32, 1, &m->block_elems, FY_HOST);
    }
    return FY_OK;
}

/* The planner at one budget: its plan, predictions and the measured step. */
static fy_status planner_case(const bench_args *a, synth *m, uint64_t budget, double compute)
{
    fy_run_options o = cuda_options(FY_OFFLOAD_NONE, 1);
    o.vram_budget = budget;
    fy_engine *e = NULL;
    int *groups = calloc((size_t)a->blocks, sizeof *groups);
    if (!groups) return fy_error(FY_ERR_NOMEM, "out of memory");
    fy_status s = fy_engine_create(&o, &e);
    if (s == FY_OK) s = declare(a, m, e, groups);
    if (s == FY_OK) s = fy_engine_prepare(e);
    void *stream = s == FY_OK ? fy_cuda_stream_handle(fy_engine_backend(e), FY_STREAM_COMPUTE) : NULL;
    for (int step = 0; step < a->steps && s == FY_OK; step++)
        for (int i = 0; i < a->blocks && s == FY_OK; i++) {
            const fy_tensor *w = NULL;
            s = fy_engine_acquire(e, groups[i], &w);
            if (s == FY_OK) s = fy_cuda_busy(compute, stream);
            if (s == FY_OK) s = fy_engine_release(e, groups[i]);
        }
    if (s == FY_OK) s = fy_engine_finish(e);
    if (s == FY_OK) {
        const fy_plan *p = fy_engine_plan(e);
        const fy_engine_stats *st = fy_engine_stats_get(e);
        double err = st->measured_step_s > 0 ? (st->predicted_step_s - st->measured_step_s) / st->measured_step_s : 0;
        printf("| %.1f GiB | %s d=%d, %d resident | %.1f | %.1f | %.1f | %+.1f%% |\n", (double)budget / (MIB * 1024),
               fy_offload_policy_name(p->policy), p->depth, p->resident_blocks, st->predicted_initial_step_s * 1e3,
               st->predicted_step_s * 1e3, st->measured_step_s * 1e3, 100 * err);
    }
    fy_engine_free(e);
    free(groups);
    return s;
}

static int bench_planner(const bench_args *a, double upload)
{
    synth m;
    fy_status s = synth_create(a, &m);
    double model = (double)a->blocks * a->block_mib * MIB;
    printf("planner: %d blocks of %d MiB, block compute = one upload (%.2f ms), %d steps\n\n", a->blocks, a->block_mib,
           upload * 1e3, a->steps);
    printf("| --vram-budget | plan chosen | predicted initial (ms) | predicted refined (ms) | measured (ms) | error |\n"
           "|---|---|---:|---:|---:|---:|\n");
    const double shares[3] = {0.25, 0.5, 0.85};
    for (int k = 0; k < 3 && s == FY_OK; k++) s = planner_case(a, &m, (uint64_t)(shares[k] * model), upload);
    free(m.host);
    free(m.w);
    if (s != FY_OK) return fprintf(stderr, "bench_cuda_stream: %s\n", fy_error_message()), 1;
    return 0;
}

static int bench(const bench_args *a)
{
    if (fy_cuda_device_count() < 1) {
        printf("bench_cuda_stream: no CUDA device here; nothing to measure\n");
        return 0;
    }
    double block_bytes = (double)a->block_mib * MIB;
    double pinned = 0, pageable = 0;
    fy_status s = measure_bandwidth((size_t)block_bytes, &pinned, &pageable);
    if (s != FY_OK) return fprintf(stderr, "bench_cuda_stream: %s\n", fy_error_message()), 1;
    printf("host-to-device bandwidth over %d MiB: pinned %.2f GB/s, pageable %.2f GB/s\n", a->block_mib,
           pinned / 1e9, pageable / 1e9);
    double upload = block_bytes / pinned;
    if (a->planner) return bench_planner(a, upload);
    double compute[N_RATIOS];
    for (int r = 0; r < N_RATIOS; r++) compute[r] = COMPUTE_PER_UPLOAD[r] * upload;

    synth m;
    s = synth_create(a, &m);
    struct {
        const char *name;
        fy_offload_policy policy;
        int depth;
        double step[N_RATIOS];
        uint64_t peak;
    } plans[] = {{"none (resident)", FY_OFFLOAD_NONE, 1, {0}, 0},
                 {"sequential", FY_OFFLOAD_SEQUENTIAL, 1, {0}, 0},
                 {"layerwise d=1", FY_OFFLOAD_LAYERWISE, 1, {0}, 0},
                 {"layerwise d=2", FY_OFFLOAD_LAYERWISE, 2, {0}, 0}};
    int n_plans = (int)(sizeof plans / sizeof plans[0]);
    for (int p = 0; p < n_plans && s == FY_OK; p++) {
        fy_run_options o = cuda_options(plans[p].policy, plans[p].depth);
        s = run_plan(a, &m, &o, compute, plans[p].step, &plans[p].peak);
    }
    free(m.host);
    free(m.w);
    if (s != FY_OK) return fprintf(stderr, "bench_cuda_stream: %s\n", fy_error_message()), 1;

    printf("%d blocks of %d MiB; upload %.2f ms per block; median of %d steps after the first\n\n", a->blocks,
           a->block_mib, upload * 1e3, a->steps - 1);
    /* The streaming floor at the bandwidth layerwise d=1 reached with no compute. */
    double streamed_s = plans[2].step[0];
    printf("streaming alone (layerwise d=1, no compute): %.1f ms a step = %.2f GB/s over the %d blocks\n\n",
           streamed_s * 1e3, a->blocks * block_bytes / streamed_s / 1e9, a->blocks);
    printf("| plan | peak device | compute/upload | step (ms) | / resident | / floor (probe bw) | / floor (streaming bw) |\n"
           "|---|---:|---:|---:|---:|---:|---:|\n");
    for (int p = 0; p < n_plans; p++)
        for (int r = 1; r < N_RATIOS; r++) {
            double c = compute[r] * a->blocks;
            bool streams = plans[p].policy != FY_OFFLOAD_NONE;
            double probe_floor = streams && a->blocks * upload > c ? a->blocks * upload : c;
            double stream_floor = streams && streamed_s > c ? streamed_s : c;
            printf("| %s | %.0f MiB | %.1f | %.1f | %.3f | %.3f | %.3f |\n", plans[p].name,
                   (double)plans[p].peak / MIB, COMPUTE_PER_UPLOAD[r], plans[p].step[r] * 1e3,
                   plans[p].step[r] / plans[0].step[r], plans[p].step[r] / probe_floor,
                   plans[p].step[r] / stream_floor);
        }
    return 0;
}

#else

static int bench(const bench_args *a)
{
    (void)a;
    printf("bench_cuda_stream: this build has no CUDA backend; nothing to measure\n");
    return 0;
}

#endif

int main(int argc, char **argv)
{
    bench_args a;
    if (parse_args(argc, argv, &a) != 0) return 2;
    return bench(&a);
}
