/* Decode and encode drivers: latent frame by latent frame (decoder), frame 0
 * then chunks of 4 (encoder), batch slices, spatial tiles with diffusers'
 * blending, and the dry runs that measure their device memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/log.h"
#include "models/wan_vae_internal.h"

#define ENCODE_CHUNK 4 /* diffusers' _encode: frame 0, then 4 frames at a time */

static fy_status run_begin(fy_wan_vae *m, bool dry, bool slicing, const fy_wan_vae_tiling *t, vae_run *r)
{
    *r = (vae_run){.m = m, .e = m->e, .dry = dry, .slicing = slicing};
    if (t) r->tiling = *t;
    if (dry) return FY_OK;
    if (!m->ops) FY_TRY(fy_engine_ops_create(m->e, m->threads, &m->ops));
    r->ops = m->ops;
    return FY_OK;
}

static fy_status acquire(vae_run *r, int group, const fy_tensor *host, const fy_tensor **W)
{
    if (r->dry) {
        *W = host;
        return FY_OK;
    }
    return fy_engine_acquire(r->e, group, W);
}

static fy_status release(vae_run *r, int group, fy_status st)
{
    if (r->dry) return st;
    fy_status s = fy_engine_release(r->e, group);
    return st != FY_OK ? st : s;
}

/* x = f(x) for a plain or causal convolution. */
static fy_status conv_step(vae_run *r, const vae_conv *cv, const fy_tensor *W, vae_act *x, bool causal)
{
    vae_act y = {0};
    fy_status st = causal ? vae_conv_causal(r, cv, W, x, &y) : vae_conv_plain(r, cv, W, x, &y);
    vae_release(r, x);
    *x = y;
    return st;
}

static fy_status run_layers(vae_run *r, const vae_part *p, vae_act *x)
{
    for (int i = 0; i < p->n_layers; i++) {
        const vae_layer *l = &p->layers[i];
        const fy_tensor *W = NULL;
        FY_TRY(acquire(r, l->group, l->w, &W));
        FY_TRY(release(r, l->group, vae_layer_forward(r, l, W, x)));
    }
    return FY_OK;
}

/* One latent frame [n, z, 1, h, w] -> decoded frames [n, out, T, H, W]. */
static fy_status decode_frame(vae_run *r, vae_act *x)
{
    const vae_part *p = &r->m->dec;
    const fy_tensor *W = NULL;
    FY_TRY(acquire(r, p->in.group, p->in.w, &W));
    fy_status st = conv_step(r, &p->pre, W, x, false);
    if (st == FY_OK) st = conv_step(r, &p->conv_in, W, x, true);
    FY_TRY(release(r, p->in.group, st));
    FY_TRY(run_layers(r, p, x));
    FY_TRY(acquire(r, p->out.group, p->out.w, &W));
    st = vae_norm_silu(r, &W[p->norm_out], x, true);
    if (st == FY_OK) st = conv_step(r, &p->conv_out, W, x, true);
    return release(r, p->out.group, st);
}

/* One chunk of frames [n, in, T, H, W] -> moments [n, 2z, t, h, w]. */
static fy_status encode_chunk(vae_run *r, vae_act *x)
{
    const vae_part *p = &r->m->enc;
    const fy_tensor *W = NULL;
    FY_TRY(acquire(r, p->in.group, p->in.w, &W));
    FY_TRY(release(r, p->in.group, conv_step(r, &p->conv_in, W, x, true)));
    FY_TRY(run_layers(r, p, x));
    FY_TRY(acquire(r, p->out.group, p->out.w, &W));
    fy_status st = vae_norm_silu(r, &W[p->norm_out], x, true);
    if (st == FY_OK) st = conv_step(r, &p->conv_out, W, x, true);
    if (st == FY_OK) st = conv_step(r, &p->post, W, x, false);
    return release(r, p->out.group, st);
}

/* ---- host <-> device for a window of a [B, C, T, H, W] array ---------------------- */

typedef struct window {
    const int64_t *shape;  /* the host array's [B, C, T, H, W] */
    int64_t b0, t0, r0, c0; /* first batch item, frame, row, column */
} window;

