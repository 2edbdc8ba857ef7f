/* fp8 storage (--storage-dtype, --fp8-scale): quantisation against the dtype
 * tables, scale edge cases, the scaled linear against the plain one on the
 * dequantised weights, and the Wan DiT with fp8 blocks: every offload plan
 * gives the CPU's numbers bit for bit, the blocks are fp8-sized, and verify
 * passes only at its documented fp8 tolerance. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/dtype.h"
#include "ferry/engine.h"
#include "ferry/model.h"
#include "backend/cpu/cpu_ops.h"
#include "ferry/quant.h"
#include "ferry/safetensors.h"
#include "ferry/wan_dit.h"
#include "verify/verify.h"

#define MODEL_DIR FERRY_FIXTURES_DIR "/wan-tiny/model"
#define FIXTURE_DIR FERRY_FIXTURES_DIR "/wan-tiny/fixtures"

static uint32_t rng_state = 12345u;

static float frand(void) /* uniform in [-1, 1) */
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)(rng_state >> 8) / (float)(1u << 23) - 1.0f;
}

static float decode(fy_dtype t, uint8_t v)
{
    return t == FY_F8_E4M3 ? fy_e4m3_to_f32(v) : fy_e5m2_to_f32(v);
}

static uint8_t encode(fy_dtype t, float f)
{
    return t == FY_F8_E4M3 ? fy_f32_to_e4m3(f) : fy_f32_to_e5m2(f);
}

static void test_tables(void **state)
{
    (void)state;
    static const fy_dtype types[2] = {FY_F8_E4M3, FY_F8_E5M2};
    for (int k = 0; k < 2; k++) {
        const float *t = fy_fp8_table(types[k]);
        assert_non_null(t);
        for (int v = 0; v < 256; v++) {
            float want = decode(types[k], (uint8_t)v);
            if (isnan(want)) assert_true(isnan(t[v]));
            else assert_memory_equal(&t[v], &want, sizeof want);
        }
    }
    assert_null(fy_fp8_table(FY_BF16));
    assert_true(fy_fp8_max(FY_F8_E4M3) == 448.0f && fy_fp8_max(FY_F8_E5M2) == 57344.0f);
}

/* Quantise rows x cols and check every code, scale and dequantised value
 * against the scalar conversions. */
static void check_quantize(fy_dtype fp8, fy_fp8_scale mode, const float *w, int64_t rows, int64_t cols)
{
    uint8_t *q = malloc((size_t)(rows * cols));
    float *scale = malloc((size_t)(rows + 1) * sizeof *scale);
    float *back = malloc((size_t)(rows * cols) * sizeof *back);
    assert_int_equal(fy_fp8_quantize(q, scale, fp8, mode, w, FY_F32, rows, cols, "test"), FY_OK);
    fy_fp8_dequantize_rows(back, q, fp8, mode == FY_FP8_SCALE_NONE ? NULL : scale, mode == FY_FP8_SCALE_ROW, 0,
                           rows, cols);
    float tensor_amax = 0;
    for (int64_t i = 0; i < rows * cols; i++) tensor_amax = fmaxf(tensor_amax, fabsf(w[i]));
    for (int64_t r = 0; r < rows; r++) {
        float amax = 0;
        for (int64_t c = 0; c < cols; c++) amax = fmaxf(amax, fabsf(w[r * cols + c]));
        if (mode == FY_FP8_SCALE_TENSOR) amax = tensor_amax;
        float s = 1.0f;
        if (mode != FY_FP8_SCALE_NONE) {
            s = amax == 0 ? 1.0f : (float)((double)amax / (double)fy_fp8_max(fp8));
            if (s < FLT_MIN) s = FLT_MIN;
            assert_true(scale[mode == FY_FP8_SCALE_ROW ? r : 0] == s);
        }
        for (int64_t c = 0; c < cols; c++) {
            uint8_t want = encode(fp8, s == 1.0f ? w[r * cols + c] : w[r * cols + c] / s);
            assert_int_equal(q[r * cols + c], want);
            float v = decode(fp8, want) * (mode == FY_FP8_SCALE_NONE ? 1.0f : s);
            assert_memory_equal(&back[r * cols + c], &v, sizeof v);
        }
    }
    free(q);
    free(scale);
    free(back);
}

