/* Core: dtype names and the f32/f64/f16/bf16/fp8 conversions.
 *
 * Conversions are checked against oracles that share no code with
 * src/core/dtype.c: a committed table from exact rational arithmetic
 * (scripts/gen_dtype_tables.py, f16 also checked by Python's struct), and a
 * slow reference below that decodes codes with ldexp and rounds by searching
 * for the nearest representable double, ties to the even code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ferry/dtype.h"
#include "ferry/error.h"
#include "dtype_cases.h"

/* ------------------------------------------------------------------------ */
/* Slow reference                                                           */
/* ------------------------------------------------------------------------ */

typedef struct ref_format {
    const char *name;
    int ebits, mbits;
    uint32_t max_finite;  /* largest finite positive code */
    uint32_t sign_bit;
    bool nan_keeps_sign;  /* bf16 NaN is always 0x7FC0 */
    uint32_t nan;         /* NaN code without sign */
    bool has_inf;         /* e4m3fn has none */
} ref_format;

static const ref_format REF_F16 = {"f16", 5, 10, 0x7BFF, 0x8000, true, 0x7E00, true};
static const ref_format REF_BF16 = {"bf16", 8, 7, 0x7F7F, 0x8000, false, 0x7FC0, true};
static const ref_format REF_E4M3 = {"e4m3", 4, 3, 0x7E, 0x80, true, 0x7F, false};
static const ref_format REF_E5M2 = {"e5m2", 5, 2, 0x7B, 0x80, true, 0x7F, true};

/* Value of a positive code read as if every exponent field were finite. */
static double ref_value(const ref_format *f, uint32_t code)
{
    int bias = (1 << (f->ebits - 1)) - 1;
    uint32_t e = code >> f->mbits, m = code & ((1u << f->mbits) - 1);
    if (e == 0) return ldexp((double)m, 1 - bias - f->mbits);
    return ldexp((double)(m | (1u << f->mbits)), (int)e - bias - f->mbits);
}

/* Decode any code: +-0, subnormals, normals, inf and NaN per the format. */
static double ref_decode(const ref_format *f, uint32_t code)
{
    double sign = (code & f->sign_bit) ? -1.0 : 1.0;
    uint32_t mag = code & (f->sign_bit - 1);
    uint32_t emax = (1u << f->ebits) - 1;
    if (f->has_inf && (mag >> f->mbits) == emax)
        return (mag & ((1u << f->mbits) - 1)) ? NAN : sign * INFINITY;
    if (!f->has_inf && mag == f->max_finite + 1) return NAN;
    return sign * ref_value(f, mag);
}

/* Round a float to the format: nearest value, ties to the even code, and
 * anything at or past the first value beyond max_finite takes that code (inf,
 * or NaN for e4m3fn), which is PyTorch's behaviour. */
static uint32_t ref_encode(const ref_format *f, float x)
{
    uint32_t sign = signbit(x) ? f->sign_bit : 0;
    if (isnan(x)) return f->nan | (f->nan_keeps_sign ? sign : 0);
    uint32_t overflow = f->max_finite + 1;
    double a = fabs((double)x);
    if (a >= ref_value(f, overflow)) return sign | overflow;
    uint32_t lo = 0, hi = overflow;
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (ref_value(f, mid) <= a) lo = mid;
        else hi = mid;
    }
    double dlo = a - ref_value(f, lo), dhi = ref_value(f, hi) - a;
    if (dlo < dhi || (dlo == dhi && lo % 2 == 0)) return sign | lo;
    return sign | hi;
}

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static uint32_t lib_encode(const ref_format *f, float x)
{
    if (f == &REF_F16) return fy_f32_to_f16(x);
    if (f == &REF_BF16) return fy_f32_to_bf16(x);
    if (f == &REF_E4M3) return fy_f32_to_e4m3(x);
    return fy_f32_to_e5m2(x);
}

