/* The offload engine: where weights live and how they move.
 *
 * Models are model-agnostic clients. They declare their weights once, in
 * execution order, as groups inside components, then ask for each group when
 * they run it:
 *
 *     fy_engine_create(&opts, &eng);
 *     fy_engine_add_component(eng, "transformer", &dit);
 *     fy_engine_add_group(eng, dit, "patch_embed", FY_GROUP_SMALL, w, n, &g0);
 *     for i in blocks: fy_engine_add_group(eng, dit, "blocks.i", FY_GROUP_BLOCK, ...);
 *     fy_engine_reserve(eng, activation_bytes);
 *     fy_engine_prepare(eng);                  fails here, before any work, if over budget
 *     per step, per block:
 *         fy_engine_acquire(eng, g, &dev);     device tensors, in declared order
 *         ... compute with dev[0..n-1] ...
 *         fy_engine_release(eng, g);
 *     fy_engine_finish(eng);                   stats final, --trace written
 *     fy_engine_stats_print(eng, stderr);
 *
 * Groups: SMALL groups (embeddings, norms, heads: the non-block weights) are
 * always resident on the device. BLOCK groups are the unit the plans move.
 * The execution order is the declaration order within a component; it is
 * declared, never discovered by tracing a first pass. Blocks of a component
 * must be acquired in that order, cyclically (step after step; a CFG batch
 * that runs the transformer twice a step is just two cycles).
 *
 * Plans (--offload), one streamer executes them all:
 *   none        every group resident.
 *   model       enable_model_cpu_offload: at most one component's blocks on
 *               the device; the previous component leaves when the next starts.
 *   sequential  enable_sequential_cpu_offload: one block on the device, uploaded
 *               synchronously when acquired. (Leaf granularity = group
 *               granularity: a model that wants finer leaves declares finer groups.)
 *   group       num_blocks_per_group blocks move together. With --use-stream
 *               the next group is prefetched on the copy stream into a second
 *               slot (2 groups on the device); without, one slot, loaded
 *               synchronously when its first block is acquired.
 *   layerwise   FastVideo's dit_layerwise_offload: a ring of d+1 preallocated
 *               block slots (d = --prefetch-depth >= 1). Releasing block i
 *               issues the upload of block i+d+1 into i's slot; the copy stream
 *               waits on an event recorded at the release, and compute waits on
 *               the slot's ready event, never on a host-side wait. The ring is
 *               cyclic: the last blocks' releases prefetch the next step's first.
 *   resident K  with --resident-blocks K or --resident-bytes B on a streaming
 *               plan (sequential, group, layerwise): the first K blocks (or as
 *               many leading blocks as fit in B bytes, counted in declaration
 *               order across components) stay on the device; the rest stream.
 *   fsdp        --use-fsdp-inference (src/mem/fsdp.c): FastVideo's FSDP
 *               inference over the ranks of the world communicator
 *               (ferry/collectives.h; `mpirun -np N`). Each rank keeps 1/N of
 *               every block's bytes (the group's layout cut in N equal chunks,
 *               the last padded), in host memory (pinned with
 *               --dit-cpu-offload). A ring of d+1 slots as layerwise: the
 *               release of block i starts the all-gather of block i+d+1 into
 *               i's slot (through a host buffer and an upload on the copy
 *               stream on a discrete device; straight into the slot on the
 *               cpu backend); its acquire waits for it (stall). SMALL groups
 *               are replicated: every rank holds them whole.
 * Each component with streamed blocks gets its own ring, allocated when the
 * component's first block is acquired and freed when another component's is,
 * so the bound counts only the largest ring.
 *
 * Device bound of a plan (what prepare checks against --max-memory):
 *   resident (small + resident blocks) + ring (slots x slot size) + reserved activations.
 *
 * Host tier (one host copy). Weights come from borrowed host tensors, usually
 * views into the mmapped safetensors file. With pin_cpu_memory (default) each
 * streamed group is copied once into one pinned buffer (the mapping's pages
 * are then clean page cache the kernel can drop, not a second resident copy),
 * so pinned bytes = streamed bytes + alignment padding (< 1.05x). When pinning
 * fails (RLIMIT_MEMLOCK, containers) the engine warns once and uploads from
 * the mapping (pageable). With low_cpu_mem_usage nothing is pinned per group:
 * uploads stage through a ring of 2 pinned buffers of one block each.
 * Weights are read-only: nothing is ever copied back from the device.
 *
 * Disk tier (--max-memory cpu=SIZE below what the host tier would hold: the
 * pinned/mapped host copies of the streamed blocks, or on --device cpu all
 * weights read in place). Blocks keep a host copy, the step component's
 * first, while it fits next to a staging ring of 2-3 slots; the rest get the
 * disk tier: a reader thread reads them from their safetensors files with
 * O_DIRECT (io_uring when there) into the pinned staging ring ahead of use,
 * and they are uploaded from there to the ring slot (or, on --device cpu,
 * computed from the staging slot itself). The reader predicts the order: a
 * component's blocks cyclically for the step component, else on to the next
 * component's (so the transformer's first blocks load while the text encoder
 * runs). A host budget below SMALL weights read in place (cpu) + two slots
 * fails in prepare, saying what fits. See src/mem/disk.h, disk_tier.c.
 *
 * Device memory: every device allocation (weights, activations, workspaces)
 * goes through the engine's pool, with the budget (--max-memory) and peak
 * tracking. On --device cpu, weights are read in place (no copies). */
