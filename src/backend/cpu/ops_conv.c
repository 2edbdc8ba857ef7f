/* 3D convolution as im2col + GEMM, in chunks of output rows so that the
 * column buffer stays small (a full-resolution VAE layer would need GBs). */
#include "backend/cpu/ops_internal.h"

#include <cblas.h>
#include <string.h>

/* Target column-buffer size per task, in floats (4 MiB). */
#define FY_CONV_COL_FLOATS (1 << 20)

typedef struct conv_job {
    const fy_conv3d_shape *s;
    fy_cpu_ctx *ctx;
    const float *x, *w, *b;
    float *y;
    int64_t to, ho, wo;        /* output sizes */
    int64_t kvol;              /* c_in * kt * kh * kw */
    int64_t rows_per_chunk;    /* output rows (of one frame) per task */
    int64_t chunks_per_frame;
    int pointwise;             /* 1x1x1, stride 1, no padding: x is already the column matrix */
} conv_job;

fy_status fy_conv3d_out_size(const fy_conv3d_shape *s, int64_t *t_out, int64_t *h_out, int64_t *w_out)
{
    int64_t tp = s->t + s->pad_t0 + s->pad_t1, hp = s->h + s->pad_h0 + s->pad_h1, wp = s->w + s->pad_w0 + s->pad_w1;
    if (s->c_in < 1 || s->c_out < 1 || s->kt < 1 || s->kh < 1 || s->kw < 1 || s->st < 1 || s->sh < 1 ||
        s->sw < 1 || s->pad_t0 < 0 || s->pad_t1 < 0 || s->pad_h0 < 0 || s->pad_h1 < 0 || s->pad_w0 < 0 ||
        s->pad_w1 < 0 || tp < s->kt || hp < s->kh || wp < s->kw)
        return fy_error(FY_ERR_INVALID,
                        "conv3d: kernel %lldx%lldx%lld does not fit input %lldx%lldx%lld with its padding",
                        (long long)s->kt, (long long)s->kh, (long long)s->kw, (long long)s->t,
                        (long long)s->h, (long long)s->w);
    *t_out = (tp - s->kt) / s->st + 1;
    *h_out = (hp - s->kh) / s->sh + 1;
    *w_out = (wp - s->kw) / s->sw + 1;
    return FY_OK;
}

/* col[r, c] for kernel tap r and output position c of rows [h0, h0 + nh) of frame t. */
static void im2col(const conv_job *job, const float *x, int64_t t, int64_t h0, int64_t nh, float *col)
{
    const fy_conv3d_shape *s = job->s;
    const int64_t ncols = nh * job->wo;
    int64_t r = 0;
    for (int64_t ci = 0; ci < s->c_in; ci++)
        for (int64_t dt = 0; dt < s->kt; dt++)
            for (int64_t dh = 0; dh < s->kh; dh++)
                for (int64_t dw = 0; dw < s->kw; dw++, r++) {
                    float *dst = col + r * ncols;
                    int64_t ti = t * s->st - s->pad_t0 + dt;
                    if (ti < 0 || ti >= s->t) {
                        memset(dst, 0, (size_t)ncols * sizeof *dst);
                        continue;
                    }
                    const float *plane = x + (ci * s->t + ti) * s->h * s->w;
                    for (int64_t oh = 0; oh < nh; oh++) {
                        int64_t hi = (h0 + oh) * s->sh - s->pad_h0 + dh;
                        float *d = dst + oh * job->wo;
                        if (hi < 0 || hi >= s->h) {
                            memset(d, 0, (size_t)job->wo * sizeof *d);
                            continue;
                        }
                        const float *row = plane + hi * s->w;
                        for (int64_t ow = 0; ow < job->wo; ow++) {
                            int64_t wi = ow * s->sw - s->pad_w0 + dw;
                            d[ow] = (wi >= 0 && wi < s->w) ? row[wi] : 0.0f;
                        }
                    }
                }
}

static void conv_task(void *raw, int64_t task, int thread)
{
    const conv_job *job = raw;
    const fy_conv3d_shape *s = job->s;
    int64_t per_item = job->to * job->chunks_per_frame;
    int64_t n = task / per_item, t = (task % per_item) / job->chunks_per_frame;
    int64_t h0 = (task % job->chunks_per_frame) * job->rows_per_chunk;
    int64_t nh = job->ho - h0 < job->rows_per_chunk ? job->ho - h0 : job->rows_per_chunk;
    int64_t ncols = nh * job->wo, out_plane = job->to * job->ho * job->wo;
    const float *x = job->x + n * s->c_in * s->t * s->h * s->w;
    float *y = job->y + n * s->c_out * out_plane + (t * job->ho + h0) * job->wo;

    const float *col;
    int64_t ldcol;
    if (job->pointwise) {
        col = x + (t * s->h + h0) * s->w;
        ldcol = s->t * s->h * s->w;
    } else {
        float *buf = fy_cpu_scratch(job->ctx, thread);
        im2col(job, x, t, h0, nh, buf);
        col = buf;
        ldcol = ncols;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)s->c_out, (int)ncols, (int)job->kvol, 1.0f,
                job->w, (int)job->kvol, col, (int)ldcol, 0.0f, y, (int)out_plane);
    if (job->b)
        for (int64_t co = 0; co < s->c_out; co++)
            for (int64_t c = 0; c < ncols; c++) y[co * out_plane + c] += job->b[co];
}

fy_status fy_cpu_conv3d(fy_cpu_ctx *ctx, const float *x, const float *w, const float *b, float *y,
                        int64_t batch, const fy_conv3d_shape *s)
{
    conv_job job = {.s = s, .ctx = ctx, .x = x, .w = w, .b = b, .y = y};
    FY_TRY(fy_conv3d_out_size(s, &job.to, &job.ho, &job.wo));
    job.kvol = s->c_in * s->kt * s->kh * s->kw;
    int64_t out_plane = job.to * job.ho * job.wo;
    if (batch < 0 || job.kvol > INT32_MAX || out_plane > INT32_MAX || s->c_out > INT32_MAX)
        return fy_error(FY_ERR_INVALID, "conv3d: sizes too large for one GEMM (batch %lld)", (long long)batch);
    if (batch == 0) return FY_OK;
    job.pointwise = s->kt == 1 && s->kh == 1 && s->kw == 1 && s->st == 1 && s->sh == 1 && s->sw == 1 &&
                    s->pad_t0 == 0 && s->pad_t1 == 0 && s->pad_h0 == 0 && s->pad_h1 == 0 &&
                    s->pad_w0 == 0 && s->pad_w1 == 0;
    int64_t rows = FY_CONV_COL_FLOATS / (job.kvol * job.wo);
    job.rows_per_chunk = rows < 1 ? 1 : (rows > job.ho ? job.ho : rows);
    job.chunks_per_frame = (job.ho + job.rows_per_chunk - 1) / job.rows_per_chunk;
    if (!job.pointwise) FY_TRY(fy_cpu_scratch_reserve(ctx, (size_t)(job.kvol * job.rows_per_chunk * job.wo)));
    fy_threadpool_run(ctx->pool, batch * job.to * job.chunks_per_frame, conv_task, &job);
    return FY_OK;
}