static void test_quantize_modes(void **state)
{
    (void)state;
    enum { R = 7, C = 33 };
    float w[R * C];
    for (int i = 0; i < R * C; i++) w[i] = frand() * (float)(1 + i % 5) * 0.02f;
    for (int r = 0; r < C; r++) w[2 * C + r] = 0.0f;     /* an all-zero row: scale 1 */
    w[3 * C + 5] = 448.0f;                               /* amax at e4m3's max: scale 1 */
    static const fy_dtype types[2] = {FY_F8_E4M3, FY_F8_E5M2};
    static const fy_fp8_scale modes[3] = {FY_FP8_SCALE_ROW, FY_FP8_SCALE_TENSOR, FY_FP8_SCALE_NONE};
    for (int k = 0; k < 2; k++)
        for (int m = 0; m < 3; m++) check_quantize(types[k], modes[m], w, R, C);
}

static void test_quantize_edges(void **state)
{
    (void)state;
    uint8_t q[4];
    float s[2] = {0};
    /* amax at the format's max: scale exactly 1, the max code */
    float at_max[4] = {448.0f, -448.0f, 1.0f, 0.0f};
    assert_int_equal(fy_fp8_quantize(q, s, FY_F8_E4M3, FY_FP8_SCALE_TENSOR, at_max, FY_F32, 1, 4, "w"), FY_OK);
    assert_true(s[0] == 1.0f);
    assert_int_equal(q[0], 0x7E);
    assert_int_equal(q[1], 0xFE);
    /* a scale that would underflow f32's normals is raised to FLT_MIN */
    float tiny[2] = {1e-44f, 0.0f};
    assert_int_equal(fy_fp8_quantize(q, s, FY_F8_E4M3, FY_FP8_SCALE_ROW, tiny, FY_F32, 1, 2, "w"), FY_OK);
    assert_true(s[0] == FLT_MIN);
    /* all zero: scale 1, codes 0 */
    float zero[4] = {0};
    assert_int_equal(fy_fp8_quantize(q, s, FY_F8_E5M2, FY_FP8_SCALE_ROW, zero, FY_F32, 2, 2, "w"), FY_OK);
    assert_true(s[0] == 1.0f && s[1] == 1.0f);
    assert_int_equal(q[0] | q[1] | q[2] | q[3], 0);
    /* NaN and infinity are refused with the weight's name */
    float bad[2] = {1.0f, NAN};
    assert_int_equal(fy_fp8_quantize(q, s, FY_F8_E4M3, FY_FP8_SCALE_ROW, bad, FY_F32, 1, 2, "blocks.0 weight 3"),
                     FY_ERR_FORMAT);
    assert_non_null(strstr(fy_error_message(), "blocks.0 weight 3"));
    bad[1] = INFINITY;
    assert_int_equal(fy_fp8_quantize(q, s, FY_F8_E5M2, FY_FP8_SCALE_TENSOR, bad, FY_F32, 1, 2, "w"), FY_ERR_FORMAT);
    /* without a scale, a weight beyond the format is an error, not a NaN */
    float big[2] = {1000.0f, 1.0f};
    assert_int_equal(fy_fp8_quantize(q, NULL, FY_F8_E4M3, FY_FP8_SCALE_NONE, big, FY_F32, 1, 2, "w"), FY_ERR_FORMAT);
    assert_int_equal(fy_fp8_quantize(q, NULL, FY_F8_E5M2, FY_FP8_SCALE_NONE, big, FY_F32, 1, 2, "w"), FY_OK);
    /* bf16 sources go through the same path */
    uint16_t b16[2] = {fy_f32_to_bf16(0.5f), fy_f32_to_bf16(-0.25f)};
    assert_int_equal(fy_fp8_quantize(q, s, FY_F8_E4M3, FY_FP8_SCALE_TENSOR, b16, FY_BF16, 1, 2, "w"), FY_OK);
    assert_true(s[0] == (float)(0.5 / 448.0));
    assert_int_equal(fy_fp8_quantize(q, s, FY_BF16, FY_FP8_SCALE_ROW, b16, FY_BF16, 1, 2, "w"), FY_ERR_INVALID);
}

