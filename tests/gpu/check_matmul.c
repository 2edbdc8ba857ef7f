/* fy_cuda_linear, fy_cuda_bmm and fy_cuda_conv3d against their CPU ops on
 * random inputs. Low-precision weights are made on the host with the
 * project's own conversions (fy_convert, fy_fp8_quantize), so the CPU
 * reference and the GPU read the very same bytes. BF16 arithmetic is
 * compared with the f32 CPU result (at g->tol = 2e-2). */
#include "cuda_ops_check.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/dtype.h"
#include "ferry/quant.h"

typedef enum scale_kind { SCALE_NONE, SCALE_TENSOR, SCALE_ROW } scale_kind;

static void fail_line(gpu_check *g, const char *name, const char *why)
{
    printf("  %-44s %s  FAIL\n", name, why);
    g->failures++;
}

/* One linear: W [N, K] of dtype wt (fp8: quantised with the scale mode;
 * other types: converted, with an arbitrary positive scale per row or
 * tensor when asked), bias when with_bias. */
static void linear_case(gpu_check *g, const char *name, int64_t M, int64_t K, int64_t N, fy_dtype wt,
                        scale_kind sk, int with_bias)
{
    const size_t nx = (size_t)(M * K), nw = (size_t)(N * K), ny = (size_t)(M * N);
    const int is_fp8 = wt == FY_F8_E4M3 || wt == FY_F8_E5M2;
    float *x = rand_floats(g, nx, -1.0f, 1.0f);
    float *w32 = rand_floats(g, nw, -1.0f, 1.0f);
    float *bias = with_bias ? rand_floats(g, (size_t)N, -1.0f, 1.0f) : NULL;
    const int64_t n_scale = sk == SCALE_ROW ? N : sk == SCALE_TENSOR ? 1 : 0;
    float *scale = NULL;
    void *wbytes = w32;
    fy_status st = FY_OK;

    if (is_fp8) {
        scale = malloc((size_t)(n_scale ? n_scale : 1) * sizeof *scale);
        wbytes = malloc(nw ? nw : 1);
        fy_fp8_scale mode = sk == SCALE_ROW ? FY_FP8_SCALE_ROW
                            : sk == SCALE_TENSOR ? FY_FP8_SCALE_TENSOR
                                                 : FY_FP8_SCALE_NONE;
        if (!scale || !wbytes) {
            fprintf(stderr, "cuda ops check: out of host memory\n");
            exit(1);
        }
        st = fy_fp8_quantize(wbytes, scale, wt, mode, w32, FY_F32, N, K, name);
    } else {
        if (n_scale) scale = rand_floats(g, (size_t)n_scale, 0.25f, 2.0f);
        if (wt != FY_F32) {
            wbytes = malloc(nw * fy_dtype_size(wt));
            if (!wbytes) {
                fprintf(stderr, "cuda ops check: out of host memory\n");
                exit(1);
            }
            st = fy_convert(wbytes, wt, w32, FY_F32, nw);
        }
    }
    if (st != FY_OK) {
        fail_line(g, name, fy_error_message());
    } else {
        const float *sc = n_scale ? scale : NULL;
        const int scale_rows = sk == SCALE_ROW;
        float *ref = malloc((ny ? ny : 1) * sizeof *ref);
        if (!ref) {
            fprintf(stderr, "cuda ops check: out of host memory\n");
            exit(1);
        }
        fy_status rst = fy_cpu_linear_scaled(g->cpu, x, wbytes, wt, sc, scale_rows, bias, ref, M, K, N);
        if (rst != FY_OK) {
            fail_line(g, name, fy_error_message());
        } else {
            float *dx = dev_upload(x, nx * sizeof *x);
            void *dw = dev_upload(wbytes, nw * fy_dtype_size(wt));
            float *ds = sc ? dev_upload(sc, (size_t)n_scale * sizeof *sc) : NULL;
            float *db = bias ? dev_upload(bias, (size_t)N * sizeof *bias) : NULL;
            float *dy = dev_alloc(ny * sizeof(float));
            fy_status gst = fy_cuda_linear(g->ops, dx, dw, wt, ds, scale_rows, db, dy, M, K, N);
            float *ours = dev_download(g, dy, ny);
            expect_close(g, name, gst, ours, ref, ny, g->tol);
            free(ours);
            dev_free(dx);
            dev_free(dw);
            dev_free(ds);
            dev_free(db);
            dev_free(dy);
        }
        free(ref);
    }
    if (wbytes != w32) free(wbytes);
    free(scale);
    free(bias);
    free(w32);
    free(x);
}

