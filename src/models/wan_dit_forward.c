/* The Wan DiT forward: embeddings, blocks, head; one workspace from the
 * engine pool, each group acquired just for the math that reads it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/wan_dit_internal.h"
#include "models/workspace.h"

/* ---- workspace ---------------------------------------------------------- */

typedef struct ws_bufs {
    float *patches, *h, *n, *k, *v, *q, *o, *ff, *text_in, *text_mid, *text, *ck, *cv;
    float *img_in, *img_mid, *img, *cki, *cvi, *o2; /* image tokens (I2V) */
    float *tsin, *temb, *tmp, *tmod, *mod, *omod, *rope_c, *rope_s, *vec;
} ws_bufs;

/* Only what attention needs whole is whole: the block's input h and the
 * keys and values. Norms, queries, attention outputs, projections and the
 * feed-forward run over at most this many tokens at a time, so their buffers
 * (the feed-forward's rows x ffn_dim is the largest) stay bounded at video
 * sizes. GEMMs of 2048 rows still keep a GPU's tensor cores and the CPU's
 * BLAS busy, and the 14B at 480p then plans layerwise (prefetching) within
 * 6 GiB instead of sequential. */
#define ROW_CHUNK 2048 /* the default of m->row_chunk */

/* A run of tokens [at, at + len) of the [B * S] rows (within one item)
 * sharing one timestep: one time embedding and modulation for all of them. */
typedef struct time_run {
    int64_t at, len;
    float t;
} time_run;

/* Sizes of one forward, derived from the latent and text shapes. */
typedef struct dims {
    int64_t B, S, L, D, F2, H2, W2;
    int64_t R;             /* timestep runs the workspace holds (B without per-token timesteps) */
    const time_run *runs;  /* n_runs <= R, in row order */
    int64_t n_runs;
    bool per_token;
    int64_t BS, BL, p_in, p_out;
    int64_t I, BI; /* image tokens per item, in all (0 for text-to-video) */
    int64_t row_chunk;  /* rows per chunk asked for (m->row_chunk) */
    int64_t chunk_rows; /* the most rows a chunk holds */
} dims;

/* Token rows [at, at + items * len) of the [B * S] rows: whole batch items
 * (s0 = 0, len = S) when an item fits a chunk, else part of one item
 * (items = 1), so attention and per-item gates split cleanly. */
typedef struct row_chunk {
    int64_t b, s0, items, len, at, rows;
} row_chunk;

/* for (row_chunk c = {0}; next_chunk(d, &c);) walks them in order. */
static bool next_chunk(const dims *d, row_chunk *c)
{
    if (d->S <= d->row_chunk) {
        int64_t per = d->row_chunk / d->S, b = c->rows ? c->b + c->items : 0;
        if (b >= d->B) return false;
        *c = (row_chunk){.b = b, .s0 = 0, .items = d->B - b < per ? d->B - b : per, .len = d->S};
    } else {
        int64_t b = c->b, s0 = c->rows ? c->s0 + c->len : 0;
        if (s0 >= d->S) b++, s0 = 0;
        if (b >= d->B) return false;
        *c = (row_chunk){.b = b, .s0 = s0, .items = 1, .len = d->S - s0 < d->row_chunk ? d->S - s0 : d->row_chunk};
    }
    c->at = c->b * d->S + c->s0;
    c->rows = c->items * c->len;
    return true;
}

static void make_dims(const fy_wan_dit *m, const fy_wan_dit_shape *s, dims *d)
{
    const fy_wan_dit_config *c = &m->cfg;
    d->B = s->batch;
    d->L = s->text_len;
    d->D = c->dim;
    d->R = s->timestep_runs > 0 ? s->timestep_runs : s->batch;
    d->per_token = s->timestep_runs > 0;
    d->runs = NULL;
    d->n_runs = 0;
    d->F2 = s->frames / c->patch[0];
    d->H2 = s->height / c->patch[1];
    d->W2 = s->width / c->patch[2];
    d->S = d->F2 * d->H2 * d->W2;
    d->BS = d->B * d->S;
    d->BL = d->B * d->L;
    d->I = s->image_len;
    d->BI = d->B * d->I;
    d->p_in = fy_wan_patch_len(c, c->in_channels);
    d->p_out = fy_wan_patch_len(c, c->out_channels);
    d->row_chunk = m->row_chunk > 0 ? m->row_chunk : ROW_CHUNK;
    d->chunk_rows = d->S <= d->row_chunk ? d->row_chunk / d->S * d->S : d->row_chunk;
    if (d->chunk_rows > d->BS) d->chunk_rows = d->BS;
}

