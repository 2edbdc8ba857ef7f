/* The engine's life cycle: create, prepare (plan, budget check, resident
 * uploads, the one host copy, first prefetches), acquire/release around the
 * streamer, activations through the pool, finish. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/log.h"
#include "mem/engine_internal.h"

static uint64_t device_budget(const fy_run_options *o)
{
    int idx = o->device_index >= 0 && o->device_index < FY_MAX_DEVICES ? o->device_index : 0;
    return o->device == FY_DEVICE_CPU ? 0 : o->max_memory[idx];
}

fy_status fy_engine_create_with_backend(fy_backend *b, bool owns_backend, const fy_run_options *o,
                                        fy_engine **out)
{
    *out = NULL;
    fy_engine *e = calloc(1, sizeof *e);
    if (!e) {
        if (owns_backend) fy_backend_free(b);
        return fy_error(FY_ERR_NOMEM, "engine: out of memory");
    }
    e->opts = *o;
    e->backend = b;
    e->owns_backend = owns_backend;
    e->ring.component = -1;
    e->hand_from = e->hand_to = -1;
    e->planner.step_comp = -1;
    e->planner.first_block = -1;
    pthread_mutex_init(&e->stats_mu, NULL);
    e->stats.device_budget = device_budget(o);
    fy_status s = fy_pool_create(b, e->stats.device_budget, &e->pool);
    if (s == FY_OK) s = fy_trace_create(fy_backend_now(), &e->trace);
    if (s == FY_OK) s = b->vt->event_create(b, &e->compute_fence);
    if (s == FY_OK && o->use_fsdp_inference) s = fy_eng_fsdp_create(e);
    if (s == FY_OK) s = fy_eng_spill_create(e);
    if (s != FY_OK) {
        fy_engine_free(e);
        return s;
    }
    fy_pool_set_observer(e->pool, fy_eng_stats_observe_pool, e);
    fy_backend_set_copy_observer(b, fy_eng_stats_observe_copy, e);
    *out = e;
    return FY_OK;
}

fy_status fy_engine_create(const fy_run_options *o, fy_engine **out)
{
    *out = NULL;
    fy_backend *b = NULL;
    FY_TRY(fy_backend_create(o, &b));
    return fy_engine_create_with_backend(b, true, o, out);
}

static void free_host_copies(fy_engine *e)
{
    for (int i = 0; i < e->n_groups; i++) {
        eng_group *g = &e->groups[i];
        if (g->pinned) e->backend->vt->free_pinned(e->backend, g->pinned, g->bytes);
        g->pinned = NULL;
    }
    for (int k = 0; k < 2; k++) {
        if (e->stage[k]) e->backend->vt->free_pinned(e->backend, e->stage[k], e->stage_bytes);
        if (e->stage_done[k]) e->backend->vt->event_destroy(e->backend, e->stage_done[k]);
        e->stage[k] = NULL;
        e->stage_done[k] = NULL;
    }
}

void fy_engine_free(fy_engine *e)
{
    if (!e) return;
    if (e->backend) {
        fy_eng_pinner_stop(e);
        fy_backend_synchronize(e->backend);
        fy_backend_set_copy_observer(e->backend, NULL, NULL);
        fy_eng_streamer_stop(e);
        fy_disk_free(e->disk); /* before the trace and stats its reader reports to */
        e->disk = NULL;
        fy_eng_fsdp_free(e);
        fy_eng_stall_free(e);
        if (e->resident_ready) e->backend->vt->event_destroy(e->backend, e->resident_ready);
        if (e->compute_fence) e->backend->vt->event_destroy(e->backend, e->compute_fence);
        free_host_copies(e);
    }
    fy_pool_free(e->pool); /* resident groups, activations left behind */
    fy_eng_spill_free(e);
    for (int i = 0; i < e->n_groups; i++) {
        fy_eng_cast_free(&e->groups[i]);
        free(e->groups[i].src);
        free(e->groups[i].dev);
        free(e->groups[i].offset);
    }
    free(e->groups);
    for (int c = 0; c < e->n_comps; c++) free(e->comps[c].streamed);
    free(e->comps);
    fy_trace_free(e->trace);
    fy_eng_planner_free(e);
    pthread_mutex_destroy(&e->stats_mu);
    if (e->owns_backend) fy_backend_free(e->backend);
    free(e);
}

fy_backend *fy_engine_backend(fy_engine *e)
{
    return e->backend;
}

fy_status fy_engine_ops_create(fy_engine *e, int threads, fy_ops **out)
{
    fy_ops_config c = {.threads = threads, .pool = e->pool, .gemm_dtype = e->opts.compute_dtype};
    return fy_ops_create(e->backend, &c, out);
}

