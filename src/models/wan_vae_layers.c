/* The Wan VAE's layers on activations [n, c, t, h, w] in the engine's pool:
 * causal convolutions with the temporal feature cache, the channel RMS norm,
 * residual blocks, the single-head spatial attention and the resamplers.
 *
 * The feature cache (diffusers' CACHE_T = 2) keeps each causal
 * convolution's last two input frames, so running chunk after chunk equals
 * one causal convolution (zero padded in front) over the whole sequence. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/dtype.h"
#include "models/wan_vae_internal.h"

#define CACHE_T 2
#define NORM_EPS 1e-12f /* F.normalize's */

/* ---- memory --------------------------------------------------------------- */

static uint64_t act_bytes(int64_t n, int64_t c, int64_t t, int64_t h, int64_t w)
{
    return (uint64_t)(n * c * t * h * w) * sizeof(float);
}

fy_status vae_alloc(vae_run *r, vae_act *a, int64_t n, int64_t c, int64_t t, int64_t h, int64_t w,
                    const char *label)
{
    *a = (vae_act){NULL, n, c, t, h, w};
    uint64_t bytes = act_bytes(n, c, t, h, w);
    if (!bytes) return fy_error(FY_ERR_INTERNAL, "vae: empty activation %s", label);
    if (!r->dry) {
        void *p = NULL;
        FY_TRY(fy_engine_alloc(r->e, (size_t)bytes, label, &p));
        a->d = p;
    }
    r->live += bytes;
    if (r->live > r->peak) r->peak = r->live;
    return FY_OK;
}

void vae_release(vae_run *r, vae_act *a)
{
    if (a->n <= 0) return;
    r->live -= act_bytes(a->n, a->c, a->t, a->h, a->w);
    if (!r->dry) fy_engine_free_buffer(r->e, a->d);
    *a = (vae_act){0};
}

fy_status vae_caches_begin(vae_run *r, int n_caches)
{
    vae_caches_end(r);
    if (n_caches <= 0) return FY_OK;
    r->caches = calloc((size_t)n_caches, sizeof *r->caches);
    if (!r->caches) return fy_error(FY_ERR_NOMEM, "vae: out of memory");
    r->n_caches = n_caches;
    return FY_OK;
}

void vae_caches_end(vae_run *r)
{
    for (int i = 0; i < r->n_caches; i++) {
        vae_cache *k = &r->caches[i];
        if (k->n <= 0) continue;
        vae_act a = {k->d, k->n, k->c, CACHE_T, k->h, k->w};
        vae_release(r, &a);
    }
    free(r->caches);
    r->caches = NULL;
    r->n_caches = 0;
    vae_release(r, &r->skip); /* left by a failed block */
}

/* The slot for activations of this size, allocated on first use (per tile). */
static fy_status cache_slot(vae_run *r, int slot, const vae_act *x, vae_cache **out)
{
    if (slot < 0 || slot >= r->n_caches) return fy_error(FY_ERR_INTERNAL, "vae: feature cache slot %d", slot);
    vae_cache *k = &r->caches[slot];
    if (k->n <= 0) {
        vae_act a;
        FY_TRY(vae_alloc(r, &a, x->n, x->c, CACHE_T, x->h, x->w, "vae feature cache"));
        k->d = a.d;
        k->n = x->n, k->c = x->c, k->h = x->h, k->w = x->w;
    }
    if (k->n != x->n || k->c != x->c || k->h != x->h || k->w != x->w)
        return fy_error(FY_ERR_INTERNAL, "vae: feature cache %d changed size within a tile", slot);
    *out = k;
    return FY_OK;
}

/* Frames [t0, t0 + nt) of every (n, c) of src (src_t frames each) to frames
 * [d0, d0 + nt) of dst (dst_t frames each): one strided copy. */
