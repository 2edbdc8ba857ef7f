/* The emulated device: a hard budget like cudaMalloc's, an asynchronous
 * copy engine ordered by events, and a bandwidth throttle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/backend.h"
#include "mem/pool.h"

static void test_budget_is_hard(void **state)
{
    fy_backend *b = NULL;
    assert_int_equal(fy_backend_create_emu(1 << 20, 0, &b), FY_OK);
    assert_string_equal(fy_backend_name(b), "emu");
    void *p = NULL, *q = NULL;
    assert_int_equal(fy_backend_alloc_device(b, 768 << 10, &p), FY_OK);
    assert_int_equal(fy_backend_alloc_device(b, 512 << 10, &q), FY_ERR_BUDGET);
    assert_null(q);
    fy_backend_free_device(b, p, 768 << 10);
    assert_int_equal(fy_backend_alloc_device(b, 1 << 20, &q), FY_OK);
    fy_backend_free_device(b, q, 1 << 20);
    fy_backend_free(b);
}

/* A size that wraps used + bytes past zero is over the budget, not a fit. */
static void test_budget_overflow(void **state)
{
    fy_backend *b = NULL;
    assert_int_equal(fy_backend_create_emu(1 << 20, 0, &b), FY_OK);
    void *p = NULL, *q = NULL;
    assert_int_equal(fy_backend_alloc_device(b, 768 << 10, &p), FY_OK);
    size_t wraps = SIZE_MAX - (size_t)(768 << 10) + 2; /* used + wraps == 1 */
    assert_int_equal(fy_backend_alloc_device(b, wraps, &q), FY_ERR_BUDGET);
    assert_null(q);
    assert_int_equal(fy_backend_alloc_device(b, SIZE_MAX, &q), FY_ERR_BUDGET);
    uint64_t free_bytes = 0, total = 0;
    assert_int_equal(b->vt->mem_info(b, &free_bytes, &total), FY_OK);
    assert_int_equal(free_bytes, 256 << 10); /* the failed calls took nothing */
    fy_backend_free_device(b, p, 768 << 10);
    fy_backend_free(b);
}

/* A bandwidth so small that the throttle's deadline is beyond any timespec
 * (or infinite): the sleep stays defined, and destroy ends it instead of
 * waiting it out; the copy is finished unthrottled. */
static void test_tiny_bandwidth(void **state)
{
    const double tiny[2] = {1e-300, 4.9e-324}; /* 4.9e-324: bytes / bandwidth is inf */
    size_t n = 1u << 20;                        /* several throttle chunks */
    for (int i = 0; i < 2; i++) {
        fy_backend *b = NULL;
        assert_int_equal(fy_backend_create_emu(0, tiny[i], &b), FY_OK);
        unsigned char *src = malloc(n), *dst = calloc(1, n);
        assert_non_null(src);
        assert_non_null(dst);
        for (size_t k = 0; k < n; k++) src[k] = (unsigned char)(k * 13 + 5);
        double t0 = fy_backend_now();
        assert_int_equal(fy_backend_copy_h2d_async(b, dst, src, n, FY_STREAM_COPY, "w"), FY_OK);
        /* The engine copies a chunk, then sleeps "forever": the last chunk waits for destroy. */
        assert_int_equal(dst[n - 1], 0);
        fy_backend_free(b);
        assert_true(fy_backend_now() - t0 < 5.0);
        assert_memory_equal(dst, src, n);
        free(src);
        free(dst);
    }
    fy_backend *b = NULL;
    assert_int_equal(fy_backend_create_emu(0, NAN, &b), FY_ERR_INVALID);
}

static void test_copies_ordered_by_events(void **state)
{
    fy_backend *b = NULL;
    assert_int_equal(fy_backend_create_emu(0, 2e9, &b), FY_OK);
    size_t n = 3u << 20;
    unsigned char *src = malloc(n);
    assert_non_null(src);
    for (size_t i = 0; i < n; i++) src[i] = (unsigned char)(i * 31 + 7);
    void *dev = NULL;
    assert_int_equal(fy_backend_alloc_device(b, n, &dev), FY_OK);
    fy_event *ready = NULL, *freed = NULL;
    assert_int_equal(b->vt->event_create(b, &ready), FY_OK);
    assert_int_equal(b->vt->event_create(b, &freed), FY_OK);
    assert_true(b->vt->event_query(b, ready)); /* never recorded: complete */
    /* The copy stream waits on compute (already done), copies, records. */
    assert_int_equal(fy_backend_event_record(b, freed, FY_STREAM_COMPUTE), FY_OK);
    assert_int_equal(fy_backend_stream_wait_event(b, FY_STREAM_COPY, freed), FY_OK);
    assert_int_equal(fy_backend_copy_h2d_async(b, dev, src, n, FY_STREAM_COPY, "w"), FY_OK);
    assert_int_equal(fy_backend_event_record(b, ready, FY_STREAM_COPY), FY_OK);
    assert_int_equal(fy_backend_stream_wait_event(b, FY_STREAM_COMPUTE, ready), FY_OK);
    assert_true(b->vt->event_query(b, ready));
    assert_memory_equal(dev, src, n);
    b->vt->event_destroy(b, ready);
    b->vt->event_destroy(b, freed);
    fy_backend_free_device(b, dev, n);
    free(src);
    fy_backend_free(b);
}

