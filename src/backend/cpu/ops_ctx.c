/* The CPU op context: thread pool, per-thread scratch, range splitting. */
#include "backend/cpu/ops_internal.h"

#include <cblas.h>
#include <stdlib.h>
#include <unistd.h>

fy_status fy_cpu_ctx_create(int n_threads, fy_cpu_ctx **out)
{
    *out = NULL;
    if (n_threads < 0) return fy_error(FY_ERR_INVALID, "--threads %d: must be 0 (all cores) or more", n_threads);
    if (n_threads == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = cores > 0 ? (int)cores : 1;
    }
    fy_cpu_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return fy_error(FY_ERR_NOMEM, "cpu context: out of memory");
    ctx->n_threads = n_threads;
    ctx->scratch = calloc((size_t)n_threads, sizeof *ctx->scratch);
    ctx->scratch_floats = calloc((size_t)n_threads, sizeof *ctx->scratch_floats);
    if (!ctx->scratch || !ctx->scratch_floats) {
        fy_cpu_ctx_free(ctx);
        return fy_error(FY_ERR_NOMEM, "cpu context: out of memory");
    }
    fy_status s = fy_threadpool_create(n_threads, &ctx->pool);
    if (s != FY_OK) {
        fy_cpu_ctx_free(ctx);
        return s;
    }
    /* The pool owns the parallelism; BLAS threads inside pool tasks would
     * oversubscribe the cores and make results depend on the thread count. */
    openblas_set_num_threads(1);
    *out = ctx;
    return FY_OK;
}

void fy_cpu_ctx_free(fy_cpu_ctx *ctx)
{
    if (!ctx) return;
    fy_threadpool_free(ctx->pool);
    if (ctx->scratch)
        for (int i = 0; i < ctx->n_threads; i++) free(ctx->scratch[i]);
    free(ctx->scratch);
    free(ctx->scratch_floats);
    free(ctx);
}

int fy_cpu_ctx_threads(const fy_cpu_ctx *ctx)
{
    return ctx->n_threads;
}

size_t fy_cpu_ctx_scratch_bytes(const fy_cpu_ctx *ctx)
{
    size_t total = 0;
    for (int i = 0; i < ctx->n_threads; i++) total += ctx->scratch_floats[i] * sizeof(float);
    return total;
}

fy_status fy_cpu_scratch_reserve(fy_cpu_ctx *ctx, size_t floats)
{
    for (int i = 0; i < ctx->n_threads; i++) {
        if (ctx->scratch_floats[i] >= floats) continue;
        float *grown = NULL;
        size_t bytes = (floats * sizeof(float) + 63) & ~(size_t)63;
        if (posix_memalign((void **)&grown, 64, bytes) != 0)
            return fy_error(FY_ERR_NOMEM, "cpu ops: cannot allocate %zu bytes of scratch", bytes);
        free(ctx->scratch[i]);
        ctx->scratch[i] = grown;
        ctx->scratch_floats[i] = floats;
    }
    return FY_OK;
}

typedef struct range_job {
    fy_range_fn fn;
    void *arg;
    int64_t n, grain;
} range_job;

static void range_task(void *raw, int64_t task, int thread)
{
    (void)thread;
    const range_job *job = raw;
    int64_t begin = task * job->grain;
    int64_t end = begin + job->grain < job->n ? begin + job->grain : job->n;
    job->fn(job->arg, begin, end);
}

void fy_cpu_parallel_range(fy_cpu_ctx *ctx, int64_t n, int64_t grain, fy_range_fn fn, void *arg)
{
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    if (n <= grain) {
        fn(arg, 0, n);
        return;
    }
    range_job job = {fn, arg, n, grain};
    fy_threadpool_run(ctx->pool, (n + grain - 1) / grain, range_task, &job);
}
