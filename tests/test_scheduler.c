/* Schedulers: UniPC (flow_shift 3 and 5) and flow-match Euler against the
 * golden fixtures, step by step; config errors; odd step counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ferry/config.h"
#include "ferry/error.h"
#include "ferry/safetensors.h"
#include "ferry/scheduler.h"
#include "ferry/tensor.h"
#include "verify/verify_scheduler.h"

#define FIXTURES FERRY_FIXTURES_DIR "/wan-tiny/fixtures/"
#define MODEL_SCHEDULER_CONFIG FERRY_FIXTURES_DIR "/wan-tiny/model/scheduler/scheduler_config.json"

/* ---- helpers ------------------------------------------------------------- */

static fy_st_file *open_fixture(const char *file)
{
    char path[4096];
    snprintf(path, sizeof path, "%s%s", FIXTURES, file);
    fy_st_file *f = NULL;
    fy_status st = fy_st_open(path, &f);
    if (st != FY_OK) fail_msg("%s", fy_error_message());
    return f;
}

static void load_f32(const fy_st_file *f, const char *name, fy_tensor *out)
{
    fy_tensor view;
    assert_int_equal(fy_st_view(f, name, &view), FY_OK);
    assert_int_equal(fy_tensor_to_f32(&view, out), FY_OK);
}

static fy_scheduler *scheduler_for(const fy_st_file *f, size_t *steps)
{
    fy_config *cfg = NULL;
    fy_scheduler *s = NULL;
    assert_int_equal(fy_scheduler_fixture_config(f, &cfg, steps), FY_OK);
    fy_status st = fy_scheduler_create_from_config(cfg, &s);
    if (st != FY_OK) fail_msg("%s", fy_error_message());
    fy_config_free(cfg);
    assert_int_equal(fy_scheduler_set_timesteps(s, *steps), FY_OK);
    return s;
}

static fy_scheduler *scheduler_from_json(const char *json, fy_status *status)
{
    fy_config *cfg = NULL;
    fy_scheduler *s = NULL;
    assert_int_equal(fy_config_parse(json, "<test>", &cfg), FY_OK);
    *status = fy_scheduler_create_from_config(cfg, &s);
    fy_config_free(cfg);
    return s;
}

static double rel_error(const float *ours, const float *ref, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)ours[i] - (double)ref[i]);
        if (d > num || isnan(d)) num = d;
        if (fabs((double)ref[i]) > den) den = fabs((double)ref[i]);
    }
    return den > 0 ? num / den : num;
}

static void expect_schedule(const fy_scheduler *s, const fy_st_file *f, size_t steps)
{
    fy_tensor ts, sig;
    assert_int_equal(fy_st_view(f, "timesteps", &ts), FY_OK);
    assert_int_equal(fy_tensor_numel(&ts), (int64_t)steps);
    if (ts.dtype == FY_I64) {
        const int64_t *ours = fy_scheduler_timesteps_int(s);
        assert_non_null(ours);
        for (size_t i = 0; i < steps; i++) {
            int64_t ref;
            memcpy(&ref, (const char *)ts.data + i * sizeof ref, sizeof ref);
            assert_int_equal(ours[i], ref);
            assert_true(fy_scheduler_timesteps(s)[i] == (float)ref);
        }
    } else {
        fy_tensor ref;
        assert_int_equal(fy_tensor_to_f32(&ts, &ref), FY_OK);
        for (size_t i = 0; i < steps; i++) assert_true(fy_scheduler_timesteps(s)[i] == ((float *)ref.data)[i]);
        fy_tensor_free(&ref);
    }
    load_f32(f, "sigmas", &sig);
    assert_int_equal(fy_tensor_numel(&sig), (int64_t)steps + 1);
    for (size_t i = 0; i <= steps; i++) assert_true(fy_scheduler_sigmas(s)[i] == ((float *)sig.data)[i]);
    fy_tensor_free(&sig);
}