static void test_throttle_holds_bandwidth(void **state)
{
    fy_backend *b = NULL;
    assert_int_equal(fy_backend_create_emu(0, 200e6, &b), FY_OK); /* 200 MB/s */
    size_t n = 4u << 20;
    char *src = calloc(1, n);
    void *dev = NULL;
    assert_non_null(src);
    assert_int_equal(fy_backend_alloc_device(b, n, &dev), FY_OK);
    double t0 = fy_backend_now();
    assert_int_equal(fy_backend_copy_h2d_async(b, dev, src, n, FY_STREAM_COPY, "w"), FY_OK);
    double issued = fy_backend_now() - t0;
    assert_int_equal(fy_backend_synchronize(b), FY_OK);
    double took = fy_backend_now() - t0;
    /* Sleeping never ends early: 4 MiB at 200 MB/s is at least 20.9 ms. */
    assert_true(took >= (double)n / 200e6);
    assert_true(issued < took); /* the call itself returned before the copy ended */
    fy_backend_free_device(b, dev, n);
    free(src);
    fy_backend_free(b);
}

static void test_pool_budget_message(void **state)
{
    fy_backend *b = NULL;
    assert_int_equal(fy_backend_create_emu(0, 0, &b), FY_OK);
    fy_pool *p = NULL;
    assert_int_equal(fy_pool_create(b, 1000, &p), FY_OK);
    void *x = NULL, *y = NULL;
    assert_int_equal(fy_pool_alloc(p, 600, "x", &x), FY_OK);
    assert_int_equal(fy_pool_alloc(p, 600, "attention workspace", &y), FY_ERR_BUDGET);
    assert_non_null(strstr(fy_error_message(), "attention workspace needs 600 B"));
    assert_int_equal(fy_pool_used(p), 600);
    fy_pool_release(p, x);
    assert_int_equal(fy_pool_used(p), 0);
    assert_int_equal(fy_pool_peak(p), 600);
    assert_int_equal(fy_pool_alloc(p, 1000, "y", &y), FY_OK);
    fy_pool_free(p); /* frees y */
    fy_backend_free(b);
}

/* Caching: a released block serves the next allocation of about its size
 * (same pointer, no new device memory), still counts against the budget
 * and the peak, and is given back when a new block would not fit beside it. */
static void test_pool_caching(void **state)
{
    fy_backend *b = NULL;
    assert_int_equal(fy_backend_create_emu(0, 0, &b), FY_OK);
    fy_pool *p = NULL;
    assert_int_equal(fy_pool_create(b, 3000, &p), FY_OK);
    fy_pool_set_caching(p, true);
    void *x = NULL, *y = NULL, *z = NULL;
    assert_int_equal(fy_pool_alloc(p, 2000, "x", &x), FY_OK);
    memset(x, 1, 2000);
    fy_pool_release(p, x);
    assert_int_equal(fy_pool_used(p), 0);
    assert_int_equal(fy_pool_cached(p), 2000);
    /* 1700 fits the cached 2000 (at most a quarter larger): reused whole. */
    assert_int_equal(fy_pool_alloc(p, 1700, "y", &y), FY_OK);
    assert_ptr_equal(y, x);
    assert_int_equal(fy_pool_used(p), 2000);
    assert_int_equal(fy_pool_cached(p), 0);
    fy_pool_release(p, y);
    /* The cached 2000 is more than a quarter above 1200, and 1200 beside it
     * would pass the 3000 budget: the cache is given back first. */
    assert_int_equal(fy_pool_alloc(p, 1200, "z", &z), FY_OK);
    assert_int_equal(fy_pool_cached(p), 0);
    assert_int_equal(fy_pool_used(p), 1200);
    assert_int_equal(fy_pool_peak(p), 2000);
    fy_pool_release(p, z);
    assert_int_equal(fy_pool_alloc(p, 100, "w", &x), FY_OK);  /* beside the cached 1200 */
    assert_int_equal(fy_pool_peak(p), 2000);
    assert_int_equal(fy_pool_cached(p), 1200);
    fy_pool_set_caching(p, false); /* gives the cache back */
    assert_int_equal(fy_pool_cached(p), 0);
    fy_pool_release(p, x);
    assert_int_equal(fy_pool_used(p), 0);
    fy_pool_free(p);
    fy_backend_free(b);
}

static void test_cpu_backend_and_options(void **state)
{
    fy_run_options o;
    fy_run_options_init(&o);
    fy_backend *b = NULL;
    assert_int_equal(fy_backend_create(&o, &b), FY_OK);
    assert_string_equal(fy_backend_name(b), "cpu");
    assert_true(b->unified_host_memory);
    fy_backend_free(b);
    o.device = FY_DEVICE_EMU;
    o.max_memory[0] = 123;
    assert_int_equal(fy_backend_create(&o, &b), FY_OK);
    void *p = NULL;
    assert_int_equal(fy_backend_alloc_device(b, 124, &p), FY_ERR_BUDGET);
    fy_backend_free(b);
    o.device = FY_DEVICE_CUDA;
#ifdef FERRY_HAVE_CUDA
    /* Built with CUDA: works on a machine with a GPU, a clear device error elsewhere. */
    fy_status cuda = fy_backend_create(&o, &b);
    assert_true(cuda == FY_OK || cuda == FY_ERR_DEVICE);
    if (cuda == FY_OK) fy_backend_free(b);
#else
    assert_int_equal(fy_backend_create(&o, &b), FY_ERR_UNSUPPORTED);
#endif
    assert_int_equal(fy_backend_create_emu(0, -1, &b), FY_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget_is_hard),
        cmocka_unit_test(test_budget_overflow),
        cmocka_unit_test(test_tiny_bandwidth),
        cmocka_unit_test(test_copies_ordered_by_events),
        cmocka_unit_test(test_throttle_holds_bandwidth),
        cmocka_unit_test(test_pool_budget_message),
        cmocka_unit_test(test_pool_caching),
        cmocka_unit_test(test_cpu_backend_and_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
