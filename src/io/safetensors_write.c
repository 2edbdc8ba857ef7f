/* Writing safetensors files, re-sharding checkpoints, parsing "5GB" sizes.
 *
 * Files are written as the Rust crate writes them (compact JSON header padded
 * with spaces to a multiple of 8 so the data section is 8-byte aligned,
 * contiguous offsets), to `<path>.tmp.<pid>`, fsynced and renamed into place:
 * a reader never sees a half-written file and a failure leaves nothing behind.
 * The writer borrows tensor data: it must stay valid until finish. Generated
 * tensors are filled through a bounded buffer at finish instead. */
#include "ferry/safetensors.h"
#include "io/safetensors_internal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct writer_entry {
    char *name;
    fy_dtype dtype;
    int ndim;
    int64_t shape[FY_ST_MAX_DIMS];
    const void *data;
    uint64_t nbytes;
    fy_st_fill_fn fill;  /* generated at finish when set (data is NULL) */
    void *fill_user;
} writer_entry;

typedef struct writer_meta {
    char *key;
    char *value;
} writer_meta;

struct fy_st_writer {
    writer_entry *entries;
    size_t count, cap;
    writer_meta *meta;
    size_t meta_count, meta_cap;
    uint64_t data_bytes;
};

/* ---- A growable string -------------------------------------------------- */

typedef struct strbuf {
    char *p;
    size_t len, cap;
    bool failed;
} strbuf;

static void sb_grow(strbuf *b, size_t extra)
{
    if (b->failed || b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->failed = true;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void sb_add(strbuf *b, const char *s, size_t n)
{
    sb_grow(b, n);
    if (b->failed) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(strbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_u64(strbuf *b, uint64_t v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    sb_add(b, tmp, (size_t)n);
}

/* A JSON string literal; UTF-8 passes through, control characters are escaped. */
static void sb_json(strbuf *b, const char *s)
{
    sb_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            sb_add(b, esc, 2);
        } else if (*p < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            sb_add(b, esc, 6);
        } else {
            sb_add(b, (const char *)p, 1);
        }
    }
    sb_add(b, "\"", 1);
}

/* ---- The writer --------------------------------------------------------- */

fy_status fy_st_writer_create(fy_st_writer **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? FY_OK : fy_error(FY_ERR_NOMEM, "safetensors writer: out of memory");
}

void fy_st_writer_free(fy_st_writer *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->count; i++) free(w->entries[i].name);
    for (size_t i = 0; i < w->meta_count; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->entries);
    free(w->meta);
    free(w);
}

static char *dup_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

static bool valid_text(const char *s)
{
    return fy_st_utf8_valid((const uint8_t *)s, strlen(s));
}

static const char fill_marker[1];

static fy_status check_add(const fy_st_writer *w, const char *name, fy_dtype dtype, int ndim,
                           const int64_t *shape, const void *data, uint64_t nbytes)
{
    if (!name || !name[0] || !valid_text(name) || strcmp(name, "__metadata__") == 0)
        return fy_error(FY_ERR_INVALID, "safetensors writer: tensor name '%s' is empty, reserved "
                        "or not UTF-8", name ? name : "");
    if ((unsigned)dtype >= FY_DTYPE_COUNT)
        return fy_error(FY_ERR_INVALID, "safetensors writer: unknown dtype %d (tensor '%s')",
                        (int)dtype, name);
    if (fy_dtype_is_quant(dtype))
        return fy_error(FY_ERR_INVALID, "safetensors writer: %s is a GGUF block type, not a safetensors dtype "
                        "(tensor '%s')", fy_dtype_name(dtype), name);
    if (ndim < 0 || ndim > FY_ST_MAX_DIMS || (ndim > 0 && !shape))
        return fy_error(FY_ERR_INVALID, "safetensors writer: rank %d is outside 0..%d (tensor '%s')",
                        ndim, FY_ST_MAX_DIMS, name);
    uint64_t bits = fy_dtype_bits(dtype);
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return fy_error(FY_ERR_INVALID, "safetensors writer: dimension %d is negative "
                            "(tensor '%s')", d, name);
        if (shape[d] != 0 && bits > UINT64_MAX / (uint64_t)shape[d])
            return fy_error(FY_ERR_INVALID, "safetensors writer: shape overflows 64-bit sizes "
                            "(tensor '%s')", name);
        bits *= (uint64_t)shape[d];
    }
    if (bits % 8 != 0 || bits / 8 != nbytes)
        return fy_error(FY_ERR_INVALID, "safetensors writer: shape x %s is %" PRIu64 " bits but "
                        "%" PRIu64 " bytes were given (tensor '%s')",
                        fy_dtype_safetensors_name(dtype), bits, nbytes, name);
    if (nbytes && !data)
        return fy_error(FY_ERR_INVALID, "safetensors writer: no data (tensor '%s')", name);
    if (w->data_bytes > UINT64_MAX - nbytes)
        return fy_error(FY_ERR_INVALID, "safetensors writer: total size overflows (tensor '%s')",
                        name);
    return FY_OK;
}

