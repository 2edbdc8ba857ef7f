/* Element types and conversions that reproduce PyTorch's c10 bit for bit, so
 * that weights cast by ferry match weights cast by torch exactly.
 *
 * The bulk loops run over gigabytes of weights: the scalar rules are written
 * branch-free and the loops are cut into fixed-size blocks so that gcc's -O2
 * "very cheap" vectoriser (which refuses loops that need a scalar epilogue)
 * and clang both turn them into SIMD code.
 *
 * Some rules let the FPU do the rounding (c10 does the same), so they assume
 * the default floating-point environment: round to nearest, no flush-to-zero
 * or denormals-are-zero. Nothing in ferry changes it. */
#include "ferry/dtype.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------------ */
/* The dtype table                                                           */
/* ------------------------------------------------------------------------ */

typedef struct dtype_info {
    const char *name;             /* ferry's spelling */
    const char *safetensors_name; /* the header spelling */
    unsigned bits;
    bool is_float;                /* handled by fy_convert */
    unsigned block;               /* quantised: elements per block (else 0) */
    unsigned block_bytes;         /* quantised: bytes per block */
} dtype_info;

static const dtype_info dtype_table[FY_DTYPE_COUNT] = {
    [FY_F32] = {"f32", "F32", 32, true, 0, 0},
    [FY_F16] = {"f16", "F16", 16, true, 0, 0},
    [FY_BF16] = {"bf16", "BF16", 16, true, 0, 0},
    [FY_F8_E4M3] = {"f8_e4m3", "F8_E4M3", 8, true, 0, 0},
    [FY_F8_E5M2] = {"f8_e5m2", "F8_E5M2", 8, true, 0, 0},
    [FY_F64] = {"f64", "F64", 64, true, 0, 0},
    [FY_I64] = {"i64", "I64", 64, false, 0, 0},
    [FY_I32] = {"i32", "I32", 32, false, 0, 0},
    [FY_I16] = {"i16", "I16", 16, false, 0, 0},
    [FY_I8] = {"i8", "I8", 8, false, 0, 0},
    [FY_U64] = {"u64", "U64", 64, false, 0, 0},
    [FY_U32] = {"u32", "U32", 32, false, 0, 0},
    [FY_U16] = {"u16", "U16", 16, false, 0, 0},
    [FY_U8] = {"u8", "U8", 8, false, 0, 0},
    [FY_BOOL] = {"bool", "BOOL", 8, false, 0, 0},
    [FY_F8_E8M0] = {"f8_e8m0", "F8_E8M0", 8, false, 0, 0},
    [FY_F6_E2M3] = {"f6_e2m3", "F6_E2M3", 6, false, 0, 0},
    [FY_F6_E3M2] = {"f6_e3m2", "F6_E3M2", 6, false, 0, 0},
    [FY_F4] = {"f4", "F4", 4, false, 0, 0},
    [FY_C64] = {"c64", "C64", 64, false, 0, 0},
    [FY_Q8_0] = {"q8_0", "Q8_0", 0, false, 32, 34},
    [FY_Q4_0] = {"q4_0", "Q4_0", 0, false, 32, 18},
    [FY_Q4_K] = {"q4_k", "Q4_K", 0, false, 256, 144},
    [FY_Q5_K] = {"q5_k", "Q5_K", 0, false, 256, 176},
    [FY_Q6_K] = {"q6_k", "Q6_K", 0, false, 256, 210},
};

static bool dtype_valid(fy_dtype t)
{
    return (unsigned)t < FY_DTYPE_COUNT;
}

unsigned fy_dtype_bits(fy_dtype t)
{
    return dtype_valid(t) ? dtype_table[t].bits : 0;
}

size_t fy_dtype_size(fy_dtype t)
{
    unsigned bits = fy_dtype_bits(t);
    return bits % 8 == 0 ? bits / 8 : 0;
}

const char *fy_dtype_name(fy_dtype t)
{
    return dtype_valid(t) ? dtype_table[t].name : "unknown";
}

const char *fy_dtype_safetensors_name(fy_dtype t)
{
    return dtype_valid(t) ? dtype_table[t].safetensors_name : "UNKNOWN";
}

int fy_dtype_is_float(fy_dtype t)
{
    return dtype_valid(t) && dtype_table[t].is_float;
}

int fy_dtype_is_quant(fy_dtype t)
{
    return dtype_valid(t) && dtype_table[t].block > 0;
}

