/* The Flux transformer's forward (see ferry/flux_dit.h for the math).
 *
 * The hidden state is one joint buffer x [B, T, inner], T = L + S, each
 * batch item's text rows first, then its image rows: the double blocks
 * address the two streams as row ranges of it, the single blocks and the
 * joint attention take it whole. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/flux_dit_internal.h"
#include "models/workspace.h"

#define VEC_SLOTS 2

typedef struct flux_acts {
    int64_t B, S, L, T, R;
    float *x, *n, *q, *k, *v, *o, *y, *h, *cat;
    float *vec, *temb, *stemb, *mod, *mod2, *freq, *gfreq, *pooled, *cos, *sin, *in, *out;
    float *host; /* a host buffer for taps, [B, T, max(inner, out)] */
    fy_workspace ws;
} flux_acts;

/* A stream's rows inside each batch item: text [0, L), image [L, T). */
typedef struct stream {
    int64_t off, n;
} stream;

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static int64_t vec_slot(const fy_flux_dit_config *k)
{
    return max64(max64(6 * k->inner, k->mlp), max64(k->out_channels, k->head_dim));
}

/* ---- buffers ---------------------------------------------------------------------- */

/* The activations: an engine buffer each. */
static void acts_table(const fy_flux_dit_config *k, flux_acts *a, fy_workspace *t)
{
    int64_t R = a->R, I = k->inner, M = k->mlp, half = k->head_dim / 2;
    int64_t in = max64(a->B * a->S * k->in_channels, a->B * a->L * k->joint_dim);
    fy_ws_init(t, NULL);
    FY_WS_ADD(t, a->x, R * I, "flux hidden");
    FY_WS_ADD(t, a->n, R * I, "flux normed");
    FY_WS_ADD(t, a->q, R * I, "flux q");
    FY_WS_ADD(t, a->k, R * I, "flux k");
    FY_WS_ADD(t, a->v, R * I, "flux v");
    FY_WS_ADD(t, a->o, R * I, "flux attention");
    FY_WS_ADD(t, a->y, R * I, "flux projection");
    FY_WS_ADD(t, a->h, R * M, "flux mlp");
    FY_WS_ADD(t, a->cat, R * (I + M), "flux single concat");
    FY_WS_ADD(t, a->vec, VEC_SLOTS * vec_slot(k), "flux vectors");
    FY_WS_ADD(t, a->temb, a->B * I, "flux temb");
    FY_WS_ADD(t, a->stemb, a->B * I, "flux silu temb");
    FY_WS_ADD(t, a->mod, a->B * 6 * I, "flux modulation");
    FY_WS_ADD(t, a->mod2, a->B * 6 * I, "flux context modulation");
    FY_WS_ADD(t, a->freq, a->B * FLUX_FREQ_DIM, "flux timestep sinusoid");
    FY_WS_ADD(t, a->gfreq, a->B * FLUX_FREQ_DIM, "flux guidance sinusoid");
    FY_WS_ADD(t, a->pooled, a->B * k->pooled_dim, "flux pooled");
    FY_WS_ADD(t, a->cos, a->T * half, "flux rope cos");
    FY_WS_ADD(t, a->sin, a->T * half, "flux rope sin");
    FY_WS_ADD(t, a->in, in, "flux inputs");
    FY_WS_ADD(t, a->out, a->B * a->S * k->out_channels, "flux output");
}

uint64_t fy_flux_dit_activation_bytes(const fy_flux_dit *m, int64_t batch, int64_t img_tokens, int64_t txt_tokens)
{
    if (!m || batch < 1 || img_tokens < 1 || txt_tokens < 0) return 0;
    flux_acts a = {.B = batch, .S = img_tokens, .L = txt_tokens, .T = img_tokens + txt_tokens};
    a.R = a.B * a.T;
    fy_workspace t;
    acts_table(&m->cfg, &a, &t);
    return fy_ws_bytes(&t) + fy_engine_ops_scratch_bound(m->e, false);
}

