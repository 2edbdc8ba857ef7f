/* The Wan VAE (AutoencoderKLWan).
 *
 * Golden fixtures: `ferry verify --component vae` (decode, encode, round
 * trip, tiled and untiled decodes) on the CPU, on the emulated device under
 * every offload plan with the budget set to exactly the plan's bound (so the
 * activation estimate is checked too), and with --vae-cpu-offload. Memory:
 * the device peak does not grow with the frame count, nor with the
 * resolution of a tiled decode; the estimate equals the measured peak;
 * automatic tiling when the untiled decode does not fit; slicing. Bad
 * configs and weights fail with a message naming the key or tensor. */
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

#include "ferry/config.h"
#include "ferry/dtype.h"
#include "ferry/engine.h"
#include "ferry/model.h"
#include "ferry/safetensors.h"
#include "ferry/wan_vae.h"
#include "verify/verify.h"
#include "support/fyt.h"

#define MODEL FERRY_FIXTURES_DIR "/wan-tiny/model"
#define FIXTURES FERRY_FIXTURES_DIR "/wan-tiny/fixtures"
#define VAE_FIXTURE FIXTURES "/vae.safetensors"

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
    fy_status s = fy_verify_run(MODEL, FIXTURES, "vae", o, out);
    if (s != FY_OK) print_message("verify: %s\n", fy_error_message());
    fclose(out);
    return s;
}

/* A fixture tensor as an owning f32 host tensor. */
static fy_tensor fixture_tensor(const char *name)
{
    fy_st_file *f = NULL;
    assert_int_equal(fy_st_open(VAE_FIXTURE, &f), FY_OK);
    fy_tensor view, out = {0};
    assert_int_equal(fy_st_view(f, name, &view), FY_OK);
    assert_int_equal(fy_tensor_to_f32(&view, &out), FY_OK);
    fy_st_close(f);
    return out;
}

static double rel_err(const float *a, const float *b, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return m > 0 ? d / m : d;
}

static size_t numel5(const int64_t *s)
{
    return (size_t)(s[0] * s[1] * s[2] * s[3] * s[4]);
}

/* ---- a VAE on an engine ------------------------------------------------------------- */

typedef struct vae_env {
    fy_model *model;
    fy_engine *e;
    fy_wan_vae *m;
} vae_env;

static void env_open(vae_env *v, const fy_run_options *o, int parts)
{
    memset(v, 0, sizeof *v);
    assert_int_equal(fy_model_open(MODEL, &v->model), FY_OK);
    const fy_component *c = fy_model_component(v->model, "vae");
    assert_non_null(c);
    assert_int_equal(fy_engine_create(o, &v->e), FY_OK);
    assert_int_equal(fy_wan_vae_load(c, v->e, parts, &v->m), FY_OK);
    assert_int_equal(fy_wan_vae_set_threads(v->m, 2), FY_OK);
}

static void env_close(vae_env *v)
{
    fy_wan_vae_free(v->m);
    fy_engine_free(v->e);
    fy_model_free(v->model);
}

static uint64_t vae_weight_bytes(void)
{
    fy_model *model = NULL;
    assert_int_equal(fy_model_open(MODEL, &model), FY_OK);
    fy_weight_stats ws;
    assert_int_equal(fy_component_stats(fy_model_component(model, "vae"), &ws), FY_OK);
    fy_model_free(model);
    return ws.bytes;
}

/* Decodes latents [B, z, T, h, w] on a fresh engine; returns the video and the device peak. */
static float *decode_on(const fy_run_options *o, const fy_tensor *lat, int64_t vs[5], uint64_t *peak,
                        uint64_t *estimate)
{
    vae_env v;
    env_open(&v, o, FY_WAN_VAE_DECODER);
    fy_wan_vae_decode_shape s = {lat->shape[0], lat->shape[2], lat->shape[3], lat->shape[4]};
    uint64_t bytes = fy_wan_vae_decode_activation_bytes(v.m, &s, o);
    assert_true(bytes > 0);
    if (estimate) *estimate = bytes;
    assert_int_equal(fy_engine_reserve(v.e, bytes), FY_OK);
    assert_int_equal(fy_engine_prepare(v.e), FY_OK);
    assert_int_equal(fy_wan_vae_decode_output_shape(v.m, &s, vs), FY_OK);
    float *video = malloc(numel5(vs) * sizeof *video);
    assert_non_null(video);
    fy_status st = fy_wan_vae_decode(v.m, &s, lat->data, o, video);
    if (st != FY_OK) print_message("decode: %s\n", fy_error_message());
    assert_int_equal(st, FY_OK);
    assert_int_equal(fy_engine_finish(v.e), FY_OK);
    const fy_engine_stats *stats = fy_engine_stats_get(v.e);
    if (peak) *peak = stats->peak_device;
    assert_true(stats->peak_device <= stats->device_bound);
    env_close(&v);
    return video;
}

