// STUB: to be written.
#include "backend/cuda/cuda_ops_internal.h"

extern "C" fy_status fy_cuda_linear(fy_cuda_ops *ops, const float *x, const void *w, fy_dtype w_dtype,
                         const float *scale, int scale_rows, const float *b, float *y, int64_t M,
                         int64_t K, int64_t N)
{
    return fy_error(FY_ERR_UNSUPPORTED, "cuda: cuda_linear not written yet");
}

extern "C" fy_status fy_cuda_bmm(fy_cuda_ops *ops, const float *a, const float *b, float *c, int64_t batch,
                      int64_t M, int64_t N, int64_t K, int trans_b, float alpha)
{
    return fy_error(FY_ERR_UNSUPPORTED, "cuda: cuda_bmm not written yet");
}
