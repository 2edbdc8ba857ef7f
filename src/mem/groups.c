/* Declaring components and weight groups. A group is laid out once, with
 * each weight aligned as cudaMalloc would align it; the same layout serves
 * the pinned host copy, the resident device copy and a slot in a ring, so an
 * upload of a pinned group is one copy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem/engine_internal.h"

static uint64_t align_up(uint64_t v)
{
    return (v + FY_ENGINE_ALIGN - 1) / FY_ENGINE_ALIGN * FY_ENGINE_ALIGN;
}

fy_status fy_engine_add_component(fy_engine *e, const char *name, int *out_id)
{
    if (e->prepared) return fy_error(FY_ERR_INVALID, "engine: components are declared before fy_engine_prepare");
    if (e->n_comps == e->cap_comps) {
        int cap = e->cap_comps ? e->cap_comps * 2 : 4;
        eng_component *c = realloc(e->comps, (size_t)cap * sizeof *c);
        if (!c) return fy_error(FY_ERR_NOMEM, "engine: out of memory declaring component %s", name);
        e->comps = c;
        e->cap_comps = cap;
    }
    eng_component *c = &e->comps[e->n_comps];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name ? name : "component");
    *out_id = e->n_comps++;
    return FY_OK;
}

static fy_status check_weight(const char *group, int i, const fy_tensor *t)
{
    if (t->device != FY_HOST)
        return fy_error(FY_ERR_INVALID, "engine: group %s weight %d is not a host tensor", group, i);
    if (!fy_tensor_is_contiguous(t))
        return fy_error(FY_ERR_INVALID, "engine: group %s weight %d is not contiguous", group, i);
    if (!t->data && fy_tensor_nbytes(t) > 0)
        return fy_error(FY_ERR_INVALID, "engine: group %s weight %d has no data", group, i);
    return FY_OK;
}

static fy_status grow_groups(fy_engine *e)
{
    if (e->n_groups < e->cap_groups) return FY_OK;
    int cap = e->cap_groups ? e->cap_groups * 2 : 32;
    eng_group *g = realloc(e->groups, (size_t)cap * sizeof *g);
    if (!g) return fy_error(FY_ERR_NOMEM, "engine: out of memory declaring groups");
    e->groups = g;
    e->cap_groups = cap;
    return FY_OK;
}

fy_status fy_engine_add_group(fy_engine *e, int component, const char *name, fy_group_kind kind,
                              const fy_tensor *weights, int n, int *out_id)
{
    name = name ? name : "group";
    if (e->prepared) return fy_error(FY_ERR_INVALID, "engine: group %s declared after fy_engine_prepare", name);
    if (component < 0 || component >= e->n_comps)
        return fy_error(FY_ERR_INVALID, "engine: group %s names component %d, which was never declared", name, component);
    if (n < 0 || (n > 0 && !weights))
        return fy_error(FY_ERR_INVALID, "engine: group %s has no weights array", name);
    for (int i = 0; i < n; i++) FY_TRY(check_weight(name, i, &weights[i]));
    FY_TRY(grow_groups(e));

    eng_group *g = &e->groups[e->n_groups];
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", name);
    g->component = component;
    g->kind = kind;
    g->n = n;
    g->unit = -1;
    g->block_index = kind == FY_GROUP_BLOCK ? e->n_blocks : -1;
    size_t k = n > 0 ? (size_t)n : 1;
    g->src = calloc(k, sizeof *g->src);
    g->dev = calloc(k, sizeof *g->dev);
    g->offset = calloc(k, sizeof *g->offset);
    if (!g->src || !g->dev || !g->offset) {
        free(g->src);
        free(g->dev);
        free(g->offset);
        return fy_error(FY_ERR_NOMEM, "engine: out of memory declaring group %s", name);
    }
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        g->src[i] = weights[i];
        g->src[i].owns_data = false;
        g->offset[i] = at;
        at = align_up(at + fy_tensor_nbytes(&weights[i]));
    }
    g->bytes = at;
    if (kind == FY_GROUP_BLOCK) e->n_blocks++;
    *out_id = e->n_groups++;
    return FY_OK;
}

fy_status fy_engine_reserve(fy_engine *e, uint64_t activation_bytes)
{
    if (e->prepared) return fy_error(FY_ERR_INVALID, "engine: fy_engine_reserve comes before fy_engine_prepare");
    e->activation_bytes = activation_bytes;
    return FY_OK;
}

const char *fy_tier_name(fy_tier t)
{
    switch (t) {
    case FY_TIER_DEVICE: return "device";
    case FY_TIER_PINNED: return "pinned host";
    case FY_TIER_MAPPED: return "mapped file";
    case FY_TIER_STAGED: return "mapped file (staged)";
    case FY_TIER_SHARDED: return "sharded";
    }
    return "unknown";
}
