/* UniPCMultistepScheduler (diffusers v0.38.0) for flow matching: the UniP
 * predictor and the UniC corrector in their B(h) form, on x0 predictions
 * (predict_x0), over flow sigmas (alpha = 1 - sigma).
 *
 * torch keeps the sigmas as float32 and every per-step scalar (log-SNR, h,
 * expm1, the UniC linear system) as a 0-dim float32 tensor, so those are
 * float here too; each elementwise expression is split into the separate
 * roundings torch performs, in its evaluation order. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sched/scheduler_impl.h"

static const char CLASS_NAME[] = "UniPCMultistepScheduler";
/* More entries than this in disable_corrector is not a real config. */
#define MAX_DISABLED 4096

/* ---- configuration ------------------------------------------------------ */

static fy_status require_string(const fy_config *cfg, const char *key, const char *def,
                                const char *want, const char *why)
{
    const char *v = NULL;
    FY_TRY(fy_config_string_or(cfg, key, def, &v));
    if (strcmp(v, want) != 0)
        return fy_error(FY_ERR_UNSUPPORTED, "%s: %s \"%s\" is not supported by ferry's %s (%s)",
                        fy_config_path(cfg), key, v, CLASS_NAME, why);
    return FY_OK;
}

static fy_status read_solver_type(fy_unipc_state *u, const fy_config *cfg)
{
    const char *v = NULL;
    FY_TRY(fy_config_string_or(cfg, "solver_type", "bh2", &v));
    /* diffusers maps the DPM-Solver names onto bh2. */
    if (strcmp(v, "bh1") == 0) {
        u->bh1 = true;
    } else if (strcmp(v, "bh2") == 0 || strcmp(v, "midpoint") == 0 || strcmp(v, "heun") == 0 ||
               strcmp(v, "logrho") == 0) {
        u->bh1 = false;
    } else {
        return fy_error(FY_ERR_UNSUPPORTED, "%s: solver_type \"%s\" is not supported (use bh1 or bh2)",
                        fy_config_path(cfg), v);
    }
    return FY_OK;
}

static fy_status read_final_sigmas_type(fy_unipc_state *u, const fy_config *cfg)
{
    const char *v = NULL;
    FY_TRY(fy_config_string_or(cfg, "final_sigmas_type", "zero", &v));
    if (strcmp(v, "zero") == 0) u->final_sigma_min = false;
    else if (strcmp(v, "sigma_min") == 0) u->final_sigma_min = true;
    else
        return fy_error(FY_ERR_INVALID, "%s: final_sigmas_type \"%s\" must be \"zero\" or \"sigma_min\"",
                        fy_config_path(cfg), v);
    return FY_OK;
}

static fy_status read_disable_corrector(fy_unipc_state *u, const fy_config *cfg)
{
    if (!fy_config_has(cfg, "disable_corrector")) return FY_OK;
    int64_t *buf = malloc(MAX_DISABLED * sizeof *buf);
    if (!buf) return fy_error(FY_ERR_NOMEM, "out of memory reading disable_corrector");
    size_t count = 0;
    fy_status st = fy_config_int_array(cfg, "disable_corrector", buf, MAX_DISABLED, &count);
    if (st != FY_OK || count == 0) {
        free(buf);
        return st;
    }
    u->disable_corrector = buf;
    u->disable_corrector_count = count;
    return FY_OK;
}

static fy_status read_timestep_spacing(const fy_config *cfg)
{
    /* Flow sigmas ignore the spacing, but diffusers still rejects unknown ones. */
    const char *v = NULL;
    FY_TRY(fy_config_string_or(cfg, "timestep_spacing", "linspace", &v));
    if (strcmp(v, "linspace") != 0 && strcmp(v, "leading") != 0 && strcmp(v, "trailing") != 0)
        return fy_error(FY_ERR_INVALID,
                        "%s: timestep_spacing \"%s\" must be linspace, leading or trailing",
                        fy_config_path(cfg), v);
    return FY_OK;
}