static fy_status copy_frames(vae_run *r, float *dst, int64_t dst_t, int64_t d0, const float *src, int64_t src_t,
                             int64_t t0, int64_t nt, const vae_act *x)
{
    size_t plane = (size_t)(x->h * x->w) * sizeof(float);
    return r->ops->copy2d(r->ops, dst + d0 * x->h * x->w, (size_t)dst_t * plane, src + t0 * x->h * x->w,
                          (size_t)src_t * plane, (size_t)nt * plane, (size_t)(x->n * x->c));
}

/* The cache keeps the last min(2, frames + T) frames of cache ++ x. A frame
 * kept from the cache only moves down (frame 1 to 0), so no copy reads what
 * an earlier one wrote. */
static fy_status cache_update(vae_run *r, vae_cache *k, const vae_act *x)
{
    int64_t total = k->frames + x->t, keep = total < CACHE_T ? total : CACHE_T;
    for (int64_t j = 0; j < keep && !r->dry; j++) {
        int64_t s = total - keep + j;
        if (s < k->frames) FY_TRY(copy_frames(r, k->d, CACHE_T, j, k->d, CACHE_T, s, 1, x));
        else FY_TRY(copy_frames(r, k->d, CACHE_T, j, x->d, x->t, s - k->frames, 1, x));
    }
    k->frames = (int)keep;
    return FY_OK;
}

/* ---- weights in float32 ------------------------------------------------------ */

typedef struct vae_w {
    const float *p;
    vae_act tmp;
} vae_w;

static fy_status w_get(vae_run *r, const fy_tensor *t, vae_w *out)
{
    *out = (vae_w){0};
    if (t->dtype == FY_F32) {
        out->p = t->data;
        return FY_OK;
    }
    int64_t n = fy_tensor_numel(t);
    FY_TRY(vae_alloc(r, &out->tmp, 1, 1, 1, 1, n, "vae weights as f32"));
    if (!r->dry) FY_TRY(r->ops->convert(r->ops, fy_f32(out->tmp.d), fy_view_of(t->data, t->dtype), (size_t)n));
    out->p = out->tmp.d;
    return FY_OK;
}

static void w_put(vae_run *r, vae_w *w)
{
    vae_release(r, &w->tmp);
}

/* ---- convolutions -------------------------------------------------------------- */

static fy_status conv_exec(vae_run *r, const vae_conv *cv, const fy_tensor *W, const float *x, int64_t n,
                           const fy_conv3d_shape *s, float *y)
{
    if (r->dry) return FY_OK;
    vae_w w, b;
    FY_TRY(w_get(r, &W[cv->w], &w));
    fy_status st = w_get(r, &W[cv->b], &b);
    if (st == FY_OK) st = r->ops->conv3d(r->ops, fy_f32(x), fy_f32(w.p), fy_f32(b.p), fy_f32(y), n, s);
    w_put(r, &b);
    w_put(r, &w);
    return st;
}

/* Dry runs must allocate what the real run converts; do it around conv_exec. */
static fy_status conv_weights_dry(vae_run *r, const vae_conv *cv, const fy_tensor *W)
{
    if (!r->dry) return FY_OK;
    vae_w w, b;
    FY_TRY(w_get(r, &W[cv->w], &w));
    fy_status st = w_get(r, &W[cv->b], &b);
    w_put(r, &b);
    w_put(r, &w);
    return st;
}

static fy_conv3d_shape conv_shape(const vae_conv *cv, const vae_act *x, int64_t t)
{
    return (fy_conv3d_shape){.c_in = cv->c_in, .t = t, .h = x->h, .w = x->w, .c_out = cv->c_out,
                             .kt = cv->kt, .kh = cv->kh, .kw = cv->kw, .st = 1, .sh = 1, .sw = 1,
                             .pad_h0 = (cv->kh - 1) / 2, .pad_h1 = (cv->kh - 1) / 2,
                             .pad_w0 = (cv->kw - 1) / 2, .pad_w1 = (cv->kw - 1) / 2};
}

