#include "ferry/arena.h"

#include <stdint.h>
#include <stdlib.h>

struct fy_arena {
    char *base;
    size_t capacity;
    size_t used;
    size_t peak;
};

fy_status fy_arena_create(size_t capacity, fy_arena **out)
{
    *out = NULL;
    fy_arena *a = calloc(1, sizeof *a);
    if (!a) return fy_error(FY_ERR_NOMEM, "out of host memory creating an arena");
    a->base = capacity ? aligned_alloc(64, (capacity + 63) / 64 * 64) : NULL;
    if (capacity && !a->base) {
        free(a);
        return fy_error(FY_ERR_NOMEM, "out of host memory for a %zu-byte arena", capacity);
    }
    a->capacity = capacity;
    *out = a;
    return FY_OK;
}

void fy_arena_free(fy_arena *a)
{
    if (!a) return;
    free(a->base);
    free(a);
}

void *fy_arena_alloc(fy_arena *a, size_t bytes, size_t align)
{
    if (align < 16) align = 16;
    uintptr_t start = ((uintptr_t)a->base + a->used + (align - 1)) & ~(uintptr_t)(align - 1);
    size_t offset = (size_t)(start - (uintptr_t)a->base);
    if (offset > a->capacity || bytes > a->capacity - offset) {
        fy_error(FY_ERR_NOMEM, "arena of %zu bytes is full (%zu used, %zu more asked)", a->capacity,
                 a->used, bytes);
        return NULL;
    }
    a->used = offset + bytes;
    if (a->used > a->peak) a->peak = a->used;
    return a->base + offset;
}

size_t fy_arena_mark(const fy_arena *a) { return a->used; }
void fy_arena_reset(fy_arena *a, size_t mark) { if (mark <= a->used) a->used = mark; }
size_t fy_arena_used(const fy_arena *a) { return a->used; }
size_t fy_arena_peak(const fy_arena *a) { return a->peak; }
size_t fy_arena_capacity(const fy_arena *a) { return a->capacity; }
