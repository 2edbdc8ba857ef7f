/* Elementwise ops, rope, norms and softmax: each fy_cuda_X against fy_cpu_X
 * on the same random inputs. These ops accumulate in f32 in both arithmetic
 * modes, so their tolerances are fixed rather than g->tol. Sizes cover a
 * single element, odd lengths, rows not a multiple of a warp or shorter than
 * a block, Wan's [2 x 2048 tokens, 1536], and in-place calls. */
#include "cuda_ops_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL_EW 1e-5
#define TOL_NORM 1e-4

static float *up(const float *h, int64_t n)
{
    return dev_upload(h, (size_t)n * sizeof(float));
}

/* NULL stays NULL (an op's "no weight"). */
static float *up_opt(const float *h, int64_t n)
{
    return h ? up(h, n) : NULL;
}

static float *host_floats(int64_t n)
{
    float *h = malloc((size_t)(n ? n : 1) * sizeof *h);
    if (!h) {
        fprintf(stderr, "cuda ops check: out of host memory\n");
        exit(1);
    }
    return h;
}

static float *host_copy(const float *h, int64_t n)
{
    return memcpy(host_floats(n), h, (size_t)n * sizeof *h);
}

/* Downloads the device result and compares it with ref. */
static void compare(gpu_check *g, const char *name, fy_status st, const float *dev, const float *ref,
                    int64_t n, double tol)
{
    float *ours = dev_download(g, dev, (size_t)n);
    expect_close(g, name, st, ours, ref, (size_t)n, tol);
    free(ours);
}

/* ---- Elementwise ---------------------------------------------------------- */

typedef void (*cpu_unary_fn)(fy_cpu_ctx *, const float *, float *, int64_t);
typedef fy_status (*gpu_unary_fn)(fy_cuda_ops *, const float *, float *, int64_t);
typedef void (*cpu_binary_fn)(fy_cpu_ctx *, const float *, const float *, float *, int64_t);
typedef fy_status (*gpu_binary_fn)(fy_cuda_ops *, const float *, const float *, float *, int64_t);

typedef struct unary_op {
    const char *name;
    cpu_unary_fn cpu;
    gpu_unary_fn gpu;
} unary_op;

typedef struct binary_op {
    const char *name;
    cpu_binary_fn cpu;
    gpu_binary_fn gpu;
} binary_op;

static const unary_op unary_ops[] = {
    {"silu", fy_cpu_silu, fy_cuda_silu},
    {"gelu", fy_cpu_gelu, fy_cuda_gelu},
    {"gelu_tanh", fy_cpu_gelu_tanh, fy_cuda_gelu_tanh},
    {"relu", fy_cpu_relu, fy_cuda_relu},
};

/* In place means out == h0 (the CPU's gated_gelu writes gelu(h0) over out
 * before multiplying by h1, so out == h1 is not a reference there). */
static const binary_op binary_ops[] = {
    {"add", fy_cpu_add, fy_cuda_add},
    {"mul", fy_cpu_mul, fy_cuda_mul},
    {"gated_gelu", fy_cpu_gated_gelu, fy_cuda_gated_gelu},
};

static void check_unary(gpu_check *g, const unary_op *op, int64_t n, int in_place)
{
    char name[96];
    snprintf(name, sizeof name, "%s n=%lld%s", op->name, (long long)n, in_place ? " in place" : "");
    float *x = rand_floats(g, (size_t)n, -6.0f, 6.0f);
    float *ref = host_floats(n);
    op->cpu(g->cpu, x, ref, n);
    float *dx = up(x, n);
    float *dout = in_place ? dx : dev_alloc((size_t)n * sizeof(float));
    fy_status st = op->gpu(g->ops, dx, dout, n);
    compare(g, name, st, dout, ref, n, TOL_EW);
    if (!in_place) dev_free(dout);
    dev_free(dx);
    free(ref);
    free(x);
}

static void check_binary(gpu_check *g, const binary_op *op, int64_t n, int in_place)
{
    char name[96];
    snprintf(name, sizeof name, "%s n=%lld%s", op->name, (long long)n, in_place ? " in place" : "");
    float *a = rand_floats(g, (size_t)n, -6.0f, 6.0f);
    float *b = rand_floats(g, (size_t)n, -2.0f, 2.0f);
    float *ref = host_floats(n);
    op->cpu(g->cpu, a, b, ref, n);
    float *da = up(a, n), *db = up(b, n);
    float *dout = in_place ? da : dev_alloc((size_t)n * sizeof(float));
    fy_status st = op->gpu(g->ops, da, db, dout, n);
    compare(g, name, st, dout, ref, n, TOL_EW);
    if (!in_place) dev_free(dout);
    dev_free(db);
    dev_free(da);
    free(ref);
    free(b);
    free(a);
}

