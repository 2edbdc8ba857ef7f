/* The Wan2.1 text-to-video pipeline, as diffusers' WanPipeline runs it:
 *
 *   prompt -> clean -> tokenize -> UMT5 (prompt and negative prompt)
 *          -> denoising loop: DiT on [cond; uncond] as one batch, guidance,
 *             UniPC / flow-match Euler step
 *          -> de-normalise latents -> VAE decode -> video (F, H, W, 3) in [0, 1]
 *
 * Wan2.2 A14B folders (transformer_2 and boundary_ratio in model_index.json)
 * run two experts: step i uses `transformer` (high noise) while its timestep
 * >= boundary_ratio * num_train_timesteps, else `transformer_2` with
 * guidance_scale_2; one scheduler (its history included) serves both.
 *
 * Wan2.2 TI2V-5B folders (expand_timesteps) give the transformer one
 * timestep per latent token (all at the step's t: text to video) and decode
 * with the Wan2.2 VAE. Sizes follow WanPipeline: height and width multiples
 * of 16, rounded down to multiples of the VAE factor times the patch, frames
 * to 4k + 1, each rounding warned about (fy_wan_t2v_check accepts them).
 *
 * One engine holds every component that runs on the compute device, so the
 * memory options (--offload, --max-memory, ...) apply to the whole run;
 * --text-encoder-cpu-offload and --vae-cpu-offload give those components a
 * CPU engine of their own. */
#ifndef FERRY_WAN_T2V_H
#define FERRY_WAN_T2V_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "ferry/engine.h"
#include "ferry/error.h"
#include "ferry/options.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Steps whose stall the report keeps. */
#define FY_WAN_T2V_REPORT_STEPS 64

/* How many "loading ..." stages a run reports (for a loading progress bar). */
#define FY_WAN_T2V_LOAD_STAGES 5

/* diffusers' WanPipeline default negative prompt (the model card's). */
extern const char *const FY_WAN_DEFAULT_NEGATIVE_PROMPT;

typedef struct fy_wan_t2v_params {
    const char *prompt;
    const char *negative_prompt;   /* NULL: the default; "" : an empty negative prompt */
    int height, width;             /* pixels; multiples of VAE x patch factors (16 for Wan) */
    int num_frames;                /* 4k + 1 */
    int steps;
    double guidance_scale;         /* <= 1 disables classifier-free guidance (in both experts' stages) */
    /* Wan2.2 A14B: the scale of the steps the low-noise expert
     * (transformer_2) runs; NAN (the default): guidance_scale, as diffusers.
     * Refused for a folder without boundary_ratio. */
    double guidance_scale_2;
    double flow_shift;             /* 0: the scheduler config's */
    uint64_t seed;
    int max_sequence_length;       /* 512 for Wan */
    const float *initial_latents;  /* optional [1, z, F', H', W'] instead of seeded noise */
    /* Image to video (WanImageToVideoPipeline folders, Wan2.1 I2V): the
     * first frame, PNG or JPEG, any size; required there, refused for
     * text-to-video folders. last_image (FLF2V) is refused: not implemented. */
    const char *image;
    const char *last_image;
} fy_wan_t2v_params;

/* Defaults of the model card: 480x832, 81 frames, 50 steps, guidance 5.0
 * (guidance_scale_2 unset). */
void fy_wan_t2v_params_init(fy_wan_t2v_params *p);

/* What the pipeline calls back with while it runs (all optional). */
typedef struct fy_wan_t2v_hooks {
    void *user;
    /* Stage changes: FY_WAN_T2V_LOAD_STAGES stages named "loading ...", then
     * "text encoder", "denoising", "vae decode". */
    void (*stage)(void *user, const char *stage);
    /* After each denoising step: step i of n (0-based), seconds it took. */
    void (*step)(void *user, int i, int n, double seconds);
    /* Intermediates for verification, as host float32 arrays valid during
     * the call: "prompt_embeds", "negative_prompt_embeds", "latents.i",
     * "stepI.noise_pred_cond", "stepI.noise_pred_uncond", "stepI.noise_pred",
     * "vae_decode.input", "vae_decode.output", "video". Integer tensors
     * ("prompt.input_ids", "timesteps", ...) come through ids. */
    void (*tensor)(void *user, const char *name, const float *data, int ndim, const int64_t *shape);
    void (*ids)(void *user, const char *name, const int64_t *data, int64_t n);
    /* Polled between steps; returning true stops the run with FY_ERR_INTERRUPTED. */
    bool (*should_stop)(void *user);
} fy_wan_t2v_hooks;

/* One engine of a run: a device (or the host, for --*-cpu-offload) and the
 * components it computes. */
typedef struct fy_wan_t2v_engine_use {
    char name[16];           /* "emu:0", "cuda:1", "host" */
    char components[64];     /* "text_encoder vae" */
    fy_engine_stats stats;
} fy_wan_t2v_engine_use;

/* The run's report: time per stage and memory/traffic figures. */
typedef struct fy_wan_t2v_report {
    double load_s, text_encoder_s, denoise_s, vae_s, total_s;
    double step_s_mean;
    fy_engine_stats engine;        /* the compute device's engine (the transformer's) */
    fy_wan_t2v_engine_use engines[3]; /* every engine, the transformer's first */
    int n_engines;
    uint64_t peak_host_bytes;      /* process peak resident set */
    int64_t frames, height, width;
    /* Cold start: from the run's start to the end of the first denoising
     * step, and the weight bytes that a disk-bound start has to read. */
    double first_step_s;
    uint64_t weight_bytes;         /* every component's weights, as laid out */
    uint64_t first_step_disk_bytes; /* read by the disk tier by then */
    /* Two experts (Wan2.2 A14B): steps each ran, and the first step of
     * transformer_2 (-1: no switch in this run). */
    int expert_steps[2];
    int switch_step;
    /* The first steps' time compute waited for weights (the device engine's
     * stall during each step), for benchmarks of the switch. */
    double step_stall_s[FY_WAN_T2V_REPORT_STEPS];
    double image_s;                /* image to video: the image encoder and the condition's VAE encode */
} fy_wan_t2v_report;

typedef struct fy_wan_t2v_result {
    float *video;                  /* (frames, height, width, 3) in [0, 1]; free() it */
    int64_t frames, height, width;
    fy_wan_t2v_report report;
} fy_wan_t2v_result;

/* Checks the request against the model folder (sizes divisible, frames
 * 4k+1, a Wan pipeline with every component) before any work. */
fy_status fy_wan_t2v_check(const char *model_dir, const fy_wan_t2v_params *p);

fy_status fy_wan_t2v_run(const char *model_dir, const fy_run_options *o, const fy_wan_t2v_params *p,
                         const fy_wan_t2v_hooks *hooks, fy_wan_t2v_result *out);
void fy_wan_t2v_result_free(fy_wan_t2v_result *r);
/* Load the model folder into engines exactly as a run would, run nothing,
 * and print each engine's plan, groups and tiers, bound vs budget and the
 * planner's prediction (--vram-budget) to out (`ferry plan`). */
fy_status fy_wan_t2v_plan(const char *model_dir, const fy_run_options *o, const fy_wan_t2v_params *p, FILE *out);
/* The compute device's plan (its bound: what --max-memory must allow),
 * loaded the same way; `ferry demo` sizes its budget from it. */
fy_status fy_wan_t2v_device_plan(const char *model_dir, const fy_run_options *o, const fy_wan_t2v_params *p,
                                 fy_plan *out);

void fy_wan_t2v_report_print(const fy_wan_t2v_report *r, FILE *f);

#ifdef __cplusplus
}
#endif
#endif
