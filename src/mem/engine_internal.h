/* The offload engine's state, shared by src/mem/{groups,plan,streamer,stats,engine}.c. */
#ifndef FERRY_MEM_ENGINE_INTERNAL_H
#define FERRY_MEM_ENGINE_INTERNAL_H

#include <pthread.h>
#include "ferry/engine.h"
#include "mem/disk.h"
#include "mem/pool.h"
#include "mem/trace.h"

/* Device and pinned layouts align each weight like cudaMalloc does. */
#define FY_ENGINE_ALIGN 256u

typedef struct eng_group {
    char name[64];
    int component;
    fy_group_kind kind;
    int n;
    fy_tensor *src;        /* borrowed host tensors */
    fy_tensor *dev;        /* device views, valid while loaded */
    uint64_t *offset;      /* of each weight in the group's layout */
    uint64_t bytes;        /* the layout's size */
    int block_index;       /* among all blocks in declared order; -1 for SMALL */
    int resident_rank;     /* see fy_eng_resident_rank */
    int spill;             /* resident on e->spill[spill] (--device-map auto), -1: not */
    /* fp8 storage (cast.c): src[0..n_declared) are the model's weights, the
     * rest the f32 scales of the cast ones (cast->scale_of), laid out and
     * moved with them. */
    int n_declared;
    struct eng_cast *cast; /* NULL: no castable weight */
    /* set by prepare */
    bool resident;
    int unit;              /* in its component's ring; -1 when resident */
    uint64_t unit_offset;  /* within the unit's slot */
    fy_tier tier;
    void *pinned;          /* the one pinned host copy, or NULL */
    bool pin_pending;      /* filled by the pinning thread (pinner.c) */
    void *device;          /* pool allocation of a resident group */
    /* running */
    bool held;
    double t_acquired;
    int disk_slot;         /* the disk staging slot it is computed from (--device cpu), -1 none */
    /* compute spans (acquired -> released) for the planner's cost model */
    double span_first;     /* in the first measured step */
    double span_sum;       /* in later steps */
    int span_n;
    double flops;          /* fy_engine_set_group_flops: one use's arithmetic, 0 unknown */
} eng_group;

typedef struct eng_component {
    char name[64];
    bool keep_stored;      /* fy_engine_keep_stored: no bf16/f16 storage */
    int *streamed;         /* group ids of its streamed blocks, declared order */
    int n_streamed;
    int n_units;
    uint64_t unit_bytes;   /* largest unit */
    bool retired;          /* handed over (fy_engine_hand_over): its groups never run again */
    int after;             /* fy_engine_declare_successor: runs only after this one, -1 none */
    bool entered;          /* a successor's first group was acquired: its resident groups are up */
    int steps;             /* fy_engine_set_component_steps: passes a run makes, 0 not declared */
} eng_component;

typedef struct eng_ring {
    int component;         /* -1: none active */
    int slots;
    uint64_t slot_bytes;
    void **slot;
    fy_event **ready;      /* recorded on the copy stream after a slot's uploads */
    fy_event **released;   /* recorded on the compute stream when a slot's unit is done */
    int64_t *slot_unit;    /* unit key (component, unit) held or in flight per slot, -1 = none */
    int64_t pos;           /* the unit position being computed (cyclic) */
    int64_t base;          /* the position of the active component's unit 0 */
    /* fy_engine_hand_over: from switch_pos on, the positions are next's
     * units (prefetched into the same slots during the last pass); -1 none. */
    int next;
    int64_t switch_pos;
    int released_in_unit;
    /* Unit positions whose uploads are not all issued yet (disk-tier groups
     * whose reads are still running), oldest first; the head has its first
     * pend_k groups issued. */
    int64_t *pend;
    int pend_n;
    int pend_k;
    bool pend_started;     /* the copy stream already waits on the head slot's release */
} eng_ring;

/* The planner (planner.c): its choice, its predictions and the step timings
 * that check them. A "step" is one pass over the step component's blocks,
 * timed from one acquire of its first block to the next. */
typedef struct eng_planner {
    bool active;            /* --vram-budget chose the plan */
    uint64_t budget;
    double bandwidth;       /* measured host-to-device bytes/s */
    double initial_s;       /* predicted step time from the compute estimate */
    double bytes_s;         /* the same from the weights' bytes alone (no FLOPs declared) */
    double flop_rate;       /* FLOP/s the compute estimate assumes */
    bool rate_measured;     /* flop_rate is a timed GEMM on this device (else assumed) */
    bool flop_based;        /* the step component declared its blocks' FLOPs */
    double step_flops;      /* their sum: one step's arithmetic */
    double refined_s;       /* re-predicted with measured compute */
    int step_comp;          /* component whose block pass is a step; -1 none */
    int first_block;        /* its first block's group id */
    double mark;            /* when this step's first block was acquired */
    double mark_stall;      /* stats.stall_time then */
    double cycle_compute;   /* block spans in this step so far */
    int marks;              /* first-block acquires so far */
    double *cycle_s, *gap_s; /* per finished step: duration, time outside block spans and stalls */
    int n_cycles, cap_cycles;
    /* A device that computes asynchronously (cuda: event_elapsed) is timed
     * by events on its compute stream, not by the host clock. */
    bool device_clock;
    fy_event **start, **end; /* per group id: the step component's blocks */
    fy_event *step_mark[2];  /* each step's start, alternating */
    int last_block;          /* the step's last released block (group id) */
} eng_planner;

