/* The compute ops: one table of function pointers per backend.
 *
 * A backend (ferry/backend.h) carries an fy_ops_class: whether its ops can
 * run here, which op and dtype combinations it supports, the scratch it may
 * hold, and a constructor for an fy_ops, the table models call
 * (ops->linear(ops, ...)). The CPU backend's table (OpenBLAS and a thread
 * pool) serves cpu and emu; the CUDA backend's serves cuda. A model is the
 * same source on every backend: it asks the class at load whether the ops it
 * uses are supported (fy_ops_require), then calls the table.
 *
 * Tensors are typed views (fy_view: a pointer and its dtype) into the
 * backend's memory (the engine's device pointers: weights it hands out,
 * fy_engine_alloc buffers). Weights of a linear may be f32, f16, bf16 or fp8
 * with their scale (fy_weight); arithmetic accumulates in f32. Sizes are
 * element counts; arrays are contiguous and row-major. Outputs may alias
 * inputs only where stated ("in place allowed"). Every op returns a status:
 * on a GPU a launch returns at once and reports launch errors only. A table
 * is used by one caller thread at a time.
 *
 * Results on the CPU do not depend on the thread count, except the linear's
 * wide tiling of large products (one tile per thread, each tile one sgemm
 * over the whole of K). */
#ifndef FERRY_OPS_H
#define FERRY_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ferry/dtype.h"
#include "ferry/error.h"
#include "ferry/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A typed view of an array in the backend's memory. data NULL: none (an
 * optional bias, mask or affine). */
typedef struct fy_view {
    void *data;
    fy_dtype dtype;
} fy_view;

static inline fy_view fy_view_of(const void *data, fy_dtype dtype)
{
    fy_view v = {(void *)data, dtype};
    return v;
}
static inline fy_view fy_f32(const float *data)
{
    return fy_view_of(data, FY_F32);
}
#define FY_NO_VIEW fy_view_of(NULL, FY_F32)

/* A linear's weight [N, K]: row n is data[n] * scale[scale_rows ? n : 0]
 * (scale NULL: none; fp8 storage, ferry/quant.h). */
typedef struct fy_weight {
    const void *data;
    fy_dtype dtype;
    const float *scale;
    int scale_rows;
} fy_weight;

static inline fy_weight fy_weight_of(const fy_tensor *t)
{
    fy_weight w = {t->data, t->dtype, t->scale, t->scale_rows};
    return w;
}

typedef struct fy_conv3d_shape {
    int64_t c_in, t, h, w;          /* input [c_in, t, h, w] per batch item */
    int64_t c_out;
    int64_t kt, kh, kw;             /* kernel */
    int64_t st, sh, sw;             /* stride */
    int64_t pad_t0, pad_t1;         /* zero padding before/after in time (causal: front only) */
    int64_t pad_h0, pad_h1, pad_w0, pad_w1;
} fy_conv3d_shape;

/* Output sizes; FY_ERR_INVALID when the kernel does not fit. */
fy_status fy_conv3d_out_size(const fy_conv3d_shape *s, int64_t *t_out, int64_t *h_out, int64_t *w_out);

#define FY_PERMUTE_MAX_DIMS 8

/* The ops, for supports queries and messages. */
typedef enum fy_op {
    FY_OP_COPY, FY_OP_CONVERT, FY_OP_LINEAR, FY_OP_BMM,
    FY_OP_ADD, FY_OP_MUL, FY_OP_SCALE, FY_OP_AXPY, FY_OP_SILU, FY_OP_GELU, FY_OP_GELU_TANH, FY_OP_RELU,
    FY_OP_GATED_GELU, FY_OP_GATED_ADD,
    FY_OP_LAYER_NORM, FY_OP_LAYER_NORM_MODULATE, FY_OP_RMS_NORM, FY_OP_CHANNEL_RMS_NORM, FY_OP_GROUP_NORM,
    FY_OP_SOFTMAX, FY_OP_ATTENTION, FY_OP_ROPE, FY_OP_EMBEDDING, FY_OP_RELATIVE_BIAS,
    FY_OP_TRANSPOSE, FY_OP_PERMUTE, FY_OP_UPSAMPLE_NEAREST2X, FY_OP_CONV3D,
    FY_OP_COUNT
} fy_op;

const char *fy_op_name(fy_op op);

typedef struct fy_ops fy_ops;
typedef struct fy_backend fy_backend;
typedef struct fy_pool fy_pool;

/* What a table is made with. */
typedef struct fy_ops_config {
    int threads;          /* the CPU pool (0 = one per online core) */
    fy_pool *pool;        /* device scratch, on a device with its own memory */
    /* FY_F32: exact f32 GEMMs; FY_BF16 (or FY_F16): GEMM operands in bf16 on
     * a GPU's tensor cores, f32 accumulation. */
    fy_dtype gemm_dtype;
} fy_ops_config;

