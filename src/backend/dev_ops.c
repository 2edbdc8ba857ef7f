/* Routes each op to the CPU or the CUDA implementation (see dev_ops.h). The
 * CPU ops cannot fail after their arguments are checked, so most return
 * FY_OK; the CUDA ops report launch errors. */
#include "backend/dev_ops.h"

#include <stdlib.h>
#include <string.h>

#include "mem/engine_internal.h"
#ifdef FERRY_HAVE_CUDA
#include "backend/cuda/cuda_ops.h"
#endif

struct fy_dev_ops {
    fy_cpu_ctx *cpu; /* on a host device (cpu, emu) */
    bool on_host;
#ifdef FERRY_HAVE_CUDA
    fy_cuda_ops *cuda;
#endif
};

#ifdef FERRY_HAVE_CUDA
/* The ops' device made current first (the calling thread may not have it);
 * the op's name passed on for FERRY_CUDA_SYNC=1's message. */
#define ON_GPU(o, call)                                                   \
    do {                                                                  \
        if ((o)->cuda) {                                                  \
            fy_status on_gpu_st_ = fy_cuda_ops_enter((o)->cuda);          \
            if (on_gpu_st_ == FY_OK) on_gpu_st_ = (call);                 \
            return fy_cuda_ops_leave((o)->cuda, __func__, on_gpu_st_);    \
        }                                                                 \
    } while (0)
#else
#define ON_GPU(o, call) ((void)0)
#endif

/* --dtype f32 (the default) keeps the GPU's GEMMs exact f32; bf16 or f16
 * puts their operands in bf16 on the tensor cores, f32 accumulation. */
static bool gemm_f32(const fy_run_options *o)
{
    return o->compute_dtype == FY_F32;
}

double fy_dev_tolerance_floor(const fy_run_options *o)
{
    if (o->device != FY_DEVICE_CUDA) return 0.0;
    return gemm_f32(o) ? 1e-4 : 2e-2;
}

static bool host_device(const char *device)
{
    return strcmp(device, "cpu") == 0 || strcmp(device, "emu") == 0;
}

uint64_t fy_dev_ops_scratch_bound(fy_engine *e, bool convolutions)
{
#ifdef FERRY_HAVE_CUDA
    if (strcmp(fy_backend_name(fy_engine_backend(e)), "cuda") == 0)
        return fy_cuda_ops_scratch_bound(convolutions);
#endif
    (void)e;
    (void)convolutions;
    return 0;
}

fy_status fy_dev_ops_supported(fy_engine *e)
{
    const char *device = fy_backend_name(fy_engine_backend(e));
    if (host_device(device)) return FY_OK;
#ifdef FERRY_HAVE_CUDA
    if (strcmp(device, "cuda") == 0) {
        const char *opt_in = getenv("FERRY_EXPERIMENTAL_CUDA");
        if (opt_in && strcmp(opt_in, "1") == 0) return FY_OK;
        return fy_error(FY_ERR_UNSUPPORTED,
                        "ferry's CUDA kernels are not yet checked on a GPU (scripts/gpu-check does that); use "
                        "--device cpu or --device emu, or set FERRY_EXPERIMENTAL_CUDA=1 to try them");
    }
#endif
    return fy_error(FY_ERR_UNSUPPORTED, "no compute ops for device %s in this build (use --device cpu or emu)",
                    device);
}

fy_status fy_dev_ops_create(fy_engine *e, int threads, fy_dev_ops **out)
{
    *out = NULL;
    FY_TRY(fy_dev_ops_supported(e));
    fy_dev_ops *o = calloc(1, sizeof *o);
    if (!o) return fy_error(FY_ERR_NOMEM, "ops: out of memory");
    o->on_host = host_device(fy_backend_name(fy_engine_backend(e)));
    fy_status st = FY_OK;
    if (o->on_host) st = fy_cpu_ctx_create(threads, &o->cpu);
#ifdef FERRY_HAVE_CUDA
    fy_cuda_math math = gemm_f32(&e->opts) ? FY_CUDA_MATH_F32 : FY_CUDA_MATH_BF16;
    if (!o->on_host) st = fy_cuda_ops_create(fy_engine_backend(e), fy_eng_device_pool(e), math, &o->cuda);
#endif
    if (st != FY_OK) {
        fy_dev_ops_free(o);
        return st;
    }
    *out = o;
    return FY_OK;
}

