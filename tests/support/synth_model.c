/* Synthetic model: see synth_model.h. */
#include "synth_model.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferry/safetensors.h"

struct fyt_synth {
    fyt_synth_config cfg;
    char dir[256];
    char path[300];
    fy_st_file *file;
    fy_tensor embed;
    fy_tensor *w;    /* blocks x (1 or 2) */
    int per_block;
    int embed_group;
    int *block_group;
    float *input;
};

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static float next_uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static float *random_floats(size_t n, float scale)
{
    float *p = malloc(n * sizeof *p);
    if (p) for (size_t i = 0; i < n; i++) p[i] = next_uniform() * scale;
    return p;
}

static fy_status write_file(fyt_synth *s)
{
    int d = s->cfg.dim;
    int64_t mat[2] = {d, d}, vec[1] = {d};
    size_t dd = (size_t)d * (size_t)d;
    /* relu keeps half the energy: sqrt(6/D) keeps activations near unit scale. */
    float scale = sqrtf(6.0f / (float)d);
    fy_st_writer *w = NULL;
    FY_TRY(fy_st_writer_create(&w));
    fy_status st = FY_OK;
    float *buf = random_floats(dd, scale);
    if (!buf) st = fy_error(FY_ERR_NOMEM, "synth: out of memory");
    if (st == FY_OK) st = fy_st_writer_add(w, "embed.weight", FY_F32, 2, mat, buf, dd * 4);
    for (int b = 0; b < s->cfg.blocks && st == FY_OK; b++) {
        char name[64];
        for (size_t i = 0; i < dd; i++) buf[i] = next_uniform() * scale;
        snprintf(name, sizeof name, "blocks.%d.weight", b);
        st = fy_st_writer_add(w, name, FY_F32, 2, mat, buf, dd * 4);
        if (st == FY_OK && s->cfg.bias) {
            for (int i = 0; i < d; i++) buf[i] = next_uniform() * 0.1f;
            snprintf(name, sizeof name, "blocks.%d.bias", b);
            st = fy_st_writer_add(w, name, FY_F32, 1, vec, buf, (uint64_t)d * 4);
        }
    }
    if (st == FY_OK) st = fy_st_writer_finish(w, s->path);
    fy_st_writer_free(w);
    free(buf);
    return st;
}

static fy_status open_views(fyt_synth *s)
{
    FY_TRY(fy_st_open(s->path, &s->file));
    FY_TRY(fy_st_view(s->file, "embed.weight", &s->embed));
    for (int b = 0; b < s->cfg.blocks; b++) {
        char name[64];
        snprintf(name, sizeof name, "blocks.%d.weight", b);
        FY_TRY(fy_st_view(s->file, name, &s->w[b * s->per_block]));
        if (s->cfg.bias) {
            snprintf(name, sizeof name, "blocks.%d.bias", b);
            FY_TRY(fy_st_view(s->file, name, &s->w[b * s->per_block + 1]));
        }
    }
    return FY_OK;
}

fy_status fyt_synth_create(const fyt_synth_config *cfg, fyt_synth **out)
{
    *out = NULL;
    if (cfg->blocks < 1 || cfg->dim < 1 || cfg->rows < 1) return fy_error(FY_ERR_INVALID, "synth: bad config");
    fyt_synth *s = calloc(1, sizeof *s);
    if (!s) return fy_error(FY_ERR_NOMEM, "synth: out of memory");
    s->cfg = *cfg;
    s->per_block = cfg->bias ? 2 : 1;
    rng = 0x2545F4914F6CDD1Dull ^ (uint64_t)cfg->dim * 1315423911u ^ (uint64_t)cfg->blocks;
    const char *base = getenv("TMPDIR");
    snprintf(s->dir, sizeof s->dir, "%s/ferry-synth-XXXXXX", base && *base ? base : "/tmp");
    s->w = calloc((size_t)cfg->blocks * 2, sizeof *s->w);
    s->block_group = calloc((size_t)cfg->blocks, sizeof *s->block_group);
    s->input = random_floats((size_t)cfg->rows * (size_t)cfg->dim, 1.0f);
    fy_status st = FY_OK;
    if (!s->w || !s->block_group || !s->input) st = fy_error(FY_ERR_NOMEM, "synth: out of memory");
    else if (!mkdtemp(s->dir)) st = fy_error(FY_ERR_IO, "synth: cannot make a temp folder");
    if (st == FY_OK) {
        snprintf(s->path, sizeof s->path, "%s/model.safetensors", s->dir);
        st = write_file(s);
    }
    if (st == FY_OK) st = open_views(s);
    if (st != FY_OK) {
        fyt_synth_free(s);
        return st;
    }
    *out = s;
    return FY_OK;
}

void fyt_synth_free(fyt_synth *s)
{
    if (!s) return;
    fy_st_close(s->file);
    if (s->path[0]) unlink(s->path);
    if (s->dir[0] && !strstr(s->dir, "XXXXXX")) rmdir(s->dir);
    free(s->w);
    free(s->block_group);
    free(s->input);
    free(s);
}