static fy_status append(fy_st_writer *w, const char *name, fy_dtype dtype, int ndim, const int64_t *shape,
                        const void *data, uint64_t nbytes, writer_entry **out)
{
    if (w->count == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        writer_entry *e = realloc(w->entries, cap * sizeof *e);
        if (!e) return fy_error(FY_ERR_NOMEM, "safetensors writer: out of memory");
        w->entries = e;
        w->cap = cap;
    }
    writer_entry *e = &w->entries[w->count];
    memset(e, 0, sizeof *e);
    e->name = dup_string(name);
    if (!e->name) return fy_error(FY_ERR_NOMEM, "safetensors writer: out of memory");
    e->dtype = dtype;
    e->ndim = ndim;
    for (int d = 0; d < ndim; d++) e->shape[d] = shape[d];
    e->data = data;
    e->nbytes = nbytes;
    w->count++;
    w->data_bytes += nbytes;
    *out = e;
    return FY_OK;
}

fy_status fy_st_writer_add(fy_st_writer *w, const char *name, fy_dtype dtype, int ndim,
                           const int64_t *shape, const void *data, uint64_t nbytes)
{
    FY_TRY(check_add(w, name, dtype, ndim, shape, data, nbytes));
    writer_entry *e = NULL;
    return append(w, name, dtype, ndim, shape, data, nbytes, &e);
}

static uint64_t shape_bytes(fy_dtype dtype, int ndim, const int64_t *shape)
{
    uint64_t bits = (unsigned)dtype < FY_DTYPE_COUNT ? fy_dtype_bits(dtype) : 0;
    for (int d = 0; d < ndim && shape; d++) {
        if (shape[d] <= 0) return 0;
        if (bits > UINT64_MAX / (uint64_t)shape[d]) return UINT64_MAX;
        bits *= (uint64_t)shape[d];
    }
    return bits / 8;
}

fy_status fy_st_writer_add_generated(fy_st_writer *w, const char *name, fy_dtype dtype, int ndim,
                                     const int64_t *shape, fy_st_fill_fn fill, void *user)
{
    if (!fill) return fy_error(FY_ERR_INVALID, "safetensors writer: no fill function (tensor '%s')", name ? name : "");
    uint64_t nbytes = shape_bytes(dtype, ndim, shape);
    /* check_add wants data for a non-empty tensor: any non-NULL marker will do. */
    FY_TRY(check_add(w, name, dtype, ndim, shape, nbytes ? (const void *)fill_marker : NULL, nbytes));
    writer_entry *e = NULL;
    FY_TRY(append(w, name, dtype, ndim, shape, NULL, nbytes, &e));
    e->fill = fill;
    e->fill_user = user;
    return FY_OK;
}

fy_status fy_st_writer_add_tensor(fy_st_writer *w, const char *name, const fy_tensor *t)
{
    if (t->device != FY_HOST || !fy_tensor_is_contiguous(t))
        return fy_error(FY_ERR_INVALID, "safetensors writer: tensor '%s' must be a contiguous "
                        "host tensor", name ? name : "");
    return fy_st_writer_add(w, name, t->dtype, t->ndim, t->shape, t->data,
                            (uint64_t)fy_tensor_nbytes(t));
}