/* The scaled linear equals fy_cpu_linear on the dequantised weights. */
static void test_linear_scaled(void **state)
{
    (void)state;
    enum { M = 70, K = 48, N = 300 };
    float *x = malloc(M * K * sizeof *x), *w = malloc(N * K * sizeof *w), *b = malloc(N * sizeof *b);
    float *wd = malloc(N * K * sizeof *wd), *y1 = malloc(M * N * sizeof *y1), *y2 = malloc(M * N * sizeof *y2);
    uint8_t *q = malloc(N * K);
    float scale[N];
    for (int i = 0; i < M * K; i++) x[i] = frand();
    for (int i = 0; i < N * K; i++) w[i] = frand() * 0.05f;
    for (int i = 0; i < N; i++) b[i] = frand();
    fy_cpu_ctx *ctx = NULL;
    assert_int_equal(fy_cpu_ctx_create(2, &ctx), FY_OK);
    static const fy_dtype types[2] = {FY_F8_E4M3, FY_F8_E5M2};
    static const fy_fp8_scale modes[3] = {FY_FP8_SCALE_ROW, FY_FP8_SCALE_TENSOR, FY_FP8_SCALE_NONE};
    for (int k = 0; k < 2; k++)
        for (int m = 0; m < 3; m++) {
            const float *sc = modes[m] == FY_FP8_SCALE_NONE ? NULL : scale;
            int rows = modes[m] == FY_FP8_SCALE_ROW;
            assert_int_equal(fy_fp8_quantize(q, scale, types[k], modes[m], w, FY_F32, N, K, "w"), FY_OK);
            fy_fp8_dequantize_rows(wd, q, types[k], sc, rows, 0, N, K);
            assert_int_equal(fy_cpu_linear(ctx, x, wd, b, y1, M, K, N), FY_OK);
            assert_int_equal(fy_cpu_linear_scaled(ctx, x, q, types[k], sc, rows, b, y2, M, K, N), FY_OK);
            assert_memory_equal(y1, y2, M * N * sizeof *y1);
        }
    fy_cpu_ctx_free(ctx);
    free(x), free(w), free(b), free(wd), free(y1), free(y2), free(q);
}

/* ---- the Wan DiT with fp8 blocks ----------------------------------------- */

typedef struct dit_run {
    float *out;
    size_t n;
    uint64_t block_bytes, bound, uploaded;
} dit_run;

static void load_f32(const fy_st_file *f, const char *name, fy_tensor *out)
{
    fy_tensor view;
    assert_int_equal(fy_st_view(f, name, &view), FY_OK);
    assert_int_equal(fy_tensor_to_f32(&view, out), FY_OK);
}

/* Two forwards (a step after the first) of the fixture's inputs under o;
 * max_memory[0] = 1 asks for exactly the plan's bound as the budget. */
static dit_run run_dit(fy_run_options o)
{
    dit_run r = {0};
    fy_model *model = NULL;
    fy_st_file *f = NULL;
    assert_int_equal(fy_model_open(MODEL_DIR, &model), FY_OK);
    assert_int_equal(fy_st_open(FIXTURE_DIR "/transformer.safetensors", &f), FY_OK);
    fy_tensor x, t, text;
    load_f32(f, "hidden_states", &x);
    load_f32(f, "timestep", &t);
    load_f32(f, "encoder_hidden_states", &text);
    fy_wan_dit_shape s = {x.shape[0], x.shape[2], x.shape[3], x.shape[4], text.shape[1], 0, 0};
    bool exact_budget = o.max_memory[0] == 1;
    fy_engine *e = NULL;
    fy_wan_dit *m = NULL;
    for (int pass = 0; pass < 1 + exact_budget; pass++) {
        if (e) {
            fy_plan p;
            assert_int_equal(fy_engine_evaluate_plan(e, &o, &p), FY_OK);
            o.max_memory[0] = p.device_bound;
            fy_wan_dit_free(m);
            fy_engine_free(e);
        }
        if (exact_budget && pass == 0) o.max_memory[0] = 0;
        assert_int_equal(fy_engine_create(&o, &e), FY_OK);
        assert_int_equal(fy_wan_dit_load(fy_model_component(model, "transformer"), e, &m), FY_OK);
        assert_int_equal(fy_engine_reserve(e, fy_wan_dit_activation_bytes(m, &s) +
                                                  fy_wan_dit_context_bytes(m, s.batch, s.text_len)), FY_OK);
    }
    assert_int_equal(fy_wan_dit_set_threads(m, 2), FY_OK);
    fy_status st = fy_engine_prepare(e);
    if (st != FY_OK) fail_msg("prepare: %s", fy_error_message());
    r.n = (size_t)(fy_tensor_numel(&x));
    r.out = calloc(r.n, sizeof *r.out);
    for (int i = 0; i < 2; i++)
        assert_int_equal(fy_wan_dit_forward(m, &s, x.data, t.data, text.data, NULL, r.out), FY_OK);
    assert_int_equal(fy_engine_finish(e), FY_OK);
    fy_group_info gi;
    for (int g = 0; g < fy_engine_group_count(e); g++) {
        assert_int_equal(fy_engine_group_info(e, g, &gi), FY_OK);
        if (gi.kind == FY_GROUP_BLOCK) r.block_bytes = gi.bytes;
    }
    r.bound = fy_engine_plan(e)->device_bound;
    r.uploaded = fy_engine_stats_get(e)->bytes_uploaded;
    fy_wan_dit_free(m);
    fy_engine_free(e);
    fy_tensor_free(&x);
    fy_tensor_free(&t);
    fy_tensor_free(&text);
    fy_st_close(f);
    fy_model_free(model);
    return r;
}

