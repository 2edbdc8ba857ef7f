/* Reading one safetensors file.
 *
 * The whole header is validated at open, following the rules of the reference
 * Rust crate (huggingface/safetensors): a header of at most 100 MB of UTF-8
 * JSON, known dtypes, shape x dtype bits == bytes (and a whole number of
 * bytes), offsets that tile the data section exactly, no duplicate names.
 * After that every fy_st_info points inside the mapping, so later reads need
 * no checks. Only the header pages are touched: MADV_RANDOM keeps the kernel
 * from reading ahead into tensor data that nobody asked for.
 *
 * A GGUF file (magic "GGUF", or a .gguf name) is parsed by io/gguf_read.c
 * into the same structure: views, the disk tier and the change check then
 * serve both formats. */
#include "ferry/safetensors.h"
#include "ferry/log.h"
#include "io/regular_file.h"
#include "io/safetensors_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The Rust crate's MAX_HEADER_SIZE: anything larger is not a real header. */
#define ST_MAX_HEADER 100000000ull
/* cJSON keeps numbers as doubles: integers above 2^53 are not exact. */
#define ST_MAX_EXACT_INT 9007199254740992.0

char *fy_st_dup_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* ---- Open mappings, for fy_st_locate ------------------------------------ */

/* Every mapped file open in the process: the offload engine's disk tier turns
 * a borrowed weight view back into (file, offset) without the models having
 * to pass their files along. */
static pthread_mutex_t open_mu = PTHREAD_MUTEX_INITIALIZER;
static fy_st_file **open_files;
static size_t open_count, open_cap;

static void register_open(fy_st_file *f)
{
    pthread_mutex_lock(&open_mu);
    if (open_count == open_cap) {
        size_t cap = open_cap ? open_cap * 2 : 16;
        fy_st_file **p = realloc(open_files, cap * sizeof *p);
        if (p) {
            open_files = p;
            open_cap = cap;
        }
    }
    if (open_count < open_cap) open_files[open_count++] = f; /* else: not locatable, reads stay mapped */
    pthread_mutex_unlock(&open_mu);
}

static void unregister_open(fy_st_file *f)
{
    pthread_mutex_lock(&open_mu);
    for (size_t i = 0; i < open_count; i++)
        if (open_files[i] == f) {
            open_files[i] = open_files[--open_count];
            break;
        }
    if (!open_count) {
        free(open_files);
        open_files = NULL;
        open_cap = 0;
    }
    pthread_mutex_unlock(&open_mu);
}

fy_status fy_st_locate(const void *data, uint64_t nbytes, char *path, size_t path_size, uint64_t *file_offset)
{
    const uint8_t *p = data;
    bool found = false;
    pthread_mutex_lock(&open_mu);
    for (size_t i = 0; i < open_count && !found; i++) {
        const fy_st_file *f = open_files[i];
        if (p < f->base || p > f->base + f->size || nbytes > (uint64_t)(f->base + f->size - p)) continue;
        snprintf(path, path_size, "%s", f->path);
        *file_offset = (uint64_t)(p - f->base);
        found = true;
    }
    pthread_mutex_unlock(&open_mu);
    if (found) return FY_OK;
    return fy_error(FY_ERR_NOT_FOUND, "%llu bytes at %p are not in an open safetensors file",
                    (unsigned long long)nbytes, data);
}

void fy_st_close(fy_st_file *f)
{
    if (!f) return;
    if (f->mapped && !f->copy) unregister_open(f);
    for (size_t i = 0; i < f->count; i++) free((char *)f->tensors[i].name);
    for (size_t i = 0; i < f->meta_count; i++) {
        free(f->meta[i].key);
        free(f->meta[i].value);
    }
    free(f->meta);
    free(f->tensors);
    free(f->by_name);
    if (f->mapped && !f->copy) munmap((void *)f->base, f->size);
    if (f->copy) munmap(f->copy, f->copy_size);
    free(f->path);
    free(f);
}

/* ---- Small validators --------------------------------------------------- */

bool fy_st_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
        else return false;
        if (n - i < len) return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        /* Overlong forms, surrogates and code points past U+10FFFF. */
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return false;
        i += len;
    }
    return true;
}