/* A backend's ops, before any table exists. */
typedef struct fy_ops_class {
    /* FY_OK when the ops can run here, else why not and what to use. */
    fy_status (*available)(void);
    /* Whether op runs on activations of dtype act (and, for linear,
     * embedding and conv3d, weights of dtype weight). */
    bool (*supports)(fy_op op, fy_dtype act, fy_dtype weight);
    /* Device scratch a table may hold besides a model's buffers (0 on the
     * host), so a model's activation estimate reserves it. */
    uint64_t (*scratch_bound)(bool convolutions);
    fy_status (*create)(fy_backend *b, const fy_ops_config *c, fy_ops **out);
} fy_ops_class;

/* The table. Shapes and semantics are stated once, here. */
struct fy_ops {
    const fy_ops_class *cls;
    const char *device; /* the backend's name, for messages */
    void (*free)(fy_ops *o);

    /* ---- Data movement ---- */
    /* dst = src (bytes, within the device). */
    fy_status (*copy)(fy_ops *o, void *dst, const void *src, size_t bytes);
    /* height rows of width bytes from src (row pitch src_pitch) to dst (row
     * pitch dst_pitch); the regions must not overlap. */
    fy_status (*copy2d)(fy_ops *o, void *dst, size_t dst_pitch, const void *src, size_t src_pitch, size_t width,
                        size_t height);
    /* dst [n] = src [n] converted between float dtypes. */
    fy_status (*convert)(fy_ops *o, fy_view dst, fy_view src, size_t n);

    /* ---- Matrix products ---- */
    /* y[M, N] = x[M, K] W^T + b, W [N, K] as nn.Linear stores it; b may be
     * none. Weights are converted block by block as they are used, never
     * all at once. */
    fy_status (*linear)(fy_ops *o, fy_view x, fy_weight w, fy_view b, fy_view y, int64_t M, int64_t K, int64_t N);
    /* c[i] = alpha * a[i] op(b[i]) for i < batch: a [M, K], op(b) [K, N]
     * (b stored [N, K] when trans_b), c [M, N]; each batch item contiguous. */
    fy_status (*bmm)(fy_ops *o, fy_view a, fy_view b, fy_view c, int64_t batch, int64_t M, int64_t N, int64_t K,
                     int trans_b, float alpha);

    /* ---- Elementwise (in place allowed) ---- */
    fy_status (*add)(fy_ops *o, fy_view a, fy_view b, fy_view out, int64_t n);
    fy_status (*mul)(fy_ops *o, fy_view a, fy_view b, fy_view out, int64_t n);
    fy_status (*scale)(fy_ops *o, fy_view x, float s, fy_view out, int64_t n);
    /* y += alpha * x */
    fy_status (*axpy)(fy_ops *o, float alpha, fy_view x, fy_view y, int64_t n);
    fy_status (*silu)(fy_ops *o, fy_view x, fy_view out, int64_t n);
    /* Exact GELU, 0.5 x (1 + erf(x / sqrt 2)). */
    fy_status (*gelu)(fy_ops *o, fy_view x, fy_view out, int64_t n);
    /* GELU(approximate="tanh"), also transformers' "gelu_new". */
    fy_status (*gelu_tanh)(fy_ops *o, fy_view x, fy_view out, int64_t n);
    fy_status (*relu)(fy_ops *o, fy_view x, fy_view out, int64_t n);
    /* T5 gated-gelu: out = gelu_tanh(h0) * h1. */
    fy_status (*gated_gelu)(fy_ops *o, fy_view h0, fy_view h1, fy_view out, int64_t n);
    /* Wan's gated residual: x[r, :] += y[r, :] * gate[r / rows_per_gate, :]
     * for rows x dim (gate per batch item: rows_per_gate = tokens; per token: 1). */
    fy_status (*gated_add)(fy_ops *o, fy_view x, fy_view y, fy_view gate, int64_t rows, int64_t dim,
                           int64_t rows_per_gate);

    /* ---- Normalization over the last dim of [rows, dim] (in place allowed) ---- */
    /* (x - mean) / sqrt(var + eps) * w + b; w and b may be none. */
    fy_status (*layer_norm)(fy_ops *o, fy_view x, fy_view w, fy_view b, fy_view out, int64_t rows, int64_t dim,
                            float eps);
    /* layer_norm(x, w, b) * (1 + scale) + shift, scale/shift rows indexed by
     * r / rows_per_mod (as gated_add). */
    fy_status (*layer_norm_modulate)(fy_ops *o, fy_view x, fy_view w, fy_view b, fy_view scale, fy_view shift,
                                     fy_view out, int64_t rows, int64_t dim, int64_t rows_per_mod, float eps);
    /* T5 / torch RMSNorm: x * rsqrt(mean(x^2) + eps) * w (w may be none). */
    fy_status (*rms_norm)(fy_ops *o, fy_view x, fy_view w, fy_view out, int64_t rows, int64_t dim, float eps);
    /* Wan VAE's RMS norm over the channels of x [C, N]:
     * x / max(||x[:, n]||_2, eps) * sqrt(C) * gamma[c] + bias[c] (bias may be none). */
    fy_status (*channel_rms_norm)(fy_ops *o, fy_view x, fy_view gamma, fy_view bias, fy_view out, int64_t C,
                                  int64_t N, float eps);
    /* torch's GroupNorm on x [C, N] (N = spatial size): C channels in G
     * groups, each normalised over its channels and positions (biased
     * variance), then * w[c] + b[c] (w, b may be none). */
    fy_status (*group_norm)(fy_ops *o, fy_view x, fy_view w, fy_view b, fy_view out, int64_t C, int64_t N,
                            int64_t G, float eps);
    /* Softmax over the last dim of [rows, dim]. */
    fy_status (*softmax)(fy_ops *o, fy_view x, fy_view out, int64_t rows, int64_t dim);

