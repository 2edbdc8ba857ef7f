/* ferry: run large diffusion models on GPUs too small to hold them.
 * One header per concept; this one includes them all. */
#ifndef FERRY_FERRY_H
#define FERRY_FERRY_H

#include "ferry/error.h"
#include "ferry/log.h"
#include "ferry/dtype.h"
#include "ferry/tensor.h"
#include "ferry/safetensors.h"
#include "ferry/config.h"
#include "ferry/model.h"
#include "ferry/options.h"
#include "ferry/backend.h"
#include "ferry/ops.h"
#include "ferry/tokenizer.h"
#include "ferry/scheduler.h"
#include "ferry/version.h"
#include "ferry/wan_t2v.h"

#endif
