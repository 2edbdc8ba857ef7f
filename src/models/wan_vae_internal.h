/* Internals of the Wan VAE shared by its files: the layer tables built at
 * load, the run state of one decode or encode, and the layer forwards. */
#ifndef FERRY_MODELS_WAN_VAE_INTERNAL_H
#define FERRY_MODELS_WAN_VAE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include "ferry/ops.h"
#include "ferry/engine.h"
#include "ferry/ops.h"
#include "ferry/wan_vae.h"

#define VAE_MAX_W 12 /* tensors in one group */

/* diffusers' enable_tiling(), in pixels: tiles of tile_h x tile_w starting
 * every stride_h x stride_w. */
typedef struct fy_wan_vae_tiling {
    bool enabled;
    int64_t tile_h, tile_w, stride_h, stride_w;
} fy_wan_vae_tiling;

/* A convolution's tensors: indices into its group's weights. */
typedef struct vae_conv {
    int w, b;
    int64_t c_out, c_in, kt, kh, kw;
    int cache; /* feature-cache slot of a causal 3x3x3 / time conv, -1 none */
} vae_conv;

typedef enum vae_kind { VAE_RESNET, VAE_ATTN, VAE_UP2D, VAE_UP3D, VAE_DOWN2D, VAE_DOWN3D } vae_kind;

/* Wan2.2's parameter-free block shortcuts (is_residual): the input of a
 * residual down / up block, folded (AvgDown3D) or unfolded (DupUp3D) by
 * factor_t in time and factor_s in space, added to the block's output. */
typedef enum vae_shortcut_kind { VAE_SC_NONE, VAE_SC_AVG_DOWN, VAE_SC_DUP_UP } vae_shortcut_kind;

typedef struct vae_shortcut {
    vae_shortcut_kind kind;
    int64_t c_in, c_out, factor_t, factor_s;
} vae_shortcut;

/* One BLOCK group: a residual block, an attention block or a resampler. */
typedef struct vae_layer {
    vae_kind kind;
    char name[128];
    int group;
    fy_tensor w[VAE_MAX_W];
    int nw;
    int64_t c_in, c_out;
    int norm1, norm2;          /* resnet: gamma indices; attention: norm1 */
    vae_conv conv1, conv2, sc; /* resnet convs (sc.w < 0: identity shortcut) */
    vae_conv qkv, proj;        /* attention */
    vae_conv spatial, time;    /* resampler (time.w < 0: none) */
    bool skip_in;              /* first layer of a Wan2.2 block: keeps the block's input */
    vae_shortcut shortcut;     /* last layer of a Wan2.2 block: adds the kept input */
} vae_layer;

/* A SMALL group of a part's convolutions in or out. */
typedef struct vae_small {
    int group;
    fy_tensor w[VAE_MAX_W];
    int nw;
} vae_small;

/* The encoder or the decoder. */
typedef struct vae_part {
    bool present;
    int comp;
    vae_small in, out;
    vae_conv pre;      /* decoder: post_quant_conv (in group in) */
    vae_conv conv_in;  /* in group in */
    int norm_out;      /* in group out */
    vae_conv conv_out; /* in group out */
    vae_conv post;     /* encoder: quant_conv (in group out) */
    vae_layer *layers;
    int n_layers;
    int n_caches;
} vae_part;

struct fy_wan_vae {
    const fy_component *c;
    fy_engine *e;
    fy_wan_vae_config cfg;
    vae_part dec, enc;
    fy_ops *ops; /* made by the first decode or encode */
    int threads;
};

/* An activation [n, c, t, h, w] (device memory; NULL data in a dry run). */
typedef struct vae_act {
    float *d;
    int64_t n, c, t, h, w;
} vae_act;

/* Feature cache of one causal convolution: its last input frames. */
typedef struct vae_cache {
    float *d;          /* [n, c, 2, h, w] */
    int64_t n, c, h, w;
    int frames;        /* valid frames, 0..2 */
    bool seen;         /* upsample3d: the first chunk passed ("Rep") */
} vae_cache;

/* One decode or encode. A dry run allocates nothing and computes nothing: it
 * replays the allocations to measure their peak. */
typedef struct vae_run {
    fy_wan_vae *m;
    fy_engine *e;
    fy_ops *ops;
    bool dry;
    bool slicing;
    fy_wan_vae_tiling tiling;
    uint64_t live, peak;
    vae_cache *caches;
    int n_caches;
    vae_act skip;     /* the input of the Wan2.2 block being run */
    bool first_chunk; /* decoding the first latent frame (of a tile) */
} vae_run;

static inline int64_t vae_numel(const vae_act *a)
{
    return a->n * a->c * a->t * a->h * a->w;
}

/* ---- wan_vae.c: the builders the Wan2.2 blocks share ----------------------- */
typedef struct vae_builder {
    const fy_component *c;
    vae_part *part;
    fy_tensor *w;
    int *nw;
} vae_builder;

fy_status vae_add_resnet(const fy_component *c, vae_part *p, const char *prefix, int64_t in, int64_t out);
fy_status vae_add_resample(const fy_component *c, vae_part *p, const char *prefix, vae_kind kind, int64_t dim,
                           int64_t out);

/* ---- wan22_vae.c: Wan2.2's residual blocks and patches ---------------------- */
/* The residual up blocks of the decoder / down blocks of the encoder
 * (is_residual), dims as WanDecoder3d / WanEncoder3d compute them. */
fy_status vae22_add_up_blocks(fy_wan_vae *m, vae_part *p, const int64_t *dims);
fy_status vae22_add_down_blocks(fy_wan_vae *m, vae_part *p, const int64_t *dims);
/* Keeps x as the block's input; adds the block's shortcut of it to x. */
fy_status vae22_skip_keep(vae_run *r, const vae_act *x);
fy_status vae22_skip_add(vae_run *r, const vae_shortcut *sc, vae_act *x);
/* Host arrays: video [B, C, F, H, W] <-> [B, C p^2, F, H / p, W / p], the
 * channel index c p^2 + p (w mod p) + (h mod p) (diffusers' patchify). */
void vae22_patchify(const float *video, const int64_t vs[5], int64_t p, float *out);
void vae22_unpatchify(const float *patches, const int64_t ps[5], int64_t p, float *video);

/* ---- wan_vae_layers.c --------------------------------------------------- */
fy_status vae_alloc(vae_run *r, vae_act *a, int64_t n, int64_t c, int64_t t, int64_t h, int64_t w,
                    const char *label);
void vae_release(vae_run *r, vae_act *a);
fy_status vae_caches_begin(vae_run *r, int n_caches);
void vae_caches_end(vae_run *r);
/* y = conv(x), the stride-1 "same" 2D or pointwise convolutions and the
 * cached causal ones; x is kept. */
fy_status vae_conv_plain(vae_run *r, const vae_conv *cv, const fy_tensor *W, const vae_act *x, vae_act *y);
fy_status vae_conv_causal(vae_run *r, const vae_conv *cv, const fy_tensor *W, const vae_act *x, vae_act *y);
/* In place: x = silu(rms_norm_channels(x) * gamma). */
fy_status vae_norm_silu(vae_run *r, const fy_tensor *gamma, vae_act *x, bool silu);
/* Layers consume *x and leave their output in it. */
fy_status vae_layer_forward(vae_run *r, const vae_layer *l, const fy_tensor *W, vae_act *x);

#endif
