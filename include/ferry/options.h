/* Run options: where to compute and how to place weights, under the names
 * diffusers and FastVideo users know. `ferry generate`, `ferry verify`,
 * `ferry plan` and the C API share this one struct and one parser, so every
 * command accepts the same memory flags. */
#ifndef FERRY_OPTIONS_H
#define FERRY_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ferry/dtype.h"
#include "ferry/error.h"
#include "ferry/model.h"
#include "ferry/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FY_MAX_DEVICES 16

/* Bounds of the run options, checked at parse time. Below 1 MB/s a copy of
 * a single block can take minutes, and a run looks hung; deeper rings and
 * more threads than these only allocate (slots, scratch) without paying off. */
#define FY_EMU_BANDWIDTH_MIN 1e6
#define FY_PREFETCH_DEPTH_MAX 64
#define FY_THREADS_MAX 1024
/* The VAE works on 8x8-pixel latents: a smaller tile or stride is no tile. */
#define FY_VAE_TILE_MIN 8
#define FY_COLLECTIVE_TIMEOUT_MAX 1e6

typedef enum fy_device_kind {
    FY_DEVICE_CPU = 0,   /* compute on the host, weights read in place */
    FY_DEVICE_EMU,       /* emulated device: budgeted pool + asynchronous copy engine on the host */
    FY_DEVICE_CUDA
} fy_device_kind;

typedef enum fy_offload_policy {
    FY_OFFLOAD_NONE = 0,   /* everything resident */
    FY_OFFLOAD_MODEL,      /* enable_model_cpu_offload: one component on the device at a time */
    FY_OFFLOAD_SEQUENTIAL, /* enable_sequential_cpu_offload: leaf modules, synchronous */
    FY_OFFLOAD_GROUP,      /* group offloading: num_blocks_per_group blocks at a time */
    FY_OFFLOAD_LAYERWISE   /* one block per slot, prefetched on the copy stream */
} fy_offload_policy;

typedef enum fy_device_map {
    FY_DEVICE_MAP_NONE = 0,
    FY_DEVICE_MAP_BALANCED,
    FY_DEVICE_MAP_AUTO
} fy_device_map;

typedef struct fy_run_options {
    /* --device cpu|emu|cuda[:N] */
    fy_device_kind device;
    int device_index;
    /* --max-memory 0=6GiB,1=20GiB,cpu=20GiB; 0 = no limit */
    uint64_t max_memory[FY_MAX_DEVICES];
    uint64_t max_memory_cpu;
    bool host_budget_default;        /* max_memory_cpu is MemAvailable less a margin (fy_run_options_default_plan) */
    /* --emu-bandwidth 25GB/s (bytes per second; 0 = unthrottled, else at
     * least FY_EMU_BANDWIDTH_MIN) */
    double emu_bandwidth;

    /* --offload none|model|sequential|group|layerwise (--dit-layerwise-offload = layerwise) */
    fy_offload_policy offload;
    int num_blocks_per_group;     /* --num-blocks-per-group (group), default 1 */
    bool use_stream;              /* --use-stream: group offload prefetches on the copy stream */
    bool record_stream;           /* --record-stream */
    bool low_cpu_mem_usage;       /* --low-cpu-mem-usage: stage through a small pinned ring */
    bool pin_cpu_memory;          /* --pin-cpu-memory (default on; --no-pin-cpu-memory) */
    int prefetch_depth;           /* --prefetch-depth 1..FY_PREFETCH_DEPTH_MAX (layerwise, fsdp) */
    int resident_blocks;          /* --resident-blocks K; -1 = not set */
    uint64_t resident_bytes;      /* --resident-bytes 4GiB; 0 = not set */
    bool offload_explicit;        /* --offload or --dit-layerwise-offload was given */
    /* --vram-budget 8GiB|auto: the planner chooses policy, depth and resident
     * blocks itself (see src/mem/planner.c); 0 and !auto = not set. */
    uint64_t vram_budget;
    bool vram_budget_auto;
    bool budget_from_max_memory;  /* vram_budget is --max-memory's (fy_run_options_default_plan) */

    /* Component placement */
    bool text_encoder_cpu_offload;   /* --text-encoder-cpu-offload */
    bool vae_cpu_offload;            /* --vae-cpu-offload */
    bool image_encoder_cpu_offload;  /* --image-encoder-cpu-offload */
    bool dit_cpu_offload;            /* --dit-cpu-offload (FSDP shards in host memory) */
    bool use_fsdp_inference;         /* --use-fsdp-inference (ranks: mpirun -np N) */
    double collective_timeout;       /* --collective-timeout SECONDS (default 300) */
    fy_device_map device_map;        /* --device-map balanced|auto */
    /* Classifier-free guidance's two branches as one batch, so each block's
     * weights move once per step (default); --no-cfg-batch runs two passes. */
    bool cfg_batch;
    bool check_weights;           /* NaN/inf scan of the weights at load (--no-check-weights: skip) */

    /* Precision */
    fy_dtype compute_dtype;          /* --dtype f32|bf16|f16 (default f32): on cuda the GEMMs'
                                        arithmetic (bf16/f16: tensor cores, f32 accumulation);
                                        host devices always compute in f32 */
    /* --storage-dtype fp8_e4m3|fp8_e5m2|auto: the transformer blocks' Linear
     * weights are quantised once at load and stored, moved and read as fp8
     * (see ferry/quant.h); FY_DTYPE_COUNT = as stored. auto (with
     * --vram-budget only): the planner picks fp8_e4m3 when it predicts a
     * faster step, else as stored. */
    fy_dtype storage_dtype;
    bool storage_auto;
    bool storage_explicit;           /* --storage-dtype was given (fy_run_options_default_storage) */
    fy_fp8_scale fp8_scale;          /* --fp8-scale row|tensor|none (default row) */
    bool fp8_scale_explicit;         /* --fp8-scale was given (it needs --storage-dtype) */

    /* VAE */
    bool vae_tiling;                 /* --vae-tiling */
    bool vae_slicing;                /* --vae-slicing */
    int vae_tile[2];                 /* --vae-tile 256 or 256x256 (pixels, h x w), >= FY_VAE_TILE_MIN */
    int vae_tile_stride[2];          /* --vae-tile-stride 192, >= FY_VAE_TILE_MIN; follows
                                        --vae-tile (3/4 of it) unless given */
    bool vae_tile_stride_explicit;   /* --vae-tile-stride was given */
    bool vae_tile_explicit;          /* --vae-tile was given (else a model may use its own default) */

    /* Observability and host */
    const char *revision;            /* --revision REV: of a model id in the Hugging Face cache */
    const char *variant;             /* --variant fp16|bf16: diffusers' variant weight files */
    const char *transformer_file;    /* --transformer FILE: a single-file checkpoint (Wan names) */
    const char *text_encoder_file;   /* --text-encoder FILE */
    const char *vae_file;            /* --vae FILE */
    const char *config_dir;          /* --config DIR: configs (and tokenizer) for single files */
    const char *trace_path;          /* --trace FILE (Chrome trace JSON, every engine of the run) */
    int threads;                     /* --threads N (0 = all cores, at most FY_THREADS_MAX) */
    uint64_t max_shard_size;         /* --max-shard-size (ferry shard) */
} fy_run_options;