/* Every step fed the reference sample, then the chain fed its own outputs. */
static void check_fixture(const char *file)
{
    fy_st_file *f = open_fixture(file);
    size_t steps = 0;
    fy_scheduler *s = scheduler_for(f, &steps);
    expect_schedule(s, f, steps);

    fy_tensor x0;
    load_f32(f, "sample.0", &x0);
    size_t n = (size_t)fy_tensor_numel(&x0);
    float *ours = malloc(n * sizeof *ours);
    assert_non_null(ours);
    char name[64];
    for (size_t i = 0; i < steps; i++) {
        fy_tensor mo, x, want;
        snprintf(name, sizeof name, "model_output.%zu", i);
        load_f32(f, name, &mo);
        snprintf(name, sizeof name, "sample.%zu", i);
        load_f32(f, name, &x);
        snprintf(name, sizeof name, "sample.%zu", i + 1);
        load_f32(f, name, &want);
        assert_int_equal(fy_scheduler_step(s, mo.data, x.data, ours, n), FY_OK);
        double err = rel_error(ours, want.data, n);
        if (!(err <= 1e-6)) fail_msg("%s step %zu: relative error %.3g > 1e-6", file, i, err);
        fy_tensor_free(&mo);
        fy_tensor_free(&x);
        fy_tensor_free(&want);
    }
    /* One step too many. */
    assert_int_equal(fy_scheduler_step(s, ours, ours, ours, n), FY_ERR_INVALID);

    fy_scheduler_reset(s);
    for (size_t i = 0; i < steps; i++) {
        fy_tensor mo;
        snprintf(name, sizeof name, "model_output.%zu", i);
        load_f32(f, name, &mo);
        assert_int_equal(fy_scheduler_step(s, mo.data, x0.data, x0.data, n), FY_OK);
        fy_tensor_free(&mo);
    }
    fy_tensor want;
    snprintf(name, sizeof name, "sample.%zu", steps);
    load_f32(f, name, &want);
    double err = rel_error(x0.data, want.data, n);
    if (!(err <= 1e-5)) fail_msg("%s chain: relative error %.3g > 1e-5", file, err);
    fy_tensor_free(&want);
    fy_tensor_free(&x0);
    free(ours);
    fy_scheduler_free(s);
    fy_st_close(f);
}

/* ---- fixtures ------------------------------------------------------------ */

static void test_unipc_shift3(void **state)
{
    (void)state;
    check_fixture("scheduler_unipc.safetensors");
}

static void test_unipc_shift5(void **state)
{
    (void)state;
    check_fixture("scheduler_unipc_shift5.safetensors");
}

static void test_flowmatch_euler(void **state)
{
    (void)state;
    check_fixture("scheduler_flowmatch_euler.safetensors");
}

/* The model folder's scheduler_config.json is what scheduler_unipc was made from. */
static void test_model_config(void **state)
{
    (void)state;
    fy_config *cfg = NULL;
    assert_int_equal(fy_config_load(MODEL_SCHEDULER_CONFIG, &cfg), FY_OK);
    fy_scheduler *s = NULL;
    assert_int_equal(fy_scheduler_create_from_config(cfg, &s), FY_OK);
    fy_config_free(cfg);
    assert_int_equal(fy_scheduler_get_kind(s), FY_SCHEDULER_UNIPC);
    assert_string_equal(fy_scheduler_class_name(s), "UniPCMultistepScheduler");
    assert_true(fy_scheduler_get_shift(s) == 3.0);

    fy_st_file *f = open_fixture("scheduler_unipc.safetensors");
    fy_tensor ts;
    assert_int_equal(fy_st_view(f, "timesteps", &ts), FY_OK);
    size_t steps = (size_t)fy_tensor_numel(&ts);
    assert_int_equal(fy_scheduler_set_timesteps(s, steps), FY_OK);
    expect_schedule(s, f, steps);
    fy_st_close(f);

    /* Overriding the shift to 5 gives the shift-5 fixture's schedule. */
    f = open_fixture("scheduler_unipc_shift5.safetensors");
    assert_int_equal(fy_st_view(f, "timesteps", &ts), FY_OK);
    steps = (size_t)fy_tensor_numel(&ts);
    assert_int_equal(fy_scheduler_set_shift(s, 5.0), FY_OK);
    assert_int_equal(fy_scheduler_set_timesteps(s, steps), FY_OK);
    expect_schedule(s, f, steps);
    fy_st_close(f);
    assert_int_equal(fy_scheduler_set_shift(s, -1.0), FY_ERR_INVALID);
    fy_scheduler_free(s);
}

