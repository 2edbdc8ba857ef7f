// Table lookups on the GPU: embedding rows by token id (decoded to f32 as
// the host does) and T5's relative position bias. One thread per output
// element; consecutive threads write consecutive floats.
#include <cstdint>

#include "backend/cuda/cuda_decode.cuh"
#include "backend/cuda/cuda_ops_internal.h"

namespace {

unsigned grid_for(int64_t n)
{
    int64_t blocks = (n + 255) / 256;
    return (unsigned)(blocks < 65535 ? (blocks ? blocks : 1) : 65535);
}

__global__ void embedding_kernel(const void *table, fy_dtype t, const int64_t *ids, float *out, int64_t rows,
                                 int64_t dim)
{
    const int64_t n = rows * dim;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / dim, c = i % dim;
        out[i] = fy_cuda::load_weight(table, t, (size_t)(ids[r] * dim + c));
    }
}

// out[h, i, j] = table[bucket[j - (q0 + i) + L - 1] * H + h].
__global__ void relative_bias_kernel(const float *table, const int32_t *bucket, float *out, int64_t H, int64_t L,
                                     int64_t q0, int64_t nq)
{
    const int64_t n = H * nq * L;
    for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < n;
         idx += (int64_t)gridDim.x * blockDim.x) {
        const int64_t j = idx % L, i = (idx / L) % nq, h = idx / (L * nq);
        out[idx] = table[(int64_t)bucket[j - (q0 + i) + L - 1] * H + h];
    }
}

}  // namespace

extern "C" fy_status fy_cuda_embedding(fy_cuda_ops *ops, const void *table, fy_dtype dtype, const int64_t *ids,
                                       float *out, int64_t rows, int64_t dim)
{
    if (!fy_cuda::decodable(dtype))
        return fy_error(FY_ERR_UNSUPPORTED, "embedding: a table of dtype %s cannot be read on the GPU",
                        fy_dtype_name(dtype));
    if (rows <= 0 || dim <= 0) return FY_OK;
    embedding_kernel<<<grid_for(rows * dim), 256, 0, ops->stream>>>(table, dtype, ids, out, rows, dim);
    return fy_cuda_launched("embedding");
}

extern "C" fy_status fy_cuda_relative_bias(fy_cuda_ops *ops, const float *table, const int32_t *bucket, float *out,
                                           int64_t H, int64_t L, int64_t q0, int64_t nq)
{
    if (H <= 0 || L <= 0 || nq <= 0) return FY_OK;
    relative_bias_kernel<<<grid_for(H * nq * L), 256, 0, ops->stream>>>(table, bucket, out, H, L, q0, nq);
    return fy_cuda_launched("relative position bias");
}
