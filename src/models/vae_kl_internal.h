/* AutoencoderKL internals shared by its loader and its runner. */
#ifndef FERRY_MODELS_VAE_KL_INTERNAL_H
#define FERRY_MODELS_VAE_KL_INTERNAL_H

#include "ferry/ops.h"
#include "ferry/vae_kl.h"

typedef enum kl_kind { KL_RESNET, KL_ATTN, KL_DOWN, KL_UP } kl_kind;

#define KL_MAX_WEIGHTS 10

typedef struct kl_layer {
    kl_kind kind;
    int64_t cin, cout;
    fy_tensor w[KL_MAX_WEIGHTS];
    int nw, group;
    char name[96];
} kl_layer;

typedef struct kl_part {
    int comp;
    fy_tensor in[2], out[4]; /* conv_in; conv_norm_out, conv_out */
    int in_group, out_group;
    kl_layer *layers;
    int n_layers, cap;
    int64_t in_ch, mid_ch, head_ch, out_ch; /* conv_in in/out, head norm channels, conv_out out */
} kl_part;

struct fy_vae_kl {
    const fy_component *c;
    fy_engine *e;
    fy_vae_kl_config cfg;
    kl_part dec, enc;
    int parts;
    fy_ops *ops;
    int threads;
};

#endif
