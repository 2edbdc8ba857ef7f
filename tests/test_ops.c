/* The CPU backend's op table against naive double-precision references,
 * thread-count independence (1 vs 2 threads give bitwise equal results), the
 * supports query and its one-line refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/dtype.h"
#include "backend/cpu/cpu_op_table.h"
#include "ferry/backend.h"
#include "ferry/ops.h"

#define TOL 1e-5

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static float frand(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static float *rand_buf(int64_t n)
{
    float *p = malloc((size_t)n * sizeof *p);
    assert_non_null(p);
    for (int64_t i = 0; i < n; i++) p[i] = frand();
    return p;
}

static float *zero_buf(int64_t n)
{
    float *p = calloc((size_t)n, sizeof *p);
    assert_non_null(p);
    return p;
}

static double *dbuf(int64_t n)
{
    double *p = calloc((size_t)n, sizeof *p);
    assert_non_null(p);
    return p;
}

/* The fixtures' measure: max|ours - ref| / max|ref|. */
static double rel_err(const float *ours, const double *ref, int64_t n)
{
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs(ours[i] - ref[i]);
        num = d > num ? d : num;
        den = fabs(ref[i]) > den ? fabs(ref[i]) : den;
    }
    return den > 0 ? num / den : num;
}

static void expect_close(const char *what, const float *ours, const double *ref, int64_t n)
{
    double e = rel_err(ours, ref, n);
    if (!(e <= TOL)) fail_msg("%s: relative error %.3g > %.1g", what, e, TOL);
}

static fy_backend *cpu_backend;

static int make_backend(void **state)
{
    (void)state;
    return fy_backend_create_cpu(&cpu_backend) == FY_OK ? 0 : -1;
}

static int free_backend(void **state)
{
    (void)state;
    fy_backend_free(cpu_backend);
    return 0;
}

static fy_ops *make_ctx(int threads)
{
    fy_ops *ops = NULL;
    fy_ops_config c = {.threads = threads, .gemm_dtype = FY_F32};
    assert_int_equal(fy_ops_create(cpu_backend, &c, &ops), FY_OK);
    return ops;
}

/* ---- GEMM ---------------------------------------------------------------- */

static void ref_linear(const float *x, const float *w, const float *b, double *y, int64_t M, int64_t K, int64_t N)
{
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = b ? b[n] : 0.0;
            for (int64_t k = 0; k < K; k++) s += (double)x[m * K + k] * w[n * K + k];
            y[m * N + n] = s;
        }
}

static void check_linear(int64_t M, int64_t K, int64_t N, int with_bias)
{
    fy_ops *ctx = make_ctx(2);
    float *x = rand_buf(M * K), *w = rand_buf(N * K), *b = with_bias ? rand_buf(N) : NULL;
    float *y = zero_buf(M * N);
    double *ref = dbuf(M * N);
    assert_int_equal(ctx->linear(ctx, fy_f32(x), (fy_weight){w, FY_F32, NULL, 0}, fy_f32(b), fy_f32(y), M, K, N),
                     FY_OK);
    ref_linear(x, w, b, ref, M, K, N);
    expect_close("linear", y, ref, M * N);
    free(x), free(w), free(b), free(y), free(ref);
    fy_ops_free(ctx);
}

static void test_linear(void **state)
{
    (void)state;
    check_linear(37, 53, 300, 1);  /* several column blocks, ragged last */
    check_linear(300, 19, 70, 1);  /* few column blocks: M is split */
    check_linear(1, 7, 5, 0);
    check_linear(129, 64, 129, 0);
}

static void check_linear_lowp(fy_dtype wt)
{
    const int64_t M = 45, K = 77, N = 261;
    fy_ops *ctx = make_ctx(2);
    float *x = rand_buf(M * K), *w = rand_buf(N * K), *b = rand_buf(N);
    uint16_t *wl = malloc((size_t)(N * K) * sizeof *wl);
    float *wc = zero_buf(N * K), *y_low = zero_buf(M * N), *y_ref = zero_buf(M * N);
    double *ref = dbuf(M * N);
    assert_int_equal(fy_convert(wl, wt, w, FY_F32, (size_t)(N * K)), FY_OK);
    assert_int_equal(fy_convert(wc, FY_F32, wl, wt, (size_t)(N * K)), FY_OK);
    assert_int_equal(ctx->linear(ctx, fy_f32(x), (fy_weight){wl, wt, NULL, 0}, fy_f32(b), fy_f32(y_low), M, K, N),
                     FY_OK);
    assert_int_equal(ctx->linear(ctx, fy_f32(x), (fy_weight){wc, FY_F32, NULL, 0}, fy_f32(b), fy_f32(y_ref), M, K, N),
                     FY_OK);
    assert_memory_equal(y_low, y_ref, (size_t)(M * N) * sizeof(float));
    ref_linear(x, wc, b, ref, M, K, N);
    expect_close("linear lowp", y_low, ref, M * N);
    free(x), free(w), free(b), free(wl), free(wc), free(y_low), free(y_ref), free(ref);
    fy_ops_free(ctx);
}