/* ---- configs ------------------------------------------------------------- */

#define UNIPC_JSON(extra)                                                                      \
    "{\"_class_name\": \"UniPCMultistepScheduler\", \"prediction_type\": \"flow_prediction\", " \
    "\"use_flow_sigmas\": true, \"flow_shift\": 3.0" extra "}"

static void expect_rejected(const char *json, fy_status want, const char *key)
{
    fy_status st = FY_OK;
    fy_scheduler *s = scheduler_from_json(json, &st);
    assert_null(s);
    if (st != want) fail_msg("%s: got %s (%s)", json, fy_status_name(st), fy_error_message());
    if (key && !strstr(fy_error_message(), key))
        fail_msg("message \"%s\" does not name %s", fy_error_message(), key);
}

static void test_bad_configs(void **state)
{
    (void)state;
    expect_rejected("{\"_class_name\": \"DDIMScheduler\"}", FY_ERR_UNSUPPORTED, "DDIMScheduler");
    expect_rejected(UNIPC_JSON(", \"thresholding\": true"), FY_ERR_UNSUPPORTED, "thresholding");
    expect_rejected(UNIPC_JSON(", \"use_karras_sigmas\": true"), FY_ERR_UNSUPPORTED, "use_karras_sigmas");
    expect_rejected(UNIPC_JSON(", \"use_dynamic_shifting\": true"), FY_ERR_UNSUPPORTED, "use_dynamic_shifting");
    expect_rejected(UNIPC_JSON(", \"solver_type\": \"bh3\""), FY_ERR_UNSUPPORTED, "solver_type");
    expect_rejected(UNIPC_JSON(", \"solver_p\": {}"), FY_ERR_UNSUPPORTED, "solver_p");
    expect_rejected(UNIPC_JSON(", \"solver_order\": 0"), FY_ERR_UNSUPPORTED, "solver_order");
    expect_rejected(UNIPC_JSON(", \"final_sigmas_type\": \"max\""), FY_ERR_INVALID, "final_sigmas_type");
    expect_rejected("{\"_class_name\": \"UniPCMultistepScheduler\", \"use_flow_sigmas\": true, "
                    "\"prediction_type\": \"epsilon\"}",
                    FY_ERR_UNSUPPORTED, "prediction_type");
    expect_rejected("{\"_class_name\": \"UniPCMultistepScheduler\", \"prediction_type\": \"flow_prediction\"}",
                    FY_ERR_UNSUPPORTED, "use_flow_sigmas");
    expect_rejected("{\"_class_name\": \"UniPCMultistepScheduler\", \"prediction_type\": \"flow_prediction\", "
                    "\"use_flow_sigmas\": true, \"flow_shift\": 0}",
                    FY_ERR_INVALID, "flow_shift");
    expect_rejected("{\"_class_name\": \"FlowMatchEulerDiscreteScheduler\", \"use_dynamic_shifting\": true, "
                    "\"time_shift_type\": \"linear\"}",
                    FY_ERR_UNSUPPORTED, "time_shift_type");
    expect_rejected("{\"_class_name\": \"FlowMatchEulerDiscreteScheduler\", \"stochastic_sampling\": true}",
                    FY_ERR_UNSUPPORTED, "stochastic_sampling");
    expect_rejected("{\"_class_name\": \"FlowMatchEulerDiscreteScheduler\", \"shift\": \"3\"}", FY_ERR_FORMAT,
                    "shift");
    expect_rejected("{\"scheduler\": 1}", FY_ERR_NOT_FOUND, "_class_name");
    /* Dynamic shifting takes the pipeline's sigmas and mu: a plain schedule is refused. */
    fy_status dyn_st = FY_OK;
    fy_scheduler *dyn = scheduler_from_json(
        "{\"_class_name\": \"FlowMatchEulerDiscreteScheduler\", \"use_dynamic_shifting\": true}", &dyn_st);
    assert_non_null(dyn);
    assert_int_equal(fy_scheduler_set_timesteps(dyn, 4), FY_ERR_INVALID);
    assert_non_null(strstr(fy_error_message(), "use_dynamic_shifting"));
    float sig[2] = {1.0f, 0.5f};
    assert_int_equal(fy_scheduler_set_sigmas(dyn, sig, 2, 0.5), FY_OK);
    sig[1] = 0.0f;
    assert_int_equal(fy_scheduler_set_sigmas(dyn, sig, 2, 0.5), FY_ERR_INVALID);
    fy_scheduler_free(dyn);

    fy_config *cfg = NULL;
    fy_scheduler *s = NULL;
    assert_int_equal(fy_config_parse("{}", "<test>", &cfg), FY_OK);
    assert_int_not_equal(fy_scheduler_create_from_config(NULL, &s), FY_OK);
    assert_int_not_equal(fy_scheduler_create_from_config(cfg, NULL), FY_OK);
    fy_config_free(cfg);
}