static bool json_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool json_u64(const cJSON *item, uint64_t *out)
{
    if (!cJSON_IsNumber(item)) return false;
    double d = item->valuedouble;
    if (!(d >= 0.0) || d > ST_MAX_EXACT_INT) return false;
    uint64_t v = (uint64_t)d;
    if ((double)v != d) return false;
    *out = v;
    return true;
}

static const char *tensor_name_of(const cJSON *entry)
{
    return entry->string ? entry->string : "";
}

/* ---- One header entry --------------------------------------------------- */

static fy_status parse_shape(const char *label, const cJSON *entry, fy_st_info *t)
{
    const char *name = tensor_name_of(entry);
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    if (!cJSON_IsArray(shape))
        return fy_error(FY_ERR_FORMAT, "%s: \"shape\" is missing or not an array (tensor '%s')",
                        label, name);
    int rank = cJSON_GetArraySize(shape);
    if (rank > FY_ST_MAX_DIMS)
        return fy_error(FY_ERR_UNSUPPORTED, "%s: rank %d is above ferry's limit of %d (tensor '%s')",
                        label, rank, FY_ST_MAX_DIMS, name);
    t->ndim = rank;
    int d = 0;
    const cJSON *dim;
    cJSON_ArrayForEach(dim, shape) {
        uint64_t v;
        if (!json_u64(dim, &v) || v > (uint64_t)INT64_MAX)
            return fy_error(FY_ERR_FORMAT,
                            "%s: \"shape\" holds something other than a non-negative integer (tensor '%s')",
                            label, name);
        t->shape[d++] = (int64_t)v;
    }
    return FY_OK;
}

static fy_status parse_offsets(const char *label, const cJSON *entry, fy_st_info *t)
{
    const char *name = tensor_name_of(entry);
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    uint64_t begin, end;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        !json_u64(cJSON_GetArrayItem(offs, 0), &begin) ||
        !json_u64(cJSON_GetArrayItem(offs, 1), &end))
        return fy_error(FY_ERR_FORMAT,
                        "%s: \"data_offsets\" is not [begin, end] with two non-negative integers (tensor '%s')",
                        label, name);
    if (begin > end)
        return fy_error(FY_ERR_FORMAT,
                        "%s: data_offsets [%" PRIu64 ", %" PRIu64 "] end before they begin (tensor '%s')",
                        label, begin, end, name);
    t->offset = begin;
    t->nbytes = end - begin;
    return FY_OK;
}

/* shape x dtype bits must be exactly the bytes the offsets span. */
static fy_status check_size(const char *label, const fy_st_info *t)
{
    uint64_t bits = fy_dtype_bits(t->dtype);
    for (int d = 0; d < t->ndim; d++) {
        uint64_t dim = (uint64_t)t->shape[d];
        if (dim != 0 && bits > UINT64_MAX / dim)
            return fy_error(FY_ERR_FORMAT, "%s: shape overflows 64-bit sizes (tensor '%s')", label,
                            t->name);
        bits *= dim;
    }
    if (bits % 8 != 0)
        return fy_error(FY_ERR_FORMAT,
                        "%s: %" PRIu64 " bits of %s are not a whole number of bytes (tensor '%s')",
                        label, bits, fy_dtype_safetensors_name(t->dtype), t->name);
    if (bits / 8 != t->nbytes)
        return fy_error(FY_ERR_FORMAT,
                        "%s: shape x %s needs %" PRIu64 " bytes but data_offsets span %" PRIu64
                        " (tensor '%s')",
                        label, fy_dtype_safetensors_name(t->dtype), bits / 8, t->nbytes, t->name);
    return FY_OK;
}