static void bmm_case(gpu_check *g, const char *name, int64_t batch, int64_t M, int64_t N, int64_t K,
                     int trans_b, float alpha)
{
    const size_t na = (size_t)(batch * M * K), nb = (size_t)(batch * K * N), nc = (size_t)(batch * M * N);
    float *a = rand_floats(g, na, -1.0f, 1.0f);
    float *b = rand_floats(g, nb, -1.0f, 1.0f);
    float *ref = malloc(nc * sizeof *ref);
    if (!ref) {
        fprintf(stderr, "cuda ops check: out of host memory\n");
        exit(1);
    }
    fy_status rst = fy_cpu_bmm(g->cpu, a, b, ref, batch, M, N, K, trans_b, alpha);
    if (rst != FY_OK) {
        fail_line(g, name, fy_error_message());
    } else {
        float *da = dev_upload(a, na * sizeof *a), *db = dev_upload(b, nb * sizeof *b);
        float *dc = dev_alloc(nc * sizeof(float));
        fy_status gst = fy_cuda_bmm(g->ops, da, db, dc, batch, M, N, K, trans_b, alpha);
        float *ours = dev_download(g, dc, nc);
        expect_close(g, name, gst, ours, ref, nc, g->tol);
        free(ours);
        dev_free(da);
        dev_free(db);
        dev_free(dc);
    }
    free(ref);
    free(b);
    free(a);
}

