/* The CUDA op checks (run by scripts/gpu-check; CI only builds them): every
 * fy_cuda_X against its fy_cpu_X on the same random inputs, with the
 * project's measure (max |ours - ref| / max |ref|) and tolerances: 1e-4 in
 * f32 arithmetic, 2e-2 in bf16. */
#ifndef FERRY_TESTS_GPU_CUDA_OPS_CHECK_H
#define FERRY_TESTS_GPU_CUDA_OPS_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "backend/cpu/cpu_ops.h"
#include "backend/cuda/cuda_ops.h"
#include "ferry/ops.h"

typedef struct gpu_check {
    fy_cuda_ops *ops;   /* the arithmetic under test (f32 or bf16) */
    fy_cpu_ctx *cpu;    /* the reference */
    double tol;         /* for GEMM-based ops in this arithmetic */
    int failures;
    uint64_t seed;
} gpu_check;

#define TOL_F32 1e-4
#define TOL_BF16 2e-2

/* n floats uniform in [lo, hi) from the check's seed; free() them. */
float *rand_floats(gpu_check *g, size_t n, float lo, float hi);
/* Device copies (cudaMalloc, outside any budget: test inputs); dev_free them. */
void *dev_upload(const void *host, size_t bytes);
void *dev_alloc(size_t bytes);
void dev_free(void *p);
/* Fills p with 0xFF bytes (NaN as f32) on the ops' stream: an output element
 * the op never writes then fails the comparison. */
void dev_poison(gpu_check *g, void *p, size_t bytes);
/* Waits for the ops' stream, then copies back n floats into a malloc'ed buffer. */
float *dev_download(gpu_check *g, const void *dev, size_t n);
/* Compares and prints one line; counts a failure when the error exceeds tol
 * (or the op's status was not FY_OK). */
void expect_close(gpu_check *g, const char *name, fy_status st, const float *ours, const float *ref,
                  size_t n, double tol);

/* The groups of checks (one file each). */
void check_pointwise(gpu_check *g);
void check_norms(gpu_check *g);
void check_matmul(gpu_check *g);
void check_attention(gpu_check *g);
void check_conv(gpu_check *g);
void check_gather(gpu_check *g);

#endif
