/* The verify framework: the relative-error measure, the printed lines, id
 * comparisons, and the driver's handling of component lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/error.h"
#include "verify/verify.h"

#define MODEL_DIR FERRY_FIXTURES_DIR "/wan-tiny/model"
#define FIXTURE_DIR FERRY_FIXTURES_DIR "/wan-tiny/fixtures"

static void test_relative_error(void **state)
{
    (void)state;
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 4.5f};
    int64_t shape[1] = {4}, other[2] = {2, 2};
    fy_tensor ta = fy_tensor_wrap(a, FY_F32, 1, shape, FY_HOST);
    fy_tensor tb = fy_tensor_wrap(b, FY_F32, 1, shape, FY_HOST);
    double e = -1;
    assert_int_equal(fy_relative_error(&ta, &tb, &e), FY_OK);
    assert_true(fabs(e - 0.5 / 4.5) < 1e-12);
    assert_int_equal(fy_relative_error(&ta, &ta, &e), FY_OK);
    assert_true(e == 0.0);
    fy_tensor t22 = fy_tensor_wrap(a, FY_F32, 2, other, FY_HOST);
    assert_int_equal(fy_relative_error(&ta, &t22, &e), FY_ERR_INVALID);
    assert_non_null(strstr(fy_error_message(), "shape"));
    float zero[4] = {0}, nan4[4] = {0, NAN, 0, 0};
    fy_tensor tz = fy_tensor_wrap(zero, FY_F32, 1, shape, FY_HOST);
    fy_tensor tn = fy_tensor_wrap(nan4, FY_F32, 1, shape, FY_HOST);
    assert_int_equal(fy_relative_error(&ta, &tz, &e), FY_OK); /* absolute against zeros */
    assert_true(e == 4.0);
    assert_int_equal(fy_relative_error(&tn, &tz, &e), FY_OK);
    assert_true(isnan(e));
}

static void test_compare_lines(void **state)
{
    (void)state;
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    assert_non_null(out);
    fy_verify_ctx ctx = {NULL, FIXTURE_DIR, NULL, out, 0, 0, 0.0, 0.0};
    float a[2] = {1, 2}, b[2] = {1, 2.001f}, n[2] = {NAN, 2};
    int64_t shape[1] = {2}, shape3[1] = {1};
    fy_tensor ta = fy_tensor_wrap(a, FY_F32, 1, shape, FY_HOST);
    fy_tensor tb = fy_tensor_wrap(b, FY_F32, 1, shape, FY_HOST);
    fy_tensor tn = fy_tensor_wrap(n, FY_F32, 1, shape, FY_HOST);
    fy_tensor t1 = fy_tensor_wrap(a, FY_F32, 1, shape3, FY_HOST);
    assert_int_equal(fy_verify_compare(&ctx, "close", &ta, &tb, 1e-3), FY_OK);
    assert_int_equal(fy_verify_compare(&ctx, "far", &ta, &tb, 1e-5), FY_OK);
    assert_int_equal(fy_verify_compare(&ctx, "nan", &tn, &tb, 1e-1), FY_OK);
    assert_int_equal(fy_verify_compare(&ctx, "shape", &t1, &tb, 1e-1), FY_OK);
    int64_t ids[3] = {5, 6, 7};
    int64_t ref_ids[3] = {5, 6, 8};
    int64_t s3[1] = {3};
    fy_tensor tids = fy_tensor_wrap(ref_ids, FY_I64, 1, s3, FY_HOST);
    assert_int_equal(fy_verify_compare_ids(&ctx, "ids.same", ref_ids, 3, &tids), FY_OK);
    assert_int_equal(fy_verify_compare_ids(&ctx, "ids.differ", ids, 3, &tids), FY_OK);
    assert_int_equal(fy_verify_compare_ids(&ctx, "ids.short", ids, 2, &tids), FY_OK);
    fclose(out);
    assert_int_equal(ctx.compared, 7);
    assert_int_equal(ctx.failed, 5);
    assert_non_null(strstr(text, "close"));
    assert_non_null(strstr(text, "e-04    1e-03  pass\n"));
    assert_non_null(strstr(text, "e-04    1e-05  FAIL\n"));
    assert_non_null(strstr(text, "nan"));
    assert_non_null(strstr(text, "ids.same"));
    assert_non_null(strstr(text, "1 differ    exact  FAIL\n"));
    /* Columns line up: every result line has its verdict at the same offset. */
    size_t column = 0;
    for (char *line = text; *line;) {
        char *end = strchr(line, '\n');
        assert_non_null(end);
        if (end - line > 4 && (strncmp(end - 4, "pass", 4) == 0 || strncmp(end - 4, "FAIL", 4) == 0)) {
            if (!column) column = (size_t)(end - line);
            assert_int_equal((size_t)(end - line), column);
        }
        line = end + 1;
    }
    free(text);
}

static void test_driver_component_lists(void **state)
{
    (void)state;
    assert_int_equal(fy_verify_run(MODEL_DIR, FIXTURE_DIR, "unet", NULL, NULL), FY_ERR_INVALID);
    assert_non_null(strstr(fy_error_message(), "unknown component \"unet\" (valid: tokenizer, text_encoder"));
    assert_int_equal(fy_verify_run(MODEL_DIR, FIXTURE_DIR, ",", NULL, NULL), FY_ERR_INVALID);
    assert_int_not_equal(fy_verify_run(MODEL_DIR, "/nonexistent/fixtures", NULL, NULL, NULL), FY_OK);
    assert_non_null(strstr(fy_error_message(), "/nonexistent/fixtures"));
    assert_int_not_equal(fy_verify_run("/nonexistent/model", FIXTURE_DIR, NULL, NULL, NULL), FY_OK);

    size_t n = 0;
    const fy_verifier *all = fy_verifiers(&n);
    assert_int_equal(n, 10);
    /* Unnamed, a component the fixture folder does not cover is skipped with
     * a line (wan-tiny has no transformer_2); named, it is an error. */
    char *listing = NULL;
    size_t listing_size = 0;
    FILE *listed = open_memstream(&listing, &listing_size);
    assert_int_equal(fy_verify_run(MODEL_DIR, FIXTURE_DIR, NULL, NULL, listed), FY_OK);
    fclose(listed);
    assert_non_null(strstr(listing, "transformer_2: skipped (no transformer_2.safetensors in "));
    free(listing);
    assert_int_not_equal(fy_verify_run(MODEL_DIR, FIXTURE_DIR, "transformer_2", NULL, NULL), FY_OK);
    for (size_t i = 0; i < n; i++) {
        if (all[i].run) continue;
        /* Asked for by name, a component without an implementation is an error. */
        assert_int_equal(fy_verify_run(MODEL_DIR, FIXTURE_DIR, all[i].component, NULL, NULL), FY_ERR_UNSUPPORTED);
        assert_non_null(strstr(fy_error_message(), "not implemented in this build yet"));
        /* Unnamed, it is skipped with a line. */
        char *text = NULL;
        size_t size = 0;
        FILE *out = open_memstream(&text, &size);
        fy_verify_run(MODEL_DIR, FIXTURE_DIR, NULL, NULL, out);
        fclose(out);
        char want[64];
        snprintf(want, sizeof want, "%s: skipped (not implemented yet)\n", all[i].component);
        assert_non_null(strstr(text, want));
        assert_non_null(strstr(text, " failed\n"));
        free(text);
        break;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relative_error),
        cmocka_unit_test(test_compare_lines),
        cmocka_unit_test(test_driver_component_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