static float lib_decode(const ref_format *f, uint32_t code)
{
    if (f == &REF_F16) return fy_f16_to_f32((uint16_t)code);
    if (f == &REF_BF16) return fy_bf16_to_f32((uint16_t)code);
    if (f == &REF_E4M3) return fy_e4m3_to_f32((uint8_t)code);
    return fy_e5m2_to_f32((uint8_t)code);
}

static const ref_format *const ALL_FORMATS[] = {&REF_F16, &REF_BF16, &REF_E4M3, &REF_E5M2};

static void check_encode(const ref_format *f, float x)
{
    uint32_t want = ref_encode(f, x), got = lib_encode(f, x);
    if (want != got) {
        fprintf(stderr, "%s(%a = 0x%08X): got 0x%X, want 0x%X\n", f->name, (double)x, to_bits(x),
                got, want);
        fail();
    }
}

/* ------------------------------------------------------------------------ */
/* Names                                                                    */
/* ------------------------------------------------------------------------ */

static void test_names_round_trip(void **state)
{
    (void)state;
    for (int t = 0; t < FY_DTYPE_COUNT; t++) {
        fy_dtype got = FY_DTYPE_COUNT;
        if (fy_dtype_is_quant((fy_dtype)t)) { /* GGUF-only: neither a safetensors nor a user spelling */
            assert_int_equal(fy_dtype_from_safetensors(fy_dtype_safetensors_name((fy_dtype)t), &got), FY_ERR_FORMAT);
            assert_int_equal(fy_dtype_parse(fy_dtype_name((fy_dtype)t), &got), FY_ERR_INVALID);
            continue;
        }
        assert_int_equal(fy_dtype_from_safetensors(fy_dtype_safetensors_name((fy_dtype)t), &got), FY_OK);
        assert_int_equal(got, t);
        got = FY_DTYPE_COUNT;
        assert_int_equal(fy_dtype_parse(fy_dtype_name((fy_dtype)t), &got), FY_OK);
        assert_int_equal(got, t);
        assert_int_equal(fy_dtype_parse(fy_dtype_safetensors_name((fy_dtype)t), &got), FY_OK);
        assert_int_equal(got, t);
    }
}