#ifndef FERRY_ENGINE_H
#define FERRY_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "ferry/backend.h"
#include "ferry/error.h"
#include "ferry/ops.h"
#include "ferry/options.h"
#include "ferry/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fy_engine fy_engine;

typedef enum fy_group_kind {
    FY_GROUP_SMALL = 0, /* non-block weights: always resident */
    FY_GROUP_BLOCK      /* a transformer block (or any unit a plan may move) */
} fy_group_kind;

/* Where a group's weights live between uses. */
typedef enum fy_tier {
    FY_TIER_DEVICE = 0, /* resident on the device */
    FY_TIER_PINNED,     /* one pinned host copy, uploaded from it */
    FY_TIER_MAPPED,     /* the source itself (mmapped file or caller's host buffer) */
    FY_TIER_STAGED,     /* the source, uploaded through the pinned staging ring */
    FY_TIER_DISK,       /* read from its file ahead of use into the disk staging ring (--max-memory cpu) */
    FY_TIER_SHARDED     /* fsdp: this rank's 1/N in host memory, all-gathered on use */
} fy_tier;

const char *fy_tier_name(fy_tier t);

/* A plan as evaluated for the declared groups. */
typedef struct fy_plan {
    fy_offload_policy policy;
    int depth;               /* layerwise prefetch depth (0 otherwise) */
    int blocks_per_unit;     /* blocks moved together */
    int slots;               /* unit slots per ring */
    bool eager;              /* prefetch on release (copy stream) vs load on acquire */
    int resident_blocks;     /* leading blocks kept resident (besides SMALL groups) */
    uint64_t resident_bytes; /* SMALL groups + resident blocks */
    uint64_t ring_bytes;     /* the largest component ring */
    uint64_t activation_bytes;
    uint64_t device_bound;   /* resident + ring + activations */
    int spilled_blocks;      /* --device-map auto: blocks resident on the other devices */
    bool fsdp;               /* --use-fsdp-inference: blocks sharded over `ranks` */
    int ranks;
} fy_plan;

/* --device-map auto over several devices: what another device holds. */
typedef struct fy_spill_stats {
    int device;               /* its index in --max-memory */
    int blocks;
    uint64_t bytes, budget, peak;
} fy_spill_stats;