/* ---- step counts and misuse ---------------------------------------------- */

static void fill(float *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
}

static void run_steps(const char *json, size_t steps)
{
    fy_status st = FY_OK;
    fy_scheduler *s = scheduler_from_json(json, &st);
    if (st != FY_OK) fail_msg("%s", fy_error_message());
    assert_int_equal(fy_scheduler_set_timesteps(s, steps), FY_OK);
    assert_int_equal(fy_scheduler_num_steps(s), steps);
    const float *sig = fy_scheduler_sigmas(s);
    assert_true(sig[0] <= 1.0f && sig[0] > 0.0f);
    for (size_t i = 0; i < steps; i++) {
        if (!(sig[i + 1] < sig[i])) fail_msg("%zu steps: sigma %zu (%g) !< sigma %zu (%g)", steps, i + 1,
                                             sig[i + 1], i, sig[i]);
        if (i > 0) assert_true(fy_scheduler_timesteps(s)[i] <= fy_scheduler_timesteps(s)[i - 1]);
    }
    assert_true(sig[steps] == 0.0f);

    enum { N = 257 };
    float x[N], v[N];
    fill(x, N, 1);
    for (size_t i = 0; i < steps; i++) {
        fill(v, N, (unsigned)i + 7);
        assert_int_equal(fy_scheduler_step_index(s), i);
        assert_int_equal(fy_scheduler_step(s, v, x, x, N), FY_OK);
        for (size_t j = 0; j < N; j++)
            if (!isfinite(x[j])) fail_msg("%zu steps: non-finite output at step %zu", steps, i);
    }
    assert_int_equal(fy_scheduler_step(s, v, x, x, N), FY_ERR_INVALID);
    fy_scheduler_free(s);
}

static const char EULER_JSON[] = "{\"_class_name\": \"FlowMatchEulerDiscreteScheduler\", \"shift\": 3.0}";

static void test_step_counts(void **state)
{
    (void)state;
    static const size_t counts[] = {1, 2, 3, 50, 1000};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        run_steps(UNIPC_JSON(""), counts[i]);
        run_steps(UNIPC_JSON(", \"solver_order\": 3"), counts[i]);
        run_steps(UNIPC_JSON(", \"solver_type\": \"bh1\", \"disable_corrector\": [0, 2]"), counts[i]);
        run_steps(EULER_JSON, counts[i]);
    }
}