static void test_linear_lowp(void **state)
{
    (void)state;
    check_linear_lowp(FY_BF16);
    check_linear_lowp(FY_F16);
}

static void test_linear_bad_dtype(void **state)
{
    (void)state;
    fy_ops *ctx = make_ctx(1);
    float x[4] = {0}, y[4];
    int64_t w[4] = {0};
    assert_int_equal(ctx->linear(ctx, fy_f32(x), (fy_weight){w, FY_I64, NULL, 0}, FY_NO_VIEW, fy_f32(y), 1, 4, 1),
                     FY_ERR_UNSUPPORTED);
    fy_ops_free(ctx);
}

static void test_bmm(void **state)
{
    (void)state;
    const int64_t batch = 3, M = 300, N = 17, K = 29;
    fy_ops *ctx = make_ctx(2);
    float *a = rand_buf(batch * M * K), *b = rand_buf(batch * K * N), *c = zero_buf(batch * M * N);
    double *ref = dbuf(batch * M * N);
    for (int trans = 0; trans < 2; trans++) {
        assert_int_equal(ctx->bmm(ctx, fy_f32(a), fy_f32(b), fy_f32(c), batch, M, N, K, trans, 0.5f), FY_OK);
        for (int64_t i = 0; i < batch; i++)
            for (int64_t m = 0; m < M; m++)
                for (int64_t n = 0; n < N; n++) {
                    double s = 0;
                    for (int64_t k = 0; k < K; k++) {
                        float bv = trans ? b[i * K * N + n * K + k] : b[i * K * N + k * N + n];
                        s += (double)a[i * M * K + m * K + k] * bv;
                    }
                    ref[(i * M + m) * N + n] = 0.5 * s;
                }
        expect_close("bmm", c, ref, batch * M * N);
    }
    free(a), free(b), free(c), free(ref);
    fy_ops_free(ctx);
}

/* ---- Elementwise --------------------------------------------------------- */

static double gelu_ref(double x)
{
    return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
}

