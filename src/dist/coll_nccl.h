/* NCCL's communicator, built into the CUDA backend's library (see
 * backend/cuda_module.h): libferry reaches it through that module. */
#ifndef FERRY_DIST_COLL_NCCL_H
#define FERRY_DIST_COLL_NCCL_H

#include "ferry/collectives.h"

fy_status fy_nccl_comm_create(fy_comm *bootstrap, int device, fy_comm **out);

#endif
