/* The UMT5 text encoder and the tokenizer verifier.
 *
 * Golden fixtures: `ferry verify --component tokenizer,text_encoder` passes on
 * the CPU, on the emulated device under every offload plan with a budget set
 * to exactly the plan's bound (so the activation estimate is checked too;
 * sequential runs below the model's size), and with --text-encoder-cpu-offload.
 * Synthetic models (written to a temp folder): a double-precision reference
 * forward at a length past the position-bias tile (f32 and bf16 weights), every
 * plan bit-identical to the CPU under budgets below the model size, and bad
 * configs and weights failing with a message naming the key or tensor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/backend.h"
#include "ferry/config.h"
#include "ferry/dtype.h"
#include "ferry/engine.h"
#include "ferry/model.h"
#include "ferry/umt5.h"
#include "verify/verify.h"
#include "support/fyt.h"

#define MODEL FERRY_FIXTURES_DIR "/wan-tiny/model"
#define FIXTURES FERRY_FIXTURES_DIR "/wan-tiny/fixtures"

static fy_run_options emu_options(void)
{
    fy_run_options o;
    fy_run_options_init(&o);
    o.device = FY_DEVICE_EMU;
    o.threads = 2;
    return o;
}

static fy_status verify(const fy_run_options *o)
{
    FILE *out = fopen("/dev/null", "w");
    fy_status s = fy_verify_run(MODEL, FIXTURES, "tokenizer,text_encoder", o, out);
    if (s != FY_OK) print_message("verify: %s\n", fy_error_message());
    fclose(out);
    return s;
}

/* ---- golden fixtures ------------------------------------------------------------- */

static void test_golden_cpu(void **state)
{
    (void)state;
    fy_run_options o;
    fy_run_options_init(&o);
    o.threads = 2;
    assert_int_equal(verify(&o), FY_OK);
}

static uint64_t weight_bytes(const fy_component *c)
{
    fy_weight_stats ws;
    assert_int_equal(fy_component_stats(c, &ws), FY_OK);
    return ws.bytes;
}

static int64_t ids_len(const char *file, const char *name)
{
    fy_st_file *f = NULL;
    assert_int_equal(fy_st_open(file, &f), FY_OK);
    const fy_st_info *info = fy_st_find(f, name);
    assert_non_null(info);
    int64_t len = info->shape[info->ndim - 1];
    fy_st_close(f);
    return len;
}

/* The bound of plan o for the golden text encoder with the verifier's reservation. */
static uint64_t golden_bound(const fy_run_options *o, uint64_t *model_bytes)
{
    fy_model *model = NULL;
    assert_int_equal(fy_model_open(MODEL, &model), FY_OK);
    const fy_component *c = fy_model_component(model, "text_encoder");
    assert_non_null(c);
    fy_run_options unlimited = *o;
    memset(unlimited.max_memory, 0, sizeof unlimited.max_memory);
    fy_engine *e = NULL;
    fy_umt5 *m = NULL;
    assert_int_equal(fy_engine_create(&unlimited, &e), FY_OK);
    assert_int_equal(fy_umt5_load(c, e, &m), FY_OK);
    uint64_t a = fy_umt5_activation_bytes(m, 2, ids_len(FIXTURES "/text_encoder.safetensors", "input_ids"));
    uint64_t b = fy_umt5_activation_bytes(m, 2, ids_len(FIXTURES "/pipeline.safetensors", "prompt.input_ids"));
    assert_int_equal(fy_engine_reserve(e, a > b ? a : b), FY_OK);
    fy_plan plan;
    assert_int_equal(fy_engine_evaluate_plan(e, o, &plan), FY_OK);
    *model_bytes = weight_bytes(c);
    fy_umt5_free(m);
    fy_engine_free(e);
    fy_model_free(model);
    return plan.device_bound;
}

