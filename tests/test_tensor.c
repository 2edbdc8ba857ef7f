/* Core: tensors (views, copies with conversion), error messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "ferry/error.h"
#include "ferry/tensor.h"

static void test_alloc_and_strides(void **state)
{
    (void)state;
    fy_tensor t;
    int64_t shape[5] = {2, 3, 4, 5, 6};
    assert_int_equal(fy_tensor_alloc(&t, FY_F32, 5, shape), FY_OK);
    assert_int_equal(fy_tensor_numel(&t), 720);
    assert_int_equal(fy_tensor_nbytes(&t), 720 * 4);
    assert_int_equal(t.stride[0], 360);
    assert_int_equal(t.stride[4], 1);
    assert_true(fy_tensor_is_contiguous(&t));
    assert_int_equal((uintptr_t)t.data % 64, 0);
    fy_tensor_free(&t);
    assert_null(t.data);
}

static void test_rank_limit_and_bad_shapes(void **state)
{
    (void)state;
    fy_tensor t;
    int64_t six[6] = {1, 1, 1, 1, 1, 1};
    assert_int_equal(fy_tensor_alloc(&t, FY_F32, 6, six), FY_ERR_INVALID);
    int64_t neg[2] = {2, -1};
    assert_int_equal(fy_tensor_alloc(&t, FY_F32, 2, neg), FY_ERR_INVALID);
    int64_t huge[3] = {INT64_MAX / 2, 4, 4};
    assert_int_equal(fy_tensor_alloc(&t, FY_F32, 3, huge), FY_ERR_INVALID);
    assert_non_null(strstr(fy_error_message(), "overflow"));
}

static void fill_iota(fy_tensor *t)
{
    float *p = t->data;
    for (int64_t i = 0; i < fy_tensor_numel(t); i++) p[i] = (float)i;
}

static void test_views(void **state)
{
    (void)state;
    fy_tensor t, s, p, r, sel;
    int64_t shape[3] = {2, 3, 4};
    assert_int_equal(fy_tensor_alloc(&t, FY_F32, 3, shape), FY_OK);
    fill_iota(&t);

    assert_int_equal(fy_tensor_slice(&t, 2, 1, 2, &s), FY_OK);
    assert_false(fy_tensor_is_contiguous(&s));
    assert_false(s.owns_data);
    assert_float_equal(((float *)s.data)[0], 1.0f, 0);

    int perm[3] = {2, 0, 1};
    assert_int_equal(fy_tensor_permute(&t, perm, &p), FY_OK);
    assert_int_equal(p.shape[0], 4);
    assert_int_equal(p.stride[0], 1);

    int64_t flat[2] = {6, 4};
    assert_int_equal(fy_tensor_reshape(&t, 2, flat, &r), FY_OK);
    int64_t wrong[2] = {5, 5};
    assert_int_equal(fy_tensor_reshape(&t, 2, wrong, &r), FY_ERR_INVALID);
    assert_int_equal(fy_tensor_reshape(&s, 2, flat, &r), FY_ERR_INVALID);

    assert_int_equal(fy_tensor_select(&t, 1, &sel), FY_OK);
    assert_int_equal(sel.ndim, 2);
    assert_float_equal(((float *)sel.data)[0], 12.0f, 0);
    assert_int_equal(fy_tensor_select(&t, 2, &sel), FY_ERR_INVALID);
    assert_int_equal(fy_tensor_slice(&t, 1, 2, 2, &s), FY_ERR_INVALID);

    fy_tensor_free(&t);
}

static void test_strided_copy_with_conversion(void **state)
{
    (void)state;
    fy_tensor t, tp, dst, back;
    int64_t shape[2] = {3, 5};
    assert_int_equal(fy_tensor_alloc(&t, FY_F32, 2, shape), FY_OK);
    fill_iota(&t);
    int perm[2] = {1, 0};
    assert_int_equal(fy_tensor_permute(&t, perm, &tp), FY_OK);
    int64_t tshape[2] = {5, 3};
    assert_int_equal(fy_tensor_alloc(&dst, FY_BF16, 2, tshape), FY_OK);
    assert_int_equal(fy_tensor_copy(&dst, &tp), FY_OK);
    assert_int_equal(fy_tensor_to_f32(&dst, &back), FY_OK);
    const float *b = back.data;
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 3; j++) assert_float_equal(b[i * 3 + j], (float)(j * 5 + i), 0);
    int64_t other[2] = {3, 3};
    fy_tensor bad;
    assert_int_equal(fy_tensor_alloc(&bad, FY_F32, 2, other), FY_OK);
    assert_int_equal(fy_tensor_copy(&bad, &t), FY_ERR_INVALID);
    assert_non_null(strstr(fy_error_message(), "[3, 5]"));
    fy_tensor_free(&bad);
    fy_tensor_free(&back);
    fy_tensor_free(&dst);
    fy_tensor_free(&t);
}

static void test_error_messages(void **state)
{
    (void)state;
    assert_int_equal(fy_error(FY_ERR_IO, "%s: cannot open", "x.safetensors"), FY_ERR_IO);
    assert_int_equal(fy_error_prefix(FY_ERR_IO, "loading vae: "), FY_ERR_IO);
    assert_string_equal(fy_error_message(), "loading vae: x.safetensors: cannot open");
    assert_string_equal(fy_status_name(FY_ERR_BUDGET), "budget");
    fy_error_clear();
    assert_string_equal(fy_error_message(), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_and_strides),
        cmocka_unit_test(test_rank_limit_and_bad_shapes),
        cmocka_unit_test(test_views),
        cmocka_unit_test(test_strided_copy_with_conversion),
        cmocka_unit_test(test_error_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
