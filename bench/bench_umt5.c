/* Tokens/s of the UMT5 text encoder on the CPU at UMT5-XXL's dimensions
 * (d_model 4096, d_ff 10240, 64 heads x 64, 32 buckets, max distance 128),
 * with random bf16 weights, and the share of the time spent in GEMM.
 *
 * The full encoder (24 layers, 5.7B params, 11.4 GB in bf16, 2 GB of it the
 * 256384 x 4096 embedding) does not fit the benchmark machine's RAM and disk
 * budget comfortably, so this writes `layers` full-size blocks (default 2)
 * and a 1024-row embedding into a temp folder, runs it through the engine on
 * the CPU backend (weights read in place from the mapping), and extrapolates
 * to 24 layers from the measured time per layer. The embedding lookup is a
 * row gather either way, so the smaller table does not change the timing.
 *
 * Usage: bench_umt5 [threads (2)] [tokens (512)] [layers (2)] [repeats (2)]. Prints only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferry/backend.h"
#include "ferry/config.h"
#include "ferry/dtype.h"
#include "ferry/engine.h"
#include "ferry/model.h"
#include "ferry/safetensors.h"
#include "ferry/umt5.h"

#define D_MODEL 4096
#define D_FF 10240
#define D_KV 64
#define HEADS 64
#define FULL_LAYERS 24
#define VOCAB 1024 /* UMT5-XXL has 256384: skipped (2 GB), see above */

static uint64_t rng = 0x9E3779B97F4A7C15ull;

/* Uniform in [-scale, scale), as bf16 bits. */
static void fill_bf16(uint16_t *out, size_t n, float scale, float center)
{
    for (size_t i = 0; i < n; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        float u = (float)(rng >> 40) / 16777216.0f * 2.0f - 1.0f;
        out[i] = fy_f32_to_bf16(center + scale * u);
    }
}

typedef struct bufs {
    void *p[1024];
    int n;
} bufs;

static fy_status add(fy_st_writer *w, bufs *b, const char *name, int64_t d0, int64_t d1, float scale, float center)
{
    int64_t shape[2] = {d0, d1};
    size_t n = (size_t)(d0 * (d1 ? d1 : 1));
    uint16_t *data = malloc(n * sizeof *data);
    if (!data || b->n == 1024) return fy_error(FY_ERR_NOMEM, "bench_umt5: out of memory");
    b->p[b->n++] = data;
    fill_bf16(data, n, scale, center);
    return fy_st_writer_add(w, name, FY_BF16, d1 ? 2 : 1, shape, data, n * sizeof *data);
}

static fy_status add_block(fy_st_writer *w, bufs *b, int i)
{
    const char *attn[4] = {"q", "k", "v", "o"};
    char name[160];
    float s_in = 1.0f / 64.0f, s_ff = 1.0f / 101.0f; /* ~ 1/sqrt(fan-in) */
    snprintf(name, sizeof name, "encoder.block.%d.layer.0.layer_norm.weight", i);
    FY_TRY(add(w, b, name, D_MODEL, 0, 0.2f, 1.0f));
    for (int p = 0; p < 4; p++) {
        snprintf(name, sizeof name, "encoder.block.%d.layer.0.SelfAttention.%s.weight", i, attn[p]);
        FY_TRY(add(w, b, name, HEADS * D_KV, D_MODEL, s_in, 0.0f));
    }
    snprintf(name, sizeof name, "encoder.block.%d.layer.0.SelfAttention.relative_attention_bias.weight", i);
    FY_TRY(add(w, b, name, 32, HEADS, 1.0f, 0.0f));
    snprintf(name, sizeof name, "encoder.block.%d.layer.1.layer_norm.weight", i);
    FY_TRY(add(w, b, name, D_MODEL, 0, 0.2f, 1.0f));
    snprintf(name, sizeof name, "encoder.block.%d.layer.1.DenseReluDense.wi_0.weight", i);
    FY_TRY(add(w, b, name, D_FF, D_MODEL, s_in, 0.0f));
    snprintf(name, sizeof name, "encoder.block.%d.layer.1.DenseReluDense.wi_1.weight", i);
    FY_TRY(add(w, b, name, D_FF, D_MODEL, s_in, 0.0f));
    snprintf(name, sizeof name, "encoder.block.%d.layer.1.DenseReluDense.wo.weight", i);
    return add(w, b, name, D_MODEL, D_FF, s_ff, 0.0f);
}

