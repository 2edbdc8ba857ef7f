/* Component configuration files (config.json, scheduler_config.json,
 * model_index.json). Lookups of required keys fail with a message naming the
 * file and the key; optional lookups take a default but still reject a value
 * of the wrong type. JSON null counts as absent (diffusers writes nulls). */
#ifndef FERRY_CONFIG_H
#define FERRY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ferry/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fy_config fy_config;

fy_status fy_config_load(const char *path, fy_config **out);
/* text is parsed; label names it in messages (a path or "<builtin>"). */
fy_status fy_config_parse(const char *text, const char *label, fy_config **out);
void fy_config_free(fy_config *c);
const char *fy_config_path(const fy_config *c);

/* Present and not null. */
bool fy_config_has(const fy_config *c, const char *key);

fy_status fy_config_int(const fy_config *c, const char *key, int64_t *out);
fy_status fy_config_double(const fy_config *c, const char *key, double *out);
fy_status fy_config_bool(const fy_config *c, const char *key, bool *out);
/* Borrowed; valid until fy_config_free. */
fy_status fy_config_string(const fy_config *c, const char *key, const char **out);
/* Arrays of numbers; *n gets the length, FY_ERR_FORMAT if longer than max. */
fy_status fy_config_int_array(const fy_config *c, const char *key, int64_t *out, size_t max, size_t *n);
fy_status fy_config_double_array(const fy_config *c, const char *key, double *out, size_t max, size_t *n);

fy_status fy_config_bool_array(const fy_config *c, const char *key, bool *out, size_t max, size_t *n);

/* Integers used in arithmetic (sizes, factors, divisors): refused outside
 * [min, max] with a message naming the file, the key and the range. */
fy_status fy_config_int_range(const fy_config *c, const char *key, int64_t min, int64_t max, int64_t *out);
fy_status fy_config_int_range_or(const fy_config *c, const char *key, int64_t def, int64_t min, int64_t max,
                                 int64_t *out);
/* Exactly want entries, each in [min, max]. */
fy_status fy_config_int_array_range(const fy_config *c, const char *key, int64_t min, int64_t max, int64_t *out,
                                    size_t want);

fy_status fy_config_int_or(const fy_config *c, const char *key, int64_t def, int64_t *out);
fy_status fy_config_double_or(const fy_config *c, const char *key, double def, double *out);
fy_status fy_config_bool_or(const fy_config *c, const char *key, bool def, bool *out);
fy_status fy_config_string_or(const fy_config *c, const char *key, const char *def, const char **out);

/* For model_index.json: ["library", "Class"] pairs; both NULL when the entry is [null, null]. */
fy_status fy_config_pair(const fy_config *c, const char *key, const char **first, const char **second);
/* Keys of the top-level object in file order (borrowed). */
size_t fy_config_key_count(const fy_config *c);
const char *fy_config_key_at(const fy_config *c, size_t i);

#ifdef __cplusplus
}
#endif
#endif
