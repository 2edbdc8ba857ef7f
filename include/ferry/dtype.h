/* Element types and exact conversions between them.
 *
 * Conversions to the narrow float formats round to nearest, ties to even,
 * and follow PyTorch's rules for NaN, infinity and overflow:
 *   f16      IEEE binary16: overflow -> +-inf, NaN -> sign|0x7E00.
 *   bf16     NaN -> 0x7FC0; overflow -> +-inf (rounding carries into the exponent).
 *   e4m3fn   no infinities; |x| >= 480 (after rounding would exceed 448), inf
 *            and NaN -> sign|0x7F (NaN), as c10::Float8_e4m3fn.
 *   e5m2     |x| >= 65536 and inf -> sign|0x7C (inf), NaN -> sign|0x7F,
 *            as c10::Float8_e5m2.
 * Subnormals of every format are kept (no flush to zero). */
#ifndef FERRY_DTYPE_H
#define FERRY_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include "ferry/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Every dtype the safetensors format defines. Compute uses f32, f16, bf16;
 * storage may also use the fp8 formats. */
typedef enum fy_dtype {
    FY_F32 = 0,
    FY_F16,
    FY_BF16,
    FY_F8_E4M3,  /* float8_e4m3fn */
    FY_F8_E5M2,
    FY_F64,
    FY_I64,
    FY_I32,
    FY_I16,
    FY_I8,
    FY_U64,
    FY_U32,
    FY_U16,
    FY_U8,
    FY_BOOL,
    FY_F8_E8M0,  /* scale format (safetensors >= 0.6) */
    FY_F6_E2M3,  /* sub-byte formats: bits, packed */
    FY_F6_E3M2,
    FY_F4,
    FY_C64,
    /* ggml's block-quantised formats (GGUF files): a row of the innermost
     * dimension is a run of blocks, each a few scales and packed integers,
     * laid out exactly as ggml-quants.c defines them (ferry/quant_gguf.h). */
    FY_Q8_0,
    FY_Q4_0,
    FY_Q4_K,
    FY_Q5_K,
    FY_Q6_K,
    FY_DTYPE_COUNT
} fy_dtype;

/* Bits per element (4 and 6 for the packed sub-byte formats). */
unsigned fy_dtype_bits(fy_dtype t);
/* Bytes per element; 0 for the sub-byte formats. */
size_t fy_dtype_size(fy_dtype t);
/* Lower-case name used in ferry's output ("f32", "bf16", "f8_e4m3", ...). */
const char *fy_dtype_name(fy_dtype t);
/* The safetensors header spelling ("F32", "BF16", "F8_E4M3", ...). */
const char *fy_dtype_safetensors_name(fy_dtype t);
/* Parse a safetensors dtype string; FY_ERR_FORMAT if unknown. */
fy_status fy_dtype_from_safetensors(const char *name, fy_dtype *out);
/* Parse a user-facing name: "f32|float32|fp32|f16|fp16|bf16|fp8_e4m3|fp8_e5m2|...". */
fy_status fy_dtype_parse(const char *name, fy_dtype *out);
/* 1 for f32, f16, bf16, fp8 e4m3/e5m2, f64: the types fy_convert handles. */
int fy_dtype_is_float(fy_dtype t);
/* 1 for the block-quantised types (FY_Q8_0 ... FY_Q6_K): fy_dtype_size and
 * fy_dtype_bits are 0 for them (no whole bytes per element); a tensor of n
 * elements (n a multiple of the block) takes n / block x block_bytes bytes. */
int fy_dtype_is_quant(fy_dtype t);
/* Elements per block: 32 (Q8_0, Q4_0), 256 (the K types), 1 for the others. */
unsigned fy_dtype_block(fy_dtype t);
/* Bytes per block of a quantised type; fy_dtype_size for the others. */
size_t fy_dtype_block_bytes(fy_dtype t);
/* Bytes n elements take (n a multiple of the block for quantised types;
 * 0 for sub-byte types); no overflow check: n comes from validated shapes. */
uint64_t fy_dtype_bytes(fy_dtype t, uint64_t n);

/* Scalar conversions. */
float fy_f16_to_f32(uint16_t h);
uint16_t fy_f32_to_f16(float f);
float fy_bf16_to_f32(uint16_t b);
uint16_t fy_f32_to_bf16(float f);
float fy_e4m3_to_f32(uint8_t v);
uint8_t fy_f32_to_e4m3(float f);
float fy_e5m2_to_f32(uint8_t v);
uint8_t fy_f32_to_e5m2(float f);

/* Convert n contiguous elements between any two float dtypes (f32, f64, f16,
 * bf16, e4m3, e5m2). src and dst must not overlap unless identical. */
fy_status fy_convert(void *dst, fy_dtype dst_type, const void *src, fy_dtype src_type, size_t n);

#ifdef __cplusplus
}
#endif
#endif