static void free_acts(fy_engine *e, flux_acts *a)
{
    fy_ws_free(&a->ws, e);
    free(a->host);
}

static fy_status alloc_acts(fy_flux_dit *m, flux_acts *a)
{
    acts_table(&m->cfg, a, &a->ws);
    FY_TRY(fy_ws_alloc(&a->ws, m->e));
    if (m->tap) {
        a->host = malloc((size_t)(a->R * max64(m->cfg.inner, m->cfg.out_channels)) * sizeof(float));
        if (!a->host) return fy_error(FY_ERR_NOMEM, "transformer: out of memory");
    }
    return FY_OK;
}

/* ---- small helpers ---------------------------------------------------------------- */

static fy_status vec(fy_flux_dit *m, const fy_tensor *t, flux_acts *a, int slot, const float **out)
{
    *out = t->data;
    if (t->dtype == FY_F32 && !t->scale) return FY_OK;
    float *dst = a->vec + slot * vec_slot(&m->cfg);
    *out = dst;
    return m->ops->convert(m->ops, fy_f32(dst), fy_view_of(t->data, t->dtype), (size_t)fy_tensor_numel(t));
}

/* y [rows, N] = x [rows, K] W^T + b */
static fy_status linear(fy_flux_dit *m, flux_acts *a, const float *x, const fy_tensor *w, const fy_tensor *b,
                        float *y, int64_t rows)
{
    const float *bias = NULL;
    if (b) FY_TRY(vec(m, b, a, 0, &bias));
    return m->ops->linear(m->ops, fy_f32(x), fy_weight_of(w), fy_f32(bias), fy_f32(y), rows, w->shape[1], w->shape[0]);
}

/* Hands rows [off, off + n) of every batch item of buf ([B, T, cols]) to the tap. */
static fy_status tap_rows(fy_flux_dit *m, flux_acts *a, const char *name, const float *buf, stream s, int64_t cols,
                          int64_t per_item)
{
    if (!m->tap) return FY_OK;
    for (int64_t b = 0; b < a->B; b++)
        FY_TRY(fy_engine_download(m->e, a->host + b * s.n * cols, buf + (b * per_item + s.off) * cols,
                                  (size_t)(s.n * cols) * sizeof(float)));
    m->tap(m->tap_user, name, a->host, a->B, s.n, cols);
    return FY_OK;
}

/* diffusers' Timesteps(256, flip_sin_to_cos): [cos, sin] of x * exp(-ln(1e4) k / 128), in float32 as torch. */
static void sinusoid(float x, float *out)
{
    int half = FLUX_FREQ_DIM / 2;
    float neg_log = (float)-log(10000.0);
    for (int k = 0; k < half; k++) {
        float freq = expf(((float)k * neg_log) / (float)half);
        float arg = x * freq;
        out[k] = cosf(arg);
        out[half + k] = sinf(arg);
    }
}

