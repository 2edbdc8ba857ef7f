/* One forward of the full-size Wan2.1-T2V-1.3B transformer on the CPU, with
 * random bf16 weights in the diffusers layout (written into a temp folder
 * with a config.json, ~2.8 GB), batch 2 (the CFG pair), 2 threads.
 *
 *     bench_wan_dit [--threads N] [--latent FxHxW] [--text-len L] [--repeats N] [--f32]
 *                   [--normal] [--fp8]
 *
 * Reports the first forward through a cross-attention K/V context (K/V
 * computed; the weights' pages are touched for the first time), then N
 * times (default 3) a cached step (K/V reused) and a new-prompt step
 * (context invalidated: K/V recomputed with warm pages, the like-for-like
 * number against a framework that recomputes K/V every step), with time
 * per block and the share of the time in matrix products and attention,
 * and the best of each kind (other load on the machine only adds time).
 *
 * --normal draws the weights from N(0, 0.02^2) instead of U(-0.05, 0.05).
 * --fp8 instead runs one forward (no K/V context) as stored and once per
 * --storage-dtype fp8_e4m3|fp8_e5m2 x --fp8-scale none|tensor|row, and
 * prints each one's relative error against the as-stored output (max|d| /
 * max|ref|, the fixtures' measure, and the RMS ratio), the bytes of a block
 * and the time to quantise (prepare) and to run the forward. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ferry/backend.h"
#include "ferry/dtype.h"
#include "ferry/engine.h"
#include "ferry/model.h"
#include "ferry/quant.h"
#include "ferry/safetensors.h"
#include "ferry/wan_dit.h"

/* Wan-AI/Wan2.1-T2V-1.3B-Diffusers transformer/config.json. */
static const char CONFIG_JSON[] =
    "{\"_class_name\": \"WanTransformer3DModel\", \"_diffusers_version\": \"0.33.0.dev0\",\n"
    " \"added_kv_proj_dim\": null, \"attention_head_dim\": 128, \"cross_attn_norm\": true,\n"
    " \"eps\": 1e-06, \"ffn_dim\": 8960, \"freq_dim\": 256, \"image_dim\": null, \"in_channels\": 16,\n"
    " \"num_attention_heads\": 12, \"num_layers\": 30, \"out_channels\": 16, \"patch_size\": [1, 2, 2],\n"
    " \"qk_norm\": \"rms_norm_across_heads\", \"rope_max_seq_len\": 1024, \"text_dim\": 4096}\n";

typedef struct bench_args {
    int threads;
    int64_t frames, height, width, text_len;
    bool f32;
    int repeats;
    bool normal, fp8;
    uint64_t host_budget; /* --max-memory-cpu: the disk tier below the model's bytes */
    bool emu;             /* --emu: the emulated device (uploads through the copy engine) */
} bench_args;

