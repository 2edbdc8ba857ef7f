/* Plans: from the run options and the declared groups to which blocks stay
 * resident, how streamed blocks are cut into units, how many unit slots a
 * ring has, and the device bound all that needs. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem/engine_internal.h"

static bool streams(fy_offload_policy p)
{
    return p == FY_OFFLOAD_SEQUENTIAL || p == FY_OFFLOAD_GROUP || p == FY_OFFLOAD_LAYERWISE;
}

static void set_shape(const fy_run_options *o, fy_plan *p)
{
    p->policy = o->offload;
    p->blocks_per_unit = 1;
    p->slots = 1;
    switch (o->offload) {
    case FY_OFFLOAD_NONE:
        p->slots = 0;
        break;
    case FY_OFFLOAD_MODEL:
        p->blocks_per_unit = INT_MAX; /* a component's blocks move together */
        break;
    case FY_OFFLOAD_SEQUENTIAL:
        break;
    case FY_OFFLOAD_GROUP:
        p->blocks_per_unit = o->num_blocks_per_group > 0 ? o->num_blocks_per_group : 1;
        p->slots = o->use_stream ? 2 : 1;
        p->eager = o->use_stream;
        break;
    case FY_OFFLOAD_LAYERWISE:
        p->depth = o->prefetch_depth > 0 ? o->prefetch_depth : 1;
        p->slots = p->depth + 1;
        p->eager = true;
        break;
    }
    if (o->use_fsdp_inference) {
        /* A layerwise ring whose loads are all-gathers (fsdp.c). */
        p->fsdp = true;
        p->depth = o->prefetch_depth > 0 ? o->prefetch_depth : 1;
        p->blocks_per_unit = 1;
        p->slots = p->depth + 1;
        p->eager = true;
    }
}

/* A block's size in a ring slot: an fsdp gather fills N equal chunks. */
static uint64_t slot_bytes_of(const fy_engine *e, const fy_plan *p, const eng_group *g)
{
    return p->fsdp ? fy_eng_fsdp_padded(e, g->bytes) : g->bytes;
}

static const eng_group *block_of_rank(const fy_engine *e, int rank)
{
    for (int i = 0; i < e->n_groups; i++)
        if (e->groups[i].kind == FY_GROUP_BLOCK && fy_eng_resident_rank(e, &e->groups[i]) == rank) return &e->groups[i];
    return NULL;
}

/* Leading blocks (in resident rank order) kept resident: --resident-blocks K, or as many as fit in --resident-bytes. */
static int resident_prefix(const fy_engine *e, const fy_run_options *o)
{
    if (o->use_fsdp_inference) return 0;
    if (o->offload == FY_OFFLOAD_NONE) return e->n_blocks;
    if (!streams(o->offload)) return 0;
    if (o->resident_blocks >= 0) return o->resident_blocks < e->n_blocks ? o->resident_blocks : e->n_blocks;
    if (!o->resident_bytes) return 0;
    int k = 0;
    uint64_t sum = 0;
    for (; k < e->n_blocks; k++) {
        const eng_group *g = block_of_rank(e, k);
        if (!g || sum + g->bytes > o->resident_bytes) break;
        sum += g->bytes;
    }
    return k;
}

/* --device-map auto over several devices: past the first K blocks (in
 * resident rank order), blocks go to the other devices while they fit, one
 * device after the next, and only the rest stream through the ring.
 * spill[group id] = index into e->spill, or -1. NULL without other devices. */
static fy_status spill_map(const fy_engine *e, int K, int **out)
{
    *out = NULL;
    if (!e->n_spill) return FY_OK;
    int *spill = malloc((size_t)(e->n_groups ? e->n_groups : 1) * sizeof *spill);
    if (!spill) return fy_error(FY_ERR_NOMEM, "engine: out of memory placing blocks on devices");
    for (int i = 0; i < e->n_groups; i++) spill[i] = -1;
    int dev = 0;
    uint64_t used = 0;
    /* A successor's blocks share their predecessor's ranks: both go. */
    for (int r = K; r < e->n_blocks && dev < e->n_spill; r++) {
        for (int i = 0; i < e->n_groups && dev < e->n_spill; i++) {
            const eng_group *g = &e->groups[i];
            if (g->kind != FY_GROUP_BLOCK || fy_eng_resident_rank(e, g) != r) continue;
            while (dev < e->n_spill && used + g->bytes > e->spill[dev].budget) {
                dev++;
                used = 0;
            }
            if (dev == e->n_spill) break;
            used += g->bytes;
            spill[i] = dev;
        }
    }
    *out = spill;
    return FY_OK;
}