unsigned fy_dtype_block(fy_dtype t)
{
    return fy_dtype_is_quant(t) ? dtype_table[t].block : 1;
}

size_t fy_dtype_block_bytes(fy_dtype t)
{
    return fy_dtype_is_quant(t) ? dtype_table[t].block_bytes : fy_dtype_size(t);
}

uint64_t fy_dtype_bytes(fy_dtype t, uint64_t n)
{
    return n / fy_dtype_block(t) * fy_dtype_block_bytes(t);
}

fy_status fy_dtype_from_safetensors(const char *name, fy_dtype *out)
{
    if (name)
        for (int t = 0; t < FY_DTYPE_COUNT; t++)
            if (!dtype_table[t].block && strcmp(name, dtype_table[t].safetensors_name) == 0) {
                *out = (fy_dtype)t;
                return FY_OK;
            }
    return fy_error(FY_ERR_FORMAT,
                    "unknown safetensors dtype \"%s\" (known: F32 F16 BF16 F8_E4M3 F8_E5M2 F64 "
                    "I64 I32 I16 I8 U64 U32 U16 U8 BOOL F8_E8M0 F6_E2M3 F6_E3M2 F4 C64)",
                    name ? name : "(null)");
}

/* Spellings users type (PyTorch, numpy, ml_dtypes, common shorthands), on top
 * of ferry's own names and the safetensors names. Matched case-insensitively. */
static const struct {
    const char *alias;
    fy_dtype type;
} dtype_aliases[] = {
    {"float32", FY_F32}, {"fp32", FY_F32}, {"float", FY_F32},
    {"float16", FY_F16}, {"fp16", FY_F16}, {"half", FY_F16},
    {"bfloat16", FY_BF16},
    {"fp8_e4m3", FY_F8_E4M3}, {"float8_e4m3fn", FY_F8_E4M3}, {"float8_e4m3", FY_F8_E4M3},
    {"fp8_e4m3fn", FY_F8_E4M3}, {"f8_e4m3fn", FY_F8_E4M3}, {"e4m3", FY_F8_E4M3},
    {"e4m3fn", FY_F8_E4M3}, {"fp8", FY_F8_E4M3},
    {"fp8_e5m2", FY_F8_E5M2}, {"float8_e5m2", FY_F8_E5M2}, {"e5m2", FY_F8_E5M2},
    {"float64", FY_F64}, {"fp64", FY_F64}, {"double", FY_F64},
    {"int64", FY_I64}, {"long", FY_I64}, {"int32", FY_I32}, {"int", FY_I32},
    {"int16", FY_I16}, {"short", FY_I16}, {"int8", FY_I8},
    {"uint64", FY_U64}, {"uint32", FY_U32}, {"uint16", FY_U16}, {"uint8", FY_U8},
    {"complex64", FY_C64},
};

fy_status fy_dtype_parse(const char *name, fy_dtype *out)
{
    if (name) {
        for (int t = 0; t < FY_DTYPE_COUNT; t++)
            if (!dtype_table[t].block && (strcasecmp(name, dtype_table[t].name) == 0 ||
                strcasecmp(name, dtype_table[t].safetensors_name) == 0)) {
                *out = (fy_dtype)t;
                return FY_OK;
            }
        for (size_t i = 0; i < sizeof dtype_aliases / sizeof dtype_aliases[0]; i++)
            if (strcasecmp(name, dtype_aliases[i].alias) == 0) {
                *out = dtype_aliases[i].type;
                return FY_OK;
            }
    }
    return fy_error(FY_ERR_INVALID,
                    "unknown dtype \"%s\" (valid: f32|float32|fp32, f16|fp16|float16|half, "
                    "bf16|bfloat16, f8_e4m3|fp8_e4m3|float8_e4m3fn|e4m3, "
                    "f8_e5m2|fp8_e5m2|float8_e5m2|e5m2, f64|float64, i64, i32, i16, i8, "
                    "u64, u32, u16, u8, bool, f8_e8m0, f6_e2m3, f6_e3m2, f4, c64)",
                    name ? name : "(null)");
}

/* ------------------------------------------------------------------------ */
/* Scalar rules (inline so the bulk loops can vectorise them)               */
/* ------------------------------------------------------------------------ */