void check_matmul(gpu_check *g)
{
    /* Odd shapes, every weight type, with and without bias. */
    linear_case(g, "linear f32 7x33x65", 7, 33, 65, FY_F32, SCALE_NONE, 0);
    linear_case(g, "linear f32 7x33x65 bias", 7, 33, 65, FY_F32, SCALE_NONE, 1);
    linear_case(g, "linear f32 tensor-scaled 7x33x65 bias", 7, 33, 65, FY_F32, SCALE_TENSOR, 1);
    linear_case(g, "linear bf16 7x33x65 bias", 7, 33, 65, FY_BF16, SCALE_NONE, 1);
    linear_case(g, "linear bf16 row-scaled 7x33x65", 7, 33, 65, FY_BF16, SCALE_ROW, 0);
    linear_case(g, "linear f16 7x33x65 bias", 7, 33, 65, FY_F16, SCALE_NONE, 1);
    linear_case(g, "linear f16 7x33x65", 7, 33, 65, FY_F16, SCALE_NONE, 0);
    linear_case(g, "linear e4m3 row 7x33x65 bias", 7, 33, 65, FY_F8_E4M3, SCALE_ROW, 1);
    linear_case(g, "linear e4m3 tensor 7x33x65", 7, 33, 65, FY_F8_E4M3, SCALE_TENSOR, 0);
    linear_case(g, "linear e4m3 unscaled 7x33x65 bias", 7, 33, 65, FY_F8_E4M3, SCALE_NONE, 1);
    linear_case(g, "linear e5m2 row 7x33x65", 7, 33, 65, FY_F8_E5M2, SCALE_ROW, 0);
    linear_case(g, "linear e5m2 tensor 7x33x65 bias", 7, 33, 65, FY_F8_E5M2, SCALE_TENSOR, 1);
    linear_case(g, "linear f32 1x1x1", 1, 1, 1, FY_F32, SCALE_NONE, 1);

    /* Wan-like (1.3B ffn): M=384 tokens, K=1536, N=8960. */
    linear_case(g, "linear f32 wan 384x1536x8960 bias", 384, 1536, 8960, FY_F32, SCALE_NONE, 1);
    linear_case(g, "linear bf16 wan 384x1536x8960 bias", 384, 1536, 8960, FY_BF16, SCALE_NONE, 1);
    linear_case(g, "linear e4m3 row wan 384x1536x8960", 384, 1536, 8960, FY_F8_E4M3, SCALE_ROW, 0);

    /* Several weight blocks (64 MiB of converted rows each): K=2048 gives
     * 8192 f32 rows or 16384 bf16 rows a block, so N=16500 is 3 blocks in
     * f32 arithmetic and 2 in bf16 (the last one short). */
    linear_case(g, "linear e4m3 row chunked 8x2048x16500 bias", 8, 2048, 16500, FY_F8_E4M3, SCALE_ROW, 1);
    linear_case(g, "linear f16 chunked 8x2048x16500", 8, 2048, 16500, FY_F16, SCALE_NONE, 0);

    /* Sizes cuBLAS cannot take are refused before any pointer is read; an
     * empty product is a no-op. */
    {
        fy_status st = fy_cuda_linear(g->ops, NULL, NULL, FY_F32, NULL, 0, NULL, NULL,
                                      (int64_t)INT_MAX + 1, 16, 16);
        if (st != FY_ERR_INVALID) fail_line(g, "linear refuses M > INT_MAX", "not refused");
        else printf("  %-44s %s  pass\n", "linear refuses M > INT_MAX", fy_error_message());
        st = fy_cuda_linear(g->ops, NULL, NULL, FY_F32, NULL, 0, NULL, NULL, 0, 16, 16);
        if (st != FY_OK) fail_line(g, "linear M=0 no-op", fy_error_message());
        else printf("  %-44s %10s  %7s  pass\n", "linear M=0 no-op", "", "");
    }

    /* The models' linears, fixture and real sizes (M: a few token rows, so
     * the CPU reference stays quick). Tiny: UMT5 d_model 32, d_ff 64; DiT
     * dim 32, ffn 64, freq 32, text 32. Real: UMT5-XXL 4096/10240 (bf16
     * checkpoints), Wan2.1 1.3B 1536/8960 and 14B 5120/13824, the time
     * embedding (256 -> dim, dim -> 6 dim), the text projection 4096 -> dim,
     * the patch embedding (16 x 1 x 2 x 2 = 64 -> dim) and the head. */
    linear_case(g, "linear tiny umt5 qkv 37x32x32", 37, 32, 32, FY_F32, SCALE_NONE, 0);
    linear_case(g, "linear tiny umt5 ff 37x32x64", 37, 32, 64, FY_F32, SCALE_NONE, 0);
    linear_case(g, "linear tiny dit ffn 60x64x32 bias", 60, 64, 32, FY_F32, SCALE_NONE, 1);
    linear_case(g, "linear tiny dit time 2x32x192 bias", 2, 32, 192, FY_F32, SCALE_NONE, 1);
    linear_case(g, "linear umt5 ff 64x4096x10240 bf16", 64, 4096, 10240, FY_BF16, SCALE_NONE, 0);
    linear_case(g, "linear umt5 wo 64x10240x4096 bf16", 64, 10240, 4096, FY_BF16, SCALE_NONE, 0);
    linear_case(g, "linear 1.3B qkv 256x1536x1536 bf16 bias", 256, 1536, 1536, FY_BF16, SCALE_NONE, 1);
    linear_case(g, "linear 1.3B ffn2 256x8960x1536 bf16 bias", 256, 8960, 1536, FY_BF16, SCALE_NONE, 1);
    linear_case(g, "linear 1.3B time 2x256x1536 bias", 2, 256, 1536, FY_F32, SCALE_NONE, 1);
    linear_case(g, "linear 1.3B time proj 2x1536x9216 bias", 2, 1536, 9216, FY_BF16, SCALE_NONE, 1);
    linear_case(g, "linear 1.3B text 512x4096x1536 bias", 512, 4096, 1536, FY_BF16, SCALE_NONE, 1);
    linear_case(g, "linear 1.3B patch 390x64x1536 bias", 390, 64, 1536, FY_F32, SCALE_NONE, 1);
    linear_case(g, "linear 1.3B head 390x1536x64 bias", 390, 1536, 64, FY_F32, SCALE_NONE, 1);
    linear_case(g, "linear 14B qkv 64x5120x5120 bf16 bias", 64, 5120, 5120, FY_BF16, SCALE_NONE, 1);
    linear_case(g, "linear 14B ffn1 64x5120x13824 e4m3 row", 64, 5120, 13824, FY_F8_E4M3, SCALE_ROW, 1);
    linear_case(g, "linear 14B ffn2 64x13824x5120 bf16 bias", 64, 13824, 5120, FY_BF16, SCALE_NONE, 1);

    bmm_case(g, "bmm 3x37x29x45", 3, 37, 29, 45, 0, 1.0f);
    bmm_case(g, "bmm 3x37x29x45 trans_b alpha .125", 3, 37, 29, 45, 1, 0.125f);
    bmm_case(g, "bmm 4x256x200x64 alpha 2", 4, 256, 200, 64, 0, 2.0f);
    bmm_case(g, "bmm 4x256x200x64 trans_b", 4, 256, 200, 64, 1, 1.0f);
}

