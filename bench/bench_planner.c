/* Full-size random-weight Wan2.1 folders for the planner's checks: the
 * official layout as the Diffusers downloads hold it (f32 weights), to plan
 * and run with `ferry plan` / `ferry generate --max-memory 0=SIZE` alone.
 *
 *   bench_planner write PRESET DIR [TE_LAYERS [DIT_LAYERS]]
 *       PRESET is a fy_wan_random preset (wan2.1-1.3b, wan2.1-14b, ...),
 *       written in f32; TE_LAYERS cuts the text encoder (default: the
 *       preset's 24 layers and its 256,384-token vocabulary), DIT_LAYERS
 *       the transformer (for `ferry plan` only, extended to the full count
 *       with bench/sparse_blocks.py and num_layers in its config.json).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/backend.h"
#include "ferry/log.h"
#include "ferry/wan_random.h"

int main(int argc, char **argv)
{
    fy_log_set_level(FY_LOG_WARN);
    if (argc < 4 || argc > 6 || strcmp(argv[1], "write") != 0) {
        fprintf(stderr, "usage: bench_planner write PRESET DIR [TE_LAYERS [DIT_LAYERS]]\n");
        return 2;
    }
    fy_wan_random_params rp;
    if (fy_wan_random_preset(argv[2], &rp) != FY_OK) return fprintf(stderr, "bench_planner: %s\n", fy_error_message()), 2;
    rp.dtype = FY_F32;
    if (argc >= 5) rp.te_layers = atoi(argv[4]);
    if (argc == 6) rp.dit_layers = atoi(argv[5]);
    double t0 = fy_backend_now();
    if (fy_wan_random_write(&rp, argv[3]) != FY_OK) return fprintf(stderr, "bench_planner: %s\n", fy_error_message()), 1;
    printf("written %s (%s, f32) in %.1f s\n", argv[3], argv[2], fy_backend_now() - t0);
    return 0;
}
