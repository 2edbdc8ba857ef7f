// Normalizations and softmax on the GPU. Row ops give each row one block and
// reduce in f32: per-thread partial sums over a strided slice of the row, then
// warp shuffles and one shared-memory exchange between warps. Layer norm takes
// the variance as the mean of (x - mean)^2 in a second pass (not
// E[x^2] - mean^2, which cancels badly when |mean| >> std). Rows are re-read
// from global memory for each pass rather than held in registers, so any dim
// works; a row of the largest models (5120 floats) stays in L1/L2 between
// passes. Outputs are written only in the last pass, each element by the
// thread that read it, so out may equal x.
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "backend/cuda/cuda_ops_internal.h"

namespace {

constexpr int kMaxRowThreads = 256;
// Blocks loop over rows past this (gridDim.x is far larger, but one block per
// row beyond a million rows buys nothing).
constexpr int64_t kMaxRowBlocks = 1 << 20;
constexpr int kColThreads = 256;
constexpr int64_t kMaxColBlocks = 65535;

// A multiple of 32 (the shuffles use full warp masks), no more than the row
// needs, so a short row does not leave most of a block idle.
int row_threads(int64_t dim)
{
    int64_t t = (dim + 31) / 32 * 32;
    return (int)(t < kMaxRowThreads ? t : kMaxRowThreads);
}

unsigned row_blocks(int64_t rows)
{
    return (unsigned)(rows < kMaxRowBlocks ? rows : kMaxRowBlocks);
}

struct Sum {
    __device__ float operator()(float a, float b) const { return a + b; }
};
// The CPU's comparison (x > m ? x : m), so NaNs are treated alike.
struct Max {
    __device__ float operator()(float a, float b) const { return b > a ? b : a; }
};

// An xor butterfly leaves the same value in every lane.
template <typename Op>
__device__ float warp_reduce(float v, Op op)
{
    for (int offset = 16; offset > 0; offset >>= 1)
        v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

// The block's reduction, returned to every thread. blockDim.x must be a
// multiple of 32; threads without elements pass the identity.
template <typename Op>
__device__ float block_reduce(float v, Op op, float identity)
{
    __shared__ float partial[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_reduce(v, op);
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = lane < (int)(blockDim.x >> 5) ? partial[lane] : identity;
    v = warp_reduce(v, op);
    // partial is reused by the block's next reduction.
    __syncthreads();
    return v;
}

__device__ float row_sum(const float *x, int64_t dim)
{
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) s += x[i];
    return block_reduce(s, Sum{}, 0.0f);
}

__device__ float row_sum_sq_dev(const float *x, int64_t dim, float mean)
{
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
        float d = x[i] - mean;
        s += d * d;
    }
    return block_reduce(s, Sum{}, 0.0f);
}

// w/b NULL: no affine; scale NULL: no modulation (shift NULL reads as 0).
struct LayerNormArgs {
    const float *w, *b, *scale, *shift;
    int64_t rows_per_mod;
    float eps;
};

__global__ void layer_norm_kernel(const float *x, float *out, int64_t rows, int64_t dim,
                                  LayerNormArgs p)
{
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * dim;
        float *yr = out + r * dim;
        const float mean = row_sum(xr, dim) / (float)dim;
        const float var = row_sum_sq_dev(xr, dim, mean) / (float)dim;
        const float rstd = 1.0f / sqrtf(var + p.eps);
        const int64_t m = (r / p.rows_per_mod) * dim;
        for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
            float y = (xr[i] - mean) * rstd;
            if (p.w) y *= p.w[i];
            if (p.b) y += p.b[i];
            if (p.scale) y = y * (1.0f + p.scale[m + i]) + (p.shift ? p.shift[m + i] : 0.0f);
            yr[i] = y;
        }
    }
}

__global__ void rms_norm_kernel(const float *x, const float *w, float *out, int64_t rows,
                                int64_t dim, float eps)
{
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * dim;
        float *yr = out + r * dim;
        const float ms = row_sum_sq_dev(xr, dim, 0.0f) / (float)dim;
        const float rs = 1.0f / sqrtf(ms + eps);
        for (int64_t i = threadIdx.x; i < dim; i += blockDim.x)
            yr[i] = w ? xr[i] * rs * w[i] : xr[i] * rs;
    }
}

__global__ void softmax_kernel(const float *x, float *out, int64_t rows, int64_t dim)
{
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * dim;
        float *yr = out + r * dim;
        float mx = -INFINITY;
        for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) mx = Max{}(mx, xr[i]);
        mx = block_reduce(mx, Max{}, -INFINITY);
        float s = 0.0f;
        for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) s += expf(xr[i] - mx);
        const float inv = 1.0f / block_reduce(s, Sum{}, 0.0f);
        // exp is recomputed rather than stored in out and re-read: the same
        // cost, and it keeps out == x safe.
        for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = expf(xr[i] - mx) * inv;
    }
}