static double gelu_tanh_ref(double x)
{
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

static void test_elementwise(void **state)
{
    (void)state;
    const int64_t n = 40001; /* several chunks, ragged */
    fy_ops *ctx = make_ctx(2);
    float *a = rand_buf(n), *b = rand_buf(n), *out = zero_buf(n);
    double *ref = dbuf(n);
    for (int64_t i = 0; i < n; i++) a[i] *= 4.0f;

    ctx->add(ctx, fy_f32(a), fy_f32(b), fy_f32(out), n);
    for (int64_t i = 0; i < n; i++) ref[i] = (double)a[i] + b[i];
    expect_close("add", out, ref, n);
    ctx->mul(ctx, fy_f32(a), fy_f32(b), fy_f32(out), n);
    for (int64_t i = 0; i < n; i++) ref[i] = (double)a[i] * b[i];
    expect_close("mul", out, ref, n);
    ctx->scale(ctx, fy_f32(a), 0.37f, fy_f32(out), n);
    for (int64_t i = 0; i < n; i++) ref[i] = (double)a[i] * 0.37f;
    expect_close("scale", out, ref, n);
    memcpy(out, b, (size_t)n * sizeof *out);
    ctx->axpy(ctx, -1.5f, fy_f32(a), fy_f32(out), n);
    for (int64_t i = 0; i < n; i++) ref[i] = (double)b[i] - 1.5 * a[i];
    expect_close("axpy", out, ref, n);
    ctx->silu(ctx, fy_f32(a), fy_f32(out), n);
    for (int64_t i = 0; i < n; i++) ref[i] = a[i] / (1.0 + exp(-(double)a[i]));
    expect_close("silu", out, ref, n);
    ctx->gelu(ctx, fy_f32(a), fy_f32(out), n);
    for (int64_t i = 0; i < n; i++) ref[i] = gelu_ref(a[i]);
    expect_close("gelu", out, ref, n);
    ctx->gelu_tanh(ctx, fy_f32(a), fy_f32(out), n);
    for (int64_t i = 0; i < n; i++) ref[i] = gelu_tanh_ref(a[i]);
    expect_close("gelu_tanh", out, ref, n);
    ctx->relu(ctx, fy_f32(a), fy_f32(out), n);
    for (int64_t i = 0; i < n; i++) ref[i] = a[i] > 0 ? a[i] : 0.0;
    expect_close("relu", out, ref, n);
    ctx->gated_gelu(ctx, fy_f32(a), fy_f32(b), fy_f32(out), n);
    for (int64_t i = 0; i < n; i++) ref[i] = gelu_tanh_ref(a[i]) * b[i];
    expect_close("gated_gelu", out, ref, n);
    /* in place */
    memcpy(out, a, (size_t)n * sizeof *out);
    ctx->silu(ctx, fy_f32(out), fy_f32(out), n);
    for (int64_t i = 0; i < n; i++) ref[i] = a[i] / (1.0 + exp(-(double)a[i]));
    expect_close("silu in place", out, ref, n);
    memcpy(out, b, (size_t)n * sizeof *out); /* gated_gelu in place on its gate */
    ctx->gated_gelu(ctx, fy_f32(a), fy_f32(out), fy_f32(out), n);
    for (int64_t i = 0; i < n; i++) ref[i] = gelu_tanh_ref(a[i]) * b[i];
    expect_close("gated_gelu in place on h1", out, ref, n);

    free(a), free(b), free(out), free(ref);
    fy_ops_free(ctx);
}

static void test_gated_add(void **state)
{
    (void)state;
    const int64_t rows = 301, dim = 67, per = 100; /* 4 gate rows, last partial */
    fy_ops *ctx = make_ctx(2);
    float *x = rand_buf(rows * dim), *y = rand_buf(rows * dim), *g = rand_buf(4 * dim);
    double *ref = dbuf(rows * dim);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < dim; i++)
            ref[r * dim + i] = x[r * dim + i] + (double)y[r * dim + i] * g[(r / per) * dim + i];
    ctx->gated_add(ctx, fy_f32(x), fy_f32(y), fy_f32(g), rows, dim, per);
    expect_close("gated_add", x, ref, rows * dim);
    free(x), free(y), free(g), free(ref);
    fy_ops_free(ctx);
}

/* ---- Norms --------------------------------------------------------------- */

static void ref_layer_norm(const float *x, const float *w, const float *b, const float *scale, const float *shift,
                           double *out, int64_t rows, int64_t dim, int64_t per, double eps)
{
    for (int64_t r = 0; r < rows; r++) {
        double mean = 0, var = 0;
        for (int64_t i = 0; i < dim; i++) mean += x[r * dim + i];
        mean /= dim;
        for (int64_t i = 0; i < dim; i++) var += (x[r * dim + i] - mean) * (x[r * dim + i] - mean);
        var /= dim;
        for (int64_t i = 0; i < dim; i++) {
            double y = (x[r * dim + i] - mean) / sqrt(var + eps);
            if (w) y *= w[i];
            if (b) y += b[i];
            if (scale) y = y * (1.0 + scale[(r / per) * dim + i]) + shift[(r / per) * dim + i];
            out[r * dim + i] = y;
        }
    }
}

static void test_layer_norm(void **state)
{
    (void)state;
    const int64_t rows = 203, dim = 157;
    fy_ops *ctx = make_ctx(2);
    float *x = rand_buf(rows * dim), *w = rand_buf(dim), *b = rand_buf(dim), *out = zero_buf(rows * dim);
    float *sc = rand_buf(3 * dim), *sh = rand_buf(3 * dim);
    double *ref = dbuf(rows * dim);
    for (int64_t i = 0; i < rows * dim; i++) x[i] = x[i] * 3.0f + 0.5f;

    ctx->layer_norm(ctx, fy_f32(x), fy_f32(w), fy_f32(b), fy_f32(out), rows, dim, 1e-6f);
    ref_layer_norm(x, w, b, NULL, NULL, ref, rows, dim, 1, 1e-6);
    expect_close("layer_norm affine", out, ref, rows * dim);
    ctx->layer_norm(ctx, fy_f32(x), FY_NO_VIEW, FY_NO_VIEW, fy_f32(out), rows, dim, 1e-5f);
    ref_layer_norm(x, NULL, NULL, NULL, NULL, ref, rows, dim, 1, 1e-5);
    expect_close("layer_norm plain", out, ref, rows * dim);
    ctx->layer_norm_modulate(ctx, fy_f32(x), FY_NO_VIEW, FY_NO_VIEW, fy_f32(sc), fy_f32(sh), fy_f32(out), rows, dim, 70,
                             1e-6f);
    ref_layer_norm(x, NULL, NULL, sc, sh, ref, rows, dim, 70, 1e-6);
    expect_close("layer_norm modulate", out, ref, rows * dim);
    ctx->layer_norm_modulate(ctx, fy_f32(x), fy_f32(w), fy_f32(b), fy_f32(sc), fy_f32(sh), fy_f32(out), rows, dim, 70,
                             1e-6f);
    ref_layer_norm(x, w, b, sc, sh, ref, rows, dim, 70, 1e-6);
    expect_close("layer_norm affine modulate", out, ref, rows * dim);

    free(x), free(w), free(b), free(out), free(sc), free(sh), free(ref);
    fy_ops_free(ctx);
}

