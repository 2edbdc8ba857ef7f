// Linear layers and batched products on cuBLAS.
//
// Layouts. Every matrix here is row-major; cuBLAS is column-major, and a
// row-major [R, C] matrix is the column-major [C, R] matrix (its transpose)
// with leading dimension C. So the row-major product y[M, N] = x[M, K] W^T,
// W [N, K], is computed as the column-major y^T[N, M] = W[N, K] x^T[K, M]:
//   A = W   seen as column-major [K, N] ld K, op T  -> [N, K]
//   B = x   seen as column-major [K, M] ld K, op N  -> [K, M]
//   C = y   seen as column-major [N, M] ld N
// A block of W's rows [n0, n0 + nb) gives the rows [n0, n0 + nb) of y^T,
// that is the columns [n0, n0 + nb) of y: C = y + n0, still ld N.
//
// Weights. F32 arithmetic: f32 weights without a scale go straight to
// cublasSgemm; every other case is decoded (times the scale) to f32 into
// scratch, a block of rows at a time, with one GEMM per block. BF16
// arithmetic: x is rounded to bf16 once; bf16 weights without a scale are
// used in place, the others are decoded (times the scale) and rounded to
// bf16 a block of rows at a time; cublasGemmEx on bf16 operands with f32
// accumulation and f32 output. The decoding reproduces src/core/dtype.c
// exactly (fp8 e4m3fn / e5m2 and f16 subnormals, NaN codes), and the scale
// is one f32 multiply, as fy_fp8_dequantize_rows and fy_cpu_weight_rows_f32.
//
// Bias: a broadcast-add kernel after the GEMM(s) (y = round(xW^T) + b, the
// CPU's order of operations), not beta = 1 over a pre-filled y.
#include <climits>
#include <cstdint>

#include "backend/cuda/cuda_decode.cuh"
#include "backend/cuda/cuda_ops_internal.h"

namespace {

using fy_cuda::f32_to_bf16;
using fy_cuda::load_weight;

// Bytes of converted weights per GEMM block (the scratch slot's size).
constexpr size_t kWeightBlockBytes = FY_CUDA_GEMM_BLOCK_BYTES;
enum { kSlotX = 0, kSlotW = 1 };

unsigned grid_for(size_t n)
{
    size_t blocks = (n + 255) / 256;
    return (unsigned)(blocks < 65535 ? (blocks ? blocks : 1) : 65535);
}

__device__ __forceinline__ void store(float *dst, float v) { *dst = v; }
__device__ __forceinline__ void store(uint16_t *dst, float v) { *dst = f32_to_bf16(v); }

// dst[r * K + k] = w[n0 + r, k] (* scale[scale_rows ? n0 + r : 0]) for
// r < nb, as f32 or bf16 (Out = uint16_t).
template <typename Out>
__global__ void decode_rows_kernel(Out *dst, const void *w, fy_dtype t, const float *scale,
                                   int scale_rows, int64_t n0, int64_t nb, int64_t K)
{
    const size_t count = (size_t)nb * (size_t)K, base = (size_t)n0 * (size_t)K;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count;
         i += (size_t)gridDim.x * blockDim.x) {
        float v = load_weight(w, t, base + i);
        if (scale) v *= scale[scale_rows ? n0 + (int64_t)(i / (size_t)K) : 0];
        store(dst + i, v);
    }
}

// y[r, c] += b[c] over y [rows, N].
__global__ void add_bias_kernel(float *y, const float *b, size_t count, size_t N)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] += b[i % N];
}

template <typename Out>
fy_status decode_rows(fy_cuda_ops *ops, Out *dst, const void *w, fy_dtype t, const float *scale,
                      int scale_rows, int64_t n0, int64_t nb, int64_t K)
{
    decode_rows_kernel<Out><<<grid_for((size_t)nb * (size_t)K), 256, 0, ops->stream>>>(
        dst, w, t, scale, scale_rows, n0, nb, K);
    return fy_cuda_launched("linear weight conversion");
}

// Rows per block (of W, or of x in bf16): the bound, in multiples of 64 rows
// when it allows.
int64_t block_rows(int64_t N, int64_t K, size_t elem)
{
    int64_t nb = (int64_t)(kWeightBlockBytes / ((size_t)K * elem));
    if (nb >= 128) nb -= nb % 64;
    if (nb < 1) nb = 1;
    return nb < N ? nb : N;
}

