/* The encoder layer CLIP's text and vision towers share (transformers'
 * CLIPEncoderLayer): its weights, read once for both. */
#ifndef FERRY_MODELS_CLIP_LAYER_H
#define FERRY_MODELS_CLIP_LAYER_H

#include <stdint.h>

#include "ferry/model.h"
#include "ferry/tensor.h"

/* A layer's tensors in this order: layer_norm1, the q, k, v and out
 * projections, layer_norm2, fc1, fc2, each weight then bias. */
#define FY_CLIP_LAYER_WEIGHTS 16

/* The tensors of layer `index` under `tower` ("text_model", "vision_model")
 * into w[0 .. FY_CLIP_LAYER_WEIGHTS), checked against hidden and intermediate. */
fy_status fy_clip_layer_weights(const fy_component *c, const char *tower, int64_t index, int64_t hidden,
                                int64_t intermediate, fy_tensor *w);

#endif
