/* Data movement and table lookups: copy, vector conversion to f32,
 * embedding rows, T5's relative position bias. All exact: the GPU reads the
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
    check_to_f32(g, FY_BF16, "to_f32 bf16");
    check_to_f32(g, FY_F16, "to_f32 f16");
    check_to_f32(g, FY_F8_E4M3, "to_f32 fp8 e4m3");
    check_embedding(g, FY_F32, "embedding f32");
    check_embedding(g, FY_BF16, "embedding bf16");
    check_relative_bias(g);
}
