/* Shared state of the schedulers and the per-class entry points that
 * scheduler.c dispatches to. Private to src/sched. */
#ifndef FERRY_SCHED_SCHEDULER_IMPL_H
#define FERRY_SCHED_SCHEDULER_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ferry/config.h"
#include "ferry/scheduler.h"

/* solver_order above this is refused (diffusers allows any; 3 is the most
 * anyone uses). */
#define FY_UNIPC_MAX_ORDER 8

typedef struct fy_unipc_state {
    int solver_order;
    bool bh1;                   /* solver_type bh1 (else bh2) */
    bool lower_order_final;
    bool final_sigma_min;       /* final_sigmas_type "sigma_min" (else "zero") */
    int64_t *disable_corrector; /* step indices whose *next* step skips UniC */
    size_t disable_corrector_count;

    /* History: model_outputs[0] is the oldest, [solver_order-1] the newest
     * converted (x0) prediction; scratch receives the next one. */
    float *model_outputs[FY_UNIPC_MAX_ORDER];
    float *scratch;
    float *last_sample;
    size_t capacity;            /* elements each buffer holds */
    bool has_last_sample;
    int lower_order_nums;
    int this_order;
} fy_unipc_state;

typedef struct fy_euler_state {
    double config_shift;        /* sigma_min/max come from this one (diffusers' __init__) */
    bool invert_sigmas;
    bool dynamic;               /* use_dynamic_shifting: sigmas shifted by mu (time_shift exponential) */
    double base_shift, max_shift;       /* FluxPipeline's calculate_shift */
    double base_seq_len, max_seq_len;
} fy_euler_state;

struct fy_scheduler {
    fy_scheduler_kind kind;
    int64_t num_train_timesteps;
    double shift;               /* flow_shift (UniPC) or shift (Euler), maybe overridden */
    bool has_shift_terminal;
    double shift_terminal;

    size_t num_steps;           /* 0 until set_timesteps */
    float *sigmas;              /* num_steps + 1 */
    float *timesteps;           /* num_steps */
    int64_t *timesteps_int;     /* UniPC only */
    size_t step_index;
    size_t n;                   /* latent elements; 0 until the first step */

    fy_unipc_state unipc;
    fy_euler_state euler;
};

/* numpy.linspace(start, stop, num)[i] in float64, bit for bit. */
double fy_sched_linspace_at(double start, double stop, size_t num, size_t i);
/* diffusers' stretch_shift_to_terminal over sig[0..count) in float64. */
void fy_sched_stretch_to_terminal(double *sig, size_t count, double shift_terminal);

/* FY_ERR_UNSUPPORTED naming key when the config sets it true. */
fy_status fy_sched_reject_true(const fy_config *cfg, const char *key, const char *class_name);
/* Float32 log and expm1, correctly rounded as torch's CPU kernels give them. */
float fy_sched_logf(float x);
float fy_sched_expm1f(float x);

fy_status fy_unipc_configure(fy_scheduler *s, const fy_config *cfg);
fy_status fy_unipc_set_timesteps(fy_scheduler *s, size_t num_steps);
fy_status fy_unipc_alloc_state(fy_scheduler *s, size_t n);
fy_status fy_unipc_step(fy_scheduler *s, const float *model_output, const float *sample,
                        float *out, size_t n);
void fy_unipc_reset(fy_scheduler *s);
void fy_unipc_release(fy_scheduler *s);

fy_status fy_euler_configure(fy_scheduler *s, const fy_config *cfg);
fy_status fy_euler_set_timesteps(fy_scheduler *s, size_t num_steps);
fy_status fy_euler_set_sigmas(fy_scheduler *s, const float *sigmas, size_t num_steps, double mu);
fy_status fy_euler_step(fy_scheduler *s, const float *model_output, const float *sample,
                        float *out, size_t n);

#endif
