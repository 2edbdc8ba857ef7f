/* The CUDA backend's kernels, behind its op table (cuda_op_table.c).
 *
 * Each fy_cuda_X has the shapes, layouts and semantics of the table's X
 * (ferry/ops.h states them once), with every pointer a device pointer. Ops are launched on the backend's compute stream and
 * return at once: a status reports a launch or cuBLAS error, never a wait.
 * Activations are float32; the weights of a linear may be f32, f16, bf16 or
 * fp8 (with the scales of ferry/quant.h).
 *
 * Two kinds of arithmetic (fy_cuda_math):
 *   F32   GEMMs in full f32 (TF32 off): checked against the CPU backend and
 *         the golden fixtures at relative error <= 1e-4.
 *   BF16  GEMM operands in bf16 on the tensor cores, f32 accumulation and
 *         f32 outputs (what bf16 inference does): <= 2e-2. The f32 GEMMs
 *         left (convolutions, bmm, f32 weights) run in TF32.
 * Elementwise ops, norms, softmax and attention accumulate in f32 in both.
 *
 * Scratch (cuBLAS workspace, a linear's converted operands, convolution
 * columns) comes from the engine's device pool, so the budget counts it; it
 * grows on demand and is kept until fy_cuda_ops_free. A context is used by
 * one host thread at a time. Outputs may alias inputs where ferry/ops.h says
 * "in place allowed". */
#ifndef FERRY_BACKEND_CUDA_OPS_H
#define FERRY_BACKEND_CUDA_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/backend.h"
#include "ferry/dtype.h"
#include "ferry/error.h"
#include "ferry/ops.h"
#include "mem/pool.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fy_cuda_math {
    FY_CUDA_MATH_F32 = 0,
    FY_CUDA_MATH_BF16 = 1,
} fy_cuda_math;

typedef struct fy_cuda_ops fy_cuda_ops;

/* b must be a cuda backend; pool is the device pool scratch comes from (on
 * b). */
fy_status fy_cuda_ops_create(fy_backend *b, fy_pool *pool, fy_cuda_math math, fy_cuda_ops **out);
void fy_cuda_ops_free(fy_cuda_ops *ops);
fy_cuda_math fy_cuda_ops_math(const fy_cuda_ops *ops);
/* Attention on the tensor cores (bf16 q, k, v and softmax weights, f32
 * accumulation) for the calls it covers, in bf16 arithmetic only. Off by
 * default until a GPU run has validated it; FERRY_CUDA_TC_ATTENTION=1 turns
 * it on for new contexts. */
void fy_cuda_ops_set_tc_attention(fy_cuda_ops *ops, bool on);
bool fy_cuda_ops_tc_attention(const fy_cuda_ops *ops);
/* Device scratch held now. */
size_t fy_cuda_ops_scratch_bytes(const fy_cuda_ops *ops);
/* The most scratch a context holds: the cuBLAS workspace, a linear's two
 * converted blocks and, when the model convolves, the column chunk (which
 * shares the first block's slot). For the plan to reserve it up front. */
size_t fy_cuda_ops_scratch_bound(int convolutions);
/* Around every op of the table (cuda_op_table.c): enter makes the ops'
 * device current on the calling thread; leave returns st, or, under
 * FERRY_CUDA_SYNC=1 (a debug switch), waits for the device and names `op`
 * when a kernel it queued failed. */
fy_status fy_cuda_ops_enter(fy_cuda_ops *ops);
fy_status fy_cuda_ops_leave(fy_cuda_ops *ops, const char *op, fy_status st);
/* FERRY_CUDA_SYNC=1: every kernel launch and cuBLAS call waits for the
 * device, and a failure names its op (slow; for finding a faulting kernel). */
bool fy_cuda_sync_each_op(void);
/* The cudaStream_t the ops run on. */
void *fy_cuda_ops_stream(const fy_cuda_ops *ops);
/* Scratch of at least `bytes` from the pool, valid until the next call or
 * fy_cuda_ops_free (one buffer per slot, so an op can hold two at once). */
fy_status fy_cuda_ops_scratch(fy_cuda_ops *ops, int slot, size_t bytes, void **out);
enum { FY_CUDA_SCRATCH_SLOTS = 3 };

/* ---- Data movement ---------------------------------------------------------- */

/* dst = src, device to device, on the ops' stream. */
fy_status fy_cuda_copy(fy_cuda_ops *ops, void *dst, const void *src, size_t bytes);
/* height rows of width bytes: row r from src + r * src_pitch to
 * dst + r * dst_pitch (cudaMemcpy2DAsync; the regions must not overlap). */
fy_status fy_cuda_copy2d(fy_cuda_ops *ops, void *dst, size_t dst_pitch, const void *src, size_t src_pitch,
                         size_t width, size_t height);
/* dst [n] f32 = src [n] of any float dtype (biases and norm scales stored in
 * bf16: converted as the op needs them). */
fy_status fy_cuda_to_f32(fy_cuda_ops *ops, float *dst, const void *src, fy_dtype dtype, size_t n);

/* ---- Matrix products (cuBLAS) -------------------------------------------- */