fy_status vae_conv_plain(vae_run *r, const vae_conv *cv, const fy_tensor *W, const vae_act *x, vae_act *y)
{
    fy_conv3d_shape s = conv_shape(cv, x, x->t);
    FY_TRY(vae_alloc(r, y, x->n, cv->c_out, x->t, x->h, x->w, "vae activations"));
    FY_TRY(conv_weights_dry(r, cv, W));
    return conv_exec(r, cv, W, x->d, x->n, &s, y->d);
}

/* Causal in time: the cached frames, then zeros for the ones missing. */
fy_status vae_conv_causal(vae_run *r, const vae_conv *cv, const fy_tensor *W, const vae_act *x, vae_act *y)
{
    vae_cache *k = NULL;
    FY_TRY(cache_slot(r, cv->cache, x, &k));
    vae_act in = *x, joined = {0};
    if (k->frames > 0) {
        FY_TRY(vae_alloc(r, &joined, x->n, x->c, k->frames + x->t, x->h, x->w, "vae conv input"));
        fy_status st = FY_OK;
        if (!r->dry) st = copy_frames(r, joined.d, joined.t, 0, k->d, CACHE_T, 0, k->frames, x);
        if (st == FY_OK && !r->dry) st = copy_frames(r, joined.d, joined.t, k->frames, x->d, x->t, 0, x->t, x);
        if (st != FY_OK) {
            vae_release(r, &joined);
            return st;
        }
        in = joined;
    }
    fy_conv3d_shape s = conv_shape(cv, &in, in.t);
    s.pad_t0 = cv->kt - 1 - k->frames;
    fy_status st = vae_alloc(r, y, x->n, cv->c_out, x->t, x->h, x->w, "vae activations");
    if (st == FY_OK) st = conv_weights_dry(r, cv, W);
    if (st == FY_OK) st = conv_exec(r, cv, W, in.d, x->n, &s, y->d);
    vae_release(r, &joined);
    if (st == FY_OK) st = cache_update(r, k, x);
    return st;
}

/* ---- norm -------------------------------------------------------------------- */

fy_status vae_norm_silu(vae_run *r, const fy_tensor *gamma, vae_act *x, bool silu)
{
    vae_w g;
    FY_TRY(w_get(r, gamma, &g));
    fy_status st = FY_OK;
    int64_t S = x->t * x->h * x->w;
    for (int64_t n = 0; n < x->n && st == FY_OK && !r->dry; n++) {
        float *p = x->d + n * x->c * S;
        st = r->ops->channel_rms_norm(r->ops, fy_f32(p), fy_f32(g.p), FY_NO_VIEW, fy_f32(p), x->c, S, NORM_EPS);
    }
    if (st == FY_OK && silu && !r->dry) st = r->ops->silu(r->ops, fy_f32(x->d), fy_f32(x->d), vae_numel(x));
    w_put(r, &g);
    return st;
}

/* ---- residual block ------------------------------------------------------------ */

static fy_status resnet_forward(vae_run *r, const vae_layer *l, const fy_tensor *W, vae_act *x)
{
    vae_act h = {0}, a = {0}, y1 = {0}, y2 = {0};
    fy_status st = FY_OK;
    if (l->sc.w >= 0) {
        st = vae_conv_plain(r, &l->sc, W, x, &h);
        a = *x; /* x itself is not needed after the shortcut */
    } else {
        h = *x;
        st = vae_alloc(r, &a, x->n, x->c, x->t, x->h, x->w, "vae activations");
        if (st == FY_OK && !r->dry) st = r->ops->copy(r->ops, a.d, x->d, (size_t)vae_numel(x) * sizeof(float));
    }
    *x = (vae_act){0};
    if (st == FY_OK) st = vae_norm_silu(r, &W[l->norm1], &a, true);
    if (st == FY_OK) st = vae_conv_causal(r, &l->conv1, W, &a, &y1);
    vae_release(r, &a);
    if (st == FY_OK) st = vae_norm_silu(r, &W[l->norm2], &y1, true);
    if (st == FY_OK) st = vae_conv_causal(r, &l->conv2, W, &y1, &y2);
    vae_release(r, &y1);
    if (st == FY_OK && !r->dry) st = r->ops->add(r->ops, fy_f32(y2.d), fy_f32(h.d), fy_f32(y2.d), vae_numel(&y2));
    vae_release(r, &h);
    if (st != FY_OK) {
        vae_release(r, &y2);
        return st;
    }
    *x = y2;
    return FY_OK;
}

