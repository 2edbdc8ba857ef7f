/* A checkpoint: one safetensors file, or the shards a *.safetensors.index.json
 * names (the huggingface layout: {"metadata": {...}, "weight_map": {tensor: shard}}).
 *
 * The index and the shards must agree exactly: a tensor mapped to a shard
 * that lacks it, or a shard holding a tensor the index does not map there,
 * is an error, so a lookup never silently finds a stale copy. */
#include "ferry/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ferry/quant_gguf.h"
#include "io/regular_file.h"
#include "io/safetensors_internal.h"

#define INDEX_MAX_BYTES (256u << 20)

typedef struct set_entry {
    const fy_st_info *info;
    size_t file;
} set_entry;

struct fy_st_set {
    char *path;           /* the file or the index */
    fy_st_file **files;
    size_t nfiles;
    set_entry *entries;   /* sorted by name */
    size_t count;
    /* fy_st_set_from_file: the entries' own infos (new names, replaced data) */
    fy_st_info *own;
    char **own_names;
    void **own_data;
    float **f32;          /* [count]: dequantised copies (fy_st_set_view_f32), or NULL */
};

typedef struct map_entry {
    const char *tensor;
    const char *shard;
} map_entry;

void fy_st_set_free(fy_st_set *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->nfiles; i++) fy_st_close(s->files[i]);
    for (size_t i = 0; s->own && i < s->count; i++) {
        free(s->own_names[i]);
        free(s->own_data[i]);
    }
    free(s->own);
    free(s->own_names);
    free(s->own_data);
    for (size_t i = 0; s->f32 && i < s->count; i++) free(s->f32[i]);
    free(s->f32);
    free(s->files);
    free(s->entries);
    free(s->path);
    free(s);
}

static int cmp_entry(const void *a, const void *b)
{
    const set_entry *x = a, *y = b;
    return strcmp(x->info->name, y->info->name);
}

static int cmp_map(const void *a, const void *b)
{
    const map_entry *x = a, *y = b;
    return strcmp(x->tensor, y->tensor);
}

static int cmp_str(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Collect every tensor of every file, sorted by name; a name in two shards is an error. */
static fy_status build_entries(fy_st_set *s, const char *label)
{
    size_t total = 0;
    for (size_t i = 0; i < s->nfiles; i++) total += fy_st_count(s->files[i]);
    s->entries = malloc((total ? total : 1) * sizeof *s->entries);
    if (!s->entries) return fy_error(FY_ERR_NOMEM, "%s: out of memory", label);
    for (size_t i = 0; i < s->nfiles; i++)
        for (size_t j = 0; j < fy_st_count(s->files[i]); j++)
            s->entries[s->count++] = (set_entry){fy_st_at(s->files[i], j), i};
    qsort(s->entries, s->count, sizeof *s->entries, cmp_entry);
    for (size_t i = 1; i < s->count; i++)
        if (strcmp(s->entries[i - 1].info->name, s->entries[i].info->name) == 0)
            return fy_error(FY_ERR_FORMAT, "%s: tensor '%s' is in both %s and %s", label,
                            s->entries[i].info->name, fy_st_path(s->files[s->entries[i - 1].file]),
                            fy_st_path(s->files[s->entries[i].file]));
    return FY_OK;
}

static fy_status new_set(fy_st_set **out, const char *label)
{
    fy_st_set *s = calloc(1, sizeof *s);
    if (s) s->path = malloc(strlen(label) + 1);
    if (!s || !s->path) {
        free(s);
        return fy_error(FY_ERR_NOMEM, "%s: out of memory", label);
    }
    strcpy(s->path, label);
    *out = s;
    return FY_OK;
}

static fy_status open_single(const char *path, fy_st_set **out)
{
    fy_st_set *s = NULL;
    FY_TRY(new_set(&s, path));
    fy_status st = FY_OK;
    s->files = malloc(sizeof *s->files);
    if (!s->files) st = fy_error(FY_ERR_NOMEM, "%s: out of memory", path);
    if (st == FY_OK) st = fy_st_open(path, &s->files[0]);
    if (st == FY_OK) s->nfiles = 1;
    if (st == FY_OK) st = build_entries(s, path);
    if (st != FY_OK) {
        fy_st_set_free(s);
        return st;
    }
    *out = s;
    return FY_OK;
}

/* ---- The index file ----------------------------------------------------- */

static fy_status read_text(const char *path, char **out, size_t *len)
{
    return fy_read_regular(path, INDEX_MAX_BYTES, "a safetensors index", out, len);
}

/* Shard names are relative to the index: a path that climbs out is refused. */
static bool safe_shard_name(const char *name)
{
    if (name[0] == '\0' || name[0] == '/') return false;
    for (const char *p = name; *p; p++)
        if (p[0] == '.' && p[1] == '.' && (p == name || p[-1] == '/') && (p[2] == '/' || p[2] == '\0'))
            return false;
    return true;
}

static fy_status parse_weight_map(const char *path, const cJSON *root, map_entry **out, size_t *count)
{
    const cJSON *wm = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(wm))
        return fy_error(FY_ERR_FORMAT, "%s: index has no \"weight_map\" object", path);
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "metadata");
    if (meta && !cJSON_IsObject(meta) && !cJSON_IsNull(meta))
        return fy_error(FY_ERR_FORMAT, "%s: index \"metadata\" is not an object", path);
    size_t n = (size_t)cJSON_GetArraySize(wm);
    map_entry *m = malloc((n ? n : 1) * sizeof *m);
    if (!m) return fy_error(FY_ERR_NOMEM, "%s: out of memory", path);
    size_t k = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, wm) {
        if (!cJSON_IsString(item) || !safe_shard_name(item->valuestring)) {
            free(m);
            return fy_error(FY_ERR_FORMAT,
                            "%s: weight_map value is not a shard file name beside the index (tensor '%s')",
                            path, item->string ? item->string : "");
        }
        m[k++] = (map_entry){item->string ? item->string : "", item->valuestring};
    }
    qsort(m, k, sizeof *m, cmp_map);
    for (size_t i = 1; i < k; i++)
        if (strcmp(m[i - 1].tensor, m[i].tensor) == 0) {
            fy_status s = fy_error(FY_ERR_FORMAT, "%s: weight_map names a tensor twice (tensor '%s')",
                                   path, m[i].tensor);
            free(m);
            return s;
        }
    *out = m;
    *count = k;
    return FY_OK;
}