/* The workspace: one engine buffer, a 64-byte aligned slice per row. */
static void ws_table(const fy_wan_dit *m, const dims *d, ws_bufs *w, fy_workspace *t)
{
    const fy_wan_dit_config *c = &m->cfg;
    int64_t act = d->BS * d->D, txt = d->BL * d->D, rows = d->chunk_rows * d->D;
    int64_t hidden = d->chunk_rows * c->ffn_dim, out = d->BS * d->p_out; /* ff also takes proj_out's output */
    int64_t img_in = d->BI * c->image_dim, img = d->BI * d->D;
    fy_ws_init(t, "wan transformer workspace");
    FY_WS_ADD(t, w->patches, d->BS * d->p_in, NULL);
    FY_WS_ADD(t, w->h, act, NULL);
    FY_WS_ADD(t, w->k, act, NULL);
    FY_WS_ADD(t, w->v, act, NULL);
    FY_WS_ADD(t, w->n, rows, NULL);
    FY_WS_ADD(t, w->q, rows, NULL);
    FY_WS_ADD(t, w->o, rows, NULL);
    FY_WS_ADD(t, w->ff, hidden > out ? hidden : out, NULL);
    FY_WS_ADD(t, w->text_in, d->BL * c->text_dim, NULL);
    FY_WS_ADD(t, w->text_mid, txt, NULL);
    FY_WS_ADD(t, w->text, txt, NULL);
    FY_WS_ADD(t, w->ck, txt, NULL);
    FY_WS_ADD(t, w->cv, txt, NULL);
    FY_WS_ADD(t, w->img_in, img_in, NULL);
    FY_WS_ADD(t, w->img_mid, img_in, NULL);
    FY_WS_ADD(t, w->img, img, NULL);
    FY_WS_ADD(t, w->cki, img, NULL);
    FY_WS_ADD(t, w->cvi, img, NULL);
    FY_WS_ADD(t, w->o2, d->I ? rows : 0, NULL);
    FY_WS_ADD(t, w->tsin, d->R * c->freq_dim, NULL);
    FY_WS_ADD(t, w->temb, d->R * d->D, NULL);
    FY_WS_ADD(t, w->tmp, d->R * d->D, NULL);
    FY_WS_ADD(t, w->tmod, d->R * 6 * d->D, NULL);
    FY_WS_ADD(t, w->mod, 6 * d->R * d->D, NULL);
    FY_WS_ADD(t, w->omod, 2 * d->R * d->D, NULL);
    FY_WS_ADD(t, w->rope_c, d->S * c->head_dim / 2, NULL);
    FY_WS_ADD(t, w->rope_s, d->S * c->head_dim / 2, NULL);
    FY_WS_ADD(t, w->vec, 4 * m->vec_slot, NULL);
}

fy_status fy_wan_dit_check_shape(const fy_wan_dit *m, const fy_wan_dit_shape *s)
{
    const fy_wan_dit_config *c = &m->cfg;
    const int64_t big = (int64_t)1 << 24;
    if (!s || s->batch < 1 || s->frames < 1 || s->height < 1 || s->width < 1 || s->text_len < 1 ||
        s->batch > 4096 || s->frames > big || s->height > big || s->width > big || s->text_len > big)
        return fy_error(FY_ERR_INVALID, "wan transformer: bad problem size");
    if (s->frames % c->patch[0] || s->height % c->patch[1] || s->width % c->patch[2])
        return fy_error(FY_ERR_INVALID,
                        "wan transformer: latent %lldx%lldx%lld (frames x height x width) is not a multiple of "
                        "patch_size [%lld, %lld, %lld]", (long long)s->frames, (long long)s->height,
                        (long long)s->width, (long long)c->patch[0], (long long)c->patch[1], (long long)c->patch[2]);
    if (c->image_dim && (s->image_len < 1 || s->image_len > big))
        return fy_error(FY_ERR_INVALID, "wan transformer: an image-to-video transformer (image_dim %lld) needs the "
                        "image encoder's tokens", (long long)c->image_dim);
    if (!c->image_dim && s->image_len)
        return fy_error(FY_ERR_INVALID, "wan transformer: %lld image tokens given to a text-to-video transformer "
                        "(its config has no image_dim)", (long long)s->image_len);
    int64_t longest = s->frames / c->patch[0];
    if (s->height / c->patch[1] > longest) longest = s->height / c->patch[1];
    if (s->width / c->patch[2] > longest) longest = s->width / c->patch[2];
    if (longest > c->rope_max_seq_len)
        return fy_error(FY_ERR_INVALID, "wan transformer: %lld patches along one axis exceed rope_max_seq_len %lld",
                        (long long)longest, (long long)c->rope_max_seq_len);
    int64_t tokens = s->frames / c->patch[0] * (s->height / c->patch[1]) * (s->width / c->patch[2]);
    if (s->timestep_runs < 0 || (s->timestep_runs > 0 && s->timestep_runs < s->batch) ||
        s->timestep_runs > s->batch * tokens)
        return fy_error(FY_ERR_INVALID, "wan transformer: %lld timestep runs for %lld items of %lld tokens",
                        (long long)s->timestep_runs, (long long)s->batch, (long long)tokens);
    return FY_OK;
}

int64_t fy_wan_dit_count_runs(const float *t, int64_t batch, int64_t tokens)
{
    int64_t n = 0;
    for (int64_t i = 0; i < batch * tokens; i++) n += i % tokens == 0 || memcmp(&t[i], &t[i - 1], sizeof *t) != 0;
    return n;
}

/* The runs of the timesteps: one per item, or per run of bitwise-equal
 * per-token values. */
static fy_status make_runs(const dims *d, const float *t, time_run **out, int64_t *n)
{
    int64_t count = d->per_token ? fy_wan_dit_count_runs(t, d->B, d->S) : d->B;
    if (count > d->R)
        return fy_error(FY_ERR_INVALID, "wan transformer: the timesteps have %lld runs of equal values, the shape "
                        "reserved %lld", (long long)count, (long long)d->R);
    time_run *r = malloc((size_t)count * sizeof *r);
    if (!r) return fy_error(FY_ERR_NOMEM, "wan transformer: out of memory");
    int64_t k = 0;
    for (int64_t b = 0; b < d->B && !d->per_token; b++) r[k++] = (time_run){b * d->S, d->S, t[b]};
    for (int64_t i = 0; i < d->B * d->S && d->per_token; i++) {
        if (i % d->S == 0 || memcmp(&t[i], &t[i - 1], sizeof *t) != 0) r[k++] = (time_run){i, 0, t[i]};
        r[k - 1].len++;
    }
    *out = r;
    *n = count;
    return FY_OK;
}

