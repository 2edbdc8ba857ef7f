/* The one way a model reads a weight: by its diffusers name, as a host view,
 * checked against the shape the model's config implies. */
#ifndef FERRY_MODELS_WEIGHT_H
#define FERRY_MODELS_WEIGHT_H

#include <stdint.h>

#include "ferry/model.h"
#include "ferry/tensor.h"

/* The weight `name` of component c, which must be a contiguous float tensor
 * (f32, f16, bf16, f8; a quantised GGUF tensor is read as f32 once) of
 * exactly ndim dimensions `shape`. Anything else is
 * FY_ERR_FORMAT with one line naming the file, the tensor, its dtype and
 * shape, and the config with the shape it implies. */
fy_status fy_weight_lookup(const fy_component *c, const char *name, int ndim, const int64_t *shape, fy_tensor *out);

/* The same for a matrix [d0, d1], or the vector [d0] when d1 is 0 (the
 * Linear weights, biases and norms that make up most of a model). */
fy_status fy_weight_lookup2(const fy_component *c, const char *name, int64_t d0, int64_t d1, fy_tensor *out);

/* A Linear's weight [d0, d1] that may stay quantised (GGUF blocks along its
 * rows): for models whose linears go through the device ops, which decode
 * the blocks tile by tile. Otherwise as fy_weight_lookup2. */
fy_status fy_weight_lookup_linear(const fy_component *c, const char *name, int64_t d0, int64_t d1, fy_tensor *out);

#endif
