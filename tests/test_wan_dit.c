/* The Wan DiT against the golden fixture: `ferry verify --component
 * transformer` on the CPU and on the emulated device under every offload
 * plan with a budget of exactly the plan's bound (below what `none` needs
 * for the streaming plans); and bad configs and weights in temp copies of
 * the transformer folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ferry/dtype.h"
#include "ferry/engine.h"
#include "ferry/model.h"
#include "ferry/safetensors.h"
#include "backend/cpu/cpu_ops.h"
#include "ferry/wan_dit.h"
#include "models/wan_dit_internal.h"
#include "verify/verify.h"
#include "support/fyt.h"

#define MODEL_DIR FERRY_FIXTURES_DIR "/wan-tiny/model"
#define FIXTURE_DIR FERRY_FIXTURES_DIR "/wan-tiny/fixtures"
#define TRANSFORMER_DIR MODEL_DIR "/transformer"

/* ---- the plans ------------------------------------------------------------ */

static fy_wan_dit_shape fixture_shape(void)
{
    fy_st_file *f = NULL;
    assert_int_equal(fy_st_open(FIXTURE_DIR "/transformer.safetensors", &f), FY_OK);
    const fy_st_info *x = fy_st_find(f, "hidden_states"), *e = fy_st_find(f, "encoder_hidden_states");
    assert_non_null(x);
    assert_non_null(e);
    fy_wan_dit_shape s = {x->shape[0], x->shape[2], x->shape[3], x->shape[4], e->shape[1], 0, 0};
    fy_st_close(f);
    return s;
}

/* The bound the verifier's engine will need under o (weights + its reservation). */
static uint64_t plan_bound(const fy_run_options *o)
{
    fy_model *model = NULL;
    assert_int_equal(fy_model_open(MODEL_DIR, &model), FY_OK);
    fy_engine *e = NULL;
    assert_int_equal(fy_engine_create(o, &e), FY_OK);
    fy_wan_dit *m = NULL;
    assert_int_equal(fy_wan_dit_load(fy_model_component(model, "transformer"), e, &m), FY_OK);
    fy_wan_dit_shape s = fixture_shape();
    uint64_t act = fy_wan_dit_activation_bytes(m, &s) + fy_wan_dit_context_bytes(m, s.batch, s.text_len);
    assert_true(act > 0);
    assert_int_equal(fy_engine_reserve(e, act), FY_OK);
    fy_plan p;
    assert_int_equal(fy_engine_evaluate_plan(e, o, &p), FY_OK);
    fy_wan_dit_free(m);
    fy_engine_free(e);
    fy_model_free(model);
    return p.device_bound;
}

static fy_status verify(const fy_run_options *o)
{
    return fy_verify_run(MODEL_DIR, FIXTURE_DIR, "transformer", o, NULL);
}

static void test_cpu(void **state)
{
    fy_run_options o;
    fy_run_options_init(&o);
    o.threads = 2;
    assert_int_equal(verify(&o), FY_OK);
}

static void run_emu_plan(fy_offload_policy policy, int blocks_per_group, bool use_stream, int depth, int resident)
{
    fy_run_options o;
    fy_run_options_init(&o);
    o.device = FY_DEVICE_EMU;
    o.threads = 2;
    fy_run_options none = o;
    o.offload = policy;
    if (blocks_per_group) o.num_blocks_per_group = blocks_per_group;
    o.use_stream = use_stream;
    if (depth) o.prefetch_depth = depth;
    if (resident >= 0) o.resident_blocks = resident;
    o.max_memory[0] = plan_bound(&o); /* exactly enough: the reservation is honest */
    if (policy == FY_OFFLOAD_SEQUENTIAL) assert_true(o.max_memory[0] < plan_bound(&none));
    fy_status st = verify(&o);
    if (st != FY_OK) print_error("plan %d: %s\n", (int)policy, fy_error_message());
    assert_int_equal(st, FY_OK);
    if (o.max_memory[0] > 1024) { /* one byte less must fail before any work */
        o.max_memory[0] -= 1;
        assert_int_equal(verify(&o), FY_ERR_BUDGET);
    }
}

