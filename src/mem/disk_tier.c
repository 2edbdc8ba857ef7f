/* The disk tier in the engine: which blocks leave host memory under
 * --max-memory cpu, the check that the budget can be met at all (before
 * anything is allocated), the order the reader follows, and the glue between
 * the reader (disk.c) and the streamer (device) or acquire/release (cpu).
 *
 * Host bytes counted against the budget: on --device cpu every weight not on
 * disk (read in place from the mapping, so it sits in the page cache); on a
 * device the host copies of streamed blocks (pinned or mapped), the
 * --low-cpu-mem-usage staging pair; plus the disk staging ring. Resident
 * device weights are uploaded once at prepare and not held. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/log.h"
#include "mem/engine_internal.h"

/* Staging slots: one in use (computed from or being uploaded), the others
 * read ahead; three when the budget allows. */
#define DISK_SLOTS_MIN 2
#define DISK_SLOTS_MAX 3

static bool on_host(const fy_engine *e)
{
    return e->backend->unified_host_memory;
}

/* Blocks that may move to disk: on cpu every block (all are read in place),
 * on a device the streamed ones (resident blocks are on the device). */
static bool candidate(const fy_engine *e, const eng_group *g)
{
    return g->kind == FY_GROUP_BLOCK && (on_host(e) || !g->resident);
}

/* Host bytes held whatever the disk tier does. */
static uint64_t host_fixed(const fy_engine *e)
{
    uint64_t fixed = 0, biggest = 0;
    for (int i = 0; i < e->n_groups; i++) {
        const eng_group *g = &e->groups[i];
        if (on_host(e) && !candidate(e, g)) fixed += g->bytes;
        if (!on_host(e) && !g->resident && g->bytes > biggest) biggest = g->bytes;
    }
    if (!on_host(e) && e->opts.low_cpu_mem_usage) fixed += 2 * biggest;
    return fixed;
}

static uint64_t candidate_bytes(const fy_engine *e)
{
    uint64_t sum = 0;
    for (int i = 0; i < e->n_groups; i++)
        if (candidate(e, &e->groups[i])) sum += e->groups[i].bytes;
    return sum;
}

static fy_status plan_reads(fy_engine *e, uint64_t *slot_bytes)
{
    *slot_bytes = 0;
    for (int i = 0; i < e->n_groups; i++) {
        eng_group *g = &e->groups[i];
        if (!candidate(e, g)) continue;
        uint64_t staged = 0;
        fy_dtype *to = malloc((size_t)(g->n > 0 ? g->n : 1) * sizeof *to);
        if (!to) return fy_error(FY_ERR_NOMEM, "disk tier: out of memory planning %s", g->name);
        for (int w = 0; w < g->n; w++) to[w] = g->src[w].dtype;
        fy_status st = fy_disk_plan_group(e->disk, i, g->name, fy_eng_cast_declared(g), g->n, to, &staged);
        free(to);
        FY_TRY(st);
        if (staged > *slot_bytes) *slot_bytes = staged;
    }
    return FY_OK;
}

static fy_status too_small(const fy_engine *e, uint64_t budget, uint64_t fixed, uint64_t slot, uint64_t want)
{
    char have[32], need[32], s[32], f[32], all[32];
    uint64_t min = fixed + DISK_SLOTS_MIN * slot;
    if (min > want) /* staging blocks would take more than the blocks themselves */
        return fy_error(FY_ERR_BUDGET,
                        "--max-memory cpu=%s cannot hold the weights (%s) and is too small for the disk tier, whose "
                        "staging needs more than that; raise it to at least %s",
                        fy_format_bytes(budget, have, sizeof have), fy_format_bytes(want, all, sizeof all), all);
    fy_format_bytes(budget, have, sizeof have);
    fy_format_bytes(min, need, sizeof need);
    fy_format_bytes(slot, s, sizeof s);
    fy_format_bytes(fixed, f, sizeof f);
    fy_format_bytes(want, all, sizeof all);
    return fy_error(FY_ERR_BUDGET,
                    "--max-memory cpu=%s is below what the disk tier needs on the host: %s (%d staging slots of %s "
                    "for the largest block + %s %s); raise it to at least %s (everything in host memory: %s)",
                    have, need, DISK_SLOTS_MIN, s, f,
                    on_host(e) ? "of non-block weights read in place" : "of other host buffers", need, all);
}