/* ---- the random model ----------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static bool normal_weights;

/* Box-Muller on rnd()'s uniforms. */
static float gauss(void)
{
    float u = 0.5f * (rnd() + 1.0f), v = 0.5f * (rnd() + 1.0f);
    if (u < 1e-7f) u = 1e-7f;
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

typedef struct pool {
    void *data;
    size_t n, elem;
    fy_dtype dtype;
    size_t next;
} pool;

/* Every tensor reads a window of one random pool (distinct offsets), so
 * writing 1.3 B parameters needs 64 MB of memory, not 2.8 GB. */
static int pool_init(pool *p, fy_dtype dtype, size_t n)
{
    p->dtype = dtype;
    p->elem = fy_dtype_size(dtype);
    p->n = n;
    p->next = 0;
    p->data = malloc(n * p->elem);
    if (!p->data) return -1;
    for (size_t i = 0; i < n; i++) {
        float v = normal_weights ? 0.02f * gauss() : 0.05f * rnd();
        if (dtype == FY_BF16)
            ((uint16_t *)p->data)[i] = fy_f32_to_bf16(v);
        else
            ((float *)p->data)[i] = v;
    }
    return 0;
}

static const void *pool_take(pool *p, size_t count)
{
    size_t span = p->n - count;
    p->next = (p->next * 2654435761u + 977) % (span + 1);
    return (const char *)p->data + p->next * p->elem;
}

static fy_status add(fy_st_writer *w, pool *p, const char *name, int ndim, const int64_t *shape)
{
    size_t count = 1;
    for (int i = 0; i < ndim; i++) count *= (size_t)shape[i];
    return fy_st_writer_add(w, name, p->dtype, ndim, shape, pool_take(p, count), count * p->elem);
}

static fy_status add_linear(fy_st_writer *w, pool *p, const char *prefix, int64_t in, int64_t out)
{
    char name[256];
    int64_t ws[2] = {out, in};
    snprintf(name, sizeof name, "%s.weight", prefix);
    FY_TRY(add(w, p, name, 2, ws));
    snprintf(name, sizeof name, "%s.bias", prefix);
    return add(w, p, name, 1, &out);
}

static fy_status add_block(fy_st_writer *w, pool *p, int i, int64_t dim, int64_t ffn)
{
    static const char *const proj[4] = {"to_q", "to_k", "to_v", "to_out.0"};
    char name[256];
    for (int a = 1; a <= 2; a++) {
        for (int j = 0; j < 4; j++) {
            snprintf(name, sizeof name, "blocks.%d.attn%d.%s", i, a, proj[j]);
            FY_TRY(add_linear(w, p, name, dim, dim));
        }
        snprintf(name, sizeof name, "blocks.%d.attn%d.norm_q.weight", i, a);
        FY_TRY(add(w, p, name, 1, &dim));
        snprintf(name, sizeof name, "blocks.%d.attn%d.norm_k.weight", i, a);
        FY_TRY(add(w, p, name, 1, &dim));
    }
    snprintf(name, sizeof name, "blocks.%d.norm2.weight", i);
    FY_TRY(add(w, p, name, 1, &dim));
    snprintf(name, sizeof name, "blocks.%d.norm2.bias", i);
    FY_TRY(add(w, p, name, 1, &dim));
    snprintf(name, sizeof name, "blocks.%d.ffn.net.0.proj", i);
    FY_TRY(add_linear(w, p, name, dim, ffn));
    snprintf(name, sizeof name, "blocks.%d.ffn.net.2", i);
    FY_TRY(add_linear(w, p, name, ffn, dim));
    int64_t sst[3] = {1, 6, dim};
    snprintf(name, sizeof name, "blocks.%d.scale_shift_table", i);
    return add(w, p, name, 3, sst);
}

static fy_status write_weights(const char *path, fy_dtype dtype)
{
    const int64_t dim = 1536, ffn = 8960, freq = 256, text = 4096, layers = 30, patch = 16 * 4;
    pool p;
    if (pool_init(&p, dtype, (size_t)32 << 20) != 0) return fy_error(FY_ERR_NOMEM, "bench: out of memory");
    fy_st_writer *w = NULL;
    fy_status st = fy_st_writer_create(&w);
    int64_t pe[5] = {dim, 16, 1, 2, 2}, head_sst[3] = {1, 2, dim};
    if (st == FY_OK) st = add(w, &p, "patch_embedding.weight", 5, pe);
    if (st == FY_OK) st = add(w, &p, "patch_embedding.bias", 1, &dim);
    if (st == FY_OK) st = add_linear(w, &p, "condition_embedder.time_embedder.linear_1", freq, dim);
    if (st == FY_OK) st = add_linear(w, &p, "condition_embedder.time_embedder.linear_2", dim, dim);
    if (st == FY_OK) st = add_linear(w, &p, "condition_embedder.time_proj", dim, 6 * dim);
    if (st == FY_OK) st = add_linear(w, &p, "condition_embedder.text_embedder.linear_1", text, dim);
    if (st == FY_OK) st = add_linear(w, &p, "condition_embedder.text_embedder.linear_2", dim, dim);
    for (int i = 0; st == FY_OK && i < layers; i++) st = add_block(w, &p, i, dim, ffn);
    if (st == FY_OK) st = add(w, &p, "scale_shift_table", 3, head_sst);
    if (st == FY_OK) st = add_linear(w, &p, "proj_out", dim, patch);
    if (st == FY_OK) st = fy_st_writer_finish(w, path);
    fy_st_writer_free(w);
    free(p.data);
    return st;
}

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    int ok = fputs(text, f) >= 0;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static fy_status make_model(const char *dir, bool f32)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/model_index.json", dir);
    if (write_text(path, "{\"_class_name\": \"WanPipeline\", \"transformer\": [\"diffusers\", \"WanTransformer3DModel\"]}\n"))
        return fy_error(FY_ERR_IO, "%s: cannot write", path);
    snprintf(path, sizeof path, "%s/transformer", dir);
    if (mkdir(path, 0755) != 0) return fy_error(FY_ERR_IO, "%s: cannot create", path);
    snprintf(path, sizeof path, "%s/transformer/config.json", dir);
    if (write_text(path, CONFIG_JSON)) return fy_error(FY_ERR_IO, "%s: cannot write", path);
    snprintf(path, sizeof path, "%s/transformer/diffusion_pytorch_model.safetensors", dir);
    return write_weights(path, f32 ? FY_F32 : FY_BF16);
}

