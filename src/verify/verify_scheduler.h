/* `ferry verify --component scheduler`: UniPC (flow_shift 3 and 5) and
 * flow-match Euler against scheduler_*.safetensors. */
#ifndef FERRY_VERIFY_VERIFY_SCHEDULER_H
#define FERRY_VERIFY_VERIFY_SCHEDULER_H

#include <stddef.h>
#include "ferry/config.h"
#include "ferry/safetensors.h"
#include "verify/verify.h"

/* Opens every scheduler fixture in ctx->fixture_dir itself (fixture is
 * ignored and may be NULL). Per file: timesteps (exact), sigmas, each step
 * fed the reference sample (tolerance 1e-6), and the whole chain fed its own
 * outputs (1e-5). With a model, also the model's scheduler_config.json
 * against scheduler_unipc's timesteps. */
fy_status fy_verify_scheduler(fy_verify_ctx *ctx, const fy_st_file *fixture);

/* The scheduler config a fixture file was made from: its __metadata__
 * "info" JSON's "config" object plus "_class_name" = info "class", and
 * info "num_inference_steps". Free *cfg with fy_config_free. */
fy_status fy_scheduler_fixture_config(const fy_st_file *f, fy_config **cfg, size_t *num_steps);

#endif
