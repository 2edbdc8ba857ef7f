/* The CUDA backend: the engine's vtable over the CUDA runtime.
 *
 * Two streams (compute, copy) and events for every hand-off between them, as
 * the engine expects. Device memory comes from cudaMalloc only (never managed
 * memory) under the budget given by --max-memory, so an allocation past the
 * budget fails exactly as one past the card's memory would. Pinned host
 * memory comes from cudaHostAlloc (portable: any device may copy from it);
 * when that fails the memory falls back to pageable with a warning (copies
 * from it are then staged by the driver).
 *
 * Every entry point first makes the backend's device current on the calling
 * thread: the engine calls from several threads (the disk reader, the host
 * fill), and with several GPUs each engine has its own device. */
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_op_table.h"
#include "ferry/log.h"

struct fy_event {
    cudaEvent_t event;
};

typedef struct cuda_backend {
    fy_backend base;
    int device;
    cudaStream_t streams[FY_STREAM_COUNT];
    uint64_t budget;   /* 0 = the card's memory is the only limit */
    uint64_t in_use;
} cuda_backend;

/* Times of one observed copy; freed by the second host callback. */
typedef struct copy_watch {
    fy_backend *backend;
    const char *label;
    size_t bytes;
    double t_start;
} copy_watch;

static cuda_backend *as_cuda(fy_backend *b)
{
    return (cuda_backend *)b;
}

static fy_status cuda_fail(cudaError_t err, const char *what)
{
    return fy_error(FY_ERR_DEVICE, "cuda: %s failed: %s (%s)", what, cudaGetErrorString(err),
                    cudaGetErrorName(err));
}

/* Makes cb's device current on this thread (a no-op when it already is). */
static fy_status use_device(const cuda_backend *cb)
{
    int current = -1;
    cudaError_t err = cudaGetDevice(&current);
    if (err == cudaSuccess && current == cb->device) return FY_OK;
    err = cudaSetDevice(cb->device);
    return err == cudaSuccess ? FY_OK : cuda_fail(err, "cudaSetDevice");
}

#define CUDA_TRY(call, what)                              \
    do {                                                  \
        cudaError_t cuda_try_err_ = (call);               \
        if (cuda_try_err_ != cudaSuccess) return cuda_fail(cuda_try_err_, what); \
    } while (0)

static fy_status cuda_alloc_device(fy_backend *b, size_t bytes, void **out)
{
    cuda_backend *cb = as_cuda(b);
    *out = NULL;
    FY_TRY(use_device(cb));
    if (cb->budget && cb->in_use + bytes > cb->budget)
        return fy_error(FY_ERR_BUDGET,
                        "cuda:%d: allocating %zu bytes would exceed the device budget of %llu "
                        "(%llu in use); raise --max-memory or choose a plan that streams more",
                        cb->device, bytes, (unsigned long long)cb->budget,
                        (unsigned long long)cb->in_use);
    cudaError_t err = cudaMalloc(out, bytes ? bytes : 1);
    if (err == cudaErrorMemoryAllocation) {
        cudaGetLastError(); /* clear the sticky-free error so later calls work */
        return fy_error(FY_ERR_BUDGET, "cuda:%d: out of device memory allocating %zu bytes",
                        cb->device, bytes);
    }
    if (err != cudaSuccess) return cuda_fail(err, "cudaMalloc");
    cb->in_use += bytes;
    return FY_OK;
}

static void cuda_free_device(fy_backend *b, void *ptr, size_t bytes)
{
    (void)use_device(as_cuda(b));
    cuda_backend *cb = as_cuda(b);
    if (!ptr) return;
    cudaFree(ptr);
    cb->in_use -= bytes <= cb->in_use ? bytes : cb->in_use;
}

static fy_status cuda_alloc_pinned(fy_backend *b, size_t bytes, void **out, bool *pinned)
{
    cudaError_t err = cudaHostAlloc(out, bytes ? bytes : 1, cudaHostAllocPortable);
    if (err == cudaSuccess) {
        *pinned = true;
        return FY_OK;
    }
    cudaGetLastError();
    fy_warn("cuda: cannot pin %zu bytes of host memory (%s); using pageable memory, uploads "
            "will be slower", bytes, cudaGetErrorString(err));
    *pinned = false;
    if (posix_memalign(out, 64, bytes ? bytes : 1) != 0)
        return fy_error(FY_ERR_NOMEM, "cuda: out of host memory allocating %zu bytes", bytes);
    return FY_OK;
}

