/* The CPU backend's kernels over host float32 buffers (contiguous,
 * row-major), behind its op table (cpu_op_table.c; semantics in ferry/ops.h).
 *
 * Every op takes an fy_cpu_ctx, which owns a thread pool and per-thread
 * scratch. Work is cut into tasks whose boundaries depend only on the shapes,
 * never on the thread count, so results are bitwise identical for any number
 * of threads. OpenBLAS is switched to one thread when a context is created:
 * the pool owns the parallelism (process-wide setting; nested BLAS threads
 * would oversubscribe the cores).
 *
 * A context is used by one caller thread at a time. Outputs may alias inputs
 * only where stated ("in place allowed"). Sizes are element counts. */
#ifndef FERRY_BACKEND_CPU_OPS_H
#define FERRY_BACKEND_CPU_OPS_H

#include <stddef.h>
#include <stdint.h>
#include "ferry/dtype.h"
#include "ferry/error.h"
#include "ferry/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fy_cpu_ctx fy_cpu_ctx;

/* n_threads 0 = one per online core. */
fy_status fy_cpu_ctx_create(int n_threads, fy_cpu_ctx **out);
void fy_cpu_ctx_free(fy_cpu_ctx *ctx);
int fy_cpu_ctx_threads(const fy_cpu_ctx *ctx);
/* Scratch currently held, all threads together (it grows on demand). */
size_t fy_cpu_ctx_scratch_bytes(const fy_cpu_ctx *ctx);

/* ---- Matrix products ---------------------------------------------------- */

/* y[M, N] = x[M, K] W^T + b, W [N, K] as nn.Linear stores it; b may be NULL. */
fy_status fy_cpu_linear(fy_cpu_ctx *ctx, const float *x, const float *w, const float *b, float *y,
                        int64_t M, int64_t K, int64_t N);
/* The same with W stored as f16, bf16, fp8 (any type fy_convert reads): rows
 * of W are converted to f32 block by block into per-thread scratch as they
 * are used, never all at once. Gives exactly fy_cpu_linear's result on the
 * converted weights. */
fy_status fy_cpu_linear_lowp(fy_cpu_ctx *ctx, const float *x, const void *w, fy_dtype w_dtype,
                             const float *b, float *y, int64_t M, int64_t K, int64_t N);
/* The same with scaled fp8 weights (--storage-dtype, ferry/quant.h): row n
 * of W is fp8_to_f32(w[n]) * scale[scale_rows ? n : 0] (scale NULL: none),
 * upcast tile by tile through a 256-entry table. Exactly fy_cpu_linear's
 * result on the dequantised weights. Other dtypes as fy_cpu_linear_lowp
 * (their values times the scale when one is given). */
fy_status fy_cpu_linear_scaled(fy_cpu_ctx *ctx, const float *x, const void *w, fy_dtype w_dtype,
                               const float *scale, int scale_rows, const float *b, float *y, int64_t M,
                               int64_t K, int64_t N);
/* The same cut into one column tile per thread when the product is large
 * (ops_linear_wide.c): the op table's linear. */
fy_status fy_cpu_linear_wide(fy_cpu_ctx *ctx, const float *x, const void *w, fy_dtype w_dtype, const float *scale,
                             int scale_rows, const float *b, float *y, int64_t M, int64_t K, int64_t N);
/* c[i] = alpha * a[i] op(b[i]) for i < batch: a [M, K], op(b) [K, N]
 * (b stored [N, K] when trans_b), c [M, N]; each batch item contiguous. */
fy_status fy_cpu_bmm(fy_cpu_ctx *ctx, const float *a, const float *b, float *c, int64_t batch,
                     int64_t M, int64_t N, int64_t K, int trans_b, float alpha);

/* ---- Elementwise (in place allowed: out may equal an input) -------------- */