fy_status check_int_sizes(const char *op, int64_t M, int64_t K, int64_t N)
{
    if (M < 0 || K < 1 || N < 0 || M > INT_MAX || K > INT_MAX || N > INT_MAX)
        return fy_error(FY_ERR_INVALID,
                        "cuda %s: bad sizes M=%lld K=%lld N=%lld (need M, N >= 0, K >= 1, each at "
                        "most %d: cuBLAS takes int sizes)",
                        op, (long long)M, (long long)K, (long long)N, INT_MAX);
    return FY_OK;
}

// F32 arithmetic.
fy_status linear_f32(fy_cuda_ops *ops, const float *x, const void *w, fy_dtype t, const float *scale,
                     int scale_rows, float *y, int M, int K, int N)
{
    const float one = 1.0f, zero = 0.0f;
    if (t == FY_F32 && !scale)
        return fy_cublas_check(cublasSgemm(ops->cublas, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one,
                                           (const float *)w, K, x, K, &zero, y, N),
                               "cublasSgemm (linear)");
    const int64_t nb_max = block_rows(N, K, sizeof(float));
    void *buf = NULL;
    FY_TRY(fy_cuda_ops_scratch(ops, kSlotW, (size_t)nb_max * (size_t)K * sizeof(float), &buf));
    float *wf = (float *)buf;
    for (int64_t n0 = 0; n0 < N; n0 += nb_max) {
        const int nb = (int)(N - n0 < nb_max ? N - n0 : nb_max);
        FY_TRY(decode_rows(ops, wf, w, t, scale, scale_rows, n0, nb, K));
        FY_TRY(fy_cublas_check(cublasSgemm(ops->cublas, CUBLAS_OP_T, CUBLAS_OP_N, nb, M, K, &one, wf,
                                           K, x, K, &zero, y + n0, N),
                               "cublasSgemm (linear)"));
    }
    return FY_OK;
}

fy_status gemm_bf16(fy_cuda_ops *ops, const void *wb, const void *xb, float *y, int nb, int M, int K,
                    int ldc)
{
    const float one = 1.0f, zero = 0.0f;
    return fy_cublas_check(cublasGemmEx(ops->cublas, CUBLAS_OP_T, CUBLAS_OP_N, nb, M, K, &one, wb,
                                        CUDA_R_16BF, K, xb, CUDA_R_16BF, K, &zero, y, CUDA_R_32F, ldc,
                                        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                           "cublasGemmEx (linear, bf16)");
}

// BF16 arithmetic. x is rounded to bf16 a block of rows at a time (the same
// bound as a weight block: at video sizes all of x in bf16 would be hundreds
// of MiB of scratch); bf16 weights are read in place, others are decoded once
// when they fit one block, else per block of x (cheap next to the GEMM).
fy_status linear_bf16(fy_cuda_ops *ops, const float *x, const void *w, fy_dtype t,
                      const float *scale, int scale_rows, float *y, int M, int K, int N)
{
    const bool in_place = t == FY_BF16 && !scale;
    const int64_t mb_max = block_rows(M, K, sizeof(uint16_t));
    const int64_t nb_max = in_place ? N : block_rows(N, K, sizeof(uint16_t));
    void *xb = NULL, *wb = NULL;
    FY_TRY(fy_cuda_ops_scratch(ops, kSlotX, (size_t)mb_max * (size_t)K * sizeof(uint16_t), &xb));
    if (!in_place)
        FY_TRY(fy_cuda_ops_scratch(ops, kSlotW, (size_t)nb_max * (size_t)K * sizeof(uint16_t), &wb));
    const bool w_once = !in_place && nb_max >= N;
    if (w_once) FY_TRY(decode_rows(ops, (uint16_t *)wb, w, t, scale, scale_rows, 0, N, K));
    for (int64_t m0 = 0; m0 < M; m0 += mb_max) {
        const int mb = (int)(M - m0 < mb_max ? M - m0 : mb_max);
        // Rows of x as rows of f32 "weights": the same rounding kernel.
        FY_TRY(decode_rows(ops, (uint16_t *)xb, x, FY_F32, NULL, 0, m0, mb, K));
        for (int64_t n0 = 0; n0 < N; n0 += nb_max) {
            const int nb = (int)(N - n0 < nb_max ? N - n0 : nb_max);
            const void *wblk = in_place ? (const void *)((const uint16_t *)w + n0 * K) : wb;
            if (!in_place && !w_once)
                FY_TRY(decode_rows(ops, (uint16_t *)wb, w, t, scale, scale_rows, n0, nb, K));
            FY_TRY(gemm_bf16(ops, wblk, xb, y + m0 * N + n0, nb, mb, K, N));
        }
    }
    return FY_OK;
}

}  // namespace

