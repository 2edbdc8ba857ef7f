/* AutoencoderKL's decode and encode on the engine (see ferry/vae_kl.h).
 * One image (or tile) at a time, through five device buffers of the largest
 * activation: the running x, the layer's output y and three temporaries. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/vae_kl_internal.h"

#define GN_EPS 1e-6f
#define VEC_SLOTS 2

typedef struct kl_shape {
    int64_t C, H, W;
} kl_shape;

typedef struct kl_run {
    fy_vae_kl *m;
    kl_part *p;
    float *x, *y, *t0, *t1, *t2, *in, *out, *wconv, *vec;
    int64_t max_elems, max_weight, max_ch;
} kl_run;

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t elems(kl_shape s) { return s.C * s.H * s.W; }

/* ---- shapes --------------------------------------------------------------------------- */

static kl_shape layer_out(const kl_layer *l, kl_shape s)
{
    if (l->kind == KL_DOWN) return (kl_shape){l->cout, (s.H - 2) / 2 + 1, (s.W - 2) / 2 + 1};
    if (l->kind == KL_UP) return (kl_shape){l->cout, 2 * s.H, 2 * s.W};
    return (kl_shape){l->cout, s.H, s.W};
}

/* The largest activation, weight and channel count of a run of part p on an H x W input. */
static void walk(const kl_part *p, int64_t H, int64_t W, int64_t *max_elems, int64_t *max_weight, int64_t *max_ch)
{
    kl_shape s = {p->mid_ch, H, W};
    int64_t e = max64(p->in_ch * H * W, elems(s)), wt = fy_tensor_numel(&p->in[0]), ch = max64(p->mid_ch, p->out_ch);
    for (int i = 0; i < p->n_layers; i++) {
        const kl_layer *l = &p->layers[i];
        kl_shape o = layer_out(l, s);
        e = max64(e, max64(elems(o), l->kind == KL_UP ? l->cin * o.H * o.W : 0));
        for (int k = 0; k < l->nw; k++) wt = max64(wt, fy_tensor_numel(&l->w[k]));
        ch = max64(ch, max64(l->cin, l->cout));
        s = o;
    }
    e = max64(e, p->out_ch * s.H * s.W);
    *max_elems = e;
    *max_weight = max64(wt, fy_tensor_numel(&p->out[2]));
    *max_ch = max64(ch, p->head_ch);
}

static kl_shape part_out(const kl_part *p, int64_t H, int64_t W)
{
    kl_shape s = {p->mid_ch, H, W};
    for (int i = 0; i < p->n_layers; i++) s = layer_out(&p->layers[i], s);
    return (kl_shape){p->out_ch, s.H, s.W};
}

static uint64_t run_bytes(const fy_vae_kl *m, const kl_part *p, int64_t H, int64_t W)
{
    int64_t e = 0, wt = 0, ch = 0;
    walk(p, H, W, &e, &wt, &ch);
    kl_shape o = part_out(p, H, W);
    uint64_t floats = 5 * (uint64_t)e + (uint64_t)(p->in_ch * H * W) + (uint64_t)elems(o) + (uint64_t)wt +
                      VEC_SLOTS * (uint64_t)ch;
    return floats * sizeof(float) + fy_engine_ops_scratch_bound(m->e, true);
}

uint64_t fy_vae_kl_decode_activation_bytes(const fy_vae_kl *m, int64_t h, int64_t w, const fy_vae_kl_tiling *t)
{
    if (!m || h < 1 || w < 1) return 0;
    if (t && t->tile_latent > 0) h = h < t->tile_latent ? h : t->tile_latent, w = w < t->tile_latent ? w : t->tile_latent;
    return run_bytes(m, &m->dec, h, w);
}

uint64_t fy_vae_kl_encode_activation_bytes(const fy_vae_kl *m, int64_t H, int64_t W, const fy_vae_kl_tiling *t)
{
    if (!m || H < 1 || W < 1) return 0;
    int64_t T = t ? t->tile_latent * fy_vae_kl_upscale(m) : 0;
    if (T > 0) H = H < T ? H : T, W = W < T ? W : T;
    return run_bytes(m, &m->enc, H, W);
}

/* ---- buffers ------------------------------------------------------------------------------ */

static void free_run(kl_run *r)
{
    float *bufs[] = {r->x, r->y, r->t0, r->t1, r->t2, r->in, r->out, r->wconv, r->vec};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) fy_engine_free_buffer(r->m->e, bufs[i]);
}

