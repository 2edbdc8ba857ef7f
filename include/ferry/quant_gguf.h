/* ggml's block-quantised weights (GGUF files), dequantised to f32 a few rows
 * at a time inside a linear layer, so they stay quantised in memory and on
 * the bus.
 *
 * A [rows, cols] matrix (cols = ggml's ne[0], the innermost dimension) is
 * rows x (cols / block) blocks, row after row. Blocks as ggml-common.h lays
 * them out (f16 scales are IEEE binary16, little-endian):
 *   Q8_0  32 values, 34 bytes: d f16, qs[32] int8;        x = d q
 *   Q4_0  32 values, 18 bytes: d f16, qs[16] nibbles;     x = d (q - 8),
 *         the low nibbles are values 0..15, the high ones 16..31
 *   Q4_K  256 values, 144 bytes: d, dmin f16, scales[12] (eight 6-bit scale
 *         and min pairs), qs[128] nibbles;                x = d sc q - dmin m
 *   Q5_K  256 values, 176 bytes: Q4_K's header, qh[32] (the fifth bits),
 *         qs[128]
 *   Q6_K  256 values, 210 bytes: ql[128], qh[64], scales[16] int8, d f16;
 *         x = d sc (q - 32)
 * Each value is computed in f32 in ggml's order of operations (d times the
 * sub-block scale first), one rounding per operation. */
#ifndef FERRY_QUANT_GGUF_H
#define FERRY_QUANT_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ferry/dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

/* dst [n_blocks x fy_dtype_block(type)] from n_blocks blocks of a quantised type. */
void fy_gguf_dequantize_blocks(float *dst, const void *blocks, fy_dtype type, int64_t n_blocks);
/* dst [n_rows x cols] = rows [row0, row0 + n_rows) of a quantised [rows, cols]
 * matrix (cols a multiple of the block). */
void fy_gguf_dequantize_rows(float *dst, const void *src, fy_dtype type, int64_t row0, int64_t n_rows, int64_t cols);
/* Whether a scale of the n_blocks blocks is NaN or infinite (the integers
 * cannot be); *block is the first such block. */
bool fy_gguf_find_nonfinite(const void *blocks, fy_dtype type, int64_t n_blocks, int64_t *block);

#ifdef __cplusplus
}
#endif
#endif
