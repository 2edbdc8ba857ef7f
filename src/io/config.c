/* Component configuration files, read with cJSON. Every message starts with
 * the file's label so that a user with several config.json files open knows
 * which one to fix. */
#include "ferry/config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "io/regular_file.h"

/* Real configs are a few KiB; anything this large is the wrong file
 * (e.g. a weights file passed as a config) and is refused before reading. */
#define FY_CONFIG_MAX_BYTES (16u << 20)

struct fy_config {
    char *label;
    cJSON *root;
    size_t key_count;
    const char **keys;
};

static char *dup_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* ---- Parsing ------------------------------------------------------------- */

static void position_of(const char *text, size_t offset, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < offset && text[i]; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static fy_status not_json(const char *text, size_t offset, const char *label, const char *what)
{
    int line, col;
    position_of(text, offset, &line, &col);
    return fy_error(FY_ERR_FORMAT, "%s: not JSON (%s at line %d, column %d)", label, what, line, col);
}

static fy_status index_keys(fy_config *c)
{
    size_t n = (size_t)cJSON_GetArraySize(c->root);
    c->keys = calloc(n ? n : 1, sizeof *c->keys);
    if (!c->keys) return fy_error(FY_ERR_NOMEM, "%s: out of memory", c->label);
    for (const cJSON *item = c->root->child; item; item = item->next) {
        for (size_t j = 0; j < c->key_count; j++) {
            /* Python's json keeps the last duplicate, cJSON the first: refuse to guess. */
            if (strcmp(c->keys[j], item->string) == 0)
                return fy_error(FY_ERR_FORMAT, "%s: key \"%s\" appears twice", c->label, item->string);
        }
        c->keys[c->key_count++] = item->string;
    }
    return FY_OK;
}

static fy_status parse_root(fy_config *c, const char *text, size_t len)
{
    const char *end = NULL;
    if (len == 0) return fy_error(FY_ERR_FORMAT, "%s: not JSON (the file is empty)", c->label);
    c->root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!c->root) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        return not_json(text, at, c->label, "syntax error");
    }
    while (end < text + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')) end++;
    if (end < text + len) return not_json(text, (size_t)(end - text), c->label, "trailing data");
    if (!cJSON_IsObject(c->root))
        return fy_error(FY_ERR_FORMAT, "%s: expected a JSON object at the top level", c->label);
    return index_keys(c);
}

static fy_status parse_text(const char *text, size_t len, const char *label, fy_config **out)
{
    *out = NULL;
    fy_config *c = calloc(1, sizeof *c);
    if (!c) return fy_error(FY_ERR_NOMEM, "%s: out of memory", label);
    c->label = dup_string(label);
    if (!c->label) {
        free(c);
        return fy_error(FY_ERR_NOMEM, "%s: out of memory", label);
    }
    fy_status s = parse_root(c, text, len);
    if (s != FY_OK) {
        fy_config_free(c);
        return s;
    }
    *out = c;
    return FY_OK;
}

fy_status fy_config_parse(const char *text, const char *label, fy_config **out)
{
    if (!out) return fy_error(FY_ERR_INVALID, "fy_config_parse: out is NULL");
    *out = NULL;
    if (!label) label = "<config>";
    if (!text) return fy_error(FY_ERR_INVALID, "%s: no text to parse", label);
    return parse_text(text, strlen(text), label, out);
}

fy_status fy_config_load(const char *path, fy_config **out)
{
    if (!out) return fy_error(FY_ERR_INVALID, "fy_config_load: out is NULL");
    *out = NULL;
    if (!path) return fy_error(FY_ERR_INVALID, "fy_config_load: path is NULL");
    char *text = NULL;
    size_t len = 0;
    FY_TRY(fy_read_regular(path, FY_CONFIG_MAX_BYTES, "a config file", &text, &len));
    if (memchr(text, '\0', len)) {
        free(text);
        return fy_error(FY_ERR_FORMAT, "%s: not JSON (binary data)", path);
    }
    fy_status s = parse_text(text, len, path, out);
    free(text);
    return s;
}

void fy_config_free(fy_config *c)
{
    if (!c) return;
    cJSON_Delete(c->root);
    free(c->keys);
    free(c->label);
    free(c);
}

const char *fy_config_path(const fy_config *c)
{
    return c ? c->label : "";
}

/* ---- Lookups ------------------------------------------------------------- */

static const cJSON *lookup(const fy_config *c, const char *key)
{
    if (!c || !key) return NULL;
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(c->root, key);
    return cJSON_IsNull(item) ? NULL : item;
}

