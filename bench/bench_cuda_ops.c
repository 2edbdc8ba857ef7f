/* Kernel speeds at the real Wan2.1 shapes on the GPU, in seconds rather than
 * the minutes a forward takes: attention (self-attention chunks, cross-
 * attention, the VAE's single head), the block's linears, the VAE decoder's
 * convolutions and the bandwidth-bound ops. Each op is timed with events on
 * the ops' stream: one warm-up call, then the median of N calls.
 *
 *     bench_cuda_ops [--quick]
 *
 * Inputs are random (uniform in [-1, 1), weights converted to their dtype on
 * the host), never zeros. Timing only: ferry_cuda_ops_check checks the
 * numbers. Prints Markdown tables for bench/RESULTS.md. Without a GPU it
 * says so and exits 0. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/backend.h"
#ifdef FERRY_HAVE_CUDA
#include <cuda_runtime.h>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_ops.h"
#include "ferry/dtype.h"
#include "mem/pool.h"

#define MAX_RUNS 16
/* Random values are made on the host in blocks of this many and tiled. */
#define RANDOM_BLOCK ((size_t)1 << 22)

static int failures;

static void die(const char *what)
{
    fprintf(stderr, "bench_cuda_ops: %s failed: %s\n", what, cudaGetErrorString(cudaGetLastError()));
    exit(1);
}

/* n elements of dtype, uniform in [-1, 1) before conversion. */
static void *dev_random(size_t n, fy_dtype dtype)
{
    static unsigned long long state = 0x9E3779B97F4A7C15ull;
    const size_t esize = fy_dtype_size(dtype);
    const size_t block = n < RANDOM_BLOCK ? n : RANDOM_BLOCK;
    float *f = malloc(block * sizeof *f);
    void *h = malloc(block * esize);
    void *d = NULL;
    if (!f || !h) die("malloc");
    for (size_t i = 0; i < block; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        f[i] = (float)((state >> 40) * 0x1.0p-23) - 1.0f;
    }
    if (fy_convert(h, dtype, f, FY_F32, block) != FY_OK) die("fy_convert");
    if (cudaMalloc(&d, n * esize) != cudaSuccess) die("cudaMalloc");
    for (size_t off = 0; off < n; off += block) {
        const size_t m = n - off < block ? n - off : block;
        if (cudaMemcpy((char *)d + off * esize, h, m * esize, cudaMemcpyHostToDevice) != cudaSuccess)
            die("cudaMemcpy");
    }
    if (cudaDeviceSynchronize() != cudaSuccess) die("cudaDeviceSynchronize");
    free(f);
    free(h);
    return d;
}

static float *dev_floats(size_t n)
{
    return dev_random(n, FY_F32);
}

typedef fy_status (*op_fn)(fy_cuda_ops *ops, void *user);

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* Median seconds of n calls (each between two events) after one warm-up. */
static double timed(fy_cuda_ops *ops, op_fn fn, void *user, int n)
{
    cudaStream_t s = (cudaStream_t)fy_cuda_ops_stream(ops);
    cudaEvent_t ev[MAX_RUNS + 1];
    float ms[MAX_RUNS];
    if (n > MAX_RUNS) n = MAX_RUNS;
    for (int i = 0; i <= n; i++)
        if (cudaEventCreate(&ev[i]) != cudaSuccess) die("cudaEventCreate");
    fy_status st = fn(ops, user);
    cudaEventRecord(ev[0], s);
    for (int i = 0; st == FY_OK && i < n; i++) {
        st = fn(ops, user);
        cudaEventRecord(ev[i + 1], s);
    }
    cudaError_t err = cudaEventSynchronize(ev[n]);
    for (int i = 0; i < n && st == FY_OK && err == cudaSuccess; i++) cudaEventElapsedTime(&ms[i], ev[i], ev[i + 1]);
    for (int i = 0; i <= n; i++) cudaEventDestroy(ev[i]);
    if (st != FY_OK || err != cudaSuccess) {
        printf("| FAILED: %s |\n", st != FY_OK ? fy_error_message() : cudaGetErrorString(err));
        failures++;
        return -1;
    }
    qsort(ms, (size_t)n, sizeof ms[0], cmp_float);
    return ms[n / 2] * 1e-3;
}