static void test_emu_none(void **state) { run_emu_plan(FY_OFFLOAD_NONE, 0, false, 0, -1); }
static void test_emu_model(void **state) { run_emu_plan(FY_OFFLOAD_MODEL, 0, false, 0, -1); }
static void test_emu_sequential(void **state) { run_emu_plan(FY_OFFLOAD_SEQUENTIAL, 0, false, 0, -1); }
static void test_emu_group2(void **state) { run_emu_plan(FY_OFFLOAD_GROUP, 2, false, 0, -1); }
static void test_emu_group1_stream(void **state) { run_emu_plan(FY_OFFLOAD_GROUP, 1, true, 0, -1); }
static void test_emu_layerwise1(void **state) { run_emu_plan(FY_OFFLOAD_LAYERWISE, 0, false, 1, -1); }
static void test_emu_layerwise2(void **state) { run_emu_plan(FY_OFFLOAD_LAYERWISE, 0, false, 2, -1); }
static void test_emu_layerwise_resident1(void **state) { run_emu_plan(FY_OFFLOAD_LAYERWISE, 0, false, 1, 1); }

/* ---- bad inputs, in temp copies of the transformer folder ----------------- */

typedef struct temp_model {
    char *dir;
    fy_model *model;
} temp_model;

static char *read_config_text(void)
{
    size_t n = 0;
    char *raw = fyt_read_file(TRANSFORMER_DIR "/config.json", &n);
    assert_non_null(raw);
    char *text = realloc(raw, n + 1);
    assert_non_null(text);
    text[n] = '\0';
    return text;
}

/* A model folder with only the transformer: config edited by edit_key
 * (NULL value = remove), weights as given (NULL = the fixture's). */
static char *make_model_dir(const char *edit_key, cJSON *value, const char *weights_path)
{
    char *dir = fyt_temp_dir();
    assert_non_null(dir);
    char *p = fyt_path(dir, "model_index.json");
    const char *index = "{\"_class_name\": \"WanPipeline\", \"transformer\": [\"diffusers\", \"WanTransformer3DModel\"]}";
    assert_int_equal(fyt_write_file(p, index, strlen(index)), 0);
    free(p);
    char *tdir = fyt_path(dir, "transformer");
    assert_int_equal(mkdir(tdir, 0755), 0);
    char *text = read_config_text();
    cJSON *cfg = cJSON_Parse(text);
    free(text);
    assert_non_null(cfg);
    if (edit_key) {
        cJSON_DeleteItemFromObjectCaseSensitive(cfg, edit_key);
        if (value) cJSON_AddItemToObject(cfg, edit_key, value);
    }
    char *out = cJSON_Print(cfg);
    cJSON_Delete(cfg);
    p = fyt_path(tdir, "config.json");
    assert_int_equal(fyt_write_file(p, out, strlen(out)), 0);
    free(p);
    cJSON_free(out);
    size_t n = 0;
    void *w = fyt_read_file(weights_path ? weights_path : TRANSFORMER_DIR "/diffusion_pytorch_model.safetensors", &n);
    assert_non_null(w);
    p = fyt_path(tdir, "diffusion_pytorch_model.safetensors");
    assert_int_equal(fyt_write_file(p, w, n), 0);
    free(p);
    free(w);
    free(tdir);
    return dir;
}

/* Loads the transformer of dir into a cpu engine; returns the status. */
static fy_status try_load(const char *dir)
{
    fy_model *model = NULL;
    fy_status st = fy_model_open(dir, &model);
    if (st != FY_OK) return st;
    fy_run_options o;
    fy_run_options_init(&o);
    fy_engine *e = NULL;
    assert_int_equal(fy_engine_create(&o, &e), FY_OK);
    fy_wan_dit *m = NULL;
    st = fy_wan_dit_load(fy_model_component(model, "transformer"), e, &m);
    fy_wan_dit_free(m);
    fy_engine_free(e);
    fy_model_free(model);
    return st;
}