bool fy_config_has(const fy_config *c, const char *key)
{
    return lookup(c, key) != NULL;
}

static const char *kind_of(const cJSON *item)
{
    if (cJSON_IsString(item)) return "a string";
    if (cJSON_IsNumber(item)) return "a number";
    if (cJSON_IsBool(item)) return "a boolean";
    if (cJSON_IsArray(item)) return "an array";
    if (cJSON_IsObject(item)) return "an object";
    return "null";
}

static fy_status missing(const fy_config *c, const char *key)
{
    if (!c) return fy_error(FY_ERR_INVALID, "config lookup of \"%s\" on no config", key ? key : "");
    return fy_error(FY_ERR_NOT_FOUND, "%s: missing required key \"%s\"", c->label, key);
}

static fy_status wrong_kind(const fy_config *c, const char *key, const cJSON *item, const char *expected)
{
    return fy_error(FY_ERR_FORMAT, "%s: key \"%s\" is %s, expected %s", c->label, key, kind_of(item), expected);
}

/* JSON numbers are doubles; an integer key must hold an exact integer in range. */
static bool number_as_int(const cJSON *item, int64_t *out)
{
    double v = item->valuedouble;
    if (!isfinite(v) || v != floor(v) || v < -9223372036854775808.0 || v >= 9223372036854775808.0)
        return false;
    *out = (int64_t)v;
    return true;
}

static fy_status item_int(const fy_config *c, const char *key, const cJSON *item, int64_t *out)
{
    if (!cJSON_IsNumber(item)) return wrong_kind(c, key, item, "an integer");
    if (!number_as_int(item, out))
        return fy_error(FY_ERR_FORMAT, "%s: key \"%s\" is %g, expected an integer", c->label, key, item->valuedouble);
    return FY_OK;
}

fy_status fy_config_int(const fy_config *c, const char *key, int64_t *out)
{
    const cJSON *item = lookup(c, key);
    if (!item) return missing(c, key);
    return item_int(c, key, item, out);
}

fy_status fy_config_double(const fy_config *c, const char *key, double *out)
{
    const cJSON *item = lookup(c, key);
    if (!item) return missing(c, key);
    if (!cJSON_IsNumber(item)) return wrong_kind(c, key, item, "a number");
    *out = item->valuedouble;
    return FY_OK;
}

fy_status fy_config_bool(const fy_config *c, const char *key, bool *out)
{
    const cJSON *item = lookup(c, key);
    if (!item) return missing(c, key);
    if (!cJSON_IsBool(item)) return wrong_kind(c, key, item, "a boolean");
    *out = cJSON_IsTrue(item);
    return FY_OK;
}

fy_status fy_config_string(const fy_config *c, const char *key, const char **out)
{
    const cJSON *item = lookup(c, key);
    if (!item) return missing(c, key);
    if (!cJSON_IsString(item)) return wrong_kind(c, key, item, "a string");
    *out = item->valuestring;
    return FY_OK;
}

static fy_status array_items(const fy_config *c, const char *key, size_t max, size_t *n, const cJSON **arr)
{
    const cJSON *item = lookup(c, key);
    if (!item) return missing(c, key);
    if (!cJSON_IsArray(item)) return wrong_kind(c, key, item, "an array");
    size_t len = (size_t)cJSON_GetArraySize(item);
    if (len > max)
        return fy_error(FY_ERR_FORMAT, "%s: key \"%s\" has %zu entries, at most %zu expected", c->label, key, len, max);
    *n = len;
    *arr = item;
    return FY_OK;
}

fy_status fy_config_int_array(const fy_config *c, const char *key, int64_t *out, size_t max, size_t *n)
{
    const cJSON *arr = NULL;
    size_t len = 0;
    FY_TRY(array_items(c, key, max, &len, &arr));
    size_t i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        if (!cJSON_IsNumber(e) || !number_as_int(e, &out[i]))
            return fy_error(FY_ERR_FORMAT, "%s: key \"%s\" entry %zu is not an integer", c->label, key, i);
    }
    *n = len;
    return FY_OK;
}

fy_status fy_config_bool_array(const fy_config *c, const char *key, bool *out, size_t max, size_t *n)
{
    const cJSON *arr = NULL;
    size_t len = 0;
    FY_TRY(array_items(c, key, max, &len, &arr));
    size_t i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        if (!cJSON_IsBool(e))
            return fy_error(FY_ERR_FORMAT, "%s: key \"%s\" entry %zu is %s, expected a boolean", c->label, key, i,
                            kind_of(e));
        out[i] = cJSON_IsTrue(e);
    }
    *n = len;
    return FY_OK;
}

