/* The device backend interface: memory, copies, streams and events.
 *
 * The offload engine (ferry/engine.h) talks to a device only through this
 * vtable, so the CPU backend, the emulated device and the CUDA backend are
 * interchangeable. Device pointers are opaque: the engine never dereferences
 * them. (The emulated device's happen to be host-addressable, which is what
 * lets the CPU ops run on them.)
 *
 * Two streams, as on a GPU: FY_STREAM_COMPUTE (kernels, activations) and
 * FY_STREAM_COPY (weight uploads). Work on one stream runs in issue order;
 * the streams are ordered against each other only by events:
 *   event_record(e, s)        e completes when everything issued on s so far has
 *   stream_wait_event(s, e)   later work on s starts after e's latest record
 * Weights are read-only: there is no device-to-host copy for them; copy_d2h
 * exists for activations (a model reading back its output).
 *
 * Backends:
 *   cpu  weights are read in place (unified_host_memory); copies are memcpy.
 *   emu  an emulated GPU on the host: a device pool with a hard byte budget
 *        (an allocation past it fails, as cudaMalloc would) and a copy engine
 *        thread that runs the copy stream asynchronously, optionally
 *        throttled to a bandwidth, so overlap and stalls are real. The compute
 *        stream is the calling thread: stream_wait_event(COMPUTE, e) blocks
 *        the caller until the copy thread has completed e (that wait is the
 *        stall the engine measures).
 *   cuda (src/backend/cuda/) the same contract on cudaStream_t/cudaEvent_t, with
 *        device memory from cudaMalloc, pinned host memory from cudaHostAlloc. */
#ifndef FERRY_BACKEND_H
#define FERRY_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ferry/error.h"
#include "ferry/options.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fy_stream {
    FY_STREAM_COMPUTE = 0,
    FY_STREAM_COPY = 1,
    FY_STREAM_COUNT
} fy_stream;

typedef struct fy_backend fy_backend;
typedef struct fy_event fy_event; /* opaque, backend-defined */

/* Called by the backend when a copy on the copy stream has finished, with
 * its start and end times (seconds on fy_backend_now()'s clock). May run on
 * a backend thread; label is the one passed to copy_h2d_async. */
typedef void (*fy_copy_observer)(void *user, const char *label, size_t bytes, double t_start,
                                 double t_end);

typedef struct fy_backend_vtable {
    const char *name; /* "cpu", "emu", "cuda" */
    /* Device memory. NULL + FY_ERR_BUDGET/FY_ERR_DEVICE when it cannot. */
    fy_status (*alloc_device)(fy_backend *b, size_t bytes, void **out);
    void (*free_device)(fy_backend *b, void *ptr, size_t bytes);
    /* Page-locked host memory. *pinned says whether locking worked; when it
     * did not, the memory is ordinary pageable memory (still usable). */
    fy_status (*alloc_pinned)(fy_backend *b, size_t bytes, void **out, bool *pinned);
    void (*free_pinned)(fy_backend *b, void *ptr, size_t bytes);
    /* Asynchronous host-to-device copy on stream s. src must stay valid and
     * unchanged until an event recorded after it on s completes. */
    fy_status (*copy_h2d_async)(fy_backend *b, void *dst, const void *src, size_t bytes,
                                fy_stream s, const char *label);
    /* Synchronous device-to-host copy of activations, ordered after the
     * compute stream's work. */
    fy_status (*copy_d2h)(fy_backend *b, void *dst, const void *src, size_t bytes);
    /* Events. */
    fy_status (*event_create)(fy_backend *b, fy_event **out);
    void (*event_destroy)(fy_backend *b, fy_event *e);
    fy_status (*event_record)(fy_backend *b, fy_event *e, fy_stream s);
    fy_status (*stream_wait_event)(fy_backend *b, fy_stream s, fy_event *e);
    /* true when the event's latest record has completed (or it was never recorded). */
    bool (*event_query)(fy_backend *b, fy_event *e);
    /* Block the host until the event's latest record completes. */
    fy_status (*event_synchronize)(fy_backend *b, fy_event *e);
    /* Block the host until both streams are idle. */
    fy_status (*synchronize)(fy_backend *b);
    void (*destroy)(fy_backend *b);
    /* Optional (NULL = unknown, e.g. cpu): free and total device bytes now,
     * for the planner's --vram-budget auto. */
    fy_status (*mem_info)(fy_backend *b, uint64_t *free_bytes, uint64_t *total_bytes);
    /* Optional (NULL: the compute stream is the calling thread, so the host
     * clock times it, as on cpu and emu): seconds between two completed
     * events' records, for a device that computes asynchronously. */
    fy_status (*event_elapsed)(fy_backend *b, fy_event *from, fy_event *to, double *seconds);
    /* The compute ops on this device (ferry/ops.h); NULL: none. */
    const struct fy_ops_class *ops;
} fy_backend_vtable;

