/* Layerwise casting (--storage-dtype fp8_e4m3|fp8_e5m2, --fp8-scale): the
 * weights a model marks castable are quantised once, when the engine is
 * prepared, into the group's host copy; from then on they are stored,
 * uploaded and handed to the model as fp8 with their f32 scales, and the
 * model upcasts them tile by tile as it computes. The engine stays
 * model-agnostic: it never decides what is castable, only how.
 *
 * Each scale vector is one more (hidden) tensor of the group, appended after
 * the declared weights, so it is laid out, pinned, staged and uploaded by
 * the same paths as every weight, and its bytes are counted with them;
 * fy_eng_cast_link points each view's `scale` at it wherever the views land.
 *
 * Host memory: the quantised copy is a heap buffer laid out as the group.
 * When the group is then pinned, the pinned copy takes its place and the
 * heap buffer is freed (the peak while loading is the two fp8 copies, i.e.
 * one bf16 copy); otherwise (mapped, staged, resident, --device cpu) it is
 * the group's host tier. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferry/quant.h"
#include "mem/engine_internal.h"

typedef struct eng_cast {
    fy_tensor *orig;   /* [n_declared], as the model declared them */
    bool *castable;    /* [n_declared] */
    int *scale_of;     /* [n_declared]: src index of the weight's scales, -1 = none */
    fy_dtype storage;  /* the layout's: FY_DTYPE_COUNT = as declared */
    fy_fp8_scale mode;
    void *host;        /* the quantised host copy (g->bytes), or NULL */
    uint64_t host_bytes;
} eng_cast;

static bool is_fp8(fy_dtype t)
{
    return t == FY_F8_E4M3 || t == FY_F8_E5M2;
}

static fy_status new_cast(eng_group *g)
{
    eng_cast *c = calloc(1, sizeof *c);
    size_t n = g->n_declared > 0 ? (size_t)g->n_declared : 1;
    if (c) {
        c->orig = calloc(n, sizeof *c->orig);
        c->castable = calloc(n, sizeof *c->castable);
        c->scale_of = calloc(n, sizeof *c->scale_of);
    }
    if (!c || !c->orig || !c->castable || !c->scale_of) {
        if (c) {
            free(c->orig);
            free(c->castable);
            free(c->scale_of);
        }
        free(c);
        return fy_error(FY_ERR_NOMEM, "engine: out of memory declaring castable weights of %s", g->name);
    }
    for (int i = 0; i < g->n_declared; i++) {
        c->orig[i] = g->src[i];
        c->scale_of[i] = -1;
    }
    c->storage = FY_DTYPE_COUNT;
    g->cast = c;
    return FY_OK;
}

static int64_t rows_of(const fy_tensor *t)
{
    return t->ndim > 0 ? t->shape[0] : 1;
}

static fy_status grow_arrays(eng_group *g, int n)
{
    size_t k = n > 0 ? (size_t)n : 1;
    fy_tensor *src = realloc(g->src, k * sizeof *src);
    if (src) g->src = src;
    fy_tensor *dev = realloc(g->dev, k * sizeof *dev);
    if (dev) g->dev = dev;
    uint64_t *off = realloc(g->offset, k * sizeof *off);
    if (off) g->offset = off;
    if (!src || !dev || !off) return fy_error(FY_ERR_NOMEM, "engine: out of memory laying out %s", g->name);
    return FY_OK;
}

/* The group's layout for storage (FY_DTYPE_COUNT: as declared). */
static fy_status relayout(eng_group *g, fy_dtype storage, fy_fp8_scale mode)
{
    eng_cast *c = g->cast;
    int n = g->n_declared;
    for (int i = 0; i < g->n_declared && is_fp8(storage); i++)
        if (c->castable[i] && fy_fp8_scale_count(mode, rows_of(&c->orig[i])) > 0) n++;
    FY_TRY(grow_arrays(g, n));
    int k = g->n_declared;
    for (int i = 0; i < g->n_declared; i++) {
        g->src[i] = c->orig[i];
        c->scale_of[i] = -1;
        if (!c->castable[i] || !is_fp8(storage)) continue;
        g->src[i].dtype = storage;
        g->src[i].data = NULL; /* until fy_eng_cast_materialize */
        int64_t count = fy_fp8_scale_count(mode, rows_of(&c->orig[i]));
        if (count == 0) continue;
        g->src[k] = fy_tensor_wrap(NULL, FY_F32, 1, &count, FY_HOST);
        c->scale_of[i] = k++;
    }
    g->n = k;
    c->storage = storage;
    c->mode = mode;
    fy_eng_layout_group(g);
    return FY_OK;
}

