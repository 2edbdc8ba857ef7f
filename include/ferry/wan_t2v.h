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
#include <stddef.h>
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
/* One setting by its flag's name, dashes or underscores alike ("height",
 * "--num-frames", "num_inference_steps"), and its value as text, with the
 * command line's checks and messages. Aliases: num-inference-steps and
 * sample-steps (steps), cfg-scale (guidance-scale), video-frames
 * (num-frames), shift (flow-shift). seed -1 draws a random seed (below
 * 2^53). Strings (prompt, negative-prompt) are borrowed, not copied: they
 * must outlive the params' use. */
fy_status fy_wan_t2v_params_set(fy_wan_t2v_params *p, const char *name, const char *value);
/* The i-th accepted name (canonical names first, then aliases), NULL past the last. */
const char *fy_wan_t2v_param_name(size_t i);
/* The canonical name of a setting or alias ("cfg_scale" -> "guidance-scale"), NULL if none. */
const char *fy_wan_t2v_param_canonical(const char *name);
/* For bindings that cannot size the struct: a heap copy with the defaults. */
fy_wan_t2v_params *fy_wan_t2v_params_new(void);
void fy_wan_t2v_params_free(fy_wan_t2v_params *p);

/* What the pipeline calls back with while it runs (all optional). The
 * Python binding (python/ferry/_native.py) mirrors this layout: add fields
 * at the end only, and there too. */
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

/* The Python binding reads the first four fields: keep them first. */
typedef struct fy_wan_t2v_result {
    float *video;                  /* (frames, height, width, 3) in [0, 1]; free() it */
    int64_t frames, height, width;
    fy_wan_t2v_report report;
} fy_wan_t2v_result;

/* Checks the request against the model folder (sizes divisible, frames
 * 4k+1, a Wan pipeline with every component) before any work. */
fy_status fy_wan_t2v_check(const char *model_dir, const fy_wan_t2v_params *p);
/* The same for the model o's sources name (single files, --config). */
fy_status fy_wan_t2v_check_with(const char *model_dir, const fy_run_options *o, const fy_wan_t2v_params *p);

fy_status fy_wan_t2v_run(const char *model_dir, const fy_run_options *o, const fy_wan_t2v_params *p,
                         const fy_wan_t2v_hooks *hooks, fy_wan_t2v_result *out);
void fy_wan_t2v_result_free(fy_wan_t2v_result *r);
/* For bindings: a zeroed result on the heap; delete frees its video too. */
fy_wan_t2v_result *fy_wan_t2v_result_new(void);
void fy_wan_t2v_result_delete(fy_wan_t2v_result *r);

/* A model loaded once that makes several videos (the API programs and the
 * Python binding use; fy_wan_t2v_run is open + generate + close):
 *
 *     fy_run_options o;  fy_run_options_init(&o);  fy_run_options_set(&o, "offload", "layerwise");
 *     fy_wan_t2v_pipeline *pipe;
 *     fy_wan_t2v_open("Wan2.1-T2V-1.3B-Diffusers", &o, &pipe);
 *     for each prompt:
 *         fy_wan_t2v_params p;  fy_wan_t2v_params_init(&p);  p.prompt = "...";
 *         fy_wan_t2v_generate(pipe, &p, &hooks, &result);   ... result.video ...
 *         fy_wan_t2v_result_free(&result);
 *     fy_wan_t2v_close(pipe);
 *
 * open checks the options and the folder (a Wan pipeline with every
 * component) and copies both. The weights load at the first generate, sized
 * for its request, and stay loaded for the next ones; a request of another
 * shape (height, width, frames, max_sequence_length, guidance on or off)
 * loads them again. The report's engine figures count from that load. A
 * failed generate (other than a cancel) unloads, so the next one starts
 * over. One generate at a time per pipeline. */
typedef struct fy_wan_t2v_pipeline fy_wan_t2v_pipeline;
fy_status fy_wan_t2v_open(const char *model_dir, const fy_run_options *o, fy_wan_t2v_pipeline **out);
fy_status fy_wan_t2v_generate(fy_wan_t2v_pipeline *pipe, const fy_wan_t2v_params *p, const fy_wan_t2v_hooks *hooks,
                              fy_wan_t2v_result *out);
/* Stops the running generate between steps with FY_ERR_INTERRUPTED (the
 * weights stay loaded). Safe from a signal handler or another thread. */
void fy_wan_t2v_cancel(fy_wan_t2v_pipeline *pipe);
void fy_wan_t2v_close(fy_wan_t2v_pipeline *pipe);
/* One line with the settings that matter for the video being made (model,
 * size, frames, steps, guidance, seed, scheduler and shift, the plan and its
 * device), from a hook once loading is done (the "text encoder" stage on). */
fy_status fy_wan_t2v_describe(const fy_wan_t2v_pipeline *pipe, char *buf, size_t size);

/* The settings (p, may be NULL) and the report (r, may be NULL) as a JSON
 * object: {"settings": {...}, "video": {...}, "time_s": {...}, "device":
 * {...}, "engines": [...], ...}. Free with fy_wan_t2v_string_free; NULL on
 * failure (out of memory). */
char *fy_wan_t2v_report_json(const fy_wan_t2v_params *p, const fy_wan_t2v_report *r);
/* The same for a result's report (bindings that do not mirror the report). */
char *fy_wan_t2v_result_json(const fy_wan_t2v_params *p, const fy_wan_t2v_result *r);
/* Write r's video to path (.mp4, .png, a numbered sequence or a folder: see
 * ferry/video_out.h) with p's prompt, negative prompt, seed, steps and
 * guidance as the MP4's metadata tags or each PNG's iTXt chunks (not the
 * model's folder: the same video is the same file wherever the model lies).
 * crf < 0: the encoder's default. Whole or absent. */
fy_status fy_wan_t2v_save(const char *path, const fy_wan_t2v_result *r, const fy_wan_t2v_params *p, int fps, int crf);
/* The same with the writer's options (crf, a stop poll; their metadata is replaced). */
struct fy_video_options;
fy_status fy_wan_t2v_save_opts(const char *path, const fy_wan_t2v_result *r, const fy_wan_t2v_params *p, int fps,
                               const struct fy_video_options *opts);
void fy_wan_t2v_string_free(char *text);
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
