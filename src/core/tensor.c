#include "ferry/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_contiguous_strides(fy_tensor *t)
{
    int64_t stride = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        t->stride[d] = stride;
        stride *= t->shape[d];
    }
}

fy_tensor fy_tensor_wrap(void *data, fy_dtype dtype, int ndim, const int64_t *shape, int device)
{
    fy_tensor t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.dtype = dtype;
    t.ndim = ndim;
    t.device = device;
    for (int d = 0; d < ndim; d++) t.shape[d] = shape[d];
    set_contiguous_strides(&t);
    return t;
}

static fy_status check_shape(int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > FY_MAX_DIMS)
        return fy_error(FY_ERR_INVALID, "tensor rank %d is outside 0..%d", ndim, FY_MAX_DIMS);
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) return fy_error(FY_ERR_INVALID, "tensor dimension %d is negative", d);
        if (shape[d] != 0 && numel > INT64_MAX / 8 / shape[d])
            return fy_error(FY_ERR_INVALID, "tensor shape overflows 64-bit sizes");
        numel *= shape[d];
    }
    return FY_OK;
}

fy_status fy_tensor_alloc(fy_tensor *t, fy_dtype dtype, int ndim, const int64_t *shape)
{
    memset(t, 0, sizeof *t);
    FY_TRY(check_shape(ndim, shape));
    if (fy_dtype_size(dtype) == 0)
        return fy_error(FY_ERR_UNSUPPORTED, "cannot allocate a tensor of sub-byte dtype %s",
                        fy_dtype_name(dtype));
    fy_tensor tmp = fy_tensor_wrap(NULL, dtype, ndim, shape, FY_HOST);
    size_t bytes = fy_tensor_nbytes(&tmp);
    size_t rounded = (bytes + 63) / 64 * 64;
    void *data = NULL;
    if (rounded > 0) {
        data = aligned_alloc(64, rounded);
        if (!data)
            return fy_error(FY_ERR_NOMEM, "out of host memory allocating %zu bytes", rounded);
        memset(data, 0, rounded);
    }
    *t = tmp;
    t->data = data;
    t->owns_data = true;
    return FY_OK;
}

void fy_tensor_free(fy_tensor *t)
{
    if (!t) return;
    if (t->owns_data) free(t->data);
    memset(t, 0, sizeof *t);
}

int64_t fy_tensor_numel(const fy_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

size_t fy_tensor_nbytes(const fy_tensor *t)
{
    return (size_t)fy_dtype_bytes(t->dtype, (uint64_t)fy_tensor_numel(t));
}

bool fy_tensor_is_contiguous(const fy_tensor *t)
{
    int64_t expected = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != expected) return false;
        expected *= t->shape[d];
    }
    return true;
}

bool fy_tensor_same_shape(const fy_tensor *a, const fy_tensor *b)
{
    if (a->ndim != b->ndim) return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return true;
}

const char *fy_tensor_shape_str(const fy_tensor *t, char *buf, size_t size)
{
    size_t used = 0;
    used += (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < t->ndim && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, d ? ", %lld" : "%lld", (long long)t->shape[d]);
    if (used < size) snprintf(buf + used, size - used, "]");
    return buf;
}

fy_status fy_tensor_reshape(const fy_tensor *t, int ndim, const int64_t *shape, fy_tensor *out)
{
    FY_TRY(check_shape(ndim, shape));
    if (!fy_tensor_is_contiguous(t))
        return fy_error(FY_ERR_INVALID, "reshape needs a contiguous tensor");
    fy_tensor r = fy_tensor_wrap(t->data, t->dtype, ndim, shape, t->device);
    if (fy_tensor_numel(&r) != fy_tensor_numel(t)) {
        char a[96], b[96];
        return fy_error(FY_ERR_INVALID, "cannot reshape %s into %s", fy_tensor_shape_str(t, a, sizeof a),
                        fy_tensor_shape_str(&r, b, sizeof b));
    }
    if (t->scale && t->scale_rows && (ndim < 1 || t->ndim < 1 || shape[0] != t->shape[0]))
        return fy_error(FY_ERR_INVALID, "cannot reshape a per-row scaled tensor across its rows");
    r.scale = t->scale;
    r.scale_rows = t->scale_rows;
    *out = r;
    return FY_OK;
}

