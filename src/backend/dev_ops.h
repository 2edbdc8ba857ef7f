/* Ops on the engine's compute device: the CPU ops (ferry/ops.h) when the
 * engine computes on the host (cpu, emu), the CUDA ops (backend/cuda/
 * cuda_ops.h) when it computes on a GPU. Models call these, so one model
 * source runs on every backend; shapes and semantics are ferry/ops.h's.
 *
 * Pointers are the engine's device pointers (weights it hands out,
 * fy_engine_alloc buffers). Every op returns a status: on the GPU a launch
 * returns at once and the status reports launch errors only. */
#ifndef FERRY_BACKEND_DEV_OPS_H
#define FERRY_BACKEND_DEV_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/dtype.h"
#include "ferry/engine.h"
#include "ferry/ops.h"
#include "ferry/options.h"

typedef struct fy_dev_ops fy_dev_ops;

/* Device scratch the ops may hold besides a model's own buffers (0 on a
 * host device), so a model's activation estimate, and with it the plan,
 * reserves it: cuBLAS's workspace, a linear's converted blocks and, with
 * convolutions, their column chunks. */
uint64_t fy_dev_ops_scratch_bound(fy_engine *e, bool convolutions);
/* FY_OK when this build has ops for the engine's device (a model checks at
 * load, so a run fails before it reads weights); else why not and what to use. */
fy_status fy_dev_ops_supported(fy_engine *e);
/* threads: the CPU ops' pool on a host device (0 = one per core). */
fy_status fy_dev_ops_create(fy_engine *e, int threads, fy_dev_ops **out);
void fy_dev_ops_free(fy_dev_ops *o);
/* The CPU context when the ops run on the host, else NULL (a model may then
 * use its own host kernels, as the DiT does for its GEMM tiling). */
fy_cpu_ctx *fy_dev_ops_host(fy_dev_ops *o);

/* The relative error a GPU's arithmetic is held to against the CPU and the
 * fixtures (issue 8): 1e-4 with --dtype f32 (exact f32 GEMMs, the default),
 * 2e-2 with --dtype bf16|f16 (tensor-core GEMMs, f32 accumulation); 0 on a
 * host device, whose ops are the reference. */
double fy_dev_tolerance_floor(const fy_run_options *o);

/* dst = src (device to device). */
fy_status fy_dev_copy(fy_dev_ops *o, void *dst, const void *src, size_t bytes);
/* height rows of width bytes from src (row pitch src_pitch) to dst (row
 * pitch dst_pitch); the regions must not overlap. */
fy_status fy_dev_copy2d(fy_dev_ops *o, void *dst, size_t dst_pitch, const void *src, size_t src_pitch, size_t width,
                        size_t height);
/* dst [n] f32 = src [n] of any float dtype (f32 is a copy). */
fy_status fy_dev_to_f32(fy_dev_ops *o, float *dst, const void *src, fy_dtype dtype, size_t n);

fy_status fy_dev_linear(fy_dev_ops *o, const float *x, const void *w, fy_dtype w_dtype, const float *scale,
                        int scale_rows, const float *b, float *y, int64_t M, int64_t K, int64_t N);
fy_status fy_dev_bmm(fy_dev_ops *o, const float *a, const float *b, float *c, int64_t batch, int64_t M,
                     int64_t N, int64_t K, int trans_b, float alpha);

fy_status fy_dev_add(fy_dev_ops *o, const float *a, const float *b, float *out, int64_t n);
fy_status fy_dev_mul(fy_dev_ops *o, const float *a, const float *b, float *out, int64_t n);
fy_status fy_dev_scale(fy_dev_ops *o, const float *x, float s, float *out, int64_t n);
fy_status fy_dev_axpy(fy_dev_ops *o, float alpha, const float *x, float *y, int64_t n);
fy_status fy_dev_silu(fy_dev_ops *o, const float *x, float *out, int64_t n);
fy_status fy_dev_gelu(fy_dev_ops *o, const float *x, float *out, int64_t n);
fy_status fy_dev_gelu_tanh(fy_dev_ops *o, const float *x, float *out, int64_t n);
fy_status fy_dev_relu(fy_dev_ops *o, const float *x, float *out, int64_t n);
fy_status fy_dev_gated_gelu(fy_dev_ops *o, const float *h0, const float *h1, float *out, int64_t n);
fy_status fy_dev_gated_add(fy_dev_ops *o, float *x, const float *y, const float *gate, int64_t rows,
                           int64_t dim, int64_t rows_per_gate);

fy_status fy_dev_layer_norm(fy_dev_ops *o, const float *x, const float *w, const float *b, float *out,
                            int64_t rows, int64_t dim, float eps);
fy_status fy_dev_layer_norm_modulate(fy_dev_ops *o, const float *x, const float *w, const float *b,
                                     const float *scale, const float *shift, float *out, int64_t rows,
                                     int64_t dim, int64_t rows_per_mod, float eps);
fy_status fy_dev_rms_norm(fy_dev_ops *o, const float *x, const float *w, float *out, int64_t rows,
                          int64_t dim, float eps);
fy_status fy_dev_channel_rms_norm(fy_dev_ops *o, const float *x, const float *gamma, const float *bias,
                                  float *out, int64_t C, int64_t N, float eps);
fy_status fy_dev_group_norm(fy_dev_ops *o, const float *x, const float *w, const float *b, float *out, int64_t C,
                            int64_t N, int64_t G, float eps);
fy_status fy_dev_softmax(fy_dev_ops *o, const float *x, float *out, int64_t rows, int64_t dim);

fy_status fy_dev_attention(fy_dev_ops *o, const float *q, const float *k, const float *v, float *out,
                           int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D, float scale,
                           const float *bias, const int64_t *key_mask);
fy_status fy_dev_rope(fy_dev_ops *o, float *x, const float *cos_t, const float *sin_t, int64_t B, int64_t L,
                      int64_t H, int64_t D);
fy_status fy_dev_embedding(fy_dev_ops *o, const void *table, fy_dtype dtype, const int64_t *ids, float *out,
                           int64_t rows, int64_t dim);
fy_status fy_dev_relative_bias(fy_dev_ops *o, const float *table, const int32_t *bucket, float *out, int64_t H,
                               int64_t L, int64_t q0, int64_t nq);
fy_status fy_dev_transpose(fy_dev_ops *o, float *dst, int64_t ld_dst, const float *src, int64_t ld_src, int64_t rows,
                           int64_t cols, int accumulate);
fy_status fy_dev_permute(fy_dev_ops *o, float *dst, const float *src, int ndim, const int64_t *shape,
                         const int *perm);
fy_status fy_dev_upsample_nearest2x(fy_dev_ops *o, const float *in, float *out, int64_t planes, int64_t h, int64_t w);
fy_status fy_dev_conv3d(fy_dev_ops *o, const float *x, const float *w, const float *b, float *y,
                        int64_t batch, const fy_conv3d_shape *s);

#endif
