/* The one symbol libferry looks up in this library (backend/cuda_module.h). */
#include "backend/cuda_module.h"

#include "backend/cuda/cuda_backend.h"
#include "ferry/version.h"
#ifdef FERRY_HAVE_NCCL
#include "dist/coll_nccl.h"
#endif

static const fy_cuda_module module = {
    .abi = FY_CUDA_MODULE_ABI,
    .version = FERRY_VERSION,
    .device_count = fy_cuda_device_count,
    .backend_create = fy_backend_create_cuda,
#ifdef FERRY_HAVE_NCCL
    .comm_create_nccl = fy_nccl_comm_create,
#endif
};

__attribute__((visibility("default"))) const fy_cuda_module *fy_cuda_module_entry(void);

const fy_cuda_module *fy_cuda_module_entry(void)
{
    return &module;
}