static fy_status upload_inputs(fy_flux_dit *m, flux_acts *a, const float *timestep, const float *guidance,
                               const float *pooled, const float *img_ids, const float *txt_ids)
{
    const fy_flux_dit_config *k = &m->cfg;
    int64_t half = k->head_dim / 2, F = FLUX_FREQ_DIM;
    size_t tables = (size_t)(a->T * half), freqs = (size_t)(a->B * F);
    float *host = malloc((2 * tables + 2 * freqs) * sizeof(float) + (size_t)(a->T * k->n_axes) * sizeof(float));
    if (!host) return fy_error(FY_ERR_NOMEM, "transformer: out of memory");
    float *cos_t = host, *sin_t = cos_t + tables, *tf = sin_t + tables, *gf = tf + freqs, *ids = gf + freqs;
    memcpy(ids, txt_ids, (size_t)(a->L * k->n_axes) * sizeof(float));
    memcpy(ids + a->L * k->n_axes, img_ids, (size_t)(a->S * k->n_axes) * sizeof(float));
    fy_status s = fy_flux_rope_tables(k, ids, a->T, cos_t, sin_t);
    for (int64_t b = 0; b < a->B; b++) {
        sinusoid(timestep[b] * 1000.0f, tf + b * F);
        if (guidance) sinusoid(guidance[b] * 1000.0f, gf + b * F);
    }
    if (s == FY_OK) s = fy_engine_upload(m->e, a->cos, cos_t, tables * sizeof(float));
    if (s == FY_OK) s = fy_engine_upload(m->e, a->sin, sin_t, tables * sizeof(float));
    if (s == FY_OK) s = fy_engine_upload(m->e, a->freq, tf, freqs * sizeof(float));
    if (s == FY_OK && guidance) s = fy_engine_upload(m->e, a->gfreq, gf, freqs * sizeof(float));
    if (s == FY_OK)
        s = fy_engine_upload(m->e, a->pooled, pooled, (size_t)(a->B * k->pooled_dim) * sizeof(float));
    free(host);
    return s;
}

/* ---- embedders -------------------------------------------------------------------- */

/* out [B, I] = linear_2(silu(linear_1(in))) */
static fy_status mlp_embed(fy_flux_dit *m, flux_acts *a, const float *in, const fy_tensor *w, float *out)
{
    float *tmp = a->mod;
    FY_TRY(linear(m, a, in, &w[0], &w[1], tmp, a->B));
    FY_TRY(m->ops->silu(m->ops, fy_f32(tmp), fy_f32(tmp), a->B * m->cfg.inner));
    return linear(m, a, tmp, &w[2], &w[3], out, a->B);
}

static fy_status time_text_embed(fy_flux_dit *m, flux_acts *a, const fy_tensor *w, bool guidance)
{
    int64_t n = a->B * m->cfg.inner;
    float *other = a->mod2;
    FY_TRY(mlp_embed(m, a, a->freq, &w[E_T1], a->temb));
    if (guidance) {
        FY_TRY(mlp_embed(m, a, a->gfreq, &w[E_G1], other));
        FY_TRY(m->ops->add(m->ops, fy_f32(a->temb), fy_f32(other), fy_f32(a->temb), n));
    }
    FY_TRY(mlp_embed(m, a, a->pooled, &w[E_P1], other));
    FY_TRY(m->ops->add(m->ops, fy_f32(a->temb), fy_f32(other), fy_f32(a->temb), n));
    return m->ops->silu(m->ops, fy_f32(a->temb), fy_f32(a->stemb), n);
}

/* Latents and text through x_embedder / context_embedder into the joint buffer. */
static fy_status embed_stream(fy_flux_dit *m, flux_acts *a, const float *host, int64_t width, const fy_tensor *w,
                              stream s)
{
    FY_TRY(fy_engine_upload(m->e, a->in, host, (size_t)(a->B * s.n * width) * sizeof(float)));
    for (int64_t b = 0; b < a->B; b++)
        FY_TRY(linear(m, a, a->in + b * s.n * width, &w[0], &w[1], a->x + (b * a->T + s.off) * m->cfg.inner, s.n));
    return FY_OK;
}

static fy_status embed(fy_flux_dit *m, flux_acts *a, const float *img, const float *txt)
{
    const fy_tensor *w = NULL;
    stream ti = {0, a->L}, im = {a->L, a->S};
    FY_TRY(fy_engine_acquire(m->e, m->embed.id, &w));
    fy_status s = embed_stream(m, a, img, m->cfg.in_channels, &w[E_X], im);
    if (s == FY_OK && a->L) s = embed_stream(m, a, txt, m->cfg.joint_dim, &w[E_CTX], ti);
    if (s == FY_OK) s = time_text_embed(m, a, w, m->cfg.guidance_embeds);
    fy_status r = fy_engine_release(m->e, m->embed.id);
    FY_TRY(s);
    FY_TRY(r);
    FY_TRY(tap_rows(m, a, "x_embedder", a->x, im, m->cfg.inner, a->T));
    FY_TRY(tap_rows(m, a, "context_embedder", a->x, ti, m->cfg.inner, a->T));
    return tap_rows(m, a, "temb", a->temb, (stream){0, 1}, m->cfg.inner, 1);
}