static fy_status alloc_run(kl_run *r, int64_t H, int64_t W)
{
    fy_engine *e = r->m->e;
    walk(r->p, H, W, &r->max_elems, &r->max_weight, &r->max_ch);
    size_t big = (size_t)r->max_elems * sizeof(float);
    kl_shape o = part_out(r->p, H, W);
    FY_TRY(fy_engine_alloc(e, big, "vae x", (void **)&r->x));
    FY_TRY(fy_engine_alloc(e, big, "vae y", (void **)&r->y));
    FY_TRY(fy_engine_alloc(e, big, "vae temp", (void **)&r->t0));
    FY_TRY(fy_engine_alloc(e, big, "vae temp", (void **)&r->t1));
    FY_TRY(fy_engine_alloc(e, big, "vae temp", (void **)&r->t2));
    FY_TRY(fy_engine_alloc(e, (size_t)(r->p->in_ch * H * W) * sizeof(float), "vae input", (void **)&r->in));
    FY_TRY(fy_engine_alloc(e, (size_t)elems(o) * sizeof(float), "vae output", (void **)&r->out));
    FY_TRY(fy_engine_alloc(e, (size_t)r->max_weight * sizeof(float), "vae weight f32", (void **)&r->wconv));
    return fy_engine_alloc(e, VEC_SLOTS * (size_t)r->max_ch * sizeof(float), "vae vectors", (void **)&r->vec);
}

/* ---- ops ------------------------------------------------------------------------------------ */

static fy_status as_f32(kl_run *r, const fy_tensor *t, float *scratch, const float **out)
{
    *out = t->data;
    if (t->dtype == FY_F32) return FY_OK;
    *out = scratch;
    return r->m->ops->convert(r->m->ops, fy_f32(scratch), fy_view_of(t->data, t->dtype), (size_t)fy_tensor_numel(t));
}

/* y = conv(x) with a k x k kernel (w, b a weight pair), stride and zero padding (top, bottom, left, right). */
static fy_status conv(kl_run *r, const float *x, kl_shape s, const fy_tensor *w, float *y, int64_t stride,
                      const int64_t pad[4])
{
    const float *wf = NULL, *bf = NULL;
    FY_TRY(as_f32(r, &w[0], r->wconv, &wf));
    FY_TRY(as_f32(r, &w[1], r->vec, &bf));
    int64_t k = w[0].shape[2];
    fy_conv3d_shape cs = {.c_in = s.C, .t = 1, .h = s.H, .w = s.W, .c_out = w[0].shape[0], .kt = 1, .kh = k,
                          .kw = k, .st = 1, .sh = stride, .sw = stride, .pad_h0 = pad[0], .pad_h1 = pad[1],
                          .pad_w0 = pad[2], .pad_w1 = pad[3]};
    return r->m->ops->conv3d(r->m->ops, fy_f32(x), fy_f32(wf), fy_f32(bf), fy_f32(y), 1, &cs);
}

static fy_status conv_same(kl_run *r, const float *x, kl_shape s, const fy_tensor *w, float *y)
{
    int64_t p = w[0].shape[2] / 2, pad[4] = {p, p, p, p};
    return conv(r, x, s, w, y, 1, pad);
}

/* out = GroupNorm(x) (then SiLU). */
static fy_status norm(kl_run *r, const float *x, kl_shape s, const fy_tensor *w, float *out, bool silu)
{
    const float *g = NULL, *b = NULL;
    FY_TRY(as_f32(r, &w[0], r->vec, &g));
    FY_TRY(as_f32(r, &w[1], r->vec + r->max_ch, &b));
    FY_TRY(r->m->ops->group_norm(r->m->ops, fy_f32(x), fy_f32(g), fy_f32(b), fy_f32(out), s.C, s.H * s.W,
                                 r->m->cfg.groups, GN_EPS));
    return silu ? r->m->ops->silu(r->m->ops, fy_f32(out), fy_f32(out), elems(s)) : FY_OK;
}

static fy_status resnet(kl_run *r, const kl_layer *l, kl_shape s)
{
    kl_shape o = {l->cout, s.H, s.W};
    FY_TRY(norm(r, r->x, s, &l->w[0], r->t0, true));
    FY_TRY(conv_same(r, r->t0, s, &l->w[2], r->t1));
    FY_TRY(norm(r, r->t1, o, &l->w[4], r->t0, true));
    FY_TRY(conv_same(r, r->t0, o, &l->w[6], r->t1));
    const float *skip = r->x;
    if (l->nw > 8) {
        FY_TRY(conv_same(r, r->x, s, &l->w[8], r->y));
        skip = r->y;
    }
    return r->m->ops->add(r->m->ops, fy_f32(skip), fy_f32(r->t1), fy_f32(r->y), elems(o));
}

