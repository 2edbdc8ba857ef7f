/* FSDP inference (--use-fsdp-inference): the streamer's ring, loaded by
 * all-gathers instead of uploads.
 *
 * Each rank keeps chunk = ceil(bytes / N) (rounded up to the layout's
 * alignment) of every streamed block: bytes [r * chunk, (r + 1) * chunk) of
 * the group's layout, zero past its end. The shard is copied once from the
 * borrowed source (the mmapped file), so a rank touches only its own pages of
 * the mapping. SMALL groups are not sharded: every rank holds them whole.
 *
 * Loading unit position p into ring slot s (streamer.c's ring_load):
 *   start   the host waits until nothing reads the gather target any more,
 *           then starts a non-blocking all-gather of this rank's shard into it.
 *           The target is the slot itself on a backend whose device memory is
 *           the host's (cpu), else a host buffer of the slot's size.
 *   finish  at the block's acquire (or earlier, when progress sees the gather
 *           done): on a discrete device the copy stream waits for the slot's
 *           `released` event and uploads the host buffer into the slot; then
 *           ready[s] is recorded on the copy stream, as for any upload, and
 *           compute waits on it. The host's wait for the gather is the stall.
 * Gathers are collectives: every rank starts them in the same order, which
 * holds because every rank runs the same blocks on the same inputs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/collectives.h"
#include "ferry/log.h"
#include "mem/engine_internal.h"

typedef struct fsdp_slot {
    void *host;             /* gather target on a discrete device (NULL on cpu) */
    fy_comm_request *req;   /* the gather in flight, or NULL */
    eng_group *group;       /* what is being gathered */
    bool upload_due;        /* gathered; the upload (or ready record) not issued yet */
    bool failed;            /* progress saw the gather or its upload fail: the acquire reports it */
    fy_status fail;         /* what failed, for the acquire's message */
    char why[384];
    double t_start;
} fsdp_slot;

typedef struct eng_fsdp {
    fy_comm *comm;
    bool owns_comm;
    int rank, ranks;
    void **shard;           /* per group id: this rank's chunk, or NULL */
    bool *shard_pinned;
    fsdp_slot *slots;
    int n_slots;
    uint64_t host_slot_bytes;
} eng_fsdp;

static uint64_t align_up(uint64_t v)
{
    return (v + FY_ENGINE_ALIGN - 1) / FY_ENGINE_ALIGN * FY_ENGINE_ALIGN;
}

static uint64_t chunk_of(const eng_fsdp *f, uint64_t bytes)
{
    return align_up((bytes + (uint64_t)f->ranks - 1) / (uint64_t)f->ranks);
}

fy_status fy_eng_fsdp_create(fy_engine *e)
{
    eng_fsdp *f = calloc(1, sizeof *f);
    if (!f) return fy_error(FY_ERR_NOMEM, "fsdp: out of memory");
    e->fsdp = f;
    f->comm = fy_dist_world();
    if (!f->comm) {
        /* Not started by the CLI (a library caller, a test): one rank. */
        FY_TRY(fy_comm_create_single(&f->comm));
        f->owns_comm = true;
        fy_comm_set_timeout(f->comm, e->opts.collective_timeout);
    }
    if (fy_comm_device_buffers(f->comm))
        return fy_error(FY_ERR_UNSUPPORTED, "fsdp: the engine gathers through host memory; a %s communicator "
                        "(device buffers) is not wired into the engine yet", fy_comm_name(f->comm));
    f->rank = fy_comm_rank(f->comm);
    f->ranks = fy_comm_size(f->comm);
    return FY_OK;
}

int fy_eng_fsdp_ranks(const fy_engine *e)
{
    return e->fsdp ? e->fsdp->ranks : 1;
}

uint64_t fy_eng_fsdp_padded(const fy_engine *e, uint64_t bytes)
{
    if (!e->fsdp) return align_up(bytes);
    return chunk_of(e->fsdp, bytes) * (uint64_t)e->fsdp->ranks;
}

/* This rank's bytes of the group's layout, from the borrowed source. */
static void fill_shard(const eng_fsdp *f, const eng_group *g, uint64_t chunk, char *shard)
{
    uint64_t lo = (uint64_t)f->rank * chunk, hi = lo + chunk;
    memset(shard, 0, chunk); /* alignment gaps and the padding past the end */
    for (int w = 0; w < g->n; w++) {
        uint64_t a = g->offset[w], b = a + fy_tensor_nbytes(&g->src[w]);
        uint64_t from = a > lo ? a : lo, to = b < hi ? b : hi;
        if (from < to) memcpy(shard + (from - lo), (const char *)g->src[w].data + (from - a), to - from);
    }
}