static void test_golden_every_plan_emu(void **state)
{
    (void)state;
    fy_run_options plans[8];
    int n = 0;
    plans[n++] = emu_options();
    plans[n] = emu_options(), plans[n++].offload = FY_OFFLOAD_MODEL;
    plans[n] = emu_options(), plans[n++].offload = FY_OFFLOAD_SEQUENTIAL;
    plans[n] = emu_options(), plans[n].offload = FY_OFFLOAD_GROUP, plans[n++].num_blocks_per_group = 2;
    plans[n] = emu_options(), plans[n].offload = FY_OFFLOAD_LAYERWISE, plans[n++].prefetch_depth = 1;
    plans[n] = emu_options(), plans[n].offload = FY_OFFLOAD_LAYERWISE, plans[n++].prefetch_depth = 2;
    plans[n] = emu_options(), plans[n].offload = FY_OFFLOAD_LAYERWISE, plans[n++].resident_blocks = 1;
    for (int i = 0; i < n; i++) {
        uint64_t model_bytes = 0;
        plans[i].max_memory[0] = golden_bound(&plans[i], &model_bytes);
        if (plans[i].offload == FY_OFFLOAD_SEQUENTIAL) assert_true(plans[i].max_memory[0] < model_bytes);
        print_message("plan %s: budget %llu bytes (weights %llu)\n", fy_offload_policy_name(plans[i].offload),
                      (unsigned long long)plans[i].max_memory[0], (unsigned long long)model_bytes);
        assert_int_equal(verify(&plans[i]), FY_OK);
    }
}

static void test_golden_cpu_offload(void **state)
{
    (void)state;
    fy_run_options o = emu_options();
    o.offload = FY_OFFLOAD_SEQUENTIAL;
    o.max_memory[0] = 1024; /* the accelerator's budget does not bind the CPU text encoder */
    o.text_encoder_cpu_offload = true;
    assert_int_equal(verify(&o), FY_OK);
}

static void test_golden_budget_too_small(void **state)
{
    (void)state;
    fy_run_options o = emu_options();
    o.offload = FY_OFFLOAD_SEQUENTIAL;
    o.max_memory[0] = 16 * 1024;
    FILE *out = fopen("/dev/null", "w");
    assert_int_equal(fy_verify_run(MODEL, FIXTURES, "text_encoder", &o, out), FY_ERR_BUDGET);
    fclose(out);
    assert_non_null(strstr(fy_error_message(), "budget"));
}

/* ---- synthetic models ---------------------------------------------------------------- */

typedef struct synth_spec {
    int d, dkv, heads, dff, layers, vocab;
    fy_dtype dtype;
    const char *skip;     /* a tensor left out */
    const char *reshape;  /* a tensor written with one row too many */
    const char *drop_key; /* a config key left out */
    bool relu;            /* T5's original feed-forward: relu(h wi^T) wo^T */
} synth_spec;

typedef struct synth {
    char *dir;
    fy_config *cfg;
    fy_st_set *weights;
    fy_component c;
} synth;

static uint64_t rng_state;

static float next_uniform(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

static fy_status add_tensor(fy_st_writer *w, const synth_spec *sp, const char *name, int64_t d0, int64_t d1,
                            float center, float scale, void **keep)
{
    if (sp->skip && !strcmp(sp->skip, name)) return FY_OK;
    if (sp->reshape && !strcmp(sp->reshape, name)) d0++;
    int64_t shape[2] = {d0, d1};
    size_t n = (size_t)(d0 * (d1 ? d1 : 1));
    float *f = malloc(n * sizeof *f);
    void *buf = malloc(n * fy_dtype_size(sp->dtype));
    if (!f || !buf) return FY_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) f[i] = center + scale * next_uniform();
    fy_status s = fy_convert(buf, sp->dtype, f, FY_F32, n);
    free(f);
    *keep = buf;
    if (s == FY_OK) s = fy_st_writer_add(w, name, sp->dtype, d1 ? 2 : 1, shape, buf, n * fy_dtype_size(sp->dtype));
    return s;
}

