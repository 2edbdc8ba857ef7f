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
    bool tc_attention; /* attention on the tensor cores in bf16 arithmetic */
    int cc_major;      /* the device's compute capability (8: Ampere, 9: Hopper) */
    cudaStream_t stream;
    cublasHandle_t cublas;
    void *cublas_workspace;
    void *slot[FY_CUDA_SCRATCH_SLOTS];
    size_t slot_bytes[FY_CUDA_SCRATCH_SLOTS];
};

/* The tensor-core attention (cuda_ops_attention_tc.cu) when it covers the
 * call: tc_attention on, bf16 arithmetic, no bias, head dim 64 or 128,
 * 16-byte aligned pointers. *ran false: nothing launched, use another kernel. */
fy_status fy_cuda_attention_tc(fy_cuda_ops *ops, const float *q, const float *k, const float *v, float *out,
                               int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D, float scale,
                               const float *bias, const int64_t *key_mask, bool *ran);

/* FY_ERR_DEVICE naming `what` unless err is cudaSuccess. */
fy_status fy_cuda_check(cudaError_t err, const char *what);
/* The launch status of the last kernel (cudaGetLastError). */
fy_status fy_cuda_launched(const char *what);
fy_status fy_cublas_check(cublasStatus_t st, const char *what);

#ifdef __cplusplus
}
#endif
#endif
