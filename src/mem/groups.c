/* Declaring components and weight groups. A group is laid out once, with
 * each weight aligned as cudaMalloc would align it; the same layout serves
 * the pinned host copy, the resident device copy and a slot in a ring, so an
 * upload of a pinned group is one copy. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem/engine_internal.h"

static void update_resident_ranks(fy_engine *e);

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
    c->after = -1;
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
    g->spill = -1;
    g->disk_slot = -1;
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
    for (int i = 0; i < n; i++) {
        g->src[i] = weights[i];
        g->src[i].owns_data = false;
    }
    g->n_declared = n;
    fy_eng_layout_group(g);
    fy_status st = fy_eng_cast_declare(e, g);
    if (st != FY_OK) {
        fy_eng_cast_free(g);
        free(g->src);
        free(g->dev);
        free(g->offset);
        return st;
    }
    if (kind == FY_GROUP_BLOCK) e->n_blocks++;
    *out_id = e->n_groups++;
    update_resident_ranks(e);
    return FY_OK;
}

void fy_eng_layout_group(eng_group *g)
{
    uint64_t at = 0;
    for (int i = 0; i < g->n; i++) {
        g->offset[i] = at;
        at = align_up(at + fy_tensor_nbytes(&g->src[i]));
    }
    g->bytes = at;
}

static int find_component(const fy_engine *e, const char *name)
{
    for (int c = 0; name && c < e->n_comps; c++)
        if (strcmp(e->comps[c].name, name) == 0) return c;
    return -1;
}

fy_status fy_engine_declare_successor(fy_engine *e, const char *from, const char *to)
{
    if (e->prepared) return fy_error(FY_ERR_INVALID, "engine: successors are declared before fy_engine_prepare");
    int a = find_component(e, from), b = find_component(e, to);
    if (a < 0 || b < 0 || a == b || e->comps[a].after >= 0)
        return fy_error(FY_ERR_INVALID, "engine: successor %s of %s: not two declared components (or a chain)",
                        to ? to : "(null)", from ? from : "(null)");
    e->comps[b].after = a;
    update_resident_ranks(e);
    return FY_OK;
}

fy_status fy_engine_reserve(fy_engine *e, uint64_t activation_bytes)
{
    if (e->prepared) return fy_error(FY_ERR_INVALID, "engine: fy_engine_reserve comes before fy_engine_prepare");
    e->activation_bytes = activation_bytes;
    return FY_OK;
}

fy_status fy_engine_set_group_flops(fy_engine *e, int group, double flops)
{
    if (group < 0 || group >= e->n_groups || !(flops >= 0) || !isfinite(flops))
        return fy_error(FY_ERR_INVALID, "engine: FLOPs %g for group %d: a declared group and a finite count", flops,
                        group);
    e->groups[group].flops = flops;
    return FY_OK;
}

fy_status fy_engine_set_component_steps(fy_engine *e, const char *component, int steps)
{
    int c = find_component(e, component);
    if (c < 0 || steps < 0)
        return fy_error(FY_ERR_INVALID, "engine: %d steps for component %s: a declared component and a count >= 0",
                        steps, component ? component : "(null)");
    e->comps[c].steps = steps;
    return FY_OK;
}

const char *fy_tier_name(fy_tier t)
{
    switch (t) {
    case FY_TIER_DEVICE: return "device";
    case FY_TIER_PINNED: return "pinned host";
    case FY_TIER_MAPPED: return "mapped file";
    case FY_TIER_STAGED: return "mapped file (staged)";
    case FY_TIER_DISK: return "disk";
    case FY_TIER_SHARDED: return "sharded";
    }
    return "unknown";
}

int fy_eng_step_component(const fy_engine *e, int *first_group)
{
    int best = 0, comp = -1, first = -1;
    for (int c = 0; c < e->n_comps; c++) {
        int n = 0, head = -1;
        for (int i = 0; i < e->n_groups; i++) {
            if (e->groups[i].component != c || e->groups[i].kind != FY_GROUP_BLOCK) continue;
            if (head < 0) head = i;
            n++;
        }
        bool denoiser = strcmp(e->comps[c].name, "transformer") == 0 && n > 0;
        if (n > best || denoiser) {
            best = denoiser ? INT_MAX : n;
            comp = c;
            first = head;
        }
    }
    if (first_group) *first_group = first;
    return comp;
}

int fy_eng_resident_rank(const fy_engine *e, const eng_group *g)
{
    (void)e;
    return g->resident_rank;
}

/* The rank of component a's block j, -1 when it has fewer. */
static int rank_of_block(const fy_engine *e, int a, int j)
{
    int k = 0;
    for (int m = 0; m < e->n_groups; m++) {
        const eng_group *h = &e->groups[m];
        if (h->component == a && h->kind == FY_GROUP_BLOCK && k++ == j) return h->resident_rank;
    }
    return -1;
}

/* Recomputed after each declaration: a later component may be the step one.
 * The step component's blocks rank first, then the others' in declared
 * order; a successor's block j ranks as its predecessor's block j (the
 * first K of each stay resident, one set on the device at a time), so the
 * ranks stay dense without it. */
static void update_resident_ranks(fy_engine *e)
{
    int first = -1;
    int comp = fy_eng_step_component(e, &first);
    int next = 0;
    for (int i = 0; i < e->n_groups; i++) {
        eng_group *g = &e->groups[i];
        if (g->kind == FY_GROUP_BLOCK && g->component == comp) g->resident_rank = next++;
    }
    for (int i = 0; i < e->n_groups; i++) {
        eng_group *g = &e->groups[i];
        if (g->kind != FY_GROUP_BLOCK) g->resident_rank = g->block_index;
        else if (g->component != comp && e->comps[g->component].after < 0) g->resident_rank = next++;
    }
    for (int c = 0; c < e->n_comps; c++) {
        int a = e->comps[c].after, j = 0;
        if (a < 0) continue;
        for (int i = 0; i < e->n_groups; i++) {
            eng_group *g = &e->groups[i];
            if (g->component != c || g->kind != FY_GROUP_BLOCK) continue;
            int rank = rank_of_block(e, a, j++);
            g->resident_rank = rank >= 0 ? rank : next++;
        }
    }
}