/* ---- the run ---------------------------------------------------------------- */

static void report(const char *label, const fy_wan_dit_timing *t, int64_t layers)
{
    printf("%-28s total %7.3f s | embed %6.3f s | blocks %7.3f s (%.3f s/block, max %.3f) | head %.3f s\n"
           "%-28s gemm %5.1f%% | attention %5.1f%% | other %5.1f%% | cross k/v computed in %d blocks\n",
           label, t->total, t->embed, t->blocks, t->blocks / (double)layers, t->block_max, t->head, "",
           100.0 * t->gemm / t->total, 100.0 * t->attention / t->total,
           100.0 * (t->total - t->gemm - t->attention) / t->total, t->cross_kv_computed);
}

/* Other work on a shared machine only ever slows a run down: keep the fastest. */
static void keep_best(fy_wan_dit_timing *best, const fy_wan_dit_timing *t)
{
    if (best->total == 0 || t->total < best->total) *best = *t;
}

static fy_status run(const char *dir, const bench_args *a)
{
    fy_model *model = NULL;
    FY_TRY(fy_model_open(dir, &model));
    fy_run_options o;
    fy_run_options_init(&o);
    o.threads = a->threads;
    o.max_memory_cpu = a->host_budget;
    if (a->emu) {
        o.device = FY_DEVICE_EMU;
        o.offload = FY_OFFLOAD_LAYERWISE;
    }
    fy_engine *e = NULL;
    fy_wan_dit *m = NULL;
    fy_wan_dit_context *kv = NULL;
    fy_wan_dit_shape s = {2, a->frames, a->height, a->width, a->text_len, 0, 0};
    float *x = NULL, *text = NULL, *out = NULL;
    float t[2] = {999.0f, 417.5f};
    fy_status st = fy_engine_create(&o, &e);
    if (st == FY_OK) st = fy_wan_dit_load(fy_model_component(model, "transformer"), e, &m);
    if (st == FY_OK) st = fy_wan_dit_set_threads(m, a->threads);
    if (st == FY_OK) st = fy_engine_reserve(e, fy_wan_dit_activation_bytes(m, &s) + fy_wan_dit_context_bytes(m, 2, s.text_len));
    double t_prepare = fy_backend_now();
    if (st == FY_OK) st = fy_engine_prepare(e);
    if (st == FY_OK) st = fy_wan_dit_context_create(m, &kv);
    const fy_wan_dit_config *c = m ? fy_wan_dit_get_config(m) : NULL;
    if (st == FY_OK) {
        size_t nx = (size_t)(2 * c->in_channels * s.frames * s.height * s.width);
        size_t nt = (size_t)(2 * s.text_len * c->text_dim);
        x = malloc(nx * sizeof *x);
        out = malloc(nx * sizeof *out);
        text = malloc(nt * sizeof *text);
        if (!x || !out || !text) st = fy_error(FY_ERR_NOMEM, "bench: out of memory");
        for (size_t i = 0; st == FY_OK && i < nx; i++) x[i] = rnd();
        for (size_t i = 0; st == FY_OK && i < nt; i++) text[i] = 0.1f * rnd();
    }
    if (st == FY_OK) {
        printf("Wan2.1-1.3B transformer (random %s weights), batch 2, latent %lldx%lldx%lld -> %lld tokens, "
               "text %lld tokens, %d threads\n", a->f32 ? "f32" : "bf16", (long long)s.frames, (long long)s.height,
               (long long)s.width,
               (long long)(s.frames / c->patch[0] * (s.height / c->patch[1]) * (s.width / c->patch[2])),
               (long long)s.text_len, a->threads);
    }
    if (st == FY_OK) st = fy_wan_dit_forward(m, &s, x, t, text, kv, out);
    if (st == FY_OK) report("first forward (k/v computed)", fy_wan_dit_last_timing(m), c->num_layers);
    if (st == FY_OK && a->host_budget) {
        const fy_engine_stats *es = fy_engine_stats_get(e);
        uint64_t bytes = 0;
        for (int g = 0; g < fy_engine_group_count(e); g++) {
            fy_group_info gi;
            if (fy_engine_group_info(e, g, &gi) == FY_OK) bytes += gi.bytes;
        }
        double bw = es->disk_bandwidth;
        printf("cold start: prepare to the end of the first forward %.2f s; weights %.2f GiB / %.2f GB/s disk = "
               "%.2f s; %.2f GiB read from disk by then, disk stall %.2f s\n",
               fy_backend_now() - t_prepare, bytes / 1073741824.0, bw / 1e9, bw > 0 ? bytes / bw : 0.0,
               es->disk_bytes_read / 1073741824.0, es->disk_stall_time);
    }
    fy_wan_dit_timing best_cached = {0}, best_new = {0};
    for (int r = 0; st == FY_OK && r < a->repeats; r++) {
        st = fy_wan_dit_forward(m, &s, x, t, text, kv, out);
        if (st != FY_OK) break;
        report("cached step (k/v reused)", fy_wan_dit_last_timing(m), c->num_layers);
        keep_best(&best_cached, fy_wan_dit_last_timing(m));
        fy_wan_dit_context_invalidate(kv); /* a new prompt; the weights' pages are warm now */
        st = fy_wan_dit_forward(m, &s, x, t, text, kv, out);
        if (st != FY_OK) break;
        report("new prompt (k/v computed)", fy_wan_dit_last_timing(m), c->num_layers);
        keep_best(&best_new, fy_wan_dit_last_timing(m));
    }
    if (st == FY_OK && a->repeats > 0) {
        printf("best of %d:\n", a->repeats);
        report("  cached step", &best_cached, c->num_layers);
        report("  new prompt", &best_new, c->num_layers);
    }
    if (st == FY_OK) {
        double sum = 0;
        size_t n = (size_t)(2 * c->out_channels * s.frames * s.height * s.width);
        for (size_t i = 0; i < n; i++) sum += out[i] * out[i];
        printf("output rms %.6g\n", n ? sqrt(sum / (double)n) : 0.0);
    }
    fy_wan_dit_context_free(kv);
    if (e) (void)fy_engine_finish(e);
    if (e && st == FY_OK) fy_engine_stats_print(e, stdout);
    free(x);
    free(text);
    free(out);
    fy_wan_dit_free(m);
    fy_engine_free(e);
    fy_model_free(model);
    return st;
}