/* The parts of rows [at, at + rows) that share a run: for (piece p = {0};
 * next_piece(d, at, rows, &p);) walks them in order. */
typedef struct piece {
    int64_t run, at, rows;
} piece;

static bool next_piece(const dims *d, int64_t at, int64_t rows, piece *p)
{
    int64_t here = p->rows ? p->at + p->rows : at, end = at + rows;
    if (here >= end) return false;
    int64_t r = p->rows ? p->run : 0;
    if (!p->rows) { /* the first: binary search for the run holding row `at` */
        int64_t lo = 0, hi = d->n_runs - 1;
        while (lo < hi) {
            int64_t mid = (lo + hi + 1) / 2;
            if (d->runs[mid].at <= here) lo = mid;
            else hi = mid - 1;
        }
        r = lo;
    }
    while (d->runs[r].at + d->runs[r].len <= here) r++;
    int64_t stop = d->runs[r].at + d->runs[r].len;
    *p = (piece){r, here, (stop < end ? stop : end) - here};
    return true;
}

uint64_t fy_wan_dit_activation_bytes(const fy_wan_dit *m, const fy_wan_dit_shape *s)
{
    if (!m || fy_wan_dit_check_shape(m, s) != FY_OK) return 0;
    dims d;
    ws_bufs w;
    fy_workspace t;
    make_dims(m, s, &d);
    ws_table(m, &d, &w, &t);
    return fy_ws_bytes(&t) + fy_engine_ops_scratch_bound(m->engine, false);
}

/* ---- op wrappers (dtype and timing) -------------------------------------- */

/* A vector weight (bias, norm scale, table) as float32: in place when it is,
 * else converted into scratch slot `slot`. */
static fy_status vec_f32(fy_wan_dit *m, const fy_tensor *t, int slot, const float **out)
{
    if (t->dtype == FY_F32) {
        *out = t->data;
        return FY_OK;
    }
    float *dst = m->vec_scratch + (size_t)slot * (size_t)m->vec_slot;
    FY_TRY(m->ops->convert(m->ops, fy_f32(dst), fy_view_of(t->data, t->dtype), (size_t)fy_tensor_numel(t)));
    *out = dst;
    return FY_OK;
}

/* y [M, N] = x [M, K] W^T + b for W [N, ...] (Conv3d weights flatten to [N, K]). */
static fy_status linear(fy_wan_dit *m, const float *x, const fy_tensor *w, const fy_tensor *b, float *y, int64_t M)
{
    int64_t N = w->shape[0], K = fy_tensor_numel(w) / N;
    const float *bias = NULL;
    if (b) FY_TRY(vec_f32(m, b, 0, &bias));
    double t0 = fy_backend_now();
    fy_status st = m->ops->linear(m->ops, fy_f32(x), fy_weight_of(w), fy_f32(bias), fy_f32(y), M, K, N);
    m->timing.gemm += fy_backend_now() - t0;
    return st;
}

static fy_status rms_norm(fy_wan_dit *m, float *x, const fy_tensor *w, int64_t rows)
{
    const float *g = NULL;
    FY_TRY(vec_f32(m, w, 1, &g));
    return m->ops->rms_norm(m->ops, fy_f32(x), fy_f32(g), fy_f32(x), rows, m->cfg.dim, (float)m->cfg.eps);
}

static fy_status attend(fy_wan_dit *m, const float *q, const float *k, const float *v, float *out, int64_t B,
                        int64_t Lq, int64_t Lk)
{
    const fy_wan_dit_config *c = &m->cfg;
    double t0 = fy_backend_now();
    fy_status st = m->ops->attention(m->ops, fy_f32(q), fy_f32(k), fy_f32(v), fy_f32(out), B, c->heads, Lq, Lk,
                                     c->head_dim, 1.0f / sqrtf((float)c->head_dim), FY_NO_VIEW, NULL);
    m->timing.attention += fy_backend_now() - t0;
    return st;
}

/* ---- intermediates -------------------------------------------------------- */

static fy_status tap(fy_wan_dit *m, const char *name, const float *dev, int ndim, const int64_t *shape)
{
    if (!m->tap) return FY_OK;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    float *host = malloc((size_t)n * sizeof *host);
    if (!host) return fy_error(FY_ERR_NOMEM, "wan transformer: out of memory");
    fy_status st = fy_engine_download(m->engine, host, dev, (size_t)n * sizeof *host);
    if (st == FY_OK) m->tap(m->tap_user, name, host, ndim, shape);
    free(host);
    return st;
}

/* diffusers keeps each rotation's cos/sin twice ([1, S, 1, head_dim]). */
static fy_status tap_rope(fy_wan_dit *m, const char *name, const float *table, int64_t S)
{
    if (!m->tap) return FY_OK;
    int64_t half = m->cfg.head_dim / 2;
    float *full = malloc((size_t)(S * 2 * half) * sizeof *full);
    if (!full) return fy_error(FY_ERR_NOMEM, "wan transformer: out of memory");
    fy_status st = fy_engine_download(m->engine, full, table, (size_t)(S * half) * sizeof *full);
    for (int64_t i = S * half - 1; st == FY_OK && i >= 0; i--) full[2 * i] = full[2 * i + 1] = full[i];
    int64_t shape[4] = {1, S, 1, 2 * half};
    if (st == FY_OK) m->tap(m->tap_user, name, full, 4, shape);
    free(full);
    return st;
}