static inline uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* A blend rather than ?: so gcc cannot sink a float operation into one arm:
 * with -ftrapping-math (its default) it then refuses to if-convert, and the
 * loop stays scalar. */
static inline uint32_t select_u32(bool cond, uint32_t if_true, uint32_t if_false)
{
    uint32_t mask = 0u - (uint32_t)cond;
    return (if_true & mask) | (if_false & ~mask);
}

/* binary16 -> binary32 is exact. Normal numbers only need their exponent
 * rebased, which a multiply by 2^-112 does after shifting the fields into
 * place (it also keeps inf/NaN, whose exponent lands on 255). Subnormals are
 * m * 2^-24: placing m in the mantissa of 0.5 and subtracting 0.5 gives it
 * exactly. */
static inline float f16_decode(uint16_t h)
{
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & 0x80000000u;
    const uint32_t two_w = w + w;
    const float normal = f32_from_bits((two_w >> 4) + (0xE0u << 23)) * 0x1p-112f;
    const float subnormal = f32_from_bits((two_w >> 17) | (126u << 23)) - 0.5f;
    const uint32_t magnitude = select_u32(two_w < (1u << 27), f32_bits(subnormal), f32_bits(normal));
    return f32_from_bits(sign | magnitude);
}

/* binary32 -> binary16, round to nearest even, as c10's
 * fp16_ieee_from_fp32_value. The two scalings push overflow to inf and
 * denormalise tiny values; adding a power of two whose ulp is the binary16
 * ulp of |f| then makes the FPU do the rounding. */
static inline uint16_t f16_encode(float f)
{
    float base = (fabsf(f) * 0x1p+112f) * 0x1p-110f;
    const uint32_t w = f32_bits(f);
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xFF000000u;
    bias = bias < 0x71000000u ? 0x71000000u : bias;
    base = f32_from_bits((bias >> 1) + 0x07800000u) + base;
    const uint32_t bits = f32_bits(base);
    const uint32_t nonsign = ((bits >> 13) & 0x7C00u) + (bits & 0x0FFFu);
    return (uint16_t)((sign >> 16) | select_u32(shl1_w > 0xFF000000u, 0x7E00u, nonsign));
}

static inline float bf16_decode(uint16_t b)
{
    return f32_from_bits((uint32_t)b << 16);
}

/* c10 round_to_nearest_even: NaN becomes the canonical positive quiet NaN;
 * everything else rounds on the bit pattern, overflow carrying into inf. */
static inline uint16_t bf16_encode(float f)
{
    const uint32_t u = f32_bits(f);
    const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    return (uint16_t)select_u32((u & 0x7FFFFFFFu) > 0x7F800000u, 0x7FC0u, rounded);
}

/* e4m3fn: bias 7, no infinities, 0x7F/0xFF are NaN (c10 returns the quiet
 * NaN pattern below with the sign kept). */
static inline float e4m3_decode(uint8_t v)
{
    const uint32_t sign = (uint32_t)(v & 0x80u) << 24;
    const uint32_t exponent = (v >> 3) & 0xFu;
    const uint32_t mantissa = v & 0x7u;
    const uint32_t normal = ((exponent + 120u) << 23) | (mantissa << 20);
    const uint32_t subnormal = f32_bits((float)mantissa * 0x1p-9f);
    uint32_t magnitude = select_u32(exponent != 0, normal, subnormal);
    magnitude = select_u32((v & 0x7Fu) == 0x7Fu, 0x7FF00000u, magnitude);
    return f32_from_bits(sign | magnitude);
}

/* c10 fp8e4m3fn_from_fp32_value. |f| >= 480 (and inf, NaN) saturate to NaN;
 * values in (464, 480) round up onto the NaN code as well, exactly as c10.
 * Below 2^-6 (the smallest normal) adding 2^14, whose ulp is the e4m3
 * subnormal step 2^-9, makes the FPU round |f| and leaves the code in the low
 * mantissa bits; above, the bit-pattern rounding of bf16 applies with the
 * exponent rebased. */
static inline uint8_t e4m3_encode(float f)
{
    const uint32_t denorm_bits = 141u << 23; /* 2^14 */
    const uint32_t w = f32_bits(f);
    const uint32_t sign = w & 0x80000000u;
    const uint32_t a = w ^ sign;
    const uint32_t sub = f32_bits(f32_from_bits(a) + f32_from_bits(denorm_bits)) - denorm_bits;
    const uint32_t norm = (a + 0xC407FFFFu /* ((7 - 127) << 23) + 0x7FFFF */ + ((a >> 20) & 1u)) >> 20;
    uint32_t result = select_u32(a < (121u << 23), sub, norm);
    result = select_u32(a >= (1087u << 20), 0x7Fu, result);
    return (uint8_t)(result | (sign >> 24));
}