static void report(const char *name, double s, double flop, double bytes)
{
    if (s < 0) return;
    printf("| %-58s | %10.3f |", name, s * 1e3);
    if (flop > 0) printf(" %8.1f |", flop / s / 1e12);
    else printf(" %8s |", "");
    if (bytes > 0) printf(" %7.0f |\n", bytes / s / 1e9);
    else printf(" %7s |\n", "");
    fflush(stdout);
}

/* ---- attention ------------------------------------------------------------ */

typedef struct att_args {
    float *q, *k, *v, *o;
    int64_t B, H, Lq, Lk, D;
} att_args;

static fy_status att_op(fy_cuda_ops *ops, void *user)
{
    const att_args *a = user;
    return fy_cuda_attention(ops, a->q, a->k, a->v, a->o, a->B, a->H, a->Lq, a->Lk, a->D,
                             1.0f / sqrtf((float)a->D), NULL, NULL);
}

static void bench_attention(fy_cuda_ops *ops, const char *name, int64_t B, int64_t H, int64_t Lq, int64_t Lk,
                            int64_t D, int n)
{
    const size_t nq = (size_t)(B * Lq * H * D), nk = (size_t)(B * Lk * H * D);
    att_args a = {dev_floats(nq), dev_floats(nk), dev_floats(nk), dev_floats(nq), B, H, Lq, Lk, D};
    char label[128];
    snprintf(label, sizeof label, "%s%s", name, fy_cuda_ops_tc_attention(ops) ? " [tc]" : "");
    report(label, timed(ops, att_op, &a, n), 4.0 * (double)(B * H) * (double)Lq * (double)Lk * (double)D, 0);
    cudaFree(a.q);
    cudaFree(a.k);
    cudaFree(a.v);
    cudaFree(a.o);
}

/* ---- linear ------------------------------------------------------------------- */

typedef struct lin_args {
    float *x, *b, *y;
    void *w;
    fy_dtype wt;
    int64_t M, K, N;
} lin_args;

static fy_status lin_op(fy_cuda_ops *ops, void *user)
{
    const lin_args *a = user;
    return fy_cuda_linear(ops, a->x, a->w, a->wt, NULL, 0, a->b, a->y, a->M, a->K, a->N);
}

static void bench_linear(fy_cuda_ops *ops, const char *name, int64_t M, int64_t K, int64_t N, fy_dtype wt, int n)
{
    lin_args a = {dev_floats((size_t)(M * K)), dev_floats((size_t)N), dev_floats((size_t)(M * N)),
                  dev_random((size_t)(N * K), wt), wt, M, K, N};
    report(name, timed(ops, lin_op, &a, n), 2.0 * (double)M * (double)K * (double)N, 0);
    cudaFree(a.x);
    cudaFree(a.b);
    cudaFree(a.y);
    cudaFree(a.w);
}

/* ---- conv3d ------------------------------------------------------------------- */

typedef struct conv_args {
    float *x, *w, *b, *y;
    fy_conv3d_shape s;
} conv_args;

static fy_status conv_op(fy_cuda_ops *ops, void *user)
{
    const conv_args *a = user;
    return fy_cuda_conv3d(ops, a->x, a->w, a->b, a->y, 1, &a->s);
}

/* A causal 3x3x3 convolution of the VAE decoder over t_out frames (two
 * cached frames in front), c_in -> c_out channels at h x w. */