fy_status fy_st_writer_set_metadata(fy_st_writer *w, const char *key, const char *value)
{
    if (!key || !value || !valid_text(key) || !valid_text(value))
        return fy_error(FY_ERR_INVALID, "safetensors writer: metadata key and value must be UTF-8 "
                        "strings");
    char *v = dup_string(value);
    if (!v) return fy_error(FY_ERR_NOMEM, "safetensors writer: out of memory");
    for (size_t i = 0; i < w->meta_count; i++)
        if (strcmp(w->meta[i].key, key) == 0) {
            free(w->meta[i].value);
            w->meta[i].value = v;
            return FY_OK;
        }
    if (w->meta_count == w->meta_cap) {
        size_t cap = w->meta_cap ? w->meta_cap * 2 : 4;
        writer_meta *m = realloc(w->meta, cap * sizeof *m);
        if (!m) {
            free(v);
            return fy_error(FY_ERR_NOMEM, "safetensors writer: out of memory");
        }
        w->meta = m;
        w->meta_cap = cap;
    }
    char *k = dup_string(key);
    if (!k) {
        free(v);
        return fy_error(FY_ERR_NOMEM, "safetensors writer: out of memory");
    }
    w->meta[w->meta_count++] = (writer_meta){k, v};
    return FY_OK;
}

uint64_t fy_st_writer_bytes(const fy_st_writer *w)
{
    return w->data_bytes;
}

static int cmp_name_ptr(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

static fy_status check_unique(const fy_st_writer *w, const char *path)
{
    const char **names = malloc((w->count ? w->count : 1) * sizeof *names);
    if (!names) return fy_error(FY_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < w->count; i++) names[i] = w->entries[i].name;
    qsort(names, w->count, sizeof *names, cmp_name_ptr);
    fy_status s = FY_OK;
    for (size_t i = 1; i < w->count && s == FY_OK; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            s = fy_error(FY_ERR_INVALID, "%s: tensor '%s' was added twice", path, names[i]);
    free(names);
    return s;
}

/* The header: metadata first, then tensors in the order they were added. */
static fy_status build_header(const fy_st_writer *w, const char *path, strbuf *b)
{
    sb_add(b, "{", 1);
    bool first = true;
    if (w->meta_count) {
        sb_str(b, "\"__metadata__\":{");
        for (size_t i = 0; i < w->meta_count; i++) {
            if (i) sb_add(b, ",", 1);
            sb_json(b, w->meta[i].key);
            sb_add(b, ":", 1);
            sb_json(b, w->meta[i].value);
        }
        sb_add(b, "}", 1);
        first = false;
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < w->count; i++) {
        const writer_entry *e = &w->entries[i];
        if (!first) sb_add(b, ",", 1);
        first = false;
        sb_json(b, e->name);
        sb_str(b, ":{\"dtype\":");
        sb_json(b, fy_dtype_safetensors_name(e->dtype));
        sb_str(b, ",\"shape\":[");
        for (int d = 0; d < e->ndim; d++) {
            if (d) sb_add(b, ",", 1);
            sb_u64(b, (uint64_t)e->shape[d]);
        }
        sb_str(b, "],\"data_offsets\":[");
        sb_u64(b, offset);
        sb_add(b, ",", 1);
        sb_u64(b, offset + e->nbytes);
        sb_str(b, "]}");
        offset += e->nbytes;
    }
    sb_add(b, "}", 1);
    while (!b->failed && b->len % 8 != 0) sb_add(b, " ", 1);
    if (b->failed) return fy_error(FY_ERR_NOMEM, "%s: out of memory building the header", path);
    return FY_OK;
}

static fy_status write_all(int fd, const void *buf, uint64_t n, const char *path)
{
    const uint8_t *p = buf;
    while (n > 0) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t got = write(fd, p, chunk);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0)
            return fy_error(FY_ERR_IO, "%s: write failed: %s", path,
                            got < 0 ? strerror(errno) : "no progress");
        p += got;
        n -= (uint64_t)got;
    }
    return FY_OK;
}

static char *temp_name(const char *path)
{
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (tmp) snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    return tmp;
}

/* Large enough to amortise the calls, small enough for any machine; a
 * multiple of every element size. */
#define FILL_CHUNK ((size_t)4 << 20)

static fy_status write_generated(const writer_entry *e, int fd, uint8_t **buf, const char *path)
{
    if (!*buf && e->nbytes && !(*buf = malloc(FILL_CHUNK)))
        return fy_error(FY_ERR_NOMEM, "%s: out of memory", path);
    for (uint64_t off = 0; off < e->nbytes; off += FILL_CHUNK) {
        size_t n = e->nbytes - off < FILL_CHUNK ? (size_t)(e->nbytes - off) : FILL_CHUNK;
        fy_status s = e->fill(e->fill_user, off, *buf, n);
        if (s != FY_OK) return fy_error_prefix(s, "%s: tensor '%s': ", path, e->name);
        FY_TRY(write_all(fd, *buf, n, path));
    }
    return FY_OK;
}