static fy_status make_shard(fy_engine *e, int id)
{
    eng_fsdp *f = e->fsdp;
    eng_group *g = &e->groups[id];
    uint64_t chunk = chunk_of(f, g->bytes);
    bool locked = false;
    if (e->opts.dit_cpu_offload) {
        FY_TRY(e->backend->vt->alloc_pinned(e->backend, chunk, &f->shard[id], &locked));
        f->shard_pinned[id] = true;
        static bool warned;
        if (!locked && !warned)
            fy_warn("--dit-cpu-offload: cannot pin the shards (RLIMIT_MEMLOCK or a container limit); they stay in "
                    "pageable memory");
        warned = warned || !locked;
    } else if (posix_memalign(&f->shard[id], FY_ENGINE_ALIGN, chunk ? chunk : 1) != 0) {
        f->shard[id] = NULL;
        return fy_error(FY_ERR_NOMEM, "fsdp: out of host memory for the shard of %s", g->name);
    }
    fill_shard(f, g, chunk, f->shard[id]);
    g->tier = FY_TIER_SHARDED;
    e->stats.shard_bytes += chunk;
    e->stats.sharded_bytes += g->bytes;
    e->stats.host_bytes += chunk;
    if (locked) e->stats.pinned_bytes += chunk;
    return FY_OK;
}

/* On a discrete device a gather lands in host memory first: one buffer per
 * ring slot, pinned so the upload is fast. */
static fy_status make_host_slots(fy_engine *e)
{
    eng_fsdp *f = e->fsdp;
    f->n_slots = e->plan.slots;
    f->slots = calloc((size_t)(f->n_slots > 0 ? f->n_slots : 1), sizeof *f->slots);
    if (!f->slots) return fy_error(FY_ERR_NOMEM, "fsdp: out of memory");
    if (e->backend->unified_host_memory) return FY_OK;
    for (int c = 0; c < e->n_comps; c++)
        if (e->comps[c].unit_bytes > f->host_slot_bytes) f->host_slot_bytes = e->comps[c].unit_bytes;
    for (int s = 0; s < f->n_slots && f->host_slot_bytes; s++) {
        bool locked = false;
        FY_TRY(e->backend->vt->alloc_pinned(e->backend, f->host_slot_bytes, &f->slots[s].host, &locked));
        e->stats.host_bytes += f->host_slot_bytes;
        if (locked) e->stats.pinned_bytes += f->host_slot_bytes;
    }
    return FY_OK;
}

fy_status fy_eng_fsdp_prepare(fy_engine *e)
{
    eng_fsdp *f = e->fsdp;
    if (!f) return fy_error(FY_ERR_INTERNAL, "fsdp: prepare without a communicator");
    f->shard = calloc((size_t)(e->n_groups ? e->n_groups : 1), sizeof *f->shard);
    f->shard_pinned = calloc((size_t)(e->n_groups ? e->n_groups : 1), sizeof *f->shard_pinned);
    if (!f->shard || !f->shard_pinned) return fy_error(FY_ERR_NOMEM, "fsdp: out of memory");
    for (int i = 0; i < e->n_groups; i++)
        if (!e->groups[i].resident) FY_TRY(make_shard(e, i));
    e->stats.rank = f->rank;
    e->stats.ranks = f->ranks;
    return make_host_slots(e);
}

fy_status fy_eng_fsdp_start(fy_engine *e, int slot, eng_group *g)
{
    eng_fsdp *f = e->fsdp;
    fsdp_slot *fs = &f->slots[slot];
    fy_backend *b = e->backend;
    if (fs->req) FY_TRY(fy_comm_wait(f->comm, fs->req)); /* never: finish comes first */
    fs->req = NULL;
    /* Nothing may read the target while the gather writes it: on cpu the
     * slot's last reader is compute, on a device the host buffer's is the
     * previous upload (ready[slot] follows it). */
    fy_event *reader = fs->host ? e->ring.ready[slot] : e->ring.released[slot];
    FY_TRY(b->vt->event_synchronize(b, reader));
    void *target = fs->host ? fs->host : e->ring.slot[slot];
    int id = (int)(g - e->groups);
    uint64_t chunk = chunk_of(f, g->bytes);
    fs->group = g;
    fs->failed = false;
    fs->upload_due = true;
    fs->t_start = fy_backend_now();
    fy_status s = fy_comm_all_gather_start(f->comm, f->shard[id], target, chunk, &fs->req);
    if (s != FY_OK) fs->upload_due = false;
    return s;
}

/* Until the next start, finish reports this instead of letting compute wait
 * on a ready[slot] that still stands for the slot's previous block. */
static void mark_failed(fsdp_slot *fs, fy_status s, const char *why)
{
    fs->req = NULL;
    fs->upload_due = false;
    fs->failed = true;
    fs->fail = s;
    snprintf(fs->why, sizeof fs->why, "%s", why);
}

