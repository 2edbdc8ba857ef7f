/* The CPU backend: the "device" is the host. Weights are read in place
 * (unified_host_memory), so the engine normally never copies; when it does,
 * copies are plain memcpy and every event is complete as soon as recorded. */
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_op_table.h"
#include "ferry/backend.h"

struct fy_event {
    int unused;
};

static fy_status cpu_alloc_device(fy_backend *b, size_t bytes, void **out)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 1) != 0)
        return fy_error(FY_ERR_NOMEM, "cpu device: cannot allocate %zu bytes", bytes);
    *out = p;
    return FY_OK;
}

static void cpu_free_device(fy_backend *b, void *p, size_t bytes)
{
    free(p);
}

static fy_status cpu_alloc_pinned(fy_backend *b, size_t bytes, void **out, bool *pinned)
{
    return fy_host_alloc_pinned(bytes, out, pinned);
}

static void cpu_free_pinned(fy_backend *b, void *p, size_t bytes)
{
    fy_host_free_pinned(p, bytes);
}

static fy_status cpu_copy_h2d(fy_backend *b, void *dst, const void *src, size_t bytes, fy_stream s,
                              const char *label)
{
    double t0 = fy_backend_now();
    memcpy(dst, src, bytes);
    if (s == FY_STREAM_COPY && b->observer)
        b->observer(b->observer_user, label, bytes, t0, fy_backend_now());
    return FY_OK;
}

static fy_status cpu_copy_d2h(fy_backend *b, void *dst, const void *src, size_t bytes)
{
    memcpy(dst, src, bytes);
    return FY_OK;
}

static fy_status cpu_event_create(fy_backend *b, fy_event **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? FY_OK : fy_error(FY_ERR_NOMEM, "cpu backend: out of memory for an event");
}

static void cpu_event_destroy(fy_backend *b, fy_event *e)
{
    free(e);
}

static fy_status cpu_event_record(fy_backend *b, fy_event *e, fy_stream s)
{
    return FY_OK;
}

static fy_status cpu_stream_wait_event(fy_backend *b, fy_stream s, fy_event *e)
{
    return FY_OK;
}

static bool cpu_event_query(fy_backend *b, fy_event *e)
{
    return true;
}

static fy_status cpu_event_synchronize(fy_backend *b, fy_event *e)
{
    return FY_OK;
}

static fy_status cpu_synchronize(fy_backend *b)
{
    return FY_OK;
}

static void cpu_destroy(fy_backend *b)
{
    free(b);
}

static const fy_backend_vtable cpu_vtable = {
    .name = "cpu",
    .alloc_device = cpu_alloc_device,
    .free_device = cpu_free_device,
    .alloc_pinned = cpu_alloc_pinned,
    .free_pinned = cpu_free_pinned,
    .copy_h2d_async = cpu_copy_h2d,
    .copy_d2h = cpu_copy_d2h,
    .event_create = cpu_event_create,
    .event_destroy = cpu_event_destroy,
    .event_record = cpu_event_record,
    .stream_wait_event = cpu_stream_wait_event,
    .event_query = cpu_event_query,
    .event_synchronize = cpu_event_synchronize,
    .synchronize = cpu_synchronize,
    .destroy = cpu_destroy,
    .ops = &fy_cpu_ops_class,
};

fy_status fy_backend_create_cpu(fy_backend **out)
{
    fy_backend *b = calloc(1, sizeof *b);
    if (!b) return fy_error(FY_ERR_NOMEM, "cpu backend: out of memory");
    b->vt = &cpu_vtable;
    b->unified_host_memory = true;
    *out = b;
    return FY_OK;
}
