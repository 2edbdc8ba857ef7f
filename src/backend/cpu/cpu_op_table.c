/* The CPU backend's op table (cpu and emu): each op checks its views' dtypes
 * and runs the kernel of cpu_ops.h. The kernels cannot fail once their
 * arguments are checked, so most entries return FY_OK. */
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_op_table.h"
#include "backend/cpu/ops_internal.h"
#include "ferry/backend.h"

typedef struct cpu_ops {
    fy_ops base;
    fy_cpu_ctx *ctx;
} cpu_ops;

static fy_cpu_ctx *ctx_of(fy_ops *o)
{
    return ((cpu_ops *)o)->ctx;
}

static fy_status need_f32(fy_ops *o, fy_op op, const fy_view *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].data && v[i].dtype != FY_F32)
            return fy_error(FY_ERR_UNSUPPORTED, "op %s: %s activations are not supported on device %s", fy_op_name(op),
                            fy_dtype_name(v[i].dtype), o->device);
    return FY_OK;
}

/* Every activation view of an op is f32 (the kernels' type). */
#define NEED_F32(op, ...)                                                                                              \
    do {                                                                                                               \
        const fy_view need_[] = {__VA_ARGS__};                                                                         \
        FY_TRY(need_f32(o, op, need_, sizeof need_ / sizeof need_[0]));                                                \
    } while (0)
#define F(v) ((float *)(v).data)

static fy_status cpu_copy(fy_ops *o, void *dst, const void *src, size_t bytes)
{
    if (dst != src) memmove(dst, src, bytes);
    return FY_OK;
}

static fy_status cpu_copy2d(fy_ops *o, void *dst, size_t dst_pitch, const void *src, size_t src_pitch, size_t width,
                            size_t height)
{
    if (dst == src) return FY_OK;
    for (size_t r = 0; r < height; r++) memcpy((char *)dst + r * dst_pitch, (const char *)src + r * src_pitch, width);
    return FY_OK;
}

static fy_status cpu_convert(fy_ops *o, fy_view dst, fy_view src, size_t n)
{
    if (dst.data == src.data && dst.dtype == src.dtype) return FY_OK;
    return fy_convert(dst.data, dst.dtype, src.data, src.dtype, n);
}

static fy_status cpu_linear(fy_ops *o, fy_view x, fy_weight w, fy_view b, fy_view y, int64_t M, int64_t K, int64_t N)
{
    NEED_F32(FY_OP_LINEAR, x, b, y);
    return fy_cpu_linear_wide(ctx_of(o), F(x), w.data, w.dtype, w.scale, w.scale_rows, F(b), F(y), M, K, N);
}

static fy_status cpu_bmm(fy_ops *o, fy_view a, fy_view b, fy_view c, int64_t batch, int64_t M, int64_t N, int64_t K,
                         int trans_b, float alpha)
{
    NEED_F32(FY_OP_BMM, a, b, c);
    return fy_cpu_bmm(ctx_of(o), F(a), F(b), F(c), batch, M, N, K, trans_b, alpha);
}

/* ---- elementwise ---- */

static fy_status cpu_add(fy_ops *o, fy_view a, fy_view b, fy_view out, int64_t n)
{
    NEED_F32(FY_OP_ADD, a, b, out);
    fy_cpu_add(ctx_of(o), F(a), F(b), F(out), n);
    return FY_OK;
}

static fy_status cpu_mul(fy_ops *o, fy_view a, fy_view b, fy_view out, int64_t n)
{
    NEED_F32(FY_OP_MUL, a, b, out);
    fy_cpu_mul(ctx_of(o), F(a), F(b), F(out), n);
    return FY_OK;
}

static fy_status cpu_scale(fy_ops *o, fy_view x, float s, fy_view out, int64_t n)
{
    NEED_F32(FY_OP_SCALE, x, out);
    fy_cpu_scale(ctx_of(o), F(x), s, F(out), n);
    return FY_OK;
}

static fy_status cpu_axpy(fy_ops *o, float alpha, fy_view x, fy_view y, int64_t n)
{
    NEED_F32(FY_OP_AXPY, x, y);
    fy_cpu_axpy(ctx_of(o), alpha, F(x), F(y), n);
    return FY_OK;
}

/* The unary activations share one shape. */
typedef void (*unary_fn)(fy_cpu_ctx *ctx, const float *x, float *out, int64_t n);

static fy_status unary(fy_ops *o, fy_op op, unary_fn fn, fy_view x, fy_view out, int64_t n)
{
    NEED_F32(op, x, out);
    fn(ctx_of(o), F(x), F(out), n);
    return FY_OK;
}

static fy_status cpu_silu(fy_ops *o, fy_view x, fy_view out, int64_t n)
{
    return unary(o, FY_OP_SILU, fy_cpu_silu, x, out, n);
}

static fy_status cpu_gelu(fy_ops *o, fy_view x, fy_view out, int64_t n)
{
    return unary(o, FY_OP_GELU, fy_cpu_gelu, x, out, n);
}

