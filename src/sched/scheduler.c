/* Scheduler creation from a scheduler_config.json, the schedule arrays and
 * the checks every step shares; the math lives in unipc.c and flow_euler.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/scheduler.h"
#include "sched/scheduler_impl.h"

/* Far beyond any sampler (diffusers' pipelines use 1..1000). */
#define FY_SCHED_MAX_STEPS ((size_t)1 << 20)

static const char UNIPC_CLASS[] = "UniPCMultistepScheduler";
static const char EULER_CLASS[] = "FlowMatchEulerDiscreteScheduler";

double fy_sched_linspace_at(double start, double stop, size_t num, size_t i)
{
    /* numpy: y = arange(num) * step + start, step = (stop - start) / (num - 1),
     * and the endpoint is stored exactly. */
    if (num > 1 && i == num - 1) return stop;
    if (num <= 1) return start;
    double step = (stop - start) / (double)(num - 1);
    double y = (double)i * step;
    return y + start;
}

void fy_sched_stretch_to_terminal(double *sig, size_t count, double shift_terminal)
{
    double scale = (1.0 - sig[count - 1]) / (1.0 - shift_terminal);
    for (size_t i = 0; i < count; i++) sig[i] = 1.0 - (1.0 - sig[i]) / scale;
}

fy_status fy_sched_reject_true(const fy_config *cfg, const char *key, const char *class_name)
{
    bool v = false;
    FY_TRY(fy_config_bool_or(cfg, key, false, &v));
    if (v)
        return fy_error(FY_ERR_UNSUPPORTED, "%s: %s true is not supported by ferry's %s (set it to false)",
                        fy_config_path(cfg), key, class_name);
    return FY_OK;
}

float fy_sched_logf(float x) { return (float)log((double)x); }
float fy_sched_expm1f(float x) { return (float)expm1((double)x); }

static fy_status read_common(fy_scheduler *s, const fy_config *cfg)
{
    const char *path = fy_config_path(cfg);
    FY_TRY(fy_config_int_or(cfg, "num_train_timesteps", 1000, &s->num_train_timesteps));
    if (s->num_train_timesteps < 1 || s->num_train_timesteps > (int64_t)1 << 30)
        return fy_error(FY_ERR_INVALID, "%s: num_train_timesteps %lld is out of range (1 .. 2^30)",
                        path, (long long)s->num_train_timesteps);
    double term = 0.0;
    FY_TRY(fy_config_double_or(cfg, "shift_terminal", 0.0, &term));
    /* diffusers tests `if self.config.shift_terminal:`, so 0 means off. */
    s->has_shift_terminal = term != 0.0;
    s->shift_terminal = term;
    if (s->has_shift_terminal && !(term < 1.0))
        return fy_error(FY_ERR_INVALID, "%s: shift_terminal %g must be below 1", path, term);
    return FY_OK;
}

fy_status fy_scheduler_create_from_config(const fy_config *cfg, fy_scheduler **out)
{
    if (!out) return fy_error(FY_ERR_INVALID, "fy_scheduler_create_from_config: out is NULL");
    *out = NULL;
    if (!cfg) return fy_error(FY_ERR_INVALID, "fy_scheduler_create_from_config: config is NULL");
    const char *cls = NULL;
    FY_TRY(fy_config_string(cfg, "_class_name", &cls));

    fy_scheduler *s = calloc(1, sizeof *s);
    if (!s) return fy_error(FY_ERR_NOMEM, "out of memory creating a scheduler");
    fy_status st;
    if (strcmp(cls, UNIPC_CLASS) == 0) {
        s->kind = FY_SCHEDULER_UNIPC;
        st = read_common(s, cfg);
        if (st == FY_OK) st = fy_unipc_configure(s, cfg);
    } else if (strcmp(cls, EULER_CLASS) == 0) {
        s->kind = FY_SCHEDULER_FLOW_EULER;
        st = read_common(s, cfg);
        if (st == FY_OK) st = fy_euler_configure(s, cfg);
    } else {
        st = fy_error(FY_ERR_UNSUPPORTED,
                      "%s: scheduler class \"%s\" is not supported (ferry implements %s and %s)",
                      fy_config_path(cfg), cls, UNIPC_CLASS, EULER_CLASS);
    }
    if (st != FY_OK) {
        fy_scheduler_free(s);
        return st;
    }
    *out = s;
    return FY_OK;
}

static void free_schedule(fy_scheduler *s)
{
    free(s->sigmas);
    free(s->timesteps);
    free(s->timesteps_int);
    s->sigmas = NULL;
    s->timesteps = NULL;
    s->timesteps_int = NULL;
    s->num_steps = 0;
}

void fy_scheduler_free(fy_scheduler *s)
{
    if (!s) return;
    free_schedule(s);
    fy_unipc_release(s);
    free(s);
}

fy_scheduler_kind fy_scheduler_get_kind(const fy_scheduler *s) { return s->kind; }

const char *fy_scheduler_class_name(const fy_scheduler *s)
{
    return s->kind == FY_SCHEDULER_UNIPC ? UNIPC_CLASS : EULER_CLASS;
}

fy_status fy_scheduler_set_shift(fy_scheduler *s, double shift)
{
    if (!s) return fy_error(FY_ERR_INVALID, "fy_scheduler_set_shift: scheduler is NULL");
    if (!(shift > 0.0) || !isfinite(shift))
        return fy_error(FY_ERR_INVALID, "flow shift %g must be a positive number", shift);
    s->shift = shift;
    return FY_OK;
}