/* Every backend starts with this header (implementations embed it first). */
struct fy_backend {
    const fy_backend_vtable *vt;
    /* Device memory is the host's: the engine may hand out host weights in
     * place instead of uploading them (the cpu backend). */
    bool unified_host_memory;
    fy_copy_observer observer;
    void *observer_user;
};

/* The CPU backend: device = host heap, copies synchronous. */
fy_status fy_backend_create_cpu(fy_backend **out);
/* The emulated device: budget_bytes of device memory (0 = unlimited),
 * uploads throttled to bandwidth_bytes_per_s (0 = as fast as memcpy). */
fy_status fy_backend_create_emu(uint64_t budget_bytes, double bandwidth_bytes_per_s,
                                fy_backend **out);
/* The backend the run options name (--device cpu|emu|cuda, --max-memory,
 * --emu-bandwidth). cuda fails with FY_ERR_UNSUPPORTED in builds without it. */
fy_status fy_backend_create(const fy_run_options *o, fy_backend **out);
void fy_backend_free(fy_backend *b);
const char *fy_backend_name(const fy_backend *b);
/* Install the copy observer (one per backend; NULL removes it). Call while
 * the copy stream is idle. */
void fy_backend_set_copy_observer(fy_backend *b, fy_copy_observer fn, void *user);

/* Seconds on a monotonic clock shared by all backends and the engine. */
double fy_backend_now(void);

/* Page-locked host allocation used by host-side backends: posix_memalign +
 * mlock; when mlock fails (RLIMIT_MEMLOCK, container limits) the memory
 * stays pageable and *pinned is false. */
fy_status fy_host_alloc_pinned(size_t bytes, void **out, bool *pinned);
void fy_host_free_pinned(void *ptr, size_t bytes);

/* Thin wrappers over the vtable (they keep call sites short). */
static inline fy_status fy_backend_alloc_device(fy_backend *b, size_t n, void **out)
{
    return b->vt->alloc_device(b, n, out);
}
static inline void fy_backend_free_device(fy_backend *b, void *p, size_t n)
{
    b->vt->free_device(b, p, n);
}
static inline fy_status fy_backend_copy_h2d_async(fy_backend *b, void *dst, const void *src,
                                                  size_t n, fy_stream s, const char *label)
{
    return b->vt->copy_h2d_async(b, dst, src, n, s, label);
}
static inline fy_status fy_backend_event_record(fy_backend *b, fy_event *e, fy_stream s)
{
    return b->vt->event_record(b, e, s);
}
static inline fy_status fy_backend_stream_wait_event(fy_backend *b, fy_stream s, fy_event *e)
{
    return b->vt->stream_wait_event(b, s, e);
}
static inline fy_status fy_backend_synchronize(fy_backend *b)
{
    return b->vt->synchronize(b);
}

#ifdef __cplusplus
}
#endif
#endif