/* ---- embeddings ----------------------------------------------------------- */

static fy_status upload_inputs(fy_wan_dit *m, const dims *d, const fy_wan_dit_shape *s, const float *latents,
                               const float *text, const float *image, bool need_text, ws_bufs *w)
{
    const fy_wan_dit_config *c = &m->cfg;
    size_t patch_bytes = (size_t)(d->BS * d->p_in) * sizeof(float);
    size_t t_bytes = (size_t)(d->n_runs * c->freq_dim) * sizeof(float);
    size_t rope_bytes = (size_t)(d->S * c->head_dim / 2) * sizeof(float);
    size_t most = patch_bytes > t_bytes ? patch_bytes : t_bytes;
    float *host = malloc(most > 2 * rope_bytes ? most : 2 * rope_bytes);
    if (!host) return fy_error(FY_ERR_NOMEM, "wan transformer: out of memory");
    fy_wan_patchify(c, latents, host, d->B, c->in_channels, s->frames, s->height, s->width);
    fy_status st = fy_engine_upload(m->engine, w->patches, host, patch_bytes);
    float *values = malloc((size_t)d->n_runs * sizeof *values);
    if (!values) {
        free(host);
        return fy_error(FY_ERR_NOMEM, "wan transformer: out of memory");
    }
    for (int64_t r = 0; r < d->n_runs; r++) values[r] = d->runs[r].t;
    fy_wan_timestep_sinusoid(values, d->n_runs, c->freq_dim, host);
    free(values);
    if (st == FY_OK) st = fy_engine_upload(m->engine, w->tsin, host, t_bytes);
    float *rope_s = host + rope_bytes / sizeof(float);
    fy_wan_rope_tables(c, d->F2, d->H2, d->W2, host, rope_s);
    if (st == FY_OK) st = fy_engine_upload(m->engine, w->rope_c, host, rope_bytes);
    if (st == FY_OK) st = fy_engine_upload(m->engine, w->rope_s, rope_s, rope_bytes);
    free(host);
    if (st == FY_OK && need_text)
        st = fy_engine_upload(m->engine, w->text_in, text, (size_t)(d->BL * c->text_dim) * sizeof(float));
    if (st == FY_OK && need_text && d->BI)
        st = fy_engine_upload(m->engine, w->img_in, image, (size_t)(d->BI * c->image_dim) * sizeof(float));
    return st;
}

/* temb = MLP(sinusoid(t)); timestep_proj = Linear(SiLU(temb)) -> 6 modulations,
 * once per timestep run. */
static fy_status time_embedding(fy_wan_dit *m, const fy_tensor *e, const dims *d, ws_bufs *w)
{
    int64_t R = d->n_runs;
    FY_TRY(linear(m, w->tsin, &e[WE_TIME1_W], &e[WE_TIME1_B], w->tmp, R));
    FY_TRY(m->ops->silu(m->ops, fy_f32(w->tmp), fy_f32(w->tmp), R * d->D));
    FY_TRY(linear(m, w->tmp, &e[WE_TIME2_W], &e[WE_TIME2_B], w->temb, R));
    FY_TRY(m->ops->silu(m->ops, fy_f32(w->temb), fy_f32(w->tmp), R * d->D));
    return linear(m, w->tmp, &e[WE_TPROJ_W], &e[WE_TPROJ_B], w->tmod, R);
}

static fy_status text_embedding(fy_wan_dit *m, const fy_tensor *e, const dims *d, ws_bufs *w)
{
    FY_TRY(linear(m, w->text_in, &e[WE_TEXT1_W], &e[WE_TEXT1_B], w->text_mid, d->BL));
    FY_TRY(m->ops->gelu_tanh(m->ops, fy_f32(w->text_mid), fy_f32(w->text_mid), d->BL * d->D));
    return linear(m, w->text_mid, &e[WE_TEXT2_W], &e[WE_TEXT2_B], w->text, d->BL);
}

/* Per run [n_runs, width] as per token [B, S, width]. */
static fy_status tap_per_token(fy_wan_dit *m, const dims *d, const char *name, const float *dev, int64_t width)
{
    if (!m->tap) return FY_OK;
    float *runs = malloc((size_t)(d->n_runs * width) * sizeof *runs);
    float *full = malloc((size_t)(d->BS * width) * sizeof *full);
    fy_status st = runs && full ? FY_OK : fy_error(FY_ERR_NOMEM, "wan transformer: out of memory");
    if (st == FY_OK) st = fy_engine_download(m->engine, runs, dev, (size_t)(d->n_runs * width) * sizeof *runs);
    for (int64_t r = 0; st == FY_OK && r < d->n_runs; r++)
        for (int64_t i = 0; i < d->runs[r].len; i++)
            memcpy(full + (d->runs[r].at + i) * width, runs + r * width, (size_t)width * sizeof *full);
    int64_t shape[3] = {d->B, d->S, width};
    if (st == FY_OK) m->tap(m->tap_user, name, full, 3, shape);
    free(runs);
    free(full);
    return st;
}