void fy_dev_ops_free(fy_dev_ops *o)
{
    if (!o) return;
#ifdef FERRY_HAVE_CUDA
    fy_cuda_ops_free(o->cuda);
#endif
    fy_cpu_ctx_free(o->cpu);
    free(o);
}

fy_cpu_ctx *fy_dev_ops_host(fy_dev_ops *o)
{
    return o->on_host ? o->cpu : NULL;
}

fy_status fy_dev_copy(fy_dev_ops *o, void *dst, const void *src, size_t bytes)
{
    ON_GPU(o, fy_cuda_copy(o->cuda, dst, src, bytes));
    if (dst != src) memmove(dst, src, bytes);
    return FY_OK;
}

fy_status fy_dev_copy2d(fy_dev_ops *o, void *dst, size_t dst_pitch, const void *src, size_t src_pitch, size_t width,
                        size_t height)
{
    ON_GPU(o, fy_cuda_copy2d(o->cuda, dst, dst_pitch, src, src_pitch, width, height));
    if (dst == src) return FY_OK;
    for (size_t r = 0; r < height; r++)
        memcpy((char *)dst + r * dst_pitch, (const char *)src + r * src_pitch, width);
    return FY_OK;
}

fy_status fy_dev_to_f32(fy_dev_ops *o, float *dst, const void *src, fy_dtype dtype, size_t n)
{
    ON_GPU(o, fy_cuda_to_f32(o->cuda, dst, src, dtype, n));
    return fy_convert(dst, FY_F32, src, dtype, n);
}

/* ---- matrix products ---- */

fy_status fy_dev_linear(fy_dev_ops *o, const float *x, const void *w, fy_dtype w_dtype, const float *scale,
                        int scale_rows, const float *b, float *y, int64_t M, int64_t K, int64_t N)
{
    ON_GPU(o, fy_cuda_linear(o->cuda, x, w, w_dtype, scale, scale_rows, b, y, M, K, N));
    return fy_cpu_linear_scaled(o->cpu, x, w, w_dtype, scale, scale_rows, b, y, M, K, N);
}

fy_status fy_dev_bmm(fy_dev_ops *o, const float *a, const float *b, float *c, int64_t batch, int64_t M,
                     int64_t N, int64_t K, int trans_b, float alpha)
{
    ON_GPU(o, fy_cuda_bmm(o->cuda, a, b, c, batch, M, N, K, trans_b, alpha));
    return fy_cpu_bmm(o->cpu, a, b, c, batch, M, N, K, trans_b, alpha);
}

/* ---- elementwise ---- */

fy_status fy_dev_add(fy_dev_ops *o, const float *a, const float *b, float *out, int64_t n)
{
    ON_GPU(o, fy_cuda_add(o->cuda, a, b, out, n));
    fy_cpu_add(o->cpu, a, b, out, n);
    return FY_OK;
}

fy_status fy_dev_mul(fy_dev_ops *o, const float *a, const float *b, float *out, int64_t n)
{
    ON_GPU(o, fy_cuda_mul(o->cuda, a, b, out, n));
    fy_cpu_mul(o->cpu, a, b, out, n);
    return FY_OK;
}

fy_status fy_dev_scale(fy_dev_ops *o, const float *x, float s, float *out, int64_t n)
{
    ON_GPU(o, fy_cuda_scale(o->cuda, x, s, out, n));
    fy_cpu_scale(o->cpu, x, s, out, n);
    return FY_OK;
}

fy_status fy_dev_axpy(fy_dev_ops *o, float alpha, const float *x, float *y, int64_t n)
{
    ON_GPU(o, fy_cuda_axpy(o->cuda, alpha, x, y, n));
    fy_cpu_axpy(o->cpu, alpha, x, y, n);
    return FY_OK;
}