/* latents with frames (or rows and columns) repeated k times. */
static fy_tensor repeat_frames(const fy_tensor *x, int k)
{
    int64_t s[5] = {x->shape[0], x->shape[1], x->shape[2] * k, x->shape[3], x->shape[4]};
    fy_tensor out = {0};
    assert_int_equal(fy_tensor_alloc(&out, FY_F32, 5, s), FY_OK);
    int64_t plane = s[3] * s[4];
    const float *src = x->data;
    float *dst = out.data;
    for (int64_t bc = 0; bc < s[0] * s[1]; bc++)
        for (int64_t t = 0; t < s[2]; t++)
            memcpy(dst + (bc * s[2] + t) * plane, src + (bc * x->shape[2] + t % x->shape[2]) * plane,
                   (size_t)plane * sizeof(float));
    return out;
}

static fy_tensor repeat_space(const fy_tensor *x, int k)
{
    int64_t s[5] = {x->shape[0], x->shape[1], x->shape[2], x->shape[3] * k, x->shape[4] * k};
    fy_tensor out = {0};
    assert_int_equal(fy_tensor_alloc(&out, FY_F32, 5, s), FY_OK);
    const float *src = x->data;
    float *dst = out.data;
    for (int64_t f = 0; f < s[0] * s[1] * s[2]; f++)
        for (int64_t i = 0; i < s[3]; i++)
            for (int64_t j = 0; j < s[4]; j++)
                dst[(f * s[3] + i) * s[4] + j] =
                    src[(f * x->shape[3] + i % x->shape[3]) * x->shape[4] + j % x->shape[4]];
    return out;
}

static void set_fixture_tiling(fy_run_options *o)
{
    o->vae_tiling = true;
    o->vae_tile[0] = 32, o->vae_tile[1] = 48;
    o->vae_tile_stride[0] = 24, o->vae_tile_stride[1] = 32;
}

/* ---- golden fixtures -------------------------------------------------------------- */

static void test_golden_cpu(void **state)
{
    (void)state;
    fy_run_options o;
    fy_run_options_init(&o);
    o.threads = 2;
    assert_int_equal(verify(&o), FY_OK);
}

/* The bound of plan o with the verifier's reservation (the largest of its runs). */
static uint64_t golden_bound(const fy_run_options *o)
{
    fy_run_options unlimited = *o;
    memset(unlimited.max_memory, 0, sizeof unlimited.max_memory);
    vae_env v;
    env_open(&v, &unlimited, FY_WAN_VAE_BOTH);
    fy_tensor dec = fixture_tensor("decode.input"), enc = fixture_tensor("encode.input"),
              til = fixture_tensor("tiled.input");
    fy_run_options un = *o, ti = *o;
    un.vae_tiling = false;
    un.vae_tile[0] = un.vae_tile[1] = un.vae_tile_stride[0] = un.vae_tile_stride[1] = 1 << 30;
    set_fixture_tiling(&ti);
    fy_wan_vae_decode_shape ds = {1, dec.shape[2], dec.shape[3], dec.shape[4]};
    fy_wan_vae_decode_shape ts = {1, til.shape[2], til.shape[3], til.shape[4]};
    fy_wan_vae_encode_shape es = {1, enc.shape[2], enc.shape[3], enc.shape[4]};
    uint64_t a = fy_wan_vae_decode_activation_bytes(v.m, &ds, &un);
    uint64_t b = fy_wan_vae_decode_activation_bytes(v.m, &ts, &un);
    uint64_t c = fy_wan_vae_decode_activation_bytes(v.m, &ts, &ti);
    uint64_t d = fy_wan_vae_encode_activation_bytes(v.m, &es, &un);
    uint64_t m = a > b ? a : b;
    m = m > c ? m : c;
    m = m > d ? m : d;
    assert_int_equal(fy_engine_reserve(v.e, m), FY_OK);
    fy_plan plan;
    assert_int_equal(fy_engine_evaluate_plan(v.e, o, &plan), FY_OK);
    fy_tensor_free(&dec);
    fy_tensor_free(&enc);
    fy_tensor_free(&til);
    env_close(&v);
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
    uint64_t weights = vae_weight_bytes(), none_bound = 0;
    for (int i = 0; i < n; i++) {
        plans[i].max_memory[0] = golden_bound(&plans[i]);
        if (i == 0) none_bound = plans[i].max_memory[0];
        /* the streamed plans keep fewer weights on the device than the resident one */
        if (plans[i].offload == FY_OFFLOAD_SEQUENTIAL) assert_true(plans[i].max_memory[0] < none_bound);
        print_message("plan %s: budget %llu bytes (weights %llu)\n", fy_offload_policy_name(plans[i].offload),
                      (unsigned long long)plans[i].max_memory[0], (unsigned long long)weights);
        assert_int_equal(verify(&plans[i]), FY_OK);
    }
}