static void conv_case(gpu_check *g, const char *name, int64_t batch, const fy_conv3d_shape *s, int with_bias)
{
    int64_t to = 0, ho = 0, wo = 0;
    if (fy_conv3d_out_size(s, &to, &ho, &wo) != FY_OK) {
        fail_line(g, name, fy_error_message());
        return;
    }
    const size_t nx = (size_t)(batch * s->c_in * s->t * s->h * s->w);
    const size_t nw = (size_t)(s->c_out * s->c_in * s->kt * s->kh * s->kw);
    const size_t ny = (size_t)(batch * s->c_out * to * ho * wo);
    float *x = rand_floats(g, nx, -1.0f, 1.0f);
    float *w = rand_floats(g, nw, -1.0f, 1.0f);
    float *b = with_bias ? rand_floats(g, (size_t)s->c_out, -1.0f, 1.0f) : NULL;
    float *ref = malloc(ny * sizeof *ref);
    if (!ref) {
        fprintf(stderr, "cuda ops check: out of host memory\n");
        exit(1);
    }
    fy_status rst = fy_cpu_conv3d(g->cpu, x, w, b, ref, batch, s);
    if (rst != FY_OK) {
        fail_line(g, name, fy_error_message());
    } else {
        float *dx = dev_upload(x, nx * sizeof *x), *dw = dev_upload(w, nw * sizeof *w);
        float *db = b ? dev_upload(b, (size_t)s->c_out * sizeof *b) : NULL;
        float *dy = dev_alloc(ny * sizeof(float));
        fy_status gst = fy_cuda_conv3d(g->ops, dx, dw, db, dy, batch, s);
        float *ours = dev_download(g, dy, ny);
        expect_close(g, name, gst, ours, ref, ny, g->tol);
        free(ours);
        dev_free(dx);
        dev_free(dw);
        dev_free(db);
        dev_free(dy);
    }
    free(ref);
    free(b);
    free(w);
    free(x);
}