static void test_rms_norm(void **state)
{
    (void)state;
    const int64_t rows = 131, dim = 97;
    fy_ops *ctx = make_ctx(2);
    float *x = rand_buf(rows * dim), *w = rand_buf(dim), *out = zero_buf(rows * dim);
    double *ref = dbuf(rows * dim);
    for (int with_w = 0; with_w < 2; with_w++) {
        ctx->rms_norm(ctx, fy_f32(x), fy_f32(with_w ? w : NULL), fy_f32(out), rows, dim, 1e-6f);
        for (int64_t r = 0; r < rows; r++) {
            double ss = 0;
            for (int64_t i = 0; i < dim; i++) ss += (double)x[r * dim + i] * x[r * dim + i];
            double rs = 1.0 / sqrt(ss / dim + 1e-6);
            for (int64_t i = 0; i < dim; i++) ref[r * dim + i] = x[r * dim + i] * rs * (with_w ? w[i] : 1.0);
        }
        expect_close("rms_norm", out, ref, rows * dim);
    }
    free(x), free(w), free(out), free(ref);
    fy_ops_free(ctx);
}

static void test_channel_rms_norm(void **state)
{
    (void)state;
    const int64_t C = 13, N = 1001;
    fy_ops *ctx = make_ctx(2);
    float *x = rand_buf(C * N), *g = rand_buf(C), *b = rand_buf(C), *out = zero_buf(C * N);
    double *ref = dbuf(C * N);
    for (int64_t c = 0; c < C; c++) x[c * N + 5] = 0.0f; /* a zero column: eps guards it */
    for (int with_b = 0; with_b < 2; with_b++) {
        ctx->channel_rms_norm(ctx, fy_f32(x), fy_f32(g), fy_f32(with_b ? b : NULL), fy_f32(out), C, N, 1e-12f);
        for (int64_t n = 0; n < N; n++) {
            double ss = 0;
            for (int64_t c = 0; c < C; c++) ss += (double)x[c * N + n] * x[c * N + n];
            double norm = sqrt(ss) > 1e-12 ? sqrt(ss) : 1e-12;
            for (int64_t c = 0; c < C; c++)
                ref[c * N + n] = x[c * N + n] / norm * sqrt((double)C) * g[c] + (with_b ? b[c] : 0.0);
        }
        expect_close("channel_rms_norm", out, ref, C * N);
    }
    free(x), free(g), free(b), free(out), free(ref);
    fy_ops_free(ctx);
}

static void test_softmax(void **state)
{
    (void)state;
    const int64_t rows = 77, dim = 301;
    fy_ops *ctx = make_ctx(2);
    float *x = rand_buf(rows * dim), *out = zero_buf(rows * dim);
    double *ref = dbuf(rows * dim);
    for (int64_t i = 0; i < rows * dim; i++) x[i] *= 20.0f;
    ctx->softmax(ctx, fy_f32(x), fy_f32(out), rows, dim);
    for (int64_t r = 0; r < rows; r++) {
        double mx = -INFINITY, sum = 0;
        for (int64_t i = 0; i < dim; i++) mx = x[r * dim + i] > mx ? x[r * dim + i] : mx;
        for (int64_t i = 0; i < dim; i++) sum += exp(x[r * dim + i] - mx);
        for (int64_t i = 0; i < dim; i++) ref[r * dim + i] = exp(x[r * dim + i] - mx) / sum;
    }
    expect_close("softmax", out, ref, rows * dim);
    free(x), free(out), free(ref);
    fy_ops_free(ctx);
}

/* ---- Attention ----------------------------------------------------------- */

