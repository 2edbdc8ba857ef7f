/* What the CUDA op files share: the context's fields and error helpers. */
#ifndef FERRY_BACKEND_CUDA_OPS_INTERNAL_H
#define FERRY_BACKEND_CUDA_OPS_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "backend/cuda/cuda_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* cuBLAS's recommended workspace for Hopper. */
#define FY_CUBLAS_WORKSPACE_BYTES ((size_t)32 << 20)
/* A linear's converted operands, per block (of weight rows, of x rows in bf16). */
#define FY_CUDA_GEMM_BLOCK_BYTES ((size_t)64 << 20)
/* A convolution's im2col columns, per chunk of output positions. */
#define FY_CUDA_CONV_COLS_BYTES ((size_t)256 << 20)

struct fy_cuda_ops {
    fy_backend *backend;
    fy_pool *pool;
    fy_cuda_math math;
    cudaStream_t stream;
    cublasHandle_t cublas;
    void *cublas_workspace;
    void *slot[FY_CUDA_SCRATCH_SLOTS];
    size_t slot_bytes[FY_CUDA_SCRATCH_SLOTS];
};

/* FY_ERR_DEVICE naming `what` unless err is cudaSuccess. */
fy_status fy_cuda_check(cudaError_t err, const char *what);
/* The launch status of the last kernel (cudaGetLastError). */
fy_status fy_cuda_launched(const char *what);
fy_status fy_cublas_check(cublasStatus_t st, const char *what);

#ifdef __cplusplus
}
#endif
#endif