static void write_weights(const synth_spec *sp, const char *path)
{
    rng_state = 0x1234567ull + (uint64_t)sp->layers;
    fy_st_writer *w = NULL;
    assert_int_equal(fy_st_writer_create(&w), FY_OK);
    void *keep[512] = {0};
    int k = 0;
    int64_t d = sp->d, inner = sp->heads * sp->dkv, ff = sp->dff;
    float sd = 1.0f / sqrtf((float)d), si = 1.0f / sqrtf((float)inner), sf = 1.0f / sqrtf((float)ff);
    assert_int_equal(add_tensor(w, sp, "shared.weight", sp->vocab, d, 0.0f, 1.0f, &keep[k++]), FY_OK);
    for (int i = 0; i < sp->layers; i++) {
        char p[96], name[160];
        snprintf(p, sizeof p, "encoder.block.%d.layer.", i);
#define ADD(suffix, d0, d1, c, s)                                                        \
    snprintf(name, sizeof name, "%s%s", p, suffix);                                      \
    assert_int_equal(add_tensor(w, sp, name, d0, d1, c, s, &keep[k++]), FY_OK)
        ADD("0.layer_norm.weight", d, 0, 1.0f, 0.3f);
        ADD("0.SelfAttention.q.weight", inner, d, 0.0f, sd);
        ADD("0.SelfAttention.k.weight", inner, d, 0.0f, sd);
        ADD("0.SelfAttention.v.weight", inner, d, 0.0f, sd);
        ADD("0.SelfAttention.o.weight", d, inner, 0.0f, si);
        ADD("0.SelfAttention.relative_attention_bias.weight", 32, sp->heads, 0.0f, 1.0f);
        ADD("1.layer_norm.weight", d, 0, 1.0f, 0.3f);
        if (sp->relu) {
            ADD("1.DenseReluDense.wi.weight", ff, d, 0.0f, sd);
        } else {
            ADD("1.DenseReluDense.wi_0.weight", ff, d, 0.0f, sd);
            ADD("1.DenseReluDense.wi_1.weight", ff, d, 0.0f, sd);
        }
        ADD("1.DenseReluDense.wo.weight", d, ff, 0.0f, sf);
#undef ADD
    }
    assert_int_equal(add_tensor(w, sp, "encoder.final_layer_norm.weight", d, 0, 1.0f, 0.3f, &keep[k++]), FY_OK);
    assert_int_equal(fy_st_writer_finish(w, path), FY_OK);
    fy_st_writer_free(w);
    for (int i = 0; i < k; i++) free(keep[i]);
}

static void write_config(const synth_spec *sp, const char *path)
{
    char text[1024];
    int n = snprintf(text, sizeof text,
                     "{\"architectures\": [\"UMT5EncoderModel\"], \"d_model\": %d, \"d_kv\": %d, \"d_ff\": %d, "
                     "\"num_heads\": %d, \"num_layers\": %d, \"vocab_size\": %d, "
                     "\"relative_attention_num_buckets\": 32, \"relative_attention_max_distance\": 128, "
                     "\"layer_norm_epsilon\": 1e-06, \"feed_forward_proj\": \"%s\"}",
                     sp->d, sp->dkv, sp->dff, sp->heads, sp->layers, sp->vocab, sp->relu ? "relu" : "gated-gelu");
    if (sp->drop_key) { /* cut "key": value out of the text */
        char pat[96];
        snprintf(pat, sizeof pat, "\"%s\": ", sp->drop_key);
        char *at = strstr(text, pat);
        assert_non_null(at);
        char *end = strchr(at, ',');
        assert_non_null(end);
        memmove(at, end + 2, strlen(end + 2) + 1);
        n = (int)strlen(text);
    }
    assert_int_equal(fyt_write_file(path, text, (size_t)n), 0);
}

/* Writes the folder and opens it as a component; FY_OK or the config's error. */
static fy_status synth_open(const synth_spec *sp, synth *s)
{
    memset(s, 0, sizeof *s);
    s->dir = fyt_temp_dir();
    assert_non_null(s->dir);
    char *cfg = fyt_path(s->dir, "config.json"), *st = fyt_path(s->dir, "model.safetensors");
    write_config(sp, cfg);
    write_weights(sp, st);
    fy_status r = fy_config_load(cfg, &s->cfg);
    if (r == FY_OK) r = fy_st_set_open_dir(s->dir, "model", &s->weights);
    free(cfg);
    free(st);
    s->c = (fy_component){"text_encoder", "transformers", "UMT5EncoderModel", s->dir, s->cfg, s->weights, false, NULL};
    return r;
}

static void synth_close(synth *s)
{
    fy_st_set_free(s->weights);
    fy_config_free(s->cfg);
    fyt_remove_tree(s->dir);
    free(s->dir);
}