static void ref_attention(const float *q, const float *k, const float *v, double *out, int64_t B, int64_t H,
                          int64_t Lq, int64_t Lk, int64_t D, double scale, const float *bias,
                          const int64_t *mask)
{
    double *s = dbuf(Lk);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < Lq; i++) {
                int any = 0;
                for (int64_t j = 0; j < Lk; j++) any |= !mask || mask[b * Lk + j] != 0;
                double mx = -INFINITY;
                for (int64_t j = 0; j < Lk; j++) {
                    double dot = 0;
                    for (int64_t d = 0; d < D; d++)
                        dot += (double)q[((b * Lq + i) * H + h) * D + d] * k[((b * Lk + j) * H + h) * D + d];
                    s[j] = dot * scale + (bias ? bias[(h * Lq + i) * Lk + j] : 0.0);
                    if (!any) s[j] = 0.0;
                    else if (mask && mask[b * Lk + j] == 0) s[j] = -INFINITY;
                    mx = s[j] > mx ? s[j] : mx;
                }
                double sum = 0;
                for (int64_t j = 0; j < Lk; j++) sum += s[j] = exp(s[j] - mx);
                for (int64_t d = 0; d < D; d++) {
                    double acc = 0;
                    for (int64_t j = 0; j < Lk; j++) acc += s[j] * v[((b * Lk + j) * H + h) * D + d];
                    out[((b * Lq + i) * H + h) * D + d] = acc / sum;
                }
            }
    free(s);
}

static void check_attention(int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D, float scale, int with_bias,
                            int with_mask)
{
    fy_ops *ctx = make_ctx(2);
    float *q = rand_buf(B * Lq * H * D), *k = rand_buf(B * Lk * H * D), *v = rand_buf(B * Lk * H * D);
    float *bias = with_bias ? rand_buf(H * Lq * Lk) : NULL, *out = zero_buf(B * Lq * H * D);
    int64_t *mask = NULL;
    double *ref = dbuf(B * Lq * H * D);
    if (with_bias)
        for (int64_t i = 0; i < H * Lq * Lk; i++) bias[i] *= 5.0f;
    if (with_mask) {
        mask = calloc((size_t)(B * Lk), sizeof *mask);
        for (int64_t j = 0; j < Lk; j++) mask[j] = j < Lk - 7 && j != 3; /* item 0: a hole and a padded tail */
        for (int64_t b = 1; b < B; b++)
            for (int64_t j = 0; j < Lk; j++) mask[b * Lk + j] = (b == 1) ? 0 : (j % 3 != 0); /* item 1: all masked */
    }
    assert_int_equal(
        ctx->attention(ctx, fy_f32(q), fy_f32(k), fy_f32(v), fy_f32(out), B, H, Lq, Lk, D, scale, fy_f32(bias), mask),
        FY_OK);
    ref_attention(q, k, v, ref, B, H, Lq, Lk, D, scale, bias, mask);
    expect_close("attention", out, ref, B * Lq * H * D);
    free(q), free(k), free(v), free(bias), free(out), free(mask), free(ref);
    fy_ops_free(ctx);
}

static void test_attention(void **state)
{
    (void)state;
    check_attention(2, 3, 70, 300, 24, 1.0f / sqrtf(24.0f), 0, 0); /* Wan: scaled, several tiles */
    check_attention(3, 2, 17, 19, 8, 1.0f, 1, 1);                  /* T5: bias + mask, unscaled */
    check_attention(3, 4, 130, 513, 16, 0.3f, 1, 1);               /* mask across key tiles */
    check_attention(1, 1, 1, 1, 2, 1.0f, 0, 0);
}

/* ---- RoPE ---------------------------------------------------------------- */

static void test_rope(void **state)
{
    (void)state;
    const int64_t B = 2, L = 37, H = 3, D = 10;
    fy_ops *ctx = make_ctx(2);
    float *x = rand_buf(B * L * H * D), *orig = malloc((size_t)(B * L * H * D) * sizeof(float));
    float *ct = zero_buf(L * D / 2), *st = zero_buf(L * D / 2);
    double *ref = dbuf(B * L * H * D);
    memcpy(orig, x, (size_t)(B * L * H * D) * sizeof(float));
    for (int64_t l = 0; l < L; l++)
        for (int64_t i = 0; i < D / 2; i++) {
            double ang = l * pow(10000.0, -2.0 * i / D);
            ct[l * D / 2 + i] = (float)cos(ang);
            st[l * D / 2 + i] = (float)sin(ang);
        }
    ctx->rope(ctx, fy_f32(x), fy_f32(ct), fy_f32(st), B, L, H, D);
    for (int64_t b = 0; b < B; b++)
        for (int64_t l = 0; l < L; l++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t i = 0; i < D / 2; i++) {
                    const float *p = orig + ((b * L + l) * H + h) * D + 2 * i;
                    double c = ct[l * D / 2 + i], s = st[l * D / 2 + i];
                    double *r = ref + ((b * L + l) * H + h) * D + 2 * i;
                    r[0] = p[0] * c - p[1] * s;
                    r[1] = p[0] * s + p[1] * c;
                }
    expect_close("rope", x, ref, B * L * H * D);
    free(x), free(orig), free(ct), free(st), free(ref);
    fy_ops_free(ctx);
}

