/* Chrome Trace Event JSON: {"traceEvents": [...], "displayTimeUnit": "ms"},
 * times in microseconds, one pid per timeline (engine), tid = stream track. */
#include "mem/trace.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferry/options.h"
#include "mem/engine_internal.h"

typedef struct trace_event {
    char phase; /* 'X' or 'C' */
    int track;
    double t0, t1;
    uint64_t value; /* bytes for spans, the sample for counters */
    const char *cat;
    char name[48];
} trace_event;

struct fy_trace {
    pthread_mutex_t mu;
    double origin;
    trace_event *ev;
    size_t n, cap;
};

fy_status fy_trace_create(double origin, fy_trace **out)
{
    fy_trace *t = calloc(1, sizeof *t);
    if (!t) return fy_error(FY_ERR_NOMEM, "trace: out of memory");
    pthread_mutex_init(&t->mu, NULL);
    t->origin = origin;
    *out = t;
    return FY_OK;
}

void fy_trace_free(fy_trace *t)
{
    if (!t) return;
    pthread_mutex_destroy(&t->mu);
    free(t->ev);
    free(t);
}

static void push(fy_trace *t, const trace_event *e)
{
    pthread_mutex_lock(&t->mu);
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 1024;
        trace_event *ev = realloc(t->ev, cap * sizeof *ev);
        if (!ev) { /* a trace is best effort: drop the event rather than fail the run */
            pthread_mutex_unlock(&t->mu);
            return;
        }
        t->ev = ev;
        t->cap = cap;
    }
    t->ev[t->n++] = *e;
    pthread_mutex_unlock(&t->mu);
}

void fy_trace_span(fy_trace *t, int track, const char *name, const char *cat, double t0, double t1,
                   uint64_t bytes)
{
    if (!t) return;
    trace_event e = {.phase = 'X', .track = track, .t0 = t0, .t1 = t1, .value = bytes, .cat = cat};
    snprintf(e.name, sizeof e.name, "%s", name ? name : "");
    push(t, &e);
}

void fy_trace_counter(fy_trace *t, const char *name, double at, uint64_t value)
{
    if (!t) return;
    trace_event e = {.phase = 'C', .track = FY_TRACK_COMPUTE, .t0 = at, .value = value, .cat = "memory"};
    snprintf(e.name, sizeof e.name, "%s", name);
    push(t, &e);
}

/* Names are ours (group names the model chose): escape quotes and controls anyway. */
static void put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void write_event(FILE *f, int pid, double origin, const trace_event *e)
{
    double ts = (e->t0 - origin) * 1e6;
    fprintf(f, "{\"ph\":\"%c\",\"pid\":%d,\"tid\":%d,\"ts\":%.3f,\"name\":", e->phase, pid, e->track, ts);
    put_string(f, e->name);
    fprintf(f, ",\"cat\":\"%s\"", e->cat ? e->cat : "");
    if (e->phase == 'X') {
        fprintf(f, ",\"dur\":%.3f", (e->t1 - e->t0) * 1e6);
        if (e->value) fprintf(f, ",\"args\":{\"bytes\":%" PRIu64 "}", e->value);
    } else {
        fprintf(f, ",\"args\":{\"bytes\":%" PRIu64 "}", e->value);
    }
    fputc('}', f);
}

/* One timeline as process pid: its name, its tracks, its events. Called
 * with t->mu held. */