static fy_status upload_window(vae_run *r, const window *wd, const float *host, vae_act *x, float *stage)
{
    if (r->dry) return FY_OK;
    const int64_t *s = wd->shape;
    float *d = stage;
    for (int64_t n = 0; n < x->n; n++)
        for (int64_t c = 0; c < x->c; c++)
            for (int64_t t = 0; t < x->t; t++)
                for (int64_t i = 0; i < x->h; i++) {
                    const float *src = host + ((((wd->b0 + n) * s[1] + c) * s[2] + wd->t0 + t) * s[3] + wd->r0 + i) * s[4] + wd->c0;
                    memcpy(d, src, (size_t)x->w * sizeof(float));
                    d += x->w;
                }
    return fy_engine_upload(r->e, x->d, stage, (size_t)vae_numel(x) * sizeof(float));
}

static fy_status download_window(vae_run *r, const window *wd, const vae_act *x, float *host, float *stage)
{
    if (r->dry) return FY_OK;
    FY_TRY(fy_engine_download(r->e, stage, x->d, (size_t)vae_numel(x) * sizeof(float)));
    const int64_t *s = wd->shape;
    const float *d = stage;
    for (int64_t n = 0; n < x->n; n++)
        for (int64_t c = 0; c < x->c; c++)
            for (int64_t t = 0; t < x->t; t++)
                for (int64_t i = 0; i < x->h; i++) {
                    float *dst = host + ((((wd->b0 + n) * s[1] + c) * s[2] + wd->t0 + t) * s[3] + wd->r0 + i) * s[4] + wd->c0;
                    memcpy(dst, d, (size_t)x->w * sizeof(float));
                    d += x->w;
                }
    return FY_OK;
}

/* ---- shapes ------------------------------------------------------------------------ */

static int count_kind(const vae_part *p, vae_kind a, vae_kind b)
{
    int n = 0;
    for (int i = 0; i < p->n_layers; i++) n += p->layers[i].kind == a || p->layers[i].kind == b;
    return n;
}

static fy_status check_shape(const int64_t *s, const char *what)
{
    for (int i = 0; i < 5; i++)
        if (s[i] < 1 || s[i] > (int64_t)1 << 24) return fy_error(FY_ERR_INVALID, "vae: bad %s shape", what);
    return FY_OK;
}

static fy_status decoded_shape(const fy_wan_vae *m, const int64_t ls[5], int64_t vs[5])
{
    if (!m->dec.present) return fy_error(FY_ERR_INVALID, "vae: loaded without its decoder");
    FY_TRY(check_shape(ls, "latent"));
    if (ls[1] != m->cfg.z_dim)
        return fy_error(FY_ERR_INVALID, "vae: latents have %lld channels, z_dim is %lld", (long long)ls[1],
                        (long long)m->cfg.z_dim);
    int64_t up_t = (int64_t)1 << count_kind(&m->dec, VAE_UP3D, VAE_UP3D);
    int64_t up_s = (int64_t)1 << count_kind(&m->dec, VAE_UP2D, VAE_UP3D);
    vs[0] = ls[0], vs[1] = m->cfg.out_channels, vs[2] = 1 + (ls[2] - 1) * up_t;
    vs[3] = ls[3] * up_s, vs[4] = ls[4] * up_s;
    return FY_OK;
}

/* A stride-2 3x3 convolution after ZeroPad2d((0, 1, 0, 1)). */
static int64_t halve(int64_t v)
{
    return (v + 1 - 3) / 2 + 1;
}

static fy_status encoded_shape(const fy_wan_vae *m, const int64_t vs[5], int64_t ls[5])
{
    if (!m->enc.present) return fy_error(FY_ERR_INVALID, "vae: loaded without its encoder");
    FY_TRY(check_shape(vs, "video"));
    if (vs[1] != m->cfg.in_channels)
        return fy_error(FY_ERR_INVALID, "vae: the video has %lld channels, the encoder takes %lld", (long long)vs[1],
                        (long long)m->cfg.in_channels);
    int64_t t = ENCODE_CHUNK, h = vs[3], w = vs[4];
    for (int i = 0; i < m->enc.n_layers; i++) {
        vae_kind k = m->enc.layers[i].kind;
        if (k != VAE_DOWN2D && k != VAE_DOWN3D) continue;
        if (h < 2 || w < 2) return fy_error(FY_ERR_INVALID, "vae: video of %lldx%lld pixels is too small to encode",
                                            (long long)vs[3], (long long)vs[4]);
        h = halve(h), w = halve(w);
        if (k == VAE_DOWN3D) t = (t + 1 - 3) / 2 + 1;
    }
    ls[0] = vs[0], ls[1] = m->cfg.z_dim, ls[2] = 1 + (vs[2] - 1) / ENCODE_CHUNK * t, ls[3] = h, ls[4] = w;
    return FY_OK;
}