/* WanImageEmbedding: LayerNorm -> Linear -> GELU (erf) -> Linear ->
 * LayerNorm, both norms affine with eps 1e-5 (not the model's eps). */
#define IMAGE_NORM_EPS 1e-5f

static fy_status image_norm(fy_wan_dit *m, const fy_tensor *wt, const fy_tensor *bs, float *x, int64_t rows,
                            int64_t dim)
{
    const float *g = NULL, *b = NULL;
    FY_TRY(vec_f32(m, wt, 2, &g));
    FY_TRY(vec_f32(m, bs, 3, &b));
    return m->ops->layer_norm(m->ops, fy_f32(x), fy_f32(g), fy_f32(b), fy_f32(x), rows, dim, IMAGE_NORM_EPS);
}

static fy_status image_embedding(fy_wan_dit *m, const fy_tensor *e, const dims *d, ws_bufs *w)
{
    int64_t idim = m->cfg.image_dim;
    FY_TRY(image_norm(m, &e[WE_IMG_N1_W], &e[WE_IMG_N1_B], w->img_in, d->BI, idim));
    FY_TRY(linear(m, w->img_in, &e[WE_IMG_FF1_W], &e[WE_IMG_FF1_B], w->img_mid, d->BI));
    FY_TRY(m->ops->gelu(m->ops, fy_f32(w->img_mid), fy_f32(w->img_mid), d->BI * idim));
    FY_TRY(linear(m, w->img_mid, &e[WE_IMG_FF2_W], &e[WE_IMG_FF2_B], w->img, d->BI));
    return image_norm(m, &e[WE_IMG_N2_W], &e[WE_IMG_N2_B], w->img, d->BI, d->D);
}

static fy_status embed_taps(fy_wan_dit *m, const dims *d, const ws_bufs *w, bool text_done)
{
    FY_TRY(tap_rope(m, "rope.0", w->rope_c, d->S));
    FY_TRY(tap_rope(m, "rope.1", w->rope_s, d->S));
    int64_t bd[2] = {d->B, d->D}, bm[2] = {d->B, 6 * d->D}, bld[3] = {d->B, d->L, d->D};
    int64_t bsd[3] = {d->B, d->S, d->D};
    if (d->per_token) {
        FY_TRY(tap_per_token(m, d, "condition_embedder.0", w->temb, d->D));
        FY_TRY(tap_per_token(m, d, "condition_embedder.1", w->tmod, 6 * d->D));
    } else {
        FY_TRY(tap(m, "condition_embedder.0", w->temb, 2, bd));
        FY_TRY(tap(m, "condition_embedder.1", w->tmod, 2, bm));
    }
    if (text_done) FY_TRY(tap(m, "condition_embedder.2", w->text, 3, bld));
    int64_t bid[3] = {d->B, d->I, d->D};
    if (text_done && d->I) FY_TRY(tap(m, "condition_embedder.3", w->img, 3, bid));
    return tap(m, "patch_embedding", w->h, 3, bsd);
}

static fy_status embed(fy_wan_dit *m, const dims *d, ws_bufs *w, bool need_text)
{
    const fy_tensor *e = NULL;
    FY_TRY(fy_engine_acquire(m->engine, m->embed_group, &e));
    fy_status st = linear(m, w->patches, &e[WE_PATCH_W], &e[WE_PATCH_B], w->h, d->BS);
    if (st == FY_OK) st = time_embedding(m, e, d, w);
    if (st == FY_OK && need_text) st = text_embedding(m, e, d, w);
    if (st == FY_OK && need_text && d->I) st = image_embedding(m, e, d, w);
    fy_status rel = fy_engine_release(m->engine, m->embed_group);
    if (st == FY_OK) st = rel;
    if (st == FY_OK) st = embed_taps(m, d, w, need_text);
    return st;
}

/* ---- one block ------------------------------------------------------------- */

/* mod[j][r] = scale_shift_table[j] + timestep_proj[r][j] per timestep run r:
 * shift, scale, gate, then the feed-forward's c_shift, c_scale, c_gate. */
static fy_status modulation(fy_wan_dit *m, const fy_tensor *sst, const dims *d, ws_bufs *w)
{
    const float *table = NULL;
    FY_TRY(vec_f32(m, sst, 3, &table));
    for (int64_t j = 0; j < 6; j++)
        for (int64_t r = 0; r < d->n_runs; r++)
            FY_TRY(m->ops->add(m->ops, fy_f32(table + j * d->D), fy_f32(w->tmod + (r * 6 + j) * d->D),
                               fy_f32(w->mod + (j * d->R + r) * d->D), d->D));
    return FY_OK;
}

/* Modulation j of run r. */
static float *mod_of(const dims *d, const ws_bufs *w, int j, int64_t run)
{
    return w->mod + ((int64_t)j * d->R + run) * d->D;
}

/* norm(x) * (1 + scale j) + shift j' for rows [at, at + rows) of the tokens, into out. */
static fy_status norm_modulate(fy_wan_dit *m, const dims *d, const ws_bufs *w, int shift, int scale, int64_t at,
                               int64_t rows, float *out)
{
    for (piece p = {0}; next_piece(d, at, rows, &p);)
        FY_TRY(m->ops->layer_norm_modulate(m->ops, fy_f32(w->h + p.at * d->D), FY_NO_VIEW, FY_NO_VIEW,
                                           fy_f32(mod_of(d, w, scale, p.run)), fy_f32(mod_of(d, w, shift, p.run)),
                                           fy_f32(out + (p.at - at) * d->D), p.rows, d->D, p.rows, (float)m->cfg.eps));
    return FY_OK;
}