static void test_golden_cpu_offload(void **state)
{
    (void)state;
    fy_run_options o = emu_options();
    o.offload = FY_OFFLOAD_SEQUENTIAL;
    o.max_memory[0] = 1024; /* the accelerator's budget does not bind the CPU VAE */
    o.vae_cpu_offload = true;
    assert_int_equal(verify(&o), FY_OK);
}

static void test_golden_budget_too_small(void **state)
{
    (void)state;
    fy_run_options o = emu_options();
    o.offload = FY_OFFLOAD_SEQUENTIAL;
    o.max_memory[0] = 64 * 1024;
    FILE *out = fopen("/dev/null", "w");
    assert_int_equal(fy_verify_run(MODEL, FIXTURES, "vae", &o, out), FY_ERR_BUDGET);
    fclose(out);
    assert_non_null(strstr(fy_error_message(), "budget"));
}

/* ---- memory ------------------------------------------------------------------------- */

/* Doubling the frames leaves the peak alone; the estimate is the measured peak. */
static void test_peak_independent_of_frames(void **state)
{
    (void)state;
    fy_run_options o = emu_options();
    fy_tensor lat = fixture_tensor("decode.input"), ref = fixture_tensor("decode.output");
    fy_tensor twice = repeat_frames(&lat, 2);
    int64_t vs[5], vs2[5];
    uint64_t peak1 = 0, peak2 = 0, est1 = 0, est2 = 0;
    float *v1 = decode_on(&o, &lat, vs, &peak1, &est1);
    float *v2 = decode_on(&o, &twice, vs2, &peak2, &est2);
    print_message("peak %llu (%d frames), %llu (%d frames)\n", (unsigned long long)peak1, (int)lat.shape[2],
                  (unsigned long long)peak2, (int)twice.shape[2]);
    assert_true(rel_err(v1, ref.data, numel5(vs)) <= 1e-4);
    assert_true(vs2[2] > vs[2]);
    assert_true(peak2 <= peak1);
    assert_true(est2 == est1);
    uint64_t weights = vae_weight_bytes();
    /* plan none: every decoder weight resident, plus exactly the estimated activations */
    assert_true(peak1 <= weights + est1);
    free(v1);
    free(v2);
    fy_tensor_free(&lat);
    fy_tensor_free(&ref);
    fy_tensor_free(&twice);
}

/* A tiled decode's peak follows the tile, not the frame size. */
static void test_peak_follows_tile(void **state)
{
    (void)state;
    fy_run_options o = emu_options();
    set_fixture_tiling(&o);
    fy_tensor lat = fixture_tensor("tiled.input"), ref = fixture_tensor("tiled.output");
    fy_tensor big = repeat_space(&lat, 2);
    int64_t vs[5], vs2[5];
    uint64_t peak1 = 0, peak2 = 0;
    float *v1 = decode_on(&o, &lat, vs, &peak1, NULL);
    float *v2 = decode_on(&o, &big, vs2, &peak2, NULL);
    print_message("tiled peak %llu (%lldx%lld), %llu (%lldx%lld)\n", (unsigned long long)peak1, (long long)vs[3],
                  (long long)vs[4], (unsigned long long)peak2, (long long)vs2[3], (long long)vs2[4]);
    assert_true(rel_err(v1, ref.data, numel5(vs)) <= 1e-4);
    assert_true(peak2 <= peak1);
    free(v1);
    free(v2);
    fy_tensor_free(&lat);
    fy_tensor_free(&ref);
    fy_tensor_free(&big);
}