/* Blocks keep their host copy while it fits, the step component's first
 * (it runs every step); the rest go to disk. */
static uint64_t assign_tiers(fy_engine *e, uint64_t left)
{
    uint64_t kept = 0;
    int step = e->planner.step_comp;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < e->n_groups; i++) {
            eng_group *g = &e->groups[i];
            if (!candidate(e, g) || (pass == 0) != (g->component == step)) continue;
            if (g->bytes <= left) {
                left -= g->bytes;
                kept += g->bytes;
            } else {
                g->tier = FY_TIER_DISK;
                g->resident = false;
                e->stats.disk_groups++;
            }
        }
    return kept;
}

static int first_disk_group(const fy_engine *e, int comp)
{
    for (int i = 0; i < e->n_groups; i++)
        if (e->groups[i].tier == FY_TIER_DISK && (comp < 0 || e->groups[i].component == comp)) return i;
    return -1;
}

/* The reader's prediction: the next disk block of the component; after its
 * last, the step component starts over (the next step), any other goes on
 * to the next component that has disk blocks (the text encoder's end is the
 * transformer's start). */
static void link_order(fy_engine *e)
{
    for (int i = 0; i < e->n_groups; i++) {
        const eng_group *g = &e->groups[i];
        if (g->tier != FY_TIER_DISK) continue;
        int next = -1;
        for (int j = i + 1; j < e->n_groups && next < 0; j++)
            if (e->groups[j].tier == FY_TIER_DISK && e->groups[j].component == g->component) next = j;
        if (next < 0 && g->component != e->planner.step_comp)
            for (int c = g->component + 1; c < e->n_comps && next < 0; c++) next = first_disk_group(e, c);
        if (next < 0) next = first_disk_group(e, g->component);
        fy_disk_set_next(e->disk, i, next);
    }
}

/* --storage-dtype as the user spells it; auto names what the planner chose. */
static const char *storage_flag(const fy_run_options *o, char *buf, size_t size)
{
    const char *name = fy_storage_dtype_flag_name(o->storage_dtype);
    if (o->storage_auto) snprintf(buf, size, "auto (the planner chose %s)", name);
    else snprintf(buf, size, "%s", name);
    return buf;
}

fy_status fy_eng_disk_prepare(fy_engine *e)
{
    for (int i = 0; i < e->n_groups; i++) e->groups[i].disk_slot = -1;
    uint64_t budget = e->opts.max_memory_cpu;
    uint64_t fixed = host_fixed(e), want = fixed + candidate_bytes(e);
    e->stats.host_budget = budget;
    e->stats.host_bound = want;
    if (!budget || want <= budget) return FY_OK;
    /* The disk tier reads blocks as the files store them: bf16/f16 storage
     * converts them in place once read, fp8 quantisation is not done there. */
    if (e->opts.storage_dtype != FY_DTYPE_COUNT && !fy_storage_is_narrow(e->opts.storage_dtype) &&
        fy_eng_cast_any(e)) {
        char have[32], all[32], flag[64];
        return fy_error(FY_ERR_UNSUPPORTED,
                        "--storage-dtype %s with blocks on the disk tier is not supported yet: --max-memory cpu=%s "
                        "is below the %s the weights need in host memory; raise it, or drop --storage-dtype",
                        storage_flag(&e->opts, flag, sizeof flag), fy_format_bytes(budget, have, sizeof have),
                        fy_format_bytes(want, all, sizeof all));
    }

    FY_TRY(fy_disk_create(on_host(e) ? NULL : e->backend, e->n_groups, &e->disk));
    fy_disk_set_observer(e->disk, fy_eng_stats_observe_disk, e);
    uint64_t slot = 0;
    FY_TRY(plan_reads(e, &slot));
    if (fixed + DISK_SLOTS_MIN * slot > budget) return too_small(e, budget, fixed, slot, want);
    int slots = fixed + DISK_SLOTS_MAX * slot <= budget ? DISK_SLOTS_MAX : DISK_SLOTS_MIN;
    uint64_t staging = (uint64_t)slots * slot;
    uint64_t kept = assign_tiers(e, budget - fixed - staging);
    link_order(e);
    bool pinned = false;
    FY_TRY(fy_disk_start(e->disk, slots, slot, first_disk_group(e, -1), &pinned));
    if (!pinned) fy_warn("cannot pin the disk tier's staging ring (RLIMIT_MEMLOCK or a container limit): staging "
                         "through pageable memory");
    e->stats.disk_slots = slots;
    e->stats.disk_staging_bytes = staging;
    e->stats.host_bytes += staging;
    if (pinned) e->stats.pinned_bytes += staging;
    e->stats.host_bound = fixed + kept + staging;
    return FY_OK;
}