static void check_scale_axpy(gpu_check *g, int64_t n)
{
    char name[96];
    float *x = rand_floats(g, (size_t)n, -3.0f, 3.0f);
    float *y = rand_floats(g, (size_t)n, -3.0f, 3.0f);
    float *ref = host_floats(n);
    float *dx = up(x, n), *dy = up(y, n);
    float *dout = dev_alloc((size_t)n * sizeof(float));

    fy_cpu_scale(g->cpu, x, -0.37f, ref, n);
    snprintf(name, sizeof name, "scale n=%lld", (long long)n);
    compare(g, name, fy_cuda_scale(g->ops, dx, -0.37f, dout, n), dout, ref, n, TOL_EW);
    float *dtmp = up(x, n);
    snprintf(name, sizeof name, "scale n=%lld in place", (long long)n);
    compare(g, name, fy_cuda_scale(g->ops, dtmp, -0.37f, dtmp, n), dtmp, ref, n, TOL_EW);
    dev_free(dtmp);

    float *y_ref = host_copy(y, n);
    fy_cpu_axpy(g->cpu, 1.7f, x, y_ref, n);
    snprintf(name, sizeof name, "axpy n=%lld", (long long)n);
    compare(g, name, fy_cuda_axpy(g->ops, 1.7f, dx, dy, n), dy, y_ref, n, TOL_EW);

    free(y_ref);
    dev_free(dout);
    dev_free(dy);
    dev_free(dx);
    free(ref);
    free(y);
    free(x);
}

/* A zero-length call launches nothing and succeeds. */
static void check_empty(gpu_check *g)
{
    expect_close(g, "add n=0", fy_cuda_add(g->ops, NULL, NULL, NULL, 0), NULL, NULL, 0, TOL_EW);
    expect_close(g, "silu n=0", fy_cuda_silu(g->ops, NULL, NULL, 0), NULL, NULL, 0, TOL_EW);
    expect_close(g, "layer_norm rows=0", fy_cuda_layer_norm(g->ops, NULL, NULL, NULL, NULL, 0, 64, 1e-5f),
                 NULL, NULL, 0, TOL_NORM);
    expect_close(g, "softmax rows=0", fy_cuda_softmax(g->ops, NULL, NULL, 0, 64), NULL, NULL, 0, TOL_NORM);
}

/* gate [rows / rows_per_gate, dim] (rows a multiple of rows_per_gate). */
static void check_gated_add(gpu_check *g, int64_t rows, int64_t dim, int64_t rows_per_gate)
{
    char name[96];
    snprintf(name, sizeof name, "gated_add %lldx%lld per %lld", (long long)rows, (long long)dim,
             (long long)rows_per_gate);
    int64_t n = rows * dim, ng = rows / rows_per_gate * dim;
    float *x = rand_floats(g, (size_t)n, -3.0f, 3.0f);
    float *y = rand_floats(g, (size_t)n, -3.0f, 3.0f);
    float *gate = rand_floats(g, (size_t)ng, -1.0f, 1.0f);
    float *dx = up(x, n), *dy = up(y, n), *dgate = up(gate, ng);
    fy_cpu_gated_add(g->cpu, x, y, gate, rows, dim, rows_per_gate);
    fy_status st = fy_cuda_gated_add(g->ops, dx, dy, dgate, rows, dim, rows_per_gate);
    compare(g, name, st, dx, x, n, TOL_EW);
    dev_free(dgate);
    dev_free(dy);
    dev_free(dx);
    free(gate);
    free(y);
    free(x);
}

/* cos/sin [L, D/2] of random angles, as the tables hold. */
static void check_rope(gpu_check *g, int64_t B, int64_t L, int64_t H, int64_t D)
{
    char name[96];
    snprintf(name, sizeof name, "rope B=%lld L=%lld H=%lld D=%lld", (long long)B, (long long)L,
             (long long)H, (long long)D);
    int64_t n = B * L * H * D, nt = L * (D / 2);
    float *x = rand_floats(g, (size_t)n, -3.0f, 3.0f);
    float *angle = rand_floats(g, (size_t)nt, -10.0f, 10.0f);
    float *cos_t = host_floats(nt), *sin_t = host_floats(nt);
    for (int64_t i = 0; i < nt; i++) {
        cos_t[i] = cosf(angle[i]);
        sin_t[i] = sinf(angle[i]);
    }
    float *dx = up(x, n), *dcos = up(cos_t, nt), *dsin = up(sin_t, nt);
    fy_cpu_rope(g->cpu, x, cos_t, sin_t, B, L, H, D);
    fy_status st = fy_cuda_rope(g->ops, dx, dcos, dsin, B, L, H, D);
    compare(g, name, st, dx, x, n, TOL_EW);
    dev_free(dsin);
    dev_free(dcos);
    dev_free(dx);
    free(sin_t);
    free(cos_t);
    free(angle);
    free(x);
}