fy_status fy_dev_silu(fy_dev_ops *o, const float *x, float *out, int64_t n)
{
    ON_GPU(o, fy_cuda_silu(o->cuda, x, out, n));
    fy_cpu_silu(o->cpu, x, out, n);
    return FY_OK;
}

fy_status fy_dev_gelu(fy_dev_ops *o, const float *x, float *out, int64_t n)
{
    ON_GPU(o, fy_cuda_gelu(o->cuda, x, out, n));
    fy_cpu_gelu(o->cpu, x, out, n);
    return FY_OK;
}

fy_status fy_dev_gelu_tanh(fy_dev_ops *o, const float *x, float *out, int64_t n)
{
    ON_GPU(o, fy_cuda_gelu_tanh(o->cuda, x, out, n));
    fy_cpu_gelu_tanh(o->cpu, x, out, n);
    return FY_OK;
}

fy_status fy_dev_relu(fy_dev_ops *o, const float *x, float *out, int64_t n)
{
    ON_GPU(o, fy_cuda_relu(o->cuda, x, out, n));
    fy_cpu_relu(o->cpu, x, out, n);
    return FY_OK;
}

fy_status fy_dev_gated_gelu(fy_dev_ops *o, const float *h0, const float *h1, float *out, int64_t n)
{
    ON_GPU(o, fy_cuda_gated_gelu(o->cuda, h0, h1, out, n));
    fy_cpu_gated_gelu(o->cpu, h0, h1, out, n);
    return FY_OK;
}

fy_status fy_dev_gated_add(fy_dev_ops *o, float *x, const float *y, const float *gate, int64_t rows,
                           int64_t dim, int64_t rows_per_gate)
{
    ON_GPU(o, fy_cuda_gated_add(o->cuda, x, y, gate, rows, dim, rows_per_gate));
    fy_cpu_gated_add(o->cpu, x, y, gate, rows, dim, rows_per_gate);
    return FY_OK;
}

/* ---- normalization ---- */

fy_status fy_dev_layer_norm(fy_dev_ops *o, const float *x, const float *w, const float *b, float *out,
                            int64_t rows, int64_t dim, float eps)
{
    ON_GPU(o, fy_cuda_layer_norm(o->cuda, x, w, b, out, rows, dim, eps));
    fy_cpu_layer_norm(o->cpu, x, w, b, out, rows, dim, eps);
    return FY_OK;
}

fy_status fy_dev_layer_norm_modulate(fy_dev_ops *o, const float *x, const float *w, const float *b,
                                     const float *scale, const float *shift, float *out, int64_t rows,
                                     int64_t dim, int64_t rows_per_mod, float eps)
{
    ON_GPU(o, fy_cuda_layer_norm_modulate(o->cuda, x, w, b, scale, shift, out, rows, dim, rows_per_mod, eps));
    fy_cpu_layer_norm_modulate(o->cpu, x, w, b, scale, shift, out, rows, dim, rows_per_mod, eps);
    return FY_OK;
}

fy_status fy_dev_rms_norm(fy_dev_ops *o, const float *x, const float *w, float *out, int64_t rows,
                          int64_t dim, float eps)
{
    ON_GPU(o, fy_cuda_rms_norm(o->cuda, x, w, out, rows, dim, eps));
    fy_cpu_rms_norm(o->cpu, x, w, out, rows, dim, eps);
    return FY_OK;
}

fy_status fy_dev_channel_rms_norm(fy_dev_ops *o, const float *x, const float *gamma, const float *bias,
                                  float *out, int64_t C, int64_t N, float eps)
{
    ON_GPU(o, fy_cuda_channel_rms_norm(o->cuda, x, gamma, bias, out, C, N, eps));
    fy_cpu_channel_rms_norm(o->cpu, x, gamma, bias, out, C, N, eps);
    return FY_OK;
}