static void test_sizes_and_spellings(void **state)
{
    (void)state;
    static const struct {
        fy_dtype t;
        const char *st, *name;
        unsigned bits;
        size_t size;
        int is_float;
    } want[] = {
        {FY_F32, "F32", "f32", 32, 4, 1},         {FY_F16, "F16", "f16", 16, 2, 1},
        {FY_BF16, "BF16", "bf16", 16, 2, 1},      {FY_F8_E4M3, "F8_E4M3", "f8_e4m3", 8, 1, 1},
        {FY_F8_E5M2, "F8_E5M2", "f8_e5m2", 8, 1, 1}, {FY_F64, "F64", "f64", 64, 8, 1},
        {FY_I64, "I64", "i64", 64, 8, 0},         {FY_I32, "I32", "i32", 32, 4, 0},
        {FY_I16, "I16", "i16", 16, 2, 0},         {FY_I8, "I8", "i8", 8, 1, 0},
        {FY_U64, "U64", "u64", 64, 8, 0},         {FY_U32, "U32", "u32", 32, 4, 0},
        {FY_U16, "U16", "u16", 16, 2, 0},         {FY_U8, "U8", "u8", 8, 1, 0},
        {FY_BOOL, "BOOL", "bool", 8, 1, 0},       {FY_F8_E8M0, "F8_E8M0", "f8_e8m0", 8, 1, 0},
        {FY_F6_E2M3, "F6_E2M3", "f6_e2m3", 6, 0, 0}, {FY_F6_E3M2, "F6_E3M2", "f6_e3m2", 6, 0, 0},
        {FY_F4, "F4", "f4", 4, 0, 0},             {FY_C64, "C64", "c64", 64, 8, 0},
        {FY_Q8_0, "Q8_0", "q8_0", 0, 0, 0},       {FY_Q4_0, "Q4_0", "q4_0", 0, 0, 0},
        {FY_Q4_K, "Q4_K", "q4_k", 0, 0, 0},       {FY_Q5_K, "Q5_K", "q5_k", 0, 0, 0},
        {FY_Q6_K, "Q6_K", "q6_k", 0, 0, 0},
    };
    assert_int_equal(sizeof want / sizeof want[0], FY_DTYPE_COUNT);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_string_equal(fy_dtype_safetensors_name(want[i].t), want[i].st);
        assert_string_equal(fy_dtype_name(want[i].t), want[i].name);
        assert_int_equal(fy_dtype_bits(want[i].t), want[i].bits);
        assert_int_equal(fy_dtype_size(want[i].t), want[i].size);
        assert_int_equal(fy_dtype_is_float(want[i].t), want[i].is_float);
    }
    /* Blocks as ggml-common.h lays them out: elements, bytes. */
    static const struct {
        fy_dtype t;
        unsigned block;
        size_t bytes;
    } blocks[] = {{FY_Q8_0, 32, 34}, {FY_Q4_0, 32, 18}, {FY_Q4_K, 256, 144}, {FY_Q5_K, 256, 176},
                  {FY_Q6_K, 256, 210}, {FY_F32, 1, 4}, {FY_BF16, 1, 2}};
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) {
        assert_int_equal(fy_dtype_is_quant(blocks[i].t), blocks[i].block > 1);
        assert_int_equal(fy_dtype_block(blocks[i].t), blocks[i].block);
        assert_int_equal(fy_dtype_block_bytes(blocks[i].t), blocks[i].bytes);
        assert_int_equal(fy_dtype_bytes(blocks[i].t, 4096), 4096 / blocks[i].block * blocks[i].bytes);
    }
    static const struct {
        const char *spelling;
        fy_dtype t;
    } user[] = {
        {"f32", FY_F32}, {"float32", FY_F32}, {"fp32", FY_F32}, {"FP32", FY_F32},
        {"f16", FY_F16}, {"fp16", FY_F16}, {"float16", FY_F16}, {"half", FY_F16},
        {"bf16", FY_BF16}, {"bfloat16", FY_BF16}, {"BF16", FY_BF16},
        {"fp8_e4m3", FY_F8_E4M3}, {"f8_e4m3", FY_F8_E4M3}, {"float8_e4m3fn", FY_F8_E4M3},
        {"e4m3", FY_F8_E4M3}, {"fp8_e5m2", FY_F8_E5M2}, {"f8_e5m2", FY_F8_E5M2},
        {"float8_e5m2", FY_F8_E5M2}, {"e5m2", FY_F8_E5M2}, {"f64", FY_F64}, {"float64", FY_F64},
        {"int32", FY_I32}, {"uint8", FY_U8}, {"bool", FY_BOOL},
    };
    for (size_t i = 0; i < sizeof user / sizeof user[0]; i++) {
        fy_dtype got = FY_DTYPE_COUNT;
        assert_int_equal(fy_dtype_parse(user[i].spelling, &got), FY_OK);
        assert_int_equal(got, user[i].t);
    }
}

static void test_bad_names(void **state)
{
    (void)state;
    fy_dtype got = FY_F32;
    assert_int_equal(fy_dtype_parse("float17", &got), FY_ERR_INVALID);
    assert_non_null(strstr(fy_error_message(), "float17"));
    assert_non_null(strstr(fy_error_message(), "bf16"));
    assert_non_null(strstr(fy_error_message(), "fp8_e4m3"));
    assert_int_equal(fy_dtype_parse("", &got), FY_ERR_INVALID);
    assert_int_equal(fy_dtype_parse(NULL, &got), FY_ERR_INVALID);
    assert_int_equal(fy_dtype_from_safetensors("F17", &got), FY_ERR_FORMAT);
    assert_non_null(strstr(fy_error_message(), "F17"));
    assert_non_null(strstr(fy_error_message(), "BF16"));
    /* The header spelling is exact. */
    assert_int_equal(fy_dtype_from_safetensors("f32", &got), FY_ERR_FORMAT);
    assert_int_equal(fy_dtype_from_safetensors(NULL, &got), FY_ERR_FORMAT);
    assert_int_equal(got, FY_F32);
    /* Out-of-range enum values never crash. */
    assert_int_equal(fy_dtype_bits(FY_DTYPE_COUNT), 0);
    assert_int_equal(fy_dtype_size((fy_dtype)-1), 0);
    assert_non_null(fy_dtype_name(FY_DTYPE_COUNT));
    assert_non_null(fy_dtype_safetensors_name(FY_DTYPE_COUNT));
    assert_false(fy_dtype_is_float(FY_DTYPE_COUNT));
}