static void *offset_data(const fy_tensor *t, int64_t elements)
{
    return (char *)t->data + elements * (int64_t)fy_dtype_size(t->dtype);
}

/* A quantised tensor's blocks run along the innermost dimension: views may
 * only cut whole rows of blocks off the outer dimensions. */
static fy_status check_quant_cut(const fy_tensor *t, int dim, int64_t elements, void **data)
{
    *data = offset_data(t, elements);
    if (!fy_dtype_is_quant(t->dtype)) return FY_OK;
    if (dim == t->ndim - 1 || elements % (int64_t)fy_dtype_block(t->dtype) != 0)
        return fy_error(FY_ERR_INVALID, "a %s tensor can only be cut along its outer dimensions, whole blocks at a time",
                        fy_dtype_name(t->dtype));
    *data = (char *)t->data + fy_dtype_bytes(t->dtype, (uint64_t)elements);
    return FY_OK;
}

fy_status fy_tensor_slice(const fy_tensor *t, int dim, int64_t start, int64_t len, fy_tensor *out)
{
    if (dim < 0 || dim >= t->ndim)
        return fy_error(FY_ERR_INVALID, "slice dimension %d out of range for rank %d", dim, t->ndim);
    if (start < 0 || len < 0 || start + len > t->shape[dim])
        return fy_error(FY_ERR_INVALID, "slice [%lld, %lld) out of range for dimension %d of size %lld",
                        (long long)start, (long long)(start + len), dim, (long long)t->shape[dim]);
    fy_tensor r = *t;
    r.owns_data = false;
    r.shape[dim] = len;
    FY_TRY(check_quant_cut(t, dim, start * t->stride[dim], &r.data));
    if (r.scale && r.scale_rows && dim == 0) r.scale += start;
    *out = r;
    return FY_OK;
}

fy_status fy_tensor_permute(const fy_tensor *t, const int *perm, fy_tensor *out)
{
    int seen[FY_MAX_DIMS] = {0};
    fy_tensor r = *t;
    r.owns_data = false;
    for (int d = 0; d < t->ndim; d++) {
        if (perm[d] < 0 || perm[d] >= t->ndim || seen[perm[d]]++)
            return fy_error(FY_ERR_INVALID, "permutation is not valid for rank %d", t->ndim);
        if (d == 0 && perm[0] != 0 && t->scale && t->scale_rows)
            return fy_error(FY_ERR_INVALID, "cannot move the rows of a per-row scaled tensor");
        r.shape[d] = t->shape[perm[d]];
        r.stride[d] = t->stride[perm[d]];
    }
    *out = r;
    return FY_OK;
}

fy_status fy_tensor_select(const fy_tensor *t, int64_t index, fy_tensor *out)
{
    if (t->ndim == 0) return fy_error(FY_ERR_INVALID, "cannot index a scalar");
    if (index < 0 || index >= t->shape[0])
        return fy_error(FY_ERR_INVALID, "index %lld out of range for size %lld", (long long)index,
                        (long long)t->shape[0]);
    fy_tensor r;
    memset(&r, 0, sizeof r);
    r.dtype = t->dtype;
    r.device = t->device;
    r.ndim = t->ndim - 1;
    for (int d = 1; d < t->ndim; d++) {
        r.shape[d - 1] = t->shape[d];
        r.stride[d - 1] = t->stride[d];
    }
    FY_TRY(check_quant_cut(t, 0, index * t->stride[0], &r.data));
    r.scale = t->scale && t->scale_rows ? t->scale + index : t->scale;
    *out = r;
    return FY_OK;
}

