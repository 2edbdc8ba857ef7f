/* Runs every CUDA op check twice, in f32 and in bf16 arithmetic, on GPU 0
 * (the attention checks a third time, on the tensor cores). With
 * FERRY_CUDA_SYNC=1 every launch waits for the device, so a kernel that
 * faults is named by its op (and the check's line) instead of by a later
 * call. Exit status: 0 all passed, 1 some failed, 77 no GPU. */
#include "cuda_ops_check.h"

#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend/cuda/cuda_backend.h"
#include "mem/pool.h"

static uint64_t next_random(uint64_t *s)
{
    /* splitmix64: reproducible inputs without a library. */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float *rand_floats(gpu_check *g, size_t n, float lo, float hi)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    if (!x) {
        fprintf(stderr, "cuda ops check: out of host memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * (float)((next_random(&g->seed) >> 40) * 0x1.0p-24);
    return x;
}

void *dev_alloc(size_t bytes)
{
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) {
        fprintf(stderr, "cuda ops check: cudaMalloc of %zu bytes failed\n", bytes);
        exit(1);
    }
    return p;
}

void *dev_upload(const void *host, size_t bytes)
{
    void *p = dev_alloc(bytes);
    /* From pageable memory cudaMemcpy may return before its DMA lands, and the
     * ops' stream (non-blocking) does not wait for the legacy stream: finish
     * the upload before any op reads it. */
    if (cudaMemcpy(p, host, bytes, cudaMemcpyHostToDevice) != cudaSuccess || cudaDeviceSynchronize() != cudaSuccess) {
        fprintf(stderr, "cuda ops check: upload failed\n");
        exit(1);
    }
    return p;
}

void dev_poison(gpu_check *g, void *p, size_t bytes)
{
    /* On the ops' stream, so the op that follows writes after it. */
    if (cudaMemsetAsync(p, 0xFF, bytes, (cudaStream_t)fy_cuda_ops_stream(g->ops)) != cudaSuccess) {
        fprintf(stderr, "cuda ops check: cudaMemsetAsync failed\n");
        exit(1);
    }
}

void dev_free(void *p)
{
    cudaFree(p);
}

float *dev_download(gpu_check *g, const void *dev, size_t n)
{
    float *h = malloc((n ? n : 1) * sizeof *h);
    cudaStreamSynchronize((cudaStream_t)fy_cuda_ops_stream(g->ops));
    if (!h || cudaMemcpy(h, dev, n * sizeof *h, cudaMemcpyDeviceToHost) != cudaSuccess) {
        fprintf(stderr, "cuda ops check: download failed: %s\n", cudaGetErrorString(cudaGetLastError()));
        exit(1);
    }
    return h;
}

void expect_close(gpu_check *g, const char *name, fy_status st, const float *ours, const float *ref,
                  size_t n, double tol)
{
    double max_diff = 0.0, max_ref = 0.0;
    int nan = 0;
    for (size_t i = 0; i < n && st == FY_OK; i++) {
        double d = fabs((double)ours[i] - (double)ref[i]);
        if (isnan(d)) nan = 1;
        else if (d > max_diff) max_diff = d;
        if (fabs((double)ref[i]) > max_ref) max_ref = fabs((double)ref[i]);
    }
    double rel = max_ref > 0.0 ? max_diff / max_ref : max_diff;
    int pass = st == FY_OK && !nan && rel <= tol;
    if (st != FY_OK)
        printf("  %-44s %s  FAIL\n", name, fy_error_message());
    else
        printf("  %-44s %10.3g  %7.0e  %s\n", name, nan ? NAN : rel, tol, pass ? "pass" : "FAIL");
    if (!pass) g->failures++;
}

static int run_all(fy_backend *b, fy_pool *pool, fy_cpu_ctx *cpu, fy_cuda_math math)
{
    gpu_check g = {.cpu = cpu, .tol = math == FY_CUDA_MATH_F32 ? TOL_F32 : TOL_BF16, .seed = 42};
    if (fy_cuda_ops_create(b, pool, math, &g.ops) != FY_OK) {
        fprintf(stderr, "cuda ops check: %s\n", fy_error_message());
        return 1;
    }
    printf("\n%s arithmetic:\n", math == FY_CUDA_MATH_F32 ? "f32" : "bf16");
    check_pointwise(&g);
    check_norms(&g);
    check_matmul(&g);
    check_attention(&g);
    if (math == FY_CUDA_MATH_BF16) {
        /* Again on the tensor cores (off by default until validated here). */
        const bool was = fy_cuda_ops_tc_attention(g.ops);
        fy_cuda_ops_set_tc_attention(g.ops, true);
        printf("\nbf16 arithmetic, attention on the tensor cores:\n");
        check_attention(&g);
        fy_cuda_ops_set_tc_attention(g.ops, was);
    }
    check_conv(&g);
    check_gather(&g);
    fy_cuda_ops_free(g.ops);
    return g.failures;
}

int main(void)
{
    if (fy_cuda_device_count() == 0) {
        fprintf(stderr, "cuda ops check: no GPU\n");
        return 77;
    }
    fy_backend *b = NULL;
    fy_pool *pool = NULL;
    fy_cpu_ctx *cpu = NULL;
    if (fy_backend_create_cuda(0, 0, &b) != FY_OK || fy_pool_create(b, 0, &pool) != FY_OK ||
        fy_cpu_ctx_create(0, &cpu) != FY_OK) {
        fprintf(stderr, "cuda ops check: %s\n", fy_error_message());
        return 1;
    }
    if (fy_cuda_sync_each_op()) printf("FERRY_CUDA_SYNC=1: every launch waits for the device\n");
    int failures = run_all(b, pool, cpu, FY_CUDA_MATH_F32) + run_all(b, pool, cpu, FY_CUDA_MATH_BF16);
    char peak[32];
    printf("\npeak device pool: %s\n", fy_format_bytes(fy_pool_peak(pool), peak, sizeof peak));
    fy_cpu_ctx_free(cpu);
    fy_pool_free(pool);
    fy_backend_free(b);
    printf("cuda ops check: %s (%d failed)\n", failures ? "FAIL" : "ok", failures);
    return failures ? 1 : 0;
}
