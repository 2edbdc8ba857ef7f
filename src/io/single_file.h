/* Single-file checkpoints (Wan-AI's originals, ComfyUI's repackaged files,
 * an all-in-one file): one component's tensors under their diffusers names,
 * and the config their shapes imply. Not public API: fy_model_open_sources
 * is. */
#ifndef FERRY_IO_SINGLE_FILE_H
#define FERRY_IO_SINGLE_FILE_H

#include <stdbool.h>
#include "ferry/error.h"
#include "ferry/safetensors.h"
#include "ferry/wan_names.h"

/* The tensors of `part` in the safetensors file at path, renamed to the
 * diffusers layout; fp8 weights (ComfyUI's scaled fp8: a per-tensor or
 * per-row `scale_weight` beside each) dequantised once to bf16. With
 * `only`, every tensor of the file must belong to part (a file passed as
 * --vae, say); else other components' tensors are skipped (an all-in-one
 * file). Unknown names, a file holding none of part's tensors and broken
 * scales are errors naming the file and the tensor. */
fy_status fy_single_file_open(const char *path, fy_wan_part part, bool only, fy_st_set **out);

/* Which components the file holds tensors of (an all-in-one file given as
 * --model FILE). */
fy_status fy_single_file_parts(const char *path, bool present[FY_WAN_PART_COUNT]);

/* The config.json that `part`'s tensors imply (a malloc'd JSON text): what
 * diffusers' from_single_file infers, with Wan's constants for what no shape
 * shows (128-wide attention heads, eps, rope length, the VAE's latent
 * statistics). An error naming the file, the tensor and --config when the
 * shapes give no config. */
fy_status fy_wan_infer_config(fy_wan_part part, const fy_st_set *weights, char **json);

#endif