static void expect_load_error(const char *key, cJSON *value, fy_status want, const char *mentions)
{
    char *dir = make_model_dir(key, value, NULL);
    fy_status st = try_load(dir);
    assert_int_equal(st, want);
    if (!strstr(fy_error_message(), mentions)) print_error("message: %s\n", fy_error_message());
    assert_non_null(strstr(fy_error_message(), mentions));
    assert_non_null(strstr(fy_error_message(), "config.json"));
    fyt_remove_tree(dir);
    free(dir);
}

static void test_missing_key(void **state)
{
    char *dir = make_model_dir("ffn_dim", NULL, NULL);
    assert_int_not_equal(try_load(dir), FY_OK);
    assert_non_null(strstr(fy_error_message(), "ffn_dim"));
    fyt_remove_tree(dir);
    free(dir);
}

/* Half an image-to-video config (one of image_dim, added_kv_proj_dim) and
 * FLF2V's image position embedding are refused with the key named. */
static void test_i2v_config_errors(void **state)
{
    expect_load_error("added_kv_proj_dim", cJSON_CreateNumber(32), FY_ERR_FORMAT, "added_kv_proj_dim");
    expect_load_error("image_dim", cJSON_CreateNumber(1280), FY_ERR_FORMAT, "image_dim");
    expect_load_error("pos_embed_seq_len", cJSON_CreateNumber(514), FY_ERR_UNSUPPORTED, "first-last-frame");
}

static void test_bad_values(void **state)
{
    expect_load_error("qk_norm", cJSON_CreateString("layer_norm"), FY_ERR_UNSUPPORTED, "qk_norm");
    expect_load_error("num_layers", cJSON_CreateNumber(0), FY_ERR_FORMAT, "num_layers");
    cJSON *patch = cJSON_CreateArray();
    cJSON_AddItemToArray(patch, cJSON_CreateNumber(2));
    cJSON_AddItemToArray(patch, cJSON_CreateNumber(2));
    expect_load_error("patch_size", patch, FY_ERR_FORMAT, "patch_size");
}

/* A config that disagrees with the weights: the error names the tensor. */
static void test_config_weight_mismatch(void **state)
{
    char *dir = make_model_dir("ffn_dim", cJSON_CreateNumber(48), NULL);
    assert_int_equal(try_load(dir), FY_ERR_FORMAT);
    assert_non_null(strstr(fy_error_message(), "blocks.0.ffn.net.0.proj.weight"));
    assert_non_null(strstr(fy_error_message(), "diffusion_pytorch_model.safetensors"));
    fyt_remove_tree(dir);
    free(dir);
}

/* Rewrites the fixture's weights with one tensor truncated or dropped. */
static char *weights_with(const char *name, bool drop)
{
    fy_st_file *f = NULL;
    assert_int_equal(fy_st_open(TRANSFORMER_DIR "/diffusion_pytorch_model.safetensors", &f), FY_OK);
    fy_st_writer *w = NULL;
    assert_int_equal(fy_st_writer_create(&w), FY_OK);
    for (size_t i = 0; i < fy_st_count(f); i++) {
        const fy_st_info *info = fy_st_at(f, i);
        fy_tensor t;
        assert_int_equal(fy_st_view(f, info->name, &t), FY_OK);
        if (strcmp(info->name, name) == 0) {
            if (drop) continue;
            t.shape[0] -= 1; /* one row short */
        }
        assert_int_equal(fy_st_writer_add(w, info->name, t.dtype, t.ndim, t.shape, t.data, fy_tensor_nbytes(&t)), FY_OK);
    }
    char *dir = fyt_temp_dir();
    char *path = fyt_path(dir, "w.safetensors");
    assert_int_equal(fy_st_writer_finish(w, path), FY_OK);
    fy_st_writer_free(w);
    fy_st_close(f);
    free(dir);
    return path;
}

