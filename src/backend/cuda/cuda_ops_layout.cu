// Layout changes on the GPU: strided transposes through a shared-memory tile
// (so both the reads and the writes are coalesced) nearest 2x upsampling and general permutes.
#include <cstdint>

#include "backend/cuda/cuda_ops_internal.h"

namespace {

constexpr int kTile = 32;
constexpr int kTileRows = 8; // a 32 x 8 block walks a 32 x 32 tile in 4 passes

// dst[j * ld_dst + i] (+)= src[i * ld_src + j]; one block per 32 x 32 tile
// of src (blockIdx.x over columns j, blockIdx.y over rows i).
__global__ void transpose_kernel(float *dst, int64_t ld_dst, const float *src, int64_t ld_src, int64_t rows,
                                 int64_t cols, int accumulate)
{
    __shared__ float tile[kTile][kTile + 1]; // +1: no bank conflicts on the column reads
    const int64_t j0 = (int64_t)blockIdx.x * kTile, i0 = (int64_t)blockIdx.y * kTile;
    for (int r = threadIdx.y; r < kTile; r += kTileRows) {
        const int64_t i = i0 + r, j = j0 + threadIdx.x;
        if (i < rows && j < cols) tile[r][threadIdx.x] = src[i * ld_src + j];
    }
    __syncthreads();
    for (int r = threadIdx.y; r < kTile; r += kTileRows) {
        const int64_t j = j0 + r, i = i0 + threadIdx.x;
        if (i < rows && j < cols) {
            float *d = dst + j * ld_dst + i;
            *d = accumulate ? *d + tile[threadIdx.x][r] : tile[threadIdx.x][r];
        }
    }
}

__global__ void upsample_nearest2x_kernel(const float *in, float *out, int64_t planes, int64_t h, int64_t w)
{
    const int64_t H = 2 * h, W = 2 * w, n = planes * H * W;
    for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < n;
         idx += (int64_t)gridDim.x * blockDim.x) {
        const int64_t x = idx % W, y = (idx / W) % H, f = idx / (H * W);
        out[idx] = in[(f * h + y / 2) * w + x / 2];
    }
}

struct permute_dims {
    int ndim;
    int64_t dims[FY_PERMUTE_MAX_DIMS];    // dst's shape
    int64_t strides[FY_PERMUTE_MAX_DIMS]; // src's stride along each dst dimension
};

// One thread per dst element (grid-stride): coalesced writes, gathered reads.
__global__ void permute_kernel(float *dst, const float *src, permute_dims p, int64_t n)
{
    for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < n;
         idx += (int64_t)gridDim.x * blockDim.x) {
        int64_t rest = idx, off = 0;
        for (int d = p.ndim - 1; d >= 0; d--) {
            off += (rest % p.dims[d]) * p.strides[d];
            rest /= p.dims[d];
        }
        dst[idx] = src[off];
    }
}

}  // namespace

extern "C" fy_status fy_cuda_permute(fy_cuda_ops *ops, float *dst, const float *src, int ndim, const int64_t *shape,
                                     const int *perm)
{
    if (ndim < 1 || ndim > FY_PERMUTE_MAX_DIMS) return fy_error(FY_ERR_INVALID, "permute: %d dimensions", ndim);
    permute_dims p = {};
    p.ndim = ndim;
    int64_t src_strides[FY_PERMUTE_MAX_DIMS], stride = 1;
    bool seen[FY_PERMUTE_MAX_DIMS] = {};
    for (int d = ndim - 1; d >= 0; d--) {
        if (shape[d] < 0) return fy_error(FY_ERR_INVALID, "permute: negative size");
        src_strides[d] = stride;
        stride *= shape[d];
    }
    for (int d = 0; d < ndim; d++) {
        if (perm[d] < 0 || perm[d] >= ndim || seen[perm[d]])
            return fy_error(FY_ERR_INVALID, "permute: not a permutation of %d dimensions", ndim);
        seen[perm[d]] = true;
        p.dims[d] = shape[perm[d]];
        p.strides[d] = src_strides[perm[d]];
    }
    if (stride == 0) return FY_OK;
    const int64_t blocks = (stride + 255) / 256;
    permute_kernel<<<(unsigned)(blocks < 65535 ? blocks : 65535), 256, 0, ops->stream>>>(dst, src, p, stride);
    return fy_cuda_launched("permute");
}

extern "C" fy_status fy_cuda_transpose(fy_cuda_ops *ops, float *dst, int64_t ld_dst, const float *src, int64_t ld_src,
                                       int64_t rows, int64_t cols, int accumulate)
{
    if (rows <= 0 || cols <= 0) return FY_OK;
    const int64_t gx = (cols + kTile - 1) / kTile, gy = (rows + kTile - 1) / kTile;
    if (gx > 2147483647 || gy > 65535)
        return fy_error(FY_ERR_UNSUPPORTED, "cuda: transpose of %lld x %lld is too large for one launch",
                        (long long)rows, (long long)cols);
    transpose_kernel<<<dim3((unsigned)gx, (unsigned)gy), dim3(kTile, kTileRows), 0, ops->stream>>>(
        dst, ld_dst, src, ld_src, rows, cols, accumulate);
    return fy_cuda_launched("transpose");
}

extern "C" fy_status fy_cuda_upsample_nearest2x(fy_cuda_ops *ops, const float *in, float *out, int64_t planes,
                                                int64_t h, int64_t w)
{
    const int64_t n = planes * 4 * h * w;
    if (n <= 0) return FY_OK;
    const int64_t blocks = (n + 255) / 256;
    upsample_nearest2x_kernel<<<(unsigned)(blocks < 65535 ? blocks : 65535), 256, 0, ops->stream>>>(in, out, planes,
                                                                                                      h, w);
    return fy_cuda_launched("upsample nearest 2x");
}
