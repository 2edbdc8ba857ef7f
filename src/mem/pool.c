/* Device pool: a budget in front of the backend's allocator. The backend may
 * have its own hard limit (the emulated device, a real GPU); the pool's
 * budget is the user's --max-memory and fails first, with a message that
 * names the allocation. */
#include "mem/pool.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct pool_block {
    void *ptr;
    size_t bytes;
    struct pool_block *next;
} pool_block;

struct fy_pool {
    fy_backend *backend;
    uint64_t budget, used, peak;
    pool_block *blocks; /* live allocations (few: slots, resident groups, activations) */
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
    *out = p;
    return FY_OK;
}

void fy_pool_free(fy_pool *p)
{
    if (!p) return;
    for (pool_block *k = p->blocks; k;) {
        pool_block *next = k->next;
        fy_backend_free_device(p->backend, k->ptr, k->bytes);
        free(k);
        k = next;
    }
    free(p);
}

static void notify(fy_pool *p)
{
    if (p->observer) p->observer(p->observer_user, p->used);
}

fy_status fy_pool_alloc(fy_pool *p, size_t bytes, const char *label, void **out)
{
    *out = NULL;
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
    fy_status s = fy_backend_alloc_device(p->backend, bytes, &k->ptr);
    if (s != FY_OK) {
        free(k);
        return fy_error_prefix(s, "%s: ", label ? label : "device allocation");
    }
    k->bytes = bytes;
    k->next = p->blocks;
    p->blocks = k;
    p->used += bytes;
    if (p->used > p->peak) p->peak = p->used;
    notify(p);
    *out = k->ptr;
    return FY_OK;
}

void fy_pool_release(fy_pool *p, void *ptr)
{
    if (!ptr) return;
    for (pool_block **at = &p->blocks; *at; at = &(*at)->next) {
        pool_block *k = *at;
        if (k->ptr != ptr) continue;
        *at = k->next;
        fy_backend_free_device(p->backend, k->ptr, k->bytes);
        p->used -= k->bytes;
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
