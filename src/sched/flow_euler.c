/* FlowMatchEulerDiscreteScheduler (diffusers v0.38.0): static shift, or the
 * pipeline's own sigmas shifted by mu (use_dynamic_shifting, Flux).
 *
 * diffusers derives sigma_min / sigma_max from the training schedule it
 * already shifted in __init__ (float32 torch), spaces the inference sigmas
 * between them in float64 and then shifts them a second time; the double
 * shift is reproduced on purpose. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sched/scheduler_impl.h"

static const char CLASS_NAME[] = "FlowMatchEulerDiscreteScheduler";

/* Dynamic shifting and calculate_shift's inputs (read whether or not the
 * shifting is on: the pipeline computes mu either way). */
static fy_status read_dynamic(fy_scheduler *s, const fy_config *cfg)
{
    fy_euler_state *e = &s->euler;
    FY_TRY(fy_config_bool_or(cfg, "use_dynamic_shifting", false, &e->dynamic));
    FY_TRY(fy_config_double_or(cfg, "base_shift", 0.5, &e->base_shift));
    FY_TRY(fy_config_double_or(cfg, "max_shift", 1.15, &e->max_shift));
    FY_TRY(fy_config_double_or(cfg, "base_image_seq_len", 256, &e->base_seq_len));
    FY_TRY(fy_config_double_or(cfg, "max_image_seq_len", 4096, &e->max_seq_len));
    const char *type = "exponential";
    FY_TRY(fy_config_string_or(cfg, "time_shift_type", "exponential", &type));
    if (e->dynamic && strcmp(type, "exponential"))
        return fy_error(FY_ERR_UNSUPPORTED, "%s: time_shift_type \"%s\" is not supported (exponential)",
                        fy_config_path(cfg), type);
    if (e->max_seq_len == e->base_seq_len)
        return fy_error(FY_ERR_INVALID, "%s: base_image_seq_len and max_image_seq_len must differ",
                        fy_config_path(cfg));
    return FY_OK;
}

fy_status fy_euler_configure(fy_scheduler *s, const fy_config *cfg)
{
    static const char *const flags[] = {"use_karras_sigmas",
                                        "use_exponential_sigmas", "use_beta_sigmas",
                                        "stochastic_sampling"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        FY_TRY(fy_sched_reject_true(cfg, flags[i], CLASS_NAME));
    double shift = 1.0;
    FY_TRY(fy_config_double_or(cfg, "shift", 1.0, &shift));
    if (!(shift > 0.0) || !isfinite(shift))
        return fy_error(FY_ERR_INVALID, "%s: shift %g must be a positive number", fy_config_path(cfg), shift);
    s->shift = shift;
    s->euler.config_shift = shift;
    FY_TRY(read_dynamic(s, cfg));
    return fy_config_bool_or(cfg, "invert_sigmas", false, &s->euler.invert_sigmas);
}

/* __init__'s shift over float32 tensors: shift * s / (1 + (shift - 1) * s). */
static float shift_f32(double shift, float sigma)
{
    float num = (float)shift * sigma;
    float den_t = (float)(shift - 1.0) * sigma;
    float den = 1.0f + den_t;
    return num / den;
}

fy_status fy_euler_set_timesteps(fy_scheduler *s, size_t num_steps)
{
    if (s->euler.dynamic)
        return fy_error(FY_ERR_INVALID, "FlowMatchEulerDiscreteScheduler with use_dynamic_shifting needs the "
                        "pipeline's sigmas and mu (fy_scheduler_set_sigmas)");
    double *sig = malloc(num_steps * sizeof *sig);
    if (!sig) return fy_error(FY_ERR_NOMEM, "out of memory for a %zu-step schedule", num_steps);
    const float train_f = (float)s->num_train_timesteps;
    const double train = (double)s->num_train_timesteps;
    /* The training schedule runs from timestep N down to 1, so its sigmas
     * from N / N to 1 / N. */
    double sigma_max = shift_f32(s->euler.config_shift, train_f / train_f);
    double sigma_min = shift_f32(s->euler.config_shift, 1.0f / train_f);

    const double shift = s->shift;
    for (size_t i = 0; i < num_steps; i++) {
        double t = fy_sched_linspace_at(sigma_max * train, sigma_min * train, num_steps, i);
        double x = t / train;
        sig[i] = shift * x / (1.0 + (shift - 1.0) * x);
    }
    if (s->has_shift_terminal) fy_sched_stretch_to_terminal(sig, num_steps, s->shift_terminal);

    for (size_t i = 0; i < num_steps; i++) {
        float v = (float)sig[i];
        if (s->euler.invert_sigmas) v = 1.0f - v;
        s->sigmas[i] = v;
        s->timesteps[i] = v * train_f;
    }
    s->sigmas[num_steps] = s->euler.invert_sigmas ? 1.0f : 0.0f;
    free(sig);
    return FY_OK;
}

/* set_timesteps(sigmas=..., mu=...): the sigmas (float32, numpy) shifted
 * by e^mu / (e^mu + 1/s - 1) when dynamic, else by the static shift, in
 * float32 as numpy computes them; then a final 0. */
fy_status fy_euler_set_sigmas(fy_scheduler *s, const float *sigmas, size_t num_steps, double mu)
{
    const float train_f = (float)s->num_train_timesteps;
    const float e = (float)exp(mu);
    for (size_t i = 0; i < num_steps; i++) {
        float x = sigmas[i], v;
        if (s->euler.dynamic) {
            float d = 1.0f / x - 1.0f;
            v = e / (e + d);
        } else {
            v = shift_f32(s->shift, x);
        }
        s->sigmas[i] = v;
    }
    if (s->has_shift_terminal) {
        double *sig = malloc(num_steps * sizeof *sig);
        if (!sig) return fy_error(FY_ERR_NOMEM, "out of memory for a %zu-step schedule", num_steps);
        for (size_t i = 0; i < num_steps; i++) sig[i] = s->sigmas[i];
        fy_sched_stretch_to_terminal(sig, num_steps, s->shift_terminal);
        for (size_t i = 0; i < num_steps; i++) s->sigmas[i] = (float)sig[i];
        free(sig);
    }
    for (size_t i = 0; i < num_steps; i++) {
        if (s->euler.invert_sigmas) s->sigmas[i] = 1.0f - s->sigmas[i];
        s->timesteps[i] = s->sigmas[i] * train_f;
    }
    s->sigmas[num_steps] = s->euler.invert_sigmas ? 1.0f : 0.0f;
    return FY_OK;
}

fy_status fy_euler_step(fy_scheduler *s, const float *model_output, const float *sample, float *out,
                        size_t n)
{
    const size_t k = s->step_index;
    const float dt = s->sigmas[k + 1] - s->sigmas[k];
    for (size_t j = 0; j < n; j++) {
        float t = dt * model_output[j];
        out[j] = sample[j] + t;
    }
    return FY_OK;
}
