/* The CUDA backend's op table: each op makes the device current on the
 * calling thread, checks its views' dtypes and launches the kernel of
 * cuda_ops.h; under FERRY_CUDA_SYNC=1 it waits and names the op that failed.
 * Reached only through the backend's vtable (fy_cuda_ops_class). */
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_op_table.h"
#include "backend/cuda/cuda_ops.h"

typedef struct cuda_table {
    fy_ops base;
    fy_cuda_ops *cuda;
} cuda_table;

static fy_cuda_ops *cuda_of(fy_ops *o)
{
    return ((cuda_table *)o)->cuda;
}

static fy_status need_f32(fy_ops *o, fy_op op, const fy_view *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].data && v[i].dtype != FY_F32)
            return fy_error(FY_ERR_UNSUPPORTED, "op %s: %s activations are not supported on device %s", fy_op_name(op),
                            fy_dtype_name(v[i].dtype), o->device);
    return FY_OK;
}

/* Checks the views, then runs call with the device current; the op's name
 * goes to FERRY_CUDA_SYNC=1's message. */
#define ON_GPU(op, call, ...)                                                                                          \
    do {                                                                                                               \
        const fy_view need_[] = {__VA_ARGS__};                                                                         \
        FY_TRY(need_f32(o, op, need_, sizeof need_ / sizeof need_[0]));                                                \
        fy_cuda_ops *gpu_ = cuda_of(o);                                                                                \
        fy_status gpu_st_ = fy_cuda_ops_enter(gpu_);                                                                   \
        if (gpu_st_ == FY_OK) gpu_st_ = (call);                                                                        \
        return fy_cuda_ops_leave(gpu_, fy_op_name(op), gpu_st_);                                                       \
    } while (0)
#define F(v) ((float *)(v).data)
#define G    cuda_of(o)

static fy_status gpu_copy(fy_ops *o, void *dst, const void *src, size_t bytes)
{
    ON_GPU(FY_OP_COPY, fy_cuda_copy(G, dst, src, bytes), FY_NO_VIEW);
}

static fy_status gpu_copy2d(fy_ops *o, void *dst, size_t dst_pitch, const void *src, size_t src_pitch, size_t width,
                            size_t height)
{
    ON_GPU(FY_OP_COPY, fy_cuda_copy2d(G, dst, dst_pitch, src, src_pitch, width, height), FY_NO_VIEW);
}

static fy_status gpu_convert(fy_ops *o, fy_view dst, fy_view src, size_t n)
{
    ON_GPU(FY_OP_CONVERT, fy_cuda_to_f32(G, F(dst), src.data, src.dtype, n), dst);
}

static fy_status gpu_linear(fy_ops *o, fy_view x, fy_weight w, fy_view b, fy_view y, int64_t M, int64_t K, int64_t N)
{
    ON_GPU(FY_OP_LINEAR, fy_cuda_linear(G, F(x), w.data, w.dtype, w.scale, w.scale_rows, F(b), F(y), M, K, N), x, b, y);
}

static fy_status gpu_bmm(fy_ops *o, fy_view a, fy_view b, fy_view c, int64_t batch, int64_t M, int64_t N, int64_t K,
                         int trans_b, float alpha)
{
    ON_GPU(FY_OP_BMM, fy_cuda_bmm(G, F(a), F(b), F(c), batch, M, N, K, trans_b, alpha), a, b, c);
}

static fy_status gpu_add(fy_ops *o, fy_view a, fy_view b, fy_view out, int64_t n)
{
    ON_GPU(FY_OP_ADD, fy_cuda_add(G, F(a), F(b), F(out), n), a, b, out);
}

static fy_status gpu_mul(fy_ops *o, fy_view a, fy_view b, fy_view out, int64_t n)
{
    ON_GPU(FY_OP_MUL, fy_cuda_mul(G, F(a), F(b), F(out), n), a, b, out);
}

static fy_status gpu_scale(fy_ops *o, fy_view x, float s, fy_view out, int64_t n)
{
    ON_GPU(FY_OP_SCALE, fy_cuda_scale(G, F(x), s, F(out), n), x, out);
}

static fy_status gpu_axpy(fy_ops *o, float alpha, fy_view x, fy_view y, int64_t n)
{
    ON_GPU(FY_OP_AXPY, fy_cuda_axpy(G, alpha, F(x), F(y), n), x, y);
}

static fy_status gpu_silu(fy_ops *o, fy_view x, fy_view out, int64_t n)
{
    ON_GPU(FY_OP_SILU, fy_cuda_silu(G, F(x), F(out), n), x, out);
}

static fy_status gpu_gelu(fy_ops *o, fy_view x, fy_view out, int64_t n)
{
    ON_GPU(FY_OP_GELU, fy_cuda_gelu(G, F(x), F(out), n), x, out);
}

static fy_status gpu_gelu_tanh(fy_ops *o, fy_view x, fy_view out, int64_t n)
{
    ON_GPU(FY_OP_GELU_TANH, fy_cuda_gelu_tanh(G, F(x), F(out), n), x, out);
}

