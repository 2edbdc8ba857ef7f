/* Generated tensors for the random Wan model: each element is a function of
 * (seed, tensor name, index), so a tensor can be produced chunk by chunk
 * while the file is written, in any order, with the same bytes every time. */
#include <stdlib.h>
#include <string.h>

#include "demo/wan_random_internal.h"

typedef struct rnd_spec {
    uint64_t key;
    float mean, std;
    fy_dtype dtype;
} rnd_spec;

struct rnd_file {
    fy_st_writer *w;
    uint64_t seed;
    fy_dtype dtype;
    rnd_spec **specs; /* one allocation each: the writer keeps pointers to them */
    size_t n, cap;
};

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static uint64_t name_hash(const char *s)
{
    uint64_t h = 0xCBF29CE484222325ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001B3ull;
    return h;
}

/* Irwin-Hall: the sum of four uniforms, rescaled to unit variance, is close
 * enough to a normal for random weights and needs no transcendental call
 * (a 14B model has 14e9 of them). */
static float unit_normal(uint64_t key, uint64_t i)
{
    uint64_t h = splitmix64(key ^ (i * 0xD1B54A32D192ED03ull));
    float sum = (float)(h & 0xFFFF) + (float)((h >> 16) & 0xFFFF) + (float)((h >> 32) & 0xFFFF) + (float)(h >> 48);
    return (sum / 65535.0f - 2.0f) * 1.7320508f; /* variance of 4 uniforms on [0,1] is 1/3 */
}

static fy_status fill(void *user, uint64_t offset, void *dst, size_t nbytes)
{
    const rnd_spec *s = user;
    size_t es = fy_dtype_size(s->dtype), n = nbytes / es;
    uint64_t first = offset / es;
    for (size_t j = 0; j < n; j++) {
        float v = s->std > 0 ? s->mean + s->std * unit_normal(s->key, first + j) : s->mean;
        if (s->dtype == FY_BF16) ((uint16_t *)dst)[j] = fy_f32_to_bf16(v);
        else if (s->dtype == FY_F16) ((uint16_t *)dst)[j] = fy_f32_to_f16(v);
        else ((float *)dst)[j] = v;
    }
    return FY_OK;
}

fy_status rnd_file_create(uint64_t seed, fy_dtype dtype, rnd_file **out)
{
    *out = NULL;
    if (dtype != FY_F32 && dtype != FY_BF16 && dtype != FY_F16)
        return fy_error(FY_ERR_INVALID, "random model: dtype %s; use f32, bf16 or f16", fy_dtype_name(dtype));
    rnd_file *f = calloc(1, sizeof *f);
    if (!f) return fy_error(FY_ERR_NOMEM, "random model: out of memory");
    f->seed = seed;
    f->dtype = dtype;
    fy_status s = fy_st_writer_create(&f->w);
    if (s == FY_OK) s = fy_st_writer_set_metadata(f->w, "format", "pt");
    if (s != FY_OK) {
        rnd_file_free(f);
        return s;
    }
    *out = f;
    return FY_OK;
}

static fy_status add(rnd_file *f, const char *name, int ndim, const int64_t *shape, float mean, float std)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 64;
        rnd_spec **p = realloc(f->specs, cap * sizeof *p);
        if (!p) return fy_error(FY_ERR_NOMEM, "random model: out of memory");
        f->specs = p;
        f->cap = cap;
    }
    rnd_spec *s = malloc(sizeof *s);
    if (!s) return fy_error(FY_ERR_NOMEM, "random model: out of memory");
    *s = (rnd_spec){splitmix64(f->seed ^ name_hash(name)), mean, std, f->dtype};
    f->specs[f->n++] = s;
    return fy_st_writer_add_generated(f->w, name, f->dtype, ndim, shape, fill, s);
}

fy_status rnd_normal(rnd_file *f, const char *name, int ndim, const int64_t *shape, double std)
{
    return add(f, name, ndim, shape, 0.0f, (float)std);
}

fy_status rnd_const(rnd_file *f, const char *name, int ndim, const int64_t *shape, double value)
{
    return add(f, name, ndim, shape, (float)value, 0.0f);
}

fy_status rnd_file_finish(rnd_file *f, const char *path)
{
    return fy_st_writer_finish(f->w, path);
}

void rnd_file_free(rnd_file *f)
{
    if (!f) return;
    fy_st_writer_free(f->w);
    for (size_t i = 0; i < f->n; i++) free(f->specs[i]);
    free(f->specs);
    free(f);
}