static fy_status cpu_gelu_tanh(fy_ops *o, fy_view x, fy_view out, int64_t n)
{
    return unary(o, FY_OP_GELU_TANH, fy_cpu_gelu_tanh, x, out, n);
}

static fy_status cpu_relu(fy_ops *o, fy_view x, fy_view out, int64_t n)
{
    return unary(o, FY_OP_RELU, fy_cpu_relu, x, out, n);
}

static fy_status cpu_gated_gelu(fy_ops *o, fy_view h0, fy_view h1, fy_view out, int64_t n)
{
    NEED_F32(FY_OP_GATED_GELU, h0, h1, out);
    fy_cpu_gated_gelu(ctx_of(o), F(h0), F(h1), F(out), n);
    return FY_OK;
}

static fy_status cpu_gated_add(fy_ops *o, fy_view x, fy_view y, fy_view gate, int64_t rows, int64_t dim,
                               int64_t rows_per_gate)
{
    NEED_F32(FY_OP_GATED_ADD, x, y, gate);
    fy_cpu_gated_add(ctx_of(o), F(x), F(y), F(gate), rows, dim, rows_per_gate);
    return FY_OK;
}

/* ---- normalization ---- */

static fy_status cpu_layer_norm(fy_ops *o, fy_view x, fy_view w, fy_view b, fy_view out, int64_t rows, int64_t dim,
                                float eps)
{
    NEED_F32(FY_OP_LAYER_NORM, x, w, b, out);
    fy_cpu_layer_norm(ctx_of(o), F(x), F(w), F(b), F(out), rows, dim, eps);
    return FY_OK;
}

static fy_status cpu_layer_norm_modulate(fy_ops *o, fy_view x, fy_view w, fy_view b, fy_view scale, fy_view shift,
                                         fy_view out, int64_t rows, int64_t dim, int64_t rows_per_mod, float eps)
{
    NEED_F32(FY_OP_LAYER_NORM_MODULATE, x, w, b, scale, shift, out);
    fy_cpu_layer_norm_modulate(ctx_of(o), F(x), F(w), F(b), F(scale), F(shift), F(out), rows, dim, rows_per_mod, eps);
    return FY_OK;
}

static fy_status cpu_rms_norm(fy_ops *o, fy_view x, fy_view w, fy_view out, int64_t rows, int64_t dim, float eps)
{
    NEED_F32(FY_OP_RMS_NORM, x, w, out);
    fy_cpu_rms_norm(ctx_of(o), F(x), F(w), F(out), rows, dim, eps);
    return FY_OK;
}

static fy_status cpu_channel_rms_norm(fy_ops *o, fy_view x, fy_view gamma, fy_view bias, fy_view out, int64_t C,
                                      int64_t N, float eps)
{
    NEED_F32(FY_OP_CHANNEL_RMS_NORM, x, gamma, bias, out);
    fy_cpu_channel_rms_norm(ctx_of(o), F(x), F(gamma), F(bias), F(out), C, N, eps);
    return FY_OK;
}

static fy_status cpu_group_norm(fy_ops *o, fy_view x, fy_view w, fy_view b, fy_view out, int64_t C, int64_t N,
                                int64_t G, float eps)
{
    NEED_F32(FY_OP_GROUP_NORM, x, w, b, out);
    if (G < 1 || C % G)
        return fy_error(FY_ERR_INVALID, "group norm: %lld channels in %lld groups", (long long)C, (long long)G);
    fy_cpu_group_norm(ctx_of(o), F(x), F(w), F(b), F(out), C, N, G, eps);
    return FY_OK;
}

static fy_status cpu_softmax(fy_ops *o, fy_view x, fy_view out, int64_t rows, int64_t dim)
{
    NEED_F32(FY_OP_SOFTMAX, x, out);
    fy_cpu_softmax(ctx_of(o), F(x), F(out), rows, dim);
    return FY_OK;
}

/* ---- attention, position, gathers, layout, convolution ---- */

static fy_status cpu_attention(fy_ops *o, fy_view q, fy_view k, fy_view v, fy_view out, int64_t B, int64_t H,
                               int64_t Lq, int64_t Lk, int64_t D, float scale, fy_view bias, const int64_t *key_mask)
{
    NEED_F32(FY_OP_ATTENTION, q, k, v, out, bias);
    return fy_cpu_attention(ctx_of(o), F(q), F(k), F(v), F(out), B, H, Lq, Lk, D, scale, F(bias), key_mask);
}

static fy_status cpu_rope(fy_ops *o, fy_view x, fy_view cos_t, fy_view sin_t, int64_t B, int64_t L, int64_t H,
                          int64_t D)
{
    NEED_F32(FY_OP_ROPE, x, cos_t, sin_t);
    fy_cpu_rope(ctx_of(o), F(x), F(cos_t), F(sin_t), B, L, H, D);
    return FY_OK;
}

static fy_status cpu_embedding(fy_ops *o, fy_view table, const int64_t *ids, fy_view out, int64_t rows, int64_t dim)
{
    NEED_F32(FY_OP_EMBEDDING, out);
    return fy_cpu_embedding(ctx_of(o), table.data, table.dtype, ids, F(out), rows, dim);
}