static fy_status gpu_relu(fy_ops *o, fy_view x, fy_view out, int64_t n)
{
    ON_GPU(FY_OP_RELU, fy_cuda_relu(G, F(x), F(out), n), x, out);
}

static fy_status gpu_gated_gelu(fy_ops *o, fy_view h0, fy_view h1, fy_view out, int64_t n)
{
    ON_GPU(FY_OP_GATED_GELU, fy_cuda_gated_gelu(G, F(h0), F(h1), F(out), n), h0, h1, out);
}

static fy_status gpu_gated_add(fy_ops *o, fy_view x, fy_view y, fy_view gate, int64_t rows, int64_t dim,
                               int64_t rows_per_gate)
{
    ON_GPU(FY_OP_GATED_ADD, fy_cuda_gated_add(G, F(x), F(y), F(gate), rows, dim, rows_per_gate), x, y, gate);
}

static fy_status gpu_layer_norm(fy_ops *o, fy_view x, fy_view w, fy_view b, fy_view out, int64_t rows, int64_t dim,
                                float eps)
{
    ON_GPU(FY_OP_LAYER_NORM, fy_cuda_layer_norm(G, F(x), F(w), F(b), F(out), rows, dim, eps), x, w, b, out);
}

static fy_status gpu_layer_norm_modulate(fy_ops *o, fy_view x, fy_view w, fy_view b, fy_view scale, fy_view shift,
                                         fy_view out, int64_t rows, int64_t dim, int64_t rows_per_mod, float eps)
{
    ON_GPU(FY_OP_LAYER_NORM_MODULATE,
           fy_cuda_layer_norm_modulate(G, F(x), F(w), F(b), F(scale), F(shift), F(out), rows, dim, rows_per_mod, eps),
           x, w, b, scale, shift, out);
}

static fy_status gpu_rms_norm(fy_ops *o, fy_view x, fy_view w, fy_view out, int64_t rows, int64_t dim, float eps)
{
    ON_GPU(FY_OP_RMS_NORM, fy_cuda_rms_norm(G, F(x), F(w), F(out), rows, dim, eps), x, w, out);
}

static fy_status gpu_channel_rms_norm(fy_ops *o, fy_view x, fy_view gamma, fy_view bias, fy_view out, int64_t C,
                                      int64_t N, float eps)
{
    ON_GPU(FY_OP_CHANNEL_RMS_NORM, fy_cuda_channel_rms_norm(G, F(x), F(gamma), F(bias), F(out), C, N, eps), x, gamma,
           bias, out);
}

static fy_status gpu_group_norm(fy_ops *o, fy_view x, fy_view w, fy_view b, fy_view out, int64_t C, int64_t N,
                                int64_t G_, float eps)
{
    if (G_ < 1 || C % G_)
        return fy_error(FY_ERR_INVALID, "group norm: %lld channels in %lld groups", (long long)C, (long long)G_);
    ON_GPU(FY_OP_GROUP_NORM, fy_cuda_group_norm(G, F(x), F(w), F(b), F(out), C, N, G_, eps), x, w, b, out);
}

static fy_status gpu_softmax(fy_ops *o, fy_view x, fy_view out, int64_t rows, int64_t dim)
{
    ON_GPU(FY_OP_SOFTMAX, fy_cuda_softmax(G, F(x), F(out), rows, dim), x, out);
}

static fy_status gpu_attention(fy_ops *o, fy_view q, fy_view k, fy_view v, fy_view out, int64_t B, int64_t H,
                               int64_t Lq, int64_t Lk, int64_t D, float scale, fy_view bias, const int64_t *key_mask)
{
    ON_GPU(FY_OP_ATTENTION, fy_cuda_attention(G, F(q), F(k), F(v), F(out), B, H, Lq, Lk, D, scale, F(bias), key_mask),
           q, k, v, out, bias);
}

static fy_status gpu_rope(fy_ops *o, fy_view x, fy_view cos_t, fy_view sin_t, int64_t B, int64_t L, int64_t H,
                          int64_t D)
{
    ON_GPU(FY_OP_ROPE, fy_cuda_rope(G, F(x), F(cos_t), F(sin_t), B, L, H, D), x, cos_t, sin_t);
}

static fy_status gpu_embedding(fy_ops *o, fy_view table, const int64_t *ids, fy_view out, int64_t rows, int64_t dim)
{
    ON_GPU(FY_OP_EMBEDDING, fy_cuda_embedding(G, table.data, table.dtype, ids, F(out), rows, dim), out);
}

static fy_status gpu_relative_bias(fy_ops *o, fy_view table, const int32_t *bucket, fy_view out, int64_t H, int64_t L,
                                   int64_t q0, int64_t nq)
{
    ON_GPU(FY_OP_RELATIVE_BIAS, fy_cuda_relative_bias(G, F(table), bucket, F(out), H, L, q0, nq), table, out);
}

static fy_status gpu_transpose(fy_ops *o, fy_view dst, int64_t ld_dst, fy_view src, int64_t ld_src, int64_t rows,
                               int64_t cols, int accumulate)
{
    ON_GPU(FY_OP_TRANSPOSE, fy_cuda_transpose(G, F(dst), ld_dst, F(src), ld_src, rows, cols, accumulate), dst, src);
}