/* ---- decode ---------------------------------------------------------------------- */

typedef struct region {
    int64_t b0, nb, r0, th, c0, tw; /* batch items and latent rows / columns */
} region;

/* Decodes a region of the latents into out [nb, C, F, th r, tw r] (unclamped). */
static fy_status decode_region(vae_run *r, const int64_t *ls, const float *lat, const region *g, float *out)
{
    fy_wan_vae *m = r->m;
    int64_t vs[5];
    int64_t sub[5] = {g->nb, ls[1], ls[2], g->th, g->tw};
    FY_TRY(decoded_shape(m, sub, vs));
    int64_t up_t = ls[2] > 1 ? (vs[2] - 1) / (ls[2] - 1) : 1;
    float *in_stage = NULL, *out_stage = NULL;
    if (!r->dry) {
        in_stage = malloc((size_t)(g->nb * ls[1] * g->th * g->tw) * sizeof(float));
        out_stage = malloc((size_t)(vs[0] * vs[1] * up_t * vs[3] * vs[4]) * sizeof(float));
        if (!in_stage || !out_stage) {
            free(in_stage);
            free(out_stage);
            return fy_error(FY_ERR_NOMEM, "vae: out of memory for the staging buffers");
        }
    }
    fy_status st = vae_caches_begin(r, m->dec.n_caches);
    window in = {ls, g->b0, 0, g->r0, g->c0}, outw = {vs, 0, 0, 0, 0};
    for (int64_t k = 0; k < ls[2] && st == FY_OK; k++) {
        vae_act x = {0};
        in.t0 = k;
        r->first_chunk = k == 0;
        st = vae_alloc(r, &x, g->nb, ls[1], 1, g->th, g->tw, "vae latent frame");
        if (st == FY_OK) st = upload_window(r, &in, lat, &x, in_stage);
        if (st == FY_OK) st = decode_frame(r, &x);
        if (st == FY_OK) st = download_window(r, &outw, &x, out, out_stage);
        outw.t0 += x.t;
        vae_release(r, &x);
    }
    vae_caches_end(r);
    free(in_stage);
    free(out_stage);
    return st;
}

static void clamp_unit(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) x[i] = x[i] < -1.0f ? -1.0f : (x[i] > 1.0f ? 1.0f : x[i]);
}

/* diffusers' blend_v / blend_h: the first rows (columns) of b fade in from a's last. */
static void blend_rows(const float *a, int64_t ah, float *b, int64_t bh, int64_t w, int64_t planes, int64_t extent)
{
    extent = extent < ah ? extent : ah;
    extent = extent < bh ? extent : bh;
    for (int64_t p = 0; p < planes; p++)
        for (int64_t y = 0; y < extent; y++) {
            float wb = (float)((double)y / (double)extent), wa = (float)(1.0 - (double)y / (double)extent);
            const float *ra = a + (p * ah + ah - extent + y) * w;
            float *rb = b + (p * bh + y) * w;
            for (int64_t x = 0; x < w; x++) rb[x] = ra[x] * wa + rb[x] * wb;
        }
}

static void blend_cols(const float *a, int64_t aw, float *b, int64_t bw, int64_t rows, int64_t extent)
{
    extent = extent < aw ? extent : aw;
    extent = extent < bw ? extent : bw;
    for (int64_t x = 0; x < extent; x++) {
        float wb = (float)((double)x / (double)extent), wa = (float)(1.0 - (double)x / (double)extent);
        for (int64_t i = 0; i < rows; i++) b[i * bw + x] = a[i * aw + aw - extent + x] * wa + b[i * bw + x] * wb;
    }
}

typedef struct tile {
    float *d;      /* [nb, C, F, h, w] */
    int64_t h, w;  /* output units */
} tile;

typedef struct tile_grid {
    int64_t lh, lw, sh, sw;     /* tile and stride, input units */
    int64_t rows, cols;
    int64_t out_num, out_den;   /* output size = input size * num / den */
    int64_t blend_h, blend_w;   /* output units */
    int64_t crop_h, crop_w;     /* output units */
} tile_grid;

/* tiled_decode: latent tiles of tile / r every stride / r; blends and crops in pixels. */
static tile_grid decode_grid(const vae_run *run, const int64_t *ls)
{
    const fy_wan_vae_tiling *t = &run->tiling;
    int64_t r = run->m->cfg.spatial_ratio;
    tile_grid g = {t->tile_h / r, t->tile_w / r, t->stride_h / r, t->stride_w / r, 0, 0, r, 1,
                   t->tile_h - t->stride_h, t->tile_w - t->stride_w, t->stride_h, t->stride_w};
    if (g.sh > 0 && g.sw > 0) g.rows = (ls[3] + g.sh - 1) / g.sh, g.cols = (ls[4] + g.sw - 1) / g.sw;
    return g;
}