static fy_status write_data(const fy_st_writer *w, int fd, const char *path)
{
    uint8_t *buf = NULL;
    fy_status s = FY_OK;
    for (size_t i = 0; s == FY_OK && i < w->count; i++) {
        const writer_entry *e = &w->entries[i];
        s = e->fill ? write_generated(e, fd, &buf, path) : write_all(fd, e->data, e->nbytes, path);
    }
    free(buf);
    return s;
}

static fy_status write_contents(const fy_st_writer *w, int fd, const strbuf *header,
                                const char *path)
{
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)header->len >> (8 * i));
    FY_TRY(write_all(fd, len, 8, path));
    FY_TRY(write_all(fd, header->p, header->len, path));
    FY_TRY(write_data(w, fd, path));
    if (fsync(fd) != 0) return fy_error(FY_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
    return FY_OK;
}

/* Write the whole file to `<path>.tmp.<pid>`; *tmp_out names it on success.
 * On failure nothing is left on disk. */
static fy_status write_temp(const fy_st_writer *w, const char *path, char **tmp_out)
{
    *tmp_out = NULL;
    FY_TRY(check_unique(w, path));
    strbuf header = {0};
    fy_status s = build_header(w, path, &header);
    char *tmp = s == FY_OK ? temp_name(path) : NULL;
    if (s == FY_OK && !tmp) s = fy_error(FY_ERR_NOMEM, "%s: out of memory", path);
    int fd = -1;
    if (s == FY_OK) {
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) s = fy_error(FY_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    }
    if (s == FY_OK) s = write_contents(w, fd, &header, path);
    if (fd >= 0 && close(fd) != 0 && s == FY_OK)
        s = fy_error(FY_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    free(header.p);
    if (s != FY_OK) {
        if (fd >= 0) unlink(tmp);
        free(tmp);
        return s;
    }
    *tmp_out = tmp;
    return FY_OK;
}

static void sync_dir_of(const char *path)
{
    char *dir = dup_string(path);
    if (!dir) return;
    char *slash = strrchr(dir, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd); /* best effort: makes the rename durable */
        close(fd);
    }
    free(dir);
}