static void write_process(FILE *f, int pid, const char *name, double origin, const fy_trace *t)
{
    fprintf(f, "{\"ph\":\"M\",\"pid\":%d,\"name\":\"process_name\",\"args\":{\"name\":", pid);
    put_string(f, name);
    fputs("}},\n", f);
    fprintf(f, "{\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"name\":\"thread_name\",\"args\":{\"name\":\"compute stream\"}},\n",
            pid, FY_TRACK_COMPUTE);
    fprintf(f, "{\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"name\":\"thread_name\",\"args\":{\"name\":\"copy stream\"}}",
            pid, FY_TRACK_COPY);
    bool disk = false; /* the disk tier's track only when it read something */
    for (size_t i = 0; i < t->n && !disk; i++) disk = t->ev[i].track == FY_TRACK_DISK;
    if (disk)
        fprintf(f, ",\n{\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"name\":\"thread_name\",\"args\":{\"name\":\"disk\"}}",
                pid, FY_TRACK_DISK);
    for (size_t i = 0; i < t->n; i++) {
        fputs(",\n", f);
        write_event(f, pid, origin, &t->ev[i]);
    }
}

/* Every timeline on one clock: the earliest origin is time 0. */
static double earliest_origin(fy_trace *const *traces, int n)
{
    double origin = traces[0]->origin;
    for (int i = 1; i < n; i++)
        if (traces[i]->origin < origin) origin = traces[i]->origin;
    return origin;
}

static void write_all(FILE *f, fy_trace *const *traces, const char *const *names, int n)
{
    double origin = earliest_origin(traces, n);
    fputs("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n", f);
    for (int i = 0; i < n; i++) {
        if (i) fputs(",\n", f);
        pthread_mutex_lock(&traces[i]->mu);
        write_process(f, i + 1, names[i], origin, traces[i]);
        pthread_mutex_unlock(&traces[i]->mu);
    }
    fputs("\n]}\n", f);
}

/* The temporary file: O_EXCL and O_NOFOLLOW, so a file or link already at
 * that name is never written through. */
static FILE *open_temp(const char *tmp)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0666);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "w");
    if (!f) close(fd);
    return f;
}

/* Writes the whole file under tmp; errno tells why not. */
static bool write_temp(const char *tmp, fy_trace *const *traces, const char *const *names, int n)
{
    FILE *f = open_temp(tmp);
    if (!f) return false;
    write_all(f, traces, names, n);
    int err = ferror(f) ? (errno ? errno : EIO) : 0;
    if (fclose(f) != 0 && !err) err = errno;
    errno = err;
    return err == 0;
}

fy_status fy_trace_write_many(fy_trace *const *traces, const char *const *names, int n, const char *path)
{
    if (!traces || !names || n < 1 || !path) return fy_error(FY_ERR_INVALID, "trace: nothing to write");
    /* Checked again here, not only before the run: rename() replaces
     * whatever is at path, a FIFO, a device or a link included. */
    FY_TRY(fy_check_output_file("--trace", path));
    size_t len = strlen(path) + 32;
    char *tmp = malloc(len);
    if (!tmp) return fy_error(FY_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, len, "%s.tmp.%ld", path, (long)getpid());
    fy_status s = FY_OK;
    if (!write_temp(tmp, traces, names, n)) {
        int err = errno;
        if (err != EEXIST) remove(tmp); /* EEXIST: not ours to remove */
        s = fy_error(FY_ERR_IO, "--trace %s: cannot write the trace to %s: %s", path, tmp, strerror(err));
    } else if (rename(tmp, path) != 0) {
        int err = errno;
        remove(tmp);
        s = fy_error(FY_ERR_IO, "--trace %s: cannot move the trace into place: %s", path, strerror(err));
    }
    free(tmp);
    return s;
}

fy_status fy_trace_write(fy_trace *t, const char *path)
{
    const char *name = "ferry";
    return fy_trace_write_many(&t, &name, 1, path);
}

fy_status fy_engines_write_trace(fy_engine *const *engines, const char *const *names, int n, const char *path)
{
    if (n < 1 || n > FY_TRACE_MAX_TIMELINES) return fy_error(FY_ERR_INVALID, "trace: %d engines", n);
    fy_trace *traces[FY_TRACE_MAX_TIMELINES];
    for (int i = 0; i < n; i++) traces[i] = engines[i]->trace;
    return fy_trace_write_many(traces, names, n, path);
}