/* With a budget the untiled decode does not fit, the decode tiles by itself. */
static void test_auto_tiling(void **state)
{
    (void)state;
    fy_tensor lat = fixture_tensor("tiled.input"), ref = fixture_tensor("tiled.output");
    fy_wan_vae_decode_shape s = {1, lat.shape[2], lat.shape[3], lat.shape[4]};
    fy_run_options probe = emu_options(), tiled = emu_options();
    set_fixture_tiling(&tiled);
    vae_env v;
    env_open(&v, &probe, FY_WAN_VAE_DECODER);
    uint64_t untiled_bytes = fy_wan_vae_decode_activation_bytes(v.m, &s, &probe);
    uint64_t tiled_bytes = fy_wan_vae_decode_activation_bytes(v.m, &s, &tiled);
    env_close(&v);
    assert_true(tiled_bytes < untiled_bytes);

    fy_run_options o = emu_options(); /* no --vae-tiling: the tile of --vae-tile only */
    set_fixture_tiling(&o);
    o.vae_tiling = false;
    o.max_memory[0] = vae_weight_bytes() + tiled_bytes + (untiled_bytes - tiled_bytes) / 2;
    env_open(&v, &o, FY_WAN_VAE_DECODER);
    assert_true(fy_wan_vae_decode_uses_tiles(v.m, &s, &o));
    assert_int_equal(fy_wan_vae_decode_activation_bytes(v.m, &s, &o), tiled_bytes);
    env_close(&v);
    int64_t vs[5];
    float *video = decode_on(&o, &lat, vs, NULL, NULL);
    assert_true(rel_err(video, ref.data, numel5(vs)) <= 1e-4);
    free(video);
    fy_tensor_free(&lat);
    fy_tensor_free(&ref);
}

/* A batch of two decodes item by item with --vae-slicing, in one go without. */
static void test_slicing(void **state)
{
    (void)state;
    fy_tensor lat = fixture_tensor("decode.input"), ref = fixture_tensor("decode.output");
    int64_t s2[5] = {2, lat.shape[1], lat.shape[2], lat.shape[3], lat.shape[4]};
    fy_tensor pair = {0};
    assert_int_equal(fy_tensor_alloc(&pair, FY_F32, 5, s2), FY_OK);
    size_t n = (size_t)fy_tensor_numel(&lat);
    memcpy(pair.data, lat.data, n * sizeof(float));
    memcpy((float *)pair.data + n, lat.data, n * sizeof(float));
    fy_run_options o = emu_options(), sliced = emu_options();
    sliced.vae_slicing = true;
    int64_t vs[5];
    uint64_t peak = 0, peak_sliced = 0;
    float *a = decode_on(&o, &pair, vs, &peak, NULL);
    float *b = decode_on(&sliced, &pair, vs, &peak_sliced, NULL);
    size_t per = numel5(vs) / 2;
    assert_true(rel_err(a, ref.data, per) <= 1e-4);
    assert_true(rel_err(a + per, ref.data, per) <= 1e-4);
    assert_true(rel_err(b + per, ref.data, per) <= 1e-4);
    assert_true(peak_sliced < peak);
    free(a);
    free(b);
    fy_tensor_free(&pair);
    fy_tensor_free(&lat);
    fy_tensor_free(&ref);
}

/* Bytes uploaded by a sequential-plan decode with the given parts loaded. */
static uint64_t uploaded_for_decode(int parts, uint64_t *decoder_bytes, uint64_t *encoder_small)
{
    fy_run_options o = emu_options();
    o.offload = FY_OFFLOAD_SEQUENTIAL;
    vae_env v;
    env_open(&v, &o, parts);
    fy_tensor lat = fixture_tensor("decode.input");
    fy_wan_vae_decode_shape s = {1, lat.shape[2], lat.shape[3], lat.shape[4]};
    assert_int_equal(fy_engine_reserve(v.e, fy_wan_vae_decode_activation_bytes(v.m, &s, &o)), FY_OK);
    assert_int_equal(fy_engine_prepare(v.e), FY_OK);
    int64_t vs[5];
    assert_int_equal(fy_wan_vae_decode_output_shape(v.m, &s, vs), FY_OK);
    float *video = malloc(numel5(vs) * sizeof *video);
    assert_int_equal(fy_wan_vae_decode(v.m, &s, lat.data, &o, video), FY_OK);
    assert_int_equal(fy_engine_finish(v.e), FY_OK);
    uint64_t up = fy_engine_stats_get(v.e)->bytes_uploaded;
    const fy_st_set *set = fy_model_component(v.model, "vae")->weights;
    *decoder_bytes = *encoder_small = 0;
    static const char *const small[] = {"encoder.conv_in.", "encoder.norm_out.", "encoder.conv_out.", "quant_conv."};
    for (size_t i = 0; i < fy_st_set_count(set); i++) {
        const fy_st_info *info = fy_st_set_at(set, i);
        if (!strncmp(info->name, "decoder.", 8) || !strncmp(info->name, "post_quant_conv.", 16))
            *decoder_bytes += info->nbytes;
        for (int k = 0; k < 4; k++)
            if (!strncmp(info->name, small[k], strlen(small[k]))) *encoder_small += info->nbytes;
    }
    free(video);
    fy_tensor_free(&lat);
    env_close(&v);
    return up;
}