fy_status fy_dev_group_norm(fy_dev_ops *o, const float *x, const float *w, const float *b, float *out, int64_t C,
                            int64_t N, int64_t G, float eps)
{
    if (G < 1 || C % G) return fy_error(FY_ERR_INVALID, "group norm: %lld channels in %lld groups", (long long)C,
                                        (long long)G);
    ON_GPU(o, fy_cuda_group_norm(o->cuda, x, w, b, out, C, N, G, eps));
    fy_cpu_group_norm(o->cpu, x, w, b, out, C, N, G, eps);
    return FY_OK;
}

fy_status fy_dev_softmax(fy_dev_ops *o, const float *x, float *out, int64_t rows, int64_t dim)
{
    ON_GPU(o, fy_cuda_softmax(o->cuda, x, out, rows, dim));
    fy_cpu_softmax(o->cpu, x, out, rows, dim);
    return FY_OK;
}

/* ---- attention, position, gathers, layout, convolution ---- */

fy_status fy_dev_attention(fy_dev_ops *o, const float *q, const float *k, const float *v, float *out,
                           int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D, float scale,
                           const float *bias, const int64_t *key_mask)
{
    ON_GPU(o, fy_cuda_attention(o->cuda, q, k, v, out, B, H, Lq, Lk, D, scale, bias, key_mask));
    return fy_cpu_attention(o->cpu, q, k, v, out, B, H, Lq, Lk, D, scale, bias, key_mask);
}

fy_status fy_dev_rope(fy_dev_ops *o, float *x, const float *cos_t, const float *sin_t, int64_t B, int64_t L,
                      int64_t H, int64_t D)
{
    ON_GPU(o, fy_cuda_rope(o->cuda, x, cos_t, sin_t, B, L, H, D));
    fy_cpu_rope(o->cpu, x, cos_t, sin_t, B, L, H, D);
    return FY_OK;
}

fy_status fy_dev_embedding(fy_dev_ops *o, const void *table, fy_dtype dtype, const int64_t *ids, float *out,
                           int64_t rows, int64_t dim)
{
    ON_GPU(o, fy_cuda_embedding(o->cuda, table, dtype, ids, out, rows, dim));
    return fy_cpu_embedding(o->cpu, table, dtype, ids, out, rows, dim);
}

fy_status fy_dev_relative_bias(fy_dev_ops *o, const float *table, const int32_t *bucket, float *out, int64_t H,
                               int64_t L, int64_t q0, int64_t nq)
{
    ON_GPU(o, fy_cuda_relative_bias(o->cuda, table, bucket, out, H, L, q0, nq));
    fy_cpu_relative_bias(o->cpu, table, bucket, out, H, L, q0, nq);
    return FY_OK;
}

fy_status fy_dev_transpose(fy_dev_ops *o, float *dst, int64_t ld_dst, const float *src, int64_t ld_src, int64_t rows,
                           int64_t cols, int accumulate)
{
    ON_GPU(o, fy_cuda_transpose(o->cuda, dst, ld_dst, src, ld_src, rows, cols, accumulate));
    fy_cpu_transpose(o->cpu, dst, ld_dst, src, ld_src, rows, cols, accumulate);
    return FY_OK;
}

fy_status fy_dev_permute(fy_dev_ops *o, float *dst, const float *src, int ndim, const int64_t *shape,
                         const int *perm)
{
    ON_GPU(o, fy_cuda_permute(o->cuda, dst, src, ndim, shape, perm));
    return fy_cpu_permute(o->cpu, dst, src, ndim, shape, perm);
}

fy_status fy_dev_upsample_nearest2x(fy_dev_ops *o, const float *in, float *out, int64_t planes, int64_t h, int64_t w)
{
    ON_GPU(o, fy_cuda_upsample_nearest2x(o->cuda, in, out, planes, h, w));
    fy_cpu_upsample_nearest2x(o->cpu, in, out, planes, h, w);
    return FY_OK;
}

fy_status fy_dev_conv3d(fy_dev_ops *o, const float *x, const float *w, const float *b, float *y,
                        int64_t batch, const fy_conv3d_shape *s)
{
    ON_GPU(o, fy_cuda_conv3d(o->cuda, x, w, b, y, batch, s));
    return fy_cpu_conv3d(o->cpu, x, w, b, y, batch, s);
}