static fy_run_options fp8_options(fy_dtype storage, fy_fp8_scale scale)
{
    fy_run_options o;
    fy_run_options_init(&o);
    o.storage_dtype = storage;
    o.fp8_scale = scale;
    o.threads = 2;
    return o;
}

static void test_dit_plans_bit_identical(void **state)
{
    (void)state;
    fy_run_options o = fp8_options(FY_F8_E4M3, FY_FP8_SCALE_ROW);
    dit_run cpu = run_dit(o);
    dit_run full = run_dit(fp8_options(FY_DTYPE_COUNT, FY_FP8_SCALE_ROW));
    assert_true(cpu.block_bytes < full.block_bytes / 2); /* the tiny model is f32: about a quarter */
    assert_memory_not_equal(cpu.out, full.out, cpu.n * sizeof(float));
    struct { fy_offload_policy p; int per_group; bool stream; int depth; int resident; } plans[] = {
        {FY_OFFLOAD_NONE, 1, false, 1, -1},     {FY_OFFLOAD_MODEL, 1, false, 1, -1},
        {FY_OFFLOAD_SEQUENTIAL, 1, false, 1, -1}, {FY_OFFLOAD_GROUP, 2, false, 1, -1},
        {FY_OFFLOAD_GROUP, 1, true, 1, -1},     {FY_OFFLOAD_LAYERWISE, 1, false, 1, -1},
        {FY_OFFLOAD_LAYERWISE, 1, false, 2, 1},
    };
    for (size_t i = 0; i < sizeof plans / sizeof plans[0]; i++) {
        fy_run_options e = o;
        e.device = FY_DEVICE_EMU;
        e.offload = plans[i].p;
        e.num_blocks_per_group = plans[i].per_group;
        e.use_stream = plans[i].stream;
        e.prefetch_depth = plans[i].depth;
        e.resident_blocks = plans[i].resident;
        e.max_memory[0] = 1; /* exactly the plan's bound */
        for (int low = 0; low < 2; low++) {
            e.low_cpu_mem_usage = low && plans[i].p == FY_OFFLOAD_LAYERWISE;
            dit_run r = run_dit(e);
            assert_int_equal(r.block_bytes, cpu.block_bytes);
            if (memcmp(r.out, cpu.out, cpu.n * sizeof(float)) != 0) fail_msg("plan %zu differs from the CPU", i);
            free(r.out);
        }
    }
    free(cpu.out);
    free(full.out);
}

static void test_verify_tolerance(void **state)
{
    (void)state;
    fy_run_options o = fp8_options(FY_F8_E4M3, FY_FP8_SCALE_ROW);
    assert_int_equal(fy_verify_run(MODEL_DIR, FIXTURE_DIR, "transformer", &o, NULL), FY_OK);
    o = fp8_options(FY_F8_E5M2, FY_FP8_SCALE_NONE);
    assert_int_equal(fy_verify_run(MODEL_DIR, FIXTURE_DIR, "transformer", &o, NULL), FY_OK);
    assert_int_not_equal(fy_verify_run(MODEL_DIR, FIXTURE_DIR, "pipeline", &o, NULL), FY_OK);
    assert_non_null(strstr(fy_error_message(), "--storage-dtype"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables),
        cmocka_unit_test(test_quantize_modes),
        cmocka_unit_test(test_quantize_edges),
        cmocka_unit_test(test_linear_scaled),
        cmocka_unit_test(test_dit_plans_bit_identical),
        cmocka_unit_test(test_verify_tolerance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