/* A decode never moves an encoder block, loaded or not (the encoder's SMALL
 * groups are resident when it is loaded); each latent frame streams the
 * decoder's blocks once. */
static void test_decoder_only_moves_decoder(void **state)
{
    (void)state;
    uint64_t decoder = 0, enc_small = 0;
    uint64_t only = uploaded_for_decode(FY_WAN_VAE_DECODER, &decoder, &enc_small);
    uint64_t both = uploaded_for_decode(FY_WAN_VAE_BOTH, &decoder, &enc_small);
    print_message("uploaded %llu (decoder loaded), %llu (both); decoder weights %llu, encoder small %llu\n",
                  (unsigned long long)only, (unsigned long long)both, (unsigned long long)decoder,
                  (unsigned long long)enc_small);
    assert_true(both >= only + enc_small);
    assert_true(both <= only + enc_small + 2048); /* alignment padding inside the groups */
    assert_true(only >= 3 * (decoder / 2));
    assert_true(only <= 4 * decoder);
}

/* Encodes video [1, C, F, H, W] under o on a fresh CPU engine; moments out. */
static float *encode_on(const fy_run_options *o, const fy_tensor *video, int64_t ms[5])
{
    vae_env v;
    env_open(&v, o, FY_WAN_VAE_ENCODER);
    fy_wan_vae_encode_shape s = {video->shape[0], video->shape[2], video->shape[3], video->shape[4]};
    int64_t ls[5];
    assert_int_equal(fy_wan_vae_encode_output_shape(v.m, &s, ls), FY_OK);
    memcpy(ms, ls, 5 * sizeof *ms);
    ms[1] *= 2;
    assert_int_equal(fy_engine_reserve(v.e, fy_wan_vae_encode_activation_bytes(v.m, &s, o)), FY_OK);
    assert_int_equal(fy_engine_prepare(v.e), FY_OK);
    float *moments = malloc(numel5(ms) * sizeof *moments);
    assert_int_equal(fy_wan_vae_encode(v.m, &s, video->data, o, moments, NULL, NULL), FY_OK);
    env_close(&v);
    return moments;
}

/* Tiles without overlap: tiled_encode is each tile encoded on its own, side by side. */
static void test_tiled_encode_without_overlap(void **state)
{
    (void)state;
    fy_tensor video = fixture_tensor("encode.input");
    int64_t H = video.shape[3], W = video.shape[4], th = H / 2, tw = W / 2;
    fy_run_options o;
    fy_run_options_init(&o);
    o.threads = 2;
    o.vae_tiling = true;
    o.vae_tile[0] = o.vae_tile_stride[0] = (int)th;
    o.vae_tile[1] = o.vae_tile_stride[1] = (int)tw;
    int64_t ms[5], qs[5];
    float *tiled = encode_on(&o, &video, ms);
    o.vae_tiling = false;
    for (int q = 0; q < 4; q++) {
        int64_t r0 = (q / 2) * th, c0 = (q % 2) * tw;
        int64_t shape[5] = {1, video.shape[1], video.shape[2], th, tw};
        fy_tensor part = {0};
        assert_int_equal(fy_tensor_alloc(&part, FY_F32, 5, shape), FY_OK);
        for (int64_t f = 0; f < shape[1] * shape[2]; f++)
            for (int64_t i = 0; i < th; i++)
                memcpy((float *)part.data + (f * th + i) * tw, (float *)video.data + (f * H + r0 + i) * W + c0,
                       (size_t)tw * sizeof(float));
        float *m = encode_on(&o, &part, qs);
        int64_t lr0 = r0 * ms[3] / H, lc0 = c0 * ms[4] / W;
        for (int64_t f = 0; f < qs[1] * qs[2]; f++)
            for (int64_t i = 0; i < qs[3]; i++)
                for (int64_t j = 0; j < qs[4]; j++)
                    assert_true(fabsf(m[(f * qs[3] + i) * qs[4] + j] -
                                      tiled[(f * ms[3] + lr0 + i) * ms[4] + lc0 + j]) <= 1e-6f);
        free(m);
        fy_tensor_free(&part);
    }
    free(tiled);
    fy_tensor_free(&video);
}

