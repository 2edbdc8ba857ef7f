/* NaN and infinity in stored tensors, found by their bits. */
#ifndef FERRY_FINITE_H
#define FERRY_FINITE_H

#include <stdbool.h>
#include <stddef.h>
#include "ferry/dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

/* True when one of the n elements at data is NaN or infinite; *at gets the
 * first one's index (quantised types: the first element of a block whose
 * scale is). Integer and packed formats: always false. data needs
 * no alignment. */
bool fy_find_nonfinite(const void *data, fy_dtype dtype, size_t n, size_t *at);

#ifdef __cplusplus
}
#endif
#endif
