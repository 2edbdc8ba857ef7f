/* Flux transformer internals shared by its loader and its forward. */
#ifndef FERRY_MODELS_FLUX_DIT_INTERNAL_H
#define FERRY_MODELS_FLUX_DIT_INTERNAL_H

#include "ferry/ops.h"
#include "ferry/flux_dit.h"

/* The timestep/guidance sinusoid width (diffusers' Timesteps(256)). */
#define FLUX_FREQ_DIM 256

/* Weights of each group, in declaration order. */
enum {
    E_X, E_XB, E_CTX, E_CTXB, E_T1, E_T1B, E_T2, E_T2B, E_P1, E_P1B, E_P2, E_P2B,
    E_G1, E_G1B, E_G2, E_G2B, E_COUNT
};
enum {
    D_N1, D_N1B, D_N1C, D_N1CB,
    D_Q, D_QB, D_K, D_KB, D_V, D_VB, D_NQ, D_NK,
    D_AQ, D_AQB, D_AK, D_AKB, D_AV, D_AVB, D_NAQ, D_NAK,
    D_OUT, D_OUTB, D_AOUT, D_AOUTB,
    D_FF0, D_FF0B, D_FF2, D_FF2B, D_FFC0, D_FFC0B, D_FFC2, D_FFC2B, D_COUNT
};
enum { S_N, S_NB, S_Q, S_QB, S_K, S_KB, S_V, S_VB, S_NQ, S_NK, S_MLP, S_MLPB, S_OUT, S_OUTB, S_COUNT };
enum { O_NORM, O_NORMB, O_PROJ, O_PROJB, O_COUNT };

typedef struct flux_group {
    fy_tensor *w;
    int n, id;
} flux_group;

struct fy_flux_dit {
    const fy_component *c;
    fy_engine *e;
    fy_flux_dit_config cfg;
    int comp;
    flux_group embed, out;
    flux_group *doubles, *singles;
    fy_ops *ops;
    int threads;
    fy_flux_tap_fn tap;
    void *tap_user;
};

#endif
