/* The CUDA backend is a library of its own (libferry-cuda.so, next to
 * libferry.so), opened on first use: a run on the CPU or the emulated device
 * never loads the CUDA libraries, and a machine without them (or without a
 * driver) still runs everything else. This is the one table the library
 * hands over; everything else of the backend is reached through the backend
 * vtable and its op table. */
#ifndef FERRY_BACKEND_CUDA_MODULE_H
#define FERRY_BACKEND_CUDA_MODULE_H

#include <stdint.h>

#include "ferry/backend.h"
#include "ferry/collectives.h"

/* Raised whenever this struct changes, so a stale library is refused. */
#define FY_CUDA_MODULE_ABI 1
#define FY_CUDA_MODULE_ENTRY "fy_cuda_module_entry"

typedef struct fy_cuda_module {
    unsigned abi;
    const char *version; /* FERRY_VERSION the library was built with */
    int (*device_count)(void);
    fy_status (*backend_create)(int device, uint64_t budget_bytes, fy_backend **out);
    /* NULL when the library was built without NCCL. */
    fy_status (*comm_create_nccl)(fy_comm *bootstrap, int device, fy_comm **out);
} fy_cuda_module;

typedef const fy_cuda_module *(*fy_cuda_module_entry_fn)(void);

/* The module, opened once per process (thread-safe); FY_ERR_UNSUPPORTED when
 * this build has no CUDA backend, FY_ERR_DEVICE when its library or the CUDA
 * libraries it needs cannot be loaded, with the loader's reason. */
fy_status fy_cuda_module_get(const fy_cuda_module **out);

#endif