static void disk_stall(fy_engine *e, const eng_group *g, double t0, double t1)
{
    if (t1 <= t0) return;
    pthread_mutex_lock(&e->stats_mu);
    e->stats.disk_stall_time += t1 - t0;
    pthread_mutex_unlock(&e->stats_mu);
    char label[80];
    snprintf(label, sizeof label, "%s (disk)", g->name);
    fy_eng_stats_stall(e, label, t0, t1);
}

static fy_status wait_read(fy_engine *e, eng_group *g, int *slot)
{
    double t0 = fy_backend_now();
    FY_TRY(fy_disk_wait(e->disk, (int)(g - e->groups), slot));
    disk_stall(e, g, t0, fy_backend_now());
    return FY_OK;
}

static fy_status copy_from_slot(fy_engine *e, eng_group *g, char *dst, int slot)
{
    for (int w = 0; w < g->n; w++) {
        size_t n = fy_tensor_nbytes(&g->src[w]);
        if (n)
            FY_TRY(fy_backend_copy_h2d_async(e->backend, dst + g->offset[w], fy_disk_weight(e->disk, slot, w), n,
                                             FY_STREAM_COPY, g->name));
    }
    return FY_OK;
}

fy_status fy_eng_disk_upload(fy_engine *e, eng_group *g, char *dst, bool force, bool *issued)
{
    *issued = false;
    int slot = -1;
    if (force) FY_TRY(wait_read(e, g, &slot));
    else slot = fy_disk_poll(e->disk, (int)(g - e->groups));
    if (slot < 0) return FY_OK;
    fy_status s = copy_from_slot(e, g, dst, slot);
    if (s != FY_OK) {
        /* A slot left held would stall the reader for good. The release records
         * the slot's event after the copies already queued from it. */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", fy_error_message());
        (void)fy_disk_done(e->disk, slot);
        return fy_error(s, "%s", msg);
    }
    *issued = true;
    return fy_disk_done(e->disk, slot);
}

fy_status fy_eng_disk_acquire(fy_engine *e, eng_group *g)
{
    int slot = -1;
    FY_TRY(wait_read(e, g, &slot));
    g->disk_slot = slot;
    for (int w = 0; w < g->n; w++) {
        g->dev[w] = g->src[w];
        g->dev[w].data = fy_disk_weight(e->disk, slot, w);
        g->dev[w].owns_data = false;
    }
    return FY_OK;
}

fy_status fy_eng_disk_release(fy_engine *e, eng_group *g)
{
    if (g->disk_slot < 0) return FY_OK;
    int slot = g->disk_slot;
    g->disk_slot = -1;
    return fy_disk_done(e->disk, slot);
}

void fy_eng_disk_stats(fy_engine *e)
{
    if (!e->disk) return;
    fy_disk_info info;
    fy_disk_info_get(e->disk, &info);
    pthread_mutex_lock(&e->stats_mu);
    e->stats.disk_direct = info.files > 0 && info.direct_files == info.files;
    e->stats.disk_uring = info.uring;
    e->stats.disk_seeks = info.seeks;
    pthread_mutex_unlock(&e->stats_mu);
}
