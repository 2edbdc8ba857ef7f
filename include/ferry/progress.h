/* A progress line for long loops (denoising steps, loading blocks):
 *
 *   denoising: step 12/50 [#######.............] 2.41 s/step, elapsed 0:28, ETA 1:32
 *
 * On a terminal the line is redrawn in place with '\r' (at most every
 * tty_interval_s); anywhere else (a log file, a pipe) each update that is at
 * least line_interval_s after the last printed one gets its own line, and the
 * first and last always do, so logs stay short. No global state: one object
 * per loop, any stream. */
#ifndef FERRY_PROGRESS_H
#define FERRY_PROGRESS_H

#include <stdint.h>
#include <stdio.h>
#include "ferry/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fy_progress_mode {
    FY_PROGRESS_AUTO = 0, /* TTY when isatty(fileno(stream)), else LINES */
    FY_PROGRESS_TTY,
    FY_PROGRESS_LINES,
    FY_PROGRESS_OFF
} fy_progress_mode;

typedef struct fy_progress_options {
    fy_progress_mode mode;
    double tty_interval_s;  /* default 0.1 */
    double line_interval_s; /* default 5 */
    int bar_width;          /* default 20; 0 for no bar */
    /* Seconds on a monotonic clock; NULL for CLOCK_MONOTONIC (tests pass a fake). */
    double (*clock)(void *ctx);
    void *clock_ctx;
} fy_progress_options;

typedef struct fy_progress fy_progress;

/* label ("denoising") and unit ("step") are copied; total > 0. opts may be NULL. */
fy_status fy_progress_create(FILE *stream, const char *label, const char *unit, int64_t total,
                             const fy_progress_options *opts, fy_progress **out);
/* done units so far (absolute; clamped to [0, total]). */
void fy_progress_update(fy_progress *p, int64_t done);
/* One more unit. */
void fy_progress_step(fy_progress *p);
/* Draws the final state (and ends the terminal line). Idempotent. */
void fy_progress_finish(fy_progress *p);
/* Finishes if needed, then frees. NULL is fine. */
void fy_progress_free(fy_progress *p);

/* The text of the line for the given state (no '\r' or '\n'), for tests and
 * for callers that log through something else. Returns snprintf's count. */
int fy_progress_format(char *buf, size_t size, const char *label, const char *unit, int64_t done,
                       int64_t total, double elapsed_s, int bar_width);

#ifdef __cplusplus
}
#endif
#endif