/* ---- block pieces ------------------------------------------------------------------ */

/* n = LN(x) (1 + scale) + shift on a stream's rows; mod [B, chunks * I], shift/scale chunk indices. */
static fy_status modulate(fy_flux_dit *m, flux_acts *a, const float *mod, int64_t chunks, int shift, int scale,
                          stream s)
{
    int64_t I = m->cfg.inner;
    for (int64_t b = 0; b < a->B; b++) {
        const float *mb = mod + b * chunks * I;
        int64_t row = b * a->T + s.off;
        FY_TRY(m->ops->layer_norm_modulate(m->ops, fy_f32(a->x + row * I), FY_NO_VIEW, FY_NO_VIEW,
                                           fy_f32(mb + scale * I), fy_f32(mb + shift * I), fy_f32(a->n + row * I), s.n,
                                           I, s.n, 1e-6f));
    }
    return FY_OK;
}

/* x += y * gate on a stream's rows. */
static fy_status gate_add(fy_flux_dit *m, flux_acts *a, const float *mod, int64_t chunks, int gate, stream s)
{
    int64_t I = m->cfg.inner;
    for (int64_t b = 0; b < a->B; b++) {
        int64_t row = b * a->T + s.off;
        FY_TRY(m->ops->gated_add(m->ops, fy_f32(a->x + row * I), fy_f32(a->y + row * I),
                                 fy_f32(mod + b * chunks * I + gate * I), s.n, I, s.n));
    }
    return FY_OK;
}

/* dst rows of a stream = linear(src rows), per batch item. */
static fy_status stream_linear(fy_flux_dit *m, flux_acts *a, const float *src, int64_t src_w, const fy_tensor *w,
                               const fy_tensor *b, float *dst, int64_t dst_w, stream s)
{
    for (int64_t i = 0; i < a->B; i++) {
        int64_t row = i * a->T + s.off;
        FY_TRY(linear(m, a, src + row * src_w, w, b, dst + row * dst_w, s.n));
    }
    return FY_OK;
}

/* Per-head RMSNorm of a stream's q or k rows. */
static fy_status head_norm(fy_flux_dit *m, flux_acts *a, float *x, const fy_tensor *w, stream s)
{
    const float *scale = NULL;
    int64_t I = m->cfg.inner, D = m->cfg.head_dim;
    FY_TRY(vec(m, w, a, 1, &scale));
    for (int64_t b = 0; b < a->B; b++) {
        int64_t row = b * a->T + s.off;
        FY_TRY(m->ops->rms_norm(m->ops, fy_f32(x + row * I), fy_f32(scale), fy_f32(x + row * I), s.n * m->cfg.heads, D,
                                1e-6f));
    }
    return FY_OK;
}

/* q, k, v of one stream: projections, then q/k RMSNorm. w: q, qb, k, kb, v, vb, nq, nk in that order. */
static fy_status qkv(fy_flux_dit *m, flux_acts *a, const fy_tensor *w, stream s)
{
    int64_t I = m->cfg.inner;
    FY_TRY(stream_linear(m, a, a->n, I, &w[0], &w[1], a->q, I, s));
    FY_TRY(stream_linear(m, a, a->n, I, &w[2], &w[3], a->k, I, s));
    FY_TRY(stream_linear(m, a, a->n, I, &w[4], &w[5], a->v, I, s));
    FY_TRY(head_norm(m, a, a->q, &w[6], s));
    return head_norm(m, a, a->k, &w[7], s);
}

