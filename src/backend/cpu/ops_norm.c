/* Normalizations and softmax. Row statistics accumulate in double so that
 * long rows (dim 5120) keep f32 accuracy; the output math is f32. */
#include "backend/cpu/ops_internal.h"

#include <math.h>

typedef struct norm_args {
    const float *x, *w, *b, *scale, *shift;
    float *out;
    int64_t dim, rows_per_mod;
    float eps;
} norm_args;

static int64_t rows_grain(int64_t dim)
{
    return dim > 0 ? (FY_CPU_GRAIN + dim - 1) / dim : 1;
}

static void row_mean_rstd(const float *x, int64_t dim, float eps, float *mean, float *rstd)
{
    double sum = 0.0;
    for (int64_t i = 0; i < dim; i++) sum += x[i];
    double m = sum / (double)dim;
    double var = 0.0;
    for (int64_t i = 0; i < dim; i++) {
        double d = x[i] - m;
        var += d * d;
    }
    var /= (double)dim;
    *mean = (float)m;
    *rstd = (float)(1.0 / sqrt(var + eps));
}

static void layer_norm_rows(void *raw, int64_t begin, int64_t end)
{
    const norm_args *p = raw;
    for (int64_t r = begin; r < end; r++) {
        const float *x = p->x + r * p->dim;
        float *out = p->out + r * p->dim;
        const float *scale = p->scale ? p->scale + (r / p->rows_per_mod) * p->dim : NULL;
        const float *shift = p->shift ? p->shift + (r / p->rows_per_mod) * p->dim : NULL;
        float mean, rstd;
        row_mean_rstd(x, p->dim, p->eps, &mean, &rstd);
        for (int64_t i = 0; i < p->dim; i++) {
            float y = (x[i] - mean) * rstd;
            if (p->w) y *= p->w[i];
            if (p->b) y += p->b[i];
            if (scale) y = y * (1.0f + scale[i]) + shift[i];
            out[i] = y;
        }
    }
}

void fy_cpu_layer_norm(fy_cpu_ctx *ctx, const float *x, const float *w, const float *b, float *out,
                       int64_t rows, int64_t dim, float eps)
{
    norm_args args = {.x = x, .w = w, .b = b, .out = out, .dim = dim, .rows_per_mod = 1, .eps = eps};
    fy_cpu_parallel_range(ctx, rows, rows_grain(dim), layer_norm_rows, &args);
}

void fy_cpu_layer_norm_modulate(fy_cpu_ctx *ctx, const float *x, const float *w, const float *b,
                                const float *scale, const float *shift, float *out, int64_t rows,
                                int64_t dim, int64_t rows_per_mod, float eps)
{
    norm_args args = {.x = x, .w = w, .b = b, .scale = scale, .shift = shift, .out = out, .dim = dim,
                      .rows_per_mod = rows_per_mod > 0 ? rows_per_mod : 1, .eps = eps};
    fy_cpu_parallel_range(ctx, rows, rows_grain(dim), layer_norm_rows, &args);
}

static void rms_norm_rows(void *raw, int64_t begin, int64_t end)
{
    const norm_args *p = raw;
    for (int64_t r = begin; r < end; r++) {
        const float *x = p->x + r * p->dim;
        float *out = p->out + r * p->dim;
        double ss = 0.0;
        for (int64_t i = 0; i < p->dim; i++) ss += (double)x[i] * x[i];
        float rs = (float)(1.0 / sqrt(ss / (double)p->dim + p->eps));
        for (int64_t i = 0; i < p->dim; i++) out[i] = p->w ? x[i] * rs * p->w[i] : x[i] * rs;
    }
}

void fy_cpu_rms_norm(fy_cpu_ctx *ctx, const float *x, const float *w, float *out, int64_t rows,
                     int64_t dim, float eps)
{
    norm_args args = {.x = x, .w = w, .out = out, .dim = dim, .eps = eps};
    fy_cpu_parallel_range(ctx, rows, rows_grain(dim), rms_norm_rows, &args);
}

/* ---- Channel RMS norm over [C, N]: columns are independent -------------- */

