/* Device pool: a budget in front of the backend's allocator. The backend may
 * have its own hard limit (the emulated device, a real GPU); the pool's
 * budget is the user's --max-memory and fails first, with a message that
 * names the allocation.
 *
 * With caching on (a GPU: there cudaFree waits for the whole device), a
 * released block is kept and handed to the next allocation of about its
 * size, so per-forward buffers cost no allocator call after the first
 * forward. A cached block still counts against the budget and the peak (it
 * is the device's memory); cached blocks are given back when a new one would
 * not fit beside them. Stream order makes a reuse safe without a host wait:
 * at release an event is recorded on each stream, and at reuse each stream
 * waits for the other's, so the new owner's work on either stream comes
 * after everything the old owner queued. */
#include "mem/pool.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pool_block {
    void *ptr;
    size_t bytes;
    fy_event *released[2]; /* cached: recorded on the compute and the copy stream */
    struct pool_block *next;
} pool_block;

struct fy_pool {
    fy_backend *backend;
    uint64_t budget, used, peak;
    pool_block *blocks; /* live allocations (few: slots, resident groups, activations) */
    bool caching;
    uint64_t cached;    /* bytes of the blocks in cache */
    pool_block *cache;  /* released blocks kept for reuse */
    fy_pool_observer observer;
    void *observer_user;
};

const char *fy_format_bytes(uint64_t bytes, char *buf, size_t size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    if (u == 0) snprintf(buf, size, "%" PRIu64 " B", bytes);
    else snprintf(buf, size, "%.2f %s", v, units[u]);
    return buf;
}

fy_status fy_pool_create(fy_backend *b, uint64_t budget, fy_pool **out)
{
    fy_pool *p = calloc(1, sizeof *p);
    if (!p) return fy_error(FY_ERR_NOMEM, "device pool: out of memory");
    p->backend = b;
    p->budget = budget;
    p->caching = b && b->vt && strcmp(b->vt->name, "cuda") == 0;
    *out = p;
    return FY_OK;
}

static void destroy_events(fy_pool *p, pool_block *k)
{
    for (int s = 0; s < 2; s++)
        if (k->released[s]) p->backend->vt->event_destroy(p->backend, k->released[s]);
}

/* Gives a cached block back to the backend once both streams are past its
 * last use (cudaFree waits for the device anyway; the emulated device's
 * free does not). */
static void give_back(fy_pool *p, pool_block *k)
{
    for (int s = 0; s < 2; s++)
        if (k->released[s]) (void)p->backend->vt->event_synchronize(p->backend, k->released[s]);
    destroy_events(p, k);
    fy_backend_free_device(p->backend, k->ptr, k->bytes);
    free(k);
}

void fy_pool_trim(fy_pool *p)
{
    while (p->cache) {
        pool_block *k = p->cache;
        p->cache = k->next;
        p->cached -= k->bytes;
        give_back(p, k);
    }
}

void fy_pool_free(fy_pool *p)
{
    if (!p) return;
    fy_pool_trim(p);
    for (pool_block *k = p->blocks; k;) {
        pool_block *next = k->next;
        destroy_events(p, k);
        fy_backend_free_device(p->backend, k->ptr, k->bytes);
        free(k);
        k = next;
    }
    free(p);
}

void fy_pool_set_caching(fy_pool *p, bool on)
{
    p->caching = on;
    if (!on) fy_pool_trim(p);
}

uint64_t fy_pool_cached(const fy_pool *p)
{
    return p->cached;
}

static void notify(fy_pool *p)
{
    uint64_t held = p->used + p->cached;
    if (held > p->peak) p->peak = held;
    if (p->observer) p->observer(p->observer_user, held);
}

/* The cached block that best fits `bytes` (at most a quarter larger), taken
 * out of the cache and ordered after its last owner's work; NULL if none. */