/* ---- fp8 storage ------------------------------------------------------------ */

typedef struct fp8_case {
    fy_dtype storage;
    fy_fp8_scale scale;
} fp8_case;

/* One forward under storage/scale into out; block bytes and times. */
static fy_status forward_once(fy_model *model, const bench_args *a, const fp8_case *k, const float *x,
                              const float *text, float *out, uint64_t *block_bytes, double *prep_s, double *fwd_s)
{
    fy_run_options o;
    fy_run_options_init(&o);
    o.threads = a->threads;
    o.storage_dtype = k->storage;
    o.fp8_scale = k->scale;
    fy_engine *e = NULL;
    fy_wan_dit *m = NULL;
    fy_wan_dit_shape s = {2, a->frames, a->height, a->width, a->text_len, 0, 0};
    float t[2] = {999.0f, 417.5f};
    fy_status st = fy_engine_create(&o, &e);
    if (st == FY_OK) st = fy_wan_dit_load(fy_model_component(model, "transformer"), e, &m);
    if (st == FY_OK) st = fy_wan_dit_set_threads(m, a->threads);
    if (st == FY_OK) st = fy_engine_reserve(e, fy_wan_dit_activation_bytes(m, &s));
    double t0 = fy_backend_now();
    if (st == FY_OK) st = fy_engine_prepare(e);
    double t1 = fy_backend_now();
    if (st == FY_OK) st = fy_wan_dit_forward(m, &s, x, t, text, NULL, out);
    *fwd_s = fy_backend_now() - t1;
    *prep_s = t1 - t0;
    fy_group_info gi;
    for (int g = 0; st == FY_OK && g < fy_engine_group_count(e); g++)
        if (fy_engine_group_info(e, g, &gi) == FY_OK && gi.kind == FY_GROUP_BLOCK) *block_bytes = gi.bytes;
    if (e) (void)fy_engine_finish(e);
    fy_wan_dit_free(m);
    fy_engine_free(e);
    return st;
}

