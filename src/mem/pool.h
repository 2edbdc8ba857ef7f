/* The device pool: every device allocation goes through it, under the
 * budget, with current and peak tracking. */
#ifndef FERRY_MEM_POOL_H
#define FERRY_MEM_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ferry/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fy_pool fy_pool;

/* Called after every change with the device bytes held, cache included (for
 * the trace's counter). */
typedef void (*fy_pool_observer)(void *user, uint64_t used);

/* budget 0 = unlimited. */
fy_status fy_pool_create(fy_backend *b, uint64_t budget, fy_pool **out);
/* Frees whatever is still allocated. */
void fy_pool_free(fy_pool *p);
/* FY_ERR_BUDGET naming the label, the size, what is in use and the budget. */
fy_status fy_pool_alloc(fy_pool *p, size_t bytes, const char *label, void **out);
void fy_pool_release(fy_pool *p, void *ptr);
/* Bytes held by live allocations (the cache not counted). */
uint64_t fy_pool_used(const fy_pool *p);
/* The most device memory held at once: live allocations and the cache. */
uint64_t fy_pool_peak(const fy_pool *p);
/* Caching (on by default on a cuda backend, off elsewhere): released blocks
 * are kept for allocations of about their size, still counted against the
 * budget; turning it off gives them back. */
void fy_pool_set_caching(fy_pool *p, bool on);
uint64_t fy_pool_cached(const fy_pool *p);
/* Gives every cached block back to the backend. */
void fy_pool_trim(fy_pool *p);
uint64_t fy_pool_budget(const fy_pool *p);
void fy_pool_set_observer(fy_pool *p, fy_pool_observer fn, void *user);

/* "1.50 GiB" into buf. */
const char *fy_format_bytes(uint64_t bytes, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