    /* ---- Attention and position ---- */
    /* out = softmax(scale * q k^T + bias, masked) v per (batch, head), with
     * q [B, Lq, H, D], k/v [B, Lk, H, D], out [B, Lq, H, D]. bias [H, Lq, Lk]
     * is added after scaling, broadcast over the batch (T5's position bias);
     * none for none. key_mask [B, Lk] (device int64): 0 = masked key; NULL
     * for none. A row whose keys are all masked gets the mean of v. An online
     * softmax over key tiles: no Lq x Lk buffer is formed. */
    fy_status (*attention)(fy_ops *o, fy_view q, fy_view k, fy_view v, fy_view out, int64_t B, int64_t H,
                           int64_t Lq, int64_t Lk, int64_t D, float scale, fy_view bias, const int64_t *key_mask);
    /* Rotary embedding of x [B, L, H, D] in place: each pair (x[2i], x[2i+1])
     * rotated by the angle whose cos/sin are cos_t/sin_t [L, D/2]. */
    fy_status (*rope)(fy_ops *o, fy_view x, fy_view cos_t, fy_view sin_t, int64_t B, int64_t L, int64_t H,
                      int64_t D);

    /* ---- Gathers ---- */
    /* out [rows, dim] = table[ids[r], :] for a table [vocab, dim] of any
     * float dtype; ids (device int64) are checked by the caller. */
    fy_status (*embedding)(fy_ops *o, fy_view table, const int64_t *ids, fy_view out, int64_t rows, int64_t dim);
    /* T5's position bias for query rows [q0, q0 + nq) of a sequence of L:
     * out [H, nq, L], out[h, i, j] = table[bucket[j - (q0 + i) + L - 1] * H + h]. */
    fy_status (*relative_bias)(fy_ops *o, fy_view table, const int32_t *bucket, fy_view out, int64_t H, int64_t L,
                               int64_t q0, int64_t nq);

    /* ---- Layout ---- */
    /* dst[j * ld_dst + i] (+)= src[i * ld_src + j] for i < rows, j < cols;
     * dst and src must not overlap. */
    fy_status (*transpose)(fy_ops *o, fy_view dst, int64_t ld_dst, fy_view src, int64_t ld_src, int64_t rows,
                           int64_t cols, int accumulate);
    /* dst = src.permute(perm).contiguous() for src [shape[0], ...] (ndim at
     * most FY_PERMUTE_MAX_DIMS); dst and src must not overlap. */
    fy_status (*permute)(fy_ops *o, fy_view dst, fy_view src, int ndim, const int64_t *shape, const int *perm);
    /* out [planes, 2h, 2w] = nearest 2x upsampling of in [planes, h, w]. */
    fy_status (*upsample_nearest2x)(fy_ops *o, fy_view in, fy_view out, int64_t planes, int64_t h, int64_t w);

    /* ---- Convolution ---- */
    /* y [batch, c_out, t', h', w'] = conv3d(x [batch, c_in, t, h, w],
     * w [c_out, c_in, kt, kh, kw]) + b (b may be none), torch's Conv3d with
     * the explicit padding of s. */
    fy_status (*conv3d)(fy_ops *o, fy_view x, fy_view w, fy_view b, fy_view y, int64_t batch,
                        const fy_conv3d_shape *s);
};

/* b's table (FY_ERR_UNSUPPORTED when b has no ops or they cannot run here). */
fy_status fy_ops_create(fy_backend *b, const fy_ops_config *c, fy_ops **out);
void fy_ops_free(fy_ops *o);
/* FY_OK when b's ops can run here and support op on activations of dtype
 * act (weights of dtype weight); else one line naming op, dtypes and device. */
fy_status fy_ops_require(const fy_backend *b, fy_op op, fy_dtype act, fy_dtype weight);
/* The scratch b's tables may hold (see fy_ops_class). */
uint64_t fy_ops_scratch_bound(const fy_backend *b, bool convolutions);

#ifdef __cplusplus
}
#endif
#endif