static pool_block *take_cached(fy_pool *p, size_t bytes)
{
    pool_block **best = NULL;
    for (pool_block **at = &p->cache; *at; at = &(*at)->next) {
        size_t have = (*at)->bytes;
        if (have >= bytes && have - bytes <= bytes / 4 && (!best || have < (*best)->bytes)) best = at;
    }
    if (!best) return NULL;
    pool_block *k = *best;
    fy_backend *b = p->backend;
    if (fy_backend_stream_wait_event(b, FY_STREAM_COMPUTE, k->released[FY_STREAM_COPY]) != FY_OK ||
        fy_backend_stream_wait_event(b, FY_STREAM_COPY, k->released[FY_STREAM_COMPUTE]) != FY_OK)
        return NULL; /* left in the cache; a fresh block is used instead */
    *best = k->next;
    p->cached -= k->bytes;
    return k;
}

fy_status fy_pool_alloc(fy_pool *p, size_t bytes, const char *label, void **out)
{
    *out = NULL;
    pool_block *hit = p->caching ? take_cached(p, bytes) : NULL;
    if (hit) {
        hit->next = p->blocks;
        p->blocks = hit;
        p->used += hit->bytes;
        notify(p);
        *out = hit->ptr;
        return FY_OK;
    }
    /* Cached blocks make room for a new one that would not fit beside them. */
    if (p->cache && p->budget && p->used + p->cached + bytes > p->budget) fy_pool_trim(p);
    if (p->budget && p->used + bytes > p->budget) {
        char a[32], u[32], b[32];
        return fy_error(FY_ERR_BUDGET, "device memory: %s needs %s but only %s of the %s budget is free "
                        "(raise --max-memory or choose a smaller --offload plan)",
                        label ? label : "an allocation", fy_format_bytes(bytes, a, sizeof a),
                        fy_format_bytes(p->budget - p->used, u, sizeof u),
                        fy_format_bytes(p->budget, b, sizeof b));
    }
    pool_block *k = malloc(sizeof *k);
    if (!k) return fy_error(FY_ERR_NOMEM, "device pool: out of memory");
    k->released[0] = k->released[1] = NULL;
    fy_status s = fy_backend_alloc_device(p->backend, bytes, &k->ptr);
    if (s == FY_ERR_BUDGET && p->cache) { /* the device itself is full: the cache goes first */
        fy_pool_trim(p);
        s = fy_backend_alloc_device(p->backend, bytes, &k->ptr);
    }
    if (s != FY_OK) {
        free(k);
        return fy_error_prefix(s, "%s: ", label ? label : "device allocation");
    }
    k->bytes = bytes;
    k->next = p->blocks;
    p->blocks = k;
    p->used += bytes;
    notify(p);
    *out = k->ptr;
    return FY_OK;
}

/* Into the cache, with each stream's point of release recorded; false
 * (the caller frees it) when an event cannot be made. */
static bool keep_cached(fy_pool *p, pool_block *k)
{
    fy_backend *b = p->backend;
    for (int s = 0; s < 2; s++) {
        if (!k->released[s] && b->vt->event_create(b, &k->released[s]) != FY_OK) return false;
        if (fy_backend_event_record(b, k->released[s], (fy_stream)s) != FY_OK) return false;
    }
    k->next = p->cache;
    p->cache = k;
    p->cached += k->bytes;
    return true;
}

void fy_pool_release(fy_pool *p, void *ptr)
{
    if (!ptr) return;
    for (pool_block **at = &p->blocks; *at; at = &(*at)->next) {
        pool_block *k = *at;
        if (k->ptr != ptr) continue;
        *at = k->next;
        p->used -= k->bytes;
        if (p->caching && keep_cached(p, k)) {
            notify(p);
            return;
        }
        destroy_events(p, k);
        fy_backend_free_device(p->backend, k->ptr, k->bytes);
        free(k);
        notify(p);
        return;
    }
}

uint64_t fy_pool_used(const fy_pool *p)
{
    return p->used;
}

uint64_t fy_pool_peak(const fy_pool *p)
{
    return p->peak;
}

uint64_t fy_pool_budget(const fy_pool *p)
{
    return p->budget;
}

void fy_pool_set_observer(fy_pool *p, fy_pool_observer fn, void *user)
{
    p->observer = fn;
    p->observer_user = user;
}
