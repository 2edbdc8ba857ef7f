/* Lookup tables stay in host memory: a text encoder's token embeddings
 * (256,384 x 4,096 for UMT5-XXL: 3.9 GiB in f32) serve at most a few
 * hundred rows per prompt, so the rows are gathered on the host, widened to
 * f32 and uploaded (a few MB); the table is never on the device. */
#include <stdlib.h>
#include <string.h>

#include "mem/engine_internal.h"

static fy_status round_row(float *row, fy_dtype storage, int64_t dim)
{
    uint16_t narrow[256];
    for (int64_t at = 0; at < dim; at += 256) {
        size_t k = (size_t)(dim - at < 256 ? dim - at : 256);
        FY_TRY(fy_convert(narrow, storage, row + at, FY_F32, k));
        FY_TRY(fy_convert(row + at, FY_F32, narrow, storage, k));
    }
    return FY_OK;
}

fy_status fy_engine_gather_rows(fy_engine *e, const fy_tensor *table, const int64_t *ids, int64_t n, float *dst)
{
    if (!table || table->ndim != 2 || !fy_dtype_is_float(table->dtype) || fy_dtype_size(table->dtype) == 0)
        return fy_error(FY_ERR_INVALID, "engine: a gathered table is a float matrix [rows, dim]");
    int64_t rows = table->shape[0], dim = table->shape[1];
    size_t row_bytes = (size_t)dim * fy_dtype_size(table->dtype);
    float *host = malloc((size_t)(n > 0 ? n : 1) * (size_t)dim * sizeof *host);
    if (!host) return fy_error(FY_ERR_NOMEM, "engine: out of memory gathering %lld table rows", (long long)n);
    /* Under bf16/f16 storage the table reads as if stored so, like every
     * weight matrix (and like a converted checkpoint). */
    fy_dtype storage = e->opts.storage_auto ? FY_DTYPE_COUNT : e->opts.storage_dtype;
    bool round = fy_storage_is_narrow(storage) && fy_dtype_size(table->dtype) > fy_dtype_size(storage);
    fy_status s = FY_OK;
    for (int64_t r = 0; r < n && s == FY_OK; r++) {
        if (ids[r] < 0 || ids[r] >= rows) {
            s = fy_error(FY_ERR_INVALID, "engine: row %lld of a %lld-row table", (long long)ids[r], (long long)rows);
            break;
        }
        float *row = host + r * dim;
        s = fy_convert(row, FY_F32, (const char *)table->data + (size_t)ids[r] * row_bytes, table->dtype, (size_t)dim);
        if (s == FY_OK && round) s = round_row(row, storage, dim);
    }
    if (s == FY_OK) s = fy_engine_upload(e, dst, host, (size_t)n * (size_t)dim * sizeof *host);
    /* The copy may still read the host rows on an asynchronous device. */
    if (s == FY_OK) s = fy_backend_synchronize(e->backend);
    free(host);
    return s;
}
