/* Elementwise ops and activations. Each op is a small kernel over a range,
 * run over the pool in fixed chunks. */
#include "backend/cpu/ops_internal.h"

#include <math.h>

typedef struct ew_args {
    const float *a, *b;
    float *out;
    float s;
} ew_args;

#define FY_EW_KERNEL(name, expr)                                      \
    static void name(void *raw, int64_t begin, int64_t end)          \
    {                                                                 \
        const ew_args *p = raw;                                       \
        const float *a = p->a, *b = p->b;                             \
        float *out = p->out;                                          \
        const float s = p->s;                                         \
        (void)b, (void)s;                                             \
        for (int64_t i = begin; i < end; i++) out[i] = (expr);        \
    }

static inline float silu1(float x)
{
    return x / (1.0f + expf(-x));
}

static inline float gelu1(float x)
{
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

FY_EW_KERNEL(add_kernel, a[i] + b[i])
FY_EW_KERNEL(mul_kernel, a[i] * b[i])
FY_EW_KERNEL(scale_kernel, a[i] * s)
FY_EW_KERNEL(axpy_kernel, out[i] + s * a[i])
FY_EW_KERNEL(silu_kernel, silu1(a[i]))
FY_EW_KERNEL(gelu_kernel, gelu1(a[i]))
FY_EW_KERNEL(relu_kernel, a[i] > 0.0f ? a[i] : 0.0f)

/* gelu_tanh(a) (* b): the vectorised span in ops_gelu.c. */
static void gelu_tanh_kernel(void *raw, int64_t begin, int64_t end)
{
    const ew_args *p = raw;
    fy_cpu_gelu_tanh_span(p->a + begin, p->b ? p->b + begin : NULL, p->out + begin, end - begin);
}

static void run_ew(fy_cpu_ctx *ctx, fy_range_fn fn, const float *a, const float *b, float s, float *out,
                   int64_t n)
{
    ew_args args = {a, b, out, s};
    fy_cpu_parallel_range(ctx, n, FY_CPU_GRAIN, fn, &args);
}

void fy_cpu_add(fy_cpu_ctx *ctx, const float *a, const float *b, float *out, int64_t n)
{
    run_ew(ctx, add_kernel, a, b, 0.0f, out, n);
}

void fy_cpu_mul(fy_cpu_ctx *ctx, const float *a, const float *b, float *out, int64_t n)
{
    run_ew(ctx, mul_kernel, a, b, 0.0f, out, n);
}

void fy_cpu_scale(fy_cpu_ctx *ctx, const float *x, float s, float *out, int64_t n)
{
    run_ew(ctx, scale_kernel, x, NULL, s, out, n);
}

void fy_cpu_axpy(fy_cpu_ctx *ctx, float alpha, const float *x, float *y, int64_t n)
{
    run_ew(ctx, axpy_kernel, x, NULL, alpha, y, n);
}

void fy_cpu_silu(fy_cpu_ctx *ctx, const float *x, float *out, int64_t n)
{
    run_ew(ctx, silu_kernel, x, NULL, 0.0f, out, n);
}

void fy_cpu_gelu(fy_cpu_ctx *ctx, const float *x, float *out, int64_t n)
{
    run_ew(ctx, gelu_kernel, x, NULL, 0.0f, out, n);
}

void fy_cpu_gelu_tanh(fy_cpu_ctx *ctx, const float *x, float *out, int64_t n)
{
    run_ew(ctx, gelu_tanh_kernel, x, NULL, 0.0f, out, n);
}

void fy_cpu_relu(fy_cpu_ctx *ctx, const float *x, float *out, int64_t n)
{
    run_ew(ctx, relu_kernel, x, NULL, 0.0f, out, n);
}

void fy_cpu_gated_gelu(fy_cpu_ctx *ctx, const float *h0, const float *h1, float *out, int64_t n)
{
    run_ew(ctx, gelu_tanh_kernel, h0, h1, 0.0f, out, n);
}

typedef struct gated_add_args {
    float *x;
    const float *y, *gate;
    int64_t dim, rows_per_gate;
} gated_add_args;

static void gated_add_rows(void *raw, int64_t begin, int64_t end)
{
    const gated_add_args *p = raw;
    for (int64_t r = begin; r < end; r++) {
        float *x = p->x + r * p->dim;
        const float *y = p->y + r * p->dim;
        const float *g = p->gate + (r / p->rows_per_gate) * p->dim;
        for (int64_t i = 0; i < p->dim; i++) x[i] += y[i] * g[i];
    }
}

void fy_cpu_gated_add(fy_cpu_ctx *ctx, float *x, const float *y, const float *gate, int64_t rows,
                      int64_t dim, int64_t rows_per_gate)
{
    gated_add_args args = {x, y, gate, dim, rows_per_gate > 0 ? rows_per_gate : 1};
    int64_t grain = dim > 0 ? (FY_CPU_GRAIN + dim - 1) / dim : rows;
    fy_cpu_parallel_range(ctx, rows, grain, gated_add_rows, &args);
}
