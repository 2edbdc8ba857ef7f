/* Reading a GGUF file (version 2 or 3, ggml's docs/gguf.md) into an
 * fy_st_file, so a GGUF checkpoint is looked up, viewed and streamed as a
 * safetensors one is.
 *
 *   "GGUF" u32 version, u64 tensor_count, u64 kv_count
 *   kv_count x (string key, u32 type, value)       metadata
 *   tensor_count x (string name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset)
 *   padding to general.alignment (default 32), then the data section
 * Strings are a u64 length and bytes; everything is little-endian.
 *
 * The file is untrusted: every count, length and offset is checked against
 * the bytes that remain before it is used, products of dimensions against
 * overflow, offsets against the alignment and the end of the file, and
 * tensors against each other (no overlap). Shapes are reported in PyTorch
 * order (ggml's ne reversed: ne[0] is the innermost dimension), or as
 * ComfyUI-GGUF's "comfy.gguf.orig_shape.NAME" metadata gives them. String
 * metadata (general.architecture, ...) is kept as fy_st_metadata. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors_internal.h"

#define GGUF_MAX_DIMS 4                  /* ggml's GGML_MAX_DIMS */
#define GGUF_MAX_NAME 1024               /* tensor names (ggml: 64) and keys */
#define GGUF_MAX_COUNT ((uint64_t)1 << 24) /* tensors, keys, array entries */
#define GGUF_MAX_DIM ((uint64_t)1 << 40)
#define GGUF_MAX_ELEMENTS ((uint64_t)1 << 56) /* so that byte counts cannot overflow */
#define GGUF_DEFAULT_ALIGNMENT 32u
#define ORIG_SHAPE_KEY "comfy.gguf.orig_shape."

/* Metadata value types. */
enum {
    T_U8 = 0, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STRING, T_ARRAY, T_U64, T_I64, T_F64,
    T_COUNT
};

typedef struct reader {
    const uint8_t *p;
    uint64_t left;
    const char *path;
} reader;

/* A tensor shape from "comfy.gguf.orig_shape.NAME". */
typedef struct orig_shape {
    char *name;
    int ndim;
    int64_t shape[FY_ST_MAX_DIMS];
} orig_shape;

typedef struct gguf_meta {
    uint32_t alignment;
    bool has_alignment;
    orig_shape *orig;
    size_t orig_count;
} gguf_meta;

bool fy_gguf_magic(const uint8_t *base, size_t size)
{
    return size >= 4 && memcmp(base, "GGUF", 4) == 0;
}

static fy_status truncated(const reader *r, const char *what)
{
    return fy_error(FY_ERR_FORMAT, "%s: the file ends inside %s: it is truncated or not a GGUF file; re-download it",
                    r->path, what);
}

static fy_status take(reader *r, uint64_t n, const char *what, const uint8_t **out)
{
    if (n > r->left) return truncated(r, what);
    *out = r->p;
    r->p += n;
    r->left -= n;
    return FY_OK;
}

static fy_status u32_at(reader *r, const char *what, uint32_t *out)
{
    const uint8_t *b = NULL;
    FY_TRY(take(r, 4, what, &b));
    *out = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return FY_OK;
}

static fy_status u64_at(reader *r, const char *what, uint64_t *out)
{
    uint32_t lo = 0, hi = 0;
    FY_TRY(u32_at(r, what, &lo));
    FY_TRY(u32_at(r, what, &hi));
    *out = (uint64_t)hi << 32 | lo;
    return FY_OK;
}

/* A string of at most max bytes, NUL-free, copied out. */
static fy_status string_at(reader *r, uint64_t max, const char *what, char **out)
{
    uint64_t n = 0;
    const uint8_t *b = NULL;
    FY_TRY(u64_at(r, what, &n));
    if (n > max)
        return fy_error(FY_ERR_FORMAT, "%s: %s is %" PRIu64 " bytes long (limit %" PRIu64 "): a corrupt GGUF file",
                        r->path, what, n, max);
    FY_TRY(take(r, n, what, &b));
    if (memchr(b, 0, (size_t)n) || !fy_st_utf8_valid(b, (size_t)n))
        return fy_error(FY_ERR_FORMAT, "%s: %s is not valid UTF-8 text: a corrupt GGUF file", r->path, what);
    char *s = malloc((size_t)n + 1);
    if (!s) return fy_error(FY_ERR_NOMEM, "%s: out of memory", r->path);
    memcpy(s, b, (size_t)n);
    s[n] = '\0';
    *out = s;
    return FY_OK;
}