/* ---- normalisation -------------------------------------------------------------------- */

static void test_denormalize_matches_pipeline(void **state)
{
    (void)state;
    fy_st_file *f = NULL;
    assert_int_equal(fy_st_open(FIXTURES "/pipeline.safetensors", &f), FY_OK);
    fy_tensor ts, in_view, ref_view, lat = {0}, ref = {0};
    assert_int_equal(fy_st_view(f, "timesteps", &ts), FY_OK);
    char name[64];
    snprintf(name, sizeof name, "latents.%lld", (long long)ts.shape[0]);
    assert_int_equal(fy_st_view(f, name, &in_view), FY_OK);
    assert_int_equal(fy_st_view(f, "vae_decode.input", &ref_view), FY_OK);
    assert_int_equal(fy_tensor_to_f32(&in_view, &lat), FY_OK);
    assert_int_equal(fy_tensor_to_f32(&ref_view, &ref), FY_OK);
    fy_run_options o;
    fy_run_options_init(&o);
    vae_env v;
    env_open(&v, &o, FY_WAN_VAE_DECODER);
    float *copy = malloc(fy_tensor_nbytes(&lat));
    memcpy(copy, lat.data, fy_tensor_nbytes(&lat));
    assert_int_equal(fy_wan_vae_denormalize(v.m, lat.data, lat.shape), FY_OK);
    assert_true(rel_err(lat.data, ref.data, (size_t)fy_tensor_numel(&ref)) <= 1e-6);
    assert_int_equal(fy_wan_vae_normalize(v.m, lat.data, lat.shape), FY_OK);
    assert_true(rel_err(lat.data, copy, (size_t)fy_tensor_numel(&ref)) <= 1e-6);
    int64_t bad[5] = {1, 3, 1, 1, 1};
    assert_int_equal(fy_wan_vae_normalize(v.m, lat.data, bad), FY_ERR_INVALID);
    free(copy);
    env_close(&v);
    fy_tensor_free(&lat);
    fy_tensor_free(&ref);
    fy_st_close(f);
}

/* ---- bad configs and weights ------------------------------------------------------------ */

typedef struct temp_vae {
    char *dir;
    fy_config *cfg;
    fy_st_set *weights;
    fy_component c;
} temp_vae;

/* The fixture's vae with config text edited (from -> to) and one weight
 * (reshape) written with an extra output channel, in a temp folder. */
/* bf16: 0 as stored, 1 as bf16, 2 rounded to bf16 but stored f32. */
static void temp_vae_make(temp_vae *t, const char *from, const char *to, const char *reshape, int bf16)
{
    memset(t, 0, sizeof *t);
    t->dir = fyt_temp_dir();
    assert_non_null(t->dir);
    size_t n = 0;
    char *text = fyt_read_file(MODEL "/vae/config.json", &n);
    assert_non_null(text);
    char *buf = calloc(n + 256, 1);
    char *at = from ? strstr(text, from) : NULL;
    if (at) {
        memcpy(buf, text, (size_t)(at - text));
        strcat(buf, to);
        strcat(buf, at + strlen(from));
    } else {
        memcpy(buf, text, n);
    }
    char *cfg = fyt_path(t->dir, "config.json"), *st = fyt_path(t->dir, "diffusion_pytorch_model.safetensors");
    assert_int_equal(fyt_write_file(cfg, buf, strlen(buf)), 0);
    fy_st_set *orig = NULL;
    assert_int_equal(fy_st_set_open(MODEL "/vae/diffusion_pytorch_model.safetensors", &orig), FY_OK);
    fy_st_writer *w = NULL;
    assert_int_equal(fy_st_writer_create(&w), FY_OK);
    void *keep[256] = {0};
    size_t nk = 0;
    for (size_t i = 0; i < fy_st_set_count(orig); i++) {
        const fy_st_info *info = fy_st_set_at(orig, i);
        fy_tensor v;
        assert_int_equal(fy_st_set_view(orig, info->name, &v), FY_OK);
        if (reshape && !strcmp(reshape, info->name)) {
            int64_t shape[5];
            memcpy(shape, v.shape, sizeof shape);
            shape[0]++;
            size_t bytes = fy_tensor_nbytes(&v) / (size_t)v.shape[0] * (size_t)shape[0];
            keep[nk] = calloc(bytes, 1);
            assert_int_equal(fy_st_writer_add(w, info->name, v.dtype, v.ndim, shape, keep[nk++], bytes), FY_OK);
        } else if (bf16) {
            size_t count = (size_t)fy_tensor_numel(&v);
            keep[nk] = malloc(count * 4);
            assert_int_equal(fy_convert(keep[nk], FY_BF16, v.data, v.dtype, count), FY_OK);
            if (bf16 == 2) {
                void *f = malloc(count * 4);
                assert_int_equal(fy_convert(f, FY_F32, keep[nk], FY_BF16, count), FY_OK);
                memcpy(keep[nk], f, count * 4);
                free(f);
                assert_int_equal(fy_st_writer_add(w, info->name, FY_F32, v.ndim, v.shape, keep[nk++], count * 4), FY_OK);
            } else
                assert_int_equal(fy_st_writer_add(w, info->name, FY_BF16, v.ndim, v.shape, keep[nk++], count * 2), FY_OK);
        } else {
            assert_int_equal(fy_st_writer_add_tensor(w, info->name, &v), FY_OK);
        }
    }
    assert_int_equal(fy_st_writer_finish(w, st), FY_OK);
    fy_st_writer_free(w);
    for (size_t i = 0; i < nk; i++) free(keep[i]);
    fy_st_set_free(orig);
    assert_int_equal(fy_config_load(cfg, &t->cfg), FY_OK);
    assert_int_equal(fy_st_set_open(st, &t->weights), FY_OK);
    t->c = (fy_component){"vae", "diffusers", "AutoencoderKLWan", t->dir, t->cfg, t->weights, false, NULL};
    free(cfg);
    free(st);
    free(buf);
    free(text);
}

