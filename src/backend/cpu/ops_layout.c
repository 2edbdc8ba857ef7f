/* Moving values between layouts: strided transposes (the VAE's attention
 * turns [C, h*w] frames into tokens and back) and nearest 2x upsampling. */
#include "backend/cpu/ops_internal.h"

typedef struct transpose_args {
    float *dst;
    const float *src;
    int64_t ld_dst, ld_src, rows, cols;
    int accumulate;
} transpose_args;

/* Task t writes destination row t (source column t): writes stay contiguous
 * and no two tasks touch the same element. */
static void transpose_cols(void *raw, int64_t begin, int64_t end)
{
    const transpose_args *p = raw;
    for (int64_t j = begin; j < end; j++) {
        float *d = p->dst + j * p->ld_dst;
        const float *s = p->src + j;
        if (p->accumulate)
            for (int64_t i = 0; i < p->rows; i++) d[i] += s[i * p->ld_src];
        else
            for (int64_t i = 0; i < p->rows; i++) d[i] = s[i * p->ld_src];
    }
}

void fy_cpu_transpose(fy_cpu_ctx *ctx, float *dst, int64_t ld_dst, const float *src, int64_t ld_src, int64_t rows,
                      int64_t cols, int accumulate)
{
    transpose_args args = {dst, src, ld_dst, ld_src, rows, cols, accumulate};
    fy_cpu_parallel_range(ctx, cols, 16, transpose_cols, &args);
}

typedef struct upsample_args {
    const float *in;
    float *out;
    int64_t h, w;
} upsample_args;

static void upsample_planes(void *raw, int64_t begin, int64_t end)
{
    const upsample_args *p = raw;
    int64_t H = 2 * p->h, W = 2 * p->w;
    for (int64_t f = begin; f < end; f++) {
        const float *src = p->in + f * p->h * p->w;
        float *dst = p->out + f * H * W;
        for (int64_t i = 0; i < H; i++)
            for (int64_t j = 0; j < W; j++) dst[i * W + j] = src[(i / 2) * p->w + j / 2];
    }
}

void fy_cpu_upsample_nearest2x(fy_cpu_ctx *ctx, const float *in, float *out, int64_t planes, int64_t h, int64_t w)
{
    upsample_args args = {in, out, h, w};
    fy_cpu_parallel_range(ctx, planes, 1, upsample_planes, &args);
}
