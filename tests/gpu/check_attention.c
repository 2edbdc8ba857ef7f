/* fy_cuda_attention against fy_cpu_attention. The f32 kernels accumulate in
 * f32 in both arithmetic modes, so their cases are held to TOL_F32; the
 * tensor-core kernel (bf16 arithmetic with tc_attention on: no bias, head
 * dim 64 or 128) rounds q, k, v and the weights to bf16, so its cases are
 * held to g->tol.
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
        dev_poison(g, dout, nq * sizeof *dout);
        st = fy_cuda_attention(g->ops, dq, dk, dv, dout, c->B, c->H, c->Lq, c->Lk, c->D, c->scale,
                               dbias, dmask);
        float *ours = st == FY_OK ? dev_download(g, dout, nq) : NULL;
        const int on_tc = fy_cuda_ops_tc_attention(g->ops) && fy_cuda_ops_math(g->ops) == FY_CUDA_MATH_BF16 &&
                          !c->bias && (c->D == 64 || c->D == 128);
        char name[96];
        snprintf(name, sizeof name, "%s%s", on_tc ? "[tc] " : "", c->name);
        expect_close(g, name, st, ours, ref, nq, on_tc ? g->tol : TOL_F32);
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
        /* Every head dim the models use. The tiny fixtures: UMT5 4 heads of
         * 8 (bias, mask), the DiT 2 of 16 (self and cross, CFG pair), the
         * VAE's mid block one head of 16. The real ones: UMT5-XXL 64 of 64,
         * Wan2.1 12 (1.3B) or 40 (14B) of 128, the VAE's one head of 384
         * (a frame's latent tokens). */
        {"attention tiny UMT5 D8 H4 37x37 bias, mask", 2, 4, 37, 37, 8, 1.0f, 1, MASK_TAIL},
        {"attention tiny DiT D16 H2 60x60", 2, 2, 60, 60, 16, 0.25f, 0, MASK_NONE},
        {"attention tiny DiT cross D16 H2 60x37", 2, 2, 60, 37, 16, 0.25f, 0, MASK_NONE},
        {"attention tiny VAE D16 H1 64x64", 3, 1, 64, 64, 16, 0.25f, 0, MASK_NONE},
        {"attention UMT5-XXL D64 H64 77x77 bias, mask", 1, 64, 77, 77, 64, 1.0f, 1, MASK_TAIL},
        {"attention 1.3B self D128 H12 1024x2048", 1, 12, 1024, 2048, 128, s128, 0, MASK_NONE},
        {"attention 14B self D128 H40 256x780", 2, 40, 256, 780, 128, s128, 0, MASK_NONE},
        {"attention 14B cross D128 H40 390x512", 2, 40, 390, 512, 128, s128, 0, MASK_NONE},
        {"attention VAE D384 H1 390x390", 2, 1, 390, 390, 384, 0.051031f, 0, MASK_NONE},
        /* Wan2.2 and Flux: the tiny fixtures' VAE mid blocks (one head of 12
         * and 20) and T5 (4 heads of 12, bias, mask); the real Wan2.2 VAE's
         * one head of 640 (encoder) and 1024 (decoder), Flux's VAE (one of
         * 512) and its joint attention (24 heads of 128 over image and text
         * tokens). */
        {"attention tiny Wan2.2 VAE D12 H1 48x48", 2, 1, 48, 48, 12, 0.29f, 0, MASK_NONE},
        {"attention tiny Wan2.2 VAE D20 H1 48x48", 2, 1, 48, 48, 20, 0.22f, 0, MASK_NONE},
        {"attention tiny Flux T5 D12 H4 37x37 bias, mask", 2, 4, 37, 37, 12, 1.0f, 1, MASK_TAIL},
        {"attention Wan2.2 VAE D640 H1 96x96", 1, 1, 96, 96, 640, 0.0395f, 0, MASK_NONE},
        {"attention Wan2.2 VAE D1024 H1 96x96", 1, 1, 96, 96, 1024, 0.03125f, 0, MASK_NONE},
        {"attention Flux VAE D512 H1 256x256", 1, 1, 256, 256, 512, 0.0442f, 0, MASK_NONE},
        {"attention Flux joint D128 H24 600x600", 1, 24, 600, 600, 128, s128, 0, MASK_NONE},
        /* Head dims no model uses: the padded tile and the any-D kernel. */
        {"attention D48 45x70 mixed mask", 1, 2, 45, 70, 48, 0.14f, 0, MASK_MIXED},
        {"attention D100 45x70 bias", 1, 2, 45, 70, 100, 0.1f, 1, MASK_NONE},
        {"attention D300 45x70 bias, b0 all masked", 2, 1, 45, 70, 300, 0.057f, 1, MASK_ALL0},
        {"attention D520 33x40", 1, 2, 33, 40, 520, 0.044f, 0, MASK_NONE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(g, &cases[i]);

    /* Sizes: Lq = 0 does nothing; Lk = 0 is invalid, as on the CPU. */
    float *d = dev_alloc(64 * sizeof(float));
    expect_status(g, "attention Lq=0: nothing to do",
                  fy_cuda_attention(g->ops, d, d, d, d, 1, 1, 0, 1, 64, 1.0f, NULL, NULL), FY_OK);
    expect_status(g, "attention Lk=0: invalid",
                  fy_cuda_attention(g->ops, d, d, d, d, 1, 1, 1, 0, 64, 1.0f, NULL, NULL),
                  FY_ERR_INVALID);
    cudaStreamSynchronize((cudaStream_t)fy_cuda_ops_stream(g->ops));
    dev_free(d);
}