void check_conv(gpu_check *g)
{
    /* Wan VAE's causal 3x3x3: padding 1 in space, 2 in front in time. */
    fy_conv3d_shape causal = {.c_in = 5, .t = 4, .h = 9, .w = 11, .c_out = 7, .kt = 3, .kh = 3, .kw = 3,
                              .st = 1, .sh = 1, .sw = 1, .pad_t0 = 2, .pad_h0 = 1, .pad_h1 = 1,
                              .pad_w0 = 1, .pad_w1 = 1};
    conv_case(g, "conv3d causal 3x3x3 batch 2 bias", 2, &causal, 1);
    conv_case(g, "conv3d causal 3x3x3", 1, &causal, 0);

    /* Spatial downsample: pad right/bottom by one, 1x3x3 stride (1, 2, 2). */
    fy_conv3d_shape down = {.c_in = 6, .t = 3, .h = 10, .w = 13, .c_out = 6, .kt = 1, .kh = 3, .kw = 3,
                            .st = 1, .sh = 2, .sw = 2, .pad_h1 = 1, .pad_w1 = 1};
    conv_case(g, "conv3d 1x3x3 stride 2 downsample bias", 2, &down, 1);
    conv_case(g, "conv3d 1x3x3 stride 2 downsample", 1, &down, 0);

    /* Every stride and asymmetric padding at once. */
    fy_conv3d_shape mixed = {.c_in = 3, .t = 7, .h = 8, .w = 9, .c_out = 5, .kt = 3, .kh = 2, .kw = 3,
                             .st = 2, .sh = 3, .sw = 2, .pad_t0 = 2, .pad_t1 = 1, .pad_h0 = 0,
                             .pad_h1 = 2, .pad_w0 = 1, .pad_w1 = 0};
    conv_case(g, "conv3d 3x2x3 strides (2,3,2) asym pad bias", 2, &mixed, 1);

    /* 1x1x1 (no columns: x is the column matrix). */
    fy_conv3d_shape point = {.c_in = 16, .t = 2, .h = 5, .w = 7, .c_out = 8, .kt = 1, .kh = 1, .kw = 1,
                             .st = 1, .sh = 1, .sw = 1};
    conv_case(g, "conv3d 1x1x1 batch 2 bias", 2, &point, 1);
    conv_case(g, "conv3d 1x1x1", 1, &point, 0);

    /* Several column chunks (256 MiB of columns each): kvol = 64 * 27 =
     * 1728 gives 38836 positions a chunk, and 4 x 100 x 100 = 40000
     * positions per item make 2 chunks, the last one short. */
    fy_conv3d_shape big = {.c_in = 64, .t = 4, .h = 100, .w = 100, .c_out = 16, .kt = 3, .kh = 3, .kw = 3,
                           .st = 1, .sh = 1, .sw = 1, .pad_t0 = 2, .pad_h0 = 1, .pad_h1 = 1,
                           .pad_w0 = 1, .pad_w1 = 1};
    conv_case(g, "conv3d causal chunked 64->16 4x100x100 b2", 2, &big, 1);

    /* The Wan VAE's convolutions at the tiny fixture's channels (4 to 16)
     * and the real ones (96 to 384, z 16), on small frames: the causal
     * 3x3x3 in its resnets, the decoder's conv_in (z -> 384) and conv_out
     * (96 -> 3), the time resampler's 3x1x1 and the 1x1x1 shortcut. */
    fy_conv3d_shape c333 = causal;
    c333.t = 3;
    c333.h = 12;
    c333.w = 16;
    const int64_t chans[][2] = {{4, 4}, {16, 16}, {16, 384}, {384, 384}, {192, 192}, {96, 96}, {96, 3}};
    for (size_t i = 0; i < sizeof chans / sizeof chans[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "conv3d vae 3x3x3 %lld->%lld 3x12x16 bias", (long long)chans[i][0],
                 (long long)chans[i][1]);
        c333.c_in = chans[i][0];
        c333.c_out = chans[i][1];
        conv_case(g, name, 1, &c333, 1);
    }
    fy_conv3d_shape time311 = {.c_in = 384, .t = 4, .h = 6, .w = 8, .c_out = 768, .kt = 3, .kh = 1, .kw = 1,
                               .st = 1, .sh = 1, .sw = 1, .pad_t0 = 2};
    conv_case(g, "conv3d vae time 3x1x1 384->768 bias", 1, &time311, 1);
    fy_conv3d_shape short111 = {.c_in = 192, .t = 2, .h = 12, .w = 16, .c_out = 384, .kt = 1, .kh = 1, .kw = 1,
                                .st = 1, .sh = 1, .sw = 1};
    conv_case(g, "conv3d vae shortcut 1x1x1 192->384 bias", 1, &short111, 1);
}