void fy_cpu_add(fy_cpu_ctx *ctx, const float *a, const float *b, float *out, int64_t n);
void fy_cpu_mul(fy_cpu_ctx *ctx, const float *a, const float *b, float *out, int64_t n);
void fy_cpu_scale(fy_cpu_ctx *ctx, const float *x, float s, float *out, int64_t n);
/* y += alpha * x */
void fy_cpu_axpy(fy_cpu_ctx *ctx, float alpha, const float *x, float *y, int64_t n);
void fy_cpu_silu(fy_cpu_ctx *ctx, const float *x, float *out, int64_t n);
/* Exact GELU, 0.5 x (1 + erf(x / sqrt 2)). */
void fy_cpu_gelu(fy_cpu_ctx *ctx, const float *x, float *out, int64_t n);
/* GELU(approximate="tanh"), also transformers' "gelu_new". */
void fy_cpu_gelu_tanh(fy_cpu_ctx *ctx, const float *x, float *out, int64_t n);
void fy_cpu_relu(fy_cpu_ctx *ctx, const float *x, float *out, int64_t n);
/* T5 gated-gelu: out = gelu_tanh(h0) * h1, with h0 = x W0^T, h1 = x W1^T. */
void fy_cpu_gated_gelu(fy_cpu_ctx *ctx, const float *h0, const float *h1, float *out, int64_t n);
/* Wan's gated residual: x[r, :] += y[r, :] * gate[r / rows_per_gate, :] for
 * rows x dim (gate per batch item: rows_per_gate = tokens; per token: 1). */
void fy_cpu_gated_add(fy_cpu_ctx *ctx, float *x, const float *y, const float *gate, int64_t rows,
                      int64_t dim, int64_t rows_per_gate);

/* ---- Normalization over the last dim of [rows, dim] (in place allowed) --- */

/* (x - mean) / sqrt(var + eps) * w + b; w and b may be NULL (no affine). */
void fy_cpu_layer_norm(fy_cpu_ctx *ctx, const float *x, const float *w, const float *b, float *out,
                       int64_t rows, int64_t dim, float eps);
/* Wan's norm + modulate: layer_norm(x, w, b) * (1 + scale) + shift, with
 * scale/shift rows indexed by r / rows_per_mod (as fy_cpu_gated_add). */
void fy_cpu_layer_norm_modulate(fy_cpu_ctx *ctx, const float *x, const float *w, const float *b,
                                const float *scale, const float *shift, float *out, int64_t rows,
                                int64_t dim, int64_t rows_per_mod, float eps);
/* T5 / torch RMSNorm: x * rsqrt(mean(x^2) + eps) * w (w may be NULL). */
void fy_cpu_rms_norm(fy_cpu_ctx *ctx, const float *x, const float *w, float *out, int64_t rows,
                     int64_t dim, float eps);
/* Wan VAE's WanRMS_norm over the channels of x [C, N]:
 * x / max(||x[:, n]||_2, eps) * sqrt(C) * gamma[c] + bias[c] (F.normalize; its
 * eps is 1e-12). bias may be NULL. */
void fy_cpu_channel_rms_norm(fy_cpu_ctx *ctx, const float *x, const float *gamma, const float *bias,
                             float *out, int64_t C, int64_t N, float eps);
/* torch's GroupNorm on x [C, N] (N = spatial size): the C channels in G
 * groups of C / G, each group normalised over its channels and positions
 * (biased variance), then out[c, n] = xhat * w[c] + b[c] (w, b may be NULL). */
void fy_cpu_group_norm(fy_cpu_ctx *ctx, const float *x, const float *w, const float *b, float *out, int64_t C,
                       int64_t N, int64_t G, float eps);
/* Softmax over the last dim of [rows, dim]. */
void fy_cpu_softmax(fy_cpu_ctx *ctx, const float *x, float *out, int64_t rows, int64_t dim);

/* ---- Attention ---------------------------------------------------------- */