static char *join_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s%s%s", dir, dir[0] ? "/" : "", name);
    return p;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        char *p = malloc(2);
        if (p) strcpy(p, ".");
        return p;
    }
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, path, n);
        p[n] = '\0';
    }
    return p;
}

/* Open each distinct shard once, in name order (00001, 00002, ...). */
static fy_status open_shards(fy_st_set *s, const char *index, const map_entry *m, size_t n,
                             const char ***names_out)
{
    const char **names = malloc((n ? n : 1) * sizeof *names);
    if (!names) return fy_error(FY_ERR_NOMEM, "%s: out of memory", index);
    *names_out = names;
    for (size_t i = 0; i < n; i++) names[i] = m[i].shard;
    qsort(names, n, sizeof *names, cmp_str);
    size_t unique = 0;
    for (size_t i = 0; i < n; i++)
        if (unique == 0 || strcmp(names[unique - 1], names[i]) != 0) names[unique++] = names[i];
    s->files = calloc(unique ? unique : 1, sizeof *s->files);
    if (!s->files) return fy_error(FY_ERR_NOMEM, "%s: out of memory", index);
    char *dir = dir_of(index);
    if (!dir) return fy_error(FY_ERR_NOMEM, "%s: out of memory", index);
    fy_status st = FY_OK;
    for (size_t i = 0; i < unique && st == FY_OK; i++) {
        char *path = join_path(dir, names[i]);
        if (!path) {
            st = fy_error(FY_ERR_NOMEM, "%s: out of memory", index);
            break;
        }
        st = fy_st_open(path, &s->files[i]);
        if (st == FY_ERR_NOT_FOUND)
            st = fy_error(FY_ERR_NOT_FOUND, "%s: shard %s named by the index is missing (looked for %s)",
                          index, names[i], path);
        else if (st == FY_OK)
            s->nfiles++;
        free(path);
    }
    free(dir);
    return st;
}

static size_t shard_slot(const char **names, size_t nfiles, const char *shard)
{
    size_t lo = 0, hi = nfiles;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(names[mid], shard);
        if (c == 0) return mid;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return nfiles;
}

/* Every mapped tensor is in its shard, and every shard tensor is mapped there. */
static fy_status check_agreement(const fy_st_set *s, const char *index, const map_entry *m, size_t n,
                                 const char **names)
{
    for (size_t i = 0; i < n; i++) {
        size_t slot = shard_slot(names, s->nfiles, m[i].shard);
        if (!fy_st_find(s->files[slot], m[i].tensor))
            return fy_error(FY_ERR_FORMAT,
                            "%s: the index maps tensor '%s' to %s, which does not hold it",
                            index, m[i].tensor, fy_st_path(s->files[slot]));
    }
    for (size_t i = 0; i < s->count; i++) {
        const set_entry *e = &s->entries[i];
        map_entry key = {e->info->name, NULL};
        const map_entry *hit = bsearch(&key, m, n, sizeof *m, cmp_map);
        if (!hit)
            return fy_error(FY_ERR_FORMAT, "%s: %s holds tensor '%s', which the index does not list",
                            index, fy_st_path(s->files[e->file]), e->info->name);
        if (shard_slot(names, s->nfiles, hit->shard) != e->file)
            return fy_error(FY_ERR_FORMAT, "%s: %s holds tensor '%s', which the index maps to %s",
                            index, fy_st_path(s->files[e->file]), e->info->name, hit->shard);
    }
    return FY_OK;
}