void check_pointwise(gpu_check *g)
{
    const int64_t sizes[] = {1, 1000003};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        for (size_t i = 0; i < sizeof unary_ops / sizeof *unary_ops; i++)
            check_unary(g, &unary_ops[i], sizes[s], 0);
        for (size_t i = 0; i < sizeof binary_ops / sizeof *binary_ops; i++)
            check_binary(g, &binary_ops[i], sizes[s], 0);
        check_scale_axpy(g, sizes[s]);
    }
    for (size_t i = 0; i < sizeof unary_ops / sizeof *unary_ops; i++)
        check_unary(g, &unary_ops[i], 1000003, 1);
    for (size_t i = 0; i < sizeof binary_ops / sizeof *binary_ops; i++)
        check_binary(g, &binary_ops[i], 1000003, 1);
    check_empty(g);
    check_gated_add(g, 74, 1000, 37);
    check_gated_add(g, 33, 33, 1);
    check_gated_add(g, 4096, 1536, 2048);
    check_rope(g, 2, 37, 3, 128);
    check_rope(g, 1, 1, 1, 2);
    /* The models' rope shapes: the tiny DiT (2 heads of 16), Wan2.1 1.3B
     * (12 of 128) and 14B (40 of 128) on a CFG pair. */
    check_rope(g, 2, 60, 2, 16);
    check_rope(g, 2, 1560, 12, 128);
    check_rope(g, 2, 390, 40, 128);
    check_gated_add(g, 2 * 1560, 5120, 1560);
}

/* ---- Norms and softmax ------------------------------------------------------ */

typedef struct norm_case {
    int64_t rows, dim;
    int affine;   /* weight (and bias) given, else NULL */
    int in_place; /* out == x */
} norm_case;

static const norm_case norm_cases[] = {
    {5, 1, 1, 0},       {7, 33, 1, 0},      {100, 1000, 1, 0}, {100, 1000, 0, 0},
    {33, 33, 1, 1},     {64, 5120, 1, 0},   {4096, 1536, 1, 0}, {4096, 1536, 0, 1},
};

static void norm_name(char *name, size_t size, const char *op, const norm_case *c)
{
    snprintf(name, size, "%s %lldx%lld%s%s", op, (long long)c->rows, (long long)c->dim,
             c->affine ? "" : " no affine", c->in_place ? " in place" : "");
}

static void check_layer_norm(gpu_check *g, const norm_case *c)
{
    char name[96];
    norm_name(name, sizeof name, "layer_norm", c);
    int64_t n = c->rows * c->dim;
    /* An offset mean, so a one-pass variance would show. */
    float *x = rand_floats(g, (size_t)n, -2.0f, 4.0f);
    float *w = c->affine ? rand_floats(g, (size_t)c->dim, 0.5f, 1.5f) : NULL;
    float *b = c->affine ? rand_floats(g, (size_t)c->dim, -0.5f, 0.5f) : NULL;
    float *ref = host_floats(n);
    fy_cpu_layer_norm(g->cpu, x, w, b, ref, c->rows, c->dim, 1e-5f);
    float *dx = up(x, n), *dw = up_opt(w, c->dim), *db = up_opt(b, c->dim);
    float *dout = c->in_place ? dx : dev_alloc((size_t)n * sizeof(float));
    fy_status st = fy_cuda_layer_norm(g->ops, dx, dw, db, dout, c->rows, c->dim, 1e-5f);
    compare(g, name, st, dout, ref, n, TOL_NORM);
    if (!c->in_place) dev_free(dout);
    dev_free(db);
    dev_free(dw);
    dev_free(dx);
    free(ref);
    free(b);
    free(w);
    free(x);
}