static fy_status reject_unsupported(const fy_config *cfg)
{
    static const char *const flags[] = {"thresholding", "use_karras_sigmas", "use_exponential_sigmas",
                                        "use_beta_sigmas", "use_dynamic_shifting"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        FY_TRY(fy_sched_reject_true(cfg, flags[i], CLASS_NAME));
    if (fy_config_has(cfg, "solver_p"))
        return fy_error(FY_ERR_UNSUPPORTED, "%s: solver_p is not supported (remove it or set it to null)",
                        fy_config_path(cfg));
    FY_TRY(require_string(cfg, "prediction_type", "epsilon", "flow_prediction",
                          "ferry implements the flow-matching UniPC; set flow_prediction"));
    bool flag = false;
    FY_TRY(fy_config_bool_or(cfg, "use_flow_sigmas", false, &flag));
    if (!flag)
        return fy_error(FY_ERR_UNSUPPORTED,
                        "%s: use_flow_sigmas false is not supported by ferry's %s (it implements flow sigmas)",
                        fy_config_path(cfg), CLASS_NAME);
    FY_TRY(fy_config_bool_or(cfg, "predict_x0", true, &flag));
    if (!flag)
        return fy_error(FY_ERR_UNSUPPORTED,
                        "%s: predict_x0 false is not supported with flow_prediction (diffusers rejects it too)",
                        fy_config_path(cfg));
    return FY_OK;
}

fy_status fy_unipc_configure(fy_scheduler *s, const fy_config *cfg)
{
    fy_unipc_state *u = &s->unipc;
    const char *path = fy_config_path(cfg);
    FY_TRY(reject_unsupported(cfg));
    FY_TRY(read_timestep_spacing(cfg));
    FY_TRY(read_solver_type(u, cfg));
    FY_TRY(read_final_sigmas_type(u, cfg));

    int64_t order = 2;
    FY_TRY(fy_config_int_or(cfg, "solver_order", 2, &order));
    if (order < 1 || order > FY_UNIPC_MAX_ORDER)
        return fy_error(FY_ERR_UNSUPPORTED, "%s: solver_order %lld is not supported (1 .. %d)", path,
                        (long long)order, FY_UNIPC_MAX_ORDER);
    u->solver_order = (int)order;
    FY_TRY(fy_config_bool_or(cfg, "lower_order_final", true, &u->lower_order_final));

    double shift = 1.0;
    FY_TRY(fy_config_double_or(cfg, "flow_shift", 1.0, &shift));
    if (!(shift > 0.0) || !isfinite(shift))
        return fy_error(FY_ERR_INVALID, "%s: flow_shift %g must be a positive number", path, shift);
    s->shift = shift;
    return read_disable_corrector(u, cfg);
}

/* ---- schedule ----------------------------------------------------------- */

fy_status fy_unipc_set_timesteps(fy_scheduler *s, size_t num_steps)
{
    double *sig = malloc(num_steps * sizeof *sig);
    if (!sig) return fy_error(FY_ERR_NOMEM, "out of memory for a %zu-step schedule", num_steps);
    const double train = (double)s->num_train_timesteps;
    const double shift = s->shift;
    for (size_t i = 0; i < num_steps; i++) {
        double x = fy_sched_linspace_at(1.0, 1.0 / train, num_steps + 1, i);
        sig[i] = shift * x / (1.0 + (shift - 1.0) * x);
    }
    if (s->has_shift_terminal) fy_sched_stretch_to_terminal(sig, num_steps, s->shift_terminal);
    /* sigma 1 would make alpha 0 and log(alpha) -inf in the first updates. */
    if (fabs(sig[0] - 1.0) < 1e-6) sig[0] -= 1e-6;

    for (size_t i = 0; i < num_steps; i++) {
        s->timesteps_int[i] = (int64_t)(sig[i] * train); /* numpy astype: truncation */
        s->timesteps[i] = (float)s->timesteps_int[i];
        s->sigmas[i] = (float)sig[i];
    }
    s->sigmas[num_steps] = s->unipc.final_sigma_min ? (float)sig[num_steps - 1] : 0.0f;
    free(sig);
    return FY_OK;
}

/* ---- state -------------------------------------------------------------- */

void fy_unipc_release(fy_scheduler *s)
{
    fy_unipc_state *u = &s->unipc;
    for (int i = 0; i < FY_UNIPC_MAX_ORDER; i++) {
        free(u->model_outputs[i]);
        u->model_outputs[i] = NULL;
    }
    free(u->scratch);
    free(u->last_sample);
    free(u->disable_corrector);
    u->scratch = NULL;
    u->last_sample = NULL;
    u->disable_corrector = NULL;
    u->disable_corrector_count = 0;
    u->capacity = 0;
}

fy_status fy_unipc_alloc_state(fy_scheduler *s, size_t n)
{
    fy_unipc_state *u = &s->unipc;
    if (n <= u->capacity) return FY_OK;
    if (n > SIZE_MAX / sizeof(float))
        return fy_error(FY_ERR_INVALID, "UniPC: %zu latent elements overflow the buffer size", n);
    float **bufs[FY_UNIPC_MAX_ORDER + 2];
    int count = 0;
    for (int i = 0; i < u->solver_order; i++) bufs[count++] = &u->model_outputs[i];
    bufs[count++] = &u->scratch;
    bufs[count++] = &u->last_sample;
    for (int i = 0; i < count; i++) {
        float *p = realloc(*bufs[i], n * sizeof(float));
        if (!p) return fy_error(FY_ERR_NOMEM, "out of memory for the UniPC history (%zu elements)", n);
        *bufs[i] = p;
    }
    u->capacity = n;
    return FY_OK;
}

void fy_unipc_reset(fy_scheduler *s)
{
    s->unipc.lower_order_nums = 0;
    s->unipc.this_order = 0;
    s->unipc.has_last_sample = false;
}

/* ---- per-step scalars ----------------------------------------------------- */

/* The float32 scalars one UniP or UniC update needs. */
typedef struct unipc_coeffs {
    float ratio;        /* sigma_t / sigma_s0 */
    float alpha_phi;    /* alpha_t * h_phi_1 */
    float alpha_bh;     /* alpha_t * B_h */
    float rk[FY_UNIPC_MAX_ORDER];
    float rho[FY_UNIPC_MAX_ORDER];
    int num_d1;         /* history differences used (order - 1) */
} unipc_coeffs;

static float lambda_of(float sigma)
{
    float alpha = 1.0f - sigma;
    float log_alpha = fy_sched_logf(alpha);
    float log_sigma = fy_sched_logf(sigma);
    return log_alpha - log_sigma;
}

/* torch.pow(rks, e) for the small integer exponents UniPC uses. */
static float pow_small(float x, int e)
{
    if (e == 0) return 1.0f;
    if (e == 1) return x;
    if (e == 2) return x * x;
    if (e == 3) {
        float x2 = x * x;
        return x2 * x;
    }
    return (float)pow((double)x, (double)e);
}

/* Solve a (m x m, row-major) x = b in float32 by LU with partial pivoting,
 * as LAPACK's sgesv (pivot: first largest |a|, multipliers by reciprocal). */
static bool solve_f32(float *a, float *b, int m)
{
    for (int k = 0; k < m; k++) {
        int p = k;
        for (int i = k + 1; i < m; i++)
            if (fabsf(a[i * m + k]) > fabsf(a[p * m + k])) p = i;
        if (a[p * m + k] == 0.0f || !isfinite(a[p * m + k])) return false;
        if (p != k) {
            for (int j = 0; j < m; j++) {
                float t = a[k * m + j];
                a[k * m + j] = a[p * m + j];
                a[p * m + j] = t;
            }
            float t = b[k];
            b[k] = b[p];
            b[p] = t;
        }
        float r = 1.0f / a[k * m + k];
        for (int i = k + 1; i < m; i++) a[i * m + k] *= r;
        for (int i = k + 1; i < m; i++)
            for (int j = k + 1; j < m; j++) {
                float t = a[i * m + k] * a[k * m + j];
                a[i * m + j] -= t;
            }
    }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < i; j++) {
            float t = a[i * m + j] * b[j];
            b[i] -= t;
        }
    for (int i = m - 1; i >= 0; i--) {
        for (int j = i + 1; j < m; j++) {
            float t = a[i * m + j] * b[j];
            b[i] -= t;
        }
        b[i] /= a[i * m + i];
    }
    return true;
}