fy_status fy_st_writer_finish(fy_st_writer *w, const char *path)
{
    char *tmp;
    FY_TRY(write_temp(w, path, &tmp));
    fy_status s = FY_OK;
    if (rename(tmp, path) != 0) {
        s = fy_error(FY_ERR_IO, "%s: cannot rename the finished file into place: %s", path,
                     strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    if (s == FY_OK) sync_dir_of(path);
    return s;
}

/* ---- Re-sharding -------------------------------------------------------- */

typedef struct shard_plan {
    size_t *shard_of;    /* per set tensor (name order): its shard */
    size_t nshards;
    uint64_t total;
} shard_plan;

/* huggingface_hub's split_state_dict_into_shards: greedy in order; a tensor
 * larger than the limit gets its own shard at once (before the one being
 * filled); a shard closes when the next tensor would push it past the limit. */
/* The dtype a tensor is written in: `to` for a float tensor of 2+ dims
 * stored wider (FY_DTYPE_COUNT: as stored). Vectors (norms, biases) stay,
 * as the engine's bf16/f16 storage leaves them. */
static fy_dtype converted_dtype(const fy_st_info *t, fy_dtype to)
{
    bool narrower = to != FY_DTYPE_COUNT && t->ndim >= 2 && fy_dtype_is_float(t->dtype) && fy_dtype_is_float(to) &&
                    fy_dtype_size(t->dtype) > fy_dtype_size(to);
    return narrower ? to : t->dtype;
}

static uint64_t converted_bytes(const fy_st_info *t, fy_dtype to)
{
    fy_dtype d = converted_dtype(t, to);
    return d == t->dtype ? t->nbytes : t->nbytes / fy_dtype_size(t->dtype) * fy_dtype_size(d);
}

static fy_status plan_shards(const fy_st_set *set, uint64_t max, fy_dtype to, shard_plan *p)
{
    size_t n = fy_st_set_count(set);
    p->shard_of = malloc((n ? n : 1) * sizeof *p->shard_of);
    size_t *pending = malloc((n ? n : 1) * sizeof *pending);
    if (!p->shard_of || !pending) {
        free(pending);
        return fy_error(FY_ERR_NOMEM, "reshard: out of memory");
    }
    size_t npending = 0;
    uint64_t current = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t size = converted_bytes(fy_st_set_at(set, i), to);
        p->total += size;
        if (size > max) {
            p->shard_of[i] = p->nshards++;
            continue;
        }
        if (npending && current + size > max) {
            for (size_t k = 0; k < npending; k++) p->shard_of[pending[k]] = p->nshards;
            p->nshards++;
            npending = 0;
            current = 0;
        }
        pending[npending++] = i;
        current += size;
    }
    if (npending) {
        for (size_t k = 0; k < npending; k++) p->shard_of[pending[k]] = p->nshards;
        p->nshards++;
    }
    free(pending);
    return FY_OK;
}

typedef struct reshard_job {
    const char *out_dir;
    const char *stem;
    char **finals;   /* nfiles final paths (shards, then the index) */
    char **temps;
    size_t nfiles;
    fy_dtype to;     /* FY_DTYPE_COUNT: as stored */
} reshard_job;

/* A tensor converted as its shard is written, chunk by chunk. */
typedef struct convert_src {
    const fy_st_info *t;
    fy_dtype to;
} convert_src;

static fy_status convert_fill(void *user, uint64_t offset, void *dst, size_t nbytes)
{
    const convert_src *c = user;
    size_t out = fy_dtype_size(c->to), in = fy_dtype_size(c->t->dtype);
    const char *src = (const char *)c->t->data + offset / out * in;
    return fy_convert(dst, c->to, src, c->t->dtype, nbytes / out);
}

static char *shard_file_name(const char *stem, size_t k, size_t n)
{
    size_t len = strlen(stem) + 64;
    char *s = malloc(len);
    if (!s) return NULL;
    if (n == 1) snprintf(s, len, "%s.safetensors", stem);
    else snprintf(s, len, "%s-%05zu-of-%05zu.safetensors", stem, k + 1, n);
    return s;
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static fy_status copy_metadata(fy_st_writer *w, const fy_st_set *set)
{
    if (fy_st_set_file_count(set) > 0) {
        const fy_st_file *f = fy_st_set_file(set, 0);
        for (size_t i = 0; i < fy_st_metadata_count(f); i++) {
            const char *key = fy_st_metadata_key(f, i);
            FY_TRY(fy_st_writer_set_metadata(w, key, fy_st_metadata(f, key)));
        }
    }
    /* diffusers and transformers tag every shard they save. */
    if (fy_st_set_file_count(set) == 0 || !fy_st_metadata(fy_st_set_file(set, 0), "format"))
        FY_TRY(fy_st_writer_set_metadata(w, "format", "pt"));
    return FY_OK;
}

static fy_status write_shard(const fy_st_set *set, const shard_plan *p, size_t k, reshard_job *job)
{
    fy_st_writer *w;
    size_t n = fy_st_set_count(set);
    convert_src *conv = calloc(n ? n : 1, sizeof *conv); /* read by the writer until it is done */
    if (!conv) return fy_error(FY_ERR_NOMEM, "reshard: out of memory");
    fy_status s = fy_st_writer_create(&w);
    if (s != FY_OK) {
        free(conv);
        return s;
    }
    s = copy_metadata(w, set);
    for (size_t i = 0; i < n && s == FY_OK; i++) {
        if (p->shard_of[i] != k) continue;
        const fy_st_info *t = fy_st_set_at(set, i);
        fy_dtype d = converted_dtype(t, job->to);
        conv[i] = (convert_src){t, d};
        if (d == t->dtype) s = fy_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, t->nbytes);
        else s = fy_st_writer_add_generated(w, t->name, d, t->ndim, t->shape, convert_fill, &conv[i]);
    }
    if (s == FY_OK) s = write_temp(w, job->finals[k], &job->temps[k]);
    fy_st_writer_free(w);
    free(conv);
    return s;
}

/* The index as huggingface writes it: json.dumps(indent=2, sort_keys=True). */
static fy_status write_index(const fy_st_set *set, const shard_plan *p, reshard_job *job)
{
    size_t k = p->nshards;
    strbuf b = {0};
    sb_str(&b, "{\n  \"metadata\": {\n    \"total_size\": ");
    sb_u64(&b, p->total);
    sb_str(&b, "\n  },\n  \"weight_map\": {");
    for (size_t i = 0; i < fy_st_set_count(set); i++) {
        sb_str(&b, i ? ",\n    " : "\n    ");
        sb_json(&b, fy_st_set_at(set, i)->name);
        sb_str(&b, ": ");
        const char *final = job->finals[p->shard_of[i]];
        sb_json(&b, strrchr(final, '/') + 1);
    }
    sb_str(&b, "\n  }\n}\n");
    if (b.failed) return fy_error(FY_ERR_NOMEM, "reshard: out of memory");
    fy_status s = FY_OK;
    job->temps[k] = temp_name(job->finals[k]);
    int fd = job->temps[k] ? open(job->temps[k], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
    if (!job->temps[k]) s = fy_error(FY_ERR_NOMEM, "reshard: out of memory");
    else if (fd < 0) s = fy_error(FY_ERR_IO, "%s: cannot create: %s", job->temps[k], strerror(errno));
    if (s == FY_OK) s = write_all(fd, b.p, b.len, job->finals[k]);
    if (s == FY_OK && fsync(fd) != 0)
        s = fy_error(FY_ERR_IO, "%s: fsync failed: %s", job->finals[k], strerror(errno));
    if (fd >= 0 && close(fd) != 0 && s == FY_OK)
        s = fy_error(FY_ERR_IO, "%s: close failed: %s", job->finals[k], strerror(errno));
    if (s != FY_OK && job->temps[k]) {
        if (fd >= 0) unlink(job->temps[k]);
        free(job->temps[k]);
        job->temps[k] = NULL;
    }
    free(b.p);
    return s;
}

static bool digits(const char *s, size_t n)
{
    if (n < 5) return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i])) return false;
    return true;
}