static fy_status check_range(const fy_config *c, const char *key, int64_t v, int64_t min, int64_t max)
{
    if (v < min || v > max)
        return fy_error(FY_ERR_FORMAT, "%s: key \"%s\" is %lld, expected an integer from %lld to %lld", c->label, key,
                        (long long)v, (long long)min, (long long)max);
    return FY_OK;
}

fy_status fy_config_int_range(const fy_config *c, const char *key, int64_t min, int64_t max, int64_t *out)
{
    FY_TRY(fy_config_int(c, key, out));
    return check_range(c, key, *out, min, max);
}

fy_status fy_config_int_range_or(const fy_config *c, const char *key, int64_t def, int64_t min, int64_t max,
                                 int64_t *out)
{
    FY_TRY(fy_config_int_or(c, key, def, out));
    return check_range(c, key, *out, min, max);
}

fy_status fy_config_int_array_range(const fy_config *c, const char *key, int64_t min, int64_t max, int64_t *out,
                                    size_t want)
{
    size_t n = 0;
    FY_TRY(fy_config_int_array(c, key, out, want, &n));
    if (n != want)
        return fy_error(FY_ERR_FORMAT, "%s: key \"%s\" has %zu entries, expected %zu", c->label, key, n, want);
    for (size_t i = 0; i < n; i++)
        if (out[i] < min || out[i] > max)
            return fy_error(FY_ERR_FORMAT, "%s: key \"%s\" entry %zu is %lld, expected an integer from %lld to %lld",
                            c->label, key, i, (long long)out[i], (long long)min, (long long)max);
    return FY_OK;
}

fy_status fy_config_double_array(const fy_config *c, const char *key, double *out, size_t max, size_t *n)
{
    const cJSON *arr = NULL;
    size_t len = 0;
    FY_TRY(array_items(c, key, max, &len, &arr));
    size_t i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        if (!cJSON_IsNumber(e))
            return fy_error(FY_ERR_FORMAT, "%s: key \"%s\" entry %zu is %s, expected a number", c->label, key, i,
                            kind_of(e));
        out[i] = e->valuedouble;
    }
    *n = len;
    return FY_OK;
}

fy_status fy_config_int_or(const fy_config *c, const char *key, int64_t def, int64_t *out)
{
    const cJSON *item = lookup(c, key);
    if (!item) {
        *out = def;
        return FY_OK;
    }
    return item_int(c, key, item, out);
}

fy_status fy_config_double_or(const fy_config *c, const char *key, double def, double *out)
{
    if (!lookup(c, key)) {
        *out = def;
        return FY_OK;
    }
    return fy_config_double(c, key, out);
}

fy_status fy_config_bool_or(const fy_config *c, const char *key, bool def, bool *out)
{
    if (!lookup(c, key)) {
        *out = def;
        return FY_OK;
    }
    return fy_config_bool(c, key, out);
}

fy_status fy_config_string_or(const fy_config *c, const char *key, const char *def, const char **out)
{
    if (!lookup(c, key)) {
        *out = def;
        return FY_OK;
    }
    return fy_config_string(c, key, out);
}

fy_status fy_config_pair(const fy_config *c, const char *key, const char **first, const char **second)
{
    const cJSON *item = lookup(c, key);
    if (!item) return missing(c, key);
    const cJSON *a = cJSON_GetArrayItem(item, 0);
    const cJSON *b = cJSON_GetArrayItem(item, 1);
    bool pair = cJSON_IsArray(item) && cJSON_GetArraySize(item) == 2;
    if (pair && cJSON_IsNull(a) && cJSON_IsNull(b)) {
        *first = *second = NULL;
        return FY_OK;
    }
    if (!pair || !cJSON_IsString(a) || !cJSON_IsString(b))
        return fy_error(FY_ERR_FORMAT, "%s: key \"%s\" is not a [\"library\", \"Class\"] pair", c->label, key);
    *first = a->valuestring;
    *second = b->valuestring;
    return FY_OK;
}

size_t fy_config_key_count(const fy_config *c)
{
    return c ? c->key_count : 0;
}

const char *fy_config_key_at(const fy_config *c, size_t i)
{
    return c && i < c->key_count ? c->keys[i] : NULL;
}