fy_dtype fy_engine_activation_dtype(const fy_engine *e)
{
    (void)e;
    return FY_F32;
}

fy_status fy_engine_ops_require(fy_engine *e, const fy_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++)
        FY_TRY(fy_ops_require(e->backend, ops[i], fy_engine_activation_dtype(e), FY_F32));
    return FY_OK;
}

uint64_t fy_engine_ops_scratch_bound(fy_engine *e, bool convolutions)
{
    return fy_ops_scratch_bound(e->backend, convolutions);
}

fy_pool *fy_eng_device_pool(fy_engine *e)
{
    return e->pool;
}

fy_tier fy_engine_group_tier(const fy_engine *e, int group)
{
    return group >= 0 && group < e->n_groups ? e->groups[group].tier : FY_TIER_MAPPED;
}

static void set_host_views(eng_group *g)
{
    for (int i = 0; i < g->n; i++) g->dev[i] = g->src[i];
    fy_eng_cast_link(g);
}

static fy_status upload_resident_group(fy_engine *e, eng_group *g)
{
    FY_TRY(fy_pool_alloc(e->pool, g->bytes, g->name, &g->device));
    for (int w = 0; w < g->n; w++) {
        size_t n = fy_tensor_nbytes(&g->src[w]);
        char *dst = (char *)g->device + g->offset[w];
        if (n) FY_TRY(fy_backend_copy_h2d_async(e->backend, dst, g->src[w].data, n, FY_STREAM_COPY, g->name));
        g->dev[w] = g->src[w];
        g->dev[w].data = dst;
        g->dev[w].device = 0;
    }
    fy_eng_cast_link(g);
    pthread_mutex_lock(&e->stats_mu);
    e->stats.mapped_bytes += g->bytes;
    pthread_mutex_unlock(&e->stats_mu);
    return FY_OK;
}

/* Resident groups: one device allocation each, uploaded once from the
 * source (a successor's when it starts). */
static fy_status upload_resident(fy_engine *e)
{
    for (int i = 0; i < e->n_groups; i++) {
        eng_group *g = &e->groups[i];
        if (!g->resident || fy_eng_deferred(e, g)) continue;
        if (g->spill >= 0) {
            FY_TRY(fy_eng_spill_upload(e, g));
            fy_eng_cast_link(g);
            continue;
        }
        FY_TRY(upload_resident_group(e, g));
    }
    FY_TRY(fy_eng_spill_settle(e));
    FY_TRY(e->backend->vt->event_create(e->backend, &e->resident_ready));
    return fy_backend_event_record(e->backend, e->resident_ready, FY_STREAM_COPY);
}

/* The one host copy of a streamed group: pinned once, or the mapping itself
 * when pinning is off or fails. */
static fy_status pin_streamed(fy_engine *e)
{
    bool pin = e->opts.pin_cpu_memory && !e->opts.low_cpu_mem_usage;
    for (int i = 0; i < e->n_groups && pin; i++) {
        eng_group *g = &e->groups[i];
        if (g->resident || g->tier == FY_TIER_DISK) continue;
        bool locked = false;
        FY_TRY(e->backend->vt->alloc_pinned(e->backend, g->bytes, &g->pinned, &locked));
        if (!locked) {
            e->backend->vt->free_pinned(e->backend, g->pinned, g->bytes);
            g->pinned = NULL;
            fy_warn("cannot pin host memory for the weights (RLIMIT_MEMLOCK or a container limit): uploading "
                    "from pageable memory, which is slower; raise `ulimit -l` or pass --no-pin-cpu-memory");
            for (int j = 0; j < i; j++) {
                eng_group *h = &e->groups[j];
                if (h->pinned) e->backend->vt->free_pinned(e->backend, h->pinned, h->bytes);
                if (h->pinned) e->stats.pinned_bytes -= h->bytes;
                if (h->pinned) e->stats.host_bytes -= h->bytes;
                h->pinned = NULL;
                h->pin_pending = false;
            }
            break;
        }
        if (g->cast && !fy_eng_cast_pins_itself(g)) {
            /* A quantised copy is freed once pinned (fy_eng_cast_settle): fill now. */
            memset(g->pinned, 0, g->bytes);
            for (int w = 0; w < g->n; w++)
                memcpy((char *)g->pinned + g->offset[w], g->src[w].data, fy_tensor_nbytes(&g->src[w]));
        } else {
            g->pin_pending = true; /* filled by the pinning thread, after prepare */
        }
        g->tier = FY_TIER_PINNED;
        e->stats.pinned_bytes += g->bytes;
        e->stats.host_bytes += g->bytes;
    }
    for (int i = 0; i < e->n_groups; i++) {
        eng_group *g = &e->groups[i];
        if (g->resident || g->pinned || g->tier == FY_TIER_DISK) continue;
        g->tier = FY_TIER_MAPPED;
        e->stats.mapped_bytes += g->bytes;
    }
    return FY_OK;
}