/* scale/shift [rows / rows_per_mod, dim]. */
static void check_layer_norm_modulate(gpu_check *g, const norm_case *c, int64_t rows_per_mod)
{
    char name[96], op[48];
    snprintf(op, sizeof op, "ln_modulate per %lld", (long long)rows_per_mod);
    norm_name(name, sizeof name, op, c);
    int64_t n = c->rows * c->dim, nm = c->rows / rows_per_mod * c->dim;
    float *x = rand_floats(g, (size_t)n, -2.0f, 4.0f);
    float *w = c->affine ? rand_floats(g, (size_t)c->dim, 0.5f, 1.5f) : NULL;
    float *b = c->affine ? rand_floats(g, (size_t)c->dim, -0.5f, 0.5f) : NULL;
    float *scale = rand_floats(g, (size_t)nm, -0.5f, 0.5f);
    float *shift = rand_floats(g, (size_t)nm, -1.0f, 1.0f);
    float *ref = host_floats(n);
    fy_cpu_layer_norm_modulate(g->cpu, x, w, b, scale, shift, ref, c->rows, c->dim, rows_per_mod,
                               1e-6f);
    float *dx = up(x, n), *dw = up_opt(w, c->dim), *db = up_opt(b, c->dim);
    float *dscale = up(scale, nm), *dshift = up(shift, nm);
    float *dout = c->in_place ? dx : dev_alloc((size_t)n * sizeof(float));
    fy_status st = fy_cuda_layer_norm_modulate(g->ops, dx, dw, db, dscale, dshift, dout, c->rows,
                                               c->dim, rows_per_mod, 1e-6f);
    compare(g, name, st, dout, ref, n, TOL_NORM);
    if (!c->in_place) dev_free(dout);
    dev_free(dshift);
    dev_free(dscale);
    dev_free(db);
    dev_free(dw);
    dev_free(dx);
    free(ref);
    free(shift);
    free(scale);
    free(b);
    free(w);
    free(x);
}

static void check_rms_norm(gpu_check *g, const norm_case *c)
{
    char name[96];
    norm_name(name, sizeof name, "rms_norm", c);
    int64_t n = c->rows * c->dim;
    float *x = rand_floats(g, (size_t)n, -3.0f, 3.0f);
    float *w = c->affine ? rand_floats(g, (size_t)c->dim, 0.5f, 1.5f) : NULL;
    float *ref = host_floats(n);
    fy_cpu_rms_norm(g->cpu, x, w, ref, c->rows, c->dim, 1e-6f);
    float *dx = up(x, n), *dw = up_opt(w, c->dim);
    float *dout = c->in_place ? dx : dev_alloc((size_t)n * sizeof(float));
    fy_status st = fy_cuda_rms_norm(g->ops, dx, dw, dout, c->rows, c->dim, 1e-6f);
    compare(g, name, st, dout, ref, n, TOL_NORM);
    if (!c->in_place) dev_free(dout);
    dev_free(dw);
    dev_free(dx);
    free(ref);
    free(w);
    free(x);
}

/* x in [-range, range]: +-100 overflows expf unless the max is subtracted. */
static void check_softmax(gpu_check *g, const norm_case *c, float range)
{
    char name[96], op[48];
    snprintf(op, sizeof op, "softmax +-%g", (double)range);
    norm_name(name, sizeof name, op, c);
    int64_t n = c->rows * c->dim;
    float *x = rand_floats(g, (size_t)n, -range, range);
    float *ref = host_floats(n);
    fy_cpu_softmax(g->cpu, x, ref, c->rows, c->dim);
    float *dx = up(x, n);
    float *dout = c->in_place ? dx : dev_alloc((size_t)n * sizeof(float));
    fy_status st = fy_cuda_softmax(g->ops, dx, dout, c->rows, c->dim);
    compare(g, name, st, dout, ref, n, TOL_NORM);
    if (!c->in_place) dev_free(dout);
    dev_free(dx);
    free(ref);
    free(x);
}

/* x [C, N]; affine: bias given (gamma always is, as in the VAE). */
static void check_channel_rms_norm(gpu_check *g, int64_t C, int64_t N, int with_bias, int in_place)
{
    char name[96];
    snprintf(name, sizeof name, "channel_rms_norm C=%lld N=%lld%s%s", (long long)C, (long long)N,
             with_bias ? "" : " no bias", in_place ? " in place" : "");
    int64_t n = C * N;
    float *x = rand_floats(g, (size_t)n, -3.0f, 3.0f);
    float *gamma = rand_floats(g, (size_t)C, 0.5f, 1.5f);
    float *bias = with_bias ? rand_floats(g, (size_t)C, -0.5f, 0.5f) : NULL;
    float *ref = host_floats(n);
    fy_cpu_channel_rms_norm(g->cpu, x, gamma, bias, ref, C, N, 1e-12f);
    float *dx = up(x, n), *dgamma = up(gamma, C), *dbias = up_opt(bias, C);
    float *dout = in_place ? dx : dev_alloc((size_t)n * sizeof(float));
    fy_status st = fy_cuda_channel_rms_norm(g->ops, dx, dgamma, dbias, dout, C, N, 1e-12f);
    compare(g, name, st, dout, ref, n, TOL_NORM);
    if (!in_place) dev_free(dout);
    dev_free(dbias);
    dev_free(dgamma);
    dev_free(dx);
    free(ref);
    free(bias);
    free(gamma);
    free(x);
}