/* Token ids and a mask with a different real length per batch item. */
static void make_inputs(int B, int L, int vocab, int64_t *ids, int64_t *mask)
{
    for (int b = 0; b < B; b++)
        for (int l = 0; l < L; l++) {
            int real = b == 0 ? L - 3 : L / 2 + 1;
            ids[b * L + l] = l < real ? (l * 37 + b * 11 + 3) % vocab : 0;
            mask[b * L + l] = l < real;
        }
}

/* Runs the synthetic model under o: last hidden state into out. */
static fy_status synth_run(synth *s, const fy_run_options *o, int B, int L, float *out, float *const *hidden,
                           fy_engine_stats *stats)
{
    int64_t *ids = malloc((size_t)(B * L) * sizeof *ids), *mask = malloc((size_t)(B * L) * sizeof *mask);
    assert_non_null(ids);
    assert_non_null(mask);
    make_inputs(B, L, 64, ids, mask);
    fy_engine *e = NULL;
    fy_umt5 *m = NULL;
    fy_status r = fy_engine_create(o, &e);
    if (r == FY_OK) r = fy_umt5_load(&s->c, e, &m);
    if (r == FY_OK) r = fy_umt5_set_threads(m, 2);
    if (r == FY_OK) r = fy_engine_reserve(e, fy_umt5_activation_bytes(m, B, L));
    if (r == FY_OK) r = fy_engine_prepare(e);
    if (r == FY_OK) r = fy_umt5_forward(m, ids, mask, B, L, out, hidden);
    if (r == FY_OK) r = fy_engine_finish(e);
    if (r == FY_OK && stats) *stats = *fy_engine_stats_get(e);
    fy_umt5_free(m);
    fy_engine_free(e);
    free(ids);
    free(mask);
    return r;
}

/* ---- a double-precision reference (transformers' UMT5, written out plainly) -------- */

static double *weight_f64(const synth *s, const char *name)
{
    fy_tensor v, f;
    assert_int_equal(fy_st_set_view(s->weights, name, &v), FY_OK);
    assert_int_equal(fy_tensor_to_f32(&v, &f), FY_OK);
    size_t n = (size_t)fy_tensor_numel(&f);
    double *out = malloc(n * sizeof *out);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) out[i] = ((float *)f.data)[i];
    fy_tensor_free(&f);
    return out;
}

static void ref_rms(const double *x, const double *w, double *y, int rows, int d)
{
    for (int r = 0; r < rows; r++) {
        double ss = 0;
        for (int i = 0; i < d; i++) ss += x[r * d + i] * x[r * d + i];
        double inv = 1.0 / sqrt(ss / d + 1e-6);
        for (int i = 0; i < d; i++) y[r * d + i] = x[r * d + i] * inv * w[i];
    }
}

static void ref_linear(const double *x, const double *w, double *y, int rows, int k, int n)
{
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < n; j++) {
            double acc = 0;
            for (int i = 0; i < k; i++) acc += x[r * k + i] * w[j * k + i];
            y[r * n + j] = acc;
        }
}

static int ref_bucket(int rel)
{
    int out = rel > 0 ? 16 : 0, n = abs(rel);
    if (n < 8) return out + n;
    int large = 8 + (int)(log(n / 8.0) / log(128.0 / 8.0) * 8.0);
    return out + (large < 15 ? large : 15);
}

static double *ref_weight(const synth *s, int layer, const char *suffix)
{
    char name[160];
    snprintf(name, sizeof name, "encoder.block.%d.layer.%s", layer, suffix);
    return weight_f64(s, name);
}

