/* The workspace table models declare their scratch buffers with: the bytes
 * it reports are the bytes it takes, each row gets its own pointer of its
 * own type, and release clears every pointer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>

#include "ferry/engine.h"
#include "ferry/options.h"
#include "models/workspace.h"

typedef struct bufs {
    float *a, *b, *empty;
    int64_t *ids;
    int32_t *small;
} bufs;

static void table(bufs *p, fy_workspace *t, const char *label)
{
    fy_ws_init(t, label);
    FY_WS_ADD(t, p->a, 3, "a");         /* 12 bytes */
    FY_WS_ADD(t, p->ids, 5, "ids");     /* 40 */
    FY_WS_ADD(t, p->empty, 0, "empty"); /* 0 */
    FY_WS_ADD(t, p->b, 100, "b");       /* 400 */
    FY_WS_ADD(t, p->small, 1, "small"); /* 4 */
}

static fy_engine *engine(void)
{
    fy_run_options o;
    fy_run_options_init(&o);
    o.device = FY_DEVICE_EMU;
    fy_engine *e = NULL;
    assert_int_equal(fy_engine_create(&o, &e), FY_OK);
    assert_int_equal(fy_engine_prepare(e), FY_OK);
    return e;
}

static void test_one_buffer(void **state)
{
    (void)state;
    fy_engine *e = engine();
    bufs p;
    fy_workspace t;
    table(&p, &t, "test workspace");
    assert_null(p.a);
    assert_int_equal(fy_ws_bytes(&t), 64 + 64 + 0 + 448 + 64);
    assert_int_equal(fy_ws_alloc(&t, e), FY_OK);
    char *base = (char *)p.a;
    assert_ptr_equal((char *)p.ids, base + 64);
    assert_ptr_equal((char *)p.empty, base + 128);
    assert_ptr_equal((char *)p.b, base + 128);
    assert_ptr_equal((char *)p.small, base + 576);
    for (int i = 0; i < 100; i++) p.b[i] = (float)i; /* the emulated device is host memory */
    p.small[0] = 7;
    assert_true(p.b[99] == 99.0f);
    fy_ws_free(&t, e);
    assert_null(p.a);
    assert_null(p.b);
    assert_null(p.small);
    fy_engine_free(e);
}

static void test_buffer_per_row(void **state)
{
    (void)state;
    fy_engine *e = engine();
    bufs p;
    fy_workspace t;
    table(&p, &t, NULL);
    assert_int_equal(fy_ws_bytes(&t), 12 + 40 + 0 + 400 + 4);
    assert_int_equal(fy_ws_alloc(&t, e), FY_OK);
    assert_non_null(p.a);
    assert_non_null(p.empty);
    assert_true(p.a != p.b && p.b != p.empty);
    p.ids[4] = 1;
    fy_ws_free(&t, e);
    assert_null(p.ids);
    assert_null(p.empty);
    fy_engine_free(e);
}

/* More rows than the table holds: refused, nothing allocated, nothing to free. */
static void test_too_many_rows(void **state)
{
    (void)state;
    fy_engine *e = engine();
    float *p[FY_WS_MAX_ROWS + 1];
    fy_workspace t;
    fy_ws_init(&t, NULL);
    for (int i = 0; i <= FY_WS_MAX_ROWS; i++) FY_WS_ADD(&t, p[i], 1, "row");
    assert_int_equal(fy_ws_alloc(&t, e), FY_ERR_INTERNAL);
    fy_ws_free(&t, e);
    fy_engine_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_buffer),
        cmocka_unit_test(test_buffer_per_row),
        cmocka_unit_test(test_too_many_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
