// Elementwise ops, activations, the gated residual and rotary embedding on
// the GPU. Each output element is computed from the inputs at its own index
// (rope: its own pair) by the thread that writes it, so every op may run in
// place, as ferry/ops.h allows. The math is the CPU reference's, in f32 with
// the accurate libdevice functions (expf, erff, tanhf; no fast math).
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "backend/cuda/cuda_ops_internal.h"

namespace {

constexpr int kThreads = 256;
// Grid-stride loops let a capped grid cover any int64 size.
constexpr int64_t kMaxBlocks = 65535;

unsigned grid_for(int64_t n)
{
    int64_t blocks = (n + kThreads - 1) / kThreads;
    return (unsigned)(blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

__device__ int64_t first_index()
{
    return (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
}

__device__ int64_t grid_stride()
{
    return (int64_t)gridDim.x * blockDim.x;
}

__device__ float gelu_tanh1(float v)
{
    return 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
}

struct Add {
    __device__ float operator()(float a, float b) const { return a + b; }
};
struct Mul {
    __device__ float operator()(float a, float b) const { return a * b; }
};
struct Scale {
    float s;
    __device__ float operator()(float x) const { return x * s; }
};
// y + alpha x, with y the first operand (and the output).
struct Axpy {
    float alpha;
    __device__ float operator()(float y, float x) const { return y + alpha * x; }
};
struct Silu {
    __device__ float operator()(float x) const { return x / (1.0f + expf(-x)); }
};
struct Gelu {
    __device__ float operator()(float x) const
    {
        return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    }
};
struct GeluTanh {
    __device__ float operator()(float x) const { return gelu_tanh1(x); }
};
struct Relu {
    __device__ float operator()(float x) const { return x > 0.0f ? x : 0.0f; }
};
struct GatedGelu {
    __device__ float operator()(float h0, float h1) const { return gelu_tanh1(h0) * h1; }
};

template <typename F>
__global__ void unary_kernel(const float *x, float *out, int64_t n, F f)
{
    for (int64_t i = first_index(); i < n; i += grid_stride()) out[i] = f(x[i]);
}

template <typename F>
__global__ void binary_kernel(const float *a, const float *b, float *out, int64_t n, F f)
{
    for (int64_t i = first_index(); i < n; i += grid_stride()) out[i] = f(a[i], b[i]);
}

template <typename F>
fy_status map1(fy_cuda_ops *ops, const float *x, float *out, int64_t n, F f, const char *what)
{
    if (n <= 0) return FY_OK;
    unary_kernel<<<grid_for(n), kThreads, 0, ops->stream>>>(x, out, n, f);
    return fy_cuda_launched(what);
}

template <typename F>
fy_status map2(fy_cuda_ops *ops, const float *a, const float *b, float *out, int64_t n, F f,
               const char *what)
{
    if (n <= 0) return FY_OK;
    binary_kernel<<<grid_for(n), kThreads, 0, ops->stream>>>(a, b, out, n, f);
    return fy_cuda_launched(what);
}

// One thread per element of x; the gate row is r / rows_per_gate.
__global__ void gated_add_kernel(float *x, const float *y, const float *gate, int64_t n,
                                 int64_t dim, int64_t rows_per_gate)
{
    for (int64_t i = first_index(); i < n; i += grid_stride()) {
        int64_t r = i / dim, c = i - r * dim;
        x[i] += y[i] * gate[(r / rows_per_gate) * dim + c];
    }
}

// One thread per (x[2i], x[2i+1]) pair; p enumerates the pairs of x [B, L, H, D]
// as (((b L + l) H + h) D/2 + i), so p / half is the (b, l, h) vector.
__global__ void rope_kernel(float *x, const float *cos_t, const float *sin_t, int64_t pairs,
                            int64_t L, int64_t H, int64_t D)
{
    const int64_t half = D / 2;
    for (int64_t p = first_index(); p < pairs; p += grid_stride()) {
        int64_t vec = p / half, i = p - vec * half;
        int64_t t = ((vec / H) % L) * half + i;
        float *v = x + vec * D + 2 * i;
        float c = cos_t[t], s = sin_t[t];
        float x0 = v[0], x1 = v[1];
        v[0] = x0 * c - x1 * s;
        v[1] = x0 * s + x1 * c;
    }
}

}  // namespace

extern "C" fy_status fy_cuda_add(fy_cuda_ops *ops, const float *a, const float *b, float *out,
                                 int64_t n)
{
    return map2(ops, a, b, out, n, Add{}, "add");
}

extern "C" fy_status fy_cuda_mul(fy_cuda_ops *ops, const float *a, const float *b, float *out,
                                 int64_t n)
{
    return map2(ops, a, b, out, n, Mul{}, "mul");
}

extern "C" fy_status fy_cuda_scale(fy_cuda_ops *ops, const float *x, float s, float *out, int64_t n)
{
    return map1(ops, x, out, n, Scale{s}, "scale");
}

extern "C" fy_status fy_cuda_axpy(fy_cuda_ops *ops, float alpha, const float *x, float *y, int64_t n)
{
    return map2(ops, y, x, y, n, Axpy{alpha}, "axpy");
}

extern "C" fy_status fy_cuda_silu(fy_cuda_ops *ops, const float *x, float *out, int64_t n)
{
    return map1(ops, x, out, n, Silu{}, "silu");
}

extern "C" fy_status fy_cuda_gelu(fy_cuda_ops *ops, const float *x, float *out, int64_t n)
{
    return map1(ops, x, out, n, Gelu{}, "gelu");
}

extern "C" fy_status fy_cuda_gelu_tanh(fy_cuda_ops *ops, const float *x, float *out, int64_t n)
{
    return map1(ops, x, out, n, GeluTanh{}, "gelu_tanh");
}

extern "C" fy_status fy_cuda_relu(fy_cuda_ops *ops, const float *x, float *out, int64_t n)
{
    return map1(ops, x, out, n, Relu{}, "relu");
}

extern "C" fy_status fy_cuda_gated_gelu(fy_cuda_ops *ops, const float *h0, const float *h1,
                                        float *out, int64_t n)
{
    return map2(ops, h0, h1, out, n, GatedGelu{}, "gated_gelu");
}

extern "C" fy_status fy_cuda_gated_add(fy_cuda_ops *ops, float *x, const float *y, const float *gate,
                                       int64_t rows, int64_t dim, int64_t rows_per_gate)
{
    if (rows <= 0 || dim <= 0) return FY_OK;
    int64_t n = rows * dim;
    gated_add_kernel<<<grid_for(n), kThreads, 0, ops->stream>>>(
        x, y, gate, n, dim, rows_per_gate > 0 ? rows_per_gate : 1);
    return fy_cuda_launched("gated_add");
}

extern "C" fy_status fy_cuda_rope(fy_cuda_ops *ops, float *x, const float *cos_t, const float *sin_t,
                                  int64_t B, int64_t L, int64_t H, int64_t D)
{
    if (B <= 0 || L <= 0 || H <= 0 || D < 2) return FY_OK;
    int64_t pairs = B * L * H * (D / 2);
    rope_kernel<<<grid_for(pairs), kThreads, 0, ops->stream>>>(x, cos_t, sin_t, pairs, L, H, D);
    return fy_cuda_launched("rope");
}
