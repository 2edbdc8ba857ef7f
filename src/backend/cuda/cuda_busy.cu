// A stand-in for a block's compute on the GPU: one thread spins on the
// global nanosecond timer for a given time on a stream. The streaming
// benchmark uses it to measure copy/compute overlap on a real copy engine
// before every model op has a CUDA kernel; it reads no memory, so it does
// not compete with the uploads for bandwidth.
#include <cuda_runtime.h>
#include <stdint.h>

#include "backend/cuda/cuda_backend.h"

namespace {

__device__ uint64_t global_ns()
{
    uint64_t t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

__global__ void busy_kernel(uint64_t ns)
{
    uint64_t start = global_ns();
    while (global_ns() - start < ns) {
    }
}

}  // namespace

extern "C" fy_status fy_cuda_busy(double seconds, void *stream)
{
    busy_kernel<<<1, 1, 0, (cudaStream_t)stream>>>((uint64_t)(seconds * 1e9));
    cudaError_t err = cudaGetLastError();
    if (err == cudaSuccess) return FY_OK;
    return fy_error(FY_ERR_DEVICE, "cuda: busy kernel launch failed: %s", cudaGetErrorString(err));
}