/* --device-map auto over several devices: another device that holds
 * resident blocks (the compute, activations and ring are the first one's). */
typedef struct eng_spill {
    int device;           /* its index in --max-memory */
    fy_backend *backend;
    fy_pool *pool;
    uint64_t budget;
} eng_spill;

struct fy_engine {
    fy_run_options opts;
    fy_backend *backend;
    bool owns_backend;
    fy_pool *pool;
    fy_trace *trace;

    eng_group *groups;
    int n_groups, cap_groups;
    eng_component *comps;
    int n_comps, cap_comps;
    int n_blocks;
    uint64_t activation_bytes;

    bool prepared;
    fy_plan plan;
    eng_ring ring;
    fy_event *resident_ready;
    /* Recorded on the compute stream before a buffer is freed: freeing waits
     * for compute only, never for weight prefetches queued on the copy stream. */
    fy_event *compute_fence;
    /* low_cpu_mem_usage: two pinned staging buffers */
    void *stage[2];
    fy_event *stage_done[2];
    uint64_t stage_bytes;
    int stage_next;

    fy_disk *disk;         /* the disk tier's reader, NULL without it */
    struct eng_pinner *pinner; /* fills pinned copies in the background; NULL when done or none */

    pthread_mutex_t stats_mu; /* the copy observer runs on the copy thread */
    fy_engine_stats stats;
    fy_engine_stats stats_view; /* fy_engine_stats_get's consistent copy */
    bool running;
    double run_start;
    eng_planner planner;
    struct eng_fsdp *fsdp;    /* --use-fsdp-inference (fsdp.c); NULL otherwise */
    eng_spill *spill;         /* the other devices of --device-map auto */
    int n_spill;
    /* fy_engine_hand_over: from's last pass, then to's (-1: none pending). */
    int hand_from, hand_to;
    bool switch_watch;        /* time the stall of to's first block */
    struct eng_probes *probes; /* stall_probe.c: the GPU's waits, timed by its events */
    double switch_t0;         /* when the switch's first acquire began */
};

/* groups.c: offsets and bytes of src[0..n) in the group's layout. */
void fy_eng_layout_group(eng_group *g);
/* cast.c: fp8 storage of the weights models mark castable. */
fy_status fy_eng_cast_layout(fy_engine *e, fy_dtype storage);   /* lay every group out for storage */
fy_status fy_eng_cast_declare(fy_engine *e, eng_group *g);      /* narrow storage: lay g out converted */
/* Quantise or convert into heap host copies: the fp8 groups, or (narrow) the
 * narrow-storage groups that are not pinned. */
fy_status fy_eng_cast_materialize(fy_engine *e, bool narrow);
/* Narrow storage: the pinning thread converts the group into its pinned copy. */
bool fy_eng_cast_pins_itself(const eng_group *g);
/* The weights as the model declared them (where they are in the files). */
const fy_tensor *fy_eng_cast_declared(const eng_group *g);
void fy_eng_cast_fill(const fy_engine *e, const eng_group *g, void *dst);
/* After pinning: a pinned copy replaces the heap one; the rest count as host bytes. */
void fy_eng_cast_settle(fy_engine *e);
bool fy_eng_cast_any(const fy_engine *e);                        /* some weight is castable */
void fy_eng_cast_link(eng_group *g);                             /* point dev views at their scales */
void fy_eng_cast_free(eng_group *g);
/* plan.c: the plan options give; applies it to the groups when apply is set. */
fy_status fy_eng_plan(fy_engine *e, const fy_run_options *o, fy_plan *out, bool apply);
fy_status fy_eng_check_budget(const fy_engine *e, const fy_plan *p, uint64_t budget);
/* A successor's resident groups share its predecessor's device memory:
 * uploaded when it starts, not at prepare (fy_engine_declare_successor). */
static inline bool fy_eng_deferred(const fy_engine *e, const eng_group *g)
{
    return e->comps[g->component].after >= 0 && g->spill < 0;
}

/* engine.c: a handed-over component's resident groups go back to the pool. */
void fy_eng_retire(fy_engine *e, int comp);
/* streamer.c */
bool fy_eng_stream_can_hand_over(const fy_engine *e, int comp, int next);
void fy_eng_stream_hand_over(fy_engine *e, int next);
fy_status fy_eng_streamer_start(fy_engine *e);
void fy_eng_streamer_stop(fy_engine *e);
fy_status fy_eng_stream_acquire(fy_engine *e, eng_group *g);
fy_status fy_eng_stream_release(fy_engine *e, eng_group *g);
/* groups.c: the component whose block pass is a denoising step ("transformer",
 * else the one with the most blocks; -1 without blocks), and its first
 * block's group id (-1 none). */