fy_status fyt_synth_declare(fyt_synth *s, fy_engine *e)
{
    int comp;
    FY_TRY(fy_engine_add_component(e, "transformer", &comp));
    FY_TRY(fy_engine_add_group(e, comp, "embed", FY_GROUP_SMALL, &s->embed, 1, &s->embed_group));
    for (int b = 0; b < s->cfg.blocks; b++) {
        char name[32];
        snprintf(name, sizeof name, "blocks.%d", b);
        FY_TRY(fy_engine_add_group(e, comp, name, FY_GROUP_BLOCK, &s->w[b * s->per_block], s->per_block,
                                   &s->block_group[b]));
    }
    return fy_engine_reserve(e, fyt_synth_activation_bytes(s));
}

uint64_t fyt_synth_activation_bytes(const fyt_synth *s)
{
    return 2ull * (uint64_t)s->cfg.rows * (uint64_t)s->cfg.dim * sizeof(float);
}

uint64_t fyt_synth_block_bytes(const fyt_synth *s)
{
    uint64_t w = (uint64_t)s->cfg.dim * (uint64_t)s->cfg.dim * 4;
    uint64_t b = (uint64_t)s->cfg.dim * 4;
    w = (w + 255) / 256 * 256;
    b = (b + 255) / 256 * 256;
    return s->cfg.bias ? w + b : w;
}

/* out = relu(in W + b) (or without relu for the embedding). */
static void layer(int rows, int d, const float *in, const float *w, const float *bias, float *out, bool relu)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, d, 1.0f, in, d, w, d, 0.0f, out, d);
    size_t n = (size_t)rows * (size_t)d;
    for (size_t i = 0; i < n; i++) {
        float v = out[i] + (bias ? bias[i % (size_t)d] : 0.0f);
        out[i] = relu && v < 0.0f ? 0.0f : v;
    }
}

void fyt_synth_block_host(const fyt_synth *s, int block, const float *in, float *out)
{
    const fy_tensor *w = &s->w[block * s->per_block];
    layer(s->cfg.rows, s->cfg.dim, in, w[0].data, s->cfg.bias ? w[1].data : NULL, out, true);
}

static fy_status run_blocks(fyt_synth *s, fy_engine *e, float **cur, float **nxt)
{
    for (int b = 0; b < s->cfg.blocks; b++) {
        const fy_tensor *w = NULL;
        FY_TRY(fy_engine_acquire(e, s->block_group[b], &w));
        layer(s->cfg.rows, s->cfg.dim, *cur, w[0].data, s->cfg.bias ? w[1].data : NULL, *nxt, true);
        FY_TRY(fy_engine_release(e, s->block_group[b]));
        float *t = *cur;
        *cur = *nxt;
        *nxt = t;
    }
    return FY_OK;
}

fy_status fyt_synth_run(fyt_synth *s, fy_engine *e, int steps, float *out)
{
    size_t bytes = (size_t)s->cfg.rows * (size_t)s->cfg.dim * sizeof(float);
    float *a = NULL, *b = NULL;
    fy_status st = fy_engine_alloc(e, bytes, "activations a", (void **)&a);
    if (st == FY_OK) st = fy_engine_alloc(e, bytes, "activations b", (void **)&b);
    if (st == FY_OK) st = fy_engine_upload(e, a, s->input, bytes);
    for (int step = 0; step < steps && st == FY_OK; step++) {
        /* Each step embeds the previous step's output, so steps differ. */
        const fy_tensor *emb = NULL;
        st = fy_engine_acquire(e, s->embed_group, &emb);
        if (st != FY_OK) break;
        layer(s->cfg.rows, s->cfg.dim, a, emb[0].data, NULL, b, false);
        st = fy_engine_release(e, s->embed_group);
        float *cur = b, *nxt = a;
        if (st == FY_OK) st = run_blocks(s, e, &cur, &nxt);
        if (cur != a) { /* keep the step's output in a */
            float *t = a;
            a = cur;
            b = t;
        }
    }
    if (st == FY_OK) st = fy_engine_download(e, out, a, bytes);
    fy_engine_free_buffer(e, a);
    fy_engine_free_buffer(e, b);
    return st;
}

const float *fyt_synth_input(const fyt_synth *s)
{
    return s->input;
}

const fyt_synth_config *fyt_synth_cfg(const fyt_synth *s)
{
    return &s->cfg;
}

const char *fyt_synth_path(const fyt_synth *s)
{
    return s->path;
}

fyt_synth_result fyt_synth_run_engine(fyt_synth *s, const fy_run_options *o, int steps)
{
    fyt_synth_result r;
    memset(&r, 0, sizeof r);
    r.out = calloc((size_t)s->cfg.rows * (size_t)s->cfg.dim, sizeof(float));
    if (!r.out) {
        r.status = fy_error(FY_ERR_NOMEM, "synth: out of memory");
        return r;
    }
    fy_engine *e = NULL;
    r.status = fy_engine_create(o, &e);
    if (r.status != FY_OK) return r;
    r.status = fyt_synth_declare(s, e);
    if (r.status == FY_OK) r.status = fy_engine_prepare(e);
    double t0 = fy_backend_now();
    if (r.status == FY_OK) r.status = fyt_synth_run(s, e, steps, r.out);
    r.wall = fy_backend_now() - t0;
    if (r.status == FY_OK) r.status = fy_engine_finish(e);
    r.stats = *fy_engine_stats_get(e);
    r.plan = *fy_engine_plan(e);
    fy_engine_free(e);
    return r;
}