typedef struct fy_engine_stats {
    uint64_t bytes_uploaded;  /* weights, host -> device */
    uint64_t uploads;         /* copy commands */
    double upload_time;       /* s the copy stream spent copying */
    double run_time;          /* s from the first acquire to the last release */
    double compute_time;      /* run_time - stall_time */
    double stall_time;        /* s compute waited on weights */
    uint64_t peak_device;     /* pool peak, bytes */
    uint64_t device_budget;   /* 0 = unlimited */
    uint64_t device_bound;    /* the plan's bound */
    uint64_t pinned_bytes;    /* page-locked host memory the engine holds */
    uint64_t host_bytes;      /* all host memory the engine holds for weights (pinned or not) */
    uint64_t mapped_bytes;    /* weights uploaded straight from their (borrowed) source */
    /* fsdp: this rank's shards, the blocks they make whole, bytes all-gathered */
    uint64_t shard_bytes;
    uint64_t sharded_bytes;
    uint64_t bytes_gathered;
    int rank, ranks;
    /* Step times (a step = one pass over the "transformer" component's
     * blocks, or the component with the most blocks without one):
     * measured = median of the steps after the first; predicted = the
     * planner's cost model with measured compute ("refined"), 0 without
     * --vram-budget; predicted_initial = its estimate before step 1. */
    double measured_step_s;
    double predicted_step_s;
    double predicted_initial_step_s;
    double first_step_s;      /* the first step as measured (the one the initial estimate is checked against) */
    double predicted_after_first_s; /* the refined prediction made from step 1's spans (for the later steps) */
    double copy_bandwidth;    /* bytes/s the planner measured, 0 without it */
    double flop_rate;         /* FLOP/s its first estimate divides declared FLOPs by, 0 without it */
    uint64_t vram_budget;     /* the planner's budget, 0 without it */
    int n_spill;              /* --device-map auto: the other devices */
    fy_spill_stats spill[FY_MAX_DEVICES];
    /* Host budget and the disk tier (--max-memory cpu=SIZE). */
    uint64_t host_budget;     /* 0 = unlimited */
    uint64_t host_bound;      /* host bytes the plan holds: host copies + weights read in place + staging */
    int disk_groups;          /* groups on the disk tier (0: none) */
    int disk_slots;           /* staging slots */
    uint64_t disk_staging_bytes;
    uint64_t disk_bytes_read; /* including O_DIRECT alignment padding */
    uint64_t disk_reads;      /* group reads */
    double disk_read_time;    /* s the reader spent reading */
    double disk_stall_time;   /* s compute waited on a read (part of stall_time) */
    double disk_bandwidth;    /* bytes/s achieved by the reads */
    bool disk_direct;         /* every file read with O_DIRECT (no page cache) */
    bool disk_uring;          /* reads went through io_uring */
    uint64_t disk_seeks;      /* reads thrown away after a wrong prediction */
    /* fy_engine_hand_over: switches done, compute's wait for the next
     * component's first block at them, and the bytes given back. */
    int switches;
    int switch_prefetched;    /* the next component's units uploading before the switch */
    double switch_stall_time;
    uint64_t switch_freed_bytes;
} fy_engine_stats;

/* The backend comes from the options (--device, --max-memory, --emu-bandwidth). */
fy_status fy_engine_create(const fy_run_options *o, fy_engine **out);
/* Use an existing backend (the engine frees it when owns_backend). */
fy_status fy_engine_create_with_backend(fy_backend *b, bool owns_backend, const fy_run_options *o,
                                        fy_engine **out);
/* An engine on the host for a component moved off the device
 * (--text-encoder-cpu-offload, --vae-cpu-offload): CPU backend, weights read
 * in place, none of the device's budget, plan or trace. */
fy_status fy_engine_create_host(const fy_run_options *o, fy_engine **out);
void fy_engine_free(fy_engine *e);
fy_backend *fy_engine_backend(fy_engine *e);

/* ---- Compute (ferry/ops.h) ---------------------------------------------- */

/* The backend's op table for a model: threads for the CPU pool (0 = one per
 * core), scratch from the engine's device pool, GEMM arithmetic from --dtype.
 * Make it after the plan's allocations. */
fy_status fy_engine_ops_create(fy_engine *e, int threads, fy_ops **out);
/* The dtype a model keeps its activations in. */
fy_dtype fy_engine_activation_dtype(const fy_engine *e);
/* At load, before any work: FY_OK when the backend runs every op in ops[n]
 * on the activation dtype, else one line naming op, dtype and device. */
