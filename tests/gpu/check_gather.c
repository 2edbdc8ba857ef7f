/* Data movement and table lookups: copies (flat and strided), vector
 * conversion to f32, strided transposes, nearest 2x upsampling, embedding
 * rows, T5's relative position bias. All exact: the GPU reads the
 * same bytes and does no arithmetic, so the tolerance is 0. */
#include "cuda_ops_check.h"

#include <stdio.h>
#include <stdlib.h>

#include "ferry/dtype.h"

static void check_to_f32(gpu_check *g, fy_dtype t, const char *name)
{
    const size_t n = 1001;
    float *x = rand_floats(g, n, -3.0f, 3.0f), *ref = malloc(n * sizeof *ref);
    void *packed = malloc(n * 4);
    fy_convert(packed, t, x, FY_F32, n);
    fy_convert(ref, FY_F32, packed, t, n);
    void *d_packed = dev_upload(packed, n * fy_dtype_size(t));
    float *d_out = dev_alloc(n * sizeof(float));
    fy_status st = fy_cuda_to_f32(g->ops, d_out, d_packed, t, n);
    float *ours = dev_download(g, d_out, n);
    expect_close(g, name, st, ours, ref, n, 0.0);
    free(x), free(ref), free(packed), free(ours);
    dev_free(d_packed), dev_free(d_out);
}

static void check_copy(gpu_check *g)
{
    const size_t n = 4097;
    float *x = rand_floats(g, n, -1.0f, 1.0f);
    float *d_x = dev_upload(x, n * sizeof *x), *d_y = dev_alloc(n * sizeof *x);
    fy_status st = fy_cuda_copy(g->ops, d_y, d_x, n * sizeof *x);
    float *ours = dev_download(g, d_y, n);
    expect_close(g, "copy", st, ours, x, n, 0.0);
    free(x), free(ours);
    dev_free(d_x), dev_free(d_y);
}

/* Every other row of a [rows, 40] matrix into the first 24 columns of a
 * [rows/2, 50] one, the rest of which stays as it was. */
static void check_copy2d(gpu_check *g)
{
    const size_t rows = 301, src_w = 40, dst_w = 50, width = 24;
    float *src = rand_floats(g, rows * src_w, -1.0f, 1.0f), *dst = rand_floats(g, rows / 2 * dst_w, -1.0f, 1.0f);
    float *ref = malloc(rows / 2 * dst_w * sizeof *ref);
    for (size_t i = 0; i < rows / 2 * dst_w; i++) ref[i] = dst[i];
    for (size_t r = 0; r < rows / 2; r++)
        for (size_t c = 0; c < width; c++) ref[r * dst_w + c] = src[2 * r * src_w + c];
    float *d_src = dev_upload(src, rows * src_w * sizeof *src), *d_dst = dev_upload(dst, rows / 2 * dst_w * sizeof *dst);
    fy_status st = fy_cuda_copy2d(g->ops, d_dst, dst_w * sizeof(float), d_src, 2 * src_w * sizeof(float),
                                  width * sizeof(float), rows / 2);
    float *ours = dev_download(g, d_dst, rows / 2 * dst_w);
    expect_close(g, "copy2d (strided rows)", st, ours, ref, rows / 2 * dst_w, 0.0);
    free(src), free(dst), free(ref), free(ours);
    dev_free(d_src), dev_free(d_dst);
}

/* The VAE's attention: a [C, L] frame of a [C, T, L] tensor to tokens [L, C]
 * and back, accumulating. Odd sizes leave partial 32 x 32 tiles. */
static void check_transpose(gpu_check *g, int accumulate)
{
    const int64_t C = 67, T = 3, L = 45, t = 1;
    float *x = rand_floats(g, (size_t)(C * T * L), -1.0f, 1.0f), *tok = rand_floats(g, (size_t)(L * C), -1.0f, 1.0f);
    float *ref = malloc((size_t)(C * T * L) * sizeof *ref), *ref_tok = malloc((size_t)(L * C) * sizeof *ref_tok);
    for (int64_t i = 0; i < C * T * L; i++) ref[i] = x[i];
    for (int64_t i = 0; i < L * C; i++) ref_tok[i] = tok[i];
    float *d_x = dev_upload(x, (size_t)(C * T * L) * sizeof *x), *d_tok = dev_upload(tok, (size_t)(L * C) * sizeof *tok);
    fy_status st;
    float *ours;
    if (!accumulate) { /* frame -> tokens */
        fy_cpu_transpose(g->cpu, ref_tok, C, ref + t * L, T * L, C, L, 0);
        st = fy_cuda_transpose(g->ops, d_tok, C, d_x + t * L, T * L, C, L, 0);
        ours = dev_download(g, d_tok, (size_t)(L * C));
        expect_close(g, "transpose (frame to tokens)", st, ours, ref_tok, (size_t)(L * C), 0.0);
    } else { /* tokens added back into the frame */
        fy_cpu_transpose(g->cpu, ref + t * L, T * L, ref_tok, C, L, C, 1);
        st = fy_cuda_transpose(g->ops, d_x + t * L, T * L, d_tok, C, L, C, 1);
        ours = dev_download(g, d_x, (size_t)(C * T * L));
        expect_close(g, "transpose accumulate (tokens to frame)", st, ours, ref, (size_t)(C * T * L), 0.0);
    }
    free(x), free(tok), free(ref), free(ref_tok), free(ours);
    dev_free(d_x), dev_free(d_tok);
}