/* tiled_encode: pixel tiles; blends and crops in latent units. */
static tile_grid encode_grid(const vae_run *run, const int64_t *vs)
{
    const fy_wan_vae_tiling *t = &run->tiling;
    int64_t r = run->m->cfg.spatial_ratio;
    tile_grid g = {t->tile_h, t->tile_w, t->stride_h, t->stride_w, 0, 0, 1, r,
                   t->tile_h / r - t->stride_h / r, t->tile_w / r - t->stride_w / r, t->stride_h / r,
                   t->stride_w / r};
    if (g.sh > 0 && g.sw > 0) g.rows = (vs[3] + g.sh - 1) / g.sh, g.cols = (vs[4] + g.sw - 1) / g.sw;
    return g;
}

/* Blends tile (i, j) with its (already blended) upper and left neighbours and
 * writes its crop into video at (y0, x0). */
static void place_tile(const tile_grid *g, const tile *above, const tile *left, tile *t, int64_t planes,
                       float *video, const int64_t *vs, int64_t b0, int64_t y0, int64_t x0)
{
    if (above) blend_rows(above->d, above->h, t->d, t->h, t->w, planes, g->blend_h);
    if (left)
        for (int64_t p = 0; p < planes; p++)
            blend_cols(left->d + p * left->h * left->w, left->w, t->d + p * t->h * t->w, t->w, t->h, g->blend_w);
    int64_t ch = t->h < g->crop_h ? t->h : g->crop_h, cw = t->w < g->crop_w ? t->w : g->crop_w;
    if (y0 + ch > vs[3]) ch = vs[3] - y0;
    if (x0 + cw > vs[4]) cw = vs[4] - x0;
    int64_t per_item = vs[1] * vs[2];
    for (int64_t p = 0; p < planes && ch > 0 && cw > 0; p++) {
        int64_t n = p / per_item, rest = p % per_item;
        float *dst = video + ((b0 + n) * per_item + rest) * vs[3] * vs[4];
        for (int64_t y = 0; y < ch; y++)
            memcpy(dst + (y0 + y) * vs[4] + x0, t->d + (p * t->h + y) * t->w, (size_t)cw * sizeof(float));
    }
}

static void free_row(tile *row, int64_t n)
{
    for (int64_t j = 0; row && j < n; j++) free(row[j].d);
}

/* Encodes a region of the video (pixel rows / columns) into out [nb, 2z, T, h, w]. */
static fy_status encode_region(vae_run *r, const int64_t *vs, const float *video, const region *g, float *out)
{
    int64_t sub[5] = {g->nb, vs[1], vs[2], g->th, g->tw}, ls[5];
    FY_TRY(encoded_shape(r->m, sub, ls));
    int64_t ms[5] = {ls[0], 2 * ls[1], ls[2], ls[3], ls[4]};
    int64_t used = 1 + (vs[2] - 1) / ENCODE_CHUNK * ENCODE_CHUNK;
    float *in_stage = NULL, *out_stage = NULL;
    if (!r->dry) {
        in_stage = malloc((size_t)(g->nb * vs[1] * ENCODE_CHUNK * g->th * g->tw) * sizeof(float));
        out_stage = malloc((size_t)(g->nb * ms[1] * ms[2] * ms[3] * ms[4]) * sizeof(float));
        if (!in_stage || !out_stage) {
            free(in_stage);
            free(out_stage);
            return fy_error(FY_ERR_NOMEM, "vae: out of memory for the staging buffers");
        }
    }
    fy_status st = vae_caches_begin(r, r->m->enc.n_caches);
    window in = {vs, g->b0, 0, g->r0, g->c0}, outw = {ms, 0, 0, 0, 0};
    while (in.t0 < used && st == FY_OK) {
        int64_t frames = in.t0 == 0 ? 1 : ENCODE_CHUNK;
        vae_act x = {0};
        st = vae_alloc(r, &x, g->nb, vs[1], frames, g->th, g->tw, "vae video chunk");
        if (st == FY_OK) st = upload_window(r, &in, video, &x, in_stage);
        if (st == FY_OK) st = encode_chunk(r, &x);
        if (st == FY_OK) st = download_window(r, &outw, &x, out, out_stage);
        outw.t0 += x.t;
        in.t0 += frames;
        vae_release(r, &x);
    }
    vae_caches_end(r);
    free(in_stage);
    free(out_stage);
    return st;
}

