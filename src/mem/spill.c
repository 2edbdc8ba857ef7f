/* --device-map auto over several devices, as accelerate's "auto" places one
 * model: the first device computes and holds what fits of it (resident
 * blocks, the ring, the activations); the next blocks, in resident rank
 * order, stay resident on the other devices while they fit; the rest stream
 * from the host through the first device's ring. The other devices only
 * hold weights: each has its own backend (copy engine) and pool, so its
 * budget is enforced and its peak measured like the first one's. */
#include <stdio.h>
#include <stdlib.h>

#include "ferry/log.h"
#include "mem/engine_internal.h"

fy_status fy_eng_spill_create(fy_engine *e)
{
    const fy_run_options *o = &e->opts;
    if (o->device_map != FY_DEVICE_MAP_AUTO || o->device == FY_DEVICE_CPU) return FY_OK;
    int n = 0;
    for (int d = 0; d < FY_MAX_DEVICES; d++) n += d != o->device_index && o->max_memory[d] > 0;
    if (!n) return FY_OK;
    e->spill = calloc((size_t)n, sizeof *e->spill);
    if (!e->spill) return fy_error(FY_ERR_NOMEM, "engine: out of memory for the other devices");
    for (int d = 0; d < FY_MAX_DEVICES; d++) {
        if (d == o->device_index || !o->max_memory[d]) continue;
        eng_spill *s = &e->spill[e->n_spill++];
        fy_run_options other = *o;
        other.device_index = d;
        s->device = d;
        s->budget = o->max_memory[d];
        FY_TRY(fy_backend_create(&other, &s->backend));
        FY_TRY(fy_pool_create(s->backend, s->budget, &s->pool));
    }
    return FY_OK;
}

/* The largest K of resident blocks on the first device whose plan (with the
 * next blocks on the other devices and layerwise streaming for the rest)
 * fits its budget. */
fy_status fy_eng_spill_choose(fy_engine *e)
{
    if (!e->n_spill) return FY_OK;
    fy_run_options o = e->opts;
    int depth = o.prefetch_depth > 0 ? o.prefetch_depth : 1;
    for (int k = e->n_blocks; k >= 0; k--) {
        o.offload = k == e->n_blocks ? FY_OFFLOAD_NONE : FY_OFFLOAD_LAYERWISE;
        o.prefetch_depth = depth;
        o.resident_blocks = k == e->n_blocks ? -1 : k;
        o.resident_bytes = 0;
        fy_plan p;
        FY_TRY(fy_eng_plan(e, &o, &p, false));
        if (!e->stats.device_budget || p.device_bound <= e->stats.device_budget) {
            e->opts = o;
            return FY_OK;
        }
    }
    return FY_OK; /* nothing fits: the budget check says so, with numbers */
}

fy_status fy_eng_spill_upload(fy_engine *e, eng_group *g)
{
    eng_spill *s = &e->spill[g->spill];
    FY_TRY(fy_pool_alloc(s->pool, g->bytes, g->name, &g->device));
    for (int w = 0; w < g->n; w++) {
        size_t n = fy_tensor_nbytes(&g->src[w]);
        char *dst = (char *)g->device + g->offset[w];
        if (n) FY_TRY(fy_backend_copy_h2d_async(s->backend, dst, g->src[w].data, n, FY_STREAM_COPY, g->name));
        g->dev[w] = g->src[w];
        g->dev[w].data = dst;
        g->dev[w].device = 0;
    }
    return FY_OK;
}

/* The other devices' uploads are done once, at prepare: wait for them there. */
fy_status fy_eng_spill_settle(fy_engine *e)
{
    for (int k = 0; k < e->n_spill; k++) FY_TRY(fy_backend_synchronize(e->spill[k].backend));
    return FY_OK;
}

void fy_eng_spill_stats(fy_engine *e)
{
    fy_engine_stats *st = &e->stats;
    st->n_spill = e->n_spill;
    for (int k = 0; k < e->n_spill; k++) {
        fy_spill_stats *x = &st->spill[k];
        x->device = e->spill[k].device;
        x->budget = e->spill[k].budget;
        x->peak = fy_pool_peak(e->spill[k].pool);
        x->blocks = 0;
        x->bytes = 0;
        for (int i = 0; i < e->n_groups; i++)
            if (e->groups[i].spill == k) {
                x->blocks++;
                x->bytes += e->groups[i].bytes;
            }
    }
}

void fy_eng_spill_free(fy_engine *e)
{
    for (int k = 0; k < e->n_spill; k++) {
        eng_spill *s = &e->spill[k];
        if (s->backend) fy_backend_synchronize(s->backend);
        fy_pool_free(s->pool);
        fy_backend_free(s->backend);
    }
    free(e->spill);
    e->spill = NULL;
    e->n_spill = 0;
}
