/* The streamer: one mechanism for every plan.
 *
 * A component's streamed blocks are cut into units (1 block for layerwise
 * and sequential, num_blocks_per_group for group, all of them for model).
 * The ring has S unit slots; unit position p (counting cyclically across
 * steps) lives in slot p % S. Eager plans (layerwise, group with use_stream)
 * fill the ring ahead: releasing position p issues the upload of position
 * p + S into the slot p just freed. Lazy plans (sequential, group without a
 * stream, model) upload a unit when its first block is acquired.
 *
 * Ordering is by events only: the copy stream waits on the slot's
 * `released` event (recorded on the compute stream when its last block is
 * released) before overwriting it, and compute waits on the slot's `ready`
 * event (recorded on the copy stream after the uploads). The time compute
 * spends in that wait is the stall (stall_probe.c: on a GPU, by its events). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/log.h"
#include "mem/engine_internal.h"

static void set_views(eng_group *g, char *base)
{
    for (int i = 0; i < g->n; i++) {
        g->dev[i] = g->src[i];
        g->dev[i].data = base + g->offset[i];
        g->dev[i].device = 0;
        g->dev[i].owns_data = false;
    }
    fy_eng_cast_link(g);
}

/* Host wait for a staging buffer to be free again: compute is blocked, so it
 * counts as stall. */
static fy_status wait_stage(fy_engine *e, int k, const char *name)
{
    if (e->backend->vt->event_query(e->backend, e->stage_done[k])) return FY_OK;
    double t0 = fy_backend_now();
    fy_status s = e->backend->vt->event_synchronize(e->backend, e->stage_done[k]);
    fy_eng_stats_stall(e, name, t0, fy_backend_now());
    return s;
}

static fy_status upload_group(fy_engine *e, eng_group *g, char *dst)
{
    fy_backend *b = e->backend;
    fy_eng_pinner_wait(e, g);
    if (g->pinned) return fy_backend_copy_h2d_async(b, dst, g->pinned, g->bytes, FY_STREAM_COPY, g->name);
    if (e->stage[0] && g->bytes <= e->stage_bytes) {
        int k = e->stage_next;
        e->stage_next ^= 1;
        FY_TRY(wait_stage(e, k, g->name));
        for (int i = 0; i < g->n; i++)
            memcpy((char *)e->stage[k] + g->offset[i], g->src[i].data, fy_tensor_nbytes(&g->src[i]));
        FY_TRY(fy_backend_copy_h2d_async(b, dst, e->stage[k], g->bytes, FY_STREAM_COPY, g->name));
        return fy_backend_event_record(b, e->stage_done[k], FY_STREAM_COPY);
    }
    for (int i = 0; i < g->n; i++) {
        size_t n = fy_tensor_nbytes(&g->src[i]);
        if (n) FY_TRY(fy_backend_copy_h2d_async(b, dst + g->offset[i], g->src[i].data, n, FY_STREAM_COPY, g->name));
    }
    return FY_OK;
}

static void free_ring(fy_engine *e)
{
    eng_ring *r = &e->ring;
    if (r->component >= 0) fy_backend_synchronize(e->backend); /* slots may be in use by either stream */
    for (int s = 0; s < r->slots; s++) {
        if (r->slot) fy_pool_release(e->pool, r->slot[s]);
        if (r->ready && r->ready[s]) e->backend->vt->event_destroy(e->backend, r->ready[s]);
        if (r->released && r->released[s]) e->backend->vt->event_destroy(e->backend, r->released[s]);
    }
    free(r->slot);
    free(r->ready);
    free(r->released);
    free(r->slot_unit);
    free(r->pend);
    memset(r, 0, sizeof *r);
    r->component = -1;
    r->next = -1;
    r->switch_pos = -1;
}

/* The component and unit that position pos holds: the active component's
 * cyclically, or from a hand-over's switch position on, the next one's. */
static int unit_at(const fy_engine *e, int64_t pos, int *comp)
{
    const eng_ring *r = &e->ring;
    if (r->switch_pos >= 0 && pos >= r->switch_pos) {
        *comp = r->next;
        return (int)((pos - r->switch_pos) % e->comps[r->next].n_units);
    }
    *comp = r->component;
    return (int)((pos - r->base) % e->comps[r->component].n_units);
}

static int64_t unit_key(int comp, int unit)
{
    return (int64_t)comp << 32 | (int64_t)unit;
}

/* Issue the queued loads in order: for each unit position, the copy stream
 * waits for the slot's release, then each group's uploads, then the slot's
 * ready event. A disk-tier group whose read is not done stops the queue
 * there (compute goes on) unless its position is <= force, when the read is
 * waited for: the compute needs it now. */