/* RoPE on q and k, then attention over the joint sequence into o. */
static fy_status attend(fy_flux_dit *m, flux_acts *a)
{
    const fy_flux_dit_config *k = &m->cfg;
    FY_TRY(m->ops->rope(m->ops, fy_f32(a->q), fy_f32(a->cos), fy_f32(a->sin), a->B, a->T, k->heads, k->head_dim));
    FY_TRY(m->ops->rope(m->ops, fy_f32(a->k), fy_f32(a->cos), fy_f32(a->sin), a->B, a->T, k->heads, k->head_dim));
    return m->ops->attention(m->ops, fy_f32(a->q), fy_f32(a->k), fy_f32(a->v), fy_f32(a->o), a->B, k->heads, a->T, a->T,
                             k->head_dim, 1.0f / sqrtf((float)k->head_dim), FY_NO_VIEW, NULL);
}

/* y rows = w2(gelu_tanh(w0(n rows))) per batch item. */
static fy_status feed_forward(fy_flux_dit *m, flux_acts *a, const fy_tensor *w, stream s)
{
    int64_t I = m->cfg.inner, M = m->cfg.mlp;
    for (int64_t b = 0; b < a->B; b++) {
        int64_t row = b * a->T + s.off;
        FY_TRY(linear(m, a, a->n + row * I, &w[0], &w[1], a->h, s.n));
        FY_TRY(m->ops->gelu_tanh(m->ops, fy_f32(a->h), fy_f32(a->h), s.n * M));
        FY_TRY(linear(m, a, a->h, &w[2], &w[3], a->y + row * I, s.n));
    }
    return FY_OK;
}

/* ---- blocks ------------------------------------------------------------------------- */

static fy_status double_block(fy_flux_dit *m, flux_acts *a, const fy_tensor *w)
{
    int64_t I = m->cfg.inner;
    stream ti = {0, a->L}, im = {a->L, a->S};
    FY_TRY(linear(m, a, a->stemb, &w[D_N1], &w[D_N1B], a->mod, a->B));
    FY_TRY(linear(m, a, a->stemb, &w[D_N1C], &w[D_N1CB], a->mod2, a->B));
    FY_TRY(modulate(m, a, a->mod, 6, 0, 1, im));
    FY_TRY(modulate(m, a, a->mod2, 6, 0, 1, ti));
    FY_TRY(tap_rows(m, a, "norm1", a->n, im, I, a->T));
    FY_TRY(tap_rows(m, a, "norm1_context", a->n, ti, I, a->T));
    FY_TRY(qkv(m, a, &w[D_Q], im));
    FY_TRY(qkv(m, a, &w[D_AQ], ti));
    FY_TRY(attend(m, a));
    FY_TRY(stream_linear(m, a, a->o, I, &w[D_OUT], &w[D_OUTB], a->y, I, im));
    FY_TRY(stream_linear(m, a, a->o, I, &w[D_AOUT], &w[D_AOUTB], a->y, I, ti));
    FY_TRY(tap_rows(m, a, "attn.hidden_states", a->y, im, I, a->T));
    FY_TRY(tap_rows(m, a, "attn.encoder_hidden_states", a->y, ti, I, a->T));
    FY_TRY(gate_add(m, a, a->mod, 6, 2, im));
    FY_TRY(gate_add(m, a, a->mod2, 6, 2, ti));
    FY_TRY(modulate(m, a, a->mod, 6, 3, 4, im));
    FY_TRY(modulate(m, a, a->mod2, 6, 3, 4, ti));
    FY_TRY(feed_forward(m, a, &w[D_FF0], im));
    FY_TRY(tap_rows(m, a, "ff", a->y, im, I, a->T));
    FY_TRY(feed_forward(m, a, &w[D_FFC0], ti));
    FY_TRY(gate_add(m, a, a->mod, 6, 5, im));
    return gate_add(m, a, a->mod2, 6, 5, ti);
}

