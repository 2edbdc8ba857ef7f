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
 * the group's host tier.
 *
 * Narrow storage (--storage-dtype bf16|f16, the default for f32 weights on a
 * GPU device) converts every float tensor of two or more dims that is stored
 * wider than the target, in every group: the engine decides this alone, the
 * models read any float dtype. A pinned group is converted straight from the
 * mapping into its pinned copy by the pinning thread (fy_eng_cast_fill, with
 * helpers), so no second copy exists; groups that are not pinned get a heap
 * copy as fp8 does. */
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
    bool *castable;    /* [n_declared]: marked by the model (fp8) */
    bool *now;         /* [n_declared]: converted in the current layout */
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
        c->now = calloc(n, sizeof *c->now);
    }
    if (!c || !c->orig || !c->castable || !c->scale_of || !c->now) {
        if (c) {
            free(c->now);
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

/* What narrow storage converts: float tensors of 2+ dims stored wider (the
 * vectors, norms and biases are a rounding error of the bytes and stay). */
static bool narrow_converts(const fy_tensor *t, fy_dtype storage)
{
    return fy_storage_is_narrow(storage) && t->ndim >= 2 && fy_dtype_is_float(t->dtype) &&
           fy_dtype_size(t->dtype) > fy_dtype_size(storage);
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
        c->now[i] = (is_fp8(storage) && c->castable[i]) || narrow_converts(&c->orig[i], storage);
        if (!c->now[i]) continue;
        g->src[i].dtype = storage;
        g->src[i].data = NULL; /* until fy_eng_cast_materialize or the pinned fill */
        if (!is_fp8(storage)) continue;
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

fy_status fy_engine_keep_stored(fy_engine *e, int component)
{
    if (component < 0 || component >= e->n_comps)
        return fy_error(FY_ERR_INVALID, "engine: fy_engine_keep_stored of unknown component %d", component);
    e->comps[component].keep_stored = true;
    return FY_OK;
}


/* At declaration, under narrow storage: lay the group out converted. */
fy_status fy_eng_cast_declare(fy_engine *e, eng_group *g)
{
    fy_dtype storage = e->opts.storage_auto ? FY_DTYPE_COUNT : e->opts.storage_dtype;
    if (!fy_storage_is_narrow(storage) || e->comps[g->component].keep_stored) return FY_OK;
    bool any = false;
    for (int i = 0; i < g->n_declared; i++) any = any || narrow_converts(&g->src[i], storage);
    if (!any) return FY_OK;
    FY_TRY(new_cast(g));
    return relayout(g, storage, e->opts.fp8_scale);
}

fy_status fy_engine_mark_castable(fy_engine *e, int group, int weight)
{
    if (e->prepared) return fy_error(FY_ERR_INVALID, "engine: weights are marked castable before fy_engine_prepare");
    if (group < 0 || group >= e->n_groups) return fy_error(FY_ERR_INVALID, "engine: castable weight of unknown group %d", group);
    eng_group *g = &e->groups[group];
    if (weight < 0 || weight >= g->n_declared)
        return fy_error(FY_ERR_INVALID, "engine: group %s has no weight %d", g->name, weight);
    const fy_tensor *t = g->cast ? &g->cast->orig[weight] : &g->src[weight];
    if (fy_dtype_is_quant(t->dtype)) return FY_OK; /* GGUF blocks are stored and moved as they are */
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
    if (!c->host) return fy_error(FY_ERR_NOMEM, "engine: out of host memory for the %s copy of %s", fy_storage_dtype_flag_name(c->storage), g->name);
    c->host_bytes = g->bytes;
    memset(c->host, 0, bytes);
    char *base = c->host;
    for (int i = 0; i < g->n_declared; i++) {
        if (!c->now[i]) continue;
        const fy_tensor *o = &c->orig[i];
        g->src[i].data = base + g->offset[i];
        if (!is_fp8(c->storage)) {
            FY_TRY(fy_convert(g->src[i].data, c->storage, o->data, o->dtype, (size_t)fy_tensor_numel(o)));
            continue;
        }
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

static bool needs_quantizing(const eng_group *g, bool narrow)
{
    const eng_cast *c = g->cast;
    if (!c || c->host || g->pin_pending || g->tier == FY_TIER_DISK) return false;
    return narrow ? fy_storage_is_narrow(c->storage) : is_fp8(c->storage);
}

/* Quantising reads, scales and rounds every castable weight once: the slow
 * part of loading with --storage-dtype (a minute for a 14B model on one
 * core). Groups are independent, so workers take them in turn; each group's
 * bytes depend only on the group, never on the thread count. */
typedef struct cast_work {
    fy_engine *e;
    bool narrow;
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
        if (!needs_quantizing(g, w->narrow)) continue;
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

fy_status fy_eng_cast_materialize(fy_engine *e, bool narrow)
{
    int groups = 0;
    for (int i = 0; i < e->n_groups; i++) groups += needs_quantizing(&e->groups[i], narrow);
    if (groups == 0) return FY_OK;
    cast_work w = {.e = e, .narrow = narrow, .st = FY_OK};
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

/* Filling a pinned copy under narrow storage: the group's tensors in pieces
 * of at most FILL_CHUNK elements, converted or copied by the pinning thread
 * and helpers. */
#define FILL_CHUNK ((size_t)1 << 22)

typedef struct fill_piece {
    char *dst;
    const char *src;
    fy_dtype dst_type, src_type;
    size_t n;
} fill_piece;

typedef struct fill_work {
    const fill_piece *piece;
    int n;
    atomic_int next;
} fill_work;

static void *fill_worker(void *arg)
{
    fill_work *w = arg;
    for (int i; (i = atomic_fetch_add(&w->next, 1)) < w->n;) {
        const fill_piece *p = &w->piece[i];
        if (p->dst_type == p->src_type) memcpy(p->dst, p->src, p->n * fy_dtype_size(p->src_type));
        else (void)fy_convert(p->dst, p->dst_type, p->src, p->src_type, p->n); /* float to float: cannot fail */
    }
    return NULL;
}

static int fill_pieces(const eng_group *g, char *dst, fill_piece *out)
{
    const eng_cast *c = g->cast;
    int n = 0;
    for (int w = 0; w < g->n; w++) {
        bool conv = c && w < g->n_declared && c->now[w];
        const fy_tensor *from = conv ? &c->orig[w] : &g->src[w];
        fy_dtype st = from->dtype, dt = g->src[w].dtype;
        size_t total = (size_t)fy_tensor_numel(from);
        if (fy_tensor_nbytes(from) == 0) continue;
        for (size_t at = 0; at < total; at += FILL_CHUNK, n++) {
            if (!out) continue;
            size_t k = total - at < FILL_CHUNK ? total - at : FILL_CHUNK;
            out[n] = (fill_piece){dst + g->offset[w] + at * fy_dtype_size(dt),
                                  (const char *)from->data + at * fy_dtype_size(st), dt, st, k};
        }
    }
    return n;
}

void fy_eng_cast_fill(const fy_engine *e, const eng_group *g, void *dst)
{
    memset(dst, 0, g->bytes); /* alignment padding */
    int n = fill_pieces(g, dst, NULL);
    fill_piece *piece = malloc((size_t)(n > 0 ? n : 1) * sizeof *piece);
    fill_work w = {.piece = piece, .n = piece ? n : 0};
    atomic_init(&w.next, 0);
    if (!piece) { /* no room for the list: one tensor at a time */
        for (int i = 0; i < g->n; i++) {
            fill_piece one[1];
            const eng_cast *c = g->cast;
            bool conv = c && i < g->n_declared && c->now[i];
            const fy_tensor *from = conv ? &c->orig[i] : &g->src[i];
            one[0] = (fill_piece){(char *)dst + g->offset[i], from->data, g->src[i].dtype, from->dtype,
                                  (size_t)fy_tensor_numel(from)};
            fill_work single = {.piece = one, .n = fy_tensor_nbytes(from) ? 1 : 0};
            atomic_init(&single.next, 0);
            fill_worker(&single);
        }
        return;
    }
    fill_pieces(g, dst, piece);
    enum { MAX_HELPERS = 63 };
    pthread_t helpers[MAX_HELPERS];
    int k = cast_threads(e, n) - 1, started = 0;
    if (k > MAX_HELPERS) k = MAX_HELPERS;
    while (started < k && pthread_create(&helpers[started], NULL, fill_worker, &w) == 0) started++;
    fill_worker(&w);
    for (int i = 0; i < started; i++) pthread_join(helpers[i], NULL);
    free(piece);
}

const fy_tensor *fy_eng_cast_declared(const eng_group *g)
{
    return g->cast ? g->cast->orig : g->src;
}

bool fy_eng_cast_pins_itself(const eng_group *g)
{
    return g->cast && fy_storage_is_narrow(g->cast->storage);
}

static bool in_host_copy(const eng_cast *c, const void *p)
{
    const char *h = c->host;
    return h && (const char *)p >= h && (const char *)p < h + c->host_bytes;
}

void fy_eng_cast_settle(fy_engine *e)
{
    bool synced = false;
    for (int i = 0; i < e->n_groups; i++) {
        eng_group *g = &e->groups[i];
        eng_cast *c = g->cast;
        if (!c || !c->host) continue;
        /* A successor's resident groups are uploaded when it starts: their
         * copy stays until then (fy_eng_deferred). */
        if (g->resident && !e->backend->unified_host_memory && !fy_eng_deferred(e, g)) {
            /* Uploaded at prepare and never again: the heap copy goes once the copy is done. */
            if (!synced) synced = fy_backend_synchronize(e->backend) == FY_OK;
            if (!synced) {
                e->stats.host_bytes += c->host_bytes;
                continue;
            }
            for (int w = 0; w < g->n; w++)
                if (in_host_copy(c, g->src[w].data)) g->src[w].data = NULL;
            free(c->host);
            c->host = NULL;
            continue;
        }
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
        if (!c->now[w]) continue;
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
    free(c->now);
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
            if (!g->cast->now[w] && !g->cast->castable[w]) continue;
            orig += fy_tensor_nbytes(&g->cast->orig[w]);
            cast += fy_tensor_nbytes(&g->src[w]);
            if (g->cast->scale_of[w] >= 0) cast += fy_tensor_nbytes(&g->src[g->cast->scale_of[w]]);
        }
    }
    if (as_declared) *as_declared = orig;
    return cast;
}