/* ------------------------------------------------------------------------ */
/* Scalar conversions                                                       */
/* ------------------------------------------------------------------------ */

/* The committed table from exact rationals; each row is also checked
 * negated, and the reference must agree with it too. */
static void test_generated_table(void **state)
{
    (void)state;
    size_t rows = sizeof dtype_cases / sizeof dtype_cases[0];
    assert_true(rows > 100);
    for (size_t i = 0; i < rows; i++) {
        const dtype_case *c = &dtype_cases[i];
        for (int neg = 0; neg < 2; neg++) {
            float x = from_bits(c->f32 | (neg ? 0x80000000u : 0));
            uint16_t s16 = neg ? 0x8000 : 0;
            uint8_t s8 = neg ? 0x80 : 0;
            assert_int_equal(fy_f32_to_f16(x), c->f16 | s16);
            assert_int_equal(fy_f32_to_bf16(x), c->bf16 | s16);
            assert_int_equal(fy_f32_to_e4m3(x), c->e4m3 | s8);
            assert_int_equal(fy_f32_to_e5m2(x), c->e5m2 | s8);
            assert_int_equal(ref_encode(&REF_F16, x), c->f16 | s16);
            assert_int_equal(ref_encode(&REF_BF16, x), c->bf16 | s16);
            assert_int_equal(ref_encode(&REF_E4M3, x), c->e4m3 | s8);
            assert_int_equal(ref_encode(&REF_E5M2, x), c->e5m2 | s8);
        }
    }
}

/* Every code decodes to the ldexp formula; every non-NaN code survives the
 * round trip; NaN codes decode to NaN and encode back to the canonical NaN. */
static void test_exhaustive_decode_and_round_trip(void **state)
{
    (void)state;
    for (size_t k = 0; k < 4; k++) {
        const ref_format *f = ALL_FORMATS[k];
        uint32_t ncodes = f->sign_bit << 1;
        for (uint32_t code = 0; code < ncodes; code++) {
            double want = ref_decode(f, code);
            float got = lib_decode(f, code);
            if (isnan(want)) {
                assert_true(isnan(got));
                uint32_t canon = f->nan | (f->nan_keeps_sign ? (code & f->sign_bit) : 0);
                assert_int_equal(lib_encode(f, got), canon);
                continue;
            }
            if ((double)got != want || !signbit(got) != !signbit(want)) {
                fprintf(stderr, "%s decode 0x%X: got %a want %a\n", f->name, code, (double)got, want);
                fail();
            }
            assert_int_equal(lib_encode(f, got), code);
        }
    }
}

/* For every pair of neighbouring positive codes: the exact midpoint (a tie,
 * representable in f32 for all four formats) and one f32 ulp either side. */
static void test_every_tie(void **state)
{
    (void)state;
    for (size_t k = 0; k < 4; k++) {
        const ref_format *f = ALL_FORMATS[k];
        for (uint32_t code = 0; code <= f->max_finite; code++) {
            double mid = (ref_value(f, code) + ref_value(f, code + 1)) / 2;
            float m = (float)mid;
            assert_true((double)m == mid);
            uint32_t want_tie = code % 2 == 0 ? code : code + 1;
            assert_int_equal(lib_encode(f, m), want_tie);
            assert_int_equal(lib_encode(f, nextafterf(m, 0.0f)), code);
            assert_int_equal(lib_encode(f, nextafterf(m, INFINITY)), code + 1);
            assert_int_equal(lib_encode(f, -m), want_tie | f->sign_bit);
        }
    }
}

