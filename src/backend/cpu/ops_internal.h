/* Shared between the CPU op files: the context and its per-thread scratch. */
#ifndef FERRY_BACKEND_CPU_OPS_INTERNAL_H
#define FERRY_BACKEND_CPU_OPS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "backend/cpu/threadpool.h"
#include "backend/cpu/cpu_ops.h"

struct fy_cpu_ctx {
    fy_threadpool *pool;
    int n_threads;
    float **scratch;        /* one buffer per thread */
    size_t *scratch_floats; /* their capacities */
};

/* Grow every thread's scratch to at least floats (before a parallel run:
 * tasks never allocate). */
fy_status fy_cpu_scratch_reserve(fy_cpu_ctx *ctx, size_t floats);
static inline float *fy_cpu_scratch(fy_cpu_ctx *ctx, int thread)
{
    return ctx->scratch[thread];
}

/* fn(arg, begin, end) over [0, n) in chunks of `grain` (the last shorter);
 * chunks are fixed by n and grain alone, so results never depend on the
 * thread count. Runs inline when n <= grain. */
typedef void (*fy_range_fn)(void *arg, int64_t begin, int64_t end);
void fy_cpu_parallel_range(fy_cpu_ctx *ctx, int64_t n, int64_t grain, fy_range_fn fn, void *arg);

/* dst [nn, K] = rows [n0, n0 + nn) of W [N, K] (any float dtype with a
 * size; fp8 through its table) as f32, times scale[scale_rows ? n : 0]
 * when scale is not NULL (ops_gemm.c). */
void fy_cpu_weight_rows_f32(float *dst, const void *w, fy_dtype wtype, const float *scale, int scale_rows,
                            int64_t n0, int64_t nn, int64_t K);

/* out = gelu_tanh(x), times gate when gate is not NULL (ops_gelu.c). */
void fy_cpu_gelu_tanh_span(const float *x, const float *gate, float *out, int64_t n);

/* Elementwise chunk size: big enough to amortize a wake-up. */
#define FY_CPU_GRAIN 16384

#endif