typedef fy_status (*region_fn)(vae_run *r, const int64_t *in_shape, const float *in, const region *g, float *out);

/* A tiled pass: the input split as g says, each tile run by fn into a host
 * tile, blended with its upper and left neighbours (already blended, as
 * diffusers blends in place) and its crop written into out [.., os[3], os[4]].
 * in_shape and os are the whole input's and output's shapes. */
static fy_status run_tiled(vae_run *r, const tile_grid *g, const int64_t *in_shape, const float *in, int64_t b0,
                           int64_t nb, float *out, const int64_t *os, region_fn fn)
{
    int64_t planes = nb * os[1] * os[2];
    tile *prev = calloc((size_t)g->cols, sizeof *prev), *cur = calloc((size_t)g->cols, sizeof *cur);
    fy_status st = prev && cur ? FY_OK : fy_error(FY_ERR_NOMEM, "vae: out of memory for the tiles");
    int64_t y0 = 0;
    for (int64_t i = 0; i < g->rows && st == FY_OK; i++) {
        int64_t x0 = 0, row_h = 0;
        for (int64_t j = 0; j < g->cols && st == FY_OK; j++) {
            region rg = {b0, nb, i * g->sh, 0, j * g->sw, 0};
            rg.th = in_shape[3] - rg.r0 < g->lh ? in_shape[3] - rg.r0 : g->lh;
            rg.tw = in_shape[4] - rg.c0 < g->lw ? in_shape[4] - rg.c0 : g->lw;
            tile *t = &cur[j];
            t->h = rg.th * g->out_num / g->out_den, t->w = rg.tw * g->out_num / g->out_den;
            if (!r->dry) {
                t->d = malloc((size_t)(planes * t->h * t->w) * sizeof(float));
                if (!t->d) st = fy_error(FY_ERR_NOMEM, "vae: out of memory for a tile");
            }
            if (st == FY_OK) st = fn(r, in_shape, in, &rg, t->d);
            if (st == FY_OK && !r->dry)
                place_tile(g, i > 0 ? &prev[j] : NULL, j > 0 ? &cur[j - 1] : NULL, t, planes, out, os, b0, y0, x0);
            x0 += t->w < g->crop_w ? t->w : g->crop_w;
            row_h = t->h < g->crop_h ? t->h : g->crop_h;
        }
        y0 += row_h;
        free_row(prev, g->cols);
        tile *swap = prev;
        prev = cur;
        cur = swap;
        if (cur) memset(cur, 0, (size_t)g->cols * sizeof *cur);
    }
    free_row(prev, g->cols);
    free_row(cur, g->cols);
    free(prev);
    free(cur);
    return st;
}

static bool use_tiles(const fy_wan_vae *m, const fy_wan_vae_tiling *t, const int64_t *ls)
{
    int64_t r = m->cfg.spatial_ratio;
    return t->enabled && (ls[4] > t->tile_w / r || ls[3] > t->tile_h / r);
}

static fy_status decode_all(vae_run *r, const int64_t *ls, const float *lat, float *video)
{
    int64_t vs[5];
    FY_TRY(decoded_shape(r->m, ls, vs));
    int64_t nb = r->slicing ? 1 : ls[0];
    tile_grid g = decode_grid(r, ls);
    for (int64_t b0 = 0; b0 < ls[0]; b0 += nb) {
        if (use_tiles(r->m, &r->tiling, ls)) {
            FY_TRY(run_tiled(r, &g, ls, lat, b0, nb, video, vs, decode_region));
            continue;
        }
        region whole = {b0, nb, 0, ls[3], 0, ls[4]};
        FY_TRY(decode_region(r, ls, lat, &whole, video ? video + b0 * vs[1] * vs[2] * vs[3] * vs[4] : NULL));
    }
    if (video) clamp_unit(video, vs[0] * vs[1] * vs[2] * vs[3] * vs[4]);
    return FY_OK;
}

/* ---- encode ------------------------------------------------------------------------ */

