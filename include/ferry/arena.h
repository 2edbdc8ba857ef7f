/* A bump allocator for per-step scratch: allocations are freed together by
 * resetting to a mark, so a step's temporaries cost no malloc/free pairs. */
#ifndef FERRY_ARENA_H
#define FERRY_ARENA_H

#include <stddef.h>
#include "ferry/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fy_arena fy_arena;

/* capacity bytes of host memory, fixed for the arena's life. */
fy_status fy_arena_create(size_t capacity, fy_arena **out);
void fy_arena_free(fy_arena *a);

/* NULL (with FY_ERR_NOMEM set) when the arena is full. align is a power of two. */
void *fy_arena_alloc(fy_arena *a, size_t bytes, size_t align);
size_t fy_arena_mark(const fy_arena *a);
void fy_arena_reset(fy_arena *a, size_t mark);
size_t fy_arena_used(const fy_arena *a);
size_t fy_arena_peak(const fy_arena *a);
size_t fy_arena_capacity(const fy_arena *a);

#ifdef __cplusplus
}
#endif
#endif
