/* Table lookups: embedding rows by token id, T5's relative position bias. */
#include "backend/cpu/ops_internal.h"

typedef struct embedding_args {
    const char *table;
    fy_dtype dtype;
    const int64_t *ids;
    float *out;
    int64_t dim;
    size_t row_bytes;
} embedding_args;

static void embedding_rows(void *raw, int64_t begin, int64_t end)
{
    const embedding_args *p = raw;
    for (int64_t r = begin; r < end; r++)
        fy_convert(p->out + r * p->dim, FY_F32, p->table + (size_t)p->ids[r] * p->row_bytes, p->dtype,
                   (size_t)p->dim);
}

fy_status fy_cpu_embedding(fy_cpu_ctx *ctx, const void *table, fy_dtype dtype, const int64_t *ids, float *out,
                           int64_t rows, int64_t dim)
{
    if (!fy_dtype_is_float(dtype) || fy_dtype_size(dtype) == 0)
        return fy_error(FY_ERR_UNSUPPORTED, "embedding: a table of dtype %s cannot be read as f32",
                        fy_dtype_name(dtype));
    embedding_args args = {table, dtype, ids, out, dim, (size_t)dim * fy_dtype_size(dtype)};
    fy_cpu_parallel_range(ctx, rows, 16, embedding_rows, &args);
    return FY_OK;
}

typedef struct bias_args {
    const float *table;
    const int32_t *bucket;
    float *out;
    int64_t H, L, q0, nq;
} bias_args;

/* Task t fills head t / nq, query row t % nq. */
static void bias_rows(void *raw, int64_t begin, int64_t end)
{
    const bias_args *p = raw;
    for (int64_t t = begin; t < end; t++) {
        int64_t h = t / p->nq, i = t % p->nq;
        const int32_t *bucket = p->bucket + (p->L - 1) - (p->q0 + i);
        float *row = p->out + t * p->L;
        for (int64_t j = 0; j < p->L; j++) row[j] = p->table[bucket[j] * p->H + h];
    }
}

void fy_cpu_relative_bias(fy_cpu_ctx *ctx, const float *table, const int32_t *bucket, float *out, int64_t H,
                          int64_t L, int64_t q0, int64_t nq)
{
    bias_args args = {table, bucket, out, H, L, q0, nq};
    fy_cpu_parallel_range(ctx, H * nq, 8, bias_rows, &args);
}