static fy_status single_block(fy_flux_dit *m, flux_acts *a, const fy_tensor *w)
{
    int64_t I = m->cfg.inner, M = m->cfg.mlp, R = a->R;
    stream all = {0, a->T};
    size_t f = sizeof(float);
    FY_TRY(linear(m, a, a->stemb, &w[S_N], &w[S_NB], a->mod, a->B));
    FY_TRY(modulate(m, a, a->mod, 3, 0, 1, all));
    FY_TRY(tap_rows(m, a, "norm", a->n, all, I, a->T));
    FY_TRY(linear(m, a, a->n, &w[S_Q], &w[S_QB], a->q, R));
    FY_TRY(linear(m, a, a->n, &w[S_K], &w[S_KB], a->k, R));
    FY_TRY(linear(m, a, a->n, &w[S_V], &w[S_VB], a->v, R));
    FY_TRY(head_norm(m, a, a->q, &w[S_NQ], all));
    FY_TRY(head_norm(m, a, a->k, &w[S_NK], all));
    FY_TRY(attend(m, a));
    FY_TRY(linear(m, a, a->n, &w[S_MLP], &w[S_MLPB], a->h, R));
    FY_TRY(m->ops->gelu_tanh(m->ops, fy_f32(a->h), fy_f32(a->h), R * M));
    FY_TRY(tap_rows(m, a, "attn", a->o, all, I, a->T));
    FY_TRY(m->ops->copy2d(m->ops, a->cat, (size_t)(I + M) * f, a->o, (size_t)I * f, (size_t)I * f, (size_t)R));
    FY_TRY(m->ops->copy2d(m->ops, a->cat + I, (size_t)(I + M) * f, a->h, (size_t)M * f, (size_t)M * f, (size_t)R));
    FY_TRY(linear(m, a, a->cat, &w[S_OUT], &w[S_OUTB], a->y, R));
    return gate_add(m, a, a->mod, 3, 2, all);
}

/* The tap names of block i ("double.0.", "single.2."): the block's pieces and its outputs. */
static fy_status run_block(fy_flux_dit *m, flux_acts *a, flux_group *g, const char *kind, int64_t i, bool dbl)
{
    const fy_tensor *w = NULL;
    char prefix[48];
    snprintf(prefix, sizeof prefix, "%s.%lld.", kind, (long long)i);
    fy_flux_tap_fn tap = m->tap;
    m->tap = i == 0 ? tap : NULL; /* the fixtures hold block 0's internals only */
    FY_TRY(fy_engine_acquire(m->e, g->id, &w));
    fy_status s = dbl ? double_block(m, a, w) : single_block(m, a, w);
    fy_status r = fy_engine_release(m->e, g->id);
    m->tap = tap;
    FY_TRY(s);
    FY_TRY(r);
    if (!tap) return FY_OK;
    char name[96];
    snprintf(name, sizeof name, "%shidden_states", prefix);
    FY_TRY(tap_rows(m, a, name, a->x, (stream){a->L, a->S}, m->cfg.inner, a->T));
    snprintf(name, sizeof name, "%sencoder_hidden_states", prefix);
    return tap_rows(m, a, name, a->x, (stream){0, a->L}, m->cfg.inner, a->T);
}

static fy_status norm_out(fy_flux_dit *m, flux_acts *a)
{
    const fy_tensor *w = NULL;
    int64_t I = m->cfg.inner, O = m->cfg.out_channels;
    stream im = {a->L, a->S};
    FY_TRY(fy_engine_acquire(m->e, m->out.id, &w));
    fy_status s = linear(m, a, a->stemb, &w[O_NORM], &w[O_NORMB], a->mod, a->B);
    if (s == FY_OK) s = modulate(m, a, a->mod, 2, 1, 0, im); /* scale first, then shift */
    for (int64_t b = 0; s == FY_OK && b < a->B; b++)
        s = linear(m, a, a->n + (b * a->T + a->L) * I, &w[O_PROJ], &w[O_PROJB], a->out + b * a->S * O, a->S);
    fy_status r = fy_engine_release(m->e, m->out.id);
    FY_TRY(s);
    FY_TRY(r);
    return tap_rows(m, a, "norm_out", a->n, im, I, a->T);
}