/* low_cpu_mem_usage: a ring of two pinned staging buffers of one group each. */
static fy_status make_staging(fy_engine *e)
{
    if (!e->opts.low_cpu_mem_usage) return FY_OK;
    uint64_t biggest = 0;
    for (int i = 0; i < e->n_groups; i++)
        if (!e->groups[i].resident && e->groups[i].tier != FY_TIER_DISK && e->groups[i].bytes > biggest)
            biggest = e->groups[i].bytes;
    if (!biggest) return FY_OK;
    e->stage_bytes = biggest;
    for (int k = 0; k < 2; k++) {
        bool locked = false;
        FY_TRY(e->backend->vt->alloc_pinned(e->backend, biggest, &e->stage[k], &locked));
        FY_TRY(e->backend->vt->event_create(e->backend, &e->stage_done[k]));
        if (!locked && k == 0)
            fy_warn("cannot pin the staging buffers (RLIMIT_MEMLOCK or a container limit): staging through "
                    "pageable memory");
        e->stats.host_bytes += biggest;
        if (locked) e->stats.pinned_bytes += biggest;
    }
    for (int i = 0; i < e->n_groups; i++)
        if (!e->groups[i].resident && e->groups[i].tier != FY_TIER_DISK && e->groups[i].bytes <= biggest)
            e->groups[i].tier = FY_TIER_STAGED;
    return FY_OK;
}

/* fsdp: SMALL groups whole on every rank (in place on the cpu backend),
 * blocks as this rank's shards, gathered through the ring. */
static fy_status prepare_fsdp(fy_engine *e)
{
    if (e->backend->unified_host_memory) {
        for (int i = 0; i < e->n_groups; i++) {
            eng_group *g = &e->groups[i];
            if (!g->resident) continue;
            set_host_views(g);
            g->tier = FY_TIER_MAPPED;
            e->stats.mapped_bytes += g->bytes;
        }
        FY_TRY(e->backend->vt->event_create(e->backend, &e->resident_ready));
    } else {
        FY_TRY(upload_resident(e));
    }
    FY_TRY(fy_eng_fsdp_prepare(e));
    return fy_eng_streamer_start(e);
}

fy_status fy_engine_prepare(fy_engine *e)
{
    if (e->prepared) return fy_error(FY_ERR_INVALID, "engine: fy_engine_prepare called twice");
    FY_TRY(fy_eng_planner_choose(e));
    FY_TRY(fy_eng_spill_choose(e));
    FY_TRY(fy_eng_plan(e, &e->opts, &e->plan, false));
    uint64_t budget = e->planner.active && e->planner.budget != UINT64_MAX ? e->planner.budget : e->stats.device_budget;
    if (!e->backend->unified_host_memory) FY_TRY(fy_eng_check_budget(e, &e->plan, budget));
    FY_TRY(fy_eng_plan(e, &e->opts, &e->plan, true));
    fy_eng_planner_init_steps(e);
    e->stats.device_bound = e->plan.device_bound;
    e->prepared = true;
    if (e->plan.fsdp) return prepare_fsdp(e);
    /* Host budget: which blocks stay on disk (fails here when it cannot be met). */
    FY_TRY(fy_eng_disk_prepare(e));
    FY_TRY(fy_eng_cast_materialize(e, false));
    if (e->backend->unified_host_memory) {
        FY_TRY(fy_eng_cast_materialize(e, true));
        /* Weights are read in place: nothing to move (disk-tier blocks are
         * computed from the staging ring). */
        for (int i = 0; i < e->n_groups; i++) {
            if (e->groups[i].tier == FY_TIER_DISK) continue;
            set_host_views(&e->groups[i]);
            e->groups[i].resident = true;
            e->groups[i].tier = FY_TIER_MAPPED;
            e->stats.mapped_bytes += e->groups[i].bytes;
        }
        fy_eng_cast_settle(e);
        return FY_OK;
    }
    FY_TRY(pin_streamed(e));
    FY_TRY(fy_eng_cast_materialize(e, true)); /* narrow groups that did not get pinned */
    FY_TRY(upload_resident(e));
    fy_eng_cast_settle(e);
    FY_TRY(make_staging(e));
    FY_TRY(fy_eng_pinner_start(e)); /* before the first prefetch, which waits for its group */
    return fy_eng_streamer_start(e);
}