/* The scalars of multistep_uni_{p,c}_bh_update: t indexes the target sigma,
 * s0 the sigma of the newest history entry, older entries sit at s0 - i. */
static fy_status compute_coeffs(const fy_scheduler *s, size_t t, size_t s0, int order, bool corrector,
                                unipc_coeffs *c)
{
    const float *sig = s->sigmas;
    float sigma_t = sig[t], sigma_s0 = sig[s0];
    float alpha_t = 1.0f - sigma_t;
    float lambda_t = lambda_of(sigma_t);
    float lambda_s0 = lambda_of(sigma_s0);
    float h = lambda_t - lambda_s0;

    float rks[FY_UNIPC_MAX_ORDER];
    for (int i = 1; i < order; i++) {
        float d = lambda_of(sig[s0 - (size_t)i]) - lambda_s0;
        rks[i - 1] = d / h;
        c->rk[i - 1] = rks[i - 1];
    }
    rks[order - 1] = 1.0f;
    c->num_d1 = order - 1;

    float hh = -h; /* predict_x0 */
    float h_phi_1 = fy_sched_expm1f(hh);
    float h_phi_k = h_phi_1 / hh - 1.0f;
    float b_h = s->unipc.bh1 ? hh : fy_sched_expm1f(hh);
    float R[FY_UNIPC_MAX_ORDER * FY_UNIPC_MAX_ORDER], b[FY_UNIPC_MAX_ORDER];
    long factorial = 1;
    for (int i = 1; i <= order; i++) {
        for (int j = 0; j < order; j++) R[(i - 1) * order + j] = pow_small(rks[j], i - 1);
        float num = h_phi_k * (float)factorial;
        b[i - 1] = num / b_h;
        factorial *= i + 1;
        float q = h_phi_k / hh;
        h_phi_k = q - (float)(1.0 / (double)factorial);
    }

    if (corrector && order == 1) {
        c->rho[0] = 0.5f;
    } else if (corrector) {
        memcpy(c->rho, b, (size_t)order * sizeof *b);
        if (!solve_f32(R, c->rho, order))
            return fy_error(FY_ERR_INVALID, "%s: singular corrector system at step %zu (repeated sigmas?)",
                            CLASS_NAME, s->step_index);
    } else if (order == 2) {
        c->rho[0] = 0.5f;
    } else if (order > 2) {
        /* R[:-1, :-1] and b[:-1]. */
        int m = order - 1;
        float Rm[FY_UNIPC_MAX_ORDER * FY_UNIPC_MAX_ORDER];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < m; j++) Rm[i * m + j] = R[i * order + j];
        memcpy(c->rho, b, (size_t)m * sizeof *b);
        if (!solve_f32(Rm, c->rho, m))
            return fy_error(FY_ERR_INVALID, "%s: singular predictor system at step %zu (repeated sigmas?)",
                            CLASS_NAME, s->step_index);
    }
    c->ratio = sigma_t / sigma_s0;
    c->alpha_phi = alpha_t * h_phi_1;
    c->alpha_bh = alpha_t * b_h;
    return FY_OK;
}