static void temp_vae_free(temp_vae *t)
{
    fy_st_set_free(t->weights);
    fy_config_free(t->cfg);
    fyt_remove_tree(t->dir);
    free(t->dir);
}

static fy_status load_temp(temp_vae *t)
{
    fy_run_options o;
    fy_run_options_init(&o);
    fy_engine *e = NULL;
    assert_int_equal(fy_engine_create(&o, &e), FY_OK);
    fy_wan_vae *m = NULL;
    fy_status s = fy_wan_vae_load(&t->c, e, FY_WAN_VAE_BOTH, &m);
    fy_wan_vae_free(m);
    fy_engine_free(e);
    return s;
}

static void test_temp_copy_loads(void **state)
{
    (void)state;
    temp_vae t;
    temp_vae_make(&t, NULL, NULL, NULL, 0);
    assert_int_equal(load_temp(&t), FY_OK);
    temp_vae_free(&t);
}

static float *decode_temp(temp_vae *t, const fy_tensor *lat, size_t n)
{
    fy_run_options o = emu_options();
    fy_engine *e = NULL;
    fy_wan_vae *m = NULL;
    assert_int_equal(fy_engine_create(&o, &e), FY_OK);
    assert_int_equal(fy_wan_vae_load(&t->c, e, FY_WAN_VAE_DECODER, &m), FY_OK);
    fy_wan_vae_decode_shape s = {1, lat->shape[2], lat->shape[3], lat->shape[4]};
    assert_int_equal(fy_engine_reserve(e, fy_wan_vae_decode_activation_bytes(m, &s, &o)), FY_OK);
    assert_int_equal(fy_engine_prepare(e), FY_OK);
    float *video = malloc(n * sizeof *video);
    assert_int_equal(fy_wan_vae_decode(m, &s, lat->data, &o, video), FY_OK);
    assert_int_equal(fy_engine_finish(e), FY_OK);
    const fy_engine_stats *st = fy_engine_stats_get(e);
    assert_true(st->peak_device <= st->device_bound);
    fy_wan_vae_free(m);
    fy_engine_free(e);
    return video;
}

/* bf16 weights, converted as they are used, give exactly the float32 result
 * on the same rounded weights. (The random tiny model amplifies the rounding
 * itself to several percent, so the f32 reference is no measure here.) */
static void test_bf16_weights(void **state)
{
    (void)state;
    temp_vae a, b;
    temp_vae_make(&a, NULL, NULL, NULL, 1);
    temp_vae_make(&b, NULL, NULL, NULL, 2);
    fy_tensor lat = fixture_tensor("decode.input"), ref = fixture_tensor("decode.output");
    size_t n = (size_t)fy_tensor_numel(&ref);
    float *x = decode_temp(&a, &lat, n), *y = decode_temp(&b, &lat, n);
    assert_true(rel_err(x, y, n) == 0.0);
    free(x);
    free(y);
    fy_tensor_free(&lat);
    fy_tensor_free(&ref);
    temp_vae_free(&a);
    temp_vae_free(&b);
}

