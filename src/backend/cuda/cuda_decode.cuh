// Element decoding on the GPU with the host's rules (src/core/dtype.c):
// exact f16 / bf16 / fp8 e4m3fn / e5m2 -> f32 (subnormals, NaN codes), and
// f32 -> bf16 rounded to nearest even (NaN -> 0x7FC0), shared by the
// conversion and GEMM kernels.
#ifndef FERRY_BACKEND_CUDA_DECODE_CUH
#define FERRY_BACKEND_CUDA_DECODE_CUH

#include <cstddef>
#include <cstdint>

#include "ferry/dtype.h"

namespace fy_cuda {

// The dtypes load_weight reads (f64 is a host-only type here).
inline bool decodable(fy_dtype t)
{
    return t == FY_F32 || t == FY_F16 || t == FY_BF16 || t == FY_F8_E4M3 || t == FY_F8_E5M2;
}

__device__ __forceinline__ float f16_to_f32(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
    uint32_t mag;
    if (e == 0) mag = __float_as_uint((float)m * 0x1p-24f);   // zero and subnormals: exact
    else if (e == 31) mag = 0x7F800000u | (m << 13) | (m ? 0x00400000u : 0u);  // inf; NaN quieted as the CPU's
    else mag = ((e + 112u) << 23) | (m << 13);
    return __uint_as_float(sign | mag);
}

__device__ __forceinline__ float e4m3_to_f32(uint8_t v)
{
    const uint32_t sign = (uint32_t)(v & 0x80u) << 24;
    const uint32_t e = (v >> 3) & 0xFu, m = v & 0x7u;
    uint32_t mag;
    if ((v & 0x7Fu) == 0x7Fu) mag = 0x7FF00000u;               // e4m3fn NaN, as c10
    else if (e == 0) mag = __float_as_uint((float)m * 0x1p-9f);
    else mag = ((e + 120u) << 23) | (m << 20);
    return __uint_as_float(sign | mag);
}

__device__ __forceinline__ float e5m2_to_f32(uint8_t v)
{
    return f16_to_f32((uint16_t)((uint16_t)v << 8));
}

__device__ __forceinline__ float load_weight(const void *w, fy_dtype t, size_t i)
{
    switch (t) {
    case FY_F32: return ((const float *)w)[i];
    case FY_F16: return f16_to_f32(((const uint16_t *)w)[i]);
    case FY_BF16: return __uint_as_float((uint32_t)((const uint16_t *)w)[i] << 16);
    case FY_F8_E4M3: return e4m3_to_f32(((const uint8_t *)w)[i]);
    default: return e5m2_to_f32(((const uint8_t *)w)[i]);   // FY_F8_E5M2 (decodable() checked)
    }
}

// Round to nearest even; NaN -> 0x7FC0 (cuda_convert.cu, fy_f32_to_bf16).
__device__ __forceinline__ uint16_t f32_to_bf16(float f)
{
    uint32_t bits = __float_as_uint(f);
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0;
    return (uint16_t)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

}  // namespace fy_cuda

#endif