/* ---- elementwise updates ------------------------------------------------ */

/* einsum("k,bkc...->bc...", rho, D1s) at one element, D1_k = (m_k - m0) / rk_k. */
static inline float history_term(const unipc_coeffs *c, float *const *hist, float m0, size_t j)
{
    float acc = 0.0f;
    for (int k = 0; k < c->num_d1; k++) {
        float diff = hist[k][j] - m0;
        float d1 = diff / c->rk[k];
        float term = c->rho[k] * d1;
        acc = k == 0 ? term : acc + term;
    }
    return acc;
}

/* UniC: x (the sample before the last predictor) becomes the corrected
 * current sample, in place; model_t is this step's x0 prediction. */
static void corrector_update(const unipc_coeffs *c, float *x, const float *m0, float *const *hist,
                             const float *model_t, size_t n)
{
    const float rho_t = c->rho[c->num_d1];
    for (size_t j = 0; j < n; j++) {
        float a = c->ratio * x[j];
        float b = c->alpha_phi * m0[j];
        float x_t_ = a - b;
        float d1_t = model_t[j] - m0[j];
        float inner = rho_t * d1_t;
        if (c->num_d1 > 0) {
            float corr = history_term(c, hist, m0[j], j);
            inner = corr + inner;
        }
        float upd = c->alpha_bh * inner;
        x[j] = x_t_ - upd;
    }
}

