/* Progress lines (see ferry/progress.h). */
#include "ferry/progress.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LABEL_MAX 64
#define LINE_MAX_CHARS 256

struct fy_progress {
    FILE *stream;
    char label[LABEL_MAX];
    char unit[LABEL_MAX];
    int64_t total, done;
    fy_progress_mode mode;
    fy_progress_options opt;
    double start, last_draw;
    bool drawn, finished;
    int64_t last_drawn_done;
    int last_len; /* of the terminal line, to blank what a shorter one leaves */
};

static double monotonic_seconds(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double now(const fy_progress *p) { return p->opt.clock(p->opt.clock_ctx); }

/* "1:05", "1:02:03". */
static void format_duration(char *buf, size_t size, double s)
{
    if (!(s >= 0) || s > 359999999.0) {
        snprintf(buf, size, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, size, "%ld:%02ld", t / 60, t % 60);
}

int fy_progress_format(char *buf, size_t size, const char *label, const char *unit, int64_t done,
                       int64_t total, double elapsed_s, int bar_width)
{
    char bar[LINE_MAX_CHARS] = "";
    if (bar_width > 0 && total > 0) {
        if (bar_width > (int)sizeof bar - 4) bar_width = (int)sizeof bar - 4;
        int filled = (int)(done * bar_width / total);
        bar[0] = '[';
        for (int i = 0; i < bar_width; i++) bar[1 + i] = i < filled ? '#' : '.';
        bar[1 + bar_width] = ']';
        bar[2 + bar_width] = ' ';
        bar[3 + bar_width] = '\0';
    }
    char elapsed[32], eta[32], rate[48] = "";
    format_duration(elapsed, sizeof elapsed, elapsed_s);
    if (done > 0) {
        double per = elapsed_s / (double)done;
        if (per >= 1.0 || per == 0.0) snprintf(rate, sizeof rate, "%.2f s/%s, ", per, unit);
        else snprintf(rate, sizeof rate, "%.2f %s/s, ", 1.0 / per, unit);
        format_duration(eta, sizeof eta, per * (double)(total - done));
    } else {
        snprintf(eta, sizeof eta, "?");
    }
    if (done >= total)
        return snprintf(buf, size, "%s: %s %lld/%lld %s%sdone in %s", label, unit, (long long)done,
                        (long long)total, bar, rate, elapsed);
    return snprintf(buf, size, "%s: %s %lld/%lld %s%selapsed %s, ETA %s", label, unit, (long long)done,
                    (long long)total, bar, rate, elapsed, eta);
}

static void draw(fy_progress *p, double t)
{
    char line[LINE_MAX_CHARS];
    int len = fy_progress_format(line, sizeof line, p->label, p->unit, p->done, p->total, t - p->start,
                                 p->opt.bar_width);
    if (len < 0) return;
    if (len >= (int)sizeof line) len = (int)sizeof line - 1;
    if (p->mode == FY_PROGRESS_TTY) {
        int pad = p->last_len > len ? p->last_len - len : 0;
        fprintf(p->stream, "\r%s%*s", line, pad, "");
        p->last_len = len;
    } else {
        fprintf(p->stream, "%s\n", line);
    }
    fflush(p->stream);
    p->drawn = true;
    p->last_draw = t;
    p->last_drawn_done = p->done;
}

fy_status fy_progress_create(FILE *stream, const char *label, const char *unit, int64_t total,
                             const fy_progress_options *opts, fy_progress **out)
{
    *out = NULL;
    if (!stream || total <= 0)
        return fy_error(FY_ERR_INVALID, "progress: needs a stream and a positive total (got %lld)",
                        (long long)total);
    fy_progress *p = calloc(1, sizeof *p);
    if (!p) return fy_error(FY_ERR_NOMEM, "progress: out of memory");
    p->stream = stream;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "progress");
    snprintf(p->unit, sizeof p->unit, "%s", unit ? unit : "step");
    p->total = total;
    if (opts) p->opt = *opts;
    else p->opt.bar_width = 20;
    if (p->opt.tty_interval_s <= 0) p->opt.tty_interval_s = 0.1;
    if (p->opt.line_interval_s <= 0) p->opt.line_interval_s = 5.0;
    if (p->opt.bar_width < 0) p->opt.bar_width = 0;
    if (!p->opt.clock) p->opt.clock = monotonic_seconds;
    p->mode = p->opt.mode;
    if (p->mode == FY_PROGRESS_AUTO) {
        int fd = fileno(stream);
        p->mode = fd >= 0 && isatty(fd) ? FY_PROGRESS_TTY : FY_PROGRESS_LINES;
    }
    p->start = now(p);
    p->last_drawn_done = -1;
    *out = p;
    return FY_OK;
}

void fy_progress_update(fy_progress *p, int64_t done)
{
    if (!p || p->finished) return;
    p->done = done < 0 ? 0 : done > p->total ? p->total : done;
    if (p->mode == FY_PROGRESS_OFF) return;
    double t = now(p);
    double interval = p->mode == FY_PROGRESS_TTY ? p->opt.tty_interval_s : p->opt.line_interval_s;
    bool first = !p->drawn, last = p->done == p->total;
    if (p->done == p->last_drawn_done) return;
    if (first || last || t - p->last_draw >= interval) draw(p, t);
}

void fy_progress_step(fy_progress *p)
{
    if (p) fy_progress_update(p, p->done + 1);
}

void fy_progress_finish(fy_progress *p)
{
    if (!p || p->finished) return;
    if (p->mode != FY_PROGRESS_OFF) {
        if (p->done != p->last_drawn_done) draw(p, now(p));
        if (p->mode == FY_PROGRESS_TTY) {
            fputc('\n', p->stream);
            fflush(p->stream);
        }
    }
    p->finished = true;
}

void fy_progress_free(fy_progress *p)
{
    if (!p) return;
    fy_progress_finish(p);
    free(p);
}
