/* The emulated device: a GPU rehearsed on the host.
 *
 * Device memory is host memory under a hard byte budget: an allocation past
 * it fails, as cudaMalloc would. The copy stream is a copy engine thread
 * that takes commands (copies, event records, waits on compute events) in
 * FIFO order, memcpy's in chunks and sleeps to hold the throttled bandwidth,
 * so uploads really overlap compute and a late weight really stalls it. The
 * compute stream is the calling thread: its work is done when issued, so a
 * record on it completes at once, and waiting on an event blocks the caller. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/cpu_op_table.h"
#include "ferry/backend.h"

/* Small enough that the throttle is smooth, large enough that memcpy runs at speed. */
#define EMU_CHUNK ((size_t)256 << 10)
/* The throttle sleeps at most this long at a time: a tiny bandwidth gives
 * deadlines far past what a timespec holds, and destroy must not wait them out. */
#define EMU_MAX_SLEEP 0.25

typedef struct emu_event {
    uint64_t recorded; /* sequence of the latest record */
    uint64_t done;     /* highest completed sequence */
} emu_event;

typedef enum emu_cmd_kind { CMD_COPY, CMD_RECORD, CMD_WAIT } emu_cmd_kind;

typedef struct emu_cmd {
    emu_cmd_kind kind;
    void *dst;
    const void *src;
    size_t bytes;
    emu_event *event;
    uint64_t seq;
    struct emu_cmd *next;
    char label[64];
} emu_cmd;

typedef struct emu_backend {
    fy_backend base;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* any change: queue, busy, event completion */
    emu_cmd *head, *tail;
    bool busy, stop, thread_started;
    pthread_t thread;
    uint64_t budget, used;
    double bandwidth;
} emu_backend;

static emu_backend *emu(fy_backend *b)
{
    return (emu_backend *)b;
}

/* Sleeps in bounded steps, so the cast to time_t is always defined (t may be
 * huge or infinite), and gives up when destroy asks the engine to stop: the
 * copy then finishes unthrottled instead of hanging emu_destroy. */