/* The fixture's weights rounded to bf16 (every tensor, vectors included). */
static char *weights_bf16(void)
{
    fy_st_file *f = NULL;
    assert_int_equal(fy_st_open(TRANSFORMER_DIR "/diffusion_pytorch_model.safetensors", &f), FY_OK);
    fy_st_writer *w = NULL;
    assert_int_equal(fy_st_writer_create(&w), FY_OK);
    size_t n = fy_st_count(f);
    void **bufs = calloc(n, sizeof *bufs);
    assert_non_null(bufs);
    for (size_t i = 0; i < n; i++) {
        const fy_st_info *info = fy_st_at(f, i);
        fy_tensor t;
        assert_int_equal(fy_st_view(f, info->name, &t), FY_OK);
        size_t count = (size_t)fy_tensor_numel(&t);
        bufs[i] = malloc(count * 2 + 2);
        assert_non_null(bufs[i]);
        assert_int_equal(fy_convert(bufs[i], FY_BF16, t.data, t.dtype, count), FY_OK);
        assert_int_equal(fy_st_writer_add(w, info->name, FY_BF16, t.ndim, t.shape, bufs[i], count * 2), FY_OK);
    }
    char *dir = fyt_temp_dir();
    char *path = fyt_path(dir, "w.safetensors");
    assert_int_equal(fy_st_writer_finish(w, path), FY_OK);
    fy_st_writer_free(w);
    for (size_t i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    fy_st_close(f);
    free(dir);
    return path;
}

static void remove_weights(char *wpath)
{
    char *wdir = strdup(wpath);
    *strrchr(wdir, '/') = '\0';
    fyt_remove_tree(wdir);
    free(wdir);
    free(wpath);
}

/* bf16 storage, f32 compute, streamed through the emulated device: within
 * the README's bf16 tolerance of the f32 reference. */
static void test_bf16_weights(void **state)
{
    char *wpath = weights_bf16();
    char *dir = make_model_dir(NULL, NULL, wpath);
    fy_model *model = NULL;
    assert_int_equal(fy_model_open(dir, &model), FY_OK);
    fy_run_options o;
    fy_run_options_init(&o);
    o.device = FY_DEVICE_EMU;
    o.offload = FY_OFFLOAD_LAYERWISE;
    fy_engine *e = NULL;
    assert_int_equal(fy_engine_create(&o, &e), FY_OK);
    fy_wan_dit *m = NULL;
    assert_int_equal(fy_wan_dit_load(fy_model_component(model, "transformer"), e, &m), FY_OK);
    fy_st_file *f = NULL;
    assert_int_equal(fy_st_open(FIXTURE_DIR "/transformer.safetensors", &f), FY_OK);
    fy_tensor x = {0}, t = {0}, text = {0}, ref = {0}, out = {0};
    fy_tensor view;
    assert_int_equal(fy_st_view(f, "hidden_states", &view), FY_OK);
    assert_int_equal(fy_tensor_to_f32(&view, &x), FY_OK);
    assert_int_equal(fy_st_view(f, "timestep", &view), FY_OK);
    assert_int_equal(fy_tensor_to_f32(&view, &t), FY_OK);
    assert_int_equal(fy_st_view(f, "encoder_hidden_states", &view), FY_OK);
    assert_int_equal(fy_tensor_to_f32(&view, &text), FY_OK);
    assert_int_equal(fy_st_view(f, "output", &view), FY_OK);
    assert_int_equal(fy_tensor_to_f32(&view, &ref), FY_OK);
    assert_int_equal(fy_tensor_alloc(&out, FY_F32, ref.ndim, ref.shape), FY_OK);
    fy_wan_dit_shape s = fixture_shape();
    assert_int_equal(fy_engine_reserve(e, fy_wan_dit_activation_bytes(m, &s)), FY_OK);
    assert_int_equal(fy_engine_prepare(e), FY_OK);
    assert_int_equal(fy_wan_dit_forward(m, &s, x.data, t.data, text.data, NULL, out.data), FY_OK);
    double err = 1;
    assert_int_equal(fy_relative_error(&out, &ref, &err), FY_OK);
    assert_true(err < 2e-2);
    assert_true(err > 1e-6); /* the weights really were rounded */
    /* Chunks of 7 token rows: the bf16 vectors converted per chunk (biases,
     * norms) must not overwrite one another. */
    fy_tensor parts = {0};
    assert_int_equal(fy_tensor_alloc(&parts, FY_F32, ref.ndim, ref.shape), FY_OK);
    fy_wan_dit_set_row_chunk(m, 7);
    assert_int_equal(fy_wan_dit_forward(m, &s, x.data, t.data, text.data, NULL, parts.data), FY_OK);
    assert_int_equal(fy_relative_error(&parts, &out, &err), FY_OK);
    assert_true(err <= 1e-6);
    fy_tensor_free(&parts);
    assert_int_equal(fy_engine_finish(e), FY_OK);
    fy_tensor_free(&x);
    fy_tensor_free(&t);
    fy_tensor_free(&text);
    fy_tensor_free(&ref);
    fy_tensor_free(&out);
    fy_st_close(f);
    fy_wan_dit_free(m);
    fy_engine_free(e);
    fy_model_free(model);
    fyt_remove_tree(dir);
    free(dir);
    remove_weights(wpath);
}

static void expect_weight_error(const char *name, bool drop, fy_status want)
{
    char *wpath = weights_with(name, drop);
    char *dir = make_model_dir(NULL, NULL, wpath);
    assert_int_equal(try_load(dir), want);
    assert_non_null(strstr(fy_error_message(), name));
    fyt_remove_tree(dir);
    free(dir);
    remove_weights(wpath);
}

static void test_wrong_weight_shape(void **state)
{
    expect_weight_error("blocks.1.attn2.to_k.weight", false, FY_ERR_FORMAT);
    expect_weight_error("proj_out.bias", false, FY_ERR_FORMAT);
}

static void test_missing_weight(void **state)
{
    expect_weight_error("blocks.1.norm2.bias", true, FY_ERR_NOT_FOUND);
}

/* Problem sizes the config cannot take fail with a message, not a crash. */
static void test_bad_shape(void **state)
{
    fy_model *model = NULL;
    assert_int_equal(fy_model_open(MODEL_DIR, &model), FY_OK);
    fy_run_options o;
    fy_run_options_init(&o);
    fy_engine *e = NULL;
    assert_int_equal(fy_engine_create(&o, &e), FY_OK);
    fy_wan_dit *m = NULL;
    assert_int_equal(fy_wan_dit_load(fy_model_component(model, "transformer"), e, &m), FY_OK);
    fy_wan_dit_shape s = fixture_shape();
    s.height += 1;
    assert_int_equal(fy_wan_dit_check_shape(m, &s), FY_ERR_INVALID);
    assert_non_null(strstr(fy_error_message(), "patch_size"));
    assert_int_equal(fy_wan_dit_activation_bytes(m, &s), 0);
    s = fixture_shape();
    s.batch = 0;
    assert_int_equal(fy_wan_dit_check_shape(m, &s), FY_ERR_INVALID);
    fy_wan_dit_free(m);
    fy_engine_free(e);
    fy_model_free(model);
}

/* The CPU table's wide GEMM tiling against fy_cpu_linear(_lowp): f32 and bf16
 * weights, with and without bias, one tile per thread and (K large) many. */
static void check_linear(int threads, int64_t M, int64_t K, int64_t N, fy_dtype wtype, bool bias)
{
    fy_cpu_ctx *ctx = NULL;
    assert_int_equal(fy_cpu_ctx_create(threads, &ctx), FY_OK);
    float *x = malloc((size_t)(M * K) * sizeof *x), *w = malloc((size_t)(N * K) * sizeof *w);
    float *b = malloc((size_t)N * sizeof *b), *y0 = malloc((size_t)(M * N) * sizeof *y0);
    float *y1 = malloc((size_t)(M * N) * sizeof *y1);
    uint16_t *wl = malloc((size_t)(N * K) * sizeof *wl);
    assert_true(x && w && b && y0 && y1 && wl);
    uint32_t r = 777;
    for (int64_t i = 0; i < M * K; i++) x[i] = (float)((r = r * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    for (int64_t i = 0; i < N * K; i++) w[i] = (float)((r = r * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    for (int64_t i = 0; i < N; i++) b[i] = (float)i * 0.01f;
    const void *wv = w;
    if (wtype != FY_F32) {
        assert_int_equal(fy_convert(wl, wtype, w, FY_F32, (size_t)(N * K)), FY_OK);
        wv = wl;
        assert_int_equal(fy_cpu_linear_lowp(ctx, x, wl, wtype, bias ? b : NULL, y0, M, K, N), FY_OK);
    } else {
        assert_int_equal(fy_cpu_linear(ctx, x, w, bias ? b : NULL, y0, M, K, N), FY_OK);
    }
    assert_int_equal(fy_cpu_linear_wide(ctx, x, wv, wtype, NULL, 0, bias ? b : NULL, y1, M, K, N), FY_OK);
    double max_diff = 0, max_ref = 0;
    for (int64_t i = 0; i < M * N; i++) {
        if (fabs((double)y0[i] - y1[i]) > max_diff) max_diff = fabs((double)y0[i] - y1[i]);
        if (fabs(y0[i]) > max_ref) max_ref = fabs(y0[i]);
    }
    assert_true(max_diff <= 1e-6 * max_ref);
    free(x);
    free(w);
    free(b);
    free(y0);
    free(y1);
    free(wl);
    fy_cpu_ctx_free(ctx);
}

static void test_linear_tiles(void **state)
{
    check_linear(2, 384, 96, 700, FY_F32, true);
    check_linear(2, 384, 96, 700, FY_BF16, true);
    check_linear(3, 200, 96, 1000, FY_F16, false);
    check_linear(1, 130, 20000, 300, FY_BF16, true); /* 20000 x 300 > one tile: several per thread */
    check_linear(2, 70, 33, 129, FY_F32, false);     /* ragged last tile */
    check_linear(2, 10, 33, 500, FY_BF16, true);     /* few rows: fy_cpu_linear's tiling */
}

/* Runs a forward on a cpu engine with random inputs of shape s. */
static void forward_random_chunked(fy_wan_dit_shape s, int64_t first_item, const float *x_all, const float *t_all,
                                   const float *text_all, int64_t row_chunk, float *out)
{
    fy_model *model = NULL;
    assert_int_equal(fy_model_open(MODEL_DIR, &model), FY_OK);
    fy_run_options o;
    fy_run_options_init(&o);
    fy_engine *e = NULL;
    assert_int_equal(fy_engine_create(&o, &e), FY_OK);
    fy_wan_dit *m = NULL;
    assert_int_equal(fy_wan_dit_load(fy_model_component(model, "transformer"), e, &m), FY_OK);
    assert_int_equal(fy_wan_dit_set_threads(m, 2), FY_OK);
    fy_wan_dit_set_row_chunk(m, row_chunk);
    const fy_wan_dit_config *c = fy_wan_dit_get_config(m);
    assert_int_equal(fy_engine_reserve(e, fy_wan_dit_activation_bytes(m, &s)), FY_OK);
    assert_int_equal(fy_engine_prepare(e), FY_OK);
    int64_t vol = c->in_channels * s.frames * s.height * s.width, txt = s.text_len * c->text_dim;
    assert_int_equal(fy_wan_dit_forward(m, &s, x_all + first_item * vol, t_all + first_item,
                                        text_all + first_item * txt, NULL, out), FY_OK);
    assert_int_equal(fy_engine_finish(e), FY_OK);
    fy_wan_dit_free(m);
    fy_engine_free(e);
    fy_model_free(model);
}

static void forward_random(fy_wan_dit_shape s, int64_t first_item, const float *x_all, const float *t_all,
                           const float *text_all, float *out)
{
    forward_random_chunked(s, first_item, x_all, t_all, text_all, 0, out);
}

static double max_rel_diff(const float *ours, const float *ref, int64_t n)
{
    double max_diff = 0, max_ref = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)ours[i] - ref[i]);
        if (d > max_diff) max_diff = d;
        if (fabs(ref[i]) > max_ref) max_ref = fabs(ref[i]);
    }
    assert_true(max_ref > 0);
    return max_diff / max_ref;
}

/* The CFG pair as one batch gives each item's single forward (2304 tokens an
 * item: the default chunks are parts of an item). */
static void test_batch_matches_single(void **state)
{
    fy_wan_dit_shape s2 = {2, 9, 32, 32, 16, 0, 0}; /* 9 * 16 * 16 = 2304 tokens an item with patch [1, 2, 2] */
    const int64_t C = 16, text_dim = 32;    /* the fixture's config; checked below */
    int64_t vol = C * s2.frames * s2.height * s2.width, txt = s2.text_len * text_dim;
    float *x = malloc((size_t)(2 * vol) * sizeof *x), *text = malloc((size_t)(2 * txt) * sizeof *text);
    float *both = malloc((size_t)(2 * vol) * sizeof *both), *one = malloc((size_t)vol * sizeof *one);
    assert_true(x && text && both && one);
    uint32_t r = 12345;
    for (int64_t i = 0; i < 2 * vol; i++) x[i] = (float)((r = r * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    for (int64_t i = 0; i < 2 * txt; i++) text[i] = (float)((r = r * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    float t[2] = {999.0f, 417.5f};
    char *cfg = read_config_text();
    assert_non_null(strstr(cfg, "\"in_channels\": 16"));
    assert_non_null(strstr(cfg, "\"text_dim\": 32"));
    free(cfg);
    forward_random(s2, 0, x, t, text, both);
    fy_wan_dit_shape s1 = s2;
    s1.batch = 1;
    for (int64_t b = 0; b < 2; b++) {
        forward_random(s1, b, x, t, text, one);
        assert_true(max_rel_diff(both + b * vol, one, vol) <= 1e-5);
    }
    free(x);
    free(text);
    free(both);
    free(one);
}

/* Queries, attention and the feed-forward run in chunks of token rows: parts
 * of an item (the default 2048, and 1000 of its 2304 rows: 1000, 1000, 304)
 * give what both items in one chunk give. */
static void test_row_chunks_match_whole(void **state)
{
    fy_wan_dit_shape s = {2, 9, 32, 32, 16, 0, 0};
    const int64_t C = 16, text_dim = 32;
    int64_t vol = 2 * C * s.frames * s.height * s.width, txt = 2 * s.text_len * text_dim;
    float *x = malloc((size_t)vol * sizeof *x), *text = malloc((size_t)txt * sizeof *text);
    float *whole = malloc((size_t)vol * sizeof *whole), *parts = malloc((size_t)vol * sizeof *parts);
    assert_true(x && text && whole && parts);
    uint32_t r = 777;
    for (int64_t i = 0; i < vol; i++) x[i] = (float)((r = r * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    for (int64_t i = 0; i < txt; i++) text[i] = (float)((r = r * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    float t[2] = {999.0f, 417.5f};
    forward_random_chunked(s, 0, x, t, text, 5000, whole);
    forward_random_chunked(s, 0, x, t, text, 1000, parts);
    assert_true(max_rel_diff(parts, whole, vol) <= 1e-6);
    forward_random(s, 0, x, t, text, parts);
    assert_true(max_rel_diff(parts, whole, vol) <= 1e-6);
    free(x);
    free(text);
    free(whole);
    free(parts);
}

/* The context keeps the K/V of the text it first saw until invalidated; a
 * new batch or text length renews it by itself. */
static void test_context_invalidate(void **state)
{
    fy_model *model = NULL;
    assert_int_equal(fy_model_open(MODEL_DIR, &model), FY_OK);
    fy_run_options o;
    fy_run_options_init(&o);
    fy_engine *e = NULL;
    assert_int_equal(fy_engine_create(&o, &e), FY_OK);
    fy_wan_dit *m = NULL;
    assert_int_equal(fy_wan_dit_load(fy_model_component(model, "transformer"), e, &m), FY_OK);
    const fy_wan_dit_config *c = fy_wan_dit_get_config(m);
    fy_wan_dit_shape s = fixture_shape();
    fy_wan_dit_shape s1 = s;
    s1.batch = 1;
    assert_int_equal(fy_engine_reserve(e, fy_wan_dit_activation_bytes(m, &s) + 2 * fy_wan_dit_context_bytes(m, s.batch, s.text_len)), FY_OK);
    assert_int_equal(fy_engine_prepare(e), FY_OK);
    int64_t vol = s.batch * c->in_channels * s.frames * s.height * s.width, txt = s.batch * s.text_len * c->text_dim;
    float *x = calloc((size_t)vol, sizeof *x), *a = calloc((size_t)txt, sizeof *a), *b = calloc((size_t)txt, sizeof *b);
    float *out_a = calloc((size_t)vol, sizeof *out_a), *out = calloc((size_t)vol, sizeof *out);
    assert_true(x && a && b && out_a && out);
    for (int64_t i = 0; i < vol; i++) x[i] = (float)(i % 7) * 0.1f;
    for (int64_t i = 0; i < txt; i++) a[i] = (float)(i % 5) * 0.2f, b[i] = (float)(i % 3) * -0.3f;
    float t[2] = {500.0f, 250.0f};
    fy_wan_dit_context *kv = NULL;
    assert_int_equal(fy_wan_dit_context_create(m, &kv), FY_OK);
    assert_int_equal(fy_wan_dit_forward(m, &s, x, t, a, kv, out_a), FY_OK);
    assert_int_equal(fy_wan_dit_last_timing(m)->cross_kv_computed, c->num_layers);
    assert_int_equal(fy_wan_dit_forward(m, &s, x, t, b, kv, out), FY_OK); /* still a's K/V */
    assert_int_equal(fy_wan_dit_last_timing(m)->cross_kv_computed, 0);
    assert_memory_equal(out, out_a, (size_t)vol * sizeof *out);
    fy_wan_dit_context_invalidate(kv);
    assert_int_equal(fy_wan_dit_forward(m, &s, x, t, b, kv, out), FY_OK);
    assert_int_equal(fy_wan_dit_last_timing(m)->cross_kv_computed, c->num_layers);
    assert_memory_not_equal(out, out_a, (size_t)vol * sizeof *out);
    assert_int_equal(fy_wan_dit_forward(m, &s1, x, t, a, kv, out), FY_OK); /* new batch: renewed */
    assert_int_equal(fy_wan_dit_last_timing(m)->cross_kv_computed, c->num_layers);
    fy_wan_dit_context_free(kv);
    assert_int_equal(fy_engine_finish(e), FY_OK);
    free(x);
    free(a);
    free(b);
    free(out_a);
    free(out);
    fy_wan_dit_free(m);
    fy_engine_free(e);
    fy_model_free(model);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_tiles),
        cmocka_unit_test(test_cpu),
        cmocka_unit_test(test_row_chunks_match_whole),
        cmocka_unit_test(test_emu_none),
        cmocka_unit_test(test_emu_model),
        cmocka_unit_test(test_emu_sequential),
        cmocka_unit_test(test_emu_group2),
        cmocka_unit_test(test_emu_group1_stream),
        cmocka_unit_test(test_emu_layerwise1),
        cmocka_unit_test(test_emu_layerwise2),
        cmocka_unit_test(test_emu_layerwise_resident1),
        cmocka_unit_test(test_batch_matches_single),
        cmocka_unit_test(test_bf16_weights),
        cmocka_unit_test(test_context_invalidate),
        cmocka_unit_test(test_missing_key),
        cmocka_unit_test(test_i2v_config_errors),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_config_weight_mismatch),
        cmocka_unit_test(test_wrong_weight_shape),
        cmocka_unit_test(test_missing_weight),
        cmocka_unit_test(test_bad_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