/* x [C, N] in G groups, with and without the affine (the Flux VAE's GroupNorm). */
static void check_group_norm(gpu_check *g, int64_t C, int64_t N, int64_t G, int affine, int in_place)
{
    char name[96];
    snprintf(name, sizeof name, "group_norm C=%lld N=%lld G=%lld%s%s", (long long)C, (long long)N, (long long)G,
             affine ? "" : " no affine", in_place ? " in place" : "");
    int64_t n = C * N;
    float *x = rand_floats(g, (size_t)n, -3.0f, 3.0f);
    float *w = affine ? rand_floats(g, (size_t)C, 0.5f, 1.5f) : NULL;
    float *b = affine ? rand_floats(g, (size_t)C, -0.5f, 0.5f) : NULL;
    float *ref = host_floats(n);
    fy_cpu_group_norm(g->cpu, x, w, b, ref, C, N, G, 1e-6f);
    float *dx = up(x, n), *dw = up_opt(w, C), *db = up_opt(b, C);
    float *dout = in_place ? dx : dev_alloc((size_t)n * sizeof(float));
    fy_status st = fy_cuda_group_norm(g->ops, dx, dw, db, dout, C, N, G, 1e-6f);
    compare(g, name, st, dout, ref, n, TOL_NORM);
    if (!in_place) dev_free(dout);
    dev_free(db);
    dev_free(dw);
    dev_free(dx);
    free(ref);
    free(b);
    free(w);
    free(x);
}

void check_norms(gpu_check *g)
{
    check_group_norm(g, 12, 80, 4, 1, 0);
    check_group_norm(g, 12, 80, 4, 0, 1);
    check_group_norm(g, 128, 4096, 32, 1, 0);
    check_group_norm(g, 3, 7, 1, 1, 0);
    for (size_t i = 0; i < sizeof norm_cases / sizeof *norm_cases; i++) {
        check_layer_norm(g, &norm_cases[i]);
        check_rms_norm(g, &norm_cases[i]);
        check_softmax(g, &norm_cases[i], 8.0f);
    }
    /* Wan: batch 2 of 2048 tokens, one scale/shift row per batch item, no
     * affine (norm1/norm2); then per token, and with an affine. */
    const norm_case wan = {4096, 1536, 0, 0}, wan_in_place = {4096, 1536, 0, 1};
    const norm_case small = {74, 1000, 1, 0}, odd = {33, 33, 1, 0};
    check_layer_norm_modulate(g, &wan, 2048);
    check_layer_norm_modulate(g, &wan_in_place, 2048);
    check_layer_norm_modulate(g, &small, 37);
    check_layer_norm_modulate(g, &odd, 1);
    const norm_case wide = {100, 1000, 1, 0}, wide_in_place = {7, 33, 1, 1};
    check_softmax(g, &wide, 100.0f);
    check_softmax(g, &wide_in_place, 100.0f);
    check_channel_rms_norm(g, 96, 1000, 1, 0);
    check_channel_rms_norm(g, 96, 1000, 0, 0);
    check_channel_rms_norm(g, 96, 1000, 1, 1);
    check_channel_rms_norm(g, 3, 1, 1, 0);
    /* The models' norm shapes: the tiny fixtures (DiT dim 32, UMT5 32, VAE
     * channels 4 to 16) and the real ones (UMT5-XXL 4096, Wan 14B 5120 with
     * its qk norm across heads, the VAE's 384 channels). */
    const norm_case tiny = {120, 32, 1, 0}, umt5 = {512, 4096, 1, 0}, wan14 = {2048, 5120, 1, 0};
    check_rms_norm(g, &tiny);
    check_rms_norm(g, &umt5);
    check_rms_norm(g, &wan14);
    check_layer_norm(g, &tiny);
    check_layer_norm_modulate(g, &tiny, 60);
    check_layer_norm_modulate(g, &wan14, 1024);
    check_channel_rms_norm(g, 4, 4096, 0, 0);
    check_channel_rms_norm(g, 16, 256, 0, 0);
    check_channel_rms_norm(g, 384, 6240, 0, 0);
    check_channel_rms_norm(g, 192, 2000, 0, 1);
}