static void sleep_until(emu_backend *e, double t)
{
    for (;;) {
        double wait = t - fy_backend_now();
        if (!(wait > 0)) return;
        pthread_mutex_lock(&e->mu);
        bool stop = e->stop;
        pthread_mutex_unlock(&e->mu);
        if (stop) return;
        if (wait > EMU_MAX_SLEEP) wait = EMU_MAX_SLEEP;
        struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

static void run_copy(emu_backend *e, const emu_cmd *c)
{
    double t0 = fy_backend_now();
    for (size_t off = 0; off < c->bytes; off += EMU_CHUNK) {
        size_t n = c->bytes - off < EMU_CHUNK ? c->bytes - off : EMU_CHUNK;
        memcpy((char *)c->dst + off, (const char *)c->src + off, n);
        if (e->bandwidth > 0) sleep_until(e, t0 + (double)(off + n) / e->bandwidth);
    }
    if (e->base.observer) e->base.observer(e->base.observer_user, c->label, c->bytes, t0, fy_backend_now());
}

static void *copy_engine(void *arg)
{
    emu_backend *e = arg;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (!e->head && !e->stop) pthread_cond_wait(&e->cv, &e->mu);
        if (!e->head) break;
        emu_cmd *c = e->head;
        e->head = c->next;
        if (!e->head) e->tail = NULL;
        e->busy = true;
        bool abandoned = false;
        if (c->kind == CMD_WAIT) {
            /* An event that never completes must not hang destroy's join. */
            while (c->event->done < c->seq && !e->stop) pthread_cond_wait(&e->cv, &e->mu);
            abandoned = c->event->done < c->seq;
        } else if (c->kind == CMD_RECORD) {
            if (c->event->done < c->seq) c->event->done = c->seq;
        } else {
            pthread_mutex_unlock(&e->mu);
            run_copy(e, c);
            pthread_mutex_lock(&e->mu);
        }
        e->busy = false;
        free(c);
        pthread_cond_broadcast(&e->cv);
        if (abandoned) break; /* what follows the wait was ordered after it: destroy frees it */
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

static fy_status cmd_new(const emu_cmd *tmpl, emu_cmd **out)
{
    emu_cmd *c = malloc(sizeof *c);
    *out = c;
    if (!c) return fy_error(FY_ERR_NOMEM, "emu device: out of memory queueing a copy command");
    *c = *tmpl;
    c->next = NULL;
    return FY_OK;
}

/* With the lock held. */
static void enqueue(emu_backend *e, emu_cmd *c)
{
    if (e->tail) e->tail->next = c;
    else e->head = c;
    e->tail = c;
    pthread_cond_broadcast(&e->cv);
}

static fy_status push(emu_backend *e, const emu_cmd *tmpl)
{
    emu_cmd *c = NULL;
    FY_TRY(cmd_new(tmpl, &c));
    pthread_mutex_lock(&e->mu);
    enqueue(e, c);
    pthread_mutex_unlock(&e->mu);
    return FY_OK;
}

static fy_status emu_alloc_device(fy_backend *b, size_t bytes, void **out)
{
    emu_backend *e = emu(b);
    *out = NULL;
    pthread_mutex_lock(&e->mu);
    /* used never exceeds budget, so the subtraction cannot wrap; the sum could. */
    bool over = e->budget && (bytes > e->budget || e->used > e->budget - bytes);
    uint64_t used = e->used;
    if (!over) e->used += bytes;
    pthread_mutex_unlock(&e->mu);
    if (over)
        return fy_error(FY_ERR_BUDGET,
                        "emu device: out of memory allocating %zu bytes (%llu of %llu bytes in use)",
                        bytes, (unsigned long long)used, (unsigned long long)e->budget);
    void *p = NULL;
    if (posix_memalign(&p, 256, bytes ? bytes : 1) != 0) {
        pthread_mutex_lock(&e->mu);
        e->used -= bytes;
        pthread_mutex_unlock(&e->mu);
        return fy_error(FY_ERR_NOMEM, "emu device: host has no %zu bytes to back the device", bytes);
    }
    /* Touch the pages now: a GPU's memory exists before the first copy, and
     * first-touch faults inside the copy engine would throttle it below the
     * bandwidth being rehearsed. */
    memset(p, 0, bytes);
    *out = p;
    return FY_OK;
}

static void emu_free_device(fy_backend *b, void *p, size_t bytes)
{
    if (!p) return;
    emu_backend *e = emu(b);
    free(p);
    pthread_mutex_lock(&e->mu);
    e->used -= bytes <= e->used ? bytes : e->used;
    pthread_mutex_unlock(&e->mu);
}

static fy_status emu_alloc_pinned(fy_backend *b, size_t bytes, void **out, bool *pinned)
{
    return fy_host_alloc_pinned(bytes, out, pinned);
}

static void emu_free_pinned(fy_backend *b, void *p, size_t bytes)
{
    fy_host_free_pinned(p, bytes);
}

static fy_status emu_copy_h2d(fy_backend *b, void *dst, const void *src, size_t bytes, fy_stream s,
                              const char *label)
{
    if (s == FY_STREAM_COMPUTE) {
        memcpy(dst, src, bytes);
        return FY_OK;
    }
    emu_cmd c = {.kind = CMD_COPY, .dst = dst, .src = src, .bytes = bytes};
    if (label) snprintf(c.label, sizeof c.label, "%s", label);
    return push(emu(b), &c);
}

static fy_status emu_copy_d2h(fy_backend *b, void *dst, const void *src, size_t bytes)
{
    memcpy(dst, src, bytes); /* compute stream: already ordered */
    return FY_OK;
}

static fy_status emu_event_create(fy_backend *b, fy_event **out)
{
    emu_event *ev = calloc(1, sizeof *ev);
    if (!ev) return fy_error(FY_ERR_NOMEM, "emu device: out of memory for an event");
    *out = (fy_event *)ev;
    return FY_OK;
}

static void emu_event_destroy(fy_backend *b, fy_event *ev)
{
    free(ev);
}

static fy_status emu_event_record(fy_backend *b, fy_event *event, fy_stream s)
{
    emu_backend *e = emu(b);
    emu_event *ev = (emu_event *)event;
    emu_cmd *c = NULL;
    /* Allocate before bumping `recorded`: a record that is counted but never
     * queued would leave every later wait on the event hanging. */
    if (s != FY_STREAM_COMPUTE) {
        emu_cmd tmpl = {.kind = CMD_RECORD, .event = ev};
        FY_TRY(cmd_new(&tmpl, &c));
    }
    pthread_mutex_lock(&e->mu);
    uint64_t seq = ++ev->recorded;
    if (c) {
        c->seq = seq;
        enqueue(e, c);
    } else {
        ev->done = seq;
        pthread_cond_broadcast(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
    return FY_OK;
}

static fy_status emu_stream_wait_event(fy_backend *b, fy_stream s, fy_event *event)
{
    emu_backend *e = emu(b);
    emu_event *ev = (emu_event *)event;
    pthread_mutex_lock(&e->mu);
    uint64_t seq = ev->recorded;
    if (s == FY_STREAM_COMPUTE) {
        while (ev->done < seq) pthread_cond_wait(&e->cv, &e->mu);
        pthread_mutex_unlock(&e->mu);
        return FY_OK;
    }
    bool pending = ev->done < seq;
    pthread_mutex_unlock(&e->mu);
    if (!pending) return FY_OK;
    emu_cmd c = {.kind = CMD_WAIT, .event = ev, .seq = seq};
    return push(e, &c);
}

static bool emu_event_query(fy_backend *b, fy_event *event)
{
    emu_backend *e = emu(b);
    emu_event *ev = (emu_event *)event;
    pthread_mutex_lock(&e->mu);
    bool done = ev->done >= ev->recorded;
    pthread_mutex_unlock(&e->mu);
    return done;
}

static fy_status emu_event_synchronize(fy_backend *b, fy_event *event)
{
    return emu_stream_wait_event(b, FY_STREAM_COMPUTE, event);
}

static fy_status emu_synchronize(fy_backend *b)
{
    emu_backend *e = emu(b);
    pthread_mutex_lock(&e->mu);
    while (e->head || e->busy) pthread_cond_wait(&e->cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
    return FY_OK;
}

static void emu_destroy(fy_backend *b)
{
    emu_backend *e = emu(b);
    if (e->thread_started) {
        pthread_mutex_lock(&e->mu);
        e->stop = true;
        pthread_cond_broadcast(&e->cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->thread, NULL);
    }
    /* A wait whose event never completes would leave commands behind. */
    for (emu_cmd *c = e->head; c;) {
        emu_cmd *next = c->next;
        free(c);
        c = next;
    }
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

/* The budget is the device's size; unlimited reports 0 total. */
static fy_status emu_mem_info(fy_backend *b, uint64_t *free_bytes, uint64_t *total_bytes)
{
    emu_backend *e = emu(b);
    pthread_mutex_lock(&e->mu);
    *total_bytes = e->budget;
    *free_bytes = e->budget > e->used ? e->budget - e->used : 0;
    pthread_mutex_unlock(&e->mu);
    return FY_OK;
}

static const fy_backend_vtable emu_vtable = {
    .name = "emu",
    .alloc_device = emu_alloc_device,
    .free_device = emu_free_device,
    .alloc_pinned = emu_alloc_pinned,
    .free_pinned = emu_free_pinned,
    .copy_h2d_async = emu_copy_h2d,
    .copy_d2h = emu_copy_d2h,
    .event_create = emu_event_create,
    .event_destroy = emu_event_destroy,
    .event_record = emu_event_record,
    .stream_wait_event = emu_stream_wait_event,
    .event_query = emu_event_query,
    .event_synchronize = emu_event_synchronize,
    .synchronize = emu_synchronize,
    .destroy = emu_destroy,
    .ops = &fy_cpu_ops_class,
    .mem_info = emu_mem_info,
};

fy_status fy_backend_create_emu(uint64_t budget_bytes, double bandwidth_bytes_per_s, fy_backend **out)
{
    *out = NULL;
    if (!(bandwidth_bytes_per_s >= 0)) /* NaN too */
        return fy_error(FY_ERR_INVALID, "emu device: bandwidth must be >= 0 (got %g)", bandwidth_bytes_per_s);
    emu_backend *e = calloc(1, sizeof *e);
    if (!e) return fy_error(FY_ERR_NOMEM, "emu device: out of memory");
    e->base.vt = &emu_vtable;
    e->budget = budget_bytes;
    e->bandwidth = bandwidth_bytes_per_s;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    if (pthread_create(&e->thread, NULL, copy_engine, e) != 0) {
        emu_destroy(&e->base);
        return fy_error(FY_ERR_DEVICE, "emu device: cannot start the copy engine thread");
    }
    e->thread_started = true;
    *out = &e->base;
    return FY_OK;
}