static fy_status parse_entry(const char *label, const cJSON *entry, fy_st_info *t)
{
    const char *name = tensor_name_of(entry);
    if (!cJSON_IsObject(entry))
        return fy_error(FY_ERR_FORMAT, "%s: header entry is not an object (tensor '%s')", label,
                        name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    if (!cJSON_IsString(dtype))
        return fy_error(FY_ERR_FORMAT, "%s: \"dtype\" is missing or not a string (tensor '%s')",
                        label, name);
    if (fy_dtype_from_safetensors(dtype->valuestring, &t->dtype) != FY_OK)
        return fy_error(FY_ERR_FORMAT, "%s: unknown dtype \"%s\" (tensor '%s')", label,
                        dtype->valuestring, name);
    FY_TRY(parse_shape(label, entry, t));
    FY_TRY(parse_offsets(label, entry, t));
    return FY_OK;
}

/* ---- Whole-header checks ------------------------------------------------ */

static int cmp_by_offset(const void *a, const void *b)
{
    const fy_st_info *x = a, *y = b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_info_name(const void *a, const void *b)
{
    const fy_st_info *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* Tensors must tile the data section: no gap, no overlap, nothing after. */
static fy_status check_layout(fy_st_file *f)
{
    uint64_t expect = 0;
    const char *prev = NULL;
    for (size_t i = 0; i < f->count; i++) {
        const fy_st_info *t = &f->tensors[i];
        uint64_t end = t->offset + t->nbytes;
        if (end > f->data_size)
            return fy_error(FY_ERR_FORMAT,
                            "%s: data_offsets end at %" PRIu64 " but the data section has only %" PRIu64
                            " bytes: the file is truncated; re-download it (tensor '%s')",
                            f->path, end, f->data_size, t->name);
        if (t->offset > expect)
            return fy_error(FY_ERR_FORMAT,
                            "%s: data_offsets start at %" PRIu64 ", leaving a gap after byte %" PRIu64
                            " (tensor '%s')",
                            f->path, t->offset, expect, t->name);
        if (t->offset < expect)
            return fy_error(FY_ERR_FORMAT,
                            "%s: data_offsets [%" PRIu64 ", %" PRIu64 "] overlap tensor '%s' (tensor '%s')",
                            f->path, t->offset, end, prev ? prev : "", t->name);
        expect = end;
        prev = t->name;
    }
    if (expect != f->data_size)
        return fy_error(FY_ERR_FORMAT,
                        "%s: tensors cover %" PRIu64 " bytes but the data section holds %" PRIu64
                        ": %s",
                        f->path, expect, f->data_size,
                        f->count ? "unexpected trailing bytes" : "bytes that no tensor names");
    return FY_OK;
}

fy_status fy_st_index_names(fy_st_file *f)
{
    f->by_name = malloc((f->count ? f->count : 1) * sizeof *f->by_name);
    if (!f->by_name) return fy_error(FY_ERR_NOMEM, "%s: out of memory", f->path);
    for (size_t i = 0; i < f->count; i++) f->by_name[i] = &f->tensors[i];
    qsort(f->by_name, f->count, sizeof *f->by_name, cmp_info_name);
    for (size_t i = 1; i < f->count; i++)
        if (strcmp(f->by_name[i - 1]->name, f->by_name[i]->name) == 0)
            return fy_error(FY_ERR_FORMAT, "%s: the header names a tensor twice (tensor '%s')",
                            f->path, f->by_name[i]->name);
    return FY_OK;
}

static int cmp_meta(const void *a, const void *b)
{
    const fy_st_meta *x = a, *y = b;
    return strcmp(x->key, y->key);
}

static fy_status parse_metadata(fy_st_file *f, const cJSON *meta)
{
    if (f->has_meta) return fy_error(FY_ERR_FORMAT, "%s: the header has __metadata__ twice", f->path);
    f->has_meta = true;
    if (!cJSON_IsObject(meta))
        return fy_error(FY_ERR_FORMAT, "%s: __metadata__ is not an object", f->path);
    size_t n = (size_t)cJSON_GetArraySize(meta);
    f->meta = calloc(n ? n : 1, sizeof *f->meta);
    if (!f->meta) return fy_error(FY_ERR_NOMEM, "%s: out of memory", f->path);
    const cJSON *item;
    cJSON_ArrayForEach(item, meta) {
        if (!cJSON_IsString(item))
            return fy_error(FY_ERR_FORMAT, "%s: __metadata__ value of \"%s\" is not a string",
                            f->path, item->string ? item->string : "");
        fy_st_meta *m = &f->meta[f->meta_count++];
        m->key = fy_st_dup_string(item->string ? item->string : "");
        m->value = fy_st_dup_string(item->valuestring);
        if (!m->key || !m->value) return fy_error(FY_ERR_NOMEM, "%s: out of memory", f->path);
    }
    qsort(f->meta, f->meta_count, sizeof *f->meta, cmp_meta);
    for (size_t i = 1; i < f->meta_count; i++)
        if (strcmp(f->meta[i - 1].key, f->meta[i].key) == 0)
            return fy_error(FY_ERR_FORMAT, "%s: __metadata__ has the key \"%s\" twice", f->path,
                            f->meta[i].key);
    return FY_OK;
}

static fy_status parse_tensors(fy_st_file *f, const cJSON *root)
{
    size_t n = (size_t)cJSON_GetArraySize(root);
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    if (!f->tensors) return fy_error(FY_ERR_NOMEM, "%s: out of memory", f->path);
    const cJSON *entry;
    cJSON_ArrayForEach(entry, root) {
        if (entry->string && strcmp(entry->string, "__metadata__") == 0) {
            FY_TRY(parse_metadata(f, entry));
            continue;
        }
        fy_st_info *t = &f->tensors[f->count];
        FY_TRY(parse_entry(f->path, entry, t));
        t->name = fy_st_dup_string(tensor_name_of(entry));
        if (!t->name) return fy_error(FY_ERR_NOMEM, "%s: out of memory", f->path);
        f->count++;
        FY_TRY(check_size(f->path, t));
    }
    return FY_OK;
}

static fy_status parse_header(fy_st_file *f)
{
    if (f->size < 8)
        return fy_error(FY_ERR_FORMAT,
                        "%s: file is %zu bytes, too short to hold a safetensors header: the file is "
                        "truncated or not safetensors",
                        f->path, f->size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | f->base[i];
    if (n > ST_MAX_HEADER)
        return fy_error(FY_ERR_FORMAT,
                        "%s: header length %" PRIu64 " is over the %llu-byte limit: not a safetensors "
                        "file, or a corrupt one",
                        f->path, n, ST_MAX_HEADER);
    if (n > f->size - 8)
        return fy_error(FY_ERR_FORMAT,
                        "%s: header length %" PRIu64 " runs past the end of the file (size %zu): the "
                        "file is truncated; re-download it",
                        f->path, n, f->size);
    const char *text = (const char *)f->base + 8;
    if (!fy_st_utf8_valid((const uint8_t *)text, n))
        return fy_error(FY_ERR_FORMAT, "%s: header is not valid UTF-8: not a safetensors file",
                        f->path);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, (size_t)n, &end, 0);
    if (!root)
        return fy_error(FY_ERR_FORMAT, "%s: header is not JSON (error near byte %zu of its %" PRIu64
                        "): not a safetensors file, or a corrupt one",
                        f->path, end && end >= text ? (size_t)(end - text) : (size_t)0, n);
    fy_status s = FY_OK;
    for (const char *p = end; p < text + n; p++)
        if (!json_space((uint8_t)*p)) {
            s = fy_error(FY_ERR_FORMAT, "%s: header has bytes after its JSON object (at byte %zu)",
                         f->path, (size_t)(p - text) + 8);
            break;
        }
    if (s == FY_OK && !cJSON_IsObject(root))
        s = fy_error(FY_ERR_FORMAT, "%s: header is JSON but not an object", f->path);
    f->data = f->base + 8 + n;
    f->data_size = f->size - 8 - n;
    if (s == FY_OK) s = parse_tensors(f, root);
    cJSON_Delete(root);
    FY_TRY(s);
    qsort(f->tensors, f->count, sizeof *f->tensors, cmp_by_offset);
    FY_TRY(fy_st_index_names(f));
    FY_TRY(check_layout(f));
    for (size_t i = 0; i < f->count; i++) f->tensors[i].data = f->data + f->tensors[i].offset;
    return FY_OK;
}

/* ---- Opening ------------------------------------------------------------ */

static fy_status new_file(const char *label, fy_st_file **out)
{
    fy_st_file *f = calloc(1, sizeof *f);
    if (!f) return fy_error(FY_ERR_NOMEM, "%s: out of memory", label);
    f->path = fy_st_dup_string(label);
    if (!f->path) {
        free(f);
        return fy_error(FY_ERR_NOMEM, "%s: out of memory", label);
    }
    *out = f;
    return FY_OK;
}

static bool is_gguf_path(const char *path)
{
    size_t n = strlen(path);
    return n >= 5 && strcmp(path + n - 5, ".gguf") == 0;
}

/* A GGUF file by its magic or its name (so a damaged one is reported as GGUF). */
static fy_status finish_open(fy_st_file *f, fy_st_file **out)
{
    bool gguf = fy_gguf_magic(f->base, f->size) || is_gguf_path(f->path);
    fy_status s = gguf ? fy_gguf_parse(f) : parse_header(f);
    if (s != FY_OK) {
        fy_st_close(f);
        return s;
    }
    *out = f;
    return FY_OK;
}

fy_status fy_st_open_memory(const void *buf, size_t size, const char *label, fy_st_file **out)
{
    *out = NULL;
    if (!label) label = "<memory>";
    if (!buf && size) return fy_error(FY_ERR_INVALID, "%s: no buffer", label);
    fy_st_file *f = NULL;
    FY_TRY(new_file(label, &f));
    f->base = buf ? buf : (const uint8_t *)"";
    f->size = size;
    return finish_open(f, out);
}

static fy_status map_file(fy_st_file *f, int fd, const struct stat *st)
{
    f->size = (size_t)st->st_size;
    if (f->size < 8) {
        f->base = (const uint8_t *)"";
        return FY_OK; /* parse_header reports it */
    }
    void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED)
        return fy_error(FY_ERR_IO, "%s: cannot map %zu bytes: %s", f->path, f->size,
                        strerror(errno));
    /* Tensors are read one at a time, often far apart: read-ahead would only
     * pull in weights that nobody asked for (yet). */
    madvise(p, f->size, MADV_RANDOM);
    f->base = p;
    f->mapped = true;
    return FY_OK;
}

/* The element alignment a typed load needs (sub-byte and byte types: none). */
static size_t alignment_of(fy_dtype dtype)
{
    size_t size = fy_dtype_size(dtype);
    return size > 8 ? 8 : (size ? size : 1);
}

static bool misaligned(const fy_st_info *t)
{
    return (uintptr_t)t->data % alignment_of(t->dtype) != 0;
}

static bool any_misaligned(const fy_st_file *f)
{
    for (size_t i = 0; i < f->count; i++)
        if (misaligned(&f->tensors[i])) return true;
    return false;
}

/* A header whose length is not a multiple of 8 is legal but leaves the data
 * misaligned in the mapping (its pages start at the file's start): the file
 * is read into memory placed so that the data section is 64-byte aligned. */
static fy_status read_aligned(fy_st_file *f, int fd)
{
    size_t header = (size_t)(f->data - f->base);
    size_t shift = (64 - header % 64) % 64;
    size_t total = f->size + shift;
    void *mem = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return fy_error(FY_ERR_NOMEM, "%s: cannot allocate %zu bytes to hold its misaligned tensors", f->path, total);
    uint8_t *dst = (uint8_t *)mem + shift;
    for (size_t done = 0; done < f->size;) {
        ssize_t got = pread(fd, dst + done, f->size - done, (off_t)done);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
            munmap(mem, total);
            return fy_error(FY_ERR_IO, "%s: read failed at byte %zu: %s", f->path, done,
                            got < 0 ? strerror(errno) : "the file became shorter");
        }
        done += (size_t)got;
    }
    fy_warn("%s: the tensor data starts at byte %zu, not a multiple of 8, so ferry reads the file into memory "
            "instead of mapping it (re-save it with safetensors to map it)", f->path, header);
    munmap((void *)f->base, f->size);
    f->base = dst;
    f->data = dst + header;
    for (size_t i = 0; i < f->count; i++) f->tensors[i].data = f->data + f->tensors[i].offset;
    f->copy = mem;
    f->copy_size = total;
    return FY_OK;
}

fy_status fy_st_open(const char *path, fy_st_file **out)
{
    *out = NULL;
    int fd;
    struct stat st;
    FY_TRY(fy_open_regular(path, 0, is_gguf_path(path) ? "a GGUF file" : "a safetensors file", &fd, &st));
    fy_st_file *f = NULL;
    fy_status s = new_file(path, &f);
    if (s == FY_OK) {
        f->opened = st;
        s = map_file(f, fd, &st);
        if (s != FY_OK) fy_st_close(f);
    }
    if (s == FY_OK) s = finish_open(f, out);
    if (s == FY_OK && f->mapped && any_misaligned(f)) {
        s = read_aligned(f, fd);
        if (s != FY_OK) {
            fy_st_close(f);
            *out = NULL;
        }
    }
    close(fd);
    FY_TRY(s);
    if (f->mapped && !f->copy) register_open(f);
    return FY_OK;
}

static bool same_time(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

fy_status fy_st_check_unchanged(const fy_st_file *f)
{
    if (!f->opened.st_ino) return FY_OK; /* opened from memory */
    struct stat now;
    const char *what = NULL;
    if (stat(f->path, &now) != 0) what = "it is gone";
    else if (now.st_dev != f->opened.st_dev || now.st_ino != f->opened.st_ino) what = "it was replaced";
    else if (now.st_size != f->opened.st_size) what = "its size changed";
    else if (!same_time(now.st_mtim, f->opened.st_mtim)) what = "it was written to";
    if (!what) return FY_OK;
    return fy_error(FY_ERR_IO, "%s: the file changed while ferry read it (%s), so the result could mix old and new "
                    "weights and none is written; leave the model folder alone while ferry runs and start again",
                    f->path, what);
}

/* ---- Queries ------------------------------------------------------------ */

const char *fy_st_path(const fy_st_file *f)
{
    return f->path;
}

size_t fy_st_count(const fy_st_file *f)
{
    return f->count;
}

const fy_st_info *fy_st_at(const fy_st_file *f, size_t i)
{
    return i < f->count ? &f->tensors[i] : NULL;
}

const fy_st_info *fy_st_find(const fy_st_file *f, const char *name)
{
    size_t lo = 0, hi = f->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->by_name[mid]->name, name);
        if (c == 0) return f->by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

size_t fy_st_metadata_count(const fy_st_file *f)
{
    return f->meta_count;
}

const char *fy_st_metadata_key(const fy_st_file *f, size_t i)
{
    return i < f->meta_count ? f->meta[i].key : NULL;
}

const char *fy_st_metadata(const fy_st_file *f, const char *key)
{
    size_t lo = 0, hi = f->meta_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->meta[mid].key, key);
        if (c == 0) return f->meta[mid].value;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

fy_status fy_st_view(const fy_st_file *f, const char *name, fy_tensor *out)
{
    const fy_st_info *t = fy_st_find(f, name);
    if (!t) return fy_error(FY_ERR_NOT_FOUND, "%s: no tensor '%s'", f->path, name);
    return fy_st_view_info(f, t, out);
}

fy_status fy_st_view_info(const fy_st_file *f, const fy_st_info *t, fy_tensor *out)
{
    const char *name = t->name;
    if (t->ndim > FY_MAX_DIMS)
        return fy_error(FY_ERR_UNSUPPORTED, "%s: rank %d is above the %d dimensions of a view (tensor '%s')",
                        f->path, t->ndim, FY_MAX_DIMS, name);
    if (fy_dtype_size(t->dtype) == 0 && !fy_dtype_is_quant(t->dtype))
        return fy_error(FY_ERR_UNSUPPORTED,
                        "%s: %s packs elements into sub-byte fields, which a view cannot index (tensor '%s')",
                        f->path, fy_dtype_safetensors_name(t->dtype), name);
    if (misaligned(t))
        return fy_error(FY_ERR_UNSUPPORTED,
                        "%s: tensor '%s' starts at byte %llu of the data, not a multiple of its %zu-byte elements "
                        "(re-save the file with safetensors)",
                        f->path, name, (unsigned long long)t->offset, alignment_of(t->dtype));
    /* The mapping is read-only: the view borrows it and must not be written. */
    *out = fy_tensor_wrap((void *)t->data, t->dtype, t->ndim, t->shape, FY_HOST);
    return FY_OK;
}
