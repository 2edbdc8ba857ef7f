/* Backend selection and the pieces every host-side backend shares. */
#include "ferry/backend.h"
#include "backend/cuda_module.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "ferry/log.h"

double fy_backend_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

fy_status fy_host_alloc_pinned(size_t bytes, void **out, bool *pinned)
{
    *out = NULL;
    *pinned = false;
    void *p = NULL;
    size_t n = bytes ? bytes : 1;
    if (posix_memalign(&p, 4096, n) != 0)
        return fy_error(FY_ERR_NOMEM, "pinned host memory: cannot allocate %zu bytes", bytes);
    /* mlock fails under RLIMIT_MEMLOCK and in many containers; the caller
     * decides what to do with pageable memory. */
    *pinned = mlock(p, n) == 0;
    *out = p;
    return FY_OK;
}

void fy_host_free_pinned(void *ptr, size_t bytes)
{
    if (!ptr) return;
    munlock(ptr, bytes ? bytes : 1); /* harmless when it was never locked */
    free(ptr);
}

fy_status fy_backend_create(const fy_run_options *o, fy_backend **out)
{
    *out = NULL;
    switch (o->device) {
    case FY_DEVICE_CPU:
        return fy_backend_create_cpu(out);
    case FY_DEVICE_EMU: {
        int idx = o->device_index >= 0 && o->device_index < FY_MAX_DEVICES ? o->device_index : 0;
        return fy_backend_create_emu(o->max_memory[idx], o->emu_bandwidth, out);
    }
    case FY_DEVICE_CUDA: {
        const fy_cuda_module *cuda = NULL;
        fy_status st = fy_cuda_module_get(&cuda);
        if (st == FY_ERR_UNSUPPORTED) break;
        if (st != FY_OK) return st;
        return cuda->backend_create(o->device_index, o->max_memory[o->device_index], out);
    }
    }
    return fy_error(FY_ERR_UNSUPPORTED,
                    "--device %s: this build has no such backend (use --device cpu or --device emu)",
                    fy_device_kind_name(o->device));
}

void fy_backend_free(fy_backend *b)
{
    if (b) b->vt->destroy(b);
}

const char *fy_backend_name(const fy_backend *b)
{
    return b ? b->vt->name : "none";
}

void fy_backend_set_copy_observer(fy_backend *b, fy_copy_observer fn, void *user)
{
    b->observer = fn;
    b->observer_user = user;
}
