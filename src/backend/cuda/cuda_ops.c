/* The CUDA ops context: the compute stream, a cuBLAS handle bound to it, and
 * scratch slots from the engine's device pool. */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_ops_internal.h"

fy_status fy_cuda_ops_create(fy_backend *b, fy_pool *pool, fy_cuda_math math, fy_cuda_ops **out)
{
    *out = NULL;
    if (!b || !pool || !b->vt || strcmp(b->vt->name, "cuda") != 0)
        return fy_error(FY_ERR_INVALID, "cuda ops: need a cuda backend and its device pool");
    fy_cuda_ops *ops = calloc(1, sizeof *ops);
    if (!ops) return fy_error(FY_ERR_NOMEM, "cuda ops: out of memory");
    ops->backend = b;
    ops->pool = pool;
    ops->math = math;
    const char *tc = getenv("FERRY_CUDA_TC_ATTENTION");
    ops->tc_attention = tc && strcmp(tc, "1") == 0;
    ops->stream = (cudaStream_t)fy_cuda_stream_handle(b, FY_STREAM_COMPUTE);
    fy_status st = fy_cuda_use_device(b);
    int device = 0;
    if (st == FY_OK) st = fy_cuda_check(cudaGetDevice(&device), "cudaGetDevice");
    if (st == FY_OK)
        st = fy_cuda_check(cudaDeviceGetAttribute(&ops->cc_major, cudaDevAttrComputeCapabilityMajor, device),
                           "cudaDeviceGetAttribute");
    if (st == FY_OK) st = fy_cublas_check(cublasCreate(&ops->cublas), "cublasCreate");
    if (st == FY_OK) st = fy_cublas_check(cublasSetStream(ops->cublas, ops->stream), "cublasSetStream");
    /* F32 means f32: no TF32, even under NVIDIA_TF32_OVERRIDE (the fixtures'
     * tolerance is 1e-4). */
    if (st == FY_OK && math == FY_CUDA_MATH_F32)
        st = fy_cublas_check(cublasSetMathMode(ops->cublas, CUBLAS_PEDANTIC_MATH), "cublasSetMathMode");
    /* bf16 arithmetic: the f32 GEMMs that remain (the VAE's convolutions,
     * bmm, f32 weights) run on the tensor cores in TF32, more exact than the
     * bf16 operands the linears take. */
    if (st == FY_OK && math == FY_CUDA_MATH_BF16)
        st = fy_cublas_check(cublasSetMathMode(ops->cublas, CUBLAS_TF32_TENSOR_OP_MATH), "cublasSetMathMode");
    if (st == FY_OK)
        st = fy_pool_alloc(pool, FY_CUBLAS_WORKSPACE_BYTES, "cuBLAS workspace", &ops->cublas_workspace);
    if (st == FY_OK)
        st = fy_cublas_check(cublasSetWorkspace(ops->cublas, ops->cublas_workspace,
                                                FY_CUBLAS_WORKSPACE_BYTES),
                             "cublasSetWorkspace");
    if (st != FY_OK) {
        fy_cuda_ops_free(ops);
        return st;
    }
    *out = ops;
    return FY_OK;
}

void fy_cuda_ops_free(fy_cuda_ops *ops)
{
    if (!ops) return;
    if (ops->stream) cudaStreamSynchronize(ops->stream);
    if (ops->cublas) cublasDestroy(ops->cublas);
    for (int i = 0; i < FY_CUDA_SCRATCH_SLOTS; i++) fy_pool_release(ops->pool, ops->slot[i]);
    fy_pool_release(ops->pool, ops->cublas_workspace);
    free(ops);
}

void fy_cuda_ops_set_tc_attention(fy_cuda_ops *ops, bool on)
{
    ops->tc_attention = on;
}

bool fy_cuda_ops_tc_attention(const fy_cuda_ops *ops)
{
    return ops->tc_attention;
}

fy_cuda_math fy_cuda_ops_math(const fy_cuda_ops *ops)
{
    return ops->math;
}

size_t fy_cuda_ops_scratch_bytes(const fy_cuda_ops *ops)
{
    size_t total = ops->cublas_workspace ? FY_CUBLAS_WORKSPACE_BYTES : 0;
    for (int i = 0; i < FY_CUDA_SCRATCH_SLOTS; i++) total += ops->slot_bytes[i];
    return total;
}

