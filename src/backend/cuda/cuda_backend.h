/* The CUDA backend's entry points (built when FERRY_HAVE_CUDA). */
#ifndef FERRY_BACKEND_CUDA_H
#define FERRY_BACKEND_CUDA_H

#include <stdint.h>
#include "ferry/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Number of visible CUDA devices (0 when there is no driver or GPU). */
int fy_cuda_device_count(void);
/* A backend on device `device` with budget_bytes of device memory (0 = all). */
fy_status fy_backend_create_cuda(int device, uint64_t budget_bytes, fy_backend **out);
/* Makes b's device current on the calling thread (ops launched from a
 * thread the backend has not seen run on its device). */
fy_status fy_cuda_use_device(fy_backend *b);
/* The cudaStream_t behind a ferry stream, for kernels launched by ops. */
void *fy_cuda_stream_handle(fy_backend *b, fy_stream s);

/* Conversion kernels (cuda_convert.cu), launched on stream (a cudaStream_t). */
fy_status fy_cuda_convert_bf16_to_f32(float *dst, const uint16_t *src, size_t n, void *stream);
fy_status fy_cuda_convert_f32_to_bf16(uint16_t *dst, const float *src, size_t n, void *stream);

/* Occupy the GPU for `seconds` on stream (a cudaStream_t) without touching
 * memory: a block's compute time for the streaming benchmark. */
fy_status fy_cuda_busy(double seconds, void *stream);

#ifdef __cplusplus
}
#endif
#endif
