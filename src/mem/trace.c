/* Chrome Trace Event JSON: {"traceEvents": [...], "displayTimeUnit": "ms"},
 * times in microseconds, pid 1, tid = stream track. */
#include "mem/trace.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static void write_event(FILE *f, const fy_trace *t, const trace_event *e)
{
    double ts = (e->t0 - t->origin) * 1e6;
    fprintf(f, "{\"ph\":\"%c\",\"pid\":1,\"tid\":%d,\"ts\":%.3f,\"name\":", e->phase, e->track, ts);
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

static void write_all(FILE *f, fy_trace *t)
{
    fputs("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n", f);
    fputs("{\"ph\":\"M\",\"pid\":1,\"name\":\"process_name\",\"args\":{\"name\":\"ferry\"}},\n", f);
    fprintf(f, "{\"ph\":\"M\",\"pid\":1,\"tid\":%d,\"name\":\"thread_name\",\"args\":{\"name\":\"compute stream\"}},\n",
            FY_TRACK_COMPUTE);
    fprintf(f, "{\"ph\":\"M\",\"pid\":1,\"tid\":%d,\"name\":\"thread_name\",\"args\":{\"name\":\"copy stream\"}}",
            FY_TRACK_COPY);
    bool disk = false; /* the disk tier's track only when it read something */
    for (size_t i = 0; i < t->n && !disk; i++) disk = t->ev[i].track == FY_TRACK_DISK;
    if (disk)
        fprintf(f, ",\n{\"ph\":\"M\",\"pid\":1,\"tid\":%d,\"name\":\"thread_name\",\"args\":{\"name\":\"disk\"}}",
                FY_TRACK_DISK);
    for (size_t i = 0; i < t->n; i++) {
        fputs(",\n", f);
        write_event(f, t, &t->ev[i]);
    }
    fputs("\n]}\n", f);
}

fy_status fy_trace_write(fy_trace *t, const char *path)
{
    size_t len = strlen(path) + 32;
    char *tmp = malloc(len);
    if (!tmp) return fy_error(FY_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, len, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        free(tmp);
        return fy_error(FY_ERR_IO, "%s: cannot write the trace (is the folder there and writable?)", path);
    }
    pthread_mutex_lock(&t->mu);
    write_all(f, t);
    pthread_mutex_unlock(&t->mu);
    bool ok = !ferror(f);
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        free(tmp);
        return fy_error(FY_ERR_IO, "%s: writing the trace failed (disk full?)", path);
    }
    free(tmp);
    return FY_OK;
}