/* ---- attention ---------------------------------------------------------------- */

typedef struct attn_bufs {
    vae_act xn, tok, q, k, v, o;
} attn_bufs;

static void attn_bufs_release(vae_run *r, attn_bufs *b)
{
    vae_release(r, &b->o);
    vae_release(r, &b->v);
    vae_release(r, &b->k);
    vae_release(r, &b->q);
    vae_release(r, &b->tok);
    vae_release(r, &b->xn);
}

/* One frame: tokens [hw, c] -> x[:, t] += proj(attention(q, k, v))^T. */
static fy_status attn_frame(vae_run *r, const vae_layer *l, const float *wqkv, const float *bqkv, const float *wp,
                            const float *bp, attn_bufs *b, float *x, const float *xn, int64_t t, int64_t T)
{
    int64_t C = l->c_in, L = b->tok.h;
    fy_ops *o = r->ops;
    FY_TRY(o->transpose(o, fy_f32(b->tok.d), C, fy_f32(xn + t * L), T * L, C, L, 0));
    FY_TRY(o->linear(o, fy_f32(b->tok.d), (fy_weight){wqkv, FY_F32, NULL, 0}, fy_f32(bqkv), fy_f32(b->q.d), L, C, C));
    FY_TRY(o->linear(o, fy_f32(b->tok.d), (fy_weight){wqkv + C * C, FY_F32, NULL, 0}, fy_f32(bqkv + C), fy_f32(b->k.d),
                     L, C, C));
    FY_TRY(o->linear(o, fy_f32(b->tok.d), (fy_weight){wqkv + 2 * C * C, FY_F32, NULL, 0}, fy_f32(bqkv + 2 * C),
                     fy_f32(b->v.d), L, C, C));
    FY_TRY(o->attention(o, fy_f32(b->q.d), fy_f32(b->k.d), fy_f32(b->v.d), fy_f32(b->o.d), 1, 1, L, L, C,
                        (float)(1.0 / sqrt((double)C)), FY_NO_VIEW, NULL));
    FY_TRY(o->linear(o, fy_f32(b->o.d), (fy_weight){wp, FY_F32, NULL, 0}, fy_f32(bp), fy_f32(b->tok.d), L, C, C));
    return o->transpose(o, fy_f32(x + t * L), T * L, fy_f32(b->tok.d), C, L, C, 1);
}

static fy_status attn_compute(vae_run *r, const vae_layer *l, const fy_tensor *W, attn_bufs *b, vae_act *x)
{
    vae_w wq, bq, wp, bp;
    FY_TRY(w_get(r, &W[l->qkv.w], &wq));
    fy_status st = w_get(r, &W[l->qkv.b], &bq);
    if (st == FY_OK) st = w_get(r, &W[l->proj.w], &wp);
    if (st == FY_OK) st = w_get(r, &W[l->proj.b], &bp);
    int64_t S = x->c * x->t * x->h * x->w;
    for (int64_t n = 0; n < x->n && st == FY_OK && !r->dry; n++)
        for (int64_t t = 0; t < x->t && st == FY_OK; t++)
            st = attn_frame(r, l, wq.p, bq.p, wp.p, bp.p, b, x->d + n * S, b->xn.d + n * S, t, x->t);
    w_put(r, &bp);
    w_put(r, &wp);
    w_put(r, &bq);
    w_put(r, &wq);
    return st;
}