static fy_status upload(fy_engine *e, int slot, uint64_t bytes)
{
    fsdp_slot *fs = &e->fsdp->slots[slot];
    fy_backend *b = e->backend;
    if (fs->host) {
        FY_TRY(fy_backend_stream_wait_event(b, FY_STREAM_COPY, e->ring.released[slot]));
        FY_TRY(fy_backend_copy_h2d_async(b, e->ring.slot[slot], fs->host, bytes, FY_STREAM_COPY, fs->group->name));
    }
    return fy_backend_event_record(b, e->ring.ready[slot], FY_STREAM_COPY);
}

/* The gather into slot is done: make the slot ready on the copy stream. */
static fy_status issue_upload(fy_engine *e, int slot)
{
    eng_fsdp *f = e->fsdp;
    fsdp_slot *fs = &f->slots[slot];
    double now = fy_backend_now();
    uint64_t bytes = fy_eng_fsdp_padded(e, fs->group->bytes);
    fy_trace_span(e->trace, FY_TRACK_COPY, fs->group->name, "all-gather", fs->t_start, now, bytes);
    pthread_mutex_lock(&e->stats_mu);
    e->stats.bytes_gathered += bytes;
    pthread_mutex_unlock(&e->stats_mu);
    fs->upload_due = false;
    fy_status s = upload(e, slot, bytes);
    if (s == FY_OK) return FY_OK;
    char why[sizeof fs->why];
    snprintf(why, sizeof why, "uploading the gathered block failed: %s", fy_error_message());
    mark_failed(fs, s, why);
    return fy_error(s, "gathering %s: %s", fs->group->name, fs->why);
}

fy_status fy_eng_fsdp_finish(fy_engine *e, int slot)
{
    eng_fsdp *f = e->fsdp;
    fsdp_slot *fs = &f->slots[slot];
    if (fs->failed) return fy_error(fs->fail, "gathering %s: %s", fs->group->name, fs->why);
    if (fs->req) {
        double t0 = fy_backend_now();
        fy_comm_request *r = fs->req;
        fs->req = NULL;
        fy_status s = fy_comm_wait(f->comm, r);
        fy_eng_stats_stall(e, fs->group->name, t0, fy_backend_now());
        if (s != FY_OK) {
            mark_failed(fs, s, fy_error_message()); /* upload_due must not survive a lost gather */
            return fy_error_prefix(s, "gathering %s: ", fs->group->name);
        }
    }
    return fs->upload_due ? issue_upload(e, slot) : FY_OK;
}

void fy_eng_fsdp_progress(fy_engine *e)
{
    eng_fsdp *f = e->fsdp;
    if (!f || !f->slots || e->ring.component < 0) return;
    for (int s = 0; s < f->n_slots && s < e->ring.slots; s++) {
        fsdp_slot *fs = &f->slots[s];
        bool done = false;
        if (!fs->req) continue;
        /* A failure is left for the block's acquire to report. */
        if (fy_comm_test(f->comm, fs->req, &done) != FY_OK) {
            mark_failed(fs, FY_ERR_DEVICE, "the all-gather failed (a rank died?)");
            continue;
        }
        if (!done) continue;
        fs->req = NULL;
        (void)issue_upload(e, s); /* a failure marks the slot: its acquire reports it */
    }
}

fy_status fy_eng_fsdp_drain(fy_engine *e)
{
    eng_fsdp *f = e->fsdp;
    if (!f || !f->slots) return FY_OK;
    fy_status first = FY_OK;
    for (int s = 0; s < f->n_slots; s++) {
        fsdp_slot *fs = &f->slots[s];
        if (fs->req) {
            fy_status st = fy_comm_wait(f->comm, fs->req);
            if (first == FY_OK) first = st;
        }
        fs->req = NULL;
        fs->upload_due = false;
        fs->failed = false;
    }
    return first;
}

void fy_eng_fsdp_free(fy_engine *e)
{
    eng_fsdp *f = e->fsdp;
    if (!f) return;
    for (int i = 0; f->shard && i < e->n_groups; i++) {
        if (!f->shard[i]) continue;
        if (f->shard_pinned[i]) e->backend->vt->free_pinned(e->backend, f->shard[i], chunk_of(f, e->groups[i].bytes));
        else free(f->shard[i]);
    }
    for (int s = 0; f->slots && s < f->n_slots; s++)
        if (f->slots[s].host) e->backend->vt->free_pinned(e->backend, f->slots[s].host, f->host_slot_bytes);
    free(f->shard);
    free(f->shard_pinned);
    free(f->slots);
    if (f->owns_comm) fy_comm_free(f->comm);
    free(f);
    e->fsdp = NULL;
}