// x [C, N]: one thread per column n, so at each channel the threads of a warp
// read consecutive addresses. F.normalize clamps the norm (not its square)
// with eps.
__global__ void channel_rms_norm_kernel(const float *x, const float *gamma, const float *bias,
                                        float *out, int64_t C, int64_t N, float eps)
{
    const float root_c = sqrtf((float)C);
    for (int64_t n = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; n < N;
         n += (int64_t)gridDim.x * blockDim.x) {
        float ss = 0.0f;
        for (int64_t c = 0; c < C; c++) {
            float v = x[c * N + n];
            ss += v * v;
        }
        const float norm = sqrtf(ss);
        const float inv = root_c / (norm > eps ? norm : eps);
        for (int64_t c = 0; c < C; c++) {
            float g = gamma ? gamma[c] : 1.0f;
            float b = bias ? bias[c] : 0.0f;
            out[c * N + n] = x[c * N + n] * inv * g + b;
        }
    }
}

/* GroupNorm over x [C, N]: one block per group of per_group channels, the
 * statistics in double (two passes, as the CPU op), then the affine. In
 * place is safe: each element is read before it is written. */
__global__ void group_norm_kernel(const float *x, const float *w, const float *b, float *out,
                                  int64_t per_group, int64_t N, float eps)
{
    __shared__ double red[kColThreads];
    const int64_t g = blockIdx.x, n = per_group * N;
    const float *xg = x + g * n;
    float *og = out + g * n;
    double acc = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += xg[i];
    red[threadIdx.x] = acc;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if ((int)threadIdx.x < k) red[threadIdx.x] += red[threadIdx.x + k];
        __syncthreads();
    }
    const double mean = red[0] / (double)n;
    __syncthreads();
    acc = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        double d = xg[i] - mean;
        acc += d * d;
    }
    red[threadIdx.x] = acc;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if ((int)threadIdx.x < k) red[threadIdx.x] += red[threadIdx.x + k];
        __syncthreads();
    }
    const float m = (float)mean;
    const float rstd = (float)(1.0 / sqrt(red[0] / (double)n + (double)eps));
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        const int64_t c = g * per_group + i / N;
        og[i] = (xg[i] - m) * rstd * (w ? w[c] : 1.0f) + (b ? b[c] : 0.0f);
    }
}

fy_status launch_layer_norm(fy_cuda_ops *ops, const float *x, float *out, int64_t rows,
                            int64_t dim, const LayerNormArgs &p, const char *what)
{
    if (rows <= 0 || dim <= 0) return FY_OK;
    layer_norm_kernel<<<row_blocks(rows), row_threads(dim), 0, ops->stream>>>(x, out, rows, dim, p);
    return fy_cuda_launched(what);
}

}  // namespace

extern "C" fy_status fy_cuda_layer_norm(fy_cuda_ops *ops, const float *x, const float *w,
                                        const float *b, float *out, int64_t rows, int64_t dim,
                                        float eps)
{
    LayerNormArgs p = {w, b, NULL, NULL, 1, eps};
    return launch_layer_norm(ops, x, out, rows, dim, p, "layer_norm");
}

extern "C" fy_status fy_cuda_layer_norm_modulate(fy_cuda_ops *ops, const float *x, const float *w,
                                                 const float *b, const float *scale,
                                                 const float *shift, float *out, int64_t rows,
                                                 int64_t dim, int64_t rows_per_mod, float eps)
{
    LayerNormArgs p = {w, b, scale, shift, rows_per_mod > 0 ? rows_per_mod : 1, eps};
    return launch_layer_norm(ops, x, out, rows, dim, p, "layer_norm_modulate");
}

extern "C" fy_status fy_cuda_rms_norm(fy_cuda_ops *ops, const float *x, const float *w, float *out,
                                      int64_t rows, int64_t dim, float eps)
{
    if (rows <= 0 || dim <= 0) return FY_OK;
    rms_norm_kernel<<<row_blocks(rows), row_threads(dim), 0, ops->stream>>>(x, w, out, rows, dim,
                                                                          eps);
    return fy_cuda_launched("rms_norm");
}

extern "C" fy_status fy_cuda_channel_rms_norm(fy_cuda_ops *ops, const float *x, const float *gamma,
                                              const float *bias, float *out, int64_t C, int64_t N,
                                              float eps)
{
    if (C <= 0 || N <= 0) return FY_OK;
    int64_t blocks = (N + kColThreads - 1) / kColThreads;
    if (blocks > kMaxColBlocks) blocks = kMaxColBlocks;
    channel_rms_norm_kernel<<<(unsigned)blocks, kColThreads, 0, ops->stream>>>(x, gamma, bias, out,
                                                                               C, N, eps);
    return fy_cuda_launched("channel_rms_norm");
}

extern "C" fy_status fy_cuda_group_norm(fy_cuda_ops *ops, const float *x, const float *w,
                                        const float *b, float *out, int64_t C, int64_t N, int64_t G,
                                        float eps)
{
    if (C <= 0 || N <= 0 || G <= 0) return FY_OK;
    group_norm_kernel<<<(unsigned)G, kColThreads, 0, ops->stream>>>(x, w, b, out, C / G, N, eps);
    return fy_cuda_launched("group_norm");
}

extern "C" fy_status fy_cuda_softmax(fy_cuda_ops *ops, const float *x, float *out, int64_t rows,
                                     int64_t dim)
{
    if (rows <= 0 || dim <= 0) return FY_OK;
    softmax_kernel<<<row_blocks(rows), row_threads(dim), 0, ops->stream>>>(x, out, rows, dim);
    return fy_cuda_launched("softmax");
}