/* h[rows] += y * gate j, per run. */
static fy_status gated_add(fy_wan_dit *m, const dims *d, ws_bufs *w, int gate, int64_t at, int64_t rows,
                           const float *y)
{
    for (piece p = {0}; next_piece(d, at, rows, &p);)
        FY_TRY(m->ops->gated_add(m->ops, fy_f32(w->h + p.at * d->D), fy_f32(y + (p.at - at) * d->D),
                                 fy_f32(mod_of(d, w, gate, p.run)), p.rows, d->D, p.rows));
    return FY_OK;
}

/* norm1(h) * (1 + scale) + shift for one chunk's rows, into n. */
static fy_status norm1_rows(fy_wan_dit *m, const dims *d, ws_bufs *w, const row_chunk *c)
{
    return norm_modulate(m, d, w, 0, 1, c->at, c->rows, w->n);
}

/* One chunk of self-attention: its queries against every key of its items,
 * h += to_out(...) * gate. The chunk's rows of h change only after all k and
 * v exist, and nothing reads them again in this pass. */
static fy_status self_attention_rows(fy_wan_dit *m, const fy_tensor *a, const dims *d, ws_bufs *w,
                                     const row_chunk *c)
{
    const fy_wan_dit_config *g = &m->cfg;
    int64_t half = g->head_dim / 2, item = d->S * d->D;
    FY_TRY(norm1_rows(m, d, w, c));
    FY_TRY(linear(m, w->n, &a[WA_Q_W], &a[WA_Q_B], w->q, c->rows));
    FY_TRY(rms_norm(m, w->q, &a[WA_NORM_Q], c->rows));
    FY_TRY(m->ops->rope(m->ops, fy_f32(w->q), fy_f32(w->rope_c + c->s0 * half), fy_f32(w->rope_s + c->s0 * half),
                        c->items, c->len, g->heads, g->head_dim));
    FY_TRY(attend(m, w->q, w->k + c->b * item, w->v + c->b * item, w->o, c->items, c->len, d->S));
    FY_TRY(linear(m, w->o, &a[WA_O_W], &a[WA_O_B], w->q, c->rows));
    return gated_add(m, d, w, 2, c->at, c->rows, w->q);
}

/* h += to_out(attention(rope(norm_q(q)), rope(norm_k(k)), v)) * gate, on the
 * modulated norm1(h). Every key and value first (all queries need them),
 * then the queries; the norm is taken chunk by chunk, twice (it is cheap;
 * a whole normed copy would be a fourth [tokens, dim] buffer). */
static fy_status self_attention(fy_wan_dit *m, const fy_tensor *a, const dims *d, ws_bufs *w)
{
    const fy_wan_dit_config *c = &m->cfg;
    for (row_chunk r = {0}; next_chunk(d, &r);) {
        FY_TRY(norm1_rows(m, d, w, &r));
        FY_TRY(linear(m, w->n, &a[WA_K_W], &a[WA_K_B], w->k + r.at * d->D, r.rows));
        FY_TRY(linear(m, w->n, &a[WA_V_W], &a[WA_V_B], w->v + r.at * d->D, r.rows));
    }
    FY_TRY(rms_norm(m, w->k, &a[WA_NORM_K], d->BS));
    FY_TRY(m->ops->rope(m->ops, fy_f32(w->k), fy_f32(w->rope_c), fy_f32(w->rope_s), d->B, d->S, c->heads, c->head_dim));
    for (row_chunk r = {0}; next_chunk(d, &r);) FY_TRY(self_attention_rows(m, a, d, w, &r));
    return FY_OK;
}

typedef struct cross_kv_slot {
    float *k, *v;   /* text */
    float *ki, *vi; /* image tokens (I2V) */
    bool *valid;    /* NULL: not cached, compute every time */
} cross_kv_slot;

/* The text's keys and values for one block, and the image tokens' through
 * the added projections (what a context caches). */
static fy_status cross_kv(fy_wan_dit *m, const fy_tensor *bw, const dims *d, const ws_bufs *w, const cross_kv_slot *kv)
{
    const fy_tensor *a = &bw[WB_ATTN2];
    FY_TRY(linear(m, w->text, &a[WA_K_W], &a[WA_K_B], kv->k, d->BL));
    FY_TRY(rms_norm(m, kv->k, &a[WA_NORM_K], d->BL));
    FY_TRY(linear(m, w->text, &a[WA_V_W], &a[WA_V_B], kv->v, d->BL));
    if (!d->BI) return FY_OK;
    FY_TRY(linear(m, w->img, &bw[WB_ADD_K_W], &bw[WB_ADD_K_B], kv->ki, d->BI));
    FY_TRY(rms_norm(m, kv->ki, &bw[WB_NORM_ADDED_K], d->BI));
    return linear(m, w->img, &bw[WB_ADD_V_W], &bw[WB_ADD_V_B], kv->vi, d->BI);
}

/* h += to_out(attention(norm_q(q(norm2(h))), k, v)): no gate, no rope. Without
 * cross_attn_norm the queries come from h itself, chunk by chunk, each
 * chunk's rows read before they are updated. */