/* `<stem>-DDDDD-of-DDDDD.safetensors`, the names sharded saves use. */
static bool is_shard_name(const char *name, const char *stem)
{
    size_t ls = strlen(stem);
    if (strncmp(name, stem, ls) != 0 || name[ls] != '-') return false;
    const char *a = name + ls + 1;
    const char *of = strstr(a, "-of-");
    if (!of || !digits(a, (size_t)(of - a))) return false;
    const char *b = of + 4;
    const char *ext = strstr(b, ".safetensors");
    return ext && strcmp(ext, ".safetensors") == 0 && digits(b, (size_t)(ext - b));
}

/* Remove what an earlier save with another shard count left, so that the
 * folder holds exactly one checkpoint (diffusers cleans stale shards too). */
static fy_status remove_stale(const reshard_job *job, bool sharded)
{
    DIR *d = opendir(job->out_dir);
    if (!d) return fy_error(FY_ERR_IO, "%s: cannot list: %s", job->out_dir, strerror(errno));
    size_t ls = strlen(job->stem);
    fy_status s = FY_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && s == FY_OK) {
        const char *name = e->d_name;
        bool stale = is_shard_name(name, job->stem);
        bool single = strncmp(name, job->stem, ls) == 0 && strcmp(name + ls, ".safetensors") == 0;
        bool index = strncmp(name, job->stem, ls) == 0 &&
                     strcmp(name + ls, ".safetensors.index.json") == 0;
        if (sharded) stale = stale || single;
        else stale = stale || index;
        if (!stale) continue;
        for (size_t i = 0; i < job->nfiles; i++)
            if (strcmp(strrchr(job->finals[i], '/') + 1, name) == 0) stale = false;
        if (!stale) continue;
        char *path = join(job->out_dir, name);
        if (!path) s = fy_error(FY_ERR_NOMEM, "reshard: out of memory");
        else if (unlink(path) != 0 && errno != ENOENT)
            s = fy_error(FY_ERR_IO, "%s: cannot remove the stale file: %s", path, strerror(errno));
        free(path);
    }
    closedir(d);
    return s;
}

/* Rename every temporary into place; if one fails, undo the ones done. */
static fy_status commit(reshard_job *job)
{
    for (size_t i = 0; i < job->nfiles; i++) {
        if (rename(job->temps[i], job->finals[i]) == 0) {
            free(job->temps[i]);
            job->temps[i] = NULL;
            continue;
        }
        fy_status s = fy_error(FY_ERR_IO, "%s: cannot rename into place: %s", job->finals[i],
                               strerror(errno));
        for (size_t k = 0; k < i; k++) unlink(job->finals[k]);
        return s;
    }
    sync_dir_of(job->finals[0]);
    return FY_OK;
}