int fy_eng_step_component(const fy_engine *e, int *first_group);
/* Order in which blocks stay resident under --resident-blocks K /
 * --resident-bytes: the step component's blocks first (they run every
 * step; a text encoder's run once per video), then the others as declared.
 * Block g is resident when its rank < K. */
int fy_eng_resident_rank(const fy_engine *e, const eng_group *g);

/* disk_tier.c: tiers under --max-memory cpu, before any allocation */
fy_status fy_eng_disk_prepare(fy_engine *e);
/* The device path: issue group g's uploads to dst from its staging slot;
 * force waits for the read (a disk stall), else *issued stays false when
 * the read is not done. */
fy_status fy_eng_disk_upload(fy_engine *e, eng_group *g, char *dst, bool force, bool *issued);
/* --device cpu: compute reads the staging slot itself. */
fy_status fy_eng_disk_acquire(fy_engine *e, eng_group *g);
fy_status fy_eng_disk_release(fy_engine *e, eng_group *g);
void fy_eng_disk_stats(fy_engine *e);                    /* reader figures into e->stats */
/* spill.c: --device-map auto over several devices */
/* The compute device's pool (for scratch that ops allocate themselves). */
fy_pool *fy_eng_device_pool(fy_engine *e);
fy_status fy_eng_spill_create(fy_engine *e);            /* the other devices' backends and pools */
fy_status fy_eng_spill_choose(fy_engine *e);            /* resident blocks on the first device */
fy_status fy_eng_spill_upload(fy_engine *e, eng_group *g);
fy_status fy_eng_spill_settle(fy_engine *e);
void fy_eng_spill_stats(fy_engine *e);
void fy_eng_spill_free(fy_engine *e);

/* pinner.c: the pinned copies marked pin_pending are filled from the model
 * files by a thread, in declared order; an upload waits for its group. */
typedef struct eng_pinner eng_pinner;
fy_status fy_eng_pinner_start(fy_engine *e);
void fy_eng_pinner_wait(fy_engine *e, const eng_group *g);
void fy_eng_pinner_stop(fy_engine *e);

/* flop_rate.c: FLOP/s for the planner's first estimate; *measured false when assumed. */
double fy_eng_flop_rate(const fy_engine *e, bool *measured);
/* planner.c */
fy_status fy_eng_planner_choose(fy_engine *e);          /* before the plan, when asked */
void fy_eng_planner_init_steps(fy_engine *e);            /* after the plan: which component is a step */
void fy_eng_planner_on_acquire(fy_engine *e, const eng_group *g, double now);
void fy_eng_planner_on_ready(fy_engine *e, const eng_group *g); /* its weights are in place */
void fy_eng_planner_on_release(fy_engine *e, eng_group *g, double span);
void fy_eng_planner_finish(fy_engine *e);
void fy_eng_planner_print(const fy_engine *e, FILE *f);   /* `ferry plan`'s planner lines */               /* measured and refined times into the stats */
void fy_eng_planner_free(fy_engine *e);
/* fsdp.c: sharded blocks gathered over the world communicator. */
fy_status fy_eng_fsdp_create(fy_engine *e);             /* at create, when asked: picks the communicator */
int fy_eng_fsdp_ranks(const fy_engine *e);               /* 1 without fsdp */
uint64_t fy_eng_fsdp_padded(const fy_engine *e, uint64_t bytes); /* a block's gathered size */
fy_status fy_eng_fsdp_prepare(fy_engine *e);            /* shards, host gather buffers */
fy_status fy_eng_fsdp_start(fy_engine *e, int slot, eng_group *g); /* the gather of g into slot */
fy_status fy_eng_fsdp_finish(fy_engine *e, int slot);   /* wait for it; the upload; ready[slot] */
void fy_eng_fsdp_progress(fy_engine *e);                /* uploads for gathers that completed */
fy_status fy_eng_fsdp_drain(fy_engine *e);              /* wait for every gather in flight */
void fy_eng_fsdp_free(fy_engine *e);
/* stall_probe.c: the compute stream waits for ev, the wait counted as stall
 * (by the device's events on an asynchronous device, else by the host's
 * clock); flush adds every pending wait (waits for the device); free at the
 * engine's end. */
fy_status fy_eng_stall_wait(fy_engine *e, fy_event *ev, const char *name);
void fy_eng_stall_flush(fy_engine *e);
void fy_eng_stall_free(fy_engine *e);
/* stats.c */
void fy_eng_stats_observe_copy(void *user, const char *label, size_t bytes, double t0, double t1);
void fy_eng_stats_observe_pool(void *user, uint64_t used);
void fy_eng_stats_stall(fy_engine *e, const char *name, double t0, double t1);
void fy_eng_stats_observe_disk(void *user, const char *label, uint64_t bytes, double t0, double t1);

#endif