static fy_status cross_attention(fy_wan_dit *m, const fy_tensor *bw, const dims *d, ws_bufs *w,
                                 const cross_kv_slot *kv)
{
    const fy_tensor *a = &bw[WB_ATTN2];
    const float *g = NULL, *b = NULL;
    if (m->cfg.cross_attn_norm) { /* slots 2 and 3: the loop's linear and rms_norm use 0 and 1 */
        FY_TRY(vec_f32(m, &bw[WB_NORM2_W], 2, &g));
        FY_TRY(vec_f32(m, &bw[WB_NORM2_B], 3, &b));
    }
    int64_t item = d->L * d->D;
    for (row_chunk c = {0}; next_chunk(d, &c);) {
        const float *x = w->h + c.at * d->D; /* norm2 is the identity without cross_attn_norm */
        if (m->cfg.cross_attn_norm) {
            FY_TRY(m->ops->layer_norm(m->ops, fy_f32(x), fy_f32(g), fy_f32(b), fy_f32(w->n), c.rows, d->D,
                                      (float)m->cfg.eps));
            x = w->n;
        }
        FY_TRY(linear(m, x, &a[WA_Q_W], &a[WA_Q_B], w->q, c.rows));
        FY_TRY(rms_norm(m, w->q, &a[WA_NORM_Q], c.rows));
        FY_TRY(attend(m, w->q, kv->k + c.b * item, kv->v + c.b * item, w->o, c.items, c.len, d->L));
        if (d->I) { /* the image tokens' own softmax, summed before to_out */
            int64_t img = d->I * d->D;
            FY_TRY(attend(m, w->q, kv->ki + c.b * img, kv->vi + c.b * img, w->o2, c.items, c.len, d->I));
            FY_TRY(m->ops->add(m->ops, fy_f32(w->o), fy_f32(w->o2), fy_f32(w->o), c.rows * d->D));
        }
        FY_TRY(linear(m, w->o, &a[WA_O_W], &a[WA_O_B], w->q, c.rows));
        FY_TRY(
            m->ops->add(m->ops, fy_f32(w->h + c.at * d->D), fy_f32(w->q), fy_f32(w->h + c.at * d->D), c.rows * d->D));
    }
    return FY_OK;
}

/* h += ffn(modulated norm3(h)) * c_gate, ffn = Linear -> GELU(tanh) -> Linear. */
static fy_status feed_forward(fy_wan_dit *m, const fy_tensor *bw, const dims *d, ws_bufs *w)
{
    for (row_chunk c = {0}; next_chunk(d, &c);) {
        FY_TRY(norm_modulate(m, d, w, 3, 4, c.at, c.rows, w->n));
        FY_TRY(linear(m, w->n, &bw[WB_FFN1_W], &bw[WB_FFN1_B], w->ff, c.rows));
        FY_TRY(m->ops->gelu_tanh(m->ops, fy_f32(w->ff), fy_f32(w->ff), c.rows * m->cfg.ffn_dim));
        FY_TRY(linear(m, w->ff, &bw[WB_FFN2_W], &bw[WB_FFN2_B], w->q, c.rows));
        FY_TRY(gated_add(m, d, w, 5, c.at, c.rows, w->q));
    }
    return FY_OK;
}

static fy_status block_forward(fy_wan_dit *m, const fy_tensor *bw, const dims *d, ws_bufs *w, cross_kv_slot kv)
{
    FY_TRY(modulation(m, &bw[WB_SST], d, w));
    FY_TRY(self_attention(m, &bw[WB_ATTN1], d, w));
    if (!kv.valid || !*kv.valid) {
        FY_TRY(cross_kv(m, bw, d, w, &kv));
        m->timing.cross_kv_computed++;
        if (kv.valid) *kv.valid = true;
    }
    FY_TRY(cross_attention(m, bw, d, w, &kv));
    return feed_forward(m, bw, d, w);
}

/* The group's weights back in WB_ order (norm2 is absent without
 * cross_attn_norm, the image K/V without image_dim). */
static void unpack_block(const fy_wan_dit *m, const fy_tensor *dev, fy_tensor *full)
{
    int n = 0;
    for (int i = 0; i < WB_COUNT; i++) {
        if (fy_wan_block_has(&m->cfg, i))
            full[i] = dev[n++];
        else
            memset(&full[i], 0, sizeof full[i]);
    }
}

static cross_kv_slot kv_slot(fy_wan_dit_context *cache, const dims *d, ws_bufs *w, int64_t i)
{
    if (!cache) return (cross_kv_slot){w->ck, w->cv, w->cki, w->cvi, NULL};
    float *k = cache->kv + (size_t)i * 2 * (size_t)((d->BL + d->BI) * d->D);
    float *ki = k + 2 * d->BL * d->D;
    return (cross_kv_slot){k, k + d->BL * d->D, ki, ki + d->BI * d->D, &cache->valid[i]};
}

static fy_status run_blocks(fy_wan_dit *m, const dims *d, ws_bufs *w, fy_wan_dit_context *cache)
{
    for (int64_t i = 0; i < m->cfg.num_layers; i++) {
        double t0 = fy_backend_now();
        const fy_tensor *dev = NULL;
        FY_TRY(fy_engine_acquire(m->engine, m->block_groups[i], &dev));
        m->timing.weight_wait += fy_backend_now() - t0;
        fy_tensor bw[WB_COUNT];
        unpack_block(m, dev, bw);
        fy_status st = block_forward(m, bw, d, w, kv_slot(cache, d, w, i));
        fy_status rel = fy_engine_release(m->engine, m->block_groups[i]);
        if (st != FY_OK) return st;
        FY_TRY(rel);
        double dt = fy_backend_now() - t0;
        if (dt > m->timing.block_max) m->timing.block_max = dt;
        char name[64];
        snprintf(name, sizeof name, "blocks.%lld", (long long)i);
        int64_t bsd[3] = {d->B, d->S, d->D};
        FY_TRY(tap(m, name, w->h, 3, bsd));
    }
    return FY_OK;
}

