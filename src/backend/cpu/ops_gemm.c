/* Linear layers and batched products on OpenBLAS.
 *
 * The output is cut into tiles of FY_GEMM_NB weight rows (output columns)
 * by M chunks; each tile is one single-threaded sgemm in a pool task. The
 * tiling depends only on the shape, so a weight row block sees the same
 * sgemm call whether it is f32 in place or converted from bf16 into scratch,
 * and whatever the thread count: all of these give bitwise equal results. */
#include "backend/cpu/ops_internal.h"

#include <cblas.h>

#include "ferry/quant.h"
#include "ferry/quant_gguf.h"

#define FY_GEMM_NB 128         /* weight rows per tile (and per conversion block) */
#define FY_GEMM_MIN_TILES 16   /* split M when there are fewer column blocks than this */
#define FY_GEMM_M_ALIGN 64

typedef struct linear_job {
    fy_cpu_ctx *ctx;
    const float *x, *b;
    const float *w32;          /* f32 weights, or NULL when converting */
    const void *wlow;          /* low-precision weights */
    fy_dtype wtype;
    const float *scale;        /* fp8 storage scales, or NULL */
    int scale_rows;
    float *y;
    int64_t M, K, N;
    int64_t n_blocks, m_chunk;
} linear_job;

static int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static void plan_tiles(linear_job *job)
{
    job->n_blocks = ceil_div(job->N, FY_GEMM_NB);
    job->m_chunk = job->M;
    if (job->n_blocks < FY_GEMM_MIN_TILES && job->M > 2 * FY_GEMM_M_ALIGN) {
        int64_t want = ceil_div(FY_GEMM_MIN_TILES, job->n_blocks);
        int64_t chunk = ceil_div(ceil_div(job->M, want), FY_GEMM_M_ALIGN) * FY_GEMM_M_ALIGN;
        job->m_chunk = min64(chunk, job->M);
    }
}

static void linear_tile(void *raw, int64_t task, int thread)
{
    const linear_job *job = raw;
    int64_t nb = task % job->n_blocks, mc = task / job->n_blocks;
    int64_t n0 = nb * FY_GEMM_NB, nn = min64(FY_GEMM_NB, job->N - n0);
    int64_t m0 = mc * job->m_chunk, mm = min64(job->m_chunk, job->M - m0);
    const float *wblock;
    if (job->w32) {
        wblock = job->w32 + n0 * job->K;
    } else {
        float *tile = fy_cpu_scratch(job->ctx, thread);
        fy_cpu_weight_rows_f32(tile, job->wlow, job->wtype, job->scale, job->scale_rows, n0, nn, job->K);
        wblock = tile;
    }
    float *y = job->y + m0 * job->N + n0;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)mm, (int)nn, (int)job->K, 1.0f,
                job->x + m0 * job->K, (int)job->K, wblock, (int)job->K, 0.0f, y, (int)job->N);
    if (job->b)
        for (int64_t i = 0; i < mm; i++)
            for (int64_t j = 0; j < nn; j++) y[i * job->N + j] += job->b[n0 + j];
}

static fy_status check_dims(const char *op, int64_t M, int64_t K, int64_t N)
{
    if (M < 0 || K < 1 || N < 0 || M > INT32_MAX || K > INT32_MAX || N > INT32_MAX)
        return fy_error(FY_ERR_INVALID, "%s: bad sizes M=%lld K=%lld N=%lld", op, (long long)M,
                        (long long)K, (long long)N);
    return FY_OK;
}

static void run_linear(linear_job *job)
{
    plan_tiles(job);
    int64_t tiles = job->n_blocks * ceil_div(job->M, job->m_chunk);
    fy_threadpool_run(job->ctx->pool, tiles, linear_tile, job);
}

fy_status fy_cpu_linear(fy_cpu_ctx *ctx, const float *x, const float *w, const float *b, float *y,
                        int64_t M, int64_t K, int64_t N)
{
    FY_TRY(check_dims("linear", M, K, N));
    if (M == 0 || N == 0) return FY_OK;
    linear_job job = {.ctx = ctx, .x = x, .b = b, .w32 = w, .y = y, .M = M, .K = K, .N = N};
    run_linear(&job);
    return FY_OK;
}