/* e5m2 is the top byte of a binary16. */
static inline float e5m2_decode(uint8_t v)
{
    return f16_decode((uint16_t)((uint16_t)v << 8));
}

/* c10 fp8e5m2_from_fp32_value: |f| >= 65536 -> inf, NaN -> 0x7F, sign kept. */
static inline uint8_t e5m2_encode(float f)
{
    const uint32_t denorm_bits = 134u << 23; /* 2^7: its ulp is the e5m2 step 2^-16 */
    const uint32_t w = f32_bits(f);
    const uint32_t sign = w & 0x80000000u;
    const uint32_t a = w ^ sign;
    const uint32_t sub = f32_bits(f32_from_bits(a) + f32_from_bits(denorm_bits)) - denorm_bits;
    const uint32_t norm = (a + 0xC80FFFFFu /* ((15 - 127) << 23) + 0xFFFFF */ + ((a >> 21) & 1u)) >> 21;
    uint32_t result = select_u32(a < (113u << 23), sub, norm);
    result = select_u32(a >= (143u << 23), a > 0x7F800000u ? 0x7Fu : 0x7Cu, result);
    return (uint8_t)(result | (sign >> 24));
}

float fy_f16_to_f32(uint16_t h) { return f16_decode(h); }
uint16_t fy_f32_to_f16(float f) { return f16_encode(f); }
float fy_bf16_to_f32(uint16_t b) { return bf16_decode(b); }
uint16_t fy_f32_to_bf16(float f) { return bf16_encode(f); }
float fy_e4m3_to_f32(uint8_t v) { return e4m3_decode(v); }
uint8_t fy_f32_to_e4m3(float f) { return e4m3_encode(f); }
float fy_e5m2_to_f32(uint8_t v) { return e5m2_decode(v); }
uint8_t fy_f32_to_e5m2(float f) { return e5m2_encode(f); }

/* ------------------------------------------------------------------------ */
/* Bulk loops: every float type to and from f32                             */
/* ------------------------------------------------------------------------ */

/* A fixed trip count lets the vectoriser drop the runtime checks and the
 * scalar epilogue; the tail is handled once, outside. Elements move through
 * memcpy because safetensors data is only guaranteed byte alignment; the
 * compiler turns it into plain (unaligned) vector loads and stores. */
#define FY_CONVERT_BLOCK 32

#define FY_DEFINE_LOOP(fn, dst_t, src_t, expr)                                       \
    static inline void fn##_one(unsigned char *restrict d, const unsigned char *restrict s, \
                                size_t i)                                            \
    {                                                                                \
        src_t x;                                                                     \
        memcpy(&x, s + i * sizeof x, sizeof x);                                      \
        dst_t y = expr(x);                                                           \
        memcpy(d + i * sizeof y, &y, sizeof y);                                      \
    }                                                                                \
    static void fn(void *restrict dst, const void *restrict src, size_t n)           \
    {                                                                                \
        size_t i = 0;                                                                \
        for (; i + FY_CONVERT_BLOCK <= n; i += FY_CONVERT_BLOCK)                     \
            for (size_t j = i; j < i + FY_CONVERT_BLOCK; j++) fn##_one(dst, src, j);  \
        for (; i < n; i++) fn##_one(dst, src, i);                                    \
    }

#define FY_CAST_F32(x) ((float)(x))
#define FY_CAST_F64(x) ((double)(x))

FY_DEFINE_LOOP(f16_to_f32_n, float, uint16_t, f16_decode)
FY_DEFINE_LOOP(f32_to_f16_n, uint16_t, float, f16_encode)
FY_DEFINE_LOOP(bf16_to_f32_n, float, uint16_t, bf16_decode)
FY_DEFINE_LOOP(f32_to_bf16_n, uint16_t, float, bf16_encode)
FY_DEFINE_LOOP(e4m3_to_f32_n, float, uint8_t, e4m3_decode)
FY_DEFINE_LOOP(f32_to_e4m3_n, uint8_t, float, e4m3_encode)
FY_DEFINE_LOOP(e5m2_to_f32_n, float, uint8_t, e5m2_decode)
FY_DEFINE_LOOP(f32_to_e5m2_n, uint8_t, float, e5m2_encode)
FY_DEFINE_LOOP(f64_to_f32_n, float, double, FY_CAST_F32)
FY_DEFINE_LOOP(f32_to_f64_n, double, float, FY_CAST_F64)

