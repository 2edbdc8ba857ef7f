/* fy_find_nonfinite: NaN and infinity found by their bits in every float
 * format, at any position (inside a block, in the tail, unaligned). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <string.h>

#include "ferry/finite.h"

typedef struct bad_value {
    const char *name;
    fy_dtype dtype;
    size_t size;    /* bytes per element */
    uint64_t good;  /* a finite value's bits */
    uint64_t bad;   /* NaN or infinity */
} bad_value;

static const bad_value cases[] = {
    {"f32 NaN", FY_F32, 4, 0x3f800000u, 0x7fc00000u},
    {"f32 -inf", FY_F32, 4, 0xbf800000u, 0xff800000u},
    {"f16 inf", FY_F16, 2, 0x3c00u, 0x7c00u},
    {"f16 NaN", FY_F16, 2, 0x3c00u, 0x7e01u},
    {"bf16 NaN", FY_BF16, 2, 0x3f80u, 0x7fc1u},
    {"bf16 -inf", FY_BF16, 2, 0x4000u, 0xff80u},
    {"f64 inf", FY_F64, 8, 0x3ff0000000000000ull, 0x7ff0000000000000ull},
    {"e4m3fn NaN", FY_F8_E4M3, 1, 0x7eu, 0xffu},
    {"e5m2 inf", FY_F8_E5M2, 1, 0x7bu, 0x7cu},
};

static void test_every_format_and_position(void **state)
{
    (void)state;
    enum { N = 200 };
    static uint8_t buf[N * 8 + 1];
    const size_t where[] = {0, 5, 63, 64, 130, N - 1};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const bad_value *v = &cases[c];
        uint8_t *p = buf + 1; /* unaligned on purpose */
        for (size_t i = 0; i < N; i++) memcpy(p + i * v->size, &v->good, v->size);
        size_t at = 99;
        assert_false(fy_find_nonfinite(p, v->dtype, N, &at));
        for (size_t w = 0; w < sizeof where / sizeof where[0]; w++) {
            memcpy(p + where[w] * v->size, &v->bad, v->size);
            assert_true(fy_find_nonfinite(p, v->dtype, N, &at));
            assert_int_equal(at, where[w]);
            memcpy(p + where[w] * v->size, &v->good, v->size);
        }
    }
}

static void test_integers_hold_no_nan(void **state)
{
    (void)state;
    const uint8_t ones[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                              0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    size_t at;
    assert_false(fy_find_nonfinite(ones, FY_I32, 4, &at));
    assert_false(fy_find_nonfinite(ones, FY_U8, 16, &at));
    assert_false(fy_find_nonfinite(ones, FY_F32, 0, &at));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_format_and_position),
        cmocka_unit_test(test_integers_hold_no_nan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