/* Block taps are named "<kind>.<i>.<piece>": prefix them. */
typedef struct prefix_tap {
    fy_flux_tap_fn fn;
    void *user;
    const char *prefix;
} prefix_tap;

static void prefixed(void *user, const char *name, const float *data, int64_t b, int64_t r, int64_t c)
{
    const prefix_tap *p = user;
    char full[128];
    if (!strncmp(name, "double.", 7) || !strncmp(name, "single.", 7)) snprintf(full, sizeof full, "%s", name);
    else snprintf(full, sizeof full, "%s%s", p->prefix, name);
    p->fn(p->user, full, data, b, r, c);
}

static fy_status run_blocks(fy_flux_dit *m, flux_acts *a)
{
    fy_flux_tap_fn tap = m->tap;
    void *user = m->tap_user;
    prefix_tap p = {tap, user, "double.0."};
    if (tap) m->tap = prefixed, m->tap_user = &p;
    fy_status s = FY_OK;
    for (int64_t i = 0; s == FY_OK && i < m->cfg.double_layers; i++)
        s = run_block(m, a, &m->doubles[i], "double", i, true);
    p.prefix = "single.0.";
    for (int64_t i = 0; s == FY_OK && i < m->cfg.single_layers; i++)
        s = run_block(m, a, &m->singles[i], "single", i, false);
    m->tap = tap, m->tap_user = user;
    return s;
}

static fy_status check_inputs(const fy_flux_dit *m, const float *img, const float *txt, const float *pooled,
                              const float *timestep, const float *guidance, const float *img_ids,
                              const float *txt_ids, int64_t B, int64_t S, int64_t L, const float *out)
{
    if (!img || !pooled || !timestep || !img_ids || !out || (L && (!txt || !txt_ids)) || B < 1 || S < 1 || L < 0 ||
        B > (1 << 16) || S > (1 << 24) || L > (1 << 24))
        return fy_error(FY_ERR_INVALID, "transformer: bad inputs (batch %lld, %lld image and %lld text tokens)",
                        (long long)B, (long long)S, (long long)L);
    if (m->cfg.guidance_embeds && !guidance)
        return fy_error(FY_ERR_INVALID, "transformer: %s has guidance_embeds: a guidance value is needed",
                        fy_config_path(m->c->config));
    return FY_OK;
}

fy_status fy_flux_dit_forward(fy_flux_dit *m, const float *img, const float *txt, const float *pooled,
                              const float *timestep, const float *guidance, const float *img_ids,
                              const float *txt_ids, int64_t B, int64_t S, int64_t L, float *out)
{
    if (!m) return fy_error(FY_ERR_INVALID, "fy_flux_dit_forward: NULL model");
    FY_TRY(check_inputs(m, img, txt, pooled, timestep, guidance, img_ids, txt_ids, B, S, L, out));
    if (!m->ops) FY_TRY(fy_engine_ops_create(m->e, m->threads, &m->ops));
    flux_acts a = {.B = B, .S = S, .L = L, .T = S + L, .R = B * (S + L)};
    fy_status s = alloc_acts(m, &a);
    if (s == FY_OK) s = upload_inputs(m, &a, timestep, m->cfg.guidance_embeds ? guidance : NULL, pooled, img_ids,
                                      txt_ids);
    if (s == FY_OK) s = embed(m, &a, img, txt);
    if (s == FY_OK) s = run_blocks(m, &a);
    if (s == FY_OK) s = norm_out(m, &a);
    if (s == FY_OK)
        s = fy_engine_download(m->e, out, a.out, (size_t)(B * S * m->cfg.out_channels) * sizeof(float));
    free_acts(m->e, &a);
    return s;
}