double fy_scheduler_get_shift(const fy_scheduler *s) { return s->shift; }

static fy_status alloc_schedule(fy_scheduler *s, size_t num_steps)
{
    if (num_steps < 1 || num_steps > FY_SCHED_MAX_STEPS)
        return fy_error(FY_ERR_INVALID, "%zu inference steps: give between 1 and %zu", num_steps,
                        FY_SCHED_MAX_STEPS);
    free_schedule(s);
    s->sigmas = malloc((num_steps + 1) * sizeof *s->sigmas);
    s->timesteps = malloc(num_steps * sizeof *s->timesteps);
    if (s->kind == FY_SCHEDULER_UNIPC) s->timesteps_int = malloc(num_steps * sizeof *s->timesteps_int);
    if (!s->sigmas || !s->timesteps || (s->kind == FY_SCHEDULER_UNIPC && !s->timesteps_int)) {
        free_schedule(s);
        return fy_error(FY_ERR_NOMEM, "out of memory for a %zu-step schedule", num_steps);
    }
    return FY_OK;
}

static fy_status schedule_done(fy_scheduler *s, fy_status st, size_t num_steps)
{
    if (st != FY_OK) {
        free_schedule(s);
        return st;
    }
    s->num_steps = num_steps;
    fy_scheduler_reset(s);
    return FY_OK;
}

fy_status fy_scheduler_set_timesteps(fy_scheduler *s, size_t num_steps)
{
    if (!s) return fy_error(FY_ERR_INVALID, "fy_scheduler_set_timesteps: scheduler is NULL");
    FY_TRY(alloc_schedule(s, num_steps));
    fy_status st = s->kind == FY_SCHEDULER_UNIPC ? fy_unipc_set_timesteps(s, num_steps)
                                                 : fy_euler_set_timesteps(s, num_steps);
    return schedule_done(s, st, num_steps);
}

fy_status fy_scheduler_set_sigmas(fy_scheduler *s, const float *sigmas, size_t num_steps, double mu)
{
    if (!s || !sigmas) return fy_error(FY_ERR_INVALID, "fy_scheduler_set_sigmas: NULL argument");
    if (s->kind != FY_SCHEDULER_FLOW_EULER)
        return fy_error(FY_ERR_UNSUPPORTED, "%s: custom sigmas are implemented for %s only",
                        fy_scheduler_class_name(s), EULER_CLASS);
    for (size_t i = 0; i < num_steps; i++)
        if (!(sigmas[i] > 0.0f && sigmas[i] <= 1.0f))
            return fy_error(FY_ERR_INVALID, "sigma %zu is %g: custom sigmas lie in (0, 1]", i, (double)sigmas[i]);
    if (!isfinite(mu)) return fy_error(FY_ERR_INVALID, "mu %g is not finite", mu);
    FY_TRY(alloc_schedule(s, num_steps));
    return schedule_done(s, fy_euler_set_sigmas(s, sigmas, num_steps, mu), num_steps);
}

double fy_scheduler_mu(const fy_scheduler *s, int64_t image_seq_len)
{
    const fy_euler_state *e = &s->euler;
    double m = (e->max_shift - e->base_shift) / (e->max_seq_len - e->base_seq_len);
    double b = e->base_shift - m * e->base_seq_len;
    return (double)image_seq_len * m + b;
}

size_t fy_scheduler_num_steps(const fy_scheduler *s) { return s->num_steps; }
const float *fy_scheduler_sigmas(const fy_scheduler *s) { return s->sigmas; }
const float *fy_scheduler_timesteps(const fy_scheduler *s) { return s->timesteps; }
const int64_t *fy_scheduler_timesteps_int(const fy_scheduler *s) { return s->timesteps_int; }
size_t fy_scheduler_step_index(const fy_scheduler *s) { return s->step_index; }

void fy_scheduler_reset(fy_scheduler *s)
{
    if (!s) return;
    s->step_index = 0;
    s->n = 0;
    if (s->kind == FY_SCHEDULER_UNIPC) fy_unipc_reset(s);
}

fy_status fy_scheduler_step(fy_scheduler *s, const float *model_output, const float *sample,
                            float *out, size_t n)
{
    if (!s || !model_output || !sample || !out || n == 0)
        return fy_error(FY_ERR_INVALID, "fy_scheduler_step: NULL or empty argument");
    if (s->num_steps == 0)
        return fy_error(FY_ERR_INVALID, "%s: call fy_scheduler_set_timesteps before stepping",
                        fy_scheduler_class_name(s));
    if (s->step_index >= s->num_steps)
        return fy_error(FY_ERR_INVALID, "%s: all %zu steps are done (fy_scheduler_reset starts over)",
                        fy_scheduler_class_name(s), s->num_steps);
    if (s->n != 0 && n != s->n)
        return fy_error(FY_ERR_INVALID, "%s: step %zu got %zu elements, earlier steps had %zu",
                        fy_scheduler_class_name(s), s->step_index, n, s->n);
    if (s->n == 0 && s->kind == FY_SCHEDULER_UNIPC) FY_TRY(fy_unipc_alloc_state(s, n));
    s->n = n;
    fy_status st = s->kind == FY_SCHEDULER_UNIPC ? fy_unipc_step(s, model_output, sample, out, n)
                                                 : fy_euler_step(s, model_output, sample, out, n);
    if (st == FY_OK) s->step_index++;
    return st;
}