static fy_status gpu_permute(fy_ops *o, fy_view dst, fy_view src, int ndim, const int64_t *shape, const int *perm)
{
    ON_GPU(FY_OP_PERMUTE, fy_cuda_permute(G, F(dst), F(src), ndim, shape, perm), dst, src);
}

static fy_status gpu_upsample_nearest2x(fy_ops *o, fy_view in, fy_view out, int64_t planes, int64_t h, int64_t w)
{
    ON_GPU(FY_OP_UPSAMPLE_NEAREST2X, fy_cuda_upsample_nearest2x(G, F(in), F(out), planes, h, w), in, out);
}

static fy_status gpu_conv3d(fy_ops *o, fy_view x, fy_view w, fy_view b, fy_view y, int64_t batch,
                            const fy_conv3d_shape *s)
{
    ON_GPU(FY_OP_CONV3D, fy_cuda_conv3d(G, F(x), F(w), F(b), F(y), batch, s), x, w, b, y);
}

/* ---- the class ---- */

static bool decodable(fy_dtype t)
{
    return t == FY_F32 || t == FY_F16 || t == FY_BF16 || t == FY_F8_E4M3 || t == FY_F8_E5M2;
}

static bool gpu_supports(fy_op op, fy_dtype act, fy_dtype weight)
{
    if (act != FY_F32) return false;
    if (op == FY_OP_LINEAR || op == FY_OP_EMBEDDING) return decodable(weight);
    if (op == FY_OP_CONV3D) return weight == FY_F32;
    return op >= 0 && op < FY_OP_COUNT;
}

static fy_status gpu_available(void)
{
    const char *opt_in = getenv("FERRY_EXPERIMENTAL_CUDA");
    if (opt_in && strcmp(opt_in, "1") == 0) return FY_OK;
    return fy_error(FY_ERR_UNSUPPORTED,
                    "ferry's CUDA kernels are not yet checked on a GPU (scripts/gpu-check does that); use "
                    "--device cpu or --device emu, or set FERRY_EXPERIMENTAL_CUDA=1 to try them");
}

static uint64_t gpu_scratch_bound(bool convolutions)
{
    return fy_cuda_ops_scratch_bound(convolutions);
}

static void gpu_free(fy_ops *o)
{
    if (!o) return;
    fy_cuda_ops_free(cuda_of(o));
    free(o);
}

static const fy_ops gpu_table = {
    .free = gpu_free,
    .copy = gpu_copy,
    .copy2d = gpu_copy2d,
    .convert = gpu_convert,
    .linear = gpu_linear,
    .bmm = gpu_bmm,
    .add = gpu_add,
    .mul = gpu_mul,
    .scale = gpu_scale,
    .axpy = gpu_axpy,
    .silu = gpu_silu,
    .gelu = gpu_gelu,
    .gelu_tanh = gpu_gelu_tanh,
    .relu = gpu_relu,
    .gated_gelu = gpu_gated_gelu,
    .gated_add = gpu_gated_add,
    .layer_norm = gpu_layer_norm,
    .layer_norm_modulate = gpu_layer_norm_modulate,
    .rms_norm = gpu_rms_norm,
    .channel_rms_norm = gpu_channel_rms_norm,
    .group_norm = gpu_group_norm,
    .softmax = gpu_softmax,
    .attention = gpu_attention,
    .rope = gpu_rope,
    .embedding = gpu_embedding,
    .relative_bias = gpu_relative_bias,
    .transpose = gpu_transpose,
    .permute = gpu_permute,
    .upsample_nearest2x = gpu_upsample_nearest2x,
    .conv3d = gpu_conv3d,
};

static fy_status gpu_create(fy_backend *b, const fy_ops_config *c, fy_ops **out)
{
    *out = NULL;
    if (!c || !c->pool) return fy_error(FY_ERR_INVALID, "cuda ops: need the engine's device pool");
    cuda_table *t = calloc(1, sizeof *t);
    if (!t) return fy_error(FY_ERR_NOMEM, "cuda ops: out of memory");
    fy_cuda_math math = c->gemm_dtype == FY_F32 ? FY_CUDA_MATH_F32 : FY_CUDA_MATH_BF16;
    fy_status st = fy_cuda_ops_create(b, c->pool, math, &t->cuda);
    if (st != FY_OK) {
        free(t);
        return st;
    }
    t->base = gpu_table;
    t->base.cls = &fy_cuda_ops_class;
    t->base.device = fy_backend_name(b);
    *out = &t->base;
    return FY_OK;
}

const fy_ops_class fy_cuda_ops_class = {
    .available = gpu_available,
    .supports = gpu_supports,
    .scratch_bound = gpu_scratch_bound,
    .create = gpu_create,
};

fy_cuda_ops *fy_cuda_ops_of(fy_ops *o)
{
    return o && o->cls == &fy_cuda_ops_class ? cuda_of(o) : NULL;
}