typedef void (*convert_loop)(void *restrict dst, const void *restrict src, size_t n);

static convert_loop to_f32_loop(fy_dtype t)
{
    switch (t) {
    case FY_F16: return f16_to_f32_n;
    case FY_BF16: return bf16_to_f32_n;
    case FY_F8_E4M3: return e4m3_to_f32_n;
    case FY_F8_E5M2: return e5m2_to_f32_n;
    case FY_F64: return f64_to_f32_n;
    default: return NULL;
    }
}

static convert_loop from_f32_loop(fy_dtype t)
{
    switch (t) {
    case FY_F16: return f32_to_f16_n;
    case FY_BF16: return f32_to_bf16_n;
    case FY_F8_E4M3: return f32_to_e4m3_n;
    case FY_F8_E5M2: return f32_to_e5m2_n;
    case FY_F64: return f32_to_f64_n;
    default: return NULL;
    }
}

/* Pairs without f32 go through an f32 staging buffer. Widening any narrow
 * format to f32 is exact, so only the final rounding matters; from f64 this
 * rounds twice (f64 -> f32 -> narrow), which is what PyTorch's CPU casts do
 * (c10's Half, BFloat16 and Float8 types only construct from float). The same
 * staging makes dst == src safe: narrowing walks forwards, widening
 * backwards, so no chunk is overwritten before it has been read. */
#define FY_STAGE 512

static void convert_staged(char *dst, fy_dtype dt, const char *src, fy_dtype st, size_t n)
{
    float stage[FY_STAGE];
    size_t dsz = fy_dtype_size(dt), ssz = fy_dtype_size(st);
    size_t chunks = (n + FY_STAGE - 1) / FY_STAGE;
    for (size_t k = 0; k < chunks; k++) {
        size_t c = dsz <= ssz ? k : chunks - 1 - k;
        size_t start = c * FY_STAGE;
        size_t len = n - start < FY_STAGE ? n - start : FY_STAGE;
        if (st == FY_F32) memcpy(stage, src + start * ssz, len * sizeof(float));
        else to_f32_loop(st)(stage, src + start * ssz, len);
        if (dt == FY_F32) memcpy(dst + start * dsz, stage, len * sizeof(float));
        else from_f32_loop(dt)(dst + start * dsz, stage, len);
    }
}

static bool ranges_overlap(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen && blen && a < b + blen && b < a + alen;
}

fy_status fy_convert(void *dst, fy_dtype dst_type, const void *src, fy_dtype src_type, size_t n)
{
    size_t dsz = fy_dtype_size(dst_type), ssz = fy_dtype_size(src_type);
    if (dst_type == src_type && dsz) {
        if (n && dst != src) memmove(dst, src, n * dsz);
        return FY_OK;
    }
    if (!fy_dtype_is_float(dst_type) || !fy_dtype_is_float(src_type))
        return fy_error(FY_ERR_UNSUPPORTED,
                        "cannot convert %s to %s: conversions are between f32, f64, f16, bf16, "
                        "f8_e4m3 and f8_e5m2 only",
                        fy_dtype_name(src_type), fy_dtype_name(dst_type));
    if (n == 0) return FY_OK;
    if (n > SIZE_MAX / 8) return fy_error(FY_ERR_INVALID, "fy_convert: %zu elements overflow size_t", n);
    if (dst != src && ranges_overlap(dst, n * dsz, src, n * ssz))
        return fy_error(FY_ERR_INVALID,
                        "fy_convert: source and destination overlap (%s -> %s); convert in place "
                        "only with dst == src",
                        fy_dtype_name(src_type), fy_dtype_name(dst_type));
    if (dst == src || (src_type != FY_F32 && dst_type != FY_F32)) {
        convert_staged(dst, dst_type, src, src_type, n);
        return FY_OK;
    }
    if (src_type == FY_F32) from_f32_loop(dst_type)(dst, src, n);
    else to_f32_loop(src_type)(dst, src, n);
    return FY_OK;
}
