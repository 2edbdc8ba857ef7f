/* Progress lines on a memory stream with a fake clock: the text, the rate
 * limit in log mode, '\r' redraws in terminal mode, finish and OFF. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/progress.h"

static double fake_clock(void *ctx) { return *(double *)ctx; }

static int count_char(const char *s, char c)
{
    int n = 0;
    for (; *s; s++) n += *s == c;
    return n;
}

static void test_format(void **state)
{
    (void)state;
    char line[256];
    fy_progress_format(line, sizeof line, "denoising", "step", 12, 50, 28.9, 10);
    assert_string_equal(line, "denoising: step 12/50 [##........] 2.41 s/step, elapsed 0:29, ETA 1:32");
    fy_progress_format(line, sizeof line, "loading", "block", 0, 30, 0.0, 0);
    assert_string_equal(line, "loading: block 0/30 elapsed 0:00, ETA ?");
    fy_progress_format(line, sizeof line, "loading", "block", 30, 30, 1.5, 0);
    assert_string_equal(line, "loading: block 30/30 20.00 block/s, done in 0:02");
    fy_progress_format(line, sizeof line, "denoising", "step", 1, 50, 4000.0, 0);
    assert_non_null(strstr(line, "ETA 54:26:40"));
}

static void test_lines_rate_limited(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    double t = 100.0;
    fy_progress_options o = {.mode = FY_PROGRESS_AUTO, .line_interval_s = 5.0, .clock = fake_clock, .clock_ctx = &t};
    fy_progress *p = NULL;
    assert_int_equal(fy_progress_create(f, "denoising", "step", 50, &o, &p), FY_OK); /* memstream: not a TTY */
    for (int i = 0; i < 50; i++) {
        t += 1.0;
        fy_progress_step(p);
    }
    fy_progress_free(p);
    fclose(f);
    /* first update, one per 5 s after it, the last: 1 + 9 + 1 */
    assert_int_equal(count_char(buf, '\n'), 11);
    assert_int_equal(count_char(buf, '\r'), 0);
    assert_non_null(strstr(buf, "step 1/50"));
    assert_non_null(strstr(buf, "step 50/50"));
    assert_non_null(strstr(buf, "done in 0:50\n"));
    free(buf);
}

static void test_tty_redraws_in_place(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    double t = 0.0;
    fy_progress_options o = {.mode = FY_PROGRESS_TTY, .tty_interval_s = 0.1, .clock = fake_clock, .clock_ctx = &t};
    fy_progress *p = NULL;
    assert_int_equal(fy_progress_create(f, "loading", "block", 4, &o, &p), FY_OK);
    for (int i = 0; i < 4; i++) {
        t += 0.5;
        fy_progress_step(p);
    }
    fy_progress_finish(p);
    fy_progress_finish(p); /* idempotent */
    fy_progress_free(p);
    fclose(f);
    assert_int_equal(count_char(buf, '\r'), 4);
    assert_int_equal(count_char(buf, '\n'), 1);
    assert_true(buf[strlen(buf) - 1] == '\n');
    assert_non_null(strstr(buf, "\rloading: block 4/4"));
    free(buf);
}

static void test_off_and_errors(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    fy_progress_options o = {.mode = FY_PROGRESS_OFF};
    fy_progress *p = NULL;
    assert_int_equal(fy_progress_create(f, "x", "y", 3, &o, &p), FY_OK);
    fy_progress_update(p, 2);
    fy_progress_update(p, 99); /* clamped */
    fy_progress_free(p);
    fclose(f);
    assert_int_equal(size, 0);
    free(buf);
    assert_int_equal(fy_progress_create(stderr, "x", "y", 0, NULL, &p), FY_ERR_INVALID);
    assert_null(p);
    fy_progress_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_lines_rate_limited),
        cmocka_unit_test(test_tty_redraws_in_place),
        cmocka_unit_test(test_off_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
