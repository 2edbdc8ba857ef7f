/* Wan2.2's VAE on top of the Wan VAE's layers: the residual down blocks
 * (WanResidualDownBlock: residual blocks, a downsampler, and the block input
 * folded by AvgDown3D added to the output), the residual up blocks
 * (WanResidualUpBlock: residual blocks, an upsampler that keeps the width,
 * and the input unfolded by DupUp3D added), and patchify / unpatchify. */
#include <string.h>

#include "models/wan_vae_internal.h"

/* ---- blocks ------------------------------------------------------------------ */

static fy_status shortcut_def(const fy_wan_vae *m, vae_shortcut_kind kind, int64_t c_in, int64_t c_out,
                              int64_t ft, int64_t fs, vae_shortcut *out)
{
    int64_t factor = ft * fs * fs;
    bool ok = kind == VAE_SC_AVG_DOWN ? (c_in * factor) % c_out == 0 : (c_out * factor) % c_in == 0;
    if (!ok)
        return fy_error(FY_ERR_UNSUPPORTED, "%s: a residual block from %lld to %lld channels has no shortcut",
                        fy_config_path(m->c->config), (long long)c_in, (long long)c_out);
    *out = (vae_shortcut){kind, c_in, c_out, ft, fs};
    return FY_OK;
}

fy_status vae22_add_up_blocks(fy_wan_vae *m, vae_part *p, const int64_t *dims)
{
    const fy_wan_vae_config *k = &m->cfg;
    int L = k->n_levels;
    char name[128];
    for (int i = 0; i < L; i++) {
        int64_t cur = dims[i], out = dims[i + 1];
        int first = p->n_layers;
        bool up = i != L - 1, temporal = up && k->temperal_downsample[L - 2 - i]; /* temperal_upsample reversed */
        for (int64_t j = 0; j <= k->num_res_blocks; j++) {
            snprintf(name, sizeof name, "decoder.up_blocks.%d.resnets.%lld", i, (long long)j);
            FY_TRY(vae_add_resnet(m->c, p, name, cur, out));
            cur = out;
        }
        if (!up) break; /* the last block has no upsampler and no shortcut */
        snprintf(name, sizeof name, "decoder.up_blocks.%d.upsampler", i);
        FY_TRY(vae_add_resample(m->c, p, name, temporal ? VAE_UP3D : VAE_UP2D, out, out));
        p->layers[first].skip_in = true;
        FY_TRY(shortcut_def(m, VAE_SC_DUP_UP, dims[i], out, temporal ? 2 : 1, 2,
                            &p->layers[p->n_layers - 1].shortcut));
    }
    return FY_OK;
}

fy_status vae22_add_down_blocks(fy_wan_vae *m, vae_part *p, const int64_t *dims)
{
    const fy_wan_vae_config *k = &m->cfg;
    int L = k->n_levels;
    char name[128];
    for (int i = 0; i < L; i++) {
        int64_t cur = dims[i], out = dims[i + 1];
        int first = p->n_layers;
        bool down = i != L - 1, temporal = down && k->temperal_downsample[i];
        for (int64_t j = 0; j < k->num_res_blocks; j++) {
            snprintf(name, sizeof name, "encoder.down_blocks.%d.resnets.%lld", i, (long long)j);
            FY_TRY(vae_add_resnet(m->c, p, name, cur, out));
            cur = out;
        }
        if (down) {
            snprintf(name, sizeof name, "encoder.down_blocks.%d.downsampler", i);
            FY_TRY(vae_add_resample(m->c, p, name, temporal ? VAE_DOWN3D : VAE_DOWN2D, out, out));
        }
        /* the last block's shortcut is the identity: its input is still added */
        p->layers[first].skip_in = true;
        FY_TRY(shortcut_def(m, VAE_SC_AVG_DOWN, dims[i], out, temporal ? 2 : 1, down ? 2 : 1,
                            &p->layers[p->n_layers - 1].shortcut));
    }
    return FY_OK;
}

/* ---- shortcuts --------------------------------------------------------------- */

fy_status vae22_skip_keep(vae_run *r, const vae_act *x)
{
    vae_release(r, &r->skip);
    FY_TRY(vae_alloc(r, &r->skip, x->n, x->c, x->t, x->h, x->w, "vae block input"));
    if (r->dry) return FY_OK;
    return r->ops->copy(r->ops, r->skip.d, x->d, (size_t)vae_numel(x) * sizeof(float));
}

