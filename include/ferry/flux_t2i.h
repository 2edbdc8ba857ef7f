/* FluxPipeline (diffusers v0.38.0) text to image, FLUX.1-dev and -schnell:
 *
 *   pooled  = CLIP(clip ids, 77, padded with <|endoftext|>).pooler_output
 *   embeds  = T5(t5 ids, max_sequence_length, </s> then <pad>; no mask)
 *   latents = pack(noise [1, 16, h, w]) -> [1, (h/2)(w/2), 64], h = 2 floor(H/16)
 *   sigmas  = linspace(1, 1/n, n), shifted with mu (dynamic shifting, dev)
 *             or the config's shift (schnell), then a final 0
 *   per step: v = transformer(latents, t/1000, guidance_scale (dev only)),
 *             latents += (sigma[i+1] - sigma[i]) v
 *   image   = clamp(vae.decode(unpack(latents) / scaling + shift) / 2 + 1/2, 0, 1)
 *
 * No true CFG (true_cfg_scale 1): one transformer call per step. The text
 * encoders, transformer and VAE share the device engine unless
 * --text-encoder-cpu-offload / --vae-cpu-offload move them to the host. */
#ifndef FERRY_FLUX_T2I_H
#define FERRY_FLUX_T2I_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "ferry/error.h"
#include "ferry/options.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Intermediates for ferry verify, named as the pipeline fixtures name them:
 * floats (n values) or ids (data NULL, ids set). */
typedef void (*fy_flux_hook_fn)(void *user, const char *name, const float *data, const int64_t *ids, int64_t n);

typedef struct fy_flux_params {
    const char *prompt;
    int64_t height, width;      /* pixels; 0: 1024 */
    int steps;                  /* 0: 28 */
    double guidance_scale;      /* dev's distilled guidance (3.5); ignored by schnell */
    int max_sequence_length;    /* T5 tokens; 0: 512 */
    uint64_t seed;
    const float *noise;         /* NULL, or the initial noise [1, 16, h, w] (verify) */
    fy_flux_hook_fn hook;
    void *hook_user;
} fy_flux_params;

void fy_flux_params_init(fy_flux_params *p);
/* The pipeline's sigmas before shifting: linspace(1, 1/n, n) in float64, as float32. */
void fy_flux_sigmas(int n, float *out);

typedef struct fy_flux_result {
    float *image;               /* [height, width, 3] in [0, 1] */
    int64_t height, width;
    double seconds;
} fy_flux_result;

/* Whether model_dir's (or the cached model id's, at o's revision and
 * variant) model_index.json names a FluxPipeline. o may be NULL. */
bool fy_flux_is_model(const char *model_dir, const fy_run_options *o);

/* One setting by name, dashes or underscores alike, with the command line's
 * checks and messages: prompt, height, width, steps (num-inference-steps),
 * guidance-scale, max-sequence-length, seed (-1: random). Strings are
 * borrowed: they must outlive the params' use. */
fy_status fy_flux_params_set(fy_flux_params *p, const char *name, const char *value);
/* For bindings that cannot size the struct: a heap copy with the defaults. */
fy_flux_params *fy_flux_params_new(void);
void fy_flux_params_free(fy_flux_params *p);

/* What the pipeline calls back with while it runs (all optional). The Python
 * binding (python/ferry/_native.py) mirrors this layout. */
typedef struct fy_flux_hooks {
    void *user;
    /* "loading" (when weights load), "text encoder", "denoising", "vae decode". */
    void (*stage)(void *user, const char *stage);
    /* After each denoising step: step i of n (0-based), seconds it took. */
    void (*step)(void *user, int i, int n, double seconds);
    /* Polled between stages and steps; true stops the run with FY_ERR_INTERRUPTED. */
    bool (*should_stop)(void *user);
} fy_flux_hooks;

/* open + generate + close. */
fy_status fy_flux_t2i_run(const char *model_dir, const fy_run_options *o, const fy_flux_params *p,
                          fy_flux_result *out);
void fy_flux_result_free(fy_flux_result *r);
/* For bindings: a zeroed result on the heap; delete frees its image too. */
fy_flux_result *fy_flux_result_new(void);
void fy_flux_result_delete(fy_flux_result *r);

/* A model loaded once that makes several images, as fy_wan_t2v_pipeline:
 * open checks the options and the folder (a FluxPipeline) and copies both;
 * the weights load at the first generate, sized for its height, width and
 * max_sequence_length, and stay loaded for the next requests of that shape
 * (another shape loads them again). A failed generate (other than a stop)
 * unloads. One generate at a time per pipeline. */
typedef struct fy_flux_pipeline fy_flux_pipeline;
fy_status fy_flux_t2i_open(const char *model_dir, const fy_run_options *o, fy_flux_pipeline **out);
fy_status fy_flux_t2i_generate(fy_flux_pipeline *pipe, const fy_flux_params *p, const fy_flux_hooks *hooks,
                               fy_flux_result *out);
/* Stops the running generate at its next stage or step with
 * FY_ERR_INTERRUPTED (the weights stay loaded). Safe from a signal handler
 * or another thread. */
void fy_flux_t2i_cancel(fy_flux_pipeline *pipe);
void fy_flux_t2i_close(fy_flux_pipeline *pipe);
/* r's image as a PNG at path, with p's prompt, seed, steps, guidance and
 * size as text chunks; whole or absent. should_stop (may be NULL) is polled
 * while writing. */
fy_status fy_flux_t2i_save(const char *path, const fy_flux_result *r, const fy_flux_params *p,
                           bool (*should_stop)(void *user), void *user);
/* `ferry plan`: load, plan every engine and print the plans (nothing runs). */
fy_status fy_flux_t2i_plan(const char *model_dir, const fy_run_options *o, const fy_flux_params *p, FILE *out);

#ifdef __cplusplus
}
#endif
#endif
