/* GFLOP/s of the CPU GEMM and attention at Wan2.1-1.3B's sizes (dim 1536,
 * 12 heads of 128, FFN 8960) on a slice of the token sequence.
 * Usage: bench_ops [threads (default 2)] [tokens (default 1024)]. Prints only. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ferry/dtype.h"
#include "backend/cpu/cpu_ops.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *rand_buf(size_t n)
{
    float *p = malloc(n * sizeof *p);
    if (!p) return NULL;
    for (size_t i = 0; i < n; i++) p[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    return p;
}

static void report(const char *what, double flops, double seconds)
{
    printf("%-44s %8.2f ms  %7.1f GFLOP/s\n", what, seconds * 1e3, flops / seconds * 1e-9);
}

static int bench_linear(fy_cpu_ctx *ctx, int64_t M, int64_t K, int64_t N, int reps)
{
    float *x = rand_buf((size_t)(M * K)), *w = rand_buf((size_t)(N * K)), *b = rand_buf((size_t)N);
    float *y = malloc((size_t)(M * N) * sizeof *y);
    uint16_t *wl = malloc((size_t)(N * K) * sizeof *wl);
    if (!x || !w || !b || !y || !wl || fy_convert(wl, FY_BF16, w, FY_F32, (size_t)(N * K)) != FY_OK) return 1;
    double flops = 2.0 * (double)M * (double)K * (double)N;
    char label[96];
    for (int lowp = 0; lowp < 2; lowp++) {
        (void)(lowp ? fy_cpu_linear_lowp(ctx, x, wl, FY_BF16, b, y, M, K, N) : fy_cpu_linear(ctx, x, w, b, y, M, K, N));
        double t0 = now();
        for (int r = 0; r < reps; r++)
            (void)(lowp ? fy_cpu_linear_lowp(ctx, x, wl, FY_BF16, b, y, M, K, N)
                        : fy_cpu_linear(ctx, x, w, b, y, M, K, N));
        snprintf(label, sizeof label, "linear %s [%lld x %lld] -> %lld", lowp ? "bf16-w" : "f32   ", (long long)M,
                 (long long)K, (long long)N);
        report(label, flops, (now() - t0) / reps);
    }
    free(x), free(w), free(b), free(y), free(wl);
    return 0;
}

static int bench_attention(fy_cpu_ctx *ctx, int64_t L, int64_t H, int64_t D, int reps)
{
    size_t n = (size_t)(L * H * D);
    float *q = rand_buf(n), *k = rand_buf(n), *v = rand_buf(n), *o = malloc(n * sizeof *o);
    if (!q || !k || !v || !o) return 1;
    (void)fy_cpu_attention(ctx, q, k, v, o, 1, H, L, L, D, 0.0883883f, NULL, NULL);
    double t0 = now();
    for (int r = 0; r < reps; r++) (void)fy_cpu_attention(ctx, q, k, v, o, 1, H, L, L, D, 0.0883883f, NULL, NULL);
    char label[96];
    snprintf(label, sizeof label, "attention L=%lld H=%lld D=%lld", (long long)L, (long long)H, (long long)D);
    report(label, 4.0 * (double)L * (double)L * (double)H * (double)D, (now() - t0) / reps);
    free(q), free(k), free(v), free(o);
    return 0;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    int64_t tokens = argc > 2 ? atoll(argv[2]) : 1024;
    fy_cpu_ctx *ctx = NULL;
    if (fy_cpu_ctx_create(threads, &ctx) != FY_OK) {
        fprintf(stderr, "bench_ops: %s\n", fy_error_message());
        return 1;
    }
    printf("bench_ops: %d threads, %lld tokens (Wan2.1-1.3B: dim 1536, 12 heads x 128, ffn 8960)\n",
           fy_cpu_ctx_threads(ctx), (long long)tokens);
    int rc = bench_linear(ctx, tokens, 1536, 1536, 3);          /* q/k/v/o projections */
    rc |= bench_linear(ctx, tokens, 1536, 8960, 1);             /* ffn up */
    rc |= bench_linear(ctx, tokens, 8960, 1536, 1);             /* ffn down */
    rc |= bench_linear(ctx, 512, 4096, 1536, 3);                /* text projection (umt5 4096) */
    rc |= bench_attention(ctx, tokens, 12, 128, 2);
    fy_cpu_ctx_free(ctx);
    return rc;
}