fy_status fy_engine_mark_castable(fy_engine *e, int group, int weight)
{
    if (e->prepared) return fy_error(FY_ERR_INVALID, "engine: weights are marked castable before fy_engine_prepare");
    if (group < 0 || group >= e->n_groups) return fy_error(FY_ERR_INVALID, "engine: castable weight of unknown group %d", group);
    eng_group *g = &e->groups[group];
    if (weight < 0 || weight >= g->n_declared)
        return fy_error(FY_ERR_INVALID, "engine: group %s has no weight %d", g->name, weight);
    const fy_tensor *t = g->cast ? &g->cast->orig[weight] : &g->src[weight];
    if (t->ndim < 2 || !fy_dtype_is_float(t->dtype) || fy_dtype_size(t->dtype) == 0)
        return fy_error(FY_ERR_INVALID, "engine: group %s weight %d: only float matrices can be stored in fp8",
                        g->name, weight);
    if (!g->cast) FY_TRY(new_cast(g));
    g->cast->castable[weight] = true;
    fy_dtype storage = e->opts.storage_auto ? FY_DTYPE_COUNT : e->opts.storage_dtype;
    return relayout(g, storage, e->opts.fp8_scale);
}

fy_status fy_eng_cast_layout(fy_engine *e, fy_dtype storage)
{
    for (int i = 0; i < e->n_groups; i++)
        if (e->groups[i].cast) FY_TRY(relayout(&e->groups[i], storage, e->opts.fp8_scale));
    return FY_OK;
}

bool fy_eng_cast_any(const fy_engine *e)
{
    for (int i = 0; i < e->n_groups; i++)
        if (e->groups[i].cast) return true;
    return false;
}

static fy_status quantize_group(eng_group *g)
{
    eng_cast *c = g->cast;
    size_t bytes = (size_t)(g->bytes + FY_ENGINE_ALIGN - 1) / FY_ENGINE_ALIGN * FY_ENGINE_ALIGN;
    c->host = aligned_alloc(FY_ENGINE_ALIGN, bytes ? bytes : FY_ENGINE_ALIGN);
    if (!c->host) return fy_error(FY_ERR_NOMEM, "engine: out of host memory for the fp8 copy of %s", g->name);
    c->host_bytes = g->bytes;
    memset(c->host, 0, bytes);
    char *base = c->host;
    for (int i = 0; i < g->n_declared; i++) {
        if (!c->castable[i]) continue;
        const fy_tensor *o = &c->orig[i];
        int64_t rows = rows_of(o), cols = rows ? fy_tensor_numel(o) / rows : 0;
        float *scale = c->scale_of[i] >= 0 ? (float *)(base + g->offset[c->scale_of[i]]) : NULL;
        char what[96];
        snprintf(what, sizeof what, "%s weight %d", g->name, i);
        FY_TRY(fy_fp8_quantize((uint8_t *)base + g->offset[i], scale, c->storage, c->mode, o->data, o->dtype, rows,
                               cols, what));
        g->src[i].data = base + g->offset[i];
        g->src[i].scale = scale;
        g->src[i].scale_rows = c->mode == FY_FP8_SCALE_ROW;
        if (scale) g->src[c->scale_of[i]].data = scale;
    }
    return FY_OK;
}

static bool needs_quantizing(const eng_group *g)
{
    return g->cast && is_fp8(g->cast->storage) && !g->cast->host;
}

/* Quantising reads, scales and rounds every castable weight once: the slow
 * part of loading with --storage-dtype (a minute for a 14B model on one
 * core). Groups are independent, so workers take them in turn; each group's
 * bytes depend only on the group, never on the thread count. */
typedef struct cast_work {
    fy_engine *e;
    atomic_int next;
    pthread_mutex_t mu;
    fy_status st; /* the first failure, and its message */
    char msg[1024]; /* error.c keeps messages this long */
} cast_work;