/* diffusers' _encode, or tiled_encode when the frame is larger than a tile. */
static fy_status encode_all(vae_run *r, const int64_t *vs, const float *video, float *moments)
{
    int64_t ls[5];
    FY_TRY(encoded_shape(r->m, vs, ls));
    int64_t ms[5] = {ls[0], 2 * ls[1], ls[2], ls[3], ls[4]};
    int64_t nb = r->slicing ? 1 : vs[0];
    const fy_wan_vae_tiling *t = &r->tiling;
    bool tiled = t->enabled && (vs[4] > t->tile_w || vs[3] > t->tile_h);
    tile_grid g = encode_grid(r, vs);
    for (int64_t b0 = 0; b0 < vs[0]; b0 += nb) {
        if (tiled) {
            FY_TRY(run_tiled(r, &g, vs, video, b0, nb, moments, ms, encode_region));
            continue;
        }
        region whole = {b0, nb, 0, vs[3], 0, vs[4]};
        FY_TRY(encode_region(r, vs, video, &whole, moments ? moments + b0 * ms[1] * ms[2] * ms[3] * ms[4] : NULL));
    }
    return FY_OK;
}

/* DiagonalGaussianDistribution: mean, logvar = moments.chunk(2, dim=1); logvar clamped. */
static void split_moments(const int64_t *ls, const float *moments, float *mean, float *logvar)
{
    int64_t half = ls[1] * ls[2] * ls[3] * ls[4];
    for (int64_t b = 0; b < ls[0]; b++) {
        const float *src = moments + b * 2 * half;
        if (mean) memcpy(mean + b * half, src, (size_t)half * sizeof(float));
        if (!logvar) continue;
        for (int64_t i = 0; i < half; i++) {
            float v = src[half + i];
            logvar[b * half + i] = v < -30.0f ? -30.0f : (v > 20.0f ? 20.0f : v);
        }
    }
}

static fy_status tiling_of(const fy_wan_vae *m, const fy_run_options *o, fy_wan_vae_tiling *t)
{
    *t = (fy_wan_vae_tiling){o->vae_tiling, o->vae_tile[0], o->vae_tile[1], o->vae_tile_stride[0],
                             o->vae_tile_stride[1]};
    int64_t r = m->cfg.spatial_ratio;
    if (t->tile_h < r || t->tile_w < r || t->stride_h < r || t->stride_w < r || t->stride_h > t->tile_h ||
        t->stride_w > t->tile_w)
        return fy_error(FY_ERR_INVALID,
                        "--vae-tile %lldx%lld / --vae-tile-stride %lldx%lld: tiles and strides must be at least %lld "
                        "pixels, strides no larger than tiles",
                        (long long)t->tile_h, (long long)t->tile_w, (long long)t->stride_h, (long long)t->stride_w,
                        (long long)r);
    return FY_OK;
}

static uint64_t encode_bytes(const fy_wan_vae *m, const int64_t *vs, bool slicing, const fy_wan_vae_tiling *t)
{
    vae_run r;
    if (run_begin((fy_wan_vae *)m, true, slicing, t, &r) != FY_OK || encode_all(&r, vs, NULL, NULL) != FY_OK)
        return 0;
    return r.peak + fy_engine_ops_scratch_bound(m->e, true);
}

static uint64_t decode_bytes(const fy_wan_vae *m, const int64_t *ls, bool slicing, const fy_wan_vae_tiling *t)
{
    vae_run r;
    if (run_begin((fy_wan_vae *)m, true, slicing, t, &r) != FY_OK || decode_all(&r, ls, NULL, NULL) != FY_OK)
        return 0;
    return r.peak + fy_engine_ops_scratch_bound(m->e, true);
}

/* ---- the public entry points ------------------------------------------------------ */

static void latent_dims(const fy_wan_vae *m, const fy_wan_vae_decode_shape *s, int64_t ls[5])
{
    ls[0] = s->batch, ls[1] = m->cfg.z_dim, ls[2] = s->frames, ls[3] = s->height, ls[4] = s->width;
}

/* The encoder's input: the video's pixels folded into patches (Wan2.2). */
static fy_status video_dims(const fy_wan_vae *m, const fy_wan_vae_encode_shape *s, int64_t vs[5])
{
    int64_t p = m->cfg.patch_size;
    vs[0] = s->batch, vs[1] = m->cfg.in_channels, vs[2] = s->frames, vs[3] = s->height / p, vs[4] = s->width / p;
    if (s->height % p || s->width % p)
        return fy_error(FY_ERR_INVALID, "vae: a video of %lldx%lld pixels is not made of %lldx%lld patches",
                        (long long)s->height, (long long)s->width, (long long)p, (long long)p);
    return FY_OK;
}