static void test_edge_cases(void **state)
{
    (void)state;
    /* Zeros keep their sign. */
    assert_int_equal(fy_f32_to_f16(-0.0f), 0x8000);
    assert_int_equal(fy_f32_to_bf16(-0.0f), 0x8000);
    assert_int_equal(fy_f32_to_e4m3(-0.0f), 0x80);
    assert_int_equal(fy_f32_to_e5m2(-0.0f), 0x80);
    assert_true(signbit(fy_f16_to_f32(0x8000)) && fy_f16_to_f32(0x8000) == 0.0f);
    /* e4m3fn: 448 is the largest finite; 464 ties down to it (even), anything
     * above 464 rounds onto the NaN code, as does inf; no infinities. */
    assert_int_equal(fy_f32_to_e4m3(448.0f), 0x7E);
    assert_int_equal(fy_f32_to_e4m3(464.0f), 0x7E);
    assert_int_equal(fy_f32_to_e4m3(nextafterf(464.0f, 1000.0f)), 0x7F);
    assert_int_equal(fy_f32_to_e4m3(479.99f), 0x7F);
    assert_int_equal(fy_f32_to_e4m3(480.0f), 0x7F);
    assert_int_equal(fy_f32_to_e4m3(-480.0f), 0xFF);
    assert_int_equal(fy_f32_to_e4m3(INFINITY), 0x7F);
    assert_int_equal(fy_f32_to_e4m3(-INFINITY), 0xFF);
    assert_int_equal(fy_f32_to_e4m3(-NAN), 0xFF);
    assert_true(isnan(fy_e4m3_to_f32(0x7F)) && isnan(fy_e4m3_to_f32(0xFF)));
    assert_true(fy_e4m3_to_f32(0x01) == 0x1p-9f);
    assert_true(fy_e4m3_to_f32(0x7E) == 448.0f && fy_e4m3_to_f32(0xFE) == -448.0f);
    /* e5m2: 57344 max, 61440 ties up to inf, 65536 and inf are inf. */
    assert_int_equal(fy_f32_to_e5m2(57344.0f), 0x7B);
    assert_int_equal(fy_f32_to_e5m2(nextafterf(61440.0f, 0.0f)), 0x7B);
    assert_int_equal(fy_f32_to_e5m2(61440.0f), 0x7C);
    assert_int_equal(fy_f32_to_e5m2(65536.0f), 0x7C);
    assert_int_equal(fy_f32_to_e5m2(-INFINITY), 0xFC);
    assert_int_equal(fy_f32_to_e5m2(NAN), 0x7F);
    assert_int_equal(fy_f32_to_e5m2(-NAN), 0xFF);
    assert_true(isinf(fy_e5m2_to_f32(0x7C)) && fy_e5m2_to_f32(0xFC) < 0);
    assert_true(fy_e5m2_to_f32(0x01) == 0x1p-16f);
    /* f16: 65504 max, 65520 ties up to inf; NaN keeps its sign. */
    assert_int_equal(fy_f32_to_f16(65504.0f), 0x7BFF);
    assert_int_equal(fy_f32_to_f16(nextafterf(65520.0f, 0.0f)), 0x7BFF);
    assert_int_equal(fy_f32_to_f16(65520.0f), 0x7C00);
    assert_int_equal(fy_f32_to_f16(-INFINITY), 0xFC00);
    assert_int_equal(fy_f32_to_f16(NAN), 0x7E00);
    assert_int_equal(fy_f32_to_f16(-NAN), 0xFE00);
    assert_int_equal(fy_f32_to_f16(0x1p-24f), 0x0001);
    assert_int_equal(fy_f32_to_f16(0x1p-25f), 0x0000);                      /* tie to 0 */
    assert_int_equal(fy_f32_to_f16(nextafterf(0x1p-25f, 1.0f)), 0x0001);
    assert_int_equal(fy_f32_to_f16(0x1.8p-24f), 0x0002);                    /* tie to even */
    assert_int_equal(fy_f32_to_f16(0x1p-149f), 0x0000);                     /* f32 subnormal */
    /* bf16: NaN loses its sign, overflow carries into inf, f32 subnormals kept. */
    assert_int_equal(fy_f32_to_bf16(-NAN), 0x7FC0);
    assert_int_equal(fy_f32_to_bf16(from_bits(0x7F800001)), 0x7FC0);
    assert_int_equal(fy_f32_to_bf16(from_bits(0x7F7FFFFF)), 0x7F80);
    assert_int_equal(fy_f32_to_bf16(from_bits(0x7F7F7FFF)), 0x7F7F);
    assert_int_equal(fy_f32_to_bf16(from_bits(0x7F7F8000)), 0x7F80);        /* tie, odd -> up */
    assert_int_equal(fy_f32_to_bf16(from_bits(0x00018000)), 0x0002);        /* subnormal tie */
    assert_int_equal(fy_f32_to_bf16(from_bits(0x00008000)), 0x0000);
    assert_true(fy_bf16_to_f32(0x0001) == 0x1p-133f);
}