static void *cast_worker(void *arg)
{
    cast_work *w = arg;
    for (int i; (i = atomic_fetch_add(&w->next, 1)) < w->e->n_groups;) {
        eng_group *g = &w->e->groups[i];
        if (!needs_quantizing(g)) continue;
        fy_status s = quantize_group(g);
        if (s == FY_OK) continue;
        pthread_mutex_lock(&w->mu);
        if (w->st == FY_OK) {
            w->st = s;
            snprintf(w->msg, sizeof w->msg, "%s", fy_error_message());
        }
        pthread_mutex_unlock(&w->mu);
        atomic_store(&w->next, w->e->n_groups); /* the others stop at their next group */
    }
    return NULL;
}

static int cast_threads(const fy_engine *e, int groups)
{
    long cores = e->opts.threads > 0 ? e->opts.threads : sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1) cores = 1;
    return (int)(cores < groups ? cores : groups);
}

fy_status fy_eng_cast_materialize(fy_engine *e)
{
    int groups = 0;
    for (int i = 0; i < e->n_groups; i++) groups += needs_quantizing(&e->groups[i]);
    if (groups == 0) return FY_OK;
    cast_work w = {.e = e, .st = FY_OK};
    atomic_init(&w.next, 0);
    pthread_mutex_init(&w.mu, NULL);
    enum { MAX_HELPERS = 63 };
    pthread_t helpers[MAX_HELPERS];
    int n = cast_threads(e, groups) - 1, started = 0;
    if (n > MAX_HELPERS) n = MAX_HELPERS;
    /* A helper that cannot start leaves its share to the others. */
    while (started < n && pthread_create(&helpers[started], NULL, cast_worker, &w) == 0) started++;
    cast_worker(&w);
    for (int i = 0; i < started; i++) pthread_join(helpers[i], NULL);
    pthread_mutex_destroy(&w.mu);
    return w.st == FY_OK ? FY_OK : fy_error(w.st, "%s", w.msg);
}

static bool in_host_copy(const eng_cast *c, const void *p)
{
    const char *h = c->host;
    return h && (const char *)p >= h && (const char *)p < h + c->host_bytes;
}

void fy_eng_cast_settle(fy_engine *e)
{
    for (int i = 0; i < e->n_groups; i++) {
        eng_group *g = &e->groups[i];
        eng_cast *c = g->cast;
        if (!c || !c->host) continue;
        if (!g->pinned) {
            e->stats.host_bytes += c->host_bytes;
            continue;
        }
        for (int w = 0; w < g->n; w++)
            if (in_host_copy(c, g->src[w].data)) g->src[w].data = (char *)g->pinned + g->offset[w];
        for (int w = 0; w < g->n_declared; w++)
            if (c->scale_of[w] >= 0) g->src[w].scale = g->src[c->scale_of[w]].data;
        free(c->host);
        c->host = NULL;
    }
}

void fy_eng_cast_link(eng_group *g)
{
    const eng_cast *c = g->cast;
    if (!c || !is_fp8(c->storage)) return;
    for (int w = 0; w < g->n_declared; w++) {
        if (!c->castable[w]) continue;
        g->dev[w].scale = c->scale_of[w] >= 0 ? g->dev[c->scale_of[w]].data : NULL;
        g->dev[w].scale_rows = c->mode == FY_FP8_SCALE_ROW;
    }
}

void fy_eng_cast_free(eng_group *g)
{
    eng_cast *c = g->cast;
    if (!c) return;
    free(c->host);
    free(c->orig);
    free(c->castable);
    free(c->scale_of);
    free(c);
    g->cast = NULL;
}

uint64_t fy_engine_cast_bytes(const fy_engine *e, uint64_t *as_declared)
{
    uint64_t cast = 0, orig = 0;
    for (int i = 0; i < e->n_groups; i++) {
        const eng_group *g = &e->groups[i];
        if (!g->cast) continue;
        for (int w = 0; w < g->n_declared; w++) {
            if (!g->cast->castable[w]) continue;
            orig += fy_tensor_nbytes(&g->cast->orig[w]);
            cast += fy_tensor_nbytes(&g->src[w]);
            if (g->cast->scale_of[w] >= 0) cast += fy_tensor_nbytes(&g->src[g->cast->scale_of[w]]);
        }
    }
    if (as_declared) *as_declared = orig;
    return cast;
}
