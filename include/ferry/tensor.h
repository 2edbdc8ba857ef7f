/* Tensors: a dtype, up to five dimensions with element strides, and a pointer
 * into memory that some owner holds (the host heap, a pool, an mmapped
 * safetensors file, a device pool).
 *
 * fy_tensor is a small value type. A tensor made by fy_tensor_alloc owns its
 * host buffer and is released with fy_tensor_free; every other tensor (views,
 * slices, tensors over mmapped files or device pools) borrows, and
 * fy_tensor_free on it only clears it. */
#ifndef FERRY_TENSOR_H
#define FERRY_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ferry/dtype.h"
#include "ferry/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FY_MAX_DIMS 5
/* Where a tensor's bytes live. Device ordinals are >= 0. */
#define FY_HOST (-1)

typedef struct fy_tensor {
    void *data;                     /* element [0,...,0] */
    fy_dtype dtype;
    int ndim;                       /* 0 (scalar) .. FY_MAX_DIMS */
    int64_t shape[FY_MAX_DIMS];
    int64_t stride[FY_MAX_DIMS];    /* in elements */
    int device;                     /* FY_HOST or a device ordinal */
    bool owns_data;                 /* data came from fy_tensor_alloc */
    /* fp8 storage (--storage-dtype, ferry/quant.h): the value is the stored
     * one times scale[i0] (scale_rows: i0 = the index along dim 0) or
     * scale[0]; NULL = no scale. It lives beside data (host or device). */
    const float *scale;
    bool scale_rows;
} fy_tensor;

/* A borrowing, contiguous tensor over data. */
fy_tensor fy_tensor_wrap(void *data, fy_dtype dtype, int ndim, const int64_t *shape, int device);
/* Allocate a contiguous host tensor (64-byte aligned, zeroed). */
fy_status fy_tensor_alloc(fy_tensor *t, fy_dtype dtype, int ndim, const int64_t *shape);
/* Release an owning tensor; always leaves *t empty. */
void fy_tensor_free(fy_tensor *t);

int64_t fy_tensor_numel(const fy_tensor *t);
/* Bytes the elements span when contiguous (numel * element size). */
size_t fy_tensor_nbytes(const fy_tensor *t);
bool fy_tensor_is_contiguous(const fy_tensor *t);
bool fy_tensor_same_shape(const fy_tensor *a, const fy_tensor *b);
/* "[2, 16, 3, 4, 6]" into buf; returns buf. */
const char *fy_tensor_shape_str(const fy_tensor *t, char *buf, size_t size);

/* Views (borrowing; they never copy). A per-row scale follows slices and
 * selections along dim 0; a reshape or permutation that moves dim 0 of a
 * per-row scaled tensor is refused. */
fy_status fy_tensor_reshape(const fy_tensor *t, int ndim, const int64_t *shape, fy_tensor *out);
fy_status fy_tensor_slice(const fy_tensor *t, int dim, int64_t start, int64_t len, fy_tensor *out);
fy_status fy_tensor_permute(const fy_tensor *t, const int *perm, fy_tensor *out);
/* Index dimension 0 away: t[i]. */
fy_status fy_tensor_select(const fy_tensor *t, int64_t index, fy_tensor *out);

/* Copy src into dst (host tensors, same shape), converting dtype if needed;
 * either side may be strided. A scaled src is refused (use fy_tensor_to_f32). */
fy_status fy_tensor_copy(fy_tensor *dst, const fy_tensor *src);
/* Contiguous f32 host copy of any float host tensor (owning), scale applied. */
fy_status fy_tensor_to_f32(const fy_tensor *src, fy_tensor *out);

#ifdef __cplusplus
}
#endif
#endif