static void ref_attention(const synth *s, const synth_spec *sp, int layer, const double *h, const int64_t *mask,
                          int B, int L, double *out)
{
    int H = sp->heads, D = sp->dkv, inner = H * D, R = B * L;
    double *wq = ref_weight(s, layer, "0.SelfAttention.q.weight"), *wk = ref_weight(s, layer, "0.SelfAttention.k.weight");
    double *wv = ref_weight(s, layer, "0.SelfAttention.v.weight");
    double *rel = ref_weight(s, layer, "0.SelfAttention.relative_attention_bias.weight");
    double *q = malloc(sizeof(double) * (size_t)(R * inner)), *k = malloc(sizeof(double) * (size_t)(R * inner));
    double *v = malloc(sizeof(double) * (size_t)(R * inner)), *p = malloc(sizeof(double) * (size_t)L);
    ref_linear(h, wq, q, R, sp->d, inner);
    ref_linear(h, wk, k, R, sp->d, inner);
    ref_linear(h, wv, v, R, sp->d, inner);
    for (int b = 0; b < B; b++)
        for (int hh = 0; hh < H; hh++)
            for (int i = 0; i < L; i++) {
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < L; j++) {
                    double sc = 0;
                    for (int t = 0; t < D; t++) sc += q[(b * L + i) * inner + hh * D + t] * k[(b * L + j) * inner + hh * D + t];
                    p[j] = mask[b * L + j] ? sc + rel[ref_bucket(j - i) * H + hh] : -INFINITY;
                    if (p[j] > mx) mx = p[j];
                }
                for (int j = 0; j < L; j++) sum += p[j] = exp(p[j] - mx);
                for (int t = 0; t < D; t++) {
                    double acc = 0;
                    for (int j = 0; j < L; j++) acc += p[j] / sum * v[(b * L + j) * inner + hh * D + t];
                    out[(b * L + i) * inner + hh * D + t] = acc;
                }
            }
    free(wq), free(wk), free(wv), free(rel), free(q), free(k), free(v), free(p);
}

static void ref_block(const synth *s, const synth_spec *sp, int layer, double *x, const int64_t *mask, int B, int L)
{
    int d = sp->d, R = B * L, inner = sp->heads * sp->dkv, ff = sp->dff;
    double *h = malloc(sizeof(double) * (size_t)(R * d)), *a = malloc(sizeof(double) * (size_t)(R * inner));
    double *y = malloc(sizeof(double) * (size_t)(R * d)), *g0 = malloc(sizeof(double) * (size_t)(R * ff));
    double *g1 = malloc(sizeof(double) * (size_t)(R * ff));
    double *ln0 = ref_weight(s, layer, "0.layer_norm.weight"), *wo = ref_weight(s, layer, "0.SelfAttention.o.weight");
    double *ln1 = ref_weight(s, layer, "1.layer_norm.weight");
    double *wi0 = ref_weight(s, layer, sp->relu ? "1.DenseReluDense.wi.weight" : "1.DenseReluDense.wi_0.weight");
    double *wi1 = sp->relu ? NULL : ref_weight(s, layer, "1.DenseReluDense.wi_1.weight");
    double *wff = ref_weight(s, layer, "1.DenseReluDense.wo.weight");
    ref_rms(x, ln0, h, R, d);
    ref_attention(s, sp, layer, h, mask, B, L, a);
    ref_linear(a, wo, y, R, inner, d);
    for (int i = 0; i < R * d; i++) x[i] += y[i];
    ref_rms(x, ln1, h, R, d);
    ref_linear(h, wi0, g0, R, d, ff);
    if (wi1) ref_linear(h, wi1, g1, R, d, ff);
    for (int i = 0; i < R * ff; i++) {
        double u = g0[i];
        g0[i] = sp->relu ? fmax(u, 0.0) : 0.5 * u * (1 + tanh(sqrt(2 / M_PI) * (u + 0.044715 * u * u * u))) * g1[i];
    }
    ref_linear(g0, wff, y, R, ff, d);
    for (int i = 0; i < R * d; i++) x[i] += y[i];
    free(h), free(a), free(y), free(g0), free(g1), free(ln0), free(wo), free(ln1), free(wi0), free(wi1), free(wff);
}

static double *ref_forward(const synth *s, const synth_spec *sp, int B, int L)
{
    int d = sp->d, R = B * L;
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)R), *mask = malloc(sizeof(int64_t) * (size_t)R);
    make_inputs(B, L, 64, ids, mask);
    double *emb = weight_f64(s, "shared.weight"), *x = malloc(sizeof(double) * (size_t)(R * d));
    for (int r = 0; r < R; r++) memcpy(x + r * d, emb + ids[r] * d, sizeof(double) * (size_t)d);
    for (int i = 0; i < sp->layers; i++) ref_block(s, sp, i, x, mask, B, L);
    double *fin = weight_f64(s, "encoder.final_layer_norm.weight");
    ref_rms(x, fin, x, R, d);
    free(ids), free(mask), free(emb), free(fin);
    return x;
}