static fy_status linear(kl_run *r, const float *x, const fy_tensor *w, float *y, int64_t rows)
{
    const float *b = NULL;
    FY_TRY(as_f32(r, &w[1], r->vec, &b));
    return r->m->ops->linear(r->m->ops, fy_f32(x), (fy_weight){w[0].data, w[0].dtype, NULL, 0}, fy_f32(b), fy_f32(y),
                             rows, w[0].shape[1], w[0].shape[0]);
}

/* Single-head attention over the H*W positions, with GroupNorm and the residual. */
static fy_status attention(kl_run *r, const kl_layer *l, kl_shape s)
{
    int64_t C = s.C, N = s.H * s.W;
    fy_ops *o = r->m->ops;
    FY_TRY(norm(r, r->x, s, &l->w[0], r->t0, false));
    FY_TRY(o->transpose(o, fy_f32(r->t1), C, fy_f32(r->t0), N, C, N, 0)); /* [N, C] */
    FY_TRY(linear(r, r->t1, &l->w[2], r->t0, N));
    FY_TRY(linear(r, r->t1, &l->w[4], r->t2, N));
    FY_TRY(linear(r, r->t1, &l->w[6], r->y, N));
    FY_TRY(o->attention(o, fy_f32(r->t0), fy_f32(r->t2), fy_f32(r->y), fy_f32(r->t1), 1, 1, N, N, C,
                        1.0f / sqrtf((float)C), FY_NO_VIEW, NULL));
    FY_TRY(linear(r, r->t1, &l->w[8], r->t0, N));
    FY_TRY(o->transpose(o, fy_f32(r->y), N, fy_f32(r->t0), C, N, C, 0)); /* back to [C, N] */
    return o->add(o, fy_f32(r->y), fy_f32(r->x), fy_f32(r->y), C * N);
}

static fy_status resample(kl_run *r, const kl_layer *l, kl_shape s)
{
    if (l->kind == KL_DOWN) {
        int64_t pad[4] = {0, 1, 0, 1};
        return conv(r, r->x, s, &l->w[0], r->y, 2, pad);
    }
    FY_TRY(r->m->ops->upsample_nearest2x(r->m->ops, fy_f32(r->x), fy_f32(r->t0), s.C, s.H, s.W));
    return conv_same(r, r->t0, (kl_shape){s.C, 2 * s.H, 2 * s.W}, &l->w[0], r->y);
}

static fy_status run_layer(kl_run *r, const kl_layer *l, kl_shape *s)
{
    const fy_tensor *w = NULL;
    FY_TRY(fy_engine_acquire(r->m->e, l->group, &w));
    kl_layer dev = *l;
    memcpy(dev.w, w, (size_t)l->nw * sizeof *w);
    fy_status st = l->kind == KL_RESNET ? resnet(r, &dev, *s)
                   : l->kind == KL_ATTN ? attention(r, &dev, *s)
                                        : resample(r, &dev, *s);
    fy_status rel = fy_engine_release(r->m->e, l->group);
    FY_TRY(st);
    FY_TRY(rel);
    float *t = r->x;
    r->x = r->y, r->y = t;
    *s = layer_out(l, *s);
    return FY_OK;
}

/* in (already uploaded, [in_ch, H, W]) through conv_in, the layers and the head into out. */
static fy_status run_part(kl_run *r, int64_t H, int64_t W)
{
    kl_part *p = r->p;
    const fy_tensor *w = NULL;
    kl_shape s = {p->in_ch, H, W};
    FY_TRY(fy_engine_acquire(r->m->e, p->in_group, &w));
    fy_status st = conv_same(r, r->in, s, w, r->x);
    fy_status rel = fy_engine_release(r->m->e, p->in_group);
    FY_TRY(st);
    FY_TRY(rel);
    s.C = p->mid_ch;
    for (int i = 0; i < p->n_layers; i++) FY_TRY(run_layer(r, &p->layers[i], &s));
    FY_TRY(fy_engine_acquire(r->m->e, p->out_group, &w));
    st = norm(r, r->x, s, &w[0], r->t0, true);
    if (st == FY_OK) st = conv_same(r, r->t0, s, &w[2], r->out);
    rel = fy_engine_release(r->m->e, p->out_group);
    FY_TRY(st);
    return rel;
}

