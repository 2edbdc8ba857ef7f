/* The CUDA backend's op class (cuda_op_table.c), carried by its vtable. */
#ifndef FERRY_BACKEND_CUDA_OP_TABLE_H
#define FERRY_BACKEND_CUDA_OP_TABLE_H

#include "backend/cuda/cuda_ops.h"
#include "ferry/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

extern const fy_ops_class fy_cuda_ops_class;
/* The kernel context behind a CUDA table (NULL for another backend's): for
 * the GPU harnesses that set its switches or read its scratch. */
fy_cuda_ops *fy_cuda_ops_of(fy_ops *o);

#ifdef __cplusplus
}
#endif
#endif