static double rel_err(const float *ours, const double *ref, size_t n)
{
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        md = fmax(md, fabs(ours[i] - ref[i]));
        mr = fmax(mr, fabs(ref[i]));
    }
    return md / mr;
}

/* vocab >= 64 (make_inputs); L past the 128-row bias tile and past max_distance. */
static const synth_spec small_spec = {.d = 48, .dkv = 8, .heads = 4, .dff = 80, .layers = 2, .vocab = 64,
                                      .dtype = FY_F32};

static void check_reference(fy_dtype dtype, bool relu)
{
    synth_spec sp = small_spec;
    sp.dtype = dtype;
    sp.relu = relu;
    synth s;
    assert_int_equal(synth_open(&sp, &s), FY_OK);
    int B = 2, L = 150;
    size_t n = (size_t)(B * L * sp.d);
    float *ours = malloc(n * sizeof *ours);
    fy_run_options o;
    fy_run_options_init(&o);
    assert_int_equal(synth_run(&s, &o, B, L, ours, NULL, NULL), FY_OK);
    double *ref = ref_forward(&s, &sp, B, L);
    double e = rel_err(ours, ref, n);
    print_message("%s weights%s: rel err %.3e against the double reference\n", fy_dtype_name(dtype), relu ? " (relu)" : "", e);
    assert_true(e <= 1e-5);
    free(ours);
    free(ref);
    synth_close(&s);
}

static void test_reference_f32(void **state)
{
    (void)state;
    check_reference(FY_F32, false);
}

static void test_reference_relu(void **state)
{
    (void)state;
    check_reference(FY_F32, true);
}

static void test_reference_bf16(void **state)
{
    (void)state;
    check_reference(FY_BF16, false);
}

/* Every plan under a budget below the weights gives the CPU's bits. */
static void test_plans_below_model_size(void **state)
{
    (void)state;
    synth_spec sp = small_spec;
    sp.layers = 8;
    sp.dtype = FY_BF16;
    synth s;
    assert_int_equal(synth_open(&sp, &s), FY_OK);
    int B = 2, L = 24;
    size_t n = (size_t)(B * L * sp.d);
    float *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);
    fy_run_options o;
    fy_run_options_init(&o);
    assert_int_equal(synth_run(&s, &o, B, L, want, NULL, NULL), FY_OK);
    uint64_t model_bytes = weight_bytes(&s.c);
    fy_run_options plans[6];
    int np = 0;
    plans[np] = emu_options(), plans[np++].offload = FY_OFFLOAD_SEQUENTIAL;
    plans[np] = emu_options(), plans[np].offload = FY_OFFLOAD_GROUP, plans[np++].num_blocks_per_group = 2;
    plans[np] = emu_options(), plans[np].offload = FY_OFFLOAD_GROUP, plans[np].use_stream = true;
    plans[np++].num_blocks_per_group = 2;
    plans[np] = emu_options(), plans[np].offload = FY_OFFLOAD_LAYERWISE, plans[np++].prefetch_depth = 1;
    plans[np] = emu_options(), plans[np].offload = FY_OFFLOAD_LAYERWISE, plans[np++].prefetch_depth = 2;
    plans[np] = emu_options(), plans[np].offload = FY_OFFLOAD_LAYERWISE, plans[np++].resident_blocks = 1;
    for (int i = 0; i < np; i++) {
        plans[i].max_memory[0] = model_bytes - 1;
        fy_engine_stats st;
        memset(got, 0, n * sizeof *got);
        fy_status r = synth_run(&s, &plans[i], B, L, got, NULL, &st);
        if (r != FY_OK) fail_msg("plan %d (%s): %s", i, fy_offload_policy_name(plans[i].offload), fy_error_message());
        assert_true(st.peak_device < model_bytes);
        assert_memory_equal(got, want, n * sizeof *got);
    }
    free(want);
    free(got);
    synth_close(&s);
}

