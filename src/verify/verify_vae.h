/* `ferry verify --component vae`. */
#ifndef FERRY_VERIFY_VERIFY_VAE_H
#define FERRY_VERIFY_VERIFY_VAE_H

#include "ferry/safetensors.h"
#include "verify/verify.h"

/* vae.safetensors: the model's vae under ctx->options' device and plan (the
 * CPU with --vae-cpu-offload): decode.input -> decode.output; encode.input ->
 * encode.moments, encode.mean, encode.logvar; roundtrip.output =
 * decode(our encode.mean); tiled.input decoded with the tiling of
 * __metadata__ info "tiling" -> tiled.output, and untiled ->
 * tiled.untiled_output; all at 1e-4. */
fy_status fy_verify_vae(fy_verify_ctx *ctx, const fy_st_file *fixture);

#endif