static uint64_t scalar_size(uint32_t type)
{
    static const uint8_t size[T_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return type < T_COUNT ? size[type] : 0;
}

static fy_status bad_type(const reader *r, const char *key, uint32_t type)
{
    return fy_error(FY_ERR_FORMAT, "%s: metadata \"%s\" has value type %" PRIu32 ", which GGUF does not define "
                    "(or an array of arrays): a corrupt or newer GGUF file", r->path, key, type);
}

/* Skips one value of a type (an array: its element type and entries). */
static fy_status skip_value(reader *r, const char *key, uint32_t type, bool in_array)
{
    const uint8_t *b = NULL;
    if (type == T_STRING) {
        uint64_t n = 0;
        FY_TRY(u64_at(r, "a metadata string", &n));
        return take(r, n, "a metadata string", &b);
    }
    if (type == T_ARRAY && !in_array) {
        uint32_t elem = 0;
        uint64_t count = 0;
        FY_TRY(u32_at(r, "a metadata array", &elem));
        FY_TRY(u64_at(r, "a metadata array", &count));
        if (count > GGUF_MAX_COUNT)
            return fy_error(FY_ERR_FORMAT, "%s: metadata \"%s\" has %" PRIu64 " entries (limit %" PRIu64 ")",
                            r->path, key, count, GGUF_MAX_COUNT);
        if (elem != T_STRING && scalar_size(elem)) return take(r, count * scalar_size(elem), "a metadata array", &b);
        for (uint64_t i = 0; i < count; i++) FY_TRY(skip_value(r, key, elem, true));
        return FY_OK;
    }
    if (!scalar_size(type)) return bad_type(r, key, type);
    return take(r, scalar_size(type), "a metadata value", &b);
}

static int64_t int_element(const uint8_t *b, uint32_t type)
{
    uint64_t v = 0;
    for (uint64_t i = scalar_size(type); i-- > 0;) v = v << 8 | b[i];
    if (type == T_I32) return (int32_t)(uint32_t)v;
    return (int64_t)v; /* u32, i64 (two's complement), u64 (checked by the caller's range) */
}

/* ComfyUI-GGUF's original shape of a tensor ggml stores with fewer dims. */
static fy_status read_orig_shape(reader *r, const char *key, uint32_t type, gguf_meta *m)
{
    uint32_t elem = 0;
    uint64_t count = 0;
    const uint8_t *b = NULL;
    if (type != T_ARRAY) return skip_value(r, key, type, false);
    FY_TRY(u32_at(r, "a metadata array", &elem));
    FY_TRY(u64_at(r, "a metadata array", &count));
    bool ints = elem == T_I32 || elem == T_U32 || elem == T_I64 || elem == T_U64;
    if (!ints || count < 1 || count > FY_ST_MAX_DIMS)
        return fy_error(FY_ERR_FORMAT, "%s: metadata \"%s\" is not a list of 1 to %d integers", r->path, key,
                        FY_ST_MAX_DIMS);
    FY_TRY(take(r, count * scalar_size(elem), "a metadata array", &b));
    orig_shape *grown = realloc(m->orig, (m->orig_count + 1) * sizeof *grown);
    if (!grown) return fy_error(FY_ERR_NOMEM, "%s: out of memory", r->path);
    m->orig = grown;
    orig_shape *o = &m->orig[m->orig_count];
    o->ndim = (int)count;
    for (uint64_t i = 0; i < count; i++) {
        int64_t d = int_element(b + i * scalar_size(elem), elem);
        if (d < 0 || (uint64_t)d > GGUF_MAX_DIM)
            return fy_error(FY_ERR_FORMAT, "%s: metadata \"%s\" holds the dimension %lld", r->path, key, (long long)d);
        o->shape[i] = d;
    }
    o->name = fy_st_dup_string(key + strlen(ORIG_SHAPE_KEY));
    if (!o->name) return fy_error(FY_ERR_NOMEM, "%s: out of memory", r->path);
    m->orig_count++;
    return FY_OK;
}

static fy_status add_string_meta(fy_st_file *f, char *key, char *value)
{
    fy_st_meta *grown = realloc(f->meta, (f->meta_count + 1) * sizeof *grown);
    if (!grown) {
        free(key);
        free(value);
        return fy_error(FY_ERR_NOMEM, "%s: out of memory", f->path);
    }
    f->meta = grown;
    f->meta[f->meta_count++] = (fy_st_meta){key, value};
    return FY_OK;
}

static fy_status read_alignment(reader *r, const char *key, uint32_t type, gguf_meta *m)
{
    if (type != T_U32)
        return fy_error(FY_ERR_FORMAT, "%s: metadata \"%s\" is not a u32", r->path, key);
    FY_TRY(u32_at(r, "general.alignment", &m->alignment));
    if (m->alignment == 0 || (m->alignment & (m->alignment - 1)) || m->alignment > (1u << 20))
        return fy_error(FY_ERR_FORMAT, "%s: general.alignment is %" PRIu32 "; GGUF needs a power of two",
                        r->path, m->alignment);
    m->has_alignment = true;
    return FY_OK;
}

/* One key and its value; the key is moved into f->meta for strings. */
static fy_status read_kv(reader *r, fy_st_file *f, gguf_meta *m)
{
    char *key = NULL;
    uint32_t type;
    FY_TRY(string_at(r, GGUF_MAX_NAME, "a metadata key", &key));
    fy_status s = u32_at(r, "a metadata type", &type);
    if (s == FY_OK && type == T_STRING) {
        char *value = NULL;
        s = string_at(r, r->left, "a metadata string", &value);
        if (s == FY_OK) return add_string_meta(f, key, value); /* owns key now */
    } else if (s == FY_OK && strcmp(key, "general.alignment") == 0) {
        s = m->has_alignment ? fy_error(FY_ERR_FORMAT, "%s: general.alignment is set twice", r->path)
                             : read_alignment(r, key, type, m);
    } else if (s == FY_OK && strncmp(key, ORIG_SHAPE_KEY, strlen(ORIG_SHAPE_KEY)) == 0) {
        s = read_orig_shape(r, key, type, m);
    } else if (s == FY_OK) {
        s = skip_value(r, key, type, false);
    }
    free(key);
    return s;
}

/* ---- Tensor infos --------------------------------------------------------- */

static const char *ggml_type_name(uint32_t t)
{
    static const char *const names[] = {
        "F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K",
        "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S",
        "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M", "BF16", "Q4_0_4_4", "Q4_0_4_8",
        "Q4_0_8_8", "TQ1_0", "TQ2_0",
    };
    return t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

static bool dtype_of(uint32_t ggml, fy_dtype *out)
{
    switch (ggml) {
    case 0: *out = FY_F32; return true;
    case 1: *out = FY_F16; return true;
    case 2: *out = FY_Q4_0; return true;
    case 8: *out = FY_Q8_0; return true;
    case 12: *out = FY_Q4_K; return true;
    case 13: *out = FY_Q5_K; return true;
    case 14: *out = FY_Q6_K; return true;
    case 30: *out = FY_BF16; return true;
    default: return false;
    }
}

static fy_status read_dims(reader *r, const char *name, fy_st_info *t, uint64_t *numel)
{
    uint32_t n_dims;
    FY_TRY(u32_at(r, "a tensor's rank", &n_dims));
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return fy_error(FY_ERR_FORMAT, "%s: tensor '%s' has %" PRIu32 " dimensions; GGUF allows 1 to %d", r->path,
                        name, n_dims, GGUF_MAX_DIMS);
    t->ndim = (int)n_dims;
    *numel = 1;
    for (uint32_t i = 0; i < n_dims; i++) {
        uint64_t ne;
        FY_TRY(u64_at(r, "a tensor's shape", &ne));
        if (ne > GGUF_MAX_DIM)
            return fy_error(FY_ERR_FORMAT, "%s: tensor '%s' has a dimension of %" PRIu64 ": a corrupt GGUF file",
                            r->path, name, ne);
        t->shape[n_dims - 1 - i] = (int64_t)ne; /* ne[0] is the innermost */
        if (ne && *numel > UINT64_MAX / ne)
            return fy_error(FY_ERR_FORMAT, "%s: tensor '%s' has more elements than 64 bits count", r->path, name);
        *numel *= ne;
    }
    return FY_OK;
}

static fy_status read_type(reader *r, const char *name, fy_st_info *t)
{
    uint32_t type;
    FY_TRY(u32_at(r, "a tensor's type", &type));
    if (!dtype_of(type, &t->dtype))
        return fy_error(FY_ERR_UNSUPPORTED,
                        "%s: tensor '%s' has ggml type %" PRIu32 " (%s), which ferry does not read; it reads F32, "
                        "F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K and Q6_K (pick one of those quantisations)",
                        r->path, name, type, ggml_type_name(type));
    if (t->shape[t->ndim - 1] % fy_dtype_block(t->dtype) != 0)
        return fy_error(FY_ERR_FORMAT, "%s: tensor '%s' is %s with rows of %lld values, not whole %u-value blocks",
                        r->path, name, fy_dtype_name(t->dtype), (long long)t->shape[t->ndim - 1],
                        fy_dtype_block(t->dtype));
    return FY_OK;
}

static fy_status read_tensor(reader *r, fy_st_file *f)
{
    fy_st_info *t = &f->tensors[f->count];
    char *name = NULL;
    uint64_t numel = 0;
    FY_TRY(string_at(r, GGUF_MAX_NAME, "a tensor name", &name));
    t->name = name;
    f->count++; /* owns the name from here: fy_st_close frees it */
    FY_TRY(read_dims(r, name, t, &numel));
    if (numel > GGUF_MAX_ELEMENTS)
        return fy_error(FY_ERR_FORMAT, "%s: tensor '%s' has %" PRIu64 " elements: a corrupt GGUF file", r->path,
                        name, numel);
    FY_TRY(read_type(r, name, t));
    t->nbytes = fy_dtype_bytes(t->dtype, numel);
    return u64_at(r, "a tensor's offset", &t->offset);
}

/* ComfyUI-GGUF's original shapes replace ggml's where they name a tensor
 * with as many elements. A quantised tensor's blocks then need not follow
 * its rows: it can only be read whole (fy_st_set_view_f32). */
static fy_status apply_orig_shapes(fy_st_file *f, const gguf_meta *m)
{
    for (size_t i = 0; i < m->orig_count; i++) {
        const orig_shape *o = &m->orig[i];
        const fy_st_info *found = fy_st_find(f, o->name);
        if (!found) continue;
        fy_st_info *t = (fy_st_info *)found;
        uint64_t have = 1, want = 1;
        for (int d = 0; d < t->ndim; d++) have *= (uint64_t)t->shape[d];
        for (int d = 0; d < o->ndim; d++) want = o->shape[d] && want > UINT64_MAX / (uint64_t)o->shape[d]
                                                  ? 0 : want * (uint64_t)o->shape[d];
        if (want != have)
            return fy_error(FY_ERR_FORMAT, "%s: metadata \"%s%s\" gives a shape that does not fit tensor '%s'",
                            f->path, ORIG_SHAPE_KEY, o->name, o->name);
        t->ndim = o->ndim;
        memcpy(t->shape, o->shape, sizeof t->shape);
    }
    return FY_OK;
}

static int cmp_offset(const void *a, const void *b)
{
    const fy_st_info *x = a, *y = b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

/* Aligned offsets, inside the data section, no two tensors overlapping
 * (f->tensors in offset order). */
static fy_status check_offsets(fy_st_file *f, uint32_t alignment)
{
    uint64_t end = 0;
    for (size_t i = 0; i < f->count; i++) {
        const fy_st_info *t = &f->tensors[i];
        if (t->offset % alignment)
            return fy_error(FY_ERR_FORMAT, "%s: tensor '%s' starts at data offset %" PRIu64
                            ", not a multiple of the alignment %" PRIu32 ": a corrupt GGUF file",
                            f->path, t->name, t->offset, alignment);
        if (t->offset > f->data_size || t->nbytes > f->data_size - t->offset)
            return fy_error(FY_ERR_FORMAT, "%s: tensor '%s' (%" PRIu64 " bytes at data offset %" PRIu64
                            ") ends past the end of the file (%" PRIu64 " bytes of data): the file is truncated; "
                            "re-download it", f->path, t->name, t->nbytes, t->offset, f->data_size);
        if (t->offset < end)
            return fy_error(FY_ERR_FORMAT, "%s: tensor '%s' overlaps the tensor before it: a corrupt GGUF file",
                            f->path, t->name);
        end = t->offset + t->nbytes;
    }
    for (size_t i = 0; i < f->count; i++) f->tensors[i].data = f->data + f->tensors[i].offset;
    return FY_OK;
}

static int cmp_meta_key(const void *a, const void *b)
{
    const fy_st_meta *x = a, *y = b;
    return strcmp(x->key, y->key);
}

static fy_status index_meta(fy_st_file *f)
{
    f->has_meta = true;
    if (f->meta_count) qsort(f->meta, f->meta_count, sizeof *f->meta, cmp_meta_key);
    for (size_t i = 1; i < f->meta_count; i++)
        if (strcmp(f->meta[i - 1].key, f->meta[i].key) == 0)
            return fy_error(FY_ERR_FORMAT, "%s: metadata key \"%s\" is there twice", f->path, f->meta[i].key);
    return FY_OK;
}

static fy_status read_header(reader *r, uint64_t *n_tensors, uint64_t *n_kv)
{
    const uint8_t *magic = NULL;
    uint32_t version;
    if (r->left < 4 || !fy_gguf_magic(r->p, (size_t)r->left))
        return fy_error(FY_ERR_FORMAT, "%s: not a GGUF file (it does not start with \"GGUF\")", r->path);
    FY_TRY(take(r, 4, "the header", &magic));
    FY_TRY(u32_at(r, "the header", &version));
    if (version != 2 && version != 3)
        return fy_error(FY_ERR_UNSUPPORTED, "%s: GGUF version %" PRIu32 "; ferry reads versions 2 and 3", r->path,
                        version);
    FY_TRY(u64_at(r, "the header", n_tensors));
    FY_TRY(u64_at(r, "the header", n_kv));
    /* Each tensor info takes at least 24 bytes, each key/value 13. */
    if (*n_tensors > GGUF_MAX_COUNT || *n_kv > GGUF_MAX_COUNT || *n_tensors > r->left / 24 || *n_kv > r->left / 13)
        return fy_error(FY_ERR_FORMAT, "%s: the header counts %" PRIu64 " tensors and %" PRIu64
                        " metadata keys, more than the file holds: it is truncated or corrupt; re-download it",
                        r->path, *n_tensors, *n_kv);
    return FY_OK;
}

static fy_status parse(fy_st_file *f, gguf_meta *m)
{
    reader r = {f->base, f->size, f->path};
    uint64_t n_tensors, n_kv;
    FY_TRY(read_header(&r, &n_tensors, &n_kv));
    for (uint64_t i = 0; i < n_kv; i++) FY_TRY(read_kv(&r, f, m));
    FY_TRY(index_meta(f));
    f->tensors = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *f->tensors);
    if (!f->tensors) return fy_error(FY_ERR_NOMEM, "%s: out of memory", f->path);
    for (uint64_t i = 0; i < n_tensors; i++) FY_TRY(read_tensor(&r, f));
    uint32_t align = m->has_alignment ? m->alignment : GGUF_DEFAULT_ALIGNMENT;
    uint64_t at = f->size - r.left, pad = (align - at % align) % align;
    if (pad > r.left) return truncated(&r, "the padding before the tensor data");
    f->data = f->base + at + pad;
    f->data_size = r.left - pad;
    qsort(f->tensors, f->count, sizeof *f->tensors, cmp_offset);
    FY_TRY(fy_st_index_names(f));
    FY_TRY(apply_orig_shapes(f, m));
    return check_offsets(f, align);
}

fy_status fy_gguf_parse(fy_st_file *f)
{
    gguf_meta m = {0};
    fy_status s = parse(f, &m);
    for (size_t i = 0; i < m.orig_count; i++) free(m.orig[i].name);
    free(m.orig);
    return s;
}