static void test_missing_config_key(void **state)
{
    (void)state;
    temp_vae t;
    temp_vae_make(&t, "\"z_dim\"", "\"z_dim_renamed\"", NULL, 0);
    assert_int_equal(load_temp(&t), FY_ERR_NOT_FOUND);
    assert_non_null(strstr(fy_error_message(), "z_dim"));
    assert_non_null(strstr(fy_error_message(), "config.json"));
    temp_vae_free(&t);
}

static void test_bad_temporal_list(void **state)
{
    (void)state;
    temp_vae t;
    temp_vae_make(&t, "\"temperal_downsample\": [\n    false,", "\"temperal_downsample\": [", NULL, 0);
    assert_int_equal(load_temp(&t), FY_ERR_FORMAT);
    assert_non_null(strstr(fy_error_message(), "temperal_downsample"));
    temp_vae_free(&t);
}

/* Wan2.1 weights under a Wan2.2 config: the first residual-only weight is named. */
static void test_residual_config_wan21_weights(void **state)
{
    (void)state;
    temp_vae t;
    temp_vae_make(&t, "\"is_residual\": false", "\"is_residual\": true", NULL, 0);
    assert_int_not_equal(load_temp(&t), FY_OK);
    print_message("%s\n", fy_error_message());
    assert_non_null(strstr(fy_error_message(), "decoder.up_blocks.0.upsampler"));
    temp_vae_free(&t);
}

static void test_wrong_weight_shape(void **state)
{
    (void)state;
    temp_vae t;
    temp_vae_make(&t, NULL, NULL, "decoder.up_blocks.1.resnets.0.conv1.weight", 0);
    assert_int_equal(load_temp(&t), FY_ERR_FORMAT);
    assert_non_null(strstr(fy_error_message(), "decoder.up_blocks.1.resnets.0.conv1.weight"));
    assert_non_null(strstr(fy_error_message(), "diffusion_pytorch_model.safetensors"));
    temp_vae_free(&t);
}

static void test_bad_shapes_and_tiles(void **state)
{
    (void)state;
    fy_run_options o;
    fy_run_options_init(&o);
    vae_env v;
    env_open(&v, &o, FY_WAN_VAE_DECODER);
    fy_wan_vae_decode_shape s = {1, 0, 4, 6};
    int64_t out[5];
    assert_int_equal(fy_wan_vae_decode_output_shape(v.m, &s, out), FY_ERR_INVALID);
    assert_int_equal(fy_wan_vae_decode_activation_bytes(v.m, &s, &o), 0);
    fy_wan_vae_encode_shape es = {1, 9, 32, 48};
    assert_int_equal(fy_wan_vae_encode_output_shape(v.m, &es, out), FY_ERR_INVALID); /* no encoder loaded */
    s.frames = 1;
    o.vae_tiling = true;
    o.vae_tile_stride[0] = 512; /* stride above the tile */
    float lat[16 * 4 * 6] = {0}, video[3 * 32 * 48];
    assert_int_equal(fy_engine_prepare(v.e), FY_OK);
    assert_int_equal(fy_wan_vae_decode(v.m, &s, lat, &o, video), FY_ERR_INVALID);
    assert_non_null(strstr(fy_error_message(), "--vae-tile"));
    env_close(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_cpu),
        cmocka_unit_test(test_golden_every_plan_emu),
        cmocka_unit_test(test_golden_cpu_offload),
        cmocka_unit_test(test_golden_budget_too_small),
        cmocka_unit_test(test_peak_independent_of_frames),
        cmocka_unit_test(test_peak_follows_tile),
        cmocka_unit_test(test_auto_tiling),
        cmocka_unit_test(test_slicing),
        cmocka_unit_test(test_decoder_only_moves_decoder),
        cmocka_unit_test(test_tiled_encode_without_overlap),
        cmocka_unit_test(test_denormalize_matches_pipeline),
        cmocka_unit_test(test_temp_copy_loads),
        cmocka_unit_test(test_bf16_weights),
        cmocka_unit_test(test_missing_config_key),
        cmocka_unit_test(test_bad_temporal_list),
        cmocka_unit_test(test_residual_config_wan21_weights),
        cmocka_unit_test(test_wrong_weight_shape),
        cmocka_unit_test(test_bad_shapes_and_tiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