/* One image or tile: host [in_ch, H, W] -> host out. */
static fy_status run_one(fy_vae_kl *m, kl_part *p, const float *host_in, int64_t H, int64_t W, float *host_out)
{
    if (!m->ops) FY_TRY(fy_engine_ops_create(m->e, m->threads, &m->ops));
    kl_run r = {.m = m, .p = p};
    kl_shape o = part_out(p, H, W);
    fy_status s = alloc_run(&r, H, W);
    if (s == FY_OK) s = fy_engine_upload(m->e, r.in, host_in, (size_t)(p->in_ch * H * W) * sizeof(float));
    if (s == FY_OK) s = run_part(&r, H, W);
    if (s == FY_OK) s = fy_engine_download(m->e, host_out, r.out, (size_t)elems(o) * sizeof(float));
    free_run(&r);
    return s;
}

/* ---- tiles (diffusers' tiled_decode / tiled_encode: blend_v, then blend_h, in place) ---------- */

typedef struct tile {
    float *px;
    int64_t h, w; /* pixels */
} tile;

static void blend_v(const tile *a, tile *b, int64_t C, int64_t extent)
{
    extent = a->h < extent ? a->h : extent;
    extent = b->h < extent ? b->h : extent;
    for (int64_t c = 0; c < C; c++)
        for (int64_t y = 0; y < extent; y++)
            for (int64_t x = 0; x < b->w && x < a->w; x++) {
                float *pb = b->px + (c * b->h + y) * b->w + x;
                const float *pa = a->px + (c * a->h + a->h - extent + y) * a->w + x;
                *pb = *pa * (1.0f - (float)y / (float)extent) + *pb * ((float)y / (float)extent);
            }
}

static void blend_h(const tile *a, tile *b, int64_t C, int64_t extent)
{
    extent = a->w < extent ? a->w : extent;
    extent = b->w < extent ? b->w : extent;
    for (int64_t c = 0; c < C; c++)
        for (int64_t y = 0; y < b->h && y < a->h; y++)
            for (int64_t x = 0; x < extent; x++) {
                float *pb = b->px + (c * b->h + y) * b->w + x;
                const float *pa = a->px + (c * a->h + y) * a->w + a->w - extent + x;
                *pb = *pa * (1.0f - (float)x / (float)extent) + *pb * ((float)x / (float)extent);
            }
}

/* The tile of the input [in_ch, h, w] at (y0, x0), th x tw, through part p on its own. */
static fy_status run_tile(fy_vae_kl *m, kl_part *p, const float *in, int64_t h, int64_t w, int64_t y0, int64_t x0,
                          int64_t th, int64_t tw, tile *t)
{
    int64_t C = p->in_ch;
    kl_shape o = part_out(p, th, tw);
    float *sub = malloc((size_t)(C * th * tw) * sizeof(float));
    t->h = o.H, t->w = o.W;
    t->px = malloc((size_t)elems(o) * sizeof(float));
    if (!sub || !t->px) {
        free(sub);
        return fy_error(FY_ERR_NOMEM, "VAE: out of memory");
    }
    for (int64_t c = 0; c < C; c++)
        for (int64_t y = 0; y < th; y++)
            memcpy(sub + (c * th + y) * tw, in + (c * h + y0 + y) * w + x0, (size_t)tw * sizeof(float));
    fy_status s = run_one(m, p, sub, th, tw, t->px);
    free(sub);
    return s;
}

/* diffusers' tiled_decode and tiled_encode: input tiles of T x T every S
 * (input pixels), each run on its own; their outputs (scaled by num / den)
 * blended with the tile above and to the left over (T - S) num / den rows
 * and columns, and S num / den of each kept. */
typedef struct tiled_geom {
    int64_t T, S, num, den;
} tiled_geom;