static fy_status ring_pump(fy_engine *e, int64_t force)
{
    eng_ring *r = &e->ring;
    int per = e->plan.blocks_per_unit;
    while (r->pend_n > 0) {
        int64_t pos = r->pend[0];
        int s = (int)(pos % r->slots);
        int comp;
        int u = unit_at(e, pos, &comp);
        eng_component *c = &e->comps[comp];
        if (!r->pend_started) FY_TRY(fy_backend_stream_wait_event(e->backend, FY_STREAM_COPY, r->released[s]));
        r->pend_started = true;
        for (int64_t k = (int64_t)u * per + r->pend_k; k < c->n_streamed && k < ((int64_t)u + 1) * per;
             k++, r->pend_k++) {
            eng_group *g = &e->groups[c->streamed[k]];
            char *base = (char *)r->slot[s] + g->unit_offset;
            if (g->tier == FY_TIER_DISK) {
                bool issued = false;
                FY_TRY(fy_eng_disk_upload(e, g, base, pos <= force, &issued));
                if (!issued) return FY_OK;
            } else {
                FY_TRY(upload_group(e, g, base));
            }
            set_views(g, base);
        }
        FY_TRY(fy_backend_event_record(e->backend, r->ready[s], FY_STREAM_COPY));
        memmove(r->pend, r->pend + 1, (size_t)(r->pend_n - 1) * sizeof *r->pend);
        r->pend_n--;
        r->pend_k = 0;
        r->pend_started = false;
    }
    return FY_OK;
}

/* Queue the uploads of unit position pos into its slot (no-op when there). */
static fy_status ring_load(fy_engine *e, int64_t pos)
{
    eng_ring *r = &e->ring;
    int s = (int)(pos % r->slots);
    int comp;
    int u = unit_at(e, pos, &comp);
    eng_component *c = &e->comps[comp];
    if (r->slot_unit[s] == unit_key(comp, u)) return FY_OK;
    if (e->plan.fsdp) {
        eng_group *g = &e->groups[c->streamed[u]]; /* one block per unit */
        r->slot_unit[s] = unit_key(comp, u);
        set_views(g, (char *)r->slot[s] + g->unit_offset);
        return fy_eng_fsdp_start(e, s, g);
    }
    if (r->pend_n > r->slots) return fy_error(FY_ERR_INTERNAL, "engine: %s ring: too many loads queued", c->name);
    r->slot_unit[s] = unit_key(comp, u);
    r->pend[r->pend_n++] = pos;
    return ring_pump(e, -1);
}

/* Make comp's ring the active one, positioned at unit `unit`. */
static fy_status ring_activate(fy_engine *e, int comp, int unit)
{
    /* Gathers in flight write into the old ring: they finish first. */
    if (e->plan.fsdp) FY_TRY(fy_eng_fsdp_drain(e));
    free_ring(e);
    eng_component *c = &e->comps[comp];
    eng_ring *r = &e->ring;
    int slots = e->plan.slots < c->n_units ? e->plan.slots : c->n_units;
    r->component = comp;
    r->slots = slots;
    r->slot_bytes = c->unit_bytes;
    r->pos = unit;
    r->base = 0;
    r->next = -1;
    r->switch_pos = -1;
    r->slot = calloc((size_t)slots, sizeof *r->slot);
    r->ready = calloc((size_t)slots, sizeof *r->ready);
    r->released = calloc((size_t)slots, sizeof *r->released);
    r->slot_unit = calloc((size_t)slots, sizeof *r->slot_unit);
    r->pend = calloc((size_t)slots + 1, sizeof *r->pend);
    if (!r->slot || !r->ready || !r->released || !r->slot_unit || !r->pend)
        return fy_error(FY_ERR_NOMEM, "engine: out of memory for the %s ring", c->name);
    for (int s = 0; s < slots; s++) {
        char label[96];
        snprintf(label, sizeof label, "%s ring slot %d", c->name, s);
        r->slot_unit[s] = -1;
        FY_TRY(fy_pool_alloc(e->pool, r->slot_bytes, label, &r->slot[s]));
        FY_TRY(e->backend->vt->event_create(e->backend, &r->ready[s]));
        FY_TRY(e->backend->vt->event_create(e->backend, &r->released[s]));
    }
    if (e->plan.eager)
        for (int s = 0; s < slots; s++) FY_TRY(ring_load(e, r->pos + s));
    return FY_OK;
}

fy_status fy_eng_streamer_start(fy_engine *e)
{
    e->ring.component = -1;
    /* The first component with streamed blocks starts prefetching now, so the
     * first block overlaps whatever the caller does before it. */
    for (int c = 0; c < e->n_comps; c++)
        if (e->comps[c].n_units > 0) return ring_activate(e, c, 0);
    return FY_OK;
}

void fy_eng_streamer_stop(fy_engine *e)
{
    if (e->plan.fsdp) (void)fy_eng_fsdp_drain(e); /* a failure was reported where it happened */
    free_ring(e);
}

static fy_status wait_ready(fy_engine *e, fy_event *ev, const char *name)
{
    return fy_eng_stall_wait(e, ev, name);
}