static fy_status attn_forward(vae_run *r, const vae_layer *l, const fy_tensor *W, vae_act *x)
{
    attn_bufs b = {0};
    int64_t L = x->h * x->w, C = x->c;
    fy_status st = vae_alloc(r, &b.xn, x->n, x->c, x->t, x->h, x->w, "vae attention");
    if (st == FY_OK && !r->dry) st = r->ops->copy(r->ops, b.xn.d, x->d, (size_t)vae_numel(x) * sizeof(float));
    if (st == FY_OK) st = vae_norm_silu(r, &W[l->norm1], &b.xn, false);
    vae_act *tok[5] = {&b.tok, &b.q, &b.k, &b.v, &b.o};
    for (int i = 0; i < 5 && st == FY_OK; i++) st = vae_alloc(r, tok[i], 1, 1, 1, L, C, "vae attention");
    if (st == FY_OK) st = attn_compute(r, l, W, &b, x);
    attn_bufs_release(r, &b);
    return st;
}

/* ---- resamplers ----------------------------------------------------------------- */

/* [n, 2c, T, h, w] -> [n, c, 2T, h, w]: frame 2t + j is channel block j of
 * frame t. For one (n, j) the frames (ch, t) are in order on both sides, one
 * plane apart in the input and two in the output: one strided copy. */
static fy_status interleave_time(vae_run *r, const vae_act *in, vae_act *out)
{
    int64_t c = out->c, plane = in->h * in->w;
    size_t bytes = (size_t)plane * sizeof(float);
    for (int64_t n = 0; n < in->n; n++)
        for (int64_t j = 0; j < 2; j++)
            FY_TRY(r->ops->copy2d(r->ops, out->d + (n * c * out->t + j) * plane, 2 * bytes,
                                  in->d + (n * in->c + j * c) * in->t * plane, bytes, bytes, (size_t)(c * in->t)));
    return FY_OK;
}

/* upsample3d's time convolution: skipped for the first chunk (diffusers'
 * "Rep"), then a causal convolution doubling the frames. */
static fy_status up_time(vae_run *r, const vae_layer *l, const fy_tensor *W, vae_act *x)
{
    vae_cache *k = NULL;
    FY_TRY(cache_slot(r, l->time.cache, x, &k));
    if (!k->seen) {
        k->seen = true;
        return FY_OK;
    }
    vae_act tc = {0}, y = {0};
    FY_TRY(vae_conv_causal(r, &l->time, W, x, &tc));
    fy_status st = vae_alloc(r, &y, x->n, x->c, 2 * x->t, x->h, x->w, "vae activations");
    if (st == FY_OK && !r->dry) st = interleave_time(r, &tc, &y);
    vae_release(r, &tc);
    vae_release(r, x);
    *x = y;
    return st;
}

static fy_status up_forward(vae_run *r, const vae_layer *l, const fy_tensor *W, vae_act *x)
{
    if (l->kind == VAE_UP3D) FY_TRY(up_time(r, l, W, x));
    vae_act u = {0}, y = {0};
    FY_TRY(vae_alloc(r, &u, x->n, x->c, x->t, 2 * x->h, 2 * x->w, "vae activations"));
    fy_status st =
        r->dry ? FY_OK : r->ops->upsample_nearest2x(r->ops, fy_f32(x->d), fy_f32(u.d), x->n * x->c * x->t, x->h, x->w);
    vae_release(r, x);
    if (st == FY_OK) st = vae_conv_plain(r, &l->spatial, W, &u, &y);
    vae_release(r, &u);
    *x = y;
    return st;
}

/* downsample3d's time convolution: stride 2 over the previous chunk's last
 * frame and this chunk; the first chunk passes through. */
