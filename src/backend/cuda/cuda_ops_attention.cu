// STUB: to be written.
#include "backend/cuda/cuda_ops_internal.h"

extern "C" fy_status fy_cuda_attention(fy_cuda_ops *ops, const float *q, const float *k, const float *v,
                            float *out, int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D,
                            float scale, const float *bias, const int64_t *key_mask)
{
    return fy_error(FY_ERR_UNSUPPORTED, "cuda: cuda_attention not written yet");
}