static bool spilled(const fy_engine *e, const int *spill, const eng_group *g)
{
    return spill && spill[g - e->groups] >= 0;
}

/* Largest unit of a component's streamed blocks, and how many units. */
static uint64_t component_units(const fy_engine *e, const fy_plan *p, const int *spill, int comp, int *n_units)
{
    int resident_k = p->resident_blocks, per_unit = p->blocks_per_unit;
    uint64_t best = 0, cur = 0;
    int in_unit = 0, units = 0;
    for (int i = 0; i < e->n_groups; i++) {
        const eng_group *g = &e->groups[i];
        if (g->component != comp || g->kind != FY_GROUP_BLOCK || fy_eng_resident_rank(e, g) < resident_k ||
            spilled(e, spill, g))
            continue;
        if (in_unit == 0) units++;
        cur += slot_bytes_of(e, p, g);
        if (++in_unit == per_unit) {
            best = cur > best ? cur : best;
            cur = 0;
            in_unit = 0;
        }
    }
    best = cur > best ? cur : best;
    *n_units = units;
    return best;
}

static fy_status apply_plan(fy_engine *e, const fy_plan *p, const int *spill)
{
    for (int c = 0; c < e->n_comps; c++) {
        eng_component *comp = &e->comps[c];
        free(comp->streamed);
        comp->streamed = calloc((size_t)(e->n_groups ? e->n_groups : 1), sizeof *comp->streamed);
        if (!comp->streamed) return fy_error(FY_ERR_NOMEM, "engine: out of memory building the plan");
        comp->n_streamed = 0;
        comp->unit_bytes = component_units(e, p, spill, c, &comp->n_units);
    }
    uint64_t unit_at[1] = {0};
    for (int i = 0; i < e->n_groups; i++) {
        eng_group *g = &e->groups[i];
        g->spill = spill ? spill[i] : -1;
        g->resident = g->kind == FY_GROUP_SMALL || fy_eng_resident_rank(e, g) < p->resident_blocks || g->spill >= 0;
        g->tier = g->resident ? FY_TIER_DEVICE : FY_TIER_MAPPED;
        g->unit = -1;
        if (g->resident) continue;
        eng_component *comp = &e->comps[g->component];
        int k = comp->n_streamed++;
        comp->streamed[k] = i;
        g->unit = k / p->blocks_per_unit;
        if (k % p->blocks_per_unit == 0) unit_at[0] = 0;
        g->unit_offset = unit_at[0];
        unit_at[0] += slot_bytes_of(e, p, g);
    }
    return FY_OK;
}

fy_status fy_eng_plan(fy_engine *e, const fy_run_options *o, fy_plan *out, bool apply)
{
    fy_plan p;
    memset(&p, 0, sizeof p);
    set_shape(o, &p);
    p.resident_blocks = resident_prefix(e, o);
    p.activation_bytes = e->activation_bytes;
    /* A successor's resident groups take its predecessor's place: the
     * larger of the two counts (fy_engine_declare_successor). */
    uint64_t *by_comp = calloc((size_t)(e->n_comps ? e->n_comps : 1), sizeof *by_comp);
    if (!by_comp) return fy_error(FY_ERR_NOMEM, "engine: out of memory planning");
    for (int i = 0; i < e->n_groups; i++) {
        const eng_group *g = &e->groups[i];
        if (g->kind == FY_GROUP_SMALL || fy_eng_resident_rank(e, g) < p.resident_blocks) by_comp[g->component] += g->bytes;
    }
    for (int c = 0; c < e->n_comps; c++) {
        int a = e->comps[c].after;
        p.resident_bytes += a < 0 ? by_comp[c] : (by_comp[c] > by_comp[a] ? by_comp[c] - by_comp[a] : 0);
    }
    free(by_comp);
    int *spill = NULL;
    FY_TRY(spill_map(e, p.resident_blocks, &spill));
    for (int i = 0; spill && i < e->n_groups; i++)
        if (spill[i] >= 0) p.spilled_blocks++;
    for (int c = 0; c < e->n_comps; c++) {
        int units = 0;
        uint64_t unit = component_units(e, &p, spill, c, &units);
        int slots = p.slots < units ? p.slots : units;
        uint64_t ring = (uint64_t)slots * unit;
        if (ring > p.ring_bytes) p.ring_bytes = ring;
    }
    p.ranks = p.fsdp ? fy_eng_fsdp_ranks(e) : 1;
    p.device_bound = p.resident_bytes + p.ring_bytes + p.activation_bytes;
    fy_status st = apply ? apply_plan(e, &p, spill) : FY_OK;
    free(spill);
    if (st == FY_OK) *out = p;
    return st;
}

