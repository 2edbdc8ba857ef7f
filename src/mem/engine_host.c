/* An engine for a component the user moved to the host
 * (--text-encoder-cpu-offload, --vae-cpu-offload): it computes on the CPU
 * and reads its weights in place, so the device's budget, plan and trace
 * are not its own. */
#include <string.h>

#include "ferry/engine.h"

fy_status fy_engine_create_host(const fy_run_options *o, fy_engine **out)
{
    fy_run_options host = *o;
    host.device = FY_DEVICE_CPU;
    host.device_index = 0;
    host.offload = FY_OFFLOAD_NONE;
    host.num_blocks_per_group = 1;
    host.use_stream = false;
    host.record_stream = false;
    host.resident_blocks = -1;
    host.resident_bytes = 0;
    host.emu_bandwidth = 0;
    memset(host.max_memory, 0, sizeof host.max_memory);
    host.trace_path = NULL;
    *out = NULL;
    fy_backend *b = NULL;
    FY_TRY(fy_backend_create_cpu(&b));
    return fy_engine_create_with_backend(b, true, &host, out);
}