static fy_status cpu_relative_bias(fy_ops *o, fy_view table, const int32_t *bucket, fy_view out, int64_t H, int64_t L,
                                   int64_t q0, int64_t nq)
{
    NEED_F32(FY_OP_RELATIVE_BIAS, table, out);
    fy_cpu_relative_bias(ctx_of(o), F(table), bucket, F(out), H, L, q0, nq);
    return FY_OK;
}

static fy_status cpu_transpose(fy_ops *o, fy_view dst, int64_t ld_dst, fy_view src, int64_t ld_src, int64_t rows,
                               int64_t cols, int accumulate)
{
    NEED_F32(FY_OP_TRANSPOSE, dst, src);
    fy_cpu_transpose(ctx_of(o), F(dst), ld_dst, F(src), ld_src, rows, cols, accumulate);
    return FY_OK;
}

static fy_status cpu_permute(fy_ops *o, fy_view dst, fy_view src, int ndim, const int64_t *shape, const int *perm)
{
    NEED_F32(FY_OP_PERMUTE, dst, src);
    return fy_cpu_permute(ctx_of(o), F(dst), F(src), ndim, shape, perm);
}

static fy_status cpu_upsample_nearest2x(fy_ops *o, fy_view in, fy_view out, int64_t planes, int64_t h, int64_t w)
{
    NEED_F32(FY_OP_UPSAMPLE_NEAREST2X, in, out);
    fy_cpu_upsample_nearest2x(ctx_of(o), F(in), F(out), planes, h, w);
    return FY_OK;
}

static fy_status cpu_conv3d(fy_ops *o, fy_view x, fy_view w, fy_view b, fy_view y, int64_t batch,
                            const fy_conv3d_shape *s)
{
    NEED_F32(FY_OP_CONV3D, x, w, b, y);
    return fy_cpu_conv3d(ctx_of(o), F(x), F(w), F(b), F(y), batch, s);
}

/* ---- the class ---- */

static bool cpu_supports(fy_op op, fy_dtype act, fy_dtype weight)
{
    if (act != FY_F32) return false;
    if (op == FY_OP_LINEAR && fy_dtype_is_quant(weight)) return true; /* GGUF blocks, decoded tile by tile */
    if (op == FY_OP_LINEAR || op == FY_OP_EMBEDDING) return fy_dtype_is_float(weight) && fy_dtype_size(weight);
    if (op == FY_OP_CONV3D) return weight == FY_F32;
    return op >= 0 && op < FY_OP_COUNT;
}

static void cpu_free(fy_ops *o)
{
    if (!o) return;
    fy_cpu_ctx_free(ctx_of(o));
    free(o);
}

static const fy_ops cpu_table = {
    .free = cpu_free,
    .copy = cpu_copy,
    .copy2d = cpu_copy2d,
    .convert = cpu_convert,
    .linear = cpu_linear,
    .bmm = cpu_bmm,
    .add = cpu_add,
    .mul = cpu_mul,
    .scale = cpu_scale,
    .axpy = cpu_axpy,
    .silu = cpu_silu,
    .gelu = cpu_gelu,
    .gelu_tanh = cpu_gelu_tanh,
    .relu = cpu_relu,
    .gated_gelu = cpu_gated_gelu,
    .gated_add = cpu_gated_add,
    .layer_norm = cpu_layer_norm,
    .layer_norm_modulate = cpu_layer_norm_modulate,
    .rms_norm = cpu_rms_norm,
    .channel_rms_norm = cpu_channel_rms_norm,
    .group_norm = cpu_group_norm,
    .softmax = cpu_softmax,
    .attention = cpu_attention,
    .rope = cpu_rope,
    .embedding = cpu_embedding,
    .relative_bias = cpu_relative_bias,
    .transpose = cpu_transpose,
    .permute = cpu_permute,
    .upsample_nearest2x = cpu_upsample_nearest2x,
    .conv3d = cpu_conv3d,
};

static fy_status cpu_create(fy_backend *b, const fy_ops_config *c, fy_ops **out)
{
    *out = NULL;
    cpu_ops *ops = calloc(1, sizeof *ops);
    if (!ops) return fy_error(FY_ERR_NOMEM, "ops: out of memory");
    fy_status st = fy_cpu_ctx_create(c ? c->threads : 0, &ops->ctx);
    if (st != FY_OK) {
        free(ops);
        return st;
    }
    ops->base = cpu_table;
    ops->base.cls = &fy_cpu_ops_class;
    ops->base.device = fy_backend_name(b);
    *out = &ops->base;
    return FY_OK;
}

const fy_ops_class fy_cpu_ops_class = {
    .supports = cpu_supports,
    .create = cpu_create,
};

fy_cpu_ctx *fy_cpu_ops_ctx(fy_ops *o)
{
    return o && o->cls == &fy_cpu_ops_class ? ctx_of(o) : NULL;
}
