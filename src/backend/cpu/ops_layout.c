/* Moving values between layouts: strided transposes (the VAE's attention
 * turns [C, h*w] frames into tokens and back), nearest 2x upsampling and
 * general permutes (the Wan2.2 VAE's pixel shuffles). */
#include <stdbool.h>

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

typedef struct permute_args {
    float *dst;
    const float *src;
    int ndim;
    int64_t dims[FY_PERMUTE_MAX_DIMS];    /* dst's shape */
    int64_t strides[FY_PERMUTE_MAX_DIMS]; /* src's stride along each dst dimension */
} permute_args;

/* Task r writes dst row r (all but the last dimension fixed). */
static void permute_rows(void *raw, int64_t begin, int64_t end)
{
    const permute_args *p = raw;
    int last = p->ndim - 1;
    int64_t n = p->dims[last], step = p->strides[last];
    for (int64_t r = begin; r < end; r++) {
        int64_t rest = r, off = 0;
        for (int d = last - 1; d >= 0; d--) {
            off += (rest % p->dims[d]) * p->strides[d];
            rest /= p->dims[d];
        }
        float *d = p->dst + r * n;
        const float *s = p->src + off;
        for (int64_t j = 0; j < n; j++) d[j] = s[j * step];
    }
}

fy_status fy_cpu_permute(fy_cpu_ctx *ctx, float *dst, const float *src, int ndim, const int64_t *shape,
                         const int *perm)
{
    if (ndim < 1 || ndim > FY_PERMUTE_MAX_DIMS) return fy_error(FY_ERR_INVALID, "permute: %d dimensions", ndim);
    permute_args args = {dst, src, ndim, {0}, {0}};
    int64_t src_strides[FY_PERMUTE_MAX_DIMS], stride = 1, rows = 1;
    bool seen[FY_PERMUTE_MAX_DIMS] = {false};
    for (int d = ndim - 1; d >= 0; d--) {
        if (shape[d] < 0) return fy_error(FY_ERR_INVALID, "permute: negative size");
        src_strides[d] = stride;
        stride *= shape[d];
    }
    for (int d = 0; d < ndim; d++) {
        if (perm[d] < 0 || perm[d] >= ndim || seen[perm[d]])
            return fy_error(FY_ERR_INVALID, "permute: not a permutation of %d dimensions", ndim);
        seen[perm[d]] = true;
        args.dims[d] = shape[perm[d]];
        args.strides[d] = src_strides[perm[d]];
        if (d < ndim - 1) rows *= args.dims[d];
    }
    if (stride == 0) return FY_OK;
    fy_cpu_parallel_range(ctx, rows, 64, permute_rows, &args);
    return FY_OK;
}