/* The hand-over's switch: the ring, already holding next's first units,
 * becomes next's; the component handed over gives back its resident device
 * memory. */
static bool pending(const eng_ring *r, int64_t pos)
{
    for (int k = 0; k < r->pend_n; k++)
        if (r->pend[k] == pos) return true;
    return false;
}

static void ring_switch(fy_engine *e)
{
    eng_ring *r = &e->ring;
    int from = r->component;
    /* next's units whose uploads were issued during from's last pass */
    int issued = 0;
    for (int64_t p = r->switch_pos; p < r->switch_pos + r->slots; p++) {
        int comp;
        int u = unit_at(e, p, &comp);
        issued += r->slot_unit[p % r->slots] == unit_key(comp, u) && !pending(r, p);
    }
    pthread_mutex_lock(&e->stats_mu);
    e->stats.switch_prefetched += issued;
    pthread_mutex_unlock(&e->stats_mu);
    r->component = r->next;
    r->base = r->switch_pos;
    r->next = -1;
    r->switch_pos = -1;
    fy_eng_retire(e, from);
}

fy_status fy_eng_stream_acquire(fy_engine *e, eng_group *g)
{
    if (g->resident) return wait_ready(e, e->resident_ready, g->name);
    eng_ring *r = &e->ring;
    bool switching = r->component != g->component && r->next == g->component && r->pos == r->switch_pos;
    if (switching) ring_switch(e);
    else if (r->component != g->component) FY_TRY(ring_activate(e, g->component, g->unit));
    eng_component *c = &e->comps[g->component];
    int expected = (int)((r->pos - r->base) % c->n_units);
    if (g->unit != expected) {
        int per = e->plan.blocks_per_unit;
        const eng_group *want = &e->groups[c->streamed[(int64_t)expected * per + (r->released_in_unit % per)]];
        return fy_error(FY_ERR_INVALID,
                        "engine: group %s acquired out of declared order (expected %s); blocks must run in "
                        "the order they were declared", g->name, want->name);
    }
    FY_TRY(ring_load(e, r->pos)); /* lazy plans load here; eager ones already have */
    if (e->plan.fsdp) {
        fy_eng_fsdp_progress(e);
        FY_TRY(fy_eng_fsdp_finish(e, (int)(r->pos % r->slots)));
    }
    FY_TRY(ring_pump(e, r->pos));  /* everything up to this unit issued, disk reads waited for */
    return wait_ready(e, r->ready[r->pos % r->slots], g->name);
}

static int unit_size(const fy_engine *e, const eng_component *c, int unit)
{
    int per = e->plan.blocks_per_unit;
    int64_t first = (int64_t)unit * per;
    int64_t left = c->n_streamed - first;
    return left < per ? (int)left : per;
}

bool fy_eng_stream_can_hand_over(const fy_engine *e, int comp, int next)
{
    const eng_ring *r = &e->ring;
    const eng_component *n = &e->comps[next];
    /* Lazy plans have nothing to prefetch; FSDP gathers and a ring sized
     * for fewer or smaller units take the general path (a new ring). */
    return getenv("NOHO") == NULL && e->plan.eager && !e->plan.fsdp && r->component == comp && r->switch_pos < 0 && n->n_units >= r->slots &&
           n->unit_bytes <= r->slot_bytes && e->plan.blocks_per_unit == 1;
}

/* The pass of the active component now running (or about to start) is its
 * last: the positions after it are next's units. */
void fy_eng_stream_hand_over(fy_engine *e, int next)
{
    eng_ring *r = &e->ring;
    const eng_component *c = &e->comps[r->component];
    int64_t into = (r->pos - r->base) % c->n_units;
    r->next = next;
    r->switch_pos = r->pos - into + c->n_units;
    /* Loads already queued beyond it are the active component's own next
     * pass: only units that were not issued yet can be redirected, so the
     * slots they hold are marked for a reload. */
    for (int64_t p = r->switch_pos; p < r->pos + r->slots; p++) r->slot_unit[p % r->slots] = -1;
}

fy_status fy_eng_stream_release(fy_engine *e, eng_group *g)
{
    if (g->resident) return FY_OK;
    eng_ring *r = &e->ring;
    eng_component *c = &e->comps[g->component];
    if (++r->released_in_unit < unit_size(e, c, g->unit)) return r->pend_n ? ring_pump(e, -1) : FY_OK;
    int s = (int)(r->pos % r->slots);
    FY_TRY(fy_backend_event_record(e->backend, r->released[s], FY_STREAM_COMPUTE));
    r->released_in_unit = 0;
    r->pos++;
    /* Refill the slot just freed with the unit S positions ahead (wrapping
     * into the next step). */
    if (e->plan.eager) FY_TRY(ring_load(e, r->pos - 1 + r->slots));
    if (e->plan.fsdp) fy_eng_fsdp_progress(e);
    return FY_OK;
}