static void compare(const float *ours, const float *ref, size_t n, double *max_rel, double *rms_rel)
{
    double dmax = 0, rmax = 0, d2 = 0, r2 = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)ours[i] - ref[i]);
        dmax = d > dmax ? d : dmax;
        rmax = fabs(ref[i]) > rmax ? fabs(ref[i]) : rmax;
        d2 += d * d;
        r2 += (double)ref[i] * ref[i];
    }
    *max_rel = rmax > 0 ? dmax / rmax : 0;
    *rms_rel = r2 > 0 ? sqrt(d2 / r2) : 0;
}

static fy_status run_fp8(const char *dir, const bench_args *a)
{
    static const fp8_case cases[] = {
        {FY_DTYPE_COUNT, FY_FP8_SCALE_ROW},
        {FY_F8_E4M3, FY_FP8_SCALE_NONE}, {FY_F8_E4M3, FY_FP8_SCALE_TENSOR}, {FY_F8_E4M3, FY_FP8_SCALE_ROW},
        {FY_F8_E5M2, FY_FP8_SCALE_NONE}, {FY_F8_E5M2, FY_FP8_SCALE_TENSOR}, {FY_F8_E5M2, FY_FP8_SCALE_ROW},
    };
    fy_model *model = NULL;
    FY_TRY(fy_model_open(dir, &model));
    const int64_t in_ch = 16, text_dim = 4096;
    size_t nx = (size_t)(2 * in_ch * a->frames * a->height * a->width), nt = (size_t)(2 * a->text_len * text_dim);
    float *x = malloc(nx * sizeof *x), *text = malloc(nt * sizeof *text);
    float *ref = malloc(nx * sizeof *ref), *out = malloc(nx * sizeof *out);
    fy_status st = x && text && ref && out ? FY_OK : fy_error(FY_ERR_NOMEM, "bench: out of memory");
    for (size_t i = 0; st == FY_OK && i < nx; i++) x[i] = rnd();
    for (size_t i = 0; st == FY_OK && i < nt; i++) text[i] = 0.1f * rnd();
    printf("Wan2.1-1.3B transformer (random %s %s weights), batch 2, latent %lldx%lldx%lld, text %lld tokens, "
           "%d threads: one forward per storage\n", a->normal ? "N(0, 0.02^2)" : "U(-0.05, 0.05)",
           a->f32 ? "f32" : "bf16", (long long)a->frames, (long long)a->height, (long long)a->width,
           (long long)a->text_len, a->threads);
    printf("%-9s %-7s %12s %11s %11s %10s %10s\n", "storage", "scale", "block bytes", "max rel", "rms rel",
           "prepare s", "forward s");
    for (size_t c = 0; st == FY_OK && c < sizeof cases / sizeof cases[0]; c++) {
        uint64_t bytes = 0;
        double prep = 0, fwd = 0, max_rel = 0, rms_rel = 0;
        st = forward_once(model, a, &cases[c], x, text, c ? out : ref, &bytes, &prep, &fwd);
        if (st != FY_OK) break;
        if (c) compare(out, ref, nx, &max_rel, &rms_rel);
        printf("%-9s %-7s %12llu %11.3e %11.3e %10.2f %10.2f\n",
               cases[c].storage == FY_DTYPE_COUNT ? "as stored" : fy_dtype_name(cases[c].storage),
               cases[c].storage == FY_DTYPE_COUNT ? "-" : fy_fp8_scale_name(cases[c].scale), (unsigned long long)bytes,
               max_rel, rms_rel, prep, fwd);
        fflush(stdout);
    }
    free(x);
    free(text);
    free(ref);
    free(out);
    fy_model_free(model);
    return st;
}

