/* Placing whole components on devices (--device-map balanced). */
#include "pipeline/device_map.h"


int fy_device_map_devices(const fy_run_options *o, int *devices)
{
    int n = 0;
    for (int d = 0; d < FY_MAX_DEVICES; d++)
        if (o->max_memory[d]) devices[n++] = d;
    if (n == 0) devices[n++] = o->device_index >= 0 && o->device_index < FY_MAX_DEVICES ? o->device_index : 0;
    return n;
}

static int largest_unplaced(const uint64_t *bytes, const int *device_of, int n)
{
    int best = -1;
    for (int i = 0; i < n; i++)
        if (device_of[i] < 0 && (best < 0 || bytes[i] > bytes[best])) best = i;
    return best;
}

fy_status fy_device_map_balanced(const fy_run_options *o, const uint64_t *bytes, int n, int *device_of)
{
    if (o->device == FY_DEVICE_CPU)
        return fy_error(FY_ERR_INVALID, "--device-map balanced places components on devices: use --device emu or "
                                        "--device cuda (with --max-memory 0=SIZE,1=SIZE)");
    int devices[FY_MAX_DEVICES];
    int n_dev = fy_device_map_devices(o, devices);
    /* An unbudgeted device counts as roomier than any budgeted one. */
    uint64_t left[FY_MAX_DEVICES];
    for (int k = 0; k < n_dev; k++) left[k] = o->max_memory[devices[k]] ? o->max_memory[devices[k]] : UINT64_MAX;
    for (int i = 0; i < n; i++) device_of[i] = -1;
    for (int placed = 0; placed < n; placed++) {
        int c = largest_unplaced(bytes, device_of, n);
        int roomiest = 0;
        for (int k = 1; k < n_dev; k++)
            if (left[k] > left[roomiest]) roomiest = k;
        device_of[c] = devices[roomiest];
        left[roomiest] = left[roomiest] > bytes[c] ? left[roomiest] - bytes[c] : 0;
    }
    return FY_OK;
}
