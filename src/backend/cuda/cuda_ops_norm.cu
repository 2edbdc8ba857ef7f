// STUB: to be written.
#include "backend/cuda/cuda_ops_internal.h"

extern "C" fy_status fy_cuda_layer_norm(fy_cuda_ops *ops, const float *x, const float *w, const float *b,
                             float *out, int64_t rows, int64_t dim, float eps)
{
    return fy_error(FY_ERR_UNSUPPORTED, "cuda: cuda_layer_norm not written yet");
}

extern "C" fy_status fy_cuda_layer_norm_modulate(fy_cuda_ops *ops, const float *x, const float *w,
                                      const float *b, const float *scale, const float *shift,
                                      float *out, int64_t rows, int64_t dim, int64_t rows_per_mod,
                                      float eps)
{
    return fy_error(FY_ERR_UNSUPPORTED, "cuda: cuda_layer_norm_modulate not written yet");
}

extern "C" fy_status fy_cuda_rms_norm(fy_cuda_ops *ops, const float *x, const float *w, float *out,
                           int64_t rows, int64_t dim, float eps)
{
    return fy_error(FY_ERR_UNSUPPORTED, "cuda: cuda_rms_norm not written yet");
}

extern "C" fy_status fy_cuda_channel_rms_norm(fy_cuda_ops *ops, const float *x, const float *gamma,
                                   const float *bias, float *out, int64_t C, int64_t N, float eps)
{
    return fy_error(FY_ERR_UNSUPPORTED, "cuda: cuda_channel_rms_norm not written yet");
}

extern "C" fy_status fy_cuda_softmax(fy_cuda_ops *ops, const float *x, float *out, int64_t rows, int64_t dim)
{
    return fy_error(FY_ERR_UNSUPPORTED, "cuda: cuda_softmax not written yet");
}
