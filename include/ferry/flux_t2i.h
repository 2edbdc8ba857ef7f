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

fy_status fy_flux_t2i_run(const char *model_dir, const fy_run_options *o, const fy_flux_params *p,
                          fy_flux_result *out);
void fy_flux_result_free(fy_flux_result *r);
/* `ferry plan`: load, plan every engine and print the plans (nothing runs). */
fy_status fy_flux_t2i_plan(const char *model_dir, const fy_run_options *o, const fy_flux_params *p, FILE *out);

#ifdef __cplusplus
}
#endif
#endif