/* out = softmax(scale * q k^T + bias, masked) v per (batch, head), with
 * q [B, Lq, H, D], k/v [B, Lk, H, D], out [B, Lq, H, D] (heads interleaved,
 * as the projections produce them). bias [H, Lq, Lk] is added after scaling
 * and broadcast over the batch (T5's position bias); NULL for none.
 * key_mask [B, Lk]: 0 = masked key; NULL for none. A row whose keys are all
 * masked gets the mean of v (what an additive finfo.min mask gives).
 * An online softmax over key tiles: no Lq x Lk buffer is formed. */
fy_status fy_cpu_attention(fy_cpu_ctx *ctx, const float *q, const float *k, const float *v, float *out,
                           int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D, float scale,
                           const float *bias, const int64_t *key_mask);

/* ---- Position ----------------------------------------------------------- */

/* Wan rotary embedding of x [B, L, H, D] in place: each pair (x[2i], x[2i+1])
 * is rotated by the angle whose cos/sin are cos_t/sin_t [L, D/2]:
 *   x'[2i] = x[2i] cos - x[2i+1] sin,  x'[2i+1] = x[2i] sin + x[2i+1] cos.
 * (diffusers' freqs_cos[..., 0::2] / freqs_sin[..., 1::2] are these tables.) */
void fy_cpu_rope(fy_cpu_ctx *ctx, float *x, const float *cos_t, const float *sin_t, int64_t B,
                 int64_t L, int64_t H, int64_t D);

/* ---- Gathers ------------------------------------------------------------- */

/* out [rows, dim] f32 = table[ids[r], :] for a table [vocab, dim] of any
 * float dtype (an embedding lookup). ids are checked by the caller. */
fy_status fy_cpu_embedding(fy_cpu_ctx *ctx, const void *table, fy_dtype dtype, const int64_t *ids, float *out,
                           int64_t rows, int64_t dim);
/* T5's position bias for query rows [q0, q0 + nq) of a sequence of L:
 * out [H, nq, L] with out[h, i, j] = table[bucket[j - (q0 + i) + L - 1] * H + h],
 * table [num_buckets, H], bucket [2L - 1] the bucket of each relative
 * position key - query (indexed from -(L - 1)). */
void fy_cpu_relative_bias(fy_cpu_ctx *ctx, const float *table, const int32_t *bucket, float *out, int64_t H,
                          int64_t L, int64_t q0, int64_t nq);

/* ---- Layout -------------------------------------------------------------- */

/* dst[j * ld_dst + i] = src[i * ld_src + j] for i < rows, j < cols (a
 * transpose between strided matrices); with accumulate, += instead of =.
 * dst and src must not overlap. */
void fy_cpu_transpose(fy_cpu_ctx *ctx, float *dst, int64_t ld_dst, const float *src, int64_t ld_src, int64_t rows,
                      int64_t cols, int accumulate);
/* out [planes, 2h, 2w] = nearest-neighbour 2x upsampling of in [planes, h, w]
 * (torch's Upsample(scale_factor=2, mode="nearest-exact") on even sizes). */
void fy_cpu_upsample_nearest2x(fy_cpu_ctx *ctx, const float *in, float *out, int64_t planes, int64_t h, int64_t w);

/* dst = src.permute(perm) (ferry/ops.h). */
fy_status fy_cpu_permute(fy_cpu_ctx *ctx, float *dst, const float *src, int ndim, const int64_t *shape,
                         const int *perm);

/* ---- Convolution -------------------------------------------------------- */

/* y [batch, c_out, t_out, h_out, w_out] = conv3d(x [batch, c_in, t, h, w],
 * w [c_out, c_in, kt, kh, kw]) + b (b may be NULL), as torch's Conv3d with
 * the explicit padding above. im2col in chunks of output rows + GEMM. */
fy_status fy_cpu_conv3d(fy_cpu_ctx *ctx, const float *x, const float *w, const float *b, float *y,
                        int64_t batch, const fy_conv3d_shape *s);

#ifdef __cplusplus
}
#endif
#endif