static int parse_args(int argc, char **argv, bench_args *a)
{
    *a = (bench_args){2, 3, 16, 16, 512, false, 3, false, false, 0, false};
    for (int i = 1; i < argc; i++) {
        long long f, h, w;
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            a->threads = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--latent") == 0 && i + 1 < argc &&
                   sscanf(argv[i + 1], "%lldx%lldx%lld", &f, &h, &w) == 3) {
            a->frames = f, a->height = h, a->width = w;
            i++;
        } else if (strcmp(argv[i], "--text-len") == 0 && i + 1 < argc) {
            a->text_len = atoll(argv[++i]);
        } else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) {
            a->repeats = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--f32") == 0) {
            a->f32 = true;
        } else if (strcmp(argv[i], "--normal") == 0) {
            a->normal = true;
        } else if (strcmp(argv[i], "--fp8") == 0) {
            a->fp8 = true;
        } else if (strcmp(argv[i], "--emu") == 0) {
            a->emu = true;
        } else if (strcmp(argv[i], "--max-memory-cpu") == 0 && i + 1 < argc &&
                   fy_parse_size(argv[i + 1], &a->host_budget) == FY_OK) {
            i++;
        } else {
            fprintf(stderr,
                    "usage: %s [--threads N] [--latent FxHxW] [--text-len L] [--repeats N] [--f32] [--normal] [--fp8] "
                    "[--max-memory-cpu SIZE] [--emu]\n",
                    argv[0]);
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    bench_args a;
    if (parse_args(argc, argv, &a) != 0) return 2;
    char dir[] = "/tmp/ferry-bench-wan-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    double t0 = fy_backend_now();
    normal_weights = a.normal;
    fy_status st = make_model(dir, a.f32);
    sync(); /* so the file's writeback does not run during the timed forwards */
    if (st == FY_OK) printf("wrote the random model in %.1f s\n", fy_backend_now() - t0);
    if (st == FY_OK) st = a.fp8 ? run_fp8(dir, &a) : run(dir, &a);
    if (st != FY_OK) fprintf(stderr, "bench_wan_dit: %s\n", fy_error_message());
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "bench_wan_dit: could not remove %s\n", dir);
    return st == FY_OK ? 0 : 1;
}