static void cuda_free_pinned(fy_backend *b, void *ptr, size_t bytes)
{
    struct cudaPointerAttributes attr;
    if (!ptr) return;
    if (cudaPointerGetAttributes(&attr, ptr) == cudaSuccess && attr.type == cudaMemoryTypeHost) {
        cudaFreeHost(ptr);
    } else {
        cudaGetLastError();
        free(ptr);
    }
}

static void CUDART_CB copy_started(void *user)
{
    copy_watch *w = user;
    w->t_start = fy_backend_now();
}

static void CUDART_CB copy_finished(void *user)
{
    copy_watch *w = user;
    fy_backend *b = w->backend;
    if (b->observer) b->observer(b->observer_user, w->label, w->bytes, w->t_start, fy_backend_now());
    free(w);
}

static fy_status cuda_copy_h2d(fy_backend *b, void *dst, const void *src, size_t bytes,
                               fy_stream s, const char *label)
{
    FY_TRY(use_device(as_cuda(b)));
    cudaStream_t stream = as_cuda(b)->streams[s];
    /* Host callbacks bracket the copy so the trace shows when the copy engine
     * actually ran it, not when it was queued. */
    copy_watch *w = NULL;
    if (b->observer && s == FY_STREAM_COPY) {
        w = calloc(1, sizeof *w);
        if (!w) return fy_error(FY_ERR_NOMEM, "cuda: out of host memory");
        w->backend = b;
        w->label = label;
        w->bytes = bytes;
        CUDA_TRY(cudaLaunchHostFunc(stream, copy_started, w), "cudaLaunchHostFunc");
    }
    CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream), "cudaMemcpyAsync");
    if (w) CUDA_TRY(cudaLaunchHostFunc(stream, copy_finished, w), "cudaLaunchHostFunc");
    return FY_OK;
}