fy_status fy_engine_evaluate_plan(const fy_engine *e, const fy_run_options *o, fy_plan *out)
{
    return fy_eng_plan((fy_engine *)e, o, out, false); /* apply=false never writes */
}

static const char *describe(const fy_plan *p, char *buf, size_t size)
{
    const char *name = fy_offload_policy_name(p->policy);
    int n = 0;
    if (p->fsdp) {
        snprintf(buf, size, "fsdp over %d ranks (prefetch depth %d)", p->ranks, p->depth);
        return buf;
    }
    if (p->policy == FY_OFFLOAD_LAYERWISE) n = snprintf(buf, size, "%s (prefetch depth %d", name, p->depth);
    else if (p->policy == FY_OFFLOAD_GROUP)
        n = snprintf(buf, size, "%s (%d blocks per group%s", name, p->blocks_per_unit, p->eager ? ", use_stream" : "");
    else n = snprintf(buf, size, "%s", name);
    if (n < 0 || (size_t)n >= size) return buf;
    if (p->policy == FY_OFFLOAD_LAYERWISE || p->policy == FY_OFFLOAD_GROUP) {
        if (p->resident_blocks) snprintf(buf + n, size - (size_t)n, ", %d resident blocks)", p->resident_blocks);
        else snprintf(buf + n, size - (size_t)n, ")");
    } else if (p->policy == FY_OFFLOAD_SEQUENTIAL && p->resident_blocks) {
        snprintf(buf + n, size - (size_t)n, " (%d resident blocks)", p->resident_blocks);
    }
    return buf;
}

/* The fastest other plan that fits: none, layerwise at the asked depth,
 * layerwise depth 1, then sequential. */
static bool find_fitting(const fy_engine *e, uint64_t budget, fy_plan *fit)
{
    static const struct { fy_offload_policy policy; int depth; } order[] = {
        {FY_OFFLOAD_NONE, 0}, {FY_OFFLOAD_LAYERWISE, -1}, {FY_OFFLOAD_LAYERWISE, 1}, {FY_OFFLOAD_SEQUENTIAL, 0}};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        fy_run_options o = e->opts;
        o.offload = order[i].policy;
        o.resident_blocks = -1;
        o.resident_bytes = 0;
        if (order[i].depth > 0) o.prefetch_depth = order[i].depth;
        fy_plan p;
        if (fy_eng_plan((fy_engine *)e, &o, &p, false) != FY_OK) continue;
        if (p.device_bound <= budget) {
            *fit = p;
            return true;
        }
        *fit = p; /* the last one tried is the smallest */
    }
    return false;
}

bool fy_engine_fits(const fy_engine *e, uint64_t activation_bytes)
{
    uint64_t budget = e->opts.vram_budget ? e->opts.vram_budget : e->stats.device_budget;
    if (e->backend->unified_host_memory || e->opts.vram_budget_auto || !budget) return true;
    fy_engine *m = (fy_engine *)e; /* the reserve is put back before returning */
    uint64_t kept = m->activation_bytes;
    m->activation_bytes = activation_bytes;
    fy_plan fit;
    bool ok = find_fitting(e, budget, &fit);
    m->activation_bytes = kept;
    return ok;
}

fy_status fy_eng_check_budget(const fy_engine *e, const fy_plan *p, uint64_t budget)
{
    if (!budget || p->device_bound <= budget) return FY_OK;
    char need[32], have[32], other[32], name[96], alt[96];
    fy_format_bytes(p->device_bound, need, sizeof need);
    fy_format_bytes(budget, have, sizeof have);
    describe(p, name, sizeof name);
    fy_plan fit;
    bool ok = find_fitting(e, budget, &fit);
    fy_format_bytes(fit.device_bound, other, sizeof other);
    describe(&fit, alt, sizeof alt);
    if (ok)
        return fy_error(FY_ERR_BUDGET, "offload plan %s needs %s of device memory, budget %s; plan %s fits (needs %s)",
                        name, need, have, alt, other);
    return fy_error(FY_ERR_BUDGET,
                    "offload plan %s needs %s of device memory, budget %s; no plan fits: the smallest, %s, needs %s "
                    "(raise --max-memory)",
                    name, need, have, alt, other);
}

const fy_plan *fy_engine_plan(const fy_engine *e)
{
    return &e->plan;
}
