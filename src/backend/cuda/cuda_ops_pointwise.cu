// STUB: to be written.
#include "backend/cuda/cuda_ops_internal.h"

extern "C" fy_status fy_cuda_add(fy_cuda_ops *ops, const float *a, const float *b, float *out, int64_t n)
{
    return fy_error(FY_ERR_UNSUPPORTED, "cuda: cuda_add not written yet");
}

extern "C" fy_status fy_cuda_mul(fy_cuda_ops *ops, const float *a, const float *b, float *out, int64_t n)
{
    return fy_error(FY_ERR_UNSUPPORTED, "cuda: cuda_mul not written yet");
}

extern "C" fy_status fy_cuda_scale(fy_cuda_ops *ops, const float *x, float s, float *out, int64_t n)
{
    return fy_error(FY_ERR_UNSUPPORTED, "cuda: cuda_scale not written yet");
}

extern "C" fy_status fy_cuda_axpy(fy_cuda_ops *ops, float alpha, const float *x, float *y, int64_t n)
{
    return fy_error(FY_ERR_UNSUPPORTED, "cuda: cuda_axpy not written yet");
}

extern "C" fy_status fy_cuda_silu(fy_cuda_ops *ops, const float *x, float *out, int64_t n)
{
    return fy_error(FY_ERR_UNSUPPORTED, "cuda: cuda_silu not written yet");
}

extern "C" fy_status fy_cuda_gelu(fy_cuda_ops *ops, const float *x, float *out, int64_t n)
{
    return fy_error(FY_ERR_UNSUPPORTED, "cuda: cuda_gelu not written yet");
}

extern "C" fy_status fy_cuda_gelu_tanh(fy_cuda_ops *ops, const float *x, float *out, int64_t n)
{
    return fy_error(FY_ERR_UNSUPPORTED, "cuda: cuda_gelu_tanh not written yet");
}

extern "C" fy_status fy_cuda_relu(fy_cuda_ops *ops, const float *x, float *out, int64_t n)
{
    return fy_error(FY_ERR_UNSUPPORTED, "cuda: cuda_relu not written yet");
}

extern "C" fy_status fy_cuda_gated_gelu(fy_cuda_ops *ops, const float *h0, const float *h1, float *out,
                             int64_t n)
{
    return fy_error(FY_ERR_UNSUPPORTED, "cuda: cuda_gated_gelu not written yet");
}

extern "C" fy_status fy_cuda_gated_add(fy_cuda_ops *ops, float *x, const float *y, const float *gate,
                            int64_t rows, int64_t dim, int64_t rows_per_gate)
{
    return fy_error(FY_ERR_UNSUPPORTED, "cuda: cuda_gated_add not written yet");
}

extern "C" fy_status fy_cuda_rope(fy_cuda_ops *ops, float *x, const float *cos_t, const float *sin_t,
                       int64_t B, int64_t L, int64_t H, int64_t D)
{
    return fy_error(FY_ERR_UNSUPPORTED, "cuda: cuda_rope not written yet");
}