static void job_free(reshard_job *job)
{
    for (size_t i = 0; i < job->nfiles; i++) {
        if (job->temps && job->temps[i]) {
            unlink(job->temps[i]);
            free(job->temps[i]);
        }
        if (job->finals) free(job->finals[i]);
    }
    free(job->temps);
    free(job->finals);
}

static fy_status name_files(reshard_job *job, size_t nshards)
{
    job->nfiles = nshards + (nshards > 1 ? 1 : 0);
    job->finals = calloc(job->nfiles, sizeof *job->finals);
    job->temps = calloc(job->nfiles, sizeof *job->temps);
    if (!job->finals || !job->temps) return fy_error(FY_ERR_NOMEM, "reshard: out of memory");
    for (size_t k = 0; k < job->nfiles; k++) {
        char *name = k < nshards ? shard_file_name(job->stem, k, nshards) : NULL;
        if (k == nshards) {
            size_t len = strlen(job->stem) + 32;
            name = malloc(len);
            if (name) snprintf(name, len, "%s.safetensors.index.json", job->stem);
        }
        job->finals[k] = name ? join(job->out_dir, name) : NULL;
        free(name);
        if (!job->finals[k]) return fy_error(FY_ERR_NOMEM, "reshard: out of memory");
    }
    return FY_OK;
}

static fy_status reshard_set(const fy_st_set *set, reshard_job *job, uint64_t max)
{
    shard_plan plan = {0};
    fy_status s = plan_shards(set, max, job->to, &plan);
    /* An empty checkpoint still becomes one (empty) file. */
    size_t nshards = plan.nshards ? plan.nshards : 1;
    if (s == FY_OK) {
        for (size_t i = 0; i < fy_st_set_count(set); i++)
            if (plan.nshards == 0) plan.shard_of[i] = 0;
        s = name_files(job, nshards);
    }
    for (size_t k = 0; k < nshards && s == FY_OK; k++) s = write_shard(set, &plan, k, job);
    if (s == FY_OK && nshards > 1) s = write_index(set, &plan, job);
    if (s == FY_OK) s = commit(job);
    if (s == FY_OK) s = remove_stale(job, nshards > 1);
    free(plan.shard_of);
    return s;
}

fy_status fy_st_reshard(const char *in_path, const char *out_dir, const char *stem,
                        uint64_t max_shard_bytes)
{
    return fy_st_reshard_as(in_path, out_dir, stem, max_shard_bytes, FY_DTYPE_COUNT);
}

fy_status fy_st_reshard_as(const char *in_path, const char *out_dir, const char *stem, uint64_t max_shard_bytes,
                           fy_dtype dtype)
{
    if (dtype != FY_DTYPE_COUNT && (!fy_dtype_is_float(dtype) || fy_dtype_size(dtype) == 0))
        return fy_error(FY_ERR_INVALID, "reshard: weights can be converted to a float dtype only, not %s",
                        fy_dtype_name(dtype));
    if (max_shard_bytes == 0)
        return fy_error(FY_ERR_INVALID, "reshard: the maximum shard size must be above 0 bytes");
    if (!stem || !stem[0] || strchr(stem, '/'))
        return fy_error(FY_ERR_INVALID, "reshard: the file stem '%s' must be a plain name",
                        stem ? stem : "");
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
        return fy_error(FY_ERR_IO, "%s: cannot create the output folder: %s", out_dir,
                        strerror(errno));
    fy_st_set *set;
    FY_TRY(fy_st_set_open(in_path, &set));
    reshard_job job = {out_dir, stem, NULL, NULL, 0, dtype};
    fy_status s = reshard_set(set, &job, max_shard_bytes);
    job_free(&job);
    fy_st_set_free(set);
    return s;
}

/* ---- Sizes -------------------------------------------------------------- */

static bool ends_with_ci(const char *s, size_t n, const char *suffix)
{
    size_t m = strlen(suffix);
    return n >= m && strncasecmp(s + n - m, suffix, m) == 0;
}

