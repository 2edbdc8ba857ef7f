/* Diffusion schedulers, computed exactly as diffusers v0.38.0 does:
 *
 *   UniPCMultistepScheduler         flow sigmas (use_flow_sigmas, flow_shift),
 *                                   predict_x0, bh1/bh2, any solver_order,
 *                                   lower_order_final, disable_corrector,
 *                                   final_sigmas_type zero|sigma_min.
 *   FlowMatchEulerDiscreteScheduler static shift, shift_terminal, invert_sigmas,
 *                                   the pipeline's sigmas with dynamic shifting (mu).
 *
 * A scheduler is built from a scheduler_config.json (fy_config), then
 * fy_scheduler_set_timesteps() fixes the schedule and each
 * fy_scheduler_step() advances the latent by one step. The latent is a plain
 * contiguous float32 array; its length is fixed by the first step after
 * set_timesteps/reset.
 *
 * Numerics follow the reference bit for bit where it matters: the schedule
 * is derived in float64 as numpy does and rounded to float32 as torch holds
 * it; per-step scalars (log-SNR, expm1, the UniC linear system) are float32
 * as in torch; the elementwise update rounds after every multiply and add
 * in the order torch evaluates it (no fused multiply-add). */
#ifndef FERRY_SCHEDULER_H
#define FERRY_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ferry/config.h"
#include "ferry/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fy_scheduler_kind {
    FY_SCHEDULER_UNIPC = 0,        /* UniPCMultistepScheduler */
    FY_SCHEDULER_FLOW_EULER = 1    /* FlowMatchEulerDiscreteScheduler */
} fy_scheduler_kind;

typedef struct fy_scheduler fy_scheduler;

/* The config's "_class_name" picks the scheduler. Options ferry does not
 * implement (thresholding, karras/exponential/beta sigmas, linear time shift,
 * a prediction_type other than flow_prediction, ...) fail with
 * FY_ERR_UNSUPPORTED and a message naming the key. */
fy_status fy_scheduler_create_from_config(const fy_config *cfg, fy_scheduler **out);
void fy_scheduler_free(fy_scheduler *s);

fy_scheduler_kind fy_scheduler_get_kind(const fy_scheduler *s);
/* "UniPCMultistepScheduler" or "FlowMatchEulerDiscreteScheduler". */
const char *fy_scheduler_class_name(const fy_scheduler *s);

/* Override the config's shift (UniPC flow_shift, Euler shift), as Wan's
 * pipelines do with flow_shift. Applies from the next set_timesteps.
 * (Euler keeps diffusers' quirk: its sigma range still comes from the
 * config's shift, only the second shift uses the new value.) */
fy_status fy_scheduler_set_shift(fy_scheduler *s, double shift);
double fy_scheduler_get_shift(const fy_scheduler *s);

/* Build the schedule for num_steps (>= 1) steps and reset the state. */
fy_status fy_scheduler_set_timesteps(fy_scheduler *s, size_t num_steps);
/* FlowMatchEulerDiscreteScheduler.set_timesteps(sigmas=..., mu=...), as
 * FluxPipeline calls it: the given num_steps sigmas (its linspace(1, 1/n,
 * n)) shifted by mu with use_dynamic_shifting (exponential time shift), by
 * the config's shift without; timesteps sigma * num_train_timesteps; a final
 * sigma 0. With use_dynamic_shifting this is the only way to a schedule. */
fy_status fy_scheduler_set_sigmas(fy_scheduler *s, const float *sigmas, size_t num_steps, double mu);
/* FluxPipeline's calculate_shift for image_seq_len packed tokens, from the
 * config's base/max shift and image sequence lengths (diffusers' defaults
 * 0.5, 1.15, 256, 4096), in float64 and not clamped. Euler only. */
double fy_scheduler_mu(const fy_scheduler *s, int64_t image_seq_len);
/* 0 until set_timesteps. */
size_t fy_scheduler_num_steps(const fy_scheduler *s);
/* num_steps + 1 sigmas, the last one the final sigma (0 unless configured). */
const float *fy_scheduler_sigmas(const fy_scheduler *s);
/* The timesteps the pipeline passes to the model, as float:
 * UniPC's int64 values converted, Euler's float32 sigma * num_train_timesteps. */
const float *fy_scheduler_timesteps(const fy_scheduler *s);
/* UniPC's int64 timesteps (trunc(sigma * num_train_timesteps)); NULL for Euler. */
const int64_t *fy_scheduler_timesteps_int(const fy_scheduler *s);

/* Index of the next step (0 .. num_steps). */
size_t fy_scheduler_step_index(const fy_scheduler *s);

/* One step: out = step(model_output, sample), n float32 elements each.
 * out may alias sample or model_output. The step index advances. */
fy_status fy_scheduler_step(fy_scheduler *s, const float *model_output, const float *sample,
                            float *out, size_t n);

/* Back to step 0 with an empty history, keeping the schedule. */
void fy_scheduler_reset(fy_scheduler *s);

#ifdef __cplusplus
}
#endif
#endif
