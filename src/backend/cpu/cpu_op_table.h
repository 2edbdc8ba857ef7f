/* The CPU backend's op class (cpu_op_table.c), shared by cpu and emu. */
#ifndef FERRY_BACKEND_CPU_OP_TABLE_H
#define FERRY_BACKEND_CPU_OP_TABLE_H

#include "backend/cpu/cpu_ops.h"
#include "ferry/ops.h"

extern const fy_ops_class fy_cpu_ops_class;
/* The kernel context behind a CPU table (NULL for another backend's): for
 * tests and benchmarks that time or size the CPU kernels themselves. */
fy_cpu_ctx *fy_cpu_ops_ctx(fy_ops *o);

#endif
