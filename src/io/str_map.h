/* A byte-string -> int64 hash map (open addressing), for vocabularies and
 * merge ranks. Keys are copied. Zero-initialise before use. */
#ifndef FERRY_IO_STR_MAP_H
#define FERRY_IO_STR_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ferry/error.h"

typedef struct fy_str_map_slot {
    char *key;
    size_t len;
    int64_t value;
} fy_str_map_slot;

typedef struct fy_str_map {
    fy_str_map_slot *slots;
    size_t cap, count;
} fy_str_map;

/* Insert or replace. */
fy_status fy_str_map_put(fy_str_map *m, const char *key, size_t len, int64_t value);
bool fy_str_map_get(const fy_str_map *m, const char *key, size_t len, int64_t *value);
bool fy_str_map_has(const fy_str_map *m, const char *key, size_t len);
void fy_str_map_free(fy_str_map *m);

#endif