static void bench_conv(fy_cuda_ops *ops, const char *name, int64_t c_in, int64_t c_out, int64_t t_out, int64_t h,
                       int64_t w, int n)
{
    conv_args a = {.s = {.c_in = c_in, .t = t_out + 2, .h = h, .w = w, .c_out = c_out, .kt = 3, .kh = 3, .kw = 3,
                         .st = 1, .sh = 1, .sw = 1, .pad_h0 = 1, .pad_h1 = 1, .pad_w0 = 1, .pad_w1 = 1}};
    a.x = dev_floats((size_t)(c_in * (t_out + 2) * h * w));
    a.w = dev_floats((size_t)(c_out * c_in * 27));
    a.b = dev_floats((size_t)c_out);
    a.y = dev_floats((size_t)(c_out * t_out * h * w));
    report(name, timed(ops, conv_op, &a, n), 2.0 * (double)(c_in * 27) * (double)c_out * (double)(t_out * h * w), 0);
    cudaFree(a.x);
    cudaFree(a.w);
    cudaFree(a.b);
    cudaFree(a.y);
}

/* ---- bandwidth-bound ops --------------------------------------------------------- */

typedef struct ew_args {
    float *x, *y, *mod;
    int64_t rows, dim;
    int which;
} ew_args;

static fy_status ew_op(fy_cuda_ops *ops, void *user)
{
    const ew_args *a = user;
    switch (a->which) {
    case 0: return fy_cuda_layer_norm_modulate(ops, a->x, NULL, NULL, a->mod, a->mod, a->y, a->rows, a->dim, a->rows,
                                               1e-6f);
    case 1: return fy_cuda_gated_add(ops, a->x, a->y, a->mod, a->rows, a->dim, a->rows);
    case 2: return fy_cuda_gelu_tanh(ops, a->x, a->y, a->rows * a->dim);
    default: return fy_cuda_rope(ops, a->x, a->mod, a->mod, 1, a->rows, a->dim / 128, 128);
    }
}

static void bench_ew(fy_cuda_ops *ops, const char *name, int which, int64_t rows, int64_t dim, double passes, int n)
{
    const size_t elems = (size_t)(rows * dim);
    /* Modulation rows: one per batch item (dim); rope tables: [rows, 64]. */
    ew_args a = {dev_floats(elems), dev_floats(elems), dev_floats((size_t)(rows > dim ? rows : dim) * 64), rows,
                 dim, which};
    report(name, timed(ops, ew_op, &a, n), 0, passes * (double)elems * sizeof(float));
    cudaFree(a.x);
    cudaFree(a.y);
    cudaFree(a.mod);
}

static void header(const char *title)
{
    printf("\n%s\n\n| op | ms (median) | TFLOP/s | GB/s |\n|---|---:|---:|---:|\n", title);
}

static void bench_attention_set(fy_cuda_ops *ops, int quick, int n)
{
    /* 480p/81 frames: 32,760 tokens an item, the CFG pair as batch 2; the
     * DiT runs its queries in chunks of 2,048 rows against every key. */
    bench_attention(ops, "attention 1.3B self chunk B1 H12 2048x32760 D128", 1, 12, 2048, 32760, 128, n);
    if (!quick) bench_attention(ops, "attention 1.3B self whole B2 H12 32760x32760 D128", 2, 12, 32760, 32760, 128, 1);
    bench_attention(ops, "attention 14B self chunk B1 H40 2048x32760 D128", 1, 40, 2048, 32760, 128, n);
    bench_attention(ops, "attention 1.3B cross B2 H12 2048x512 D128", 2, 12, 2048, 512, 128, n);
    bench_attention(ops, "attention UMT5-XXL B1 H64 512x512 D64", 1, 64, 512, 512, 64, n);
}