static fy_status write_model(const char *dir, int layers)
{
    char path[1200], text[1024];
    int n = snprintf(text, sizeof text,
                     "{\"architectures\": [\"UMT5EncoderModel\"], \"d_model\": %d, \"d_ff\": %d, \"d_kv\": %d, "
                     "\"num_heads\": %d, \"num_layers\": %d, \"vocab_size\": %d, "
                     "\"relative_attention_num_buckets\": 32, \"relative_attention_max_distance\": 128, "
                     "\"layer_norm_epsilon\": 1e-06, \"feed_forward_proj\": \"gated-gelu\", "
                     "\"dense_act_fn\": \"gelu_new\", \"torch_dtype\": \"bfloat16\"}\n",
                     D_MODEL, D_FF, D_KV, HEADS, layers, VOCAB);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f || fwrite(text, 1, (size_t)n, f) != (size_t)n || fclose(f) != 0)
        return fy_error(FY_ERR_IO, "%s: cannot write", path);
    fy_st_writer *w = NULL;
    bufs b = {.n = 0};
    FY_TRY(fy_st_writer_create(&w));
    fy_status s = add(w, &b, "shared.weight", VOCAB, D_MODEL, 1.0f, 0.0f);
    for (int i = 0; i < layers && s == FY_OK; i++) s = add_block(w, &b, i);
    if (s == FY_OK) s = add(w, &b, "encoder.final_layer_norm.weight", D_MODEL, 0, 0.2f, 1.0f);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (s == FY_OK) s = fy_st_writer_finish(w, path);
    fy_st_writer_free(w);
    for (int i = 0; i < b.n; i++) free(b.p[i]);
    return s;
}

static void remove_model(const char *dir)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    rmdir(dir);
}

static void cpu_name(char *out, size_t size)
{
    snprintf(out, size, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon) {
            snprintf(out, size, "%s", colon + 2);
            out[strcspn(out, "\n")] = '\0';
            break;
        }
    }
    if (f) fclose(f);
}

typedef struct result {
    double seconds, linear, attention, other;
} result;