static fy_status cuda_copy_d2h(fy_backend *b, void *dst, const void *src, size_t bytes)
{
    FY_TRY(use_device(as_cuda(b)));
    cudaStream_t stream = as_cuda(b)->streams[FY_STREAM_COMPUTE];
    CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync");
    CUDA_TRY(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    return FY_OK;
}

static fy_status cuda_event_create(fy_backend *b, fy_event **out)
{
    FY_TRY(use_device(as_cuda(b)));
    fy_event *e = calloc(1, sizeof *e);
    if (!e) return fy_error(FY_ERR_NOMEM, "cuda: out of host memory for an event");
    /* Timing stays on: the planner reads block compute times off events
     * (event_elapsed), the only clock for work the host does not wait for. */
    cudaError_t err = cudaEventCreateWithFlags(&e->event, cudaEventDefault);
    if (err != cudaSuccess) {
        free(e);
        return cuda_fail(err, "cudaEventCreate");
    }
    *out = e;
    return FY_OK;
}

static void cuda_event_destroy(fy_backend *b, fy_event *e)
{
    if (!e) return;
    cudaEventDestroy(e->event);
    free(e);
}

static fy_status cuda_event_record(fy_backend *b, fy_event *e, fy_stream s)
{
    FY_TRY(use_device(as_cuda(b)));
    CUDA_TRY(cudaEventRecord(e->event, as_cuda(b)->streams[s]), "cudaEventRecord");
    return FY_OK;
}

static fy_status cuda_stream_wait_event(fy_backend *b, fy_stream s, fy_event *e)
{
    FY_TRY(use_device(as_cuda(b)));
    CUDA_TRY(cudaStreamWaitEvent(as_cuda(b)->streams[s], e->event, 0), "cudaStreamWaitEvent");
    return FY_OK;
}

static bool cuda_event_query(fy_backend *b, fy_event *e)
{
    cudaError_t err = cudaEventQuery(e->event);
    if (err == cudaErrorNotReady) return false;
    if (err != cudaSuccess) cudaGetLastError();
    return true;
}

static fy_status cuda_event_synchronize(fy_backend *b, fy_event *e)
{
    CUDA_TRY(cudaEventSynchronize(e->event), "cudaEventSynchronize");
    return FY_OK;
}

static fy_status cuda_synchronize(fy_backend *b)
{
    FY_TRY(use_device(as_cuda(b)));
    cuda_backend *cb = as_cuda(b);
    for (int s = 0; s < FY_STREAM_COUNT; s++)
        CUDA_TRY(cudaStreamSynchronize(cb->streams[s]), "cudaStreamSynchronize");
    return FY_OK;
}

static void cuda_destroy(fy_backend *b)
{
    (void)use_device(as_cuda(b));
    cuda_backend *cb = as_cuda(b);
    for (int s = 0; s < FY_STREAM_COUNT; s++)
        if (cb->streams[s]) cudaStreamDestroy(cb->streams[s]);
    free(cb);
}

static fy_status cuda_mem_info(fy_backend *b, uint64_t *free_bytes, uint64_t *total_bytes)
{
    FY_TRY(use_device(as_cuda(b)));
    size_t f = 0, t = 0;
    CUDA_TRY(cudaMemGetInfo(&f, &t), "cudaMemGetInfo");
    *free_bytes = f;
    *total_bytes = t;
    return FY_OK;
}

static fy_status cuda_event_elapsed(fy_backend *b, fy_event *from, fy_event *to, double *seconds)
{
    (void)b;
    float ms = 0;
    cudaError_t err = cudaEventElapsedTime(&ms, from->event, to->event);
    if (err != cudaSuccess) return cuda_fail(err, "cudaEventElapsedTime");
    *seconds = ms * 1e-3;
    return FY_OK;
}

static const fy_backend_vtable cuda_vtable = {
    .name = "cuda",
    .alloc_device = cuda_alloc_device,
    .free_device = cuda_free_device,
    .alloc_pinned = cuda_alloc_pinned,
    .free_pinned = cuda_free_pinned,
    .copy_h2d_async = cuda_copy_h2d,
    .copy_d2h = cuda_copy_d2h,
    .event_create = cuda_event_create,
    .event_destroy = cuda_event_destroy,
    .event_record = cuda_event_record,
    .stream_wait_event = cuda_stream_wait_event,
    .event_query = cuda_event_query,
    .event_synchronize = cuda_event_synchronize,
    .synchronize = cuda_synchronize,
    .destroy = cuda_destroy,
    .mem_info = cuda_mem_info,
    .event_elapsed = cuda_event_elapsed,
    .ops = &fy_cuda_ops_class,
};

int fy_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

fy_status fy_backend_create_cuda(int device, uint64_t budget_bytes, fy_backend **out)
{
    *out = NULL;
    int count = fy_cuda_device_count();
    if (device < 0 || device >= count)
        return fy_error(FY_ERR_DEVICE,
                        "cuda:%d: no such device (%d CUDA device%s visible); use --device cpu or "
                        "--device emu on a machine without a GPU",
                        device, count, count == 1 ? "" : "s");
    CUDA_TRY(cudaSetDevice(device), "cudaSetDevice");
    cuda_backend *cb = calloc(1, sizeof *cb);
    if (!cb) return fy_error(FY_ERR_NOMEM, "cuda: out of host memory");
    cb->base.vt = &cuda_vtable;
    cb->device = device;
    cb->budget = budget_bytes;
    for (int s = 0; s < FY_STREAM_COUNT; s++) {
        cudaError_t err = cudaStreamCreateWithFlags(&cb->streams[s], cudaStreamNonBlocking);
        if (err != cudaSuccess) {
            cuda_destroy(&cb->base);
            return cuda_fail(err, "cudaStreamCreate");
        }
    }
    *out = &cb->base;
    return FY_OK;
}

fy_status fy_cuda_use_device(fy_backend *b)
{
    return use_device(as_cuda(b));
}

void *fy_cuda_stream_handle(fy_backend *b, fy_stream s)
{
    return as_cuda(b)->streams[s];
}