fy_status fy_engine_ops_require(fy_engine *e, const fy_op *ops, size_t n);
/* Scratch the ops may hold on the device (for activation estimates). */
uint64_t fy_engine_ops_scratch_bound(fy_engine *e, bool convolutions);

/* ---- Declaration (before prepare) -------------------------------------- */
fy_status fy_engine_add_component(fy_engine *e, const char *name, int *out_id);
/* weights: n contiguous host tensors, borrowed (they must outlive the
 * engine). Blocks of a component are added in execution order. */
fy_status fy_engine_add_group(fy_engine *e, int component, const char *name, fy_group_kind kind,
                              const fy_tensor *weights, int n, int *out_id);
/* Layerwise casting: weight `weight` of `group` (a float matrix, rows =
 * dim 0) may be stored in fp8. With --storage-dtype fp8_e4m3|fp8_e5m2 (or
 * when the planner picks fp8 for --storage-dtype auto) it is quantised once
 * at prepare (--fp8-scale row|tensor|none, see ferry/quant.h) and every
 * copy of it, host and device, is fp8: acquire hands it out with dtype fp8
 * and `scale` set, so its consumer must dequantise (fy_fp8_dequantize_rows).
 * The model decides what may be cast (diffusers' skip list: norms,
 * modulation, embeddings, heads stay); the engine how. See src/mem/cast.c.
 * A quantised (GGUF) weight stays as it is: marking it does nothing. */
fy_status fy_engine_mark_castable(fy_engine *e, int group, int weight);
/* Bytes of the castable weights as laid out now (with scales) and, in
 * *as_declared, as the model declared them. */
uint64_t fy_engine_cast_bytes(const fy_engine *e, uint64_t *as_declared);
/* Groups declared after this in `component` keep their weights as stored
 * under bf16/f16 storage (a model whose outputs its weights' rounding
 * shows in, as the Wan VAE). */
fy_status fy_engine_keep_stored(fy_engine *e, int component);
/* Device bytes the model will allocate for activations and workspaces at
 * most; counted in the plan's bound. */
fy_status fy_engine_reserve(fy_engine *e, uint64_t activation_bytes);

/* The planner's first estimate, before anything is measured: the
 * arithmetic of one use of `group` at the requested size (multiply-adds
 * count 2; 0 = unknown: then it guesses from the group's bytes), and how
 * many passes over `component`'s blocks a run makes (a mixture of experts'
 * share of the steps; 0 = not declared). Both before fy_engine_prepare. */
fy_status fy_engine_set_group_flops(fy_engine *e, int group, double flops);
fy_status fy_engine_set_component_steps(fy_engine *e, const char *component, int steps);

/* Evaluate the plan that options o would give for the declared groups
 * (no allocation). fy_engine_prepare uses it; `ferry plan` may too. */
fy_status fy_engine_evaluate_plan(const fy_engine *e, const fy_run_options *o, fy_plan *out);
/* Whether some plan (none, layerwise, sequential: the fallbacks the budget
 * error offers) fits the device budget with activation_bytes reserved; true
 * without a budget, on a host device, and with --vram-budget auto (known
 * only once prepared). For a model weighing a cache against its budget. */
bool fy_engine_fits(const fy_engine *e, uint64_t activation_bytes);
/* The planner's cost model: predicted seconds per step for plan p, with
 * host-to-device bandwidth (bytes/s) and per-group compute seconds
 * (compute[group id]; SMALL groups ignored) plus gap seconds per step spent
 * outside blocks. See src/mem/planner.c. */
double fy_engine_predict_step(const fy_engine *e, const fy_plan *p, double bandwidth, const double *compute,
                              double gap);
/* The same for one pass over a named component's blocks (a mixture of
 * experts' second expert; 0 for an unknown name). */
double fy_engine_predict_component(const fy_engine *e, const char *component, const fy_plan *p, double bandwidth,
                                   const double *compute);
/* Build the plan from the engine's options (with --vram-budget, the
 * planner first picks policy, depth and resident blocks). Fails with FY_ERR_BUDGET before
 * allocating anything when the bound exceeds the budget: "needs X, budget Y;
 * plan P fits (needs Z)". Then uploads resident weights, pins the host copy
 * and issues the first prefetches. */