static fy_status down_time(vae_run *r, const vae_layer *l, const fy_tensor *W, vae_act *x)
{
    vae_cache *k = NULL;
    FY_TRY(cache_slot(r, l->time.cache, x, &k));
    if (!k->seen) {
        k->seen = true;
        k->frames = 0;
        return cache_update(r, k, x);
    }
    if (k->frames < 1 || k->frames + x->t < l->time.kt)
        return fy_error(FY_ERR_INVALID, "vae: a chunk of %lld frames is too short for the temporal downsampling",
                        (long long)x->t);
    vae_act in = {0}, y = {0};
    FY_TRY(vae_alloc(r, &in, x->n, x->c, 1 + x->t, x->h, x->w, "vae conv input"));
    fy_status st = FY_OK;
    if (!r->dry) st = copy_frames(r, in.d, in.t, 0, k->d, CACHE_T, k->frames - 1, 1, x);
    if (st == FY_OK && !r->dry) st = copy_frames(r, in.d, in.t, 1, x->d, x->t, 0, x->t, x);
    fy_conv3d_shape s = conv_shape(&l->time, &in, in.t);
    s.st = 2;
    int64_t to = (in.t - l->time.kt) / 2 + 1;
    if (st == FY_OK) st = vae_alloc(r, &y, x->n, l->time.c_out, to, x->h, x->w, "vae activations");
    if (st == FY_OK) st = conv_weights_dry(r, &l->time, W);
    if (st == FY_OK) st = conv_exec(r, &l->time, W, in.d, x->n, &s, y.d);
    vae_release(r, &in);
    k->frames = 0;
    if (st == FY_OK) st = cache_update(r, k, x);
    vae_release(r, x);
    *x = y;
    return st;
}

/* ZeroPad2d((0, 1, 0, 1)) then a stride-2 3x3 convolution, frame by frame. */
static fy_status down_forward(vae_run *r, const vae_layer *l, const fy_tensor *W, vae_act *x)
{
    fy_conv3d_shape s = conv_shape(&l->spatial, x, x->t);
    s.sh = s.sw = 2;
    s.pad_h0 = s.pad_w0 = 0;
    s.pad_h1 = s.pad_w1 = 1;
    int64_t to, ho, wo;
    FY_TRY(fy_conv3d_out_size(&s, &to, &ho, &wo));
    vae_act y = {0};
    FY_TRY(vae_alloc(r, &y, x->n, l->spatial.c_out, x->t, ho, wo, "vae activations"));
    fy_status st = conv_weights_dry(r, &l->spatial, W);
    if (st == FY_OK) st = conv_exec(r, &l->spatial, W, x->d, x->n, &s, y.d);
    vae_release(r, x);
    *x = y;
    if (st == FY_OK && l->kind == VAE_DOWN3D) st = down_time(r, l, W, x);
    return st;
}

static fy_status layer_compute(vae_run *r, const vae_layer *l, const fy_tensor *W, vae_act *x)
{
    if (x->c != l->c_in)
        return fy_error(FY_ERR_INTERNAL, "vae: %s expects %lld channels, got %lld", l->name, (long long)l->c_in,
                        (long long)x->c);
    switch (l->kind) {
    case VAE_RESNET: return resnet_forward(r, l, W, x);
    case VAE_ATTN: return attn_forward(r, l, W, x);
    case VAE_UP2D:
    case VAE_UP3D: return up_forward(r, l, W, x);
    case VAE_DOWN2D:
    case VAE_DOWN3D: return down_forward(r, l, W, x);
    }
    return fy_error(FY_ERR_INTERNAL, "vae: unknown layer kind");
}

fy_status vae_layer_forward(vae_run *r, const vae_layer *l, const fy_tensor *W, vae_act *x)
{
    if (l->skip_in) FY_TRY(vae22_skip_keep(r, x));
    FY_TRY(layer_compute(r, l, W, x));
    return l->shortcut.kind != VAE_SC_NONE ? vae22_skip_add(r, &l->shortcut, x) : FY_OK;
}