static fy_status open_index(const char *path, fy_st_set **out)
{
    char *text = NULL;
    size_t len = 0;
    FY_TRY(read_text(path, &text, &len));
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root) return fy_error(FY_ERR_FORMAT, "%s: index is not JSON", path);
    map_entry *m = NULL;
    size_t n = 0;
    const char **names = NULL;
    fy_st_set *s = NULL;
    fy_status st = parse_weight_map(path, root, &m, &n);
    if (st == FY_OK) st = new_set(&s, path);
    if (st == FY_OK) st = open_shards(s, path, m, n, &names);
    if (st == FY_OK) st = build_entries(s, path);
    if (st == FY_OK) st = check_agreement(s, path, m, n, names);
    free(names);
    free(m);
    cJSON_Delete(root);
    if (st != FY_OK) {
        fy_st_set_free(s);
        return st;
    }
    *out = s;
    return FY_OK;
}

fy_status fy_st_set_open(const char *path, fy_st_set **out)
{
    *out = NULL;
    if (ends_with(path, ".json")) return open_index(path, out);
    return open_single(path, out);
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

fy_status fy_st_set_open_dir(const char *dir, const char *stem, fy_st_set **out)
{
    *out = NULL;
    size_t n = strlen(dir) + strlen(stem) + 40;
    char *single = malloc(n), *index = malloc(n);
    fy_status st;
    if (!single || !index) {
        st = fy_error(FY_ERR_NOMEM, "%s: out of memory", dir);
    } else {
        snprintf(single, n, "%s/%s.safetensors", dir, stem);
        snprintf(index, n, "%s/%s.safetensors.index.json", dir, stem);
        if (is_file(single)) st = fy_st_set_open(single, out);
        else if (is_file(index)) st = fy_st_set_open(index, out);
        else
            st = fy_error(FY_ERR_NOT_FOUND, "%s: no weights: looked for %s.safetensors and "
                          "%s.safetensors.index.json",
                          dir, stem, stem);
    }
    free(single);
    free(index);
    return st;
}

/* ---- Queries ------------------------------------------------------------ */

size_t fy_st_set_count(const fy_st_set *s)
{
    return s->count;
}

size_t fy_st_set_file_count(const fy_st_set *s)
{
    return s->nfiles;
}

const fy_st_file *fy_st_set_file(const fy_st_set *s, size_t i)
{
    return i < s->nfiles ? s->files[i] : NULL;
}

const fy_st_info *fy_st_set_at(const fy_st_set *s, size_t i)
{
    return i < s->count ? s->entries[i].info : NULL;
}

static const set_entry *find_entry(const fy_st_set *s, const char *name)
{
    size_t lo = 0, hi = s->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->entries[mid].info->name, name);
        if (c == 0) return &s->entries[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const fy_st_info *fy_st_set_find(const fy_st_set *s, const char *name)
{
    const set_entry *e = find_entry(s, name);
    return e ? e->info : NULL;
}

const fy_st_file *fy_st_set_file_of(const fy_st_set *s, const char *name)
{
    const set_entry *e = find_entry(s, name);
    return e ? s->files[e->file] : NULL;
}

fy_status fy_st_set_view(const fy_st_set *s, const char *name, fy_tensor *out)
{
    const set_entry *e = find_entry(s, name);
    if (!e) return fy_error(FY_ERR_NOT_FOUND, "%s: no tensor '%s'", s->path, name);
    return fy_st_view_info(s->files[e->file], e->info, out);
}

/* ---- Renamed sets (single-file checkpoints) ------------------------------ */

static fy_status copy_renamed(fy_st_set *s, const char *const *names)
{
    fy_st_file *f = s->files[0];
    size_t n = fy_st_count(f);
    s->own = calloc(n ? n : 1, sizeof *s->own);
    s->own_names = calloc(n ? n : 1, sizeof *s->own_names);
    s->own_data = calloc(n ? n : 1, sizeof *s->own_data);
    s->entries = calloc(n ? n : 1, sizeof *s->entries);
    if (!s->own || !s->own_names || !s->own_data || !s->entries)
        return fy_error(FY_ERR_NOMEM, "%s: out of memory", s->path);
    for (size_t i = 0; i < n; i++) {
        if (!names[i]) continue;
        size_t k = s->count;
        s->own_names[k] = malloc(strlen(names[i]) + 1);
        if (!s->own_names[k]) return fy_error(FY_ERR_NOMEM, "%s: out of memory", s->path);
        strcpy(s->own_names[k], names[i]);
        s->own[k] = *fy_st_at(f, i);
        s->own[k].name = s->own_names[k];
        s->entries[k] = (set_entry){&s->own[k], 0};
        s->count++;
    }
    return FY_OK;
}

/* Two tensors renamed alike: named by their names in the file. */
static fy_status check_renamed_unique(const fy_st_set *s, const char *const *names)
{
    const fy_st_file *f = s->files[0];
    for (size_t i = 1; i < s->count; i++) {
        const char *name = s->entries[i].info->name;
        if (strcmp(s->entries[i - 1].info->name, name) != 0) continue;
        const char *first = NULL, *second = NULL;
        for (size_t j = 0; j < fy_st_count(f); j++) {
            if (!names[j] || strcmp(names[j], name) != 0) continue;
            if (!first) first = fy_st_at(f, j)->name;
            else if (!second) second = fy_st_at(f, j)->name;
        }
        return fy_error(FY_ERR_FORMAT, "%s: tensors '%s' and '%s' both stand for '%s'", s->path,
                        first ? first : "?", second ? second : "?", name);
    }
    return FY_OK;
}

fy_status fy_st_set_from_file(fy_st_file *f, const char *const *names, fy_st_set **out)
{
    *out = NULL;
    fy_st_set *s = NULL;
    fy_status st = new_set(&s, fy_st_path(f));
    if (st != FY_OK) {
        fy_st_close(f);
        return st;
    }
    s->files = malloc(sizeof *s->files);
    if (!s->files) {
        fy_st_close(f);
        fy_st_set_free(s);
        return fy_error(FY_ERR_NOMEM, "%s: out of memory", fy_st_path(f));
    }
    s->files[0] = f;
    s->nfiles = 1;
    st = copy_renamed(s, names);
    if (st == FY_OK) {
        qsort(s->entries, s->count, sizeof *s->entries, cmp_entry);
        st = check_renamed_unique(s, names);
    }
    if (st != FY_OK) {
        fy_st_set_free(s);
        return st;
    }
    *out = s;
    return FY_OK;
}

fy_status fy_st_set_replace(fy_st_set *s, const char *name, fy_dtype dtype, void *data)
{
    set_entry *e = (set_entry *)find_entry(s, name);
    if (!e || !s->own) {
        free(data);
        return fy_error(FY_ERR_INVALID, "%s: no renamed tensor '%s' to replace", s->path, name);
    }
    size_t k = (size_t)(e->info - s->own);
    fy_st_info *info = &s->own[k];
    uint64_t numel = 1;
    for (int d = 0; d < info->ndim; d++) numel *= (uint64_t)info->shape[d];
    free(s->own_data[k]);
    s->own_data[k] = data;
    info->dtype = dtype;
    info->data = data;
    info->nbytes = numel * fy_dtype_size(dtype);
    return FY_OK;
}

fy_status fy_st_set_view_f32(fy_st_set *s, const char *name, fy_tensor *out)
{
    FY_TRY(fy_st_set_view(s, name, out));
    if (!fy_dtype_is_quant(out->dtype)) return FY_OK;
    size_t i = (size_t)(find_entry(s, name) - s->entries);
    if (!s->f32) s->f32 = calloc(s->count, sizeof *s->f32);
    if (!s->f32) return fy_error(FY_ERR_NOMEM, "%s: out of memory", s->path);
    int64_t n = fy_tensor_numel(out);
    if (!s->f32[i]) {
        s->f32[i] = malloc((size_t)(n ? n : 1) * sizeof(float));
        if (!s->f32[i]) return fy_error(FY_ERR_NOMEM, "%s: out of memory for tensor '%s' in f32", s->path, name);
        fy_gguf_dequantize_blocks(s->f32[i], out->data, out->dtype, n / (int64_t)fy_dtype_block(out->dtype));
    }
    *out = fy_tensor_wrap(s->f32[i], FY_F32, out->ndim, out->shape, FY_HOST);
    return FY_OK;
}

fy_status fy_st_set_check_unchanged(const fy_st_set *s)
{
    for (size_t i = 0; s && i < s->nfiles; i++) FY_TRY(fy_st_check_unchanged(s->files[i]));
    return FY_OK;
}