/* s [n, c, T, H, W], zero-padded in front to a multiple of factor_t frames
 * (AvgDown3D's F.pad). The pad frames are made as 0 * a frame of s: the ops
 * have no fill, and the values are finite wherever the result is. */
static fy_status pad_front(vae_run *r, const vae_act *s, int64_t pad, vae_act *out)
{
    FY_TRY(vae_alloc(r, out, s->n, s->c, s->t + pad, s->h, s->w, "vae shortcut"));
    if (r->dry) return FY_OK;
    size_t plane = (size_t)(s->h * s->w) * sizeof(float);
    for (int64_t j = 0; j < pad; j++)
        FY_TRY(r->ops->copy2d(r->ops, out->d + j * s->h * s->w, (size_t)out->t * plane, s->d, (size_t)s->t * plane,
                              plane, (size_t)(s->n * s->c)));
    for (int64_t j = 0; j < pad; j++)
        for (int64_t q = 0; q < s->n * s->c; q++) {
            float *f = out->d + (q * out->t + j) * s->h * s->w;
            FY_TRY(r->ops->scale(r->ops, fy_f32(f), 0.0f, fy_f32(f), s->h * s->w));
        }
    return r->ops->copy2d(r->ops, out->d + pad * s->h * s->w, (size_t)out->t * plane, s->d, (size_t)s->t * plane,
                          (size_t)s->t * plane, (size_t)(s->n * s->c));
}

/* AvgDown3D: view [n, C, T', ft, H', fs, W', fs], sub-positions into the
 * channels in (t, h, w) order, then the mean of each group of consecutive
 * channels; added to x [n, c_out, T', H', W']. */
static fy_status avg_down_add(vae_run *r, const vae_shortcut *sc, vae_act *x)
{
    const vae_act *s = &r->skip;
    int64_t ft = sc->factor_t, fs = sc->factor_s, pad = (ft - s->t % ft) % ft;
    int64_t to = (s->t + pad) / ft, ho = s->h / fs, wo = s->w / fs, S = to * ho * wo;
    int64_t group = sc->c_in * ft * fs * fs / sc->c_out;
    if (x->c != sc->c_out || x->t != to || x->h != ho || x->w != wo || s->h % fs || s->w % fs)
        return fy_error(FY_ERR_INTERNAL, "vae: a residual down block's shortcut does not match its output");
    vae_act padded = {0}, folded = {0}, mean = {0};
    const vae_act *src = s;
    fy_status st = FY_OK;
    if (pad > 0) {
        st = pad_front(r, s, pad, &padded);
        src = &padded;
    }
    if (st == FY_OK) st = vae_alloc(r, &folded, s->n, sc->c_in * ft * fs * fs, to, ho, wo, "vae shortcut");
    if (st == FY_OK) st = vae_alloc(r, &mean, s->n, sc->c_out, to, ho, wo, "vae shortcut");
    if (st == FY_OK && !r->dry) {
        int64_t shape[8] = {s->n * sc->c_in, to, ft, ho, fs, wo, fs, 1};
        int perm[8] = {0, 2, 4, 6, 1, 3, 5, 7};
        st = r->ops->permute(r->ops, fy_f32(folded.d), fy_f32(src->d), 8, shape, perm);
    }
    for (int64_t q = 0; q < s->n * sc->c_out && st == FY_OK && !r->dry; q++) {
        const float *g = folded.d + q * group * S;
        float *o = mean.d + q * S;
        st = r->ops->copy(r->ops, o, g, (size_t)S * sizeof(float));
        for (int64_t j = 1; j < group && st == FY_OK; j++)
            st = r->ops->add(r->ops, fy_f32(o), fy_f32(g + j * S), fy_f32(o), S);
    }
    if (st == FY_OK && !r->dry)
        st = r->ops->scale(r->ops, fy_f32(mean.d), (float)(1.0 / (double)group), fy_f32(mean.d), vae_numel(&mean));
    if (st == FY_OK && !r->dry) st = r->ops->add(r->ops, fy_f32(x->d), fy_f32(mean.d), fy_f32(x->d), vae_numel(x));
    vae_release(r, &mean);
    vae_release(r, &folded);
    vae_release(r, &padded);
    return st;
}

