/* The compute rate the planner's first estimate divides a step's FLOPs by.
 * A device that computes on the host (cpu, emu) times a short matrix
 * product through the backend's op table, as the models do, with their
 * thread count and the weights in the storage dtype (bf16 storage converts weights inside
 * the product). A GPU's rate is assumed until its kernels are timed here. */
#include <stdlib.h>
#include <string.h>

#include "ferry/ops.h"
#include "mem/engine_internal.h"

/* About 2 GFLOP a product: a few tens of milliseconds on two cores. */
#define RATE_M 256
#define RATE_K 2048
#define RATE_N 2048
#define RATE_RUNS 3
#define RATE_ASSUMED_GPU 100e12
#define RATE_ASSUMED_HOST 100e9

static fy_status timed_products(fy_ops *ops, fy_dtype wt, const float *x, const void *w, float *y, double *best)
{
    *best = 0;
    for (int r = 0; r <= RATE_RUNS; r++) { /* run 0 warms the scratch and the caches */
        double t0 = fy_backend_now();
        FY_TRY(ops->linear(ops, fy_f32(x), (fy_weight){w, wt, NULL, 0}, FY_NO_VIEW, fy_f32(y), RATE_M, RATE_K,
                           RATE_N));
        double d = fy_backend_now() - t0;
        if (r > 0 && (*best == 0 || d < *best)) *best = d;
    }
    return FY_OK;
}

static double measure_host(fy_backend *b, int threads, fy_dtype wt)
{
    size_t nw = (size_t)RATE_N * RATE_K, nx = (size_t)RATE_M * RATE_K;
    float *x = malloc(nx * sizeof *x), *y = malloc((size_t)RATE_M * RATE_N * sizeof *y);
    float *wf = malloc(nw * sizeof *wf);
    void *w = wt == FY_F32 ? (void *)wf : malloc(nw * fy_dtype_size(wt));
    fy_ops *ops = NULL;
    fy_ops_config c = {.threads = threads, .gemm_dtype = FY_F32};
    double best = 0;
    if (x && y && wf && w && fy_ops_create(b, &c, &ops) == FY_OK) {
        for (size_t i = 0; i < nx; i++) x[i] = (float)((int)(i % 13) - 6) * 0.01f;
        for (size_t i = 0; i < nw; i++) wf[i] = (float)((int)(i % 7) - 3) * 0.01f;
        if (w == wf || fy_convert(w, wt, wf, FY_F32, nw) == FY_OK) (void)timed_products(ops, wt, x, w, y, &best);
    }
    fy_ops_free(ops);
    if (w != wf) free(w);
    free(wf);
    free(x);
    free(y);
    return best > 0 ? 2.0 * RATE_M * RATE_K * RATE_N / best : 0;
}

double fy_eng_flop_rate(const fy_engine *e, bool *measured)
{
    *measured = false;
    if (strcmp(fy_backend_name(e->backend), "cuda") == 0) return RATE_ASSUMED_GPU;
    fy_dtype st = e->opts.storage_dtype;
    fy_dtype wt = st == FY_BF16 || st == FY_F16 ? st : FY_F32;
    double rate = measure_host(e->backend, e->opts.threads, wt);
    *measured = rate > 0;
    return rate > 0 ? rate : RATE_ASSUMED_HOST;
}
