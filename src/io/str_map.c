/* Byte-string hash map: FNV-1a, linear probing, kept under half full. */
#include "io/str_map.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash(const char *key, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)key[i]) * 1099511628211ull;
    return h;
}

static fy_str_map_slot *find(const fy_str_map *m, const char *key, size_t len)
{
    if (!m->cap) return NULL;
    for (size_t i = hash(key, len) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        fy_str_map_slot *s = &m->slots[i];
        if (!s->key || (s->len == len && !memcmp(s->key, key, len))) return s;
    }
}

static fy_status grow(fy_str_map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 256;
    fy_str_map_slot *old = m->slots, *slots = calloc(cap, sizeof *slots);
    if (!slots) return fy_error(FY_ERR_NOMEM, "out of memory");
    size_t old_cap = m->cap;
    m->slots = slots, m->cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].key) *find(m, old[i].key, old[i].len) = old[i];
    free(old);
    return FY_OK;
}

fy_status fy_str_map_put(fy_str_map *m, const char *key, size_t len, int64_t value)
{
    if ((m->count + 1) * 2 > m->cap) FY_TRY(grow(m));
    fy_str_map_slot *s = find(m, key, len);
    if (!s->key) {
        s->key = malloc(len + 1);
        if (!s->key) return fy_error(FY_ERR_NOMEM, "out of memory");
        memcpy(s->key, key, len);
        s->key[len] = 0;
        s->len = len;
        m->count++;
    }
    s->value = value;
    return FY_OK;
}

bool fy_str_map_get(const fy_str_map *m, const char *key, size_t len, int64_t *value)
{
    const fy_str_map_slot *s = find(m, key, len);
    if (!s || !s->key) return false;
    if (value) *value = s->value;
    return true;
}

bool fy_str_map_has(const fy_str_map *m, const char *key, size_t len)
{
    return fy_str_map_get(m, key, len, NULL);
}

void fy_str_map_free(fy_str_map *m)
{
    for (size_t i = 0; i < m->cap; i++) free(m->slots[i].key);
    free(m->slots);
    memset(m, 0, sizeof *m);
}