static void run(fy_backend *b, fy_pool *pool, fy_cuda_math math, int quick)
{
    fy_cuda_ops *ops = NULL;
    if (fy_cuda_ops_create(b, pool, math, &ops) != FY_OK) {
        fprintf(stderr, "bench_cuda_ops: %s\n", fy_error_message());
        failures++;
        return;
    }
    const int n = quick ? 3 : 7;
    if (math == FY_CUDA_MATH_BF16) {
        header("attention, bf16 arithmetic (f32 kernels, then the tensor cores)");
        fy_cuda_ops_set_tc_attention(ops, false);
        bench_attention_set(ops, 1, quick ? 1 : 3);
        /* The VAE's mid-block attention: one head of 384 over a frame's
         * latent tokens (60 x 104 at 480p), every frame a batch item. */
        bench_attention(ops, "attention VAE mid B1 H1 6240x6240 D384", 1, 1, 6240, 6240, 384, quick ? 1 : 3);
        fy_cuda_ops_set_tc_attention(ops, true);
        bench_attention_set(ops, quick, n);

        header("linears, bf16 arithmetic (one chunk of 2,048 token rows)");
        bench_linear(ops, "linear 1.3B qkvo 2048x1536x1536 bf16 w", 2048, 1536, 1536, FY_BF16, n);
        bench_linear(ops, "linear 1.3B ffn1 2048x1536x8960 bf16 w", 2048, 1536, 8960, FY_BF16, n);
        bench_linear(ops, "linear 1.3B ffn2 2048x8960x1536 bf16 w", 2048, 8960, 1536, FY_BF16, n);
        bench_linear(ops, "linear 14B qkvo 2048x5120x5120 bf16 w", 2048, 5120, 5120, FY_BF16, n);
        bench_linear(ops, "linear 14B ffn1 2048x5120x13824 bf16 w", 2048, 5120, 13824, FY_BF16, n);
        bench_linear(ops, "linear 14B ffn1 2048x5120x13824 e4m3 w", 2048, 5120, 13824, FY_F8_E4M3, n);
        bench_linear(ops, "linear 14B ffn1 2048x5120x13824 f32 w", 2048, 5120, 13824, FY_F32, n);

        header("bandwidth-bound ops (bytes: reads + writes of the activations)");
        bench_ew(ops, "layer_norm_modulate 2048x5120", 0, 2048, 5120, 2, n);
        bench_ew(ops, "gated_add 2048x5120", 1, 2048, 5120, 3, n);
        bench_ew(ops, "gelu_tanh 2048x13824", 2, 2048, 13824, 2, n);
        bench_ew(ops, "rope 32760x5120", 3, 32760, 5120, 2, n);
    } else {
        header("linears and VAE convolutions, f32 arithmetic");
        bench_linear(ops, "linear 1.3B ffn1 2048x1536x8960 f32 w", 2048, 1536, 8960, FY_F32, n);
        /* The decoder's 3x3x3 convolutions at 480p: 4 frames a chunk. */
        const int nc = quick ? 1 : 3;
        bench_conv(ops, "conv3d VAE 384->384 4x60x104", 384, 384, 4, 60, 104, nc);
        bench_conv(ops, "conv3d VAE 384->384 4x120x208", 384, 384, 4, 120, 208, nc);
        bench_conv(ops, "conv3d VAE 192->192 4x240x416", 192, 192, 4, 240, 416, nc);
        bench_conv(ops, "conv3d VAE 96->96 4x480x832", 96, 96, 4, 480, 832, nc);
    }
    printf("\nscratch held: %.1f MiB\n", (double)fy_cuda_ops_scratch_bytes(ops) / 1048576.0);
    fy_cuda_ops_free(ops);
}

int main(int argc, char **argv)
{
    const int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    if (fy_cuda_device_count() == 0) {
        printf("bench_cuda_ops: no GPU here; nothing to time\n");
        return 0;
    }
    struct cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, 0) == cudaSuccess)
        printf("%s: %d SMs, %.1f GiB, compute capability %d.%d\n", p.name, p.multiProcessorCount,
               (double)p.totalGlobalMem / 1073741824.0, p.major, p.minor);
    fy_backend *b = NULL;
    fy_pool *pool = NULL;
    if (fy_backend_create_cuda(0, 0, &b) != FY_OK || fy_pool_create(b, 0, &pool) != FY_OK) {
        fprintf(stderr, "bench_cuda_ops: %s\n", fy_error_message());
        return 1;
    }
    run(b, pool, FY_CUDA_MATH_BF16, quick);
    run(b, pool, FY_CUDA_MATH_F32, quick);
    fy_pool_free(pool);
    fy_backend_free(b);
    return failures ? 1 : 0;
}
#else
int main(void)
{
    printf("bench_cuda_ops: built without CUDA; nothing to time\n");
    return 0;
}
#endif