/* ---- Conv3d -------------------------------------------------------------- */

static void ref_conv3d(const float *x, const float *w, const float *b, double *y, int64_t batch,
                       const fy_conv3d_shape *s, int64_t to, int64_t ho, int64_t wo)
{
    for (int64_t n = 0; n < batch; n++)
        for (int64_t co = 0; co < s->c_out; co++)
            for (int64_t t = 0; t < to; t++)
                for (int64_t i = 0; i < ho; i++)
                    for (int64_t j = 0; j < wo; j++) {
                        double acc = b ? b[co] : 0.0;
                        for (int64_t ci = 0; ci < s->c_in; ci++)
                            for (int64_t dt = 0; dt < s->kt; dt++)
                                for (int64_t dh = 0; dh < s->kh; dh++)
                                    for (int64_t dw = 0; dw < s->kw; dw++) {
                                        int64_t ti = t * s->st - s->pad_t0 + dt, hi = i * s->sh - s->pad_h0 + dh,
                                                wi = j * s->sw - s->pad_w0 + dw;
                                        if (ti < 0 || ti >= s->t || hi < 0 || hi >= s->h || wi < 0 || wi >= s->w)
                                            continue;
                                        acc += (double)x[(((n * s->c_in + ci) * s->t + ti) * s->h + hi) * s->w + wi] *
                                               w[(((co * s->c_in + ci) * s->kt + dt) * s->kh + dh) * s->kw + dw];
                                    }
                        y[(((n * s->c_out + co) * to + t) * ho + i) * wo + j] = acc;
                    }
}

static void check_conv3d(const fy_conv3d_shape *s, int64_t batch, int with_bias)
{
    fy_ops *ctx = make_ctx(2);
    int64_t to, ho, wo;
    assert_int_equal(fy_conv3d_out_size(s, &to, &ho, &wo), FY_OK);
    int64_t nx = batch * s->c_in * s->t * s->h * s->w, ny = batch * s->c_out * to * ho * wo;
    float *x = rand_buf(nx), *w = rand_buf(s->c_out * s->c_in * s->kt * s->kh * s->kw);
    float *b = with_bias ? rand_buf(s->c_out) : NULL, *y = zero_buf(ny);
    double *ref = dbuf(ny);
    assert_int_equal(ctx->conv3d(ctx, fy_f32(x), fy_f32(w), fy_f32(b), fy_f32(y), batch, s), FY_OK);
    ref_conv3d(x, w, b, ref, batch, s, to, ho, wo);
    expect_close("conv3d", y, ref, ny);
    free(x), free(w), free(b), free(y), free(ref);
    fy_ops_free(ctx);
}

static void test_conv3d(void **state)
{
    (void)state;
    /* Wan's causal 3x3x3: time padding in front only. */
    fy_conv3d_shape causal = {.c_in = 3, .t = 5, .h = 7, .w = 9, .c_out = 4, .kt = 3, .kh = 3, .kw = 3,
                              .st = 1, .sh = 1, .sw = 1, .pad_t0 = 2, .pad_h0 = 1, .pad_h1 = 1, .pad_w0 = 1,
                              .pad_w1 = 1};
    check_conv3d(&causal, 2, 1);
    /* Downsampling: stride 2 in space, asymmetric padding (as ZeroPad2d(0,1,0,1)). */
    fy_conv3d_shape down = {.c_in = 5, .t = 3, .h = 8, .w = 11, .c_out = 6, .kt = 1, .kh = 3, .kw = 3,
                            .st = 1, .sh = 2, .sw = 2, .pad_h1 = 1, .pad_w1 = 1};
    check_conv3d(&down, 1, 1);
    /* Time downsampling: kernel (3,1,1) stride (2,1,1). */
    fy_conv3d_shape tdown = {.c_in = 4, .t = 7, .h = 3, .w = 5, .c_out = 3, .kt = 3, .kh = 1, .kw = 1,
                             .st = 2, .sh = 1, .sw = 1};
    check_conv3d(&tdown, 1, 0);
    /* Pointwise (1x1x1) takes the no-im2col path. */
    fy_conv3d_shape point = {.c_in = 7, .t = 2, .h = 6, .w = 5, .c_out = 9, .kt = 1, .kh = 1, .kw = 1,
                             .st = 1, .sh = 1, .sw = 1};
    check_conv3d(&point, 2, 1);
}

