/* fp8 storage of float weights (--storage-dtype, --fp8-scale): quantise a
 * [rows, cols] matrix once, dequantise it back to f32 a few rows at a time.
 *
 * Stored value q, scale s: the weight is fp8_to_f32(q) * s, with
 *   none    no scale (s = 1, and nothing is stored): values beyond the
 *           format's largest finite value are an error, not saturated;
 *   tensor  one s = amax(|w|) / fp8_max for the whole matrix;
 *   row     one s per row (per output feature of a Linear).
 * A scale is an f32 with amax / fp8_max rounded once (computed in double);
 * an all-zero matrix or row gets s = 1, and a scale that would underflow
 * f32's normal range is raised to FLT_MIN, so q = w / s never divides by
 * zero. w / s is rounded to fp8 with PyTorch's rules (see dtype.h); since
 * |w| / s <= fp8_max up to one rounding, nothing saturates. NaN or infinite
 * weights are refused (FY_ERR_FORMAT): a scale cannot represent them. */
#ifndef FERRY_QUANT_H
#define FERRY_QUANT_H

#include <stdbool.h>
#include <stdint.h>
#include "ferry/dtype.h"
#include "ferry/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fy_fp8_scale {
    FY_FP8_SCALE_ROW = 0,  /* default: see bench/RESULTS.md, "fp8 storage" */
    FY_FP8_SCALE_TENSOR,
    FY_FP8_SCALE_NONE
} fy_fp8_scale;

const char *fy_fp8_scale_name(fy_fp8_scale s);
/* Largest finite value: 448 (e4m3fn), 57344 (e5m2); 0 for other types. */
float fy_fp8_max(fy_dtype fp8);
/* Scales a [rows, cols] matrix needs: rows, 1 or 0. */
int64_t fy_fp8_scale_count(fy_fp8_scale mode, int64_t rows);

/* dst [rows * cols] fp8 (e4m3 or e5m2), scale [fy_fp8_scale_count] from src
 * of any float dtype. FY_ERR_FORMAT names `what` on a non-finite weight or,
 * without a scale, one the format cannot hold. */
fy_status fy_fp8_quantize(uint8_t *dst, float *scale, fy_dtype fp8, fy_fp8_scale mode, const void *src,
                          fy_dtype src_type, int64_t rows, int64_t cols, const char *what);

/* dst [n_rows * cols] = rows [row0, row0 + n_rows) of an fp8 matrix as f32:
 * a 256-entry table lookup (exact: the dtype's conversion of every byte)
 * times the row's scale (scale NULL: none; per_row false: scale[0] for all). */
void fy_fp8_dequantize_rows(float *dst, const uint8_t *src, fy_dtype fp8, const float *scale, bool per_row,
                            int64_t row0, int64_t n_rows, int64_t cols);

/* The exact f32 value of every byte of an fp8 type (NULL for other types). */
const float *fy_fp8_table(fy_dtype fp8);

#ifdef __cplusplus
}
#endif
#endif