/* Walks the outer dimensions of two same-shaped tensors and converts one
 * innermost row at a time; rows are contiguous when the last stride is 1. */
static fy_status copy_rows(fy_tensor *dst, const fy_tensor *src)
{
    int nd = dst->ndim;
    int64_t inner = nd ? dst->shape[nd - 1] : 1;
    bool rows_contiguous = nd == 0 || (dst->stride[nd - 1] == 1 && src->stride[nd - 1] == 1);
    int64_t index[FY_MAX_DIMS] = {0};
    int64_t outer = 1;
    for (int d = 0; d < nd - 1; d++) outer *= dst->shape[d];
    size_t dsz = fy_dtype_size(dst->dtype), ssz = fy_dtype_size(src->dtype);
    for (int64_t row = 0; row < outer; row++) {
        int64_t doff = 0, soff = 0;
        for (int d = 0; d < nd - 1; d++) {
            doff += index[d] * dst->stride[d];
            soff += index[d] * src->stride[d];
        }
        char *d0 = (char *)dst->data + doff * (int64_t)dsz;
        const char *s0 = (const char *)src->data + soff * (int64_t)ssz;
        if (rows_contiguous) {
            FY_TRY(fy_convert(d0, dst->dtype, s0, src->dtype, (size_t)inner));
        } else {
            for (int64_t i = 0; i < inner; i++)
                FY_TRY(fy_convert(d0 + i * dst->stride[nd - 1] * (int64_t)dsz, dst->dtype,
                                  s0 + i * src->stride[nd - 1] * (int64_t)ssz, src->dtype, 1));
        }
        for (int d = nd - 2; d >= 0; d--) {
            if (++index[d] < dst->shape[d]) break;
            index[d] = 0;
        }
    }
    return FY_OK;
}

fy_status fy_tensor_copy(fy_tensor *dst, const fy_tensor *src)
{
    if (dst->device != FY_HOST || src->device != FY_HOST)
        return fy_error(FY_ERR_INVALID, "fy_tensor_copy works on host tensors; use the backend for devices");
    if (!fy_tensor_same_shape(dst, src)) {
        char a[96], b[96];
        return fy_error(FY_ERR_INVALID, "cannot copy a tensor of shape %s into one of shape %s",
                        fy_tensor_shape_str(src, a, sizeof a), fy_tensor_shape_str(dst, b, sizeof b));
    }
    if (src->scale)
        return fy_error(FY_ERR_INVALID, "fy_tensor_copy of an fp8-scaled tensor would drop its scale; "
                        "use fy_tensor_to_f32");
    if (fy_tensor_numel(dst) == 0) return FY_OK;
    if (dst->dtype == src->dtype && fy_tensor_is_contiguous(dst) && fy_tensor_is_contiguous(src)) {
        memmove(dst->data, src->data, fy_tensor_nbytes(src));
        return FY_OK;
    }
    return copy_rows(dst, src);
}

static void apply_scale(fy_tensor *f32, const fy_tensor *src)
{
    int64_t n = fy_tensor_numel(f32);
    int64_t per = src->scale_rows && src->ndim > 0 && src->shape[0] > 0 ? n / src->shape[0] : n;
    float *v = f32->data;
    for (int64_t i = 0; per > 0 && i < n; i++) v[i] *= src->scale[src->scale_rows ? i / per : 0];
}

fy_status fy_tensor_to_f32(const fy_tensor *src, fy_tensor *out)
{
    FY_TRY(fy_tensor_alloc(out, FY_F32, src->ndim, src->shape));
    fy_tensor raw = *src;
    raw.scale = NULL;
    fy_status s = fy_tensor_copy(out, &raw);
    if (s != FY_OK) fy_tensor_free(out);
    else if (src->scale) apply_scale(out, src);
    return s;
}