fy_status fy_engine_prepare(fy_engine *e);
const fy_plan *fy_engine_plan(const fy_engine *e);
fy_tier fy_engine_group_tier(const fy_engine *e, int group);
/* The declared groups, for `ferry plan`'s table. */
typedef struct fy_group_info {
    const char *component; /* names valid while the engine lives */
    const char *name;
    fy_group_kind kind;
    uint64_t bytes;        /* as laid out on the device */
    fy_tier tier;
} fy_group_info;
int fy_engine_group_count(const fy_engine *e);
fy_status fy_engine_group_info(const fy_engine *e, int group, fy_group_info *out);
/* Print the plan, the groups table, the bound vs the budget and the
 * planner's prediction (after prepare). */
void fy_engine_plan_print(const fy_engine *e, const char *title, FILE *f);

/* ---- Running ------------------------------------------------------------ */
/* Device tensors for the group's weights, in declared order, valid until
 * fy_engine_release. Blocks must come in declared order (FY_ERR_INVALID otherwise). */
fy_status fy_engine_acquire(fy_engine *e, int group, const fy_tensor **weights);
fy_status fy_engine_release(fy_engine *e, int group);

/* A mixture of experts that switches once (Wan2.2 A14B's high- and
 * low-noise transformers): the pass of component `from`'s blocks about to
 * run is its last, and `to`'s passes follow. On an eager plan (layerwise,
 * group with a stream) the ring prefetches to's first blocks during that
 * pass, into the slots from's blocks free, instead of wrapping to from's own
 * first blocks; when to's first group is acquired, from's resident device
 * memory (non-block groups, resident blocks) is given back and from cannot
 * be acquired again. The switch and its stall are in the stats and the
 * trace. Other plans switch the general way (to's ring when its first block
 * is acquired). */
fy_status fy_engine_hand_over(fy_engine *e, const char *from, const char *to);

/* Before prepare: `to` runs only after `from` is done (handed over, or
 * never run: timesteps only fall, so the low-noise expert never gives the
 * device back to the high-noise one). to's resident groups (non-block
 * groups, its first K blocks under --resident-blocks: its block j counts
 * as from's block j) take from's device memory: they are uploaded when
 * to's first group is acquired, after from's are freed, and the plan's
 * bound counts the larger of the two sets instead of both. */
fy_status fy_engine_declare_successor(fy_engine *e, const char *from, const char *to);

/* Activations and workspaces: device buffers through the pool. */
fy_status fy_engine_alloc(fy_engine *e, size_t bytes, const char *label, void **out);
void fy_engine_free_buffer(fy_engine *e, void *ptr);
/* Synchronous activation copies on the compute stream. */
fy_status fy_engine_upload(fy_engine *e, void *dst_device, const void *src_host, size_t bytes);
fy_status fy_engine_download(fy_engine *e, void *dst_host, const void *src_device, size_t bytes);

/* Rows ids[0..n) of a lookup table (a host float matrix [rows, dim], such as
 * a text encoder's token embeddings, any float dtype) gathered on the host as
 * f32 and uploaded to dst ([n, dim] f32 on the device): the table stays in
 * host memory, off the device budget (under bf16/f16 storage its rows are
 * rounded as a converted table would be). See src/mem/gather.c. */
fy_status fy_engine_gather_rows(fy_engine *e, const fy_tensor *table, const int64_t *ids, int64_t n, float *dst);

/* Wait for both streams, finalize the stats and write --trace (atomically). */
fy_status fy_engine_finish(fy_engine *e);
/* A consistent copy of the stats (background threads keep updating the live
 * ones), valid until the next call on this engine. */
const fy_engine_stats *fy_engine_stats_get(const fy_engine *e);
void fy_engine_stats_print(const fy_engine *e, FILE *f);
/* Write the timeline so far as Chrome Trace Event JSON (Perfetto): one
 * track per stream, memory counters. temp file + rename. */
fy_status fy_engine_write_trace(fy_engine *e, const char *path);

#ifdef __cplusplus
}
#endif
#endif