/* y[M, N] = x[M, K] W^T (* scale) + b (scale NULL: none; b NULL: no bias). */
fy_status fy_cuda_linear(fy_cuda_ops *ops, const float *x, const void *w, fy_dtype w_dtype,
                         const float *scale, int scale_rows, const float *b, float *y, int64_t M,
                         int64_t K, int64_t N);
fy_status fy_cuda_bmm(fy_cuda_ops *ops, const float *a, const float *b, float *c, int64_t batch,
                      int64_t M, int64_t N, int64_t K, int trans_b, float alpha);

/* ---- Elementwise --------------------------------------------------------- */

fy_status fy_cuda_add(fy_cuda_ops *ops, const float *a, const float *b, float *out, int64_t n);
fy_status fy_cuda_mul(fy_cuda_ops *ops, const float *a, const float *b, float *out, int64_t n);
fy_status fy_cuda_scale(fy_cuda_ops *ops, const float *x, float s, float *out, int64_t n);
fy_status fy_cuda_axpy(fy_cuda_ops *ops, float alpha, const float *x, float *y, int64_t n);
fy_status fy_cuda_silu(fy_cuda_ops *ops, const float *x, float *out, int64_t n);
fy_status fy_cuda_gelu(fy_cuda_ops *ops, const float *x, float *out, int64_t n);
fy_status fy_cuda_gelu_tanh(fy_cuda_ops *ops, const float *x, float *out, int64_t n);
fy_status fy_cuda_relu(fy_cuda_ops *ops, const float *x, float *out, int64_t n);
fy_status fy_cuda_gated_gelu(fy_cuda_ops *ops, const float *h0, const float *h1, float *out,
                             int64_t n);
fy_status fy_cuda_gated_add(fy_cuda_ops *ops, float *x, const float *y, const float *gate,
                            int64_t rows, int64_t dim, int64_t rows_per_gate);

/* ---- Normalization ------------------------------------------------------- */

fy_status fy_cuda_layer_norm(fy_cuda_ops *ops, const float *x, const float *w, const float *b,
                             float *out, int64_t rows, int64_t dim, float eps);
fy_status fy_cuda_layer_norm_modulate(fy_cuda_ops *ops, const float *x, const float *w,
                                      const float *b, const float *scale, const float *shift,
                                      float *out, int64_t rows, int64_t dim, int64_t rows_per_mod,
                                      float eps);
fy_status fy_cuda_rms_norm(fy_cuda_ops *ops, const float *x, const float *w, float *out,
                           int64_t rows, int64_t dim, float eps);
/* C a multiple of G. */
fy_status fy_cuda_group_norm(fy_cuda_ops *ops, const float *x, const float *w, const float *b, float *out,
                             int64_t C, int64_t N, int64_t G, float eps);
fy_status fy_cuda_channel_rms_norm(fy_cuda_ops *ops, const float *x, const float *gamma,
                                   const float *bias, float *out, int64_t C, int64_t N, float eps);
fy_status fy_cuda_softmax(fy_cuda_ops *ops, const float *x, float *out, int64_t rows, int64_t dim);

/* ---- Attention and position ---------------------------------------------- */

/* A fused kernel with an online softmax over
 * key tiles (no Lq x Lk buffer). key_mask is a device array of int64. */
fy_status fy_cuda_attention(fy_cuda_ops *ops, const float *q, const float *k, const float *v,
                            float *out, int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D,
                            float scale, const float *bias, const int64_t *key_mask);
fy_status fy_cuda_rope(fy_cuda_ops *ops, float *x, const float *cos_t, const float *sin_t,
                       int64_t B, int64_t L, int64_t H, int64_t D);

/* ---- Gathers --------------------------------------------------------------- */

/* ids and bucket are device arrays. */
fy_status fy_cuda_embedding(fy_cuda_ops *ops, const void *table, fy_dtype dtype, const int64_t *ids, float *out,
                            int64_t rows, int64_t dim);
fy_status fy_cuda_relative_bias(fy_cuda_ops *ops, const float *table, const int32_t *bucket, float *out,
                                int64_t H, int64_t L, int64_t q0, int64_t nq);

/* ---- Layout ------------------------------------------------------------------ */

fy_status fy_cuda_transpose(fy_cuda_ops *ops, float *dst, int64_t ld_dst, const float *src, int64_t ld_src,
                            int64_t rows, int64_t cols, int accumulate);
fy_status fy_cuda_permute(fy_cuda_ops *ops, float *dst, const float *src, int ndim, const int64_t *shape,
                          const int *perm);
fy_status fy_cuda_upsample_nearest2x(fy_cuda_ops *ops, const float *in, float *out, int64_t planes, int64_t h,
                                     int64_t w);

/* ---- Convolution ----------------------------------------------------------- */

/* im2col over chunks of output positions into
 * scratch, then one GEMM per chunk. w f32. */
fy_status fy_cuda_conv3d(fy_cuda_ops *ops, const float *x, const float *w, const float *b, float *y,
                         int64_t batch, const fy_conv3d_shape *s);

#ifdef __cplusplus
}
#endif
#endif
