/* NCCL as a communicator: device buffers, one communication stream, the
 * ncclUniqueId broadcast over a bootstrap communicator (MPI across processes
 * and machines). The communicator is non-blocking (config.blocking = 0) so
 * that init and every collective can be polled against the deadline and
 * aborted (ncclCommAbort) when a rank is gone. */
#include <stdlib.h>
#include <string.h>

#include "dist/comm_internal.h"
#include "dist/coll_nccl.h"

#ifdef FERRY_HAVE_NCCL
#include <cuda_runtime.h>
#include <nccl.h>
#include <time.h>

#include "ferry/backend.h"

typedef struct nccl_comm {
    fy_comm base;
    int device;
    ncclComm_t comm;
    cudaStream_t stream;
    int *scratch; /* one device int: the barrier's all-reduce */
    bool aborted;
} nccl_comm;

struct fy_comm_request {
    cudaEvent_t done;
};

static fy_status nccl_failed(const char *what, ncclResult_t r)
{
    return fy_error(FY_ERR_DEVICE, "NCCL %s failed: %s (a rank died?)", what, ncclGetErrorString(r));
}

static fy_status cuda_failed(const char *what, cudaError_t r)
{
    return fy_error(FY_ERR_DEVICE, "NCCL communicator: %s failed: %s", what, cudaGetErrorString(r));
}

/* A non-blocking communicator may answer ncclInProgress: poll its state
 * until the call is through, within the deadline. */
static fy_status settle(nccl_comm *n, ncclResult_t r, const char *what)
{
    double deadline = fy_backend_now() + n->base.timeout;
    while (r == ncclInProgress) {
        if (fy_backend_now() > deadline) {
            ncclCommAbort(n->comm);
            n->aborted = true;
            return fy_error(FY_ERR_DEVICE, "NCCL %s: rank %d waited %.0f s for the other ranks (a rank died?)", what,
                            n->base.rank, n->base.timeout);
        }
        struct timespec ts = {0, 100000L};
        nanosleep(&ts, NULL);
        if (ncclCommGetAsyncError(n->comm, &r) != ncclSuccess) break;
    }
    return r == ncclSuccess ? FY_OK : nccl_failed(what, r);
}

static fy_status enqueued(nccl_comm *n, ncclResult_t r, const char *what, fy_comm_request **out)
{
    *out = NULL;
    FY_TRY(settle(n, r, what));
    fy_comm_request *q = calloc(1, sizeof *q);
    if (!q) return fy_error(FY_ERR_NOMEM, "NCCL: out of memory for a request");
    cudaError_t e = cudaEventCreateWithFlags(&q->done, cudaEventDisableTiming);
    if (e == cudaSuccess) e = cudaEventRecord(q->done, n->stream);
    if (e != cudaSuccess) {
        free(q);
        return cuda_failed("recording the collective's event", e);
    }
    *out = q;
    return FY_OK;
}

static fy_status nccl_all_gather_start(fy_comm *c, const void *send, void *recv, size_t chunk, fy_comm_request **out)
{
    nccl_comm *n = (nccl_comm *)c;
    cudaSetDevice(n->device);
    return enqueued(n, ncclAllGather(send, recv, chunk, ncclUint8, n->comm, n->stream), "all-gather", out);
}

static fy_status nccl_broadcast_start(fy_comm *c, void *buf, size_t bytes, int root, fy_comm_request **out)
{
    nccl_comm *n = (nccl_comm *)c;
    cudaSetDevice(n->device);
    return enqueued(n, ncclBroadcast(buf, buf, bytes, ncclUint8, root, n->comm, n->stream), "broadcast", out);
}

static fy_status nccl_barrier_start(fy_comm *c, fy_comm_request **out)
{
    nccl_comm *n = (nccl_comm *)c;
    cudaSetDevice(n->device);
    return enqueued(n, ncclAllReduce(n->scratch, n->scratch, 1, ncclInt32, ncclSum, n->comm, n->stream), "barrier",
                    out);
}

static fy_status nccl_test(fy_comm *c, fy_comm_request *r, bool *done)
{
    nccl_comm *n = (nccl_comm *)c;
    ncclResult_t async = ncclSuccess;
    if (ncclCommGetAsyncError(n->comm, &async) != ncclSuccess || (async != ncclSuccess && async != ncclInProgress)) {
        cudaEventDestroy(r->done);
        free(r);
        return nccl_failed("collective", async);
    }
    cudaError_t e = cudaEventQuery(r->done);
    if (e == cudaErrorNotReady) return FY_OK;
    cudaEventDestroy(r->done);
    free(r);
    if (e != cudaSuccess) return cuda_failed("the collective", e);
    *done = true;
    return FY_OK;
}

static void nccl_abandon(fy_comm *c, fy_comm_request *r)
{
    nccl_comm *n = (nccl_comm *)c;
    /* Aborting the communicator ends the kernels that wait for the dead rank. */
    if (!n->aborted) ncclCommAbort(n->comm);
    n->aborted = true;
    cudaEventDestroy(r->done);
    free(r);
}

static void nccl_destroy(fy_comm *c)
{
    nccl_comm *n = (nccl_comm *)c;
    cudaSetDevice(n->device);
    if (n->comm && !n->aborted) {
        if (c->broken) ncclCommAbort(n->comm);
        else ncclCommDestroy(n->comm);
    }
    if (n->scratch) cudaFree(n->scratch);
    if (n->stream) cudaStreamDestroy(n->stream);
    free(n);
}

static const fy_comm_vtable nccl_vt = {
    .name = "nccl",
    .device_buffers = true,
    .all_gather_start = nccl_all_gather_start,
    .broadcast_start = nccl_broadcast_start,
    .barrier_start = nccl_barrier_start,
    .test = nccl_test,
    .abandon = nccl_abandon,
    .destroy = nccl_destroy,
};

static fy_status init_comm(nccl_comm *n, fy_comm *bootstrap)
{
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (bootstrap->rank == 0) {
        ncclResult_t r = ncclGetUniqueId(&id);
        if (r != ncclSuccess) return nccl_failed("ncclGetUniqueId", r);
    }
    FY_TRY(fy_comm_broadcast(bootstrap, &id, sizeof id, 0));
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclResult_t r = ncclCommInitRankConfig(&n->comm, bootstrap->size, id, bootstrap->rank, &config);
    if (r != ncclSuccess && r != ncclInProgress) return nccl_failed("ncclCommInitRankConfig", r);
    if (r == ncclInProgress && ncclCommGetAsyncError(n->comm, &r) != ncclSuccess) r = ncclInternalError;
    return settle(n, r, "init");
}

fy_status fy_nccl_comm_create(fy_comm *bootstrap, int device, fy_comm **out)
{
    *out = NULL;
    if (!bootstrap) return fy_error(FY_ERR_INVALID, "NCCL: a bootstrap communicator is needed");
    nccl_comm *n = calloc(1, sizeof *n);
    if (!n) return fy_error(FY_ERR_NOMEM, "communicator: out of memory");
    fy_comm_init_base(&n->base, &nccl_vt, bootstrap->rank, bootstrap->size);
    n->base.timeout = bootstrap->timeout;
    n->device = device;
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&n->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = cudaMalloc((void **)&n->scratch, sizeof *n->scratch);
    fy_status s = e == cudaSuccess ? init_comm(n, bootstrap) : cuda_failed("setting up the device", e);
    if (s != FY_OK) {
        n->base.broken = true;
        nccl_destroy(&n->base);
        return s;
    }
    *out = &n->base;
    return FY_OK;
}

#endif