static void test_conv3d_bad_shape(void **state)
{
    (void)state;
    fy_conv3d_shape s = {.c_in = 1, .t = 1, .h = 2, .w = 2, .c_out = 1, .kt = 3, .kh = 3, .kw = 3,
                         .st = 1, .sh = 1, .sw = 1};
    int64_t a, b, c;
    assert_int_equal(fy_conv3d_out_size(&s, &a, &b, &c), FY_ERR_INVALID);
}

/* ---- Thread-count independence -------------------------------------------- */

/* A permute of a [2, 3, 4, 5] array against index arithmetic; bad perms refused. */
static void test_permute(void **state)
{
    (void)state;
    fy_ops *ctx = make_ctx(2);
    int64_t shape[4] = {2, 3, 4, 5};
    float src[120], dst[120];
    for (int i = 0; i < 120; i++) src[i] = (float)i;
    int perm[4] = {2, 0, 3, 1}; /* dst [4, 2, 5, 3] */
    assert_int_equal(ctx->permute(ctx, fy_f32(dst), fy_f32(src), 4, shape, perm), FY_OK);
    for (int c = 0; c < 4; c++)
        for (int a = 0; a < 2; a++)
            for (int d = 0; d < 5; d++)
                for (int b = 0; b < 3; b++)
                    assert_true(dst[((c * 2 + a) * 5 + d) * 3 + b] == src[((a * 3 + b) * 4 + c) * 5 + d]);
    int dup[4] = {0, 0, 1, 2};
    assert_int_equal(ctx->permute(ctx, fy_f32(dst), fy_f32(src), 4, shape, dup), FY_ERR_INVALID);
    assert_int_equal(ctx->permute(ctx, fy_f32(dst), fy_f32(src), 9, shape, perm), FY_ERR_INVALID);
    fy_ops_free(ctx);
}

