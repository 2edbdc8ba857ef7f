/* A diffusers model folder: model_index.json naming the components, each a
 * subfolder with its config and (for models) its weights, looked up by the
 * tensor names diffusers and transformers use. Loading
 * tests/fixtures/wan-tiny/model works the way loading
 * Wan-AI/Wan2.1-T2V-1.3B-Diffusers does. */
#ifndef FERRY_MODEL_H
#define FERRY_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ferry/config.h"
#include "ferry/error.h"
#include "ferry/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fy_component {
    const char *name;        /* "transformer", "vae", ... (model_index key) */
    const char *library;     /* "diffusers", "transformers" */
    const char *class_name;  /* "WanTransformer3DModel" */
    const char *dir;         /* <model>/<name> */
    fy_config *config;       /* config.json / scheduler_config.json / tokenizer_config.json; may be NULL */
    fy_st_set *weights;      /* NULL for components without weights (tokenizer, scheduler) */
    bool skip_finite_check;  /* fy_component_weight refuses NaN/inf unless set */
    const char *single_file; /* the single-file checkpoint the weights come from (NULL: the folder's) */
} fy_component;

typedef struct fy_model fy_model;

/* Opens model_index.json and every component it names (null entries are
 * skipped). Weights are mmapped, not read. */
fy_status fy_model_open(const char *dir, fy_model **out);
/* The same for a folder or a model id (ORG/NAME, not a path that exists)
 * found in the local Hugging Face cache at `revision` (NULL: main; a branch,
 * tag or commit), reading the weight files of `variant` (NULL: none; "fp16",
 * "bf16": diffusers' variant= names, per component, falling back with a
 * warning to the plain files where a component has none). */
fy_status fy_model_open_ex(const char *dir_or_id, const char *revision, const char *variant, fy_model **out);
/* hf_cache.c: whether s reads as a model id (ORG/NAME); the cache folder
 * ($HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub); the snapshot
 * folder of id at revision (NULL: main). Nothing is ever downloaded. */
/* Where a model's parts come from: a folder or model id, and single-file
 * checkpoints in the original Wan / ComfyUI names (ferry/wan_names.h) for
 * some components, their configs inferred from the shapes unless
 * config_dir (a diffusers folder's config files) holds <component>/config.json. */
typedef struct fy_model_sources {
    const char *revision;      /* of a model id (NULL: main) */
    const char *variant;       /* "fp16", "bf16" (NULL: none) */
    const char *transformer;   /* --transformer FILE */
    const char *text_encoder;  /* --text-encoder FILE */
    const char *vae;           /* --vae FILE */
    const char *config_dir;    /* --config DIR */
} fy_model_sources;
/* model: a folder or model id (the components no file replaces come from
 * it), an all-in-one .safetensors file (its components replace the
 * folder's; the rest, tokenizer and scheduler included, come from
 * config_dir), or NULL (config_dir stands for the folder). src may be NULL. */
fy_status fy_model_open_sources(const char *model, const fy_model_sources *src, fy_model **out);
/* Whether any single file is named (then fy_model_open_sources, not _ex). */
bool fy_model_sources_single(const fy_model_sources *src, const char *model);
bool fy_model_is_id(const char *s);
fy_status fy_hf_cache_dir(char *out, size_t size);
fy_status fy_model_resolve(const char *id, const char *revision, char *out, size_t size);
void fy_model_free(fy_model *m);

const char *fy_model_dir(const fy_model *m);
const char *fy_model_class(const fy_model *m);   /* "WanPipeline" */
const fy_config *fy_model_index(const fy_model *m);
size_t fy_model_component_count(const fy_model *m);
const fy_component *fy_model_component_at(const fy_model *m, size_t i);
/* NULL with FY_ERR_NOT_FOUND set when absent. */
const fy_component *fy_model_component(const fy_model *m, const char *name);

/* FY_ERR_IO naming the first weights file that changed since it was opened
 * (see fy_st_check_unchanged): checked before a run's result is used. */
fy_status fy_model_check_unchanged(const fy_model *m);

/* Whether fy_component_weight scans every weight it returns for NaN and
 * infinity (on by default: corrupt weights otherwise give a black video). */
void fy_model_set_check_finite(fy_model *m, bool on);

/* A weight by its diffusers name, as a borrowed host view into the mmap. */
fy_status fy_component_weight(const fy_component *c, const char *name, fy_tensor *out);
/* The same, except that a quantised (GGUF) weight comes back dequantised to
 * f32 (a copy the component keeps): for norms, biases and tables. */
fy_status fy_component_weight_f32(const fy_component *c, const char *name, fy_tensor *out);

/* Weight statistics: what `ferry info` prints and what the offload engine moves. */
typedef struct fy_block_stats {
    char prefix[128];        /* "blocks", "encoder.block", "decoder.up_blocks" */
    int count;               /* number of repeated blocks under prefix */
    uint64_t bytes_each_max; /* largest block */
    uint64_t bytes_each_min;
    uint64_t bytes_total;
} fy_block_stats;

typedef struct fy_weight_stats {
    uint64_t params;
    uint64_t bytes;
    uint64_t params_by_dtype[FY_DTYPE_COUNT];
    size_t tensors;
    fy_block_stats blocks;   /* the dominant repeated block group; count 0 when none */
} fy_weight_stats;

fy_status fy_component_stats(const fy_component *c, fy_weight_stats *out);

#ifdef __cplusplus
}
#endif
#endif