// A vector (bias, norm scale) as f32: one "row" of n decoded values.
extern "C" fy_status fy_cuda_to_f32(fy_cuda_ops *ops, float *dst, const void *src, fy_dtype dtype, size_t n)
{
    if (!fy_cuda::decodable(dtype))
        return fy_error(FY_ERR_UNSUPPORTED, "cuda: cannot convert %s values to f32", fy_dtype_name(dtype));
    if (n == 0) return FY_OK;
    if (dtype == FY_F32) return fy_cuda_copy(ops, dst, src, n * sizeof(float));
    return decode_rows<float>(ops, dst, src, dtype, nullptr, 0, 0, 1, (int64_t)n);
}

extern "C" fy_status fy_cuda_linear(fy_cuda_ops *ops, const float *x, const void *w, fy_dtype w_dtype,
                                    const float *scale, int scale_rows, const float *b, float *y,
                                    int64_t M, int64_t K, int64_t N)
{
    FY_TRY(check_int_sizes("linear", M, K, N));
    if (!fy_cuda::decodable(w_dtype))
        return fy_error(FY_ERR_UNSUPPORTED,
                        "cuda linear: weights of dtype %s (the GPU reads f32, f16, bf16, f8_e4m3, "
                        "f8_e5m2)",
                        fy_dtype_name(w_dtype));
    if (M == 0 || N == 0) return FY_OK;
    if (ops->math == FY_CUDA_MATH_BF16)
        FY_TRY(linear_bf16(ops, x, w, w_dtype, scale, scale_rows, y, (int)M, (int)K, (int)N));
    else
        FY_TRY(linear_f32(ops, x, w, w_dtype, scale, scale_rows, y, (int)M, (int)K, (int)N));
    if (b) {
        const size_t count = (size_t)M * (size_t)N;
        add_bias_kernel<<<grid_for(count), 256, 0, ops->stream>>>(y, b, count, (size_t)N);
        FY_TRY(fy_cuda_launched("linear bias"));
    }
    return FY_OK;
}

// c[i] = alpha * a[i] op(b[i]): always f32 (cublasSgemmStridedBatched), in
// both arithmetics (attention-sized products; no bf16 rounding of a or b).
// Column-major view: c[i]^T [N, M] (ld N) = op(b[i])^T [N, K] a[i]^T [K, M]:
//   A = b[i]: not trans_b: row-major [K, N] = column-major [N, K] ld N, op N;
//             trans_b:     row-major [N, K] = column-major [K, N] ld K, op T.
//   B = a[i]: row-major [M, K] = column-major [K, M] ld K, op N.
//   C = c[i]: row-major [M, N] = column-major [N, M] ld N.
extern "C" fy_status fy_cuda_bmm(fy_cuda_ops *ops, const float *a, const float *b, float *c,
                                 int64_t batch, int64_t M, int64_t N, int64_t K, int trans_b,
                                 float alpha)
{
    FY_TRY(check_int_sizes("bmm", M, K, N));
    if (batch < 0 || batch > INT_MAX)
        return fy_error(FY_ERR_INVALID, "cuda bmm: batch %lld out of range (0 to %d)",
                        (long long)batch, INT_MAX);
    if (batch == 0 || M == 0 || N == 0) return FY_OK;
    const float zero = 0.0f;
    return fy_cublas_check(
        cublasSgemmStridedBatched(ops->cublas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N,
                                  (int)N, (int)M, (int)K, &alpha, b, trans_b ? (int)K : (int)N,
                                  (long long)(K * N), a, (int)K, (long long)(M * K), &zero, c,
                                  (int)N, (long long)(M * N), (int)batch),
        "cublasSgemmStridedBatched (bmm)");
}
