/* ggml's block formats to f32 (see ferry/quant_gguf.h for the layouts).
 * Products are kept in separate statements so that no compiler contracts
 * d x q - m into a fused multiply-add: every platform gives the same bits. */
#include "ferry/quant_gguf.h"

#include <string.h>

#define QK 32
#define QK_K 256

static float half_at(const uint8_t *p)
{
    return fy_f16_to_f32((uint16_t)(p[0] | (unsigned)p[1] << 8));
}

static void q8_0_block(float *y, const uint8_t *b)
{
    float d = half_at(b);
    const int8_t *qs = (const int8_t *)(b + 2);
    for (int j = 0; j < QK; j++) y[j] = d * (float)qs[j];
}

static void q4_0_block(float *y, const uint8_t *b)
{
    float d = half_at(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < QK / 2; j++) {
        y[j] = d * (float)((qs[j] & 0x0F) - 8);
        y[j + QK / 2] = d * (float)((qs[j] >> 4) - 8);
    }
}

/* The j-th 6-bit scale and min of a K block's 12 packed bytes. */
static void scale_min_k4(int j, const uint8_t *q, int *sc, int *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Q4_K and Q5_K: eight sub-blocks of 32, in pairs sharing 32 bytes of qs
 * (low nibbles, then high); qh (Q5_K, else NULL) adds 16 to a value. */
static void k4_block(float *y, const uint8_t *b, const uint8_t *qh, const uint8_t *qs)
{
    float d = half_at(b), dmin = half_at(b + 2);
    const uint8_t *scales = b + 4;
    for (int pair = 0; pair < 4; pair++) {
        const uint8_t *q = qs + 32 * pair;
        for (int half = 0; half < 2; half++) {
            int sc, m, shift = 4 * half;
            unsigned bit = 1u << (2 * pair + half);
            scale_min_k4(2 * pair + half, scales, &sc, &m);
            float d1 = d * (float)sc, m1 = dmin * (float)m;
            for (int l = 0; l < 32; l++) {
                int v = (q[l] >> shift) & 0xF;
                if (qh && (qh[l] & bit)) v += 16;
                float p = d1 * (float)v;
                *y++ = p - m1;
            }
        }
    }
}

static void q6_k_block(float *y, const uint8_t *b)
{
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = half_at(b + 208);
    for (int n = 0; n < QK_K; n += 128) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32;
            int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            float d1 = d * (float)sc[is], d2 = d * (float)sc[is + 2];
            float d3 = d * (float)sc[is + 4], d4 = d * (float)sc[is + 6];
            y[l] = d1 * (float)q1;
            y[l + 32] = d2 * (float)q2;
            y[l + 64] = d3 * (float)q3;
            y[l + 96] = d4 * (float)q4;
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

static void one_block(float *y, const uint8_t *b, fy_dtype type)
{
    switch (type) {
    case FY_Q8_0: q8_0_block(y, b); break;
    case FY_Q4_0: q4_0_block(y, b); break;
    case FY_Q4_K: k4_block(y, b, NULL, b + 16); break;
    case FY_Q5_K: k4_block(y, b, b + 16, b + 48); break;
    case FY_Q6_K: q6_k_block(y, b); break;
    default: break; /* callers pass quantised types only */
    }
}

void fy_gguf_dequantize_blocks(float *dst, const void *blocks, fy_dtype type, int64_t n_blocks)
{
    const uint8_t *b = blocks;
    size_t bytes = fy_dtype_block_bytes(type);
    unsigned per = fy_dtype_block(type);
    if (!fy_dtype_is_quant(type)) return;
    for (int64_t i = 0; i < n_blocks; i++) one_block(dst + i * per, b + (size_t)i * bytes, type);
}

void fy_gguf_dequantize_rows(float *dst, const void *src, fy_dtype type, int64_t row0, int64_t n_rows, int64_t cols)
{
    int64_t per_row = cols / (int64_t)fy_dtype_block(type);
    const char *at = (const char *)src + fy_dtype_bytes(type, (uint64_t)(row0 * cols));
    fy_gguf_dequantize_blocks(dst, at, type, n_rows * per_row);
}

/* Offsets of a block's f16 scales (-1: none). */
static void scale_offsets(fy_dtype type, int *a, int *b)
{
    *a = type == FY_Q6_K ? 208 : 0;
    *b = type == FY_Q4_K || type == FY_Q5_K ? 2 : -1;
}

static bool half_nonfinite(const uint8_t *p)
{
    return (p[1] & 0x7C) == 0x7C;
}

bool fy_gguf_find_nonfinite(const void *blocks, fy_dtype type, int64_t n_blocks, int64_t *block)
{
    if (!fy_dtype_is_quant(type)) return false;
    const uint8_t *b = blocks;
    size_t bytes = fy_dtype_block_bytes(type);
    int a, c;
    scale_offsets(type, &a, &c);
    for (int64_t i = 0; i < n_blocks; i++) {
        const uint8_t *p = b + (size_t)i * bytes;
        if (half_nonfinite(p + a) || (c >= 0 && half_nonfinite(p + c))) {
            *block = i;
            return true;
        }
    }
    return false;
}