/* ---- head ---------------------------------------------------------------------- */

/* shift, scale = scale_shift_table + temb (the time embedding, not its
 * projection), per timestep run. */
static fy_status head(fy_wan_dit *m, const dims *d, const fy_wan_dit_shape *s, ws_bufs *w, float *out)
{
    const fy_tensor *hw = NULL;
    FY_TRY(fy_engine_acquire(m->engine, m->head_group, &hw));
    const float *table = NULL;
    fy_status st = vec_f32(m, &hw[WH_SST], 3, &table);
    for (int64_t j = 0; st == FY_OK && j < 2; j++)
        for (int64_t r = 0; st == FY_OK && r < d->n_runs; r++)
            st = m->ops->add(m->ops, fy_f32(table + j * d->D), fy_f32(w->temb + r * d->D),
                             fy_f32(w->omod + (j * d->R + r) * d->D), d->D);
    for (piece p = {0}; st == FY_OK && next_piece(d, 0, d->BS, &p);)
        st = m->ops->layer_norm_modulate(m->ops, fy_f32(w->h + p.at * d->D), FY_NO_VIEW, FY_NO_VIEW,
                                         fy_f32(w->omod + (d->R + p.run) * d->D), fy_f32(w->omod + p.run * d->D),
                                         fy_f32(w->k + p.at * d->D), p.rows, d->D, p.rows, (float)m->cfg.eps);
    /* The blocks' keys are spent: the head's normed rows go there. */
    if (st == FY_OK) st = linear(m, w->k, &hw[WH_PROJ_W], &hw[WH_PROJ_B], w->ff, d->BS);
    fy_status rel = fy_engine_release(m->engine, m->head_group);
    if (st != FY_OK) return st;
    FY_TRY(rel);
    int64_t shape[3] = {d->B, d->S, d->p_out};
    FY_TRY(tap(m, "proj_out", w->ff, 3, shape));
    size_t bytes = (size_t)(d->BS * d->p_out) * sizeof(float);
    float *host = malloc(bytes);
    if (!host) return fy_error(FY_ERR_NOMEM, "wan transformer: out of memory");
    st = fy_engine_download(m->engine, host, w->ff, bytes);
    if (st == FY_OK) fy_wan_unpatchify(&m->cfg, host, out, d->B, m->cfg.out_channels, s->frames, s->height, s->width);
    free(host);
    return st;
}

/* ---- forward ------------------------------------------------------------------- */

/* The ops are made at the first forward, once the plan's resident weights and
 * ring hold their device memory (a GPU's ops take scratch from the same pool). */
static fy_status ensure_ops(fy_wan_dit *m)
{
    return m->ops ? FY_OK : fy_engine_ops_create(m->engine, m->threads, &m->ops);
}

fy_status fy_wan_dit_forward(fy_wan_dit *m, const fy_wan_dit_shape *s, const float *latents,
                             const float *timesteps, const float *text, fy_wan_dit_context *cache, float *out)
{
    return fy_wan_dit_forward_image(m, s, latents, timesteps, text, NULL, cache, out);
}

fy_status fy_wan_dit_forward_image(fy_wan_dit *m, const fy_wan_dit_shape *s, const float *latents,
                                   const float *timesteps, const float *text, const float *image,
                                   fy_wan_dit_context *cache, float *out)
{
    if (!m || !s || !latents || !timesteps || !text || !out || (s->image_len && !image))
        return fy_error(FY_ERR_INVALID, "fy_wan_dit_forward: NULL argument");
    FY_TRY(fy_wan_dit_check_shape(m, s));
    FY_TRY(ensure_ops(m));
    memset(&m->timing, 0, sizeof m->timing);
    double t0 = fy_backend_now();
    dims d;
    ws_bufs w;
    fy_workspace t;
    make_dims(m, s, &d);
    ws_table(m, &d, &w, &t);
    if (cache) FY_TRY(fy_wan_context_bind(cache, m, d.B, d.L, d.I));
    bool need_text = !cache || !fy_wan_context_complete(cache);
    FY_TRY(fy_ws_alloc(&t, m->engine));
    m->vec_scratch = w.vec;
    time_run *runs = NULL;
    fy_status st = make_runs(&d, timesteps, &runs, &d.n_runs);
    d.runs = runs;
    if (st == FY_OK) st = upload_inputs(m, &d, s, latents, text, image, need_text, &w);
    if (st == FY_OK) st = embed(m, &d, &w, need_text);
    double t1 = fy_backend_now();
    if (st == FY_OK) st = run_blocks(m, &d, &w, cache);
    double t2 = fy_backend_now();
    if (st == FY_OK) st = head(m, &d, s, &w, out);
    fy_ws_free(&t, m->engine);
    free(runs);
    double t3 = fy_backend_now();
    m->timing.embed = t1 - t0;
    m->timing.blocks = t2 - t1;
    m->timing.head = t3 - t2;
    m->timing.total = t3 - t0;
    return st;
}
