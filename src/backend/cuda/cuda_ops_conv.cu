// STUB: to be written.
#include "backend/cuda/cuda_ops_internal.h"

extern "C" fy_status fy_cuda_conv3d(fy_cuda_ops *ops, const float *x, const float *w, const float *b, float *y,
                         int64_t batch, const fy_conv3d_shape *s)
{
    return fy_error(FY_ERR_UNSUPPORTED, "cuda: cuda_conv3d not written yet");
}
