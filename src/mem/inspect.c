/* Looking at an engine's declared groups and plan from outside (`ferry plan`). */
#include <stdio.h>
#include <string.h>

#include "mem/engine_internal.h"

int fy_engine_group_count(const fy_engine *e)
{
    return e->n_groups;
}

fy_status fy_engine_group_info(const fy_engine *e, int group, fy_group_info *out)
{
    if (group < 0 || group >= e->n_groups) return fy_error(FY_ERR_INVALID, "engine: unknown group %d", group);
    const eng_group *g = &e->groups[group];
    out->component = e->comps[g->component].name;
    out->name = g->name;
    out->kind = g->kind;
    out->bytes = g->bytes;
    out->tier = g->tier;
    return FY_OK;
}

static void print_groups(const fy_engine *e, FILE *f)
{
    char b[32];
    int wc = (int)strlen("component"), wg = (int)strlen("group");
    for (int i = 0; i < e->n_groups; i++) {
        const eng_group *g = &e->groups[i];
        int lc = (int)strlen(e->comps[g->component].name), lg = (int)strlen(g->name);
        wc = lc > wc ? lc : wc;
        wg = lg > wg ? lg : wg;
    }
    fprintf(f, "  %-*s %-*s %12s  %s\n", wc, "component", wg, "group", "bytes", "tier");
    for (int i = 0; i < e->n_groups; i++) {
        const eng_group *g = &e->groups[i];
        char tier[32];
        if (g->spill >= 0) snprintf(tier, sizeof tier, "device %d", e->spill[g->spill].device);
        else snprintf(tier, sizeof tier, "%s", fy_tier_name(g->tier));
        fprintf(f, "  %-*s %-*s %12s  %s\n", wc, e->comps[g->component].name, wg, g->name,
                fy_format_bytes(g->bytes, b, sizeof b), tier);
    }
}

static void print_storage(const fy_engine *e, FILE *f)
{
    /* Only when asked for: castable weights exist in every DiT. */
    if (!fy_eng_cast_any(e) || (e->opts.storage_dtype == FY_DTYPE_COUNT && !e->opts.storage_auto)) return;
    char a[32], b[32];
    uint64_t declared = 0, now = fy_engine_cast_bytes(e, &declared);
    const char *why = e->opts.storage_auto ? (e->planner.active ? " (chosen by the planner)" : " (auto)") : "";
    if (fy_storage_is_narrow(e->opts.storage_dtype))
        fprintf(f, "  storage      %s%s: converted weights %s (as stored %s)\n",
                fy_storage_dtype_flag_name(e->opts.storage_dtype), e->opts.storage_explicit ? "" : " (default on a GPU device)",
                fy_format_bytes(now, a, sizeof a), fy_format_bytes(declared, b, sizeof b));
    else if (e->opts.storage_dtype == FY_DTYPE_COUNT)
        fprintf(f, "  storage      as stored%s: castable weights %s\n", why, fy_format_bytes(declared, a, sizeof a));
    else
        fprintf(f, "  storage      %s, %s scales%s: castable weights %s (as stored %s)\n",
                fy_storage_dtype_flag_name(e->opts.storage_dtype), fy_fp8_scale_name(e->opts.fp8_scale), why,
                fy_format_bytes(now, a, sizeof a), fy_format_bytes(declared, b, sizeof b));
}

void fy_engine_plan_print(const fy_engine *e, const char *title, FILE *f)
{
    const fy_plan *p = &e->plan;
    const fy_engine_stats *s = &e->stats;
    char a[32], b[32], c[32], d[32], m[32];
    /* The planner's budget caps the plan even when the pool itself has none. */
    uint64_t budget = s->vram_budget ? s->vram_budget : s->device_budget;
    fprintf(f, "engine: %s on %s\n", title, fy_backend_name(e->backend));
    fprintf(f, "  plan         %s, prefetch depth %d, %d resident blocks of %d, %d blocks per unit, %d slots%s\n",
            p->fsdp ? "fsdp" : fy_offload_policy_name(p->policy), p->depth, p->resident_blocks, e->n_blocks,
            p->blocks_per_unit == 0x7fffffff ? e->n_blocks : p->blocks_per_unit, p->slots,
            e->planner.active ? " (chosen by the planner)" : "");
    fprintf(f, "  device bound %s = resident %s + ring %s + activations %s; budget %s\n",
            fy_format_bytes(p->device_bound, a, sizeof a), fy_format_bytes(p->resident_bytes, b, sizeof b),
            fy_format_bytes(p->ring_bytes, c, sizeof c), fy_format_bytes(p->activation_bytes, d, sizeof d),
            budget ? fy_format_bytes(budget, m, sizeof m) : "unlimited");
    for (int k = 0; k < e->n_spill; k++) {
        uint64_t held = 0;
        int blocks = 0;
        for (int i = 0; i < e->n_groups; i++)
            if (e->groups[i].spill == k) held += e->groups[i].bytes, blocks++;
        fprintf(f, "  device %-5d %d resident blocks, %s; budget %s (--device-map auto)\n", e->spill[k].device, blocks,
                fy_format_bytes(held, a, sizeof a), fy_format_bytes(e->spill[k].budget, b, sizeof b));
    }
    fprintf(f, "  host         %s pinned, %s held\n", fy_format_bytes(s->pinned_bytes, a, sizeof a),
            fy_format_bytes(s->host_bytes, b, sizeof b));
    if (s->host_budget)
        fprintf(f, "  host budget  %s (%s): the plan holds %s; %d blocks on disk, staging %s in %d slots\n",
                fy_format_bytes(s->host_budget, a, sizeof a),
                e->opts.host_budget_default ? "MemAvailable less a margin; --max-memory cpu= sets it" : "--max-memory cpu",
                fy_format_bytes(s->host_bound, b, sizeof b),
                s->disk_groups, fy_format_bytes(s->disk_staging_bytes, c, sizeof c), s->disk_slots);
    if (p->fsdp)
        fprintf(f, "  fsdp         rank %d of %d holds %s of %s of blocks (1/%d each, padded)\n", s->rank, s->ranks,
                fy_format_bytes(s->shard_bytes, a, sizeof a), fy_format_bytes(s->sharded_bytes, b, sizeof b), p->ranks);
    if (e->planner.active) fy_eng_planner_print(e, f);
    print_storage(e, f);
    print_groups(e, f);
}