static fy_status run_tiled(fy_vae_kl *m, kl_part *p, const float *in, int64_t h, int64_t w, tiled_geom g, float *out)
{
    int64_t C = p->out_ch, blend = (g.T - g.S) * g.num / g.den, limit = g.S * g.num / g.den;
    int64_t rows = (h + g.S - 1) / g.S, cols = (w + g.S - 1) / g.S;
    kl_shape whole = part_out(p, h, w);
    tile *tiles = calloc((size_t)(rows * cols), sizeof *tiles);
    fy_status s = tiles ? FY_OK : fy_error(FY_ERR_NOMEM, "VAE: out of memory");
    for (int64_t i = 0; s == FY_OK && i < rows; i++)
        for (int64_t j = 0; s == FY_OK && j < cols; j++) {
            int64_t y0 = i * g.S, x0 = j * g.S;
            s = run_tile(m, p, in, h, w, y0, x0, h - y0 < g.T ? h - y0 : g.T, w - x0 < g.T ? w - x0 : g.T,
                         &tiles[i * cols + j]);
        }
    int64_t H = whole.H, W = whole.W;
    for (int64_t i = 0; s == FY_OK && i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            tile *t = &tiles[i * cols + j];
            if (i > 0) blend_v(&tiles[(i - 1) * cols + j], t, C, blend);
            if (j > 0) blend_h(&tiles[i * cols + j - 1], t, C, blend);
            int64_t py = i * limit, px = j * limit;
            for (int64_t c = 0; c < C; c++)
                for (int64_t y = 0; y < limit && y < t->h && py + y < H; y++)
                    for (int64_t x = 0; x < limit && x < t->w && px + x < W; x++)
                        out[(c * H + py + y) * W + px + x] = t->px[(c * t->h + y) * t->w + x];
        }
    for (int64_t i = 0; tiles && i < rows * cols; i++) free(tiles[i].px);
    free(tiles);
    return s;
}

static fy_status check_tiling(const fy_vae_kl_tiling *t)
{
    if (t->stride_latent < 1 || t->stride_latent > t->tile_latent)
        return fy_error(FY_ERR_INVALID, "VAE tiling: stride %lld must be within 1..tile %lld (latent pixels)",
                        (long long)t->stride_latent, (long long)t->tile_latent);
    return FY_OK;
}

fy_status fy_vae_kl_decode(fy_vae_kl *m, const float *latents, int64_t B, int64_t h, int64_t w,
                           const fy_vae_kl_tiling *tiling, float *image)
{
    if (!m || !latents || !image || B < 1 || h < 1 || w < 1 || !(m->parts & FY_VAE_KL_DECODER))
        return fy_error(FY_ERR_INVALID, "VAE decode: bad arguments (or the decoder was not loaded)");
    int64_t zc = m->cfg.latent_channels, up = fy_vae_kl_upscale(m), out = m->cfg.out_channels * h * up * w * up;
    bool tiled = tiling && tiling->tile_latent > 0 && (h > tiling->tile_latent || w > tiling->tile_latent);
    if (tiled) FY_TRY(check_tiling(tiling));
    tiled_geom g = tiled ? (tiled_geom){tiling->tile_latent, tiling->stride_latent, up, 1} : (tiled_geom){0, 0, 1, 1};
    for (int64_t b = 0; b < B; b++) {
        const float *lat = latents + b * zc * h * w;
        FY_TRY(tiled ? run_tiled(m, &m->dec, lat, h, w, g, image + b * out)
                     : run_one(m, &m->dec, lat, h, w, image + b * out));
    }
    return FY_OK;
}

fy_status fy_vae_kl_encode(fy_vae_kl *m, const float *image, int64_t B, int64_t H, int64_t W,
                           const fy_vae_kl_tiling *tiling, float *moments)
{
    if (!m || !image || !moments || B < 1 || H < 1 || W < 1 || !(m->parts & FY_VAE_KL_ENCODER))
        return fy_error(FY_ERR_INVALID, "VAE encode: bad arguments (or the encoder was not loaded)");
    int64_t up = fy_vae_kl_upscale(m), T = tiling ? tiling->tile_latent * up : 0;
    bool tiled = T > 0 && (H > T || W > T);
    if (tiled) FY_TRY(check_tiling(tiling));
    tiled_geom g = tiled ? (tiled_geom){T, tiling->stride_latent * up, 1, up} : (tiled_geom){0, 0, 1, 1};
    kl_shape o = part_out(&m->enc, H, W);
    int64_t in = m->cfg.in_channels * H * W, half = elems(o) / 2;
    for (int64_t b = 0; b < B; b++) {
        float *mo = moments + b * elems(o);
        FY_TRY(tiled ? run_tiled(m, &m->enc, image + b * in, H, W, g, mo) : run_one(m, &m->enc, image + b * in, H, W, mo));
        /* The posterior clamps the log-variance after the tiles are blended. */
        for (int64_t i = half; i < 2 * half; i++) mo[i] = mo[i] < -30.0f ? -30.0f : mo[i] > 20.0f ? 20.0f : mo[i];
    }
    return FY_OK;
}