static void test_threads_identical(void **state)
{
    (void)state;
    fy_ops *c1 = make_ctx(1), *c2 = make_ctx(2);
    assert_int_equal(fy_cpu_ctx_threads(fy_cpu_ops_ctx(c2)), 2);
    /* linear (f32 and bf16), M split and column blocks: the fine-tiled
     * kernel (the table's linear cuts large products into one tile per
     * thread, which may round differently) */
    fy_cpu_ctx *k1 = fy_cpu_ops_ctx(c1), *k2 = fy_cpu_ops_ctx(c2);
    const int64_t M = 333, K = 96, N = 300;
    float *x = rand_buf(M * K), *w = rand_buf(N * K), *b = rand_buf(N);
    float *y1 = zero_buf(M * N), *y2 = zero_buf(M * N);
    uint16_t *wl = malloc((size_t)(N * K) * sizeof *wl);
    assert_int_equal(fy_convert(wl, FY_BF16, w, FY_F32, (size_t)(N * K)), FY_OK);
    assert_int_equal(fy_cpu_linear(k1, x, w, b, y1, M, K, N), FY_OK);
    assert_int_equal(fy_cpu_linear(k2, x, w, b, y2, M, K, N), FY_OK);
    assert_memory_equal(y1, y2, (size_t)(M * N) * sizeof(float));
    assert_int_equal(fy_cpu_linear_lowp(k1, x, wl, FY_BF16, b, y1, M, K, 50), FY_OK);
    assert_int_equal(fy_cpu_linear_lowp(k2, x, wl, FY_BF16, b, y2, M, K, 50), FY_OK);
    assert_memory_equal(y1, y2, (size_t)(M * 50) * sizeof(float));
    /* attention */
    const int64_t B = 2, H = 2, L = 200, D = 16;
    float *q = rand_buf(B * L * H * D), *k = rand_buf(B * L * H * D), *v = rand_buf(B * L * H * D);
    float *o1 = zero_buf(B * L * H * D), *o2 = zero_buf(B * L * H * D);
    assert_int_equal(
        c1->attention(c1, fy_f32(q), fy_f32(k), fy_f32(v), fy_f32(o1), B, H, L, L, D, 0.25f, FY_NO_VIEW, NULL), FY_OK);
    assert_int_equal(
        c2->attention(c2, fy_f32(q), fy_f32(k), fy_f32(v), fy_f32(o2), B, H, L, L, D, 0.25f, FY_NO_VIEW, NULL), FY_OK);
    assert_memory_equal(o1, o2, (size_t)(B * L * H * D) * sizeof(float));
    /* norms and elementwise over many chunks */
    const int64_t n = 100003;
    float *a = rand_buf(n), *e1 = zero_buf(n), *e2 = zero_buf(n);
    c1->gelu(c1, fy_f32(a), fy_f32(e1), n);
    c2->gelu(c2, fy_f32(a), fy_f32(e2), n);
    assert_memory_equal(e1, e2, (size_t)n * sizeof(float));
    c1->layer_norm(c1, fy_f32(a), FY_NO_VIEW, FY_NO_VIEW, fy_f32(e1), 1000, 100, 1e-6f);
    c2->layer_norm(c2, fy_f32(a), FY_NO_VIEW, FY_NO_VIEW, fy_f32(e2), 1000, 100, 1e-6f);
    assert_memory_equal(e1, e2, (size_t)100000 * sizeof(float));
    c1->channel_rms_norm(c1, fy_f32(a), fy_f32(b), FY_NO_VIEW, fy_f32(e1), 10, 10000, 1e-12f);
    c2->channel_rms_norm(c2, fy_f32(a), fy_f32(b), FY_NO_VIEW, fy_f32(e2), 10, 10000, 1e-12f);
    assert_memory_equal(e1, e2, (size_t)100000 * sizeof(float));
    /* conv */
    fy_conv3d_shape s = {.c_in = 4, .t = 3, .h = 20, .w = 24, .c_out = 8, .kt = 3, .kh = 3, .kw = 3,
                         .st = 1, .sh = 1, .sw = 1, .pad_t0 = 2, .pad_h0 = 1, .pad_h1 = 1, .pad_w0 = 1, .pad_w1 = 1};
    assert_int_equal(c1->conv3d(c1, fy_f32(a), fy_f32(w), fy_f32(b), fy_f32(e1), 1, &s), FY_OK);
    assert_int_equal(c2->conv3d(c2, fy_f32(a), fy_f32(w), fy_f32(b), fy_f32(e2), 1, &s), FY_OK);
    assert_memory_equal(e1, e2, (size_t)(8 * 3 * 20 * 24) * sizeof(float));

    free(x), free(w), free(b), free(y1), free(y2), free(wl), free(q), free(k), free(v), free(o1), free(o2);
    free(a), free(e1), free(e2);
    fy_ops_free(c1);
    fy_ops_free(c2);
}

static void test_ctx(void **state)
{
    (void)state;
    fy_cpu_ctx *ctx = NULL;
    assert_int_equal(fy_cpu_ctx_create(-1, &ctx), FY_ERR_INVALID);
    assert_null(ctx);
    assert_int_equal(fy_cpu_ctx_create(0, &ctx), FY_OK);
    assert_true(fy_cpu_ctx_threads(ctx) >= 1);
    fy_cpu_ctx_free(ctx);
    fy_cpu_ctx_free(NULL);
}

/* A combination the backend lacks is refused at load in one line. */
static void test_supports(void **state)
{
    (void)state;
    assert_int_equal(fy_ops_require(cpu_backend, FY_OP_LINEAR, FY_F32, FY_BF16), FY_OK);
    assert_int_equal(fy_ops_require(cpu_backend, FY_OP_CONV3D, FY_F32, FY_I64), FY_ERR_UNSUPPORTED);
    assert_non_null(strstr(fy_error_message(), "conv3d"));
    assert_non_null(strstr(fy_error_message(), "i64"));
    assert_non_null(strstr(fy_error_message(), "cpu"));
    assert_int_equal(fy_ops_require(cpu_backend, FY_OP_SOFTMAX, FY_I32, FY_F32), FY_ERR_UNSUPPORTED);
    assert_null(strchr(fy_error_message(), '\n'));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ctx),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_linear_lowp),
        cmocka_unit_test(test_linear_bad_dtype),
        cmocka_unit_test(test_bmm),
        cmocka_unit_test(test_elementwise),
        cmocka_unit_test(test_gated_add),
        cmocka_unit_test(test_layer_norm),
        cmocka_unit_test(test_rms_norm),
        cmocka_unit_test(test_channel_rms_norm),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_conv3d),
        cmocka_unit_test(test_conv3d_bad_shape),
        cmocka_unit_test(test_permute),
        cmocka_unit_test(test_threads_identical),
        cmocka_unit_test(test_supports),
    };
    return cmocka_run_group_tests(tests, make_backend, free_backend);
}