/* UniP: out = the sample at the next sigma. */
static void predictor_update(const unipc_coeffs *c, const float *x, const float *m0, float *const *hist,
                             float *out, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        float a = c->ratio * x[j];
        float b = c->alpha_phi * m0[j];
        float x_t_ = a - b;
        if (c->num_d1 > 0) {
            float pred = history_term(c, hist, m0[j], j);
            float upd = c->alpha_bh * pred;
            x_t_ = x_t_ - upd;
        }
        out[j] = x_t_;
    }
}

static bool corrector_disabled(const fy_unipc_state *u, size_t index)
{
    for (size_t i = 0; i < u->disable_corrector_count; i++)
        if (u->disable_corrector[i] >= 0 && (size_t)u->disable_corrector[i] == index) return true;
    return false;
}

/* hist[k] = the (k+1)-th entry before the newest. */
static void history_view(const fy_unipc_state *u, float **hist)
{
    for (int k = 0; k + 1 < u->solver_order; k++) hist[k] = u->model_outputs[u->solver_order - 2 - k];
}

fy_status fy_unipc_step(fy_scheduler *s, const float *model_output, const float *sample, float *out,
                        size_t n)
{
    fy_unipc_state *u = &s->unipc;
    const size_t k = s->step_index;
    const int order_max = u->solver_order;
    float *hist[FY_UNIPC_MAX_ORDER];

    /* convert_model_output (flow_prediction): x0 = sample - sigma * v. */
    const float sigma = s->sigmas[k];
    float *x0 = u->scratch;
    for (size_t j = 0; j < n; j++) {
        float t = sigma * model_output[j];
        x0[j] = sample[j] - t;
    }

    bool use_corrector = k > 0 && !corrector_disabled(u, k - 1) && u->has_last_sample;
    if (use_corrector) {
        unipc_coeffs c;
        FY_TRY(compute_coeffs(s, k, k - 1, u->this_order, true, &c));
        history_view(u, hist);
        corrector_update(&c, u->last_sample, u->model_outputs[order_max - 1], hist, x0, n);
    } else {
        memcpy(u->last_sample, sample, n * sizeof *sample);
    }
    u->has_last_sample = true;

    float *dropped = u->model_outputs[0];
    for (int i = 0; i + 1 < order_max; i++) u->model_outputs[i] = u->model_outputs[i + 1];
    u->model_outputs[order_max - 1] = x0;
    u->scratch = dropped;

    size_t remaining = s->num_steps - k;
    int this_order = order_max;
    if (u->lower_order_final && remaining < (size_t)this_order) this_order = (int)remaining;
    if (this_order > u->lower_order_nums + 1) this_order = u->lower_order_nums + 1;
    u->this_order = this_order;

    unipc_coeffs c;
    FY_TRY(compute_coeffs(s, k + 1, k, this_order, false, &c));
    history_view(u, hist);
    predictor_update(&c, u->last_sample, x0, hist, out, n);

    if (u->lower_order_nums < order_max) u->lower_order_nums++;
    return FY_OK;
}
