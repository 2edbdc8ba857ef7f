/* The stall on an asynchronous device, measured by the device.
 *
 * On a GPU the compute stream's wait for a weight upload is queued, not
 * waited for: the host returns at once, so timing the host call reads no
 * stall at all. Instead an event is recorded on the compute stream on each
 * side of the wait; the time between them is the time the compute stream
 * sat waiting for the copy. The pairs are read once the second event has
 * completed: when the probe ring is full (the oldest pair, long done in
 * practice) and when the stats are read. On a host device (cpu, emu) the
 * compute thread itself waits, so the host clock is the truth there. */
#include <stdlib.h>
#include <string.h>

#include "mem/engine_internal.h"

enum { PROBE_CAP = 64 };

typedef struct stall_probe {
    fy_event *before, *after;
} stall_probe;

struct eng_probes {
    pthread_mutex_t mu;
    stall_probe ring[PROBE_CAP];
    int head, count; /* pending pairs: ring[head .. head + count) */
};

static bool device_is_async(const fy_engine *e)
{
    return strcmp(e->backend->vt->name, "cuda") == 0;
}

static fy_status probes_create(fy_engine *e)
{
    struct eng_probes *p = calloc(1, sizeof *p);
    if (!p) return fy_error(FY_ERR_NOMEM, "engine: out of memory for stall probes");
    pthread_mutex_init(&p->mu, NULL);
    e->probes = p;
    for (int i = 0; i < PROBE_CAP; i++) {
        FY_TRY(e->backend->vt->event_create(e->backend, &p->ring[i].before));
        FY_TRY(e->backend->vt->event_create(e->backend, &p->ring[i].after));
    }
    return FY_OK;
}

/* Adds the oldest pair's wait to the stall; with `block`, waits for it. */
static bool resolve_oldest(fy_engine *e, bool block)
{
    struct eng_probes *p = e->probes;
    stall_probe *s = &p->ring[p->head];
    if (!block && !e->backend->vt->event_query(e->backend, s->after)) return false;
    if (block && e->backend->vt->event_synchronize(e->backend, s->after) != FY_OK) return false;
    double d = 0;
    if (e->backend->vt->event_elapsed(e->backend, s->before, s->after, &d) == FY_OK && d > 0) {
        pthread_mutex_lock(&e->stats_mu);
        e->stats.stall_time += d;
        pthread_mutex_unlock(&e->stats_mu);
    }
    p->head = (p->head + 1) % PROBE_CAP;
    p->count--;
    return true;
}

fy_status fy_eng_stall_wait(fy_engine *e, fy_event *ev, const char *name)
{
    if (!device_is_async(e)) {
        double t0 = fy_backend_now();
        FY_TRY(fy_backend_stream_wait_event(e->backend, FY_STREAM_COMPUTE, ev));
        fy_eng_stats_stall(e, name, t0, fy_backend_now());
        return FY_OK;
    }
    if (!e->probes) FY_TRY(probes_create(e));
    struct eng_probes *p = e->probes;
    pthread_mutex_lock(&p->mu);
    while (p->count > 0 && resolve_oldest(e, false)) {
    }
    if (p->count == PROBE_CAP) (void)resolve_oldest(e, true);
    stall_probe *s = &p->ring[(p->head + p->count) % PROBE_CAP];
    fy_status st = fy_backend_event_record(e->backend, s->before, FY_STREAM_COMPUTE);
    if (st == FY_OK) st = fy_backend_stream_wait_event(e->backend, FY_STREAM_COMPUTE, ev);
    if (st == FY_OK) st = fy_backend_event_record(e->backend, s->after, FY_STREAM_COMPUTE);
    if (st == FY_OK) p->count++;
    pthread_mutex_unlock(&p->mu);
    return st;
}

void fy_eng_stall_flush(fy_engine *e)
{
    struct eng_probes *p = e->probes;
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    while (p->count > 0)
        if (!resolve_oldest(e, true)) { /* a failed wait: drop the pair, keep going */
            p->head = (p->head + 1) % PROBE_CAP;
            p->count--;
        }
    pthread_mutex_unlock(&p->mu);
}

void fy_eng_stall_free(fy_engine *e)
{
    struct eng_probes *p = e->probes;
    if (!p) return;
    for (int i = 0; i < PROBE_CAP; i++) {
        if (p->ring[i].before) e->backend->vt->event_destroy(e->backend, p->ring[i].before);
        if (p->ring[i].after) e->backend->vt->event_destroy(e->backend, p->ring[i].after);
    }
    pthread_mutex_destroy(&p->mu);
    free(p);
    e->probes = NULL;
}