/* hidden[k] is the input of block k; hidden[layers] the last hidden state. */
static void test_hidden_states(void **state)
{
    (void)state;
    synth s;
    assert_int_equal(synth_open(&small_spec, &s), FY_OK);
    int B = 1, L = 12, layers = small_spec.layers;
    size_t n = (size_t)(B * L * small_spec.d);
    float *last = malloc(n * sizeof *last), *h[8] = {0};
    for (int k = 0; k <= layers; k++) h[k] = malloc(n * sizeof(float));
    fy_run_options o;
    fy_run_options_init(&o);
    assert_int_equal(synth_run(&s, &o, B, L, last, h, NULL), FY_OK);
    assert_memory_equal(h[layers], last, n * sizeof *last);
    double *emb = weight_f64(&s, "shared.weight");
    assert_true(fabs(h[0][small_spec.d + 5] - emb[((1 * 37 + 3) % 64) * small_spec.d + 5]) < 1e-6);
    free(emb);
    for (int k = 0; k <= layers; k++) free(h[k]);
    free(last);
    synth_close(&s);
}

/* ---- bad input ------------------------------------------------------------------------- */

static void expect_load_error(const synth_spec *sp, fy_status want, const char *needle)
{
    synth s;
    fy_status r = synth_open(sp, &s);
    if (r == FY_OK) {
        fy_run_options o;
        fy_run_options_init(&o);
        fy_engine *e = NULL;
        fy_umt5 *m = NULL;
        assert_int_equal(fy_engine_create(&o, &e), FY_OK);
        r = fy_umt5_load(&s.c, e, &m);
        assert_null(m);
        fy_engine_free(e);
    }
    print_message("%s\n", fy_error_message());
    assert_int_equal(r, want);
    assert_non_null(strstr(fy_error_message(), needle));
    synth_close(&s);
}

static void test_missing_config_key(void **state)
{
    (void)state;
    synth_spec sp = small_spec;
    sp.drop_key = "num_heads";
    expect_load_error(&sp, FY_ERR_NOT_FOUND, "num_heads");
}

static void test_wrong_weight_shape(void **state)
{
    (void)state;
    synth_spec sp = small_spec;
    sp.reshape = "encoder.block.1.layer.0.SelfAttention.k.weight";
    expect_load_error(&sp, FY_ERR_FORMAT, "encoder.block.1.layer.0.SelfAttention.k.weight");
}

static void test_missing_weight(void **state)
{
    (void)state;
    synth_spec sp = small_spec;
    sp.skip = "encoder.block.0.layer.1.DenseReluDense.wi_1.weight";
    expect_load_error(&sp, FY_ERR_NOT_FOUND, "wi_1");
}

static void test_token_outside_vocabulary(void **state)
{
    (void)state;
    synth s;
    assert_int_equal(synth_open(&small_spec, &s), FY_OK);
    fy_run_options o;
    fy_run_options_init(&o);
    fy_engine *e = NULL;
    fy_umt5 *m = NULL;
    assert_int_equal(fy_engine_create(&o, &e), FY_OK);
    assert_int_equal(fy_umt5_load(&s.c, e, &m), FY_OK);
    assert_int_equal(fy_engine_reserve(e, fy_umt5_activation_bytes(m, 1, 3)), FY_OK);
    assert_int_equal(fy_engine_prepare(e), FY_OK);
    int64_t ids[3] = {1, 64, 2}, mask[3] = {1, 1, 1};
    float out[3 * 48];
    assert_int_equal(fy_umt5_forward(m, ids, mask, 1, 3, out, NULL), FY_ERR_INVALID);
    assert_non_null(strstr(fy_error_message(), "vocabulary"));
    fy_umt5_free(m);
    fy_engine_free(e);
    synth_close(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_cpu),
        cmocka_unit_test(test_golden_every_plan_emu),
        cmocka_unit_test(test_golden_cpu_offload),
        cmocka_unit_test(test_golden_budget_too_small),
        cmocka_unit_test(test_reference_f32),
        cmocka_unit_test(test_reference_bf16),
        cmocka_unit_test(test_reference_relu),
        cmocka_unit_test(test_plans_below_model_size),
        cmocka_unit_test(test_hidden_states),
        cmocka_unit_test(test_missing_config_key),
        cmocka_unit_test(test_wrong_weight_shape),
        cmocka_unit_test(test_missing_weight),
        cmocka_unit_test(test_token_outside_vocabulary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