#define FY_CHANNEL_COLS 256

typedef struct channel_args {
    const float *x, *gamma, *bias;
    float *out;
    int64_t C, N;
    float eps;
} channel_args;

static void channel_norm_cols(void *raw, int64_t begin, int64_t end)
{
    const channel_args *p = raw;
    double ss[FY_CHANNEL_COLS] = {0};
    float inv[FY_CHANNEL_COLS];
    int64_t n = end - begin;
    for (int64_t c = 0; c < p->C; c++) {
        const float *x = p->x + c * p->N + begin;
        for (int64_t j = 0; j < n; j++) ss[j] += (double)x[j] * x[j];
    }
    double root_c = sqrt((double)p->C);
    for (int64_t j = 0; j < n; j++) {
        double norm = sqrt(ss[j]);
        inv[j] = (float)(root_c / (norm > p->eps ? norm : p->eps));
    }
    for (int64_t c = 0; c < p->C; c++) {
        const float *x = p->x + c * p->N + begin;
        float *out = p->out + c * p->N + begin;
        float g = p->gamma ? p->gamma[c] : 1.0f;
        float b = p->bias ? p->bias[c] : 0.0f;
        for (int64_t j = 0; j < n; j++) out[j] = x[j] * inv[j] * g + b;
    }
}

void fy_cpu_channel_rms_norm(fy_cpu_ctx *ctx, const float *x, const float *gamma, const float *bias,
                             float *out, int64_t C, int64_t N, float eps)
{
    channel_args args = {x, gamma, bias, out, C, N, eps};
    fy_cpu_parallel_range(ctx, N, FY_CHANNEL_COLS, channel_norm_cols, &args);
}

/* ---- GroupNorm ---------------------------------------------------------- */

typedef struct group_args {
    const float *x, *w, *b;
    float *out;
    int64_t per_group, N;
    float eps;
} group_args;

static void group_norm_groups(void *raw, int64_t begin, int64_t end)
{
    const group_args *p = raw;
    int64_t n = p->per_group * p->N;
    for (int64_t g = begin; g < end; g++) {
        float mean, rstd;
        row_mean_rstd(p->x + g * n, n, p->eps, &mean, &rstd);
        for (int64_t c = g * p->per_group; c < (g + 1) * p->per_group; c++) {
            float w = p->w ? p->w[c] : 1.0f, b = p->b ? p->b[c] : 0.0f;
            const float *x = p->x + c * p->N;
            float *out = p->out + c * p->N;
            for (int64_t i = 0; i < p->N; i++) out[i] = (x[i] - mean) * rstd * w + b;
        }
    }
}

void fy_cpu_group_norm(fy_cpu_ctx *ctx, const float *x, const float *w, const float *b, float *out, int64_t C,
                       int64_t N, int64_t G, float eps)
{
    group_args args = {x, w, b, out, C / G, N, eps};
    fy_cpu_parallel_range(ctx, G, 1, group_norm_groups, &args);
}

/* ---- Softmax ------------------------------------------------------------ */

static void softmax_rows(void *raw, int64_t begin, int64_t end)
{
    const norm_args *p = raw;
    for (int64_t r = begin; r < end; r++) {
        const float *x = p->x + r * p->dim;
        float *out = p->out + r * p->dim;
        float mx = -INFINITY;
        for (int64_t i = 0; i < p->dim; i++) mx = x[i] > mx ? x[i] : mx;
        double sum = 0.0;
        for (int64_t i = 0; i < p->dim; i++) {
            out[i] = expf(x[i] - mx);
            sum += out[i];
        }
        float inv = (float)(1.0 / sum);
        for (int64_t i = 0; i < p->dim; i++) out[i] *= inv;
    }
}

void fy_cpu_softmax(fy_cpu_ctx *ctx, const float *x, float *out, int64_t rows, int64_t dim)
{
    norm_args args = {.x = x, .out = out, .dim = dim};
    fy_cpu_parallel_range(ctx, rows, rows_grain(dim), softmax_rows, &args);
}