static fy_status group_of(const fy_engine *e, int id, const char *what, eng_group **out)
{
    if (!e->prepared) return fy_error(FY_ERR_INVALID, "engine: %s before fy_engine_prepare", what);
    if (id < 0 || id >= e->n_groups) return fy_error(FY_ERR_INVALID, "engine: %s of unknown group %d", what, id);
    *out = &e->groups[id];
    return FY_OK;
}

static int component_named(const fy_engine *e, const char *name)
{
    for (int c = 0; name && c < e->n_comps; c++)
        if (strcmp(e->comps[c].name, name) == 0) return c;
    return -1;
}

fy_status fy_engine_hand_over(fy_engine *e, const char *from, const char *to)
{
    if (!e || !e->prepared) return fy_error(FY_ERR_INVALID, "engine: hand-over before fy_engine_prepare");
    int a = component_named(e, from), b = component_named(e, to);
    if (a < 0 || b < 0 || a == b)
        return fy_error(FY_ERR_INVALID, "engine: hand-over from %s to %s: not two declared components",
                        from ? from : "(null)", to ? to : "(null)");
    if (e->comps[a].retired || e->hand_from >= 0)
        return fy_error(FY_ERR_INVALID, "engine: %s is already handed over", e->comps[a].name);
    e->hand_from = a;
    e->hand_to = b;
    if (!e->backend->unified_host_memory && fy_eng_stream_can_hand_over(e, a, b)) fy_eng_stream_hand_over(e, b);
    return FY_OK;
}

void fy_eng_retire(fy_engine *e, int comp)
{
    fy_backend *b = e->backend;
    uint64_t freed = 0;
    bool fenced = false;
    for (int i = 0; i < e->n_groups; i++) {
        eng_group *g = &e->groups[i];
        if (g->component != comp || !g->resident || !g->device || g->spill >= 0) continue;
        /* The compute stream may still read them on an asynchronous device. */
        if (!fenced && !b->unified_host_memory &&
            (fy_backend_event_record(b, e->compute_fence, FY_STREAM_COMPUTE) != FY_OK ||
             b->vt->event_synchronize(b, e->compute_fence) != FY_OK))
            fy_backend_synchronize(b);
        fenced = true;
        fy_pool_release(e->pool, g->device);
        g->device = NULL;
        freed += g->bytes;
    }
    e->comps[comp].retired = true;
    pthread_mutex_lock(&e->stats_mu);
    e->stats.switch_freed_bytes += freed;
    pthread_mutex_unlock(&e->stats_mu);
}

/* A successor starts: its resident groups go where its predecessor's were. */
static fy_status enter_successor(fy_engine *e, int comp)
{
    eng_component *c = &e->comps[comp];
    c->entered = true;
    if (!e->comps[c->after].retired) fy_eng_retire(e, c->after); /* it never runs again */
    if (e->backend->unified_host_memory) return FY_OK;           /* read in place */
    bool any = false;
    for (int i = 0; i < e->n_groups; i++) {
        eng_group *g = &e->groups[i];
        if (g->component != comp || !g->resident || !fy_eng_deferred(e, g) || g->device) continue;
        FY_TRY(upload_resident_group(e, g));
        any = true;
    }
    return any ? fy_backend_event_record(e->backend, e->resident_ready, FY_STREAM_COPY) : FY_OK;
}

/* The first group of the component handed over to: the switch. */
static fy_status switch_on_acquire(fy_engine *e, const eng_group *g)
{
    if (e->hand_from >= 0 && g->component == e->hand_to) {
        fy_eng_retire(e, e->hand_from);
        e->hand_from = -1;
        e->switch_watch = true;
        pthread_mutex_lock(&e->stats_mu);
        e->stats.switches++;
        pthread_mutex_unlock(&e->stats_mu);
    }
    const eng_component *c = &e->comps[g->component];
    return c->after >= 0 && !c->entered ? enter_successor(e, g->component) : FY_OK;
}

/* Compute's waits from the switch to its first block in place (the
 * successor's resident groups, then the block), as one trace span. */
static void switch_after_acquire(fy_engine *e, const eng_group *g, double t0, double stall0)
{
    if (!e->switch_watch) return;
    if (e->switch_t0 == 0) e->switch_t0 = t0;
    pthread_mutex_lock(&e->stats_mu);
    e->stats.switch_stall_time += e->stats.stall_time - stall0;
    double stall = e->stats.switch_stall_time;
    pthread_mutex_unlock(&e->stats_mu);
    if (g->kind != FY_GROUP_BLOCK) return;
    e->switch_watch = false;
    char label[160];
    snprintf(label, sizeof label, "switch to %s (waited %.3f ms)", e->comps[g->component].name, stall * 1e3);
    fy_trace_span(e->trace, FY_TRACK_COMPUTE, label, "switch", e->switch_t0, fy_backend_now(), 0);
    e->switch_t0 = 0;
}