/* accelerate's (and huggingface_hub's) convert_file_size_to_int: units are
 * case-insensitive; KiB/MiB/GiB/TiB are powers of 2, KB/MB/GB/TB powers of
 * 10, and bits when written with a lower-case final 'b' ("5Gb" = 5e9 / 8
 * bytes); the number may have a fraction ("6.5GiB"), the result is rounded
 * down to whole bytes. Beyond accelerate: K/M/G/T alone are powers of 2
 * ("6G" = 6 GiB, as docker and ls -h read it). fy_size_ambiguity says which
 * readings a user may not have meant. */
typedef struct size_unit {
    const char *unit;
    uint64_t scale;
    bool bits_if_b;
} size_unit;

static const size_unit size_units[] = {
    {"TiB", 1ull << 40, false}, {"GiB", 1ull << 30, false}, {"MiB", 1ull << 20, false}, {"KiB", 1ull << 10, false},
    {"TB", 1000000000000ull, true}, {"GB", 1000000000ull, true}, {"MB", 1000000ull, true}, {"KB", 1000ull, true},
    {"T", 1ull << 40, false}, {"G", 1ull << 30, false}, {"M", 1ull << 20, false}, {"K", 1ull << 10, false},
    {"B", 1, false},
};

static const size_unit *size_unit_of(const char *text, size_t n)
{
    for (size_t i = 0; i < sizeof size_units / sizeof size_units[0]; i++)
        if (ends_with_ci(text, n, size_units[i].unit)) return &size_units[i];
    return NULL;
}

/* Digits with at most one '.', at least one digit. */
static bool plain_decimal(const char *text, size_t n)
{
    size_t digits = 0, dots = 0;
    for (size_t i = 0; i < n; i++) {
        if (isdigit((unsigned char)text[i])) digits++;
        else if (text[i] == '.') dots++;
        else return false;
    }
    return digits > 0 && dots <= 1;
}

fy_status fy_parse_size(const char *text, uint64_t *out)
{
    if (!text) return fy_error(FY_ERR_INVALID, "size: no value given");
    size_t n = strlen(text);
    const size_unit *u = size_unit_of(text, n);
    uint64_t scale = u ? u->scale : 1;
    bool bits = u && u->bits_if_b && text[n - 1] == 'b';
    if (u) n -= strlen(u->unit);
    if (n == 0)
        return fy_error(FY_ERR_INVALID, "size '%s' has no number; write e.g. 5GB, 500MB, 6.5GiB or 1024", text);
    if (!plain_decimal(text, n))
        return fy_error(FY_ERR_INVALID, "size '%s' is not a number with an optional unit "
                        "(KB, MB, GB, TB, KiB, MiB, GiB, TiB; e.g. 6GiB or 6.5GB)", text);
    const char *dot = memchr(text, '.', n);
    uint64_t v = 0;
    for (size_t i = 0; i < (dot ? (size_t)(dot - text) : n); i++) {
        unsigned digit = (unsigned)(text[i] - '0');
        if (v > (UINT64_MAX - digit) / 10) return fy_error(FY_ERR_INVALID, "size '%s' is too large", text);
        v = v * 10 + digit;
    }
    if (v > UINT64_MAX / scale) return fy_error(FY_ERR_INVALID, "size '%s' is too large", text);
    v *= scale;
    if (dot) { /* the fraction, in long double: exact for the digits anyone types */
        long double frac = strtold(dot, NULL) * (long double)scale;
        if ((long double)(UINT64_MAX - v) < frac) return fy_error(FY_ERR_INVALID, "size '%s' is too large", text);
        v += (uint64_t)frac;
    }
    *out = bits ? v / 8 : v;
    return FY_OK;
}

const char *fy_size_ambiguity(const char *text)
{
    if (!text || !*text) return NULL;
    size_t n = strlen(text);
    const size_unit *u = size_unit_of(text, n);
    if (!u) {
        bool zero = strspn(text, "0.") == n;
        return zero ? NULL : "a number without a unit is read as bytes";
    }
    if (u->bits_if_b && text[n - 1] == 'b')
        return "a lower-case final b means bits, as accelerate reads it (6gb is 750 MB); write GB or GiB for bytes";
    if (strlen(u->unit) == 1 && u->scale > 1)
        return "a unit letter alone is read as a power of 2 (G = GiB = 2^30 bytes); write GiB or GB to say which";
    return NULL;
}
