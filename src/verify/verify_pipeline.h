/* `ferry verify --component pipeline`: the whole Wan text-to-video run on
 * pipeline.safetensors (prompt ids and embeddings, every step's predictions
 * and latents, the decoded video), under the run's memory options. */
#ifndef FERRY_VERIFY_VERIFY_PIPELINE_H
#define FERRY_VERIFY_VERIFY_PIPELINE_H

#include "verify/verify.h"

fy_status fy_verify_pipeline(fy_verify_ctx *ctx, const fy_st_file *fixture);

#endif
