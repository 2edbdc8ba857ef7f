/* The op table's linear on the CPU: y[M, N] = x[M, K] W^T + b with W [N, K]
 * in f32, bf16, f16, scaled fp8 (--storage-dtype) or GGUF blocks, cut into one column tile
 * per thread (or a few, when a tile's f32 copy would not fit the scratch),
 * each one cblas_sgemm; small products take fy_cpu_linear_scaled's finer tiles.
 *
 * Why not fy_cpu_linear_scaled throughout: it cuts W into 128-row tiles and,
 * when there are fewer than 16 of them (N = a transformer's width, the common
 * case), also splits the rows of x, so each weight tile is converted and
 * packed twice and x is packed once per tile. With a handful of large tiles the weights are
 * converted and packed once and x a few times: about 7% of a block's time
 * on two threads. Every output element still comes from one sgemm over the
 * whole of K, as in fy_cpu_linear. */
#include <cblas.h>

#include "backend/cpu/ops_internal.h"

/* f32 floats of converted weights one thread holds at once (8 MiB). */
#define TILE_FLOATS ((int64_t)2 << 20)
#define TILE_ALIGN 16

typedef struct gemm_job {
    fy_cpu_ctx *ctx;
    const float *x, *b;
    const void *w;
    fy_dtype wtype;
    const float *scale;
    int scale_rows;
    float *y;
    int64_t M, K, N, nb;
} gemm_job;

static void gemm_tile(void *raw, int64_t task, int thread)
{
    const gemm_job *j = raw;
    int64_t n0 = task * j->nb, nn = j->N - n0 < j->nb ? j->N - n0 : j->nb;
    if (nn <= 0) return;
    const float *wt = (const float *)j->w + n0 * j->K;
    if (j->wtype != FY_F32 || j->scale) {
        float *tile = fy_cpu_scratch(j->ctx, thread);
        fy_cpu_weight_rows_f32(tile, j->w, j->wtype, j->scale, j->scale_rows, n0, nn, j->K);
        wt = tile;
    }
    float *y = j->y + n0;
    float beta = 0.0f;
    if (j->b) { /* C starts as the bias, so sgemm's C += AB adds it with one rounding, as a separate add would */
        for (int64_t i = 0; i < j->M; i++)
            for (int64_t c = 0; c < nn; c++) y[i * j->N + c] = j->b[n0 + c];
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)j->M, (int)nn, (int)j->K, 1.0f, j->x, (int)j->K, wt,
                (int)j->K, beta, y, (int)j->N);
}

fy_status fy_cpu_linear_wide(fy_cpu_ctx *ctx, const float *x, const void *w, fy_dtype wtype, const float *scale,
                        int scale_rows, const float *b, float *y, int64_t M, int64_t K, int64_t N)
{
    int threads = fy_cpu_ctx_threads(ctx);
    /* Small problems keep fy_cpu_linear's finer tiles (better balance). */
    if (M < 64 || N < 64 * threads || M > INT32_MAX || K > INT32_MAX || N > INT32_MAX ||
        (!fy_dtype_is_float(wtype) && !fy_dtype_is_quant(wtype)))
        return fy_cpu_linear_scaled(ctx, x, w, wtype, scale, scale_rows, b, y, M, K, N);
    int64_t tiles = threads;
    while ((N + tiles - 1) / tiles * K > TILE_FLOATS && (N + tiles - 1) / tiles > TILE_ALIGN) tiles += threads;
    int64_t nb = ((N + tiles - 1) / tiles + TILE_ALIGN - 1) / TILE_ALIGN * TILE_ALIGN;
    if (wtype != FY_F32 || scale) FY_TRY(fy_cpu_scratch_reserve(ctx, (size_t)(nb * K)));
    gemm_job job = {ctx, x, b, w, wtype, scale, scale_rows, y, M, K, N, nb};
    fy_threadpool_run(ctx->pool, (N + nb - 1) / nb, gemm_tile, &job);
    return FY_OK;
}
