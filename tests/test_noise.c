/* Seeded noise: torch.randn's values, determinism, statistics, and slices
 * that agree with the whole however the range is cut. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/noise.h"

static void assert_close4(const float *got, const double *want, int n)
{
    for (int i = 0; i < n; i++)
        if (fabs(got[i] - want[i]) > 6e-5) fail_msg("element %d: %.6f, torch prints %.4f", i, got[i], want[i]);
}

/* torch.manual_seed(0); torch.randn(2, 3) -- the scalar (n < 16) path. */
static void test_matches_torch_small(void **state)
{
    (void)state;
    static const double want[6] = {1.5410, -0.2934, -2.1788, 0.5684, -1.0845, -1.3986};
    float got[6];
    assert_int_equal(fy_randn(0, got, 6), FY_OK);
    assert_close4(got, want, 6);
}

/* torch.manual_seed(0); torch.randn(4, 4) -- the 16-at-a-time path. */
static void test_matches_torch_16(void **state)
{
    (void)state;
    static const double want[16] = {-1.1258, -1.1524, -0.2506, -0.4339, 0.8487, 0.6920, -0.3160, -2.1152,
                                    0.3223,  -1.2633, 0.3500,  0.3081,  0.1198, 1.2377, 1.1168,  -0.2473};
    float got[16];
    assert_int_equal(fy_randn(0, got, 16), FY_OK);
    assert_close4(got, want, 16);
}

/* torch.manual_seed(42); torch.randn(4, 4). */
static void test_matches_torch_seed42(void **state)
{
    (void)state;
    static const double want[16] = {1.9269,  1.4873,  0.9007,  -2.1055, 0.6784,  -1.2345, -0.0431, -1.6047,
                                    -0.7521, 1.6487,  -0.3925, -1.4036, -0.7279, -0.5594, -0.7688, 0.7624};
    float got[16];
    assert_int_equal(fy_randn(42, got, 16), FY_OK);
    assert_close4(got, want, 16);
}

/* torch.manual_seed(0); torch.rand(3). */
static void test_matches_torch_rand(void **state)
{
    (void)state;
    static const double want[3] = {0.4963, 0.7682, 0.0885};
    float got[3];
    assert_int_equal(fy_rand_uniform(0, got, 3), FY_OK);
    assert_close4(got, want, 3);
}

static void test_deterministic_and_seeded(void **state)
{
    (void)state;
    enum { N = 1000 };
    float *a = malloc(N * sizeof(float)), *b = malloc(N * sizeof(float)), *c = malloc(N * sizeof(float));
    assert_int_equal(fy_randn(42, a, N), FY_OK);
    assert_int_equal(fy_randn(42, b, N), FY_OK);
    assert_int_equal(fy_randn(43, c, N), FY_OK);
    assert_memory_equal(a, b, N * sizeof(float));
    int same = 0;
    for (int i = 0; i < N; i++) same += a[i] == c[i];
    assert_true(same < 5);
    free(a), free(b), free(c);
}

static void test_statistics(void **state)
{
    (void)state;
    size_t n = 200003; /* not a multiple of 16: the redrawn tail is exercised */
    float *x = malloc(n * sizeof(float));
    assert_int_equal(fy_randn(7, x, n), FY_OK);
    double sum = 0, sq = 0, lo = 0, hi = 0;
    size_t beyond3 = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(isfinite(x[i]));
        sum += x[i], sq += (double)x[i] * x[i];
        lo = fmin(lo, x[i]), hi = fmax(hi, x[i]);
        beyond3 += fabsf(x[i]) > 3.0f;
    }
    double mean = sum / n, var = sq / n - mean * mean;
    assert_true(fabs(mean) < 0.01);
    assert_true(fabs(var - 1.0) < 0.02);
    assert_true(lo < -4.0 && hi > 4.0);
    /* P(|z| > 3) = 0.0027 */
    assert_true(beyond3 > n * 0.0020 && beyond3 < n * 0.0035);
    free(x);
}

/* Any cut of the range gives the same values as one call. */
static void test_slices_match_whole(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 5, 15, 16, 17, 31, 32, 33, 1152, 1000};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        size_t n = sizes[k];
        float *whole = malloc(n * sizeof(float)), *pieces = malloc(n * sizeof(float));
        assert_int_equal(fy_randn(123, whole, n), FY_OK);
        for (size_t chunk = 1; chunk <= n; chunk = chunk * 3 + 1) {
            memset(pieces, 0, n * sizeof(float));
            for (size_t first = 0; first < n; first += chunk) {
                size_t count = n - first < chunk ? n - first : chunk;
                assert_int_equal(fy_randn_slice(123, n, first, pieces + first, count), FY_OK);
            }
            if (memcmp(whole, pieces, n * sizeof(float)) != 0) fail_msg("n=%zu chunk=%zu differs", n, chunk);
        }
        free(whole), free(pieces);
    }
}

/* The prefix of a longer draw is not the shorter draw (torch behaves so too:
 * the tail block is redrawn), but n >= 16 full blocks are shared. */
static void test_full_blocks_shared(void **state)
{
    (void)state;
    float a[32], b[40];
    assert_int_equal(fy_randn(5, a, 32), FY_OK);
    assert_int_equal(fy_randn(5, b, 40), FY_OK);
    assert_memory_equal(a, b, 16 * sizeof(float));
}

static void test_bad_arguments(void **state)
{
    (void)state;
    float x[4];
    assert_int_equal(fy_randn(0, NULL, 0), FY_OK);
    assert_int_equal(fy_randn(0, NULL, 4), FY_ERR_INVALID);
    assert_int_equal(fy_randn_slice(0, 4, 3, x, 2), FY_ERR_INVALID);
    assert_int_equal(fy_randn_slice(0, 4, 5, x, 0), FY_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_torch_small), cmocka_unit_test(test_matches_torch_16),
        cmocka_unit_test(test_matches_torch_seed42), cmocka_unit_test(test_matches_torch_rand),  cmocka_unit_test(test_deterministic_and_seeded),
        cmocka_unit_test(test_statistics),          cmocka_unit_test(test_slices_match_whole),
        cmocka_unit_test(test_full_blocks_shared),  cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