/* DupUp3D: each channel repeated, viewed [n, c_out, ft, fs, fs, T, H, W] and
 * unfolded into (t, h, w) sub-positions; the first latent frame drops the
 * first ft - 1 frames, as its upsampler does not double time. */
static fy_status dup_up_add(vae_run *r, const vae_shortcut *sc, vae_act *x)
{
    const vae_act *s = &r->skip;
    int64_t ft = sc->factor_t, fs = sc->factor_s, factor = ft * fs * fs, reps = sc->c_out * factor / sc->c_in;
    int64_t drop = r->first_chunk ? ft - 1 : 0, T = s->t * ft;
    if (x->c != sc->c_out || x->t != T - drop || x->h != s->h * fs || x->w != s->w * fs)
        return fy_error(FY_ERR_INTERNAL, "vae: a residual up block's shortcut does not match its output");
    vae_act rep = {0}, up = {0};
    fy_status st = vae_alloc(r, &rep, s->n, sc->c_in * reps, s->t, s->h, s->w, "vae shortcut");
    if (st == FY_OK) st = vae_alloc(r, &up, s->n, sc->c_out, T, x->h, x->w, "vae shortcut");
    size_t plane = (size_t)(s->t * s->h * s->w) * sizeof(float);
    for (int64_t j = 0; j < reps && st == FY_OK && !r->dry; j++)
        st = r->ops->copy2d(r->ops, rep.d + j * s->t * s->h * s->w, (size_t)reps * plane, s->d, plane, plane,
                            (size_t)(s->n * s->c));
    if (st == FY_OK && !r->dry) {
        int64_t shape[8] = {s->n * sc->c_out, ft, fs, fs, s->t, s->h, s->w, 1};
        int perm[8] = {0, 4, 1, 5, 2, 6, 3, 7};
        st = r->ops->permute(r->ops, fy_f32(up.d), fy_f32(rep.d), 8, shape, perm);
    }
    vae_release(r, &rep);
    int64_t per = x->t * x->h * x->w;
    for (int64_t q = 0; q < s->n * sc->c_out && st == FY_OK && !r->dry; q++) {
        float *o = x->d + q * per;
        st = r->ops->add(r->ops, fy_f32(o), fy_f32(up.d + (q * T + drop) * x->h * x->w), fy_f32(o), per);
    }
    vae_release(r, &up);
    return st;
}

fy_status vae22_skip_add(vae_run *r, const vae_shortcut *sc, vae_act *x)
{
    if (r->skip.n <= 0 || r->skip.c != sc->c_in)
        return fy_error(FY_ERR_INTERNAL, "vae: a residual block's shortcut has no input");
    fy_status st = sc->kind == VAE_SC_AVG_DOWN ? avg_down_add(r, sc, x) : dup_up_add(r, sc, x);
    vae_release(r, &r->skip);
    return st;
}

/* ---- patches ------------------------------------------------------------------ */

void vae22_patchify(const float *video, const int64_t vs[5], int64_t p, float *out)
{
    int64_t C = vs[1], F = vs[2], H = vs[3] / p, W = vs[4] / p;
    for (int64_t b = 0; b < vs[0]; b++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t a = 0; a < p; a++)         /* column offset: the slower index */
                for (int64_t e = 0; e < p; e++) {   /* row offset */
                    float *dst = out + (((b * C + c) * p + a) * p + e) * F * H * W;
                    const float *src = video + (b * C + c) * F * vs[3] * vs[4];
                    for (int64_t f = 0; f < F; f++)
                        for (int64_t y = 0; y < H; y++)
                            for (int64_t x = 0; x < W; x++)
                                *dst++ = src[(f * vs[3] + y * p + e) * vs[4] + x * p + a];
                }
}

void vae22_unpatchify(const float *patches, const int64_t ps[5], int64_t p, float *video)
{
    int64_t C = ps[1] / (p * p), F = ps[2], H = ps[3], W = ps[4], VH = H * p, VW = W * p;
    for (int64_t b = 0; b < ps[0]; b++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t a = 0; a < p; a++)
                for (int64_t e = 0; e < p; e++) {
                    const float *src = patches + (((b * C + c) * p + a) * p + e) * F * H * W;
                    float *dst = video + (b * C + c) * F * VH * VW;
                    for (int64_t f = 0; f < F; f++)
                        for (int64_t y = 0; y < H; y++)
                            for (int64_t x = 0; x < W; x++) dst[(f * VH + y * p + e) * VW + x * p + a] = *src++;
                }
}
