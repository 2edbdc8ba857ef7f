/* Attention with an online softmax (flash-attention style) on the CPU.
 *
 * One pool task per (batch, head, query tile). A task walks the keys in
 * tiles: scores of its query tile against one key tile (an sgemm reading the
 * interleaved-head layout in place through its leading dimension), then the
 * running max / sum update, then P V accumulated by a second sgemm. Memory
 * per task is one score tile plus one output tile. */
#include "backend/cpu/ops_internal.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#define FY_ATTN_TQ 64
#define FY_ATTN_TK 128

typedef struct attn_job {
    fy_cpu_ctx *ctx;
    const float *q, *k, *v, *bias;
    const int64_t *key_mask;
    float *out;
    int64_t B, H, Lq, Lk, D, q_tiles;
    float scale;
} attn_job;

typedef struct attn_tile {
    float *s;      /* [nq, nk] scores, then probabilities */
    float *acc;    /* [nq, D] */
    float *m, *l;  /* running max and sum per query row */
    int64_t b, h, i0, nq;
} attn_tile;

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int batch_fully_masked(const attn_job *job, int64_t b)
{
    if (!job->key_mask) return 0;
    const int64_t *mask = job->key_mask + b * job->Lk;
    for (int64_t j = 0; j < job->Lk; j++)
        if (mask[j] != 0) return 0;
    return 1;
}

/* Bias and mask on the score tile; a fully masked batch item attends
 * uniformly (constant scores). */
static void adjust_scores(const attn_job *job, const attn_tile *t, int64_t j0, int64_t nk, int uniform)
{
    for (int64_t i = 0; i < t->nq; i++) {
        float *s = t->s + i * nk;
        if (uniform) {
            memset(s, 0, (size_t)nk * sizeof *s);
            continue;
        }
        if (job->bias) {
            const float *bias = job->bias + (t->h * job->Lq + t->i0 + i) * job->Lk + j0;
            for (int64_t j = 0; j < nk; j++) s[j] += bias[j];
        }
        if (job->key_mask) {
            const int64_t *mask = job->key_mask + t->b * job->Lk + j0;
            for (int64_t j = 0; j < nk; j++)
                if (mask[j] == 0) s[j] = -INFINITY;
        }
    }
}

/* Scores -> probabilities against the running max; rescales acc and l. */
static void online_softmax(const attn_tile *t, int64_t nk, int64_t D)
{
    for (int64_t i = 0; i < t->nq; i++) {
        float *s = t->s + i * nk;
        float mt = -INFINITY;
        for (int64_t j = 0; j < nk; j++) mt = s[j] > mt ? s[j] : mt;
        float m_new = mt > t->m[i] ? mt : t->m[i];
        if (m_new == -INFINITY) { /* every key so far masked: contributes nothing */
            memset(s, 0, (size_t)nk * sizeof *s);
            continue;
        }
        float sum = 0.0f;
        for (int64_t j = 0; j < nk; j++) {
            s[j] = expf(s[j] - m_new);
            sum += s[j];
        }
        float alpha = expf(t->m[i] - m_new);
        if (alpha != 1.0f) {
            float *acc = t->acc + i * D;
            for (int64_t d = 0; d < D; d++) acc[d] *= alpha;
        }
        t->l[i] = t->l[i] * alpha + sum;
        t->m[i] = m_new;
    }
}

static void attn_task(void *raw, int64_t task, int thread)
{
    const attn_job *job = raw;
    const int64_t D = job->D, ld = job->H * job->D;
    attn_tile t;
    t.b = task / (job->H * job->q_tiles);
    t.h = (task / job->q_tiles) % job->H;
    t.i0 = (task % job->q_tiles) * FY_ATTN_TQ;
    t.nq = min64(FY_ATTN_TQ, job->Lq - t.i0);
    float *scratch = fy_cpu_scratch(job->ctx, thread);
    t.s = scratch;
    t.acc = t.s + FY_ATTN_TQ * FY_ATTN_TK;
    t.m = t.acc + FY_ATTN_TQ * D;
    t.l = t.m + FY_ATTN_TQ;
    for (int64_t i = 0; i < t.nq; i++) {
        t.m[i] = -INFINITY;
        t.l[i] = 0.0f;
    }
    memset(t.acc, 0, (size_t)(t.nq * D) * sizeof(float));
    int uniform = batch_fully_masked(job, t.b);

    const float *q = job->q + ((t.b * job->Lq + t.i0) * job->H + t.h) * D;
    for (int64_t j0 = 0; j0 < job->Lk; j0 += FY_ATTN_TK) {
        int64_t nk = min64(FY_ATTN_TK, job->Lk - j0);
        const float *k = job->k + ((t.b * job->Lk + j0) * job->H + t.h) * D;
        const float *v = job->v + ((t.b * job->Lk + j0) * job->H + t.h) * D;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)t.nq, (int)nk, (int)D, job->scale, q,
                    (int)ld, k, (int)ld, 0.0f, t.s, (int)nk);
        adjust_scores(job, &t, j0, nk, uniform);
        online_softmax(&t, nk, D);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)t.nq, (int)D, (int)nk, 1.0f, t.s,
                    (int)nk, v, (int)ld, 1.0f, t.acc, (int)D);
    }

    float *out = job->out + ((t.b * job->Lq + t.i0) * job->H + t.h) * D;
    for (int64_t i = 0; i < t.nq; i++) {
        float inv = 1.0f / t.l[i];
        for (int64_t d = 0; d < D; d++) out[i * ld + d] = t.acc[i * D + d] * inv;
    }
}

fy_status fy_cpu_attention(fy_cpu_ctx *ctx, const float *q, const float *k, const float *v, float *out,
                           int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D, float scale,
                           const float *bias, const int64_t *key_mask)
{
    if (B < 0 || H < 1 || Lq < 0 || Lk < 1 || D < 1 || H * D > INT32_MAX)
        return fy_error(FY_ERR_INVALID, "attention: bad sizes B=%lld H=%lld Lq=%lld Lk=%lld D=%lld",
                        (long long)B, (long long)H, (long long)Lq, (long long)Lk, (long long)D);
    if (B == 0 || Lq == 0) return FY_OK;
    FY_TRY(fy_cpu_scratch_reserve(ctx, (size_t)(FY_ATTN_TQ * FY_ATTN_TK + FY_ATTN_TQ * D + 2 * FY_ATTN_TQ)));
    attn_job job = {ctx, q, k, v, bias, key_mask, out, B, H, Lq, Lk, D, (Lq + FY_ATTN_TQ - 1) / FY_ATTN_TQ, scale};
    fy_threadpool_run(ctx->pool, B * H * job.q_tiles, attn_task, &job);
    return FY_OK;
}
