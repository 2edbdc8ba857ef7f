/* --device-map balanced: whole components spread over the devices by size,
 * as diffusers' device_map="balanced" does for a pipeline. */
#ifndef FERRY_PIPELINE_DEVICE_MAP_H
#define FERRY_PIPELINE_DEVICE_MAP_H

#include <stdint.h>
#include "ferry/error.h"
#include "ferry/options.h"

/* The devices a map may use: every index given a budget in --max-memory
 * (0=8GiB,1=8GiB), or the --device index alone. Returns their count. */
int fy_device_map_devices(const fy_run_options *o, int *devices);

/* device_of[i] for component i of n with the given weight bytes: largest
 * component first, each onto the device with the most budget left (ties:
 * the lower index). A component larger than every device's remainder still
 * goes to the roomiest one: its engine streams what does not fit. */
fy_status fy_device_map_balanced(const fy_run_options *o, const uint64_t *bytes, int n, int *device_of);

#endif