static void check_upsample(gpu_check *g)
{
    const int64_t planes = 5, h = 7, w = 9;
    float *in = rand_floats(g, (size_t)(planes * h * w), -1.0f, 1.0f);
    float *ref = malloc((size_t)(planes * 4 * h * w) * sizeof *ref);
    fy_cpu_upsample_nearest2x(g->cpu, in, ref, planes, h, w);
    float *d_in = dev_upload(in, (size_t)(planes * h * w) * sizeof *in);
    float *d_out = dev_alloc((size_t)(planes * 4 * h * w) * sizeof(float));
    fy_status st = fy_cuda_upsample_nearest2x(g->ops, d_in, d_out, planes, h, w);
    float *ours = dev_download(g, d_out, (size_t)(planes * 4 * h * w));
    expect_close(g, "upsample nearest 2x", st, ours, ref, (size_t)(planes * 4 * h * w), 0.0);
    free(in), free(ref), free(ours);
    dev_free(d_in), dev_free(d_out);
}

/* DupUp3D's unfold: [c, ft, fs, fs, T, H, W] -> [c, T, ft, H, fs, W, fs]. */
static void check_permute(gpu_check *g)
{
    const int64_t shape[8] = {6, 2, 2, 2, 3, 5, 7, 1};
    const int perm[8] = {0, 4, 1, 5, 2, 6, 3, 7};
    const size_t n = 6 * 8 * 3 * 5 * 7;
    float *in = rand_floats(g, n, -1.0f, 1.0f), *ref = malloc(n * sizeof *ref);
    fy_status st = fy_cpu_permute(g->cpu, ref, in, 8, shape, perm);
    float *d_in = dev_upload(in, n * sizeof *in), *d_out = dev_alloc(n * sizeof(float));
    dev_poison(g, d_out, n * sizeof(float));
    if (st == FY_OK) st = fy_cuda_permute(g->ops, d_out, d_in, 8, shape, perm);
    float *ours = dev_download(g, d_out, n);
    expect_close(g, "permute (8 dims)", st, ours, ref, n, 0.0);
    free(in), free(ref), free(ours);
    dev_free(d_in), dev_free(d_out);
}

static void check_embedding(gpu_check *g, fy_dtype t, const char *name)
{
    const int64_t vocab = 50, dim = 96, rows = 37;
    float *table = rand_floats(g, (size_t)(vocab * dim), -2.0f, 2.0f);
    void *packed = malloc((size_t)(vocab * dim) * 4);
    fy_convert(packed, t, table, FY_F32, (size_t)(vocab * dim));
    int64_t ids[37];
    for (int64_t r = 0; r < rows; r++) ids[r] = (r * 17 + 3) % vocab;
    float *ref = malloc((size_t)(rows * dim) * sizeof *ref);
    fy_cpu_embedding(g->cpu, packed, t, ids, ref, rows, dim);
    void *d_table = dev_upload(packed, (size_t)(vocab * dim) * fy_dtype_size(t));
    int64_t *d_ids = dev_upload(ids, sizeof ids);
    float *d_out = dev_alloc((size_t)(rows * dim) * sizeof(float));
    fy_status st = fy_cuda_embedding(g->ops, d_table, t, d_ids, d_out, rows, dim);
    float *ours = dev_download(g, d_out, (size_t)(rows * dim));
    expect_close(g, name, st, ours, ref, (size_t)(rows * dim), 0.0);
    free(table), free(packed), free(ref), free(ours);
    dev_free(d_table), dev_free(d_ids), dev_free(d_out);
}

static void check_relative_bias(gpu_check *g)
{
    const int64_t H = 6, L = 300, buckets = 32, q0 = 128, nq = 128;
    float *table = rand_floats(g, (size_t)(buckets * H), -1.0f, 1.0f);
    int32_t *bucket = malloc((size_t)(2 * L - 1) * sizeof *bucket);
    for (int64_t r = 0; r < 2 * L - 1; r++) bucket[r] = (int32_t)((r * 7) % buckets);
    float *ref = malloc((size_t)(H * nq * L) * sizeof *ref);
    fy_cpu_relative_bias(g->cpu, table, bucket, ref, H, L, q0, nq);
    float *d_table = dev_upload(table, (size_t)(buckets * H) * sizeof *table);
    int32_t *d_bucket = dev_upload(bucket, (size_t)(2 * L - 1) * sizeof *bucket);
    float *d_out = dev_alloc((size_t)(H * nq * L) * sizeof(float));
    fy_status st = fy_cuda_relative_bias(g->ops, d_table, d_bucket, d_out, H, L, q0, nq);
    float *ours = dev_download(g, d_out, (size_t)(H * nq * L));
    expect_close(g, "relative_bias (rows 128..255 of 300)", st, ours, ref, (size_t)(H * nq * L), 0.0);
    free(table), free(bucket), free(ref), free(ours);
    dev_free(d_table), dev_free(d_bucket), dev_free(d_out);
}

void check_gather(gpu_check *g)
{
    check_copy(g);
    check_copy2d(g);
    check_transpose(g, 0);
    check_transpose(g, 1);
    check_upsample(g);
    check_permute(g);
    check_to_f32(g, FY_BF16, "to_f32 bf16");
    check_to_f32(g, FY_F16, "to_f32 f16");
    check_to_f32(g, FY_F8_E4M3, "to_f32 fp8 e4m3");
    check_embedding(g, FY_F32, "embedding f32");
    check_embedding(g, FY_BF16, "embedding bf16");
    check_relative_bias(g);
}