void fy_cpu_weight_rows_f32(float *dst, const void *w, fy_dtype wtype, const float *scale, int scale_rows,
                            int64_t n0, int64_t nn, int64_t K)
{
    if (wtype == FY_F8_E4M3 || wtype == FY_F8_E5M2) {
        fy_fp8_dequantize_rows(dst, w, wtype, scale, scale_rows, n0, nn, K);
        return;
    }
    if (fy_dtype_is_quant(wtype)) { /* GGUF blocks: K is a whole number of them (checked at load) */
        fy_gguf_dequantize_rows(dst, w, wtype, n0, nn, K);
        return;
    }
    const char *src = (const char *)w + (size_t)(n0 * K) * fy_dtype_size(wtype);
    /* The dtype was validated before the run, so this cannot fail. */
    (void)fy_convert(dst, FY_F32, src, wtype, (size_t)(nn * K));
    for (int64_t r = 0; scale && r < nn; r++) {
        float s = scale[scale_rows ? n0 + r : 0];
        for (int64_t k = 0; k < K; k++) dst[r * K + k] *= s;
    }
}

fy_status fy_cpu_linear_lowp(fy_cpu_ctx *ctx, const float *x, const void *w, fy_dtype w_dtype,
                             const float *b, float *y, int64_t M, int64_t K, int64_t N)
{
    return fy_cpu_linear_scaled(ctx, x, w, w_dtype, NULL, 0, b, y, M, K, N);
}

fy_status fy_cpu_linear_scaled(fy_cpu_ctx *ctx, const float *x, const void *w, fy_dtype w_dtype,
                               const float *scale, int scale_rows, const float *b, float *y, int64_t M,
                               int64_t K, int64_t N)
{
    if (w_dtype == FY_F32 && !scale) return fy_cpu_linear(ctx, x, w, b, y, M, K, N);
    FY_TRY(check_dims("linear", M, K, N));
    bool quant = fy_dtype_is_quant(w_dtype);
    if (!quant && (!fy_dtype_is_float(w_dtype) || fy_dtype_size(w_dtype) == 0))
        return fy_error(FY_ERR_UNSUPPORTED, "linear: weights of dtype %s cannot be converted to f32",
                        fy_dtype_name(w_dtype));
    if (quant && K % (int64_t)fy_dtype_block(w_dtype) != 0)
        return fy_error(FY_ERR_INVALID, "linear: %s weights need rows of whole %u-value blocks, not K=%lld",
                        fy_dtype_name(w_dtype), fy_dtype_block(w_dtype), (long long)K);
    if (M == 0 || N == 0) return FY_OK;
    FY_TRY(fy_cpu_scratch_reserve(ctx, (size_t)(FY_GEMM_NB * K)));
    linear_job job = {.ctx = ctx, .x = x, .b = b, .wlow = w, .wtype = w_dtype, .scale = scale,
                      .scale_rows = scale_rows, .y = y, .M = M, .K = K, .N = N};
    run_linear(&job);
    return FY_OK;
}

/* ---- Batched matmul ----------------------------------------------------- */

#define FY_BMM_M_CHUNK 256

typedef struct bmm_job {
    const float *a, *b;
    float *c;
    int64_t M, N, K, m_chunks;
    int trans_b;
    float alpha;
} bmm_job;

static void bmm_task(void *raw, int64_t task, int thread)
{
    (void)thread;
    const bmm_job *job = raw;
    int64_t i = task / job->m_chunks, m0 = (task % job->m_chunks) * FY_BMM_M_CHUNK;
    int64_t mm = min64(FY_BMM_M_CHUNK, job->M - m0);
    const float *a = job->a + i * job->M * job->K + m0 * job->K;
    const float *b = job->b + i * job->K * job->N;
    float *c = job->c + i * job->M * job->N + m0 * job->N;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, job->trans_b ? CblasTrans : CblasNoTrans, (int)mm, (int)job->N,
                (int)job->K, job->alpha, a, (int)job->K, b, job->trans_b ? (int)job->K : (int)job->N, 0.0f,
                c, (int)job->N);
}

fy_status fy_cpu_bmm(fy_cpu_ctx *ctx, const float *a, const float *b, float *c, int64_t batch,
                     int64_t M, int64_t N, int64_t K, int trans_b, float alpha)
{
    FY_TRY(check_dims("bmm", M, K, N));
    if (batch < 0) return fy_error(FY_ERR_INVALID, "bmm: negative batch %lld", (long long)batch);
    if (batch == 0 || M == 0 || N == 0) return FY_OK;
    bmm_job job = {a, b, c, M, N, K, ceil_div(M, FY_BMM_M_CHUNK), trans_b, alpha};
    fy_threadpool_run(ctx->pool, batch * job.m_chunks, bmm_task, &job);
    return FY_OK;
}
