/* fy_cuda_attention against fy_cpu_attention. The kernel accumulates in f32
 * in both arithmetic modes, so every case is held to TOL_F32 (not g->tol).
 * Outputs start as NaN (0xFF bytes) so a row the kernel never writes fails. */
#include "cuda_ops_check.h"

#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum {
    MASK_NONE = 0,
    MASK_TAIL,     /* batch items >= 1: their last third of keys masked */
    MASK_ALL0,     /* batch 0: every key masked (mean of v); others as TAIL */
    MASK_MIXED,    /* batch 0: its first 40 keys (a whole key tile) masked; all: ~30% at random */
};

typedef struct att_case {
    const char *name;
    int64_t B, H, Lq, Lk, D;
    float scale;
    int bias;
    int mask;
} att_case;

static int64_t *make_mask(gpu_check *g, int kind, int64_t B, int64_t Lk)
{
    int64_t *m = malloc((size_t)(B * Lk) * sizeof *m);
    float *r = rand_floats(g, (size_t)(B * Lk), 0.0f, 1.0f);
    if (!m) {
        fprintf(stderr, "cuda ops check: out of host memory\n");
        exit(1);
    }
    for (int64_t b = 0; b < B; b++) {
        for (int64_t j = 0; j < Lk; j++) {
            int64_t keep = 1;
            if ((kind == MASK_TAIL || kind == MASK_ALL0) && b >= 1 && j >= Lk - Lk / 3) keep = 0;
            if (kind == MASK_ALL0 && b == 0) keep = 0;
            if (kind == MASK_MIXED && ((b == 0 && j < 40) || r[b * Lk + j] < 0.3f)) keep = 0;
            m[b * Lk + j] = keep;
        }
    }
    free(r);
    return m;
}

static void run_case(gpu_check *g, const att_case *c)
{
    const size_t nq = (size_t)(c->B * c->Lq * c->H * c->D);
    const size_t nk = (size_t)(c->B * c->Lk * c->H * c->D);
    const size_t nb = (size_t)(c->H * c->Lq * c->Lk);
    const size_t nm = (size_t)(c->B * c->Lk);
    float *q = rand_floats(g, nq, -1.0f, 1.0f);
    float *k = rand_floats(g, nk, -1.0f, 1.0f);
    float *v = rand_floats(g, nk, -1.0f, 1.0f);
    float *bias = c->bias ? rand_floats(g, nb, -2.0f, 2.0f) : NULL;
    int64_t *mask = c->mask != MASK_NONE ? make_mask(g, c->mask, c->B, c->Lk) : NULL;
    float *ref = malloc((nq ? nq : 1) * sizeof *ref);
    if (!ref) {
        fprintf(stderr, "cuda ops check: out of host memory\n");
        exit(1);
    }
    fy_status st = fy_cpu_attention(g->cpu, q, k, v, ref, c->B, c->H, c->Lq, c->Lk, c->D, c->scale,
                                    bias, mask);
    if (st != FY_OK) {
        printf("  %-44s reference failed: %s  FAIL\n", c->name, fy_error_message());
        g->failures++;
    } else {
        float *dq = dev_upload(q, nq * sizeof *q);
        float *dk = dev_upload(k, nk * sizeof *k);
        float *dv = dev_upload(v, nk * sizeof *v);
        float *dbias = bias ? dev_upload(bias, nb * sizeof *bias) : NULL;
        int64_t *dmask = mask ? dev_upload(mask, nm * sizeof *mask) : NULL;
        float *dout = dev_alloc(nq * sizeof *dout);
        cudaMemset(dout, 0xFF, nq * sizeof *dout);
        st = fy_cuda_attention(g->ops, dq, dk, dv, dout, c->B, c->H, c->Lq, c->Lk, c->D, c->scale,
                               dbias, dmask);
        float *ours = st == FY_OK ? dev_download(g, dout, nq) : NULL;
        expect_close(g, c->name, st, ours, ref, nq, TOL_F32);
        free(ours);
        dev_free(dq);
        dev_free(dk);
        dev_free(dv);
        dev_free(dbias);
        dev_free(dmask);
        dev_free(dout);
    }
    free(q);
    free(k);
    free(v);
    free(bias);
    free(mask);
    free(ref);
}

static void expect_status(gpu_check *g, const char *name, fy_status got, fy_status want)
{
    int pass = got == want;
    printf("  %-44s %s -> %s  %s\n", name, fy_status_name(got), fy_status_name(want),
           pass ? "pass" : "FAIL");
    if (!pass) g->failures++;
}

void check_attention(gpu_check *g)
{
    const float s64 = 0.125f, s128 = 1.0f / sqrtf(128.0f);
    const att_case cases[] = {
        {"attention D64 37x53", 2, 3, 37, 53, 64, s64, 0, MASK_NONE},
        {"attention D64 37x53 bias", 2, 3, 37, 53, 64, s64, 1, MASK_NONE},
        {"attention D64 37x53 bias, mask tail of b1", 2, 3, 37, 53, 64, s64, 1, MASK_TAIL},
        {"attention D64 37x53 bias, b0 all masked", 2, 3, 37, 53, 64, s64, 1, MASK_ALL0},
        {"attention D128 300x300", 2, 3, 300, 300, 128, s128, 0, MASK_NONE},
        {"attention D128 300x300 bias, mixed mask", 2, 3, 300, 300, 128, s128, 1, MASK_MIXED},
        {"attention D96 70x45 bias, mask tail of b1", 2, 2, 70, 45, 96, 1.0f / sqrtf(96.0f), 1,
         MASK_TAIL},
        {"attention D32 45x70 bias, mixed mask", 1, 2, 45, 70, 32, 0.2f, 1, MASK_MIXED},
        {"attention D160 45x70 bias, mixed mask", 1, 2, 45, 70, 160, 0.08f, 1, MASK_MIXED},
        {"attention D192 45x70", 1, 2, 45, 70, 192, 0.07f, 0, MASK_NONE},
        {"attention D224 45x70 mixed mask", 1, 2, 45, 70, 224, 0.07f, 0, MASK_MIXED},
        {"attention D256 45x70 bias, mixed mask", 1, 2, 45, 70, 256, 0.0625f, 1, MASK_MIXED},
        {"attention Wan cross 1560x512 H12 D128", 2, 12, 1560, 512, 128, s128, 0, MASK_NONE},
        {"attention UMT5 200x200 H8 D64 bias, mask", 2, 8, 200, 200, 64, 1.0f, 1, MASK_TAIL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(g, &cases[i]);

    /* Sizes: D not a multiple of 32 is unsupported; Lq = 0 does nothing;
     * Lk = 0 is invalid, as on the CPU. */
    float *d = dev_alloc(64 * sizeof(float));
    expect_status(g, "attention D48: unsupported",
                  fy_cuda_attention(g->ops, d, d, d, d, 1, 1, 1, 1, 48, 1.0f, NULL, NULL),
                  FY_ERR_UNSUPPORTED);
    expect_status(g, "attention Lq=0: nothing to do",
                  fy_cuda_attention(g->ops, d, d, d, d, 1, 1, 0, 1, 64, 1.0f, NULL, NULL), FY_OK);
    expect_status(g, "attention Lk=0: invalid",
                  fy_cuda_attention(g->ops, d, d, d, d, 1, 1, 1, 0, 64, 1.0f, NULL, NULL),
                  FY_ERR_INVALID);
    cudaStreamSynchronize((cudaStream_t)fy_cuda_ops_stream(g->ops));
    dev_free(d);
}