fy_status fy_engine_acquire(fy_engine *e, int group, const fy_tensor **weights)
{
    eng_group *g = NULL;
    FY_TRY(group_of(e, group, "acquire", &g));
    if (g->held) return fy_error(FY_ERR_INVALID, "engine: group %s acquired twice without a release", g->name);
    if (e->comps[g->component].retired)
        return fy_error(FY_ERR_INVALID, "engine: group %s of %s acquired after %s was handed over", g->name,
                        e->comps[g->component].name, e->comps[g->component].name);
    FY_TRY(switch_on_acquire(e, g));
    double stall0 = e->stats.stall_time;
    double now = fy_backend_now();
    if (!e->running) {
        e->running = true;
        e->run_start = now;
    }
    fy_eng_planner_on_acquire(e, g, now);
    if (!e->backend->unified_host_memory || e->plan.fsdp) FY_TRY(fy_eng_stream_acquire(e, g));
    else if (g->tier == FY_TIER_DISK) FY_TRY(fy_eng_disk_acquire(e, g));
    fy_eng_planner_on_ready(e, g);
    switch_after_acquire(e, g, now, stall0);
    g->held = true;
    g->t_acquired = fy_backend_now();
    *weights = g->dev;
    return FY_OK;
}

fy_status fy_engine_release(fy_engine *e, int group)
{
    eng_group *g = NULL;
    FY_TRY(group_of(e, group, "release", &g));
    if (!g->held) return fy_error(FY_ERR_INVALID, "engine: group %s released but not acquired", g->name);
    g->held = false;
    double now = fy_backend_now();
    if (g->kind == FY_GROUP_BLOCK) fy_trace_span(e->trace, FY_TRACK_COMPUTE, g->name, "compute", g->t_acquired, now, 0);
    fy_eng_planner_on_release(e, g, now - g->t_acquired);
    pthread_mutex_lock(&e->stats_mu);
    e->stats.run_time = now - e->run_start;
    e->stats.compute_time = e->stats.run_time - e->stats.stall_time;
    pthread_mutex_unlock(&e->stats_mu);
    if (e->backend->unified_host_memory && !e->plan.fsdp)
        return g->tier == FY_TIER_DISK ? fy_eng_disk_release(e, g) : FY_OK;
    return fy_eng_stream_release(e, g);
}

fy_status fy_engine_alloc(fy_engine *e, size_t bytes, const char *label, void **out)
{
    return fy_pool_alloc(e->pool, bytes, label ? label : "activations", out);
}

void fy_engine_free_buffer(fy_engine *e, void *ptr)
{
    /* The compute stream may still read the buffer on an asynchronous device. */
    fy_backend *b = e->backend;
    if (ptr && !b->unified_host_memory &&
        (fy_backend_event_record(b, e->compute_fence, FY_STREAM_COMPUTE) != FY_OK ||
         b->vt->event_synchronize(b, e->compute_fence) != FY_OK))
        fy_backend_synchronize(b); /* the fence failed: wait for everything instead */
    fy_pool_release(e->pool, ptr);
}

fy_status fy_engine_upload(fy_engine *e, void *dst_device, const void *src_host, size_t bytes)
{
    return fy_backend_copy_h2d_async(e->backend, dst_device, src_host, bytes, FY_STREAM_COMPUTE, "activations");
}

fy_status fy_engine_download(fy_engine *e, void *dst_host, const void *src_device, size_t bytes)
{
    return e->backend->vt->copy_d2h(e->backend, dst_host, src_device, bytes);
}

fy_status fy_engine_write_trace(fy_engine *e, const char *path)
{
    return fy_trace_write(e->trace, path);
}

fy_status fy_engine_finish(fy_engine *e)
{
    FY_TRY(fy_backend_synchronize(e->backend));
    pthread_mutex_lock(&e->stats_mu);
    e->stats.peak_device = fy_pool_peak(e->pool);
    pthread_mutex_unlock(&e->stats_mu);
    fy_eng_planner_finish(e);
    fy_eng_disk_stats(e);
    fy_eng_spill_stats(e);
    if (e->opts.trace_path && *e->opts.trace_path) return fy_engine_write_trace(e, e->opts.trace_path);
    return FY_OK;
}