/* Defaults: cpu, no limits, offload none, depth 1, pin on, f32 compute,
 * tile 256x256 stride 192x192 (diffusers' enable_tiling defaults). */
void fy_run_options_init(fy_run_options *o);
/* Where the model's parts come from (--revision, --variant, single files, --config). */
fy_model_sources fy_run_options_sources(const fy_run_options *o);

/* If argv[*i] is a run option, consume it (and its value), advance *i past
 * it and set *consumed. Unknown arguments are left alone (consumed = false).
 * Bad values fail with a one-line message naming the flag and valid values. */
fy_status fy_run_options_parse_arg(fy_run_options *o, int argc, char **argv, int *i, bool *consumed);
/* One option by its flag's name, with or without the dashes ("max-memory",
 * "--offload", "no-pin-cpu-memory") and its value as the flag takes it
 * ("0=6GiB,cpu=20GiB"); a switch takes NULL (on), "true" or "false". The
 * same checks and messages as the command line. */
fy_status fy_run_options_set(fy_run_options *o, const char *name, const char *value);
/* Whether name is a run option (for "did you mean" and aliases). */
bool fy_run_options_has(const char *name);
/* The i-th flag's name without dashes ("device"), NULL past the last. */
const char *fy_run_options_flag_name(size_t i);
/* For bindings that cannot size the struct: a heap copy with the defaults. */
fy_run_options *fy_run_options_new(void);
void fy_run_options_free(fy_run_options *o);
/* Cross-flag checks after parsing (e.g. --num-blocks-per-group without group). */
fy_status fy_run_options_validate(const fy_run_options *o);
/* The files the options name, checked before any work: --trace must be a
 * new or regular file in an existing, writable folder. */
fy_status fy_run_options_check_files(const fy_run_options *o);
/* PATH can be written as a whole file (temp name + rename): its folder exists
 * and is writable, and PATH is absent or a regular file (never a folder, FIFO,
 * device or symlink, which the rename would replace). flag names the option
 * in the message ("--output"). */
fy_status fy_check_output_file(const char *flag, const char *path);
/* The folder that will hold PATH (a file's parent) exists and is writable. */
fy_status fy_check_output_folder(const char *flag, const char *path);
/* fp8_e4m3 / fp8_e5m2: the --storage-dtype spelling users type (the dtype's
 * own name is f8_e4m3); "as stored" for none. */
const char *fy_storage_dtype_flag_name(fy_dtype t);
/* bf16 / f16 storage: every float matrix of every component stored wider
 * (f32) is converted once at load (src/mem/cast.c). */
bool fy_storage_is_narrow(fy_dtype t);
/* The storage a command uses when --storage-dtype is not given: bf16 on a
 * GPU device (cuda, and emu, which rehearses one), as diffusers users load
 * with torch_dtype=torch.bfloat16; as stored on cpu and with FSDP. Only
 * f32 weights change (bf16 and f16 checkpoints load as they are).
 * `ferry generate`, `plan` and `demo` apply it; `verify` and the C API keep
 * the weights as stored unless asked. */
void fy_run_options_default_storage(fy_run_options *o);
/* One budget: --max-memory DEV=SIZE for the compute device, with no plan
 * given (--offload, --resident-*, --device-map, FSDP), lets the planner pick
 * the fastest plan that fits it, as --vram-budget SIZE does. On a GPU device
 * without --max-memory cpu=, the host budget (which caps the pinned copies;
 * blocks beyond it go to the disk tier) defaults to MemAvailable less a
 * tenth (at least 1 GiB). Applied by `ferry generate` and `plan`. */
void fy_run_options_default_plan(fy_run_options *o);
/* The help text block for these flags (for the CLI's --help). */
const char *fy_run_options_help(void);

const char *fy_offload_policy_name(fy_offload_policy p);
const char *fy_device_kind_name(fy_device_kind k);

#ifdef __cplusplus
}
#endif
#endif