/* The decoder's output (patches) as the video it unfolds to. */
static void unfolded_dims(const fy_wan_vae *m, const int64_t ps[5], int64_t vs[5])
{
    int64_t p = m->cfg.patch_size;
    vs[0] = ps[0], vs[1] = ps[1] / (p * p), vs[2] = ps[2], vs[3] = ps[3] * p, vs[4] = ps[4] * p;
}

fy_status fy_wan_vae_decode_output_shape(const fy_wan_vae *m, const fy_wan_vae_decode_shape *s, int64_t out[5])
{
    int64_t ls[5], ps[5];
    latent_dims(m, s, ls);
    FY_TRY(decoded_shape(m, ls, ps));
    unfolded_dims(m, ps, out);
    return FY_OK;
}

fy_status fy_wan_vae_encode_output_shape(const fy_wan_vae *m, const fy_wan_vae_encode_shape *s, int64_t out[5])
{
    int64_t vs[5];
    FY_TRY(video_dims(m, s, vs));
    return encoded_shape(m, vs, out);
}

typedef struct tiling_choice {
    fy_wan_vae_tiling t;
    bool automatic;         /* turned on because the untiled decode does not fit */
    uint64_t untiled, left; /* its activations, what the budget leaves beside the weights */
} tiling_choice;

/* The tighter of the pool's budget (--max-memory) and the planner's
 * (--vram-budget SIZE, or what auto found once the engine is prepared). */
static uint64_t effective_budget(const fy_wan_vae *m, const fy_run_options *o)
{
    const fy_engine_stats *s = fy_engine_stats_get(m->e);
    uint64_t budget = s->device_budget;
    uint64_t planner = o->vram_budget ? o->vram_budget : s->vram_budget;
    if (planner && (!budget || planner < budget)) budget = planner;
    return budget;
}

/* --vae-tiling, or automatic tiling when the untiled decode would not fit. */
static fy_status choose_tiling(const fy_wan_vae *m, const int64_t *ls, const fy_run_options *o, tiling_choice *c)
{
    *c = (tiling_choice){0};
    FY_TRY(tiling_of(m, o, &c->t));
    uint64_t budget = effective_budget(m, o);
    if (c->t.enabled || !budget || !use_tiles(m, &(fy_wan_vae_tiling){true, c->t.tile_h, c->t.tile_w, 0, 0}, ls))
        return FY_OK;
    fy_plan plan;
    FY_TRY(fy_engine_evaluate_plan(m->e, o, &plan));
    uint64_t weights = plan.device_bound - plan.activation_bytes;
    c->untiled = decode_bytes(m, ls, o->vae_slicing, &c->t);
    c->left = budget > weights ? budget - weights : 0;
    if (c->untiled && c->untiled <= c->left) return FY_OK;
    c->t.enabled = c->automatic = true;
    return FY_OK;
}

/* The same for an encode (the image-to-video condition video): tiles when
 * the frame is larger than a tile and the untiled encode does not fit. */
static fy_status choose_encode_tiling(const fy_wan_vae *m, const int64_t *vs, const fy_run_options *o,
                                      tiling_choice *c)
{
    *c = (tiling_choice){0};
    FY_TRY(tiling_of(m, o, &c->t));
    uint64_t budget = effective_budget(m, o);
    if (c->t.enabled || !budget || (vs[4] <= c->t.tile_w && vs[3] <= c->t.tile_h)) return FY_OK;
    fy_plan plan;
    FY_TRY(fy_engine_evaluate_plan(m->e, o, &plan));
    uint64_t weights = plan.device_bound - plan.activation_bytes;
    c->untiled = encode_bytes(m, vs, o->vae_slicing, &c->t);
    c->left = budget > weights ? budget - weights : 0;
    if (c->untiled && c->untiled <= c->left) return FY_OK;
    c->t.enabled = c->automatic = true;
    return FY_OK;
}

bool fy_wan_vae_decode_uses_tiles(const fy_wan_vae *m, const fy_wan_vae_decode_shape *s, const fy_run_options *o)
{
    int64_t ls[5], vs[5];
    tiling_choice c;
    latent_dims(m, s, ls);
    if (decoded_shape(m, ls, vs) != FY_OK || choose_tiling(m, ls, o, &c) != FY_OK) return false;
    return use_tiles(m, &c.t, ls);
}

