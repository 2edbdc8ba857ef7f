/* fy_comm_create_nccl: NCCL lives in the CUDA backend's library, opened on
 * first use like the backend itself. */
#include "backend/cuda_module.h"
#include "ferry/collectives.h"

fy_status fy_comm_create_nccl(fy_comm *bootstrap, int device, fy_comm **out)
{
    *out = NULL;
    const fy_cuda_module *cuda = NULL;
    fy_status st = fy_cuda_module_get(&cuda);
    if (st == FY_OK && !cuda->comm_create_nccl) st = FY_ERR_UNSUPPORTED;
    if (st == FY_ERR_UNSUPPORTED)
        return fy_error(FY_ERR_UNSUPPORTED,
                        "this ferry was built without NCCL (it needs the CUDA backend and libnccl)");
    if (st != FY_OK) return st;
    return cuda->comm_create_nccl(bootstrap, device, out);
}
