/* CLIPEncoderLayer's weights, for the text and the vision tower. */
#include "models/clip_layer.h"

#include <stdio.h>

#include "models/weight.h"

fy_status fy_clip_layer_weights(const fy_component *c, const char *tower, int64_t index, int64_t hidden,
                                int64_t intermediate, fy_tensor *w)
{
    /* Each module's weight [rows, cols] (cols 0: a vector) and bias [rows]. */
    const struct {
        const char *module;
        int64_t rows, cols;
    } spec[FY_CLIP_LAYER_WEIGHTS / 2] = {
        {"layer_norm1", hidden, 0},
        {"self_attn.q_proj", hidden, hidden},
        {"self_attn.k_proj", hidden, hidden},
        {"self_attn.v_proj", hidden, hidden},
        {"self_attn.out_proj", hidden, hidden},
        {"layer_norm2", hidden, 0},
        {"mlp.fc1", intermediate, hidden},
        {"mlp.fc2", hidden, intermediate},
    };
    for (int k = 0; k < FY_CLIP_LAYER_WEIGHTS / 2; k++) {
        char name[256];
        snprintf(name, sizeof name, "%s.encoder.layers.%lld.%s.weight", tower, (long long)index, spec[k].module);
        FY_TRY(fy_weight_lookup2(c, name, spec[k].rows, spec[k].cols, &w[2 * k]));
        snprintf(name, sizeof name, "%s.encoder.layers.%lld.%s.bias", tower, (long long)index, spec[k].module);
        FY_TRY(fy_weight_lookup2(c, name, spec[k].rows, 0, &w[2 * k + 1]));
    }
    return FY_OK;
}