uint64_t fy_wan_vae_decode_activation_bytes(const fy_wan_vae *m, const fy_wan_vae_decode_shape *s,
                                            const fy_run_options *o)
{
    int64_t ls[5], vs[5];
    tiling_choice c;
    latent_dims(m, s, ls);
    if (decoded_shape(m, ls, vs) != FY_OK || choose_tiling(m, ls, o, &c) != FY_OK) return 0;
    return decode_bytes(m, ls, o->vae_slicing, &c.t);
}

uint64_t fy_wan_vae_encode_activation_bytes(const fy_wan_vae *m, const fy_wan_vae_encode_shape *s,
                                            const fy_run_options *o)
{
    int64_t vs[5], ls[5];
    tiling_choice c;
    if (video_dims(m, s, vs) != FY_OK || encoded_shape(m, vs, ls) != FY_OK ||
        choose_encode_tiling(m, vs, o, &c) != FY_OK)
        return 0;
    return encode_bytes(m, vs, o->vae_slicing, &c.t);
}

static double mib(uint64_t b)
{
    return (double)b / (1024.0 * 1024.0);
}

fy_status fy_wan_vae_decode(fy_wan_vae *m, const fy_wan_vae_decode_shape *s, const float *latents,
                            const fy_run_options *o, float *video)
{
    if (!m || !s || !latents || !o || !video) return fy_error(FY_ERR_INVALID, "fy_wan_vae_decode: NULL argument");
    int64_t ls[5], vs[5];
    tiling_choice c;
    latent_dims(m, s, ls);
    FY_TRY(decoded_shape(m, ls, vs));
    FY_TRY(choose_tiling(m, ls, o, &c));
    if (c.automatic)
        fy_info("vae: decoding %lldx%lld pixels untiled needs %.1f MiB of activations, but the device budget leaves "
                "%.1f MiB beside the weights: decoding in %lldx%lld-pixel tiles at stride %lldx%lld",
                (long long)vs[3], (long long)vs[4], mib(c.untiled), mib(c.left), (long long)c.t.tile_h,
                (long long)c.t.tile_w, (long long)c.t.stride_h, (long long)c.t.stride_w);
    vae_run r;
    FY_TRY(run_begin(m, false, o->vae_slicing, &c.t, &r));
    int64_t p = m->cfg.patch_size;
    if (p == 1) return decode_all(&r, ls, latents, video);
    float *patches = malloc((size_t)(vs[0] * vs[1] * vs[2] * vs[3] * vs[4]) * sizeof(float));
    if (!patches) return fy_error(FY_ERR_NOMEM, "vae: out of memory for the decoded patches");
    fy_status st = decode_all(&r, ls, latents, patches);
    if (st == FY_OK) vae22_unpatchify(patches, vs, p, video);
    free(patches);
    return st;
}

fy_status fy_wan_vae_encode(fy_wan_vae *m, const fy_wan_vae_encode_shape *s, const float *video,
                            const fy_run_options *o, float *moments, float *mean, float *logvar)
{
    if (!m || !s || !video || !o || !moments) return fy_error(FY_ERR_INVALID, "fy_wan_vae_encode: NULL argument");
    int64_t vs[5], ls[5];
    tiling_choice c;
    FY_TRY(video_dims(m, s, vs));
    FY_TRY(encoded_shape(m, vs, ls));
    FY_TRY(choose_encode_tiling(m, vs, o, &c));
    if (c.automatic)
        fy_info("vae: encoding %lldx%lld pixels untiled needs %.1f MiB of activations, but the device budget leaves "
                "%.1f MiB beside the weights: encoding in %lldx%lld-pixel tiles at stride %lldx%lld",
                (long long)vs[3], (long long)vs[4], mib(c.untiled), mib(c.left), (long long)c.t.tile_h,
                (long long)c.t.tile_w, (long long)c.t.stride_h, (long long)c.t.stride_w);
    vae_run r;
    FY_TRY(run_begin(m, false, o->vae_slicing, &c.t, &r));
    int64_t p = m->cfg.patch_size;
    float *patches = NULL;
    if (p > 1) {
        int64_t pixels[5] = {s->batch, m->cfg.video_channels, s->frames, s->height, s->width};
        patches = malloc((size_t)(vs[0] * vs[1] * vs[2] * vs[3] * vs[4]) * sizeof(float));
        if (!patches) return fy_error(FY_ERR_NOMEM, "vae: out of memory for the video's patches");
        vae22_patchify(video, pixels, p, patches);
    }
    fy_status st = encode_all(&r, vs, patches ? patches : video, moments);
    free(patches);
    FY_TRY(st);
    split_moments(ls, moments, mean, logvar);
    return FY_OK;
}