size_t fy_cuda_ops_scratch_bound(int convolutions)
{
    size_t first = convolutions && FY_CUDA_CONV_COLS_BYTES > FY_CUDA_GEMM_BLOCK_BYTES ? FY_CUDA_CONV_COLS_BYTES
                                                                                        : FY_CUDA_GEMM_BLOCK_BYTES;
    return FY_CUBLAS_WORKSPACE_BYTES + first + FY_CUDA_GEMM_BLOCK_BYTES;
}

void *fy_cuda_ops_stream(const fy_cuda_ops *ops)
{
    return ops->stream;
}

fy_status fy_cuda_ops_scratch(fy_cuda_ops *ops, int slot, size_t bytes, void **out)
{
    *out = NULL;
    if (slot < 0 || slot >= FY_CUDA_SCRATCH_SLOTS)
        return fy_error(FY_ERR_INVALID, "cuda ops: scratch slot %d out of range", slot);
    int i = slot;
    if (ops->slot_bytes[i] >= bytes && ops->slot[i]) {
        *out = ops->slot[i];
        return FY_OK;
    }
    /* The old buffer may still be read by queued kernels: wait for them
     * before handing its memory back (growth is rare: sizes settle after
     * the first step). */
    if (ops->slot[i]) {
        cudaError_t err = cudaStreamSynchronize(ops->stream);
        if (err != cudaSuccess) return fy_cuda_check(err, "cudaStreamSynchronize");
        fy_pool_release(ops->pool, ops->slot[i]);
        ops->slot[i] = NULL;
        ops->slot_bytes[i] = 0;
    }
    fy_status st = fy_pool_alloc(ops->pool, bytes, "cuda ops scratch", &ops->slot[i]);
    if (st != FY_OK) return st;
    ops->slot_bytes[i] = bytes;
    *out = ops->slot[i];
    return FY_OK;
}

fy_status fy_cuda_copy(fy_cuda_ops *ops, void *dst, const void *src, size_t bytes)
{
    if (dst == src || bytes == 0) return FY_OK;
    return fy_cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ops->stream),
                         "cudaMemcpyAsync (device to device)");
}

fy_status fy_cuda_copy2d(fy_cuda_ops *ops, void *dst, size_t dst_pitch, const void *src, size_t src_pitch,
                         size_t width, size_t height)
{
    if (width == 0 || height == 0 || dst == src) return FY_OK;
    return fy_cuda_check(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, width, height, cudaMemcpyDeviceToDevice,
                                           ops->stream),
                         "cudaMemcpy2DAsync (device to device)");
}

static bool sync_each_op;
static pthread_once_t sync_each_once = PTHREAD_ONCE_INIT;

static void read_sync_each(void)
{
    const char *v = getenv("FERRY_CUDA_SYNC");
    sync_each_op = v && strcmp(v, "1") == 0;
}

bool fy_cuda_sync_each_op(void)
{
    pthread_once(&sync_each_once, read_sync_each);
    return sync_each_op;
}

/* Under FERRY_CUDA_SYNC=1: waits for the device after `what` was queued, so a
 * kernel that faults is named by the op that launched it. */
static fy_status sync_after(const char *what)
{
    if (!fy_cuda_sync_each_op()) return FY_OK;
    cudaError_t err = cudaDeviceSynchronize();
    if (err == cudaSuccess) return FY_OK;
    return fy_error(FY_ERR_DEVICE, "cuda: %s failed on the device (FERRY_CUDA_SYNC=1 waited after it): %s",
                    what, cudaGetErrorString(err));
}

fy_status fy_cuda_ops_enter(fy_cuda_ops *ops)
{
    return fy_cuda_use_device(ops->backend);
}

fy_status fy_cuda_ops_leave(fy_cuda_ops *ops, const char *op, fy_status st)
{
    (void)ops;
    if (st != FY_OK) return st;
    return sync_after(op);
}

fy_status fy_cuda_check(cudaError_t err, const char *what)
{
    if (err == cudaSuccess) return FY_OK;
    return fy_error(FY_ERR_DEVICE, "cuda: %s failed: %s", what, cudaGetErrorString(err));
}

fy_status fy_cuda_launched(const char *what)
{
    FY_TRY(fy_cuda_check(cudaGetLastError(), what));
    return sync_after(what);
}

fy_status fy_cublas_check(cublasStatus_t st, const char *what)
{
    if (st == CUBLAS_STATUS_SUCCESS) return sync_after(what);
    return fy_error(FY_ERR_DEVICE, "cublas: %s failed: %s", what, cublasGetStatusString(st));
}