/* About eight million f32 patterns spread over the whole 2^32 space, plus
 * every pattern within a few hundred ulps of each format's thresholds. */
static void test_sweep_against_reference(void **state)
{
    (void)state;
    const uint32_t stride = 509; /* odd: the low bits vary as well */
    for (uint64_t u = 7; u <= UINT32_MAX; u += stride) {
        float x = from_bits((uint32_t)u);
        for (size_t k = 0; k < 4; k++) check_encode(ALL_FORMATS[k], x);
    }
    static const float thresholds[] = {
        448.0f, 464.0f, 480.0f, 57344.0f, 61440.0f, 65504.0f, 65520.0f, 65536.0f,
        0x1p-6f, 0x1p-7f, 0x1p-9f, 0x1p-10f, 0x1p-14f, 0x1p-16f, 0x1p-17f, 0x1p-24f, 0x1p-25f,
        0x1p-126f, 0x1p-133f, 0x1p-134f, 0x1.fep127f, 1.0f,
    };
    for (size_t t = 0; t < sizeof thresholds / sizeof thresholds[0]; t++) {
        uint32_t b = to_bits(thresholds[t]);
        for (uint32_t d = 0; d < 600; d++) {
            float lo = from_bits(b - 300 + d);
            for (size_t k = 0; k < 4; k++) {
                check_encode(ALL_FORMATS[k], lo);
                check_encode(ALL_FORMATS[k], -lo);
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Bulk conversion                                                          */
/* ------------------------------------------------------------------------ */

static const fy_dtype FLOATS[] = {FY_F32, FY_F64, FY_F16, FY_BF16, FY_F8_E4M3, FY_F8_E5M2};
#define NFLOATS (sizeof FLOATS / sizeof FLOATS[0])

/* Element i of a (possibly misaligned) buffer of type t, widened exactly. */
static double load(fy_dtype t, const void *p, size_t i)
{
    const unsigned char *at = (const unsigned char *)p + i * fy_dtype_size(t);
    float f;
    double d;
    uint16_t h;
    switch (t) {
    case FY_F32: memcpy(&f, at, 4); return f;
    case FY_F64: memcpy(&d, at, 8); return d;
    case FY_F16: memcpy(&h, at, 2); return fy_f16_to_f32(h);
    case FY_BF16: memcpy(&h, at, 2); return fy_bf16_to_f32(h);
    case FY_F8_E4M3: return fy_e4m3_to_f32(*at);
    default: return fy_e5m2_to_f32(*at);
    }
}

/* What one element must become: the source value to f32 (from f64 that is
 * the one rounding C does), then the scalar rule; PyTorch casts f64 to the
 * narrow types through float the same way. Returns the raw bytes. */
static void expect_one(fy_dtype dt, void *out, double v)
{
    float f = (float)v;
    switch (dt) {
    case FY_F32: memcpy(out, &f, 4); break;
    case FY_F64: memcpy(out, &v, 8); break;
    case FY_F16: { uint16_t h = fy_f32_to_f16(f); memcpy(out, &h, 2); } break;
    case FY_BF16: { uint16_t h = fy_f32_to_bf16(f); memcpy(out, &h, 2); } break;
    case FY_F8_E4M3: *(uint8_t *)out = fy_f32_to_e4m3(f); break;
    default: *(uint8_t *)out = fy_f32_to_e5m2(f); break;
    }
}

/* Source values of every kind: specials, ties, subnormals, big and tiny. */
static void fill_source(fy_dtype st, void *src, size_t n, uint32_t seed)
{
    static const float specials[] = {0.0f, -0.0f, 1.0f, -1.5f, 448.0f, 464.0f, 480.0f,
                                     57344.0f, 61440.0f, 65520.0f, 0x1p-25f, 0x1p-10f,
                                     1e-40f, 3e38f, INFINITY, -INFINITY, NAN, 0.1f};
    uint32_t x = seed;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        float f = i % 3 == 0 ? specials[(x >> 8) % (sizeof specials / sizeof specials[0])]
                             : from_bits(x & 0xC7FFFFFFu); /* exponents near 0 mostly */
        double d = i % 7 == 1 ? (double)f * (1.0 + 0x1p-40) : (double)f;
        unsigned char *at = (unsigned char *)src + i * fy_dtype_size(st);
        uint16_t h = (uint16_t)(x >> (st == FY_F16 ? 7 : 9));
        switch (st) {
        case FY_F32: memcpy(at, &f, 4); break;
        case FY_F64: memcpy(at, &d, 8); break;
        case FY_F16:
        case FY_BF16: memcpy(at, &h, 2); break;
        default: *at = (uint8_t)(x >> 13); break;
        }
    }
}

static void check_pair(fy_dtype dt, fy_dtype st, size_t n, size_t misalign)
{
    size_t dsz = fy_dtype_size(dt), ssz = fy_dtype_size(st);
    unsigned char *src = malloc(n * ssz + 8), *dst = malloc(n * dsz + 8), *want = malloc(n * dsz + 8);
    assert_non_null(src);
    assert_non_null(dst);
    assert_non_null(want);
    /* Misaligned on purpose: safetensors data is only byte-aligned. */
    void *s = src + misalign, *d = dst + misalign;
    fill_source(st, s, n, (uint32_t)(n * 31 + dt * 7 + st));
    for (size_t i = 0; i < n; i++) expect_one(dt, want + i * dsz, load(st, s, i));
    assert_int_equal(fy_convert(d, dt, s, st, n), FY_OK);
    for (size_t i = 0; i < n; i++) {
        bool nan_both = isnan(load(dt, d, i)) && isnan(load(dt, want, i));
        if (!nan_both && memcmp((char *)d + i * dsz, want + i * dsz, dsz) != 0) {
            fprintf(stderr, "%s -> %s, n=%zu, element %zu (%a)\n", fy_dtype_name(st),
                    fy_dtype_name(dt), n, i, load(st, s, i));
            fail();
        }
    }
    free(src);
    free(dst);
    free(want);
}

static void test_convert_every_pair(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 3, 31, 32, 33, 64, 100, 511, 512, 513, 1500, 4099};
    for (size_t a = 0; a < NFLOATS; a++)
        for (size_t b = 0; b < NFLOATS; b++)
            for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
                check_pair(FLOATS[a], FLOATS[b], sizes[k], k % 3);
}

/* f64 -> f16 rounds through f32 as PyTorch does: 1 + 2^-11 + 2^-40 is just
 * above a binary16 tie but becomes the tie itself in f32, then rounds to even. */
static void test_convert_f64_double_rounding(void **state)
{
    (void)state;
    double v = 1.0 + 0x1p-11 + 0x1p-40;
    uint16_t h = 0;
    assert_int_equal(fy_convert(&h, FY_F16, &v, FY_F64, 1), FY_OK);
    assert_int_equal(h, 0x3C00);
    assert_int_equal(fy_convert(&h, FY_BF16, &v, FY_F64, 1), FY_OK);
    assert_int_equal(h, 0x3F80);
}

/* dst == src converts in place, narrowing and widening, across staging chunks. */
static void test_convert_in_place(void **state)
{
    (void)state;
    const size_t n = 2049;
    for (size_t a = 0; a < NFLOATS; a++)
        for (size_t b = 0; b < NFLOATS; b++) {
            fy_dtype dt = FLOATS[a], st = FLOATS[b];
            size_t dsz = fy_dtype_size(dt), ssz = fy_dtype_size(st);
            size_t big = dsz > ssz ? dsz : ssz;
            unsigned char *buf = malloc(n * big), *want = malloc(n * dsz);
            assert_non_null(buf);
            assert_non_null(want);
            fill_source(st, buf, n, (uint32_t)(a * 17 + b));
            for (size_t i = 0; i < n; i++) expect_one(dt, want + i * dsz, load(st, buf, i));
            assert_int_equal(fy_convert(buf, dt, buf, st, n), FY_OK);
            for (size_t i = 0; i < n; i++) {
                bool nan_both = isnan(load(dt, buf, i)) && isnan(load(dt, want, i));
                if (!nan_both) assert_memory_equal(buf + i * dsz, want + i * dsz, dsz);
            }
            free(buf);
            free(want);
        }
}

static void test_convert_errors(void **state)
{
    (void)state;
    int32_t i32[4] = {1, 2, 3, 4};
    float f32[4] = {0};
    assert_int_equal(fy_convert(f32, FY_F32, i32, FY_I32, 4), FY_ERR_UNSUPPORTED);
    assert_non_null(strstr(fy_error_message(), "i32"));
    assert_int_equal(fy_convert(f32, FY_F4, f32, FY_F32, 4), FY_ERR_UNSUPPORTED);
    assert_int_equal(fy_convert(f32, FY_F32, f32, FY_C64, 2), FY_ERR_UNSUPPORTED);
    assert_int_equal(fy_convert(f32, (fy_dtype)99, f32, FY_F32, 1), FY_ERR_UNSUPPORTED);
    /* Same-type copies work for every byte-sized type (tensor copies rely on it). */
    int32_t out[4] = {0};
    assert_int_equal(fy_convert(out, FY_I32, i32, FY_I32, 4), FY_OK);
    assert_memory_equal(out, i32, sizeof out);
    /* Partial overlap is refused rather than producing garbage. */
    uint16_t h[8] = {0};
    float src[4] = {1, 2, 3, 4};
    memcpy(h, src, sizeof src);
    assert_int_equal(fy_convert(h + 1, FY_F16, h, FY_F32, 4), FY_ERR_INVALID);
    assert_non_null(strstr(fy_error_message(), "overlap"));
    assert_int_equal(fy_convert(NULL, FY_F16, NULL, FY_F32, 0), FY_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_round_trip),
        cmocka_unit_test(test_sizes_and_spellings),
        cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_generated_table),
        cmocka_unit_test(test_exhaustive_decode_and_round_trip),
        cmocka_unit_test(test_every_tie),
        cmocka_unit_test(test_edge_cases),
        cmocka_unit_test(test_sweep_against_reference),
        cmocka_unit_test(test_convert_every_pair),
        cmocka_unit_test(test_convert_f64_double_rounding),
        cmocka_unit_test(test_convert_in_place),
        cmocka_unit_test(test_convert_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
