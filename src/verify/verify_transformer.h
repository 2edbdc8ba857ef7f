/* `ferry verify --component transformer`: the Wan DiT on the fixture's batch
 * of two, every intermediate the fixture holds, under the run options' plan. */
#ifndef FERRY_VERIFY_VERIFY_TRANSFORMER_H
#define FERRY_VERIFY_VERIFY_TRANSFORMER_H

#include "verify/verify.h"

fy_status fy_verify_transformer(fy_verify_ctx *ctx, const fy_st_file *fixture);
/* Wan2.2 A14B's low-noise expert, against transformer_2.safetensors. */
fy_status fy_verify_transformer_2(fy_verify_ctx *ctx, const fy_st_file *fixture);

#endif