static void test_misuse(void **state)
{
    (void)state;
    fy_status st = FY_OK;
    fy_scheduler *s = scheduler_from_json(UNIPC_JSON(""), &st);
    assert_int_equal(st, FY_OK);
    float a[4] = {0}, b[4] = {0};
    assert_int_equal(fy_scheduler_step(s, a, b, b, 4), FY_ERR_INVALID);
    assert_non_null(strstr(fy_error_message(), "set_timesteps"));
    assert_int_equal(fy_scheduler_set_timesteps(s, 0), FY_ERR_INVALID);
    assert_int_equal(fy_scheduler_set_timesteps(s, 4), FY_OK);
    assert_int_equal(fy_scheduler_step(s, a, b, b, 4), FY_OK);
    assert_int_equal(fy_scheduler_step(s, a, b, b, 3), FY_ERR_INVALID);
    assert_int_equal(fy_scheduler_step(s, NULL, b, b, 4), FY_ERR_INVALID);
    /* A new schedule or a reset accepts another latent size. */
    fy_scheduler_reset(s);
    assert_int_equal(fy_scheduler_step(s, a, b, b, 3), FY_OK);
    fy_scheduler_free(s);
    fy_scheduler_free(NULL);
}

/* out may alias the sample, and a reset run repeats the first bit for bit. */
static void test_in_place_and_reset(void **state)
{
    (void)state;
    fy_status st = FY_OK;
    fy_scheduler *s = scheduler_from_json(UNIPC_JSON(""), &st);
    assert_int_equal(st, FY_OK);
    enum { N = 1000, STEPS = 6 };
    static float x_in[N], x_out[N], v[STEPS][N], first[N];
    fill(x_in, N, 3);
    memcpy(x_out, x_in, sizeof x_in);
    for (int i = 0; i < STEPS; i++) fill(v[i], N, (unsigned)(100 + i));
    assert_int_equal(fy_scheduler_set_timesteps(s, STEPS), FY_OK);
    float tmp[N];
    for (int i = 0; i < STEPS; i++) {
        assert_int_equal(fy_scheduler_step(s, v[i], x_out, tmp, N), FY_OK);
        memcpy(x_out, tmp, sizeof tmp);
    }
    memcpy(first, x_out, sizeof first);
    fy_scheduler_reset(s);
    for (int i = 0; i < STEPS; i++) assert_int_equal(fy_scheduler_step(s, v[i], x_in, x_in, N), FY_OK);
    assert_memory_equal(first, x_in, sizeof first);
    fy_scheduler_free(s);
}

/* disable_corrector [1] skips UniC at step 2 only. */
static void test_disable_corrector(void **state)
{
    (void)state;
    fy_status st = FY_OK;
    fy_scheduler *a = scheduler_from_json(UNIPC_JSON(""), &st);
    assert_int_equal(st, FY_OK);
    fy_scheduler *b = scheduler_from_json(UNIPC_JSON(", \"disable_corrector\": [1]"), &st);
    assert_int_equal(st, FY_OK);
    enum { N = 64 };
    float xa[N], xb[N], v[N];
    fill(xa, N, 5);
    memcpy(xb, xa, sizeof xa);
    assert_int_equal(fy_scheduler_set_timesteps(a, 5), FY_OK);
    assert_int_equal(fy_scheduler_set_timesteps(b, 5), FY_OK);
    for (int i = 0; i < 3; i++) {
        fill(v, N, (unsigned)(40 + i));
        assert_int_equal(fy_scheduler_step(a, v, xa, xa, N), FY_OK);
        assert_int_equal(fy_scheduler_step(b, v, xb, xb, N), FY_OK);
        if (i < 2) assert_memory_equal(xa, xb, sizeof xa);
        else assert_memory_not_equal(xa, xb, sizeof xa);
    }
    fy_scheduler_free(a);
    fy_scheduler_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unipc_shift3),
        cmocka_unit_test(test_unipc_shift5),
        cmocka_unit_test(test_flowmatch_euler),
        cmocka_unit_test(test_model_config),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_step_counts),
        cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_in_place_and_reset),
        cmocka_unit_test(test_disable_corrector),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
