/* fp8 quantisation with per-tensor or per-row scales (see ferry/quant.h). */
#include "ferry/quant.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

static float e4m3_table[256], e5m2_table[256];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void make_tables(void)
{
    for (int v = 0; v < 256; v++) {
        e4m3_table[v] = fy_e4m3_to_f32((uint8_t)v);
        e5m2_table[v] = fy_e5m2_to_f32((uint8_t)v);
    }
}

const float *fy_fp8_table(fy_dtype fp8)
{
    if (fp8 != FY_F8_E4M3 && fp8 != FY_F8_E5M2) return NULL;
    pthread_once(&tables_once, make_tables);
    return fp8 == FY_F8_E4M3 ? e4m3_table : e5m2_table;
}

const char *fy_fp8_scale_name(fy_fp8_scale s)
{
    switch (s) {
    case FY_FP8_SCALE_ROW: return "row";
    case FY_FP8_SCALE_TENSOR: return "tensor";
    case FY_FP8_SCALE_NONE: return "none";
    }
    return "unknown";
}

float fy_fp8_max(fy_dtype fp8)
{
    return fp8 == FY_F8_E4M3 ? 448.0f : fp8 == FY_F8_E5M2 ? 57344.0f : 0.0f;
}

int64_t fy_fp8_scale_count(fy_fp8_scale mode, int64_t rows)
{
    return mode == FY_FP8_SCALE_ROW ? rows : mode == FY_FP8_SCALE_TENSOR ? 1 : 0;
}

static float scale_for(float amax, float fp8_max)
{
    if (amax == 0.0f) return 1.0f;
    float s = (float)((double)amax / (double)fp8_max);
    return s < FLT_MIN ? FLT_MIN : s;
}

/* Row r of src as f32 into buf; its largest magnitude, or NaN when a value
 * is not finite. */
static float load_row(float *buf, const void *src, fy_dtype type, int64_t r, int64_t cols)
{
    const char *row = (const char *)src + (size_t)(r * cols) * fy_dtype_size(type);
    (void)fy_convert(buf, FY_F32, row, type, (size_t)cols); /* the caller checked the type */
    float amax = 0.0f;
    for (int64_t c = 0; c < cols; c++) {
        float a = fabsf(buf[c]);
        if (!isfinite(a)) return NAN;
        if (a > amax) amax = a;
    }
    return amax;
}

static fy_status bad_value(const char *what, int64_t r)
{
    return fy_error(FY_ERR_FORMAT, "%s: row %lld has a NaN or infinite weight, which fp8 storage cannot scale; "
                    "run without --storage-dtype", what ? what : "weight", (long long)r);
}

static fy_status store_row(uint8_t *dst, float *buf, fy_dtype fp8, float s, int64_t r, int64_t cols,
                           const char *what)
{
    if (s != 1.0f)
        for (int64_t c = 0; c < cols; c++) buf[c] /= s;
    (void)fy_convert(dst + r * cols, fp8, buf, FY_F32, (size_t)cols);
    const float *table = fy_fp8_table(fp8);
    for (int64_t c = 0; c < cols; c++)
        if (!isfinite(table[dst[r * cols + c]]))
            return fy_error(FY_ERR_FORMAT, "%s: row %lld has a weight beyond %s's range (+-%g) and "
                            "--fp8-scale none keeps no scale; use --fp8-scale row or tensor",
                            what ? what : "weight", (long long)r, fy_dtype_name(fp8), (double)fy_fp8_max(fp8));
    return FY_OK;
}

static fy_status tensor_amax(float *buf, const void *src, fy_dtype type, int64_t rows, int64_t cols,
                             const char *what, float *out)
{
    *out = 0.0f;
    for (int64_t r = 0; r < rows; r++) {
        float a = load_row(buf, src, type, r, cols);
        if (isnan(a)) return bad_value(what, r);
        if (a > *out) *out = a;
    }
    return FY_OK;
}

fy_status fy_fp8_quantize(uint8_t *dst, float *scale, fy_dtype fp8, fy_fp8_scale mode, const void *src,
                          fy_dtype src_type, int64_t rows, int64_t cols, const char *what)
{
    if (!fy_fp8_table(fp8))
        return fy_error(FY_ERR_INVALID, "fp8 quantisation to %s: not an fp8 type", fy_dtype_name(fp8));
    if (!fy_dtype_is_float(src_type) || fy_dtype_size(src_type) == 0)
        return fy_error(FY_ERR_UNSUPPORTED, "%s: fp8 quantisation of %s weights", what ? what : "weight",
                        fy_dtype_name(src_type));
    if (rows < 0 || cols < 0) return fy_error(FY_ERR_INVALID, "fp8 quantisation: negative size");
    if (rows == 0 || cols == 0) {
        if (mode == FY_FP8_SCALE_TENSOR) scale[0] = 1.0f;
        for (int64_t r = 0; mode == FY_FP8_SCALE_ROW && r < rows; r++) scale[r] = 1.0f;
        return FY_OK;
    }
    float *buf = malloc((size_t)cols * sizeof *buf);
    if (!buf) return fy_error(FY_ERR_NOMEM, "fp8 quantisation: out of memory");
    float fmax = fy_fp8_max(fp8), s = 1.0f;
    fy_status st = FY_OK;
    if (mode == FY_FP8_SCALE_TENSOR) {
        float amax = 0.0f;
        st = tensor_amax(buf, src, src_type, rows, cols, what, &amax);
        s = scale[0] = scale_for(amax, fmax);
    }
    for (int64_t r = 0; st == FY_OK && r < rows; r++) {
        float amax = load_row(buf, src, src_type, r, cols);
        if (isnan(amax)) st = bad_value(what, r);
        else if (mode == FY_FP8_SCALE_ROW) s = scale[r] = scale_for(amax, fmax);
        if (st == FY_OK) st = store_row(dst, buf, fp8, s, r, cols, what);
    }
    free(buf);
    return st;
}

void fy_fp8_dequantize_rows(float *dst, const uint8_t *src, fy_dtype fp8, const float *scale, bool per_row,
                            int64_t row0, int64_t n_rows, int64_t cols)
{
    const float *table = fy_fp8_table(fp8);
    for (int64_t r = 0; r < n_rows; r++) {
        const uint8_t *q = src + (row0 + r) * cols;
        float *out = dst + r * cols;
        if (!scale) {
            for (int64_t c = 0; c < cols; c++) out[c] = table[q[c]];
            continue;
        }
        float s = scale[per_row ? row0 + r : 0];
        for (int64_t c = 0; c < cols; c++) out[c] = table[q[c]] * s;
    }
}