static fy_status run(const fy_component *c, int threads, int tokens, int repeats, result *out)
{
    fy_run_options o;
    fy_run_options_init(&o);
    o.threads = threads;
    fy_engine *e = NULL;
    fy_umt5 *m = NULL;
    int64_t *ids = malloc((size_t)tokens * sizeof *ids), *mask = malloc((size_t)tokens * sizeof *mask);
    float *last = malloc((size_t)tokens * D_MODEL * sizeof *last);
    fy_status s = ids && mask && last ? FY_OK : fy_error(FY_ERR_NOMEM, "bench_umt5: out of memory");
    for (int i = 0; i < tokens && s == FY_OK; i++) ids[i] = (i * 7919) % VOCAB, mask[i] = 1;
    if (s == FY_OK) s = fy_engine_create(&o, &e);
    if (s == FY_OK) s = fy_umt5_load(c, e, &m);
    if (s == FY_OK) s = fy_umt5_set_threads(m, threads);
    if (s == FY_OK) s = fy_engine_reserve(e, fy_umt5_activation_bytes(m, 1, tokens));
    if (s == FY_OK) s = fy_engine_prepare(e);
    /* The first forward faults the mapping in from the page cache: not timed. */
    if (s == FY_OK) s = fy_umt5_forward(m, ids, mask, 1, tokens, last, NULL);
    fy_umt5_profile before = s == FY_OK ? *fy_umt5_get_profile(m) : (fy_umt5_profile){0};
    for (int r = 0; r < repeats && s == FY_OK; r++) s = fy_umt5_forward(m, ids, mask, 1, tokens, last, NULL);
    if (s == FY_OK) {
        const fy_umt5_profile *p = fy_umt5_get_profile(m);
        out->seconds = (p->total - before.total) / repeats;
        out->linear = (p->linear - before.linear) / repeats;
        out->attention = (p->attention - before.attention) / repeats;
        out->other = (p->other - before.other) / repeats;
    }
    if (s == FY_OK) s = fy_engine_finish(e);
    fy_umt5_free(m);
    fy_engine_free(e);
    free(ids), free(mask), free(last);
    return s;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2, tokens = argc > 2 ? atoi(argv[2]) : 512;
    int layers = argc > 3 ? atoi(argv[3]) : 2, repeats = argc > 4 ? atoi(argv[4]) : 2;
    if (threads < 1 || tokens < 1 || layers < 1 || layers > 24 || repeats < 1) {
        fprintf(stderr, "usage: bench_umt5 [threads] [tokens] [layers 1..24] [repeats]\n");
        return 2;
    }
    const char *tmp = getenv("TMPDIR");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/ferry-bench-umt5-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "bench_umt5: cannot make a temp folder\n");
        return 1;
    }
    fy_config *cfg = NULL;
    fy_st_set *set = NULL;
    char cfg_path[4200];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    double t0 = fy_backend_now();
    fy_status s = write_model(dir, layers);
    double t_write = fy_backend_now() - t0;
    if (s == FY_OK) s = fy_config_load(cfg_path, &cfg);
    if (s == FY_OK) s = fy_st_set_open_dir(dir, "model", &set);
    fy_component c = {"text_encoder", "transformers", "UMT5EncoderModel", dir, cfg, set, false, NULL};
    result r = {0};
    if (s == FY_OK) s = run(&c, threads, tokens, repeats, &r);
    fy_st_set_free(set);
    fy_config_free(cfg);
    remove_model(dir);
    if (s != FY_OK) {
        fprintf(stderr, "bench_umt5: %s\n", fy_error_message());
        return 1;
    }
    char cpu[256];
    cpu_name(cpu, sizeof cpu);
    double per_layer = r.seconds / layers;
    double block_params = 4.0 * D_MODEL * HEADS * D_KV + 3.0 * D_MODEL * D_FF;
    double gflop_layer = 2.0 * tokens * block_params * 1e-9;
    printf("bench_umt5: UMT5-XXL dims (d_model %d, d_ff %d, %d heads x %d), bf16 random weights, %d measured "
           "layers, %d tokens, %d threads, %s (weights written in %.1f s)\n",
           D_MODEL, D_FF, HEADS, D_KV, layers, tokens, threads, cpu, t_write);
    printf("  forward of %d layers   %8.3f s  (mean of %d, after one untimed)\n", layers, r.seconds, repeats);
    printf("  per layer              %8.3f s  %.1f GFLOP of projections -> %.1f GFLOP/s\n", per_layer,
           gflop_layer, gflop_layer / per_layer);
    printf("  GEMM (linear, bf16->f32 block conversion included)  %5.1f%%\n", 100.0 * r.linear / r.seconds);
    printf("  attention (position bias + online softmax)          %5.1f%%\n", 100.0 * r.attention / r.seconds);
    printf("  other (embedding, norms, gelu, residuals)           %5.1f%%\n", 100.0 * r.other / r.seconds);
    printf("  measured      %8.1f tokens/s (%d layers)\n", tokens / r.seconds, layers);
    printf("  EXTRAPOLATED  %8.1f tokens/s for the full %d-layer encoder (%.1f s per %d-token prompt)\n",
           tokens / (per_layer * FULL_LAYERS), FULL_LAYERS, per_layer * FULL_LAYERS, tokens);
    return 0;
}
