// Element-type conversions on the GPU, with the same rounding rules as the
// host's fy_convert (round to nearest even; bf16 NaN -> 0x7FC0).
#include <cuda_runtime.h>
#include <stdint.h>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_decode.cuh"

namespace {

__global__ void bf16_to_f32_kernel(float *dst, const uint16_t *src, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __uint_as_float((uint32_t)src[i] << 16);
}

__global__ void f32_to_bf16_kernel(uint16_t *dst, const float *src, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = fy_cuda::f32_to_bf16(src[i]);
}

unsigned grid_for(size_t n)
{
    size_t blocks = (n + 255) / 256;
    return (unsigned)(blocks < 65535 ? (blocks ? blocks : 1) : 65535);
}

fy_status launched(const char *what)
{
    cudaError_t err = cudaGetLastError();
    if (err == cudaSuccess) return FY_OK;
    return fy_error(FY_ERR_DEVICE, "cuda: %s launch failed: %s", what, cudaGetErrorString(err));
}

}  // namespace

extern "C" fy_status fy_cuda_convert_bf16_to_f32(float *dst, const uint16_t *src, size_t n,
                                                 void *stream)
{
    bf16_to_f32_kernel<<<grid_for(n), 256, 0, (cudaStream_t)stream>>>(dst, src, n);
    return launched("bf16_to_f32");
}

extern "C" fy_status fy_cuda_convert_f32_to_bf16(uint16_t *dst, const float *src, size_t n,
                                                 void *stream)
{
    f32_to_bf16_kernel<<<grid_for(n), 256, 0, (cudaStream_t)stream>>>(dst, src, n);
    return launched("f32_to_bf16");
}
