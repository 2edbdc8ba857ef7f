/* The Wan2.2 VAE (AutoencoderKLWan with is_residual and patch_size 2).
 *
 * Golden fixtures (wan22-ti2v-tiny): `ferry verify --component vae` on the
 * CPU and on the emulated device under every plan with the budget set to
 * exactly the plan's bound. Patchify against the fixture's patches and
 * unpatchify against the decoder's raw output; tiles in patches (a tile
 * covering the frame is the untiled decode, smaller tiles bound the peak);
 * the peak does not grow with the frame count; slicing; a tiled encode. */
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
#include "ferry/engine.h"
#include "ferry/model.h"
#include "ferry/safetensors.h"
#include "ferry/wan_vae.h"
#include "models/wan_vae_internal.h"
#include "verify/verify.h"
#include "support/fyt.h"

#define MODEL FERRY_FIXTURES_DIR "/wan22-ti2v-tiny/model"
#define FIXTURES FERRY_FIXTURES_DIR "/wan22-ti2v-tiny/fixtures"
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

typedef struct vae_env {
    fy_model *model;
    fy_engine *e;
    fy_wan_vae *m;
} vae_env;

static void env_open(vae_env *v, const fy_run_options *o, int parts)
{
    memset(v, 0, sizeof *v);
    assert_int_equal(fy_model_open(MODEL, &v->model), FY_OK);
    assert_int_equal(fy_engine_create(o, &v->e), FY_OK);
    assert_int_equal(fy_wan_vae_load(fy_model_component(v->model, "vae"), v->e, parts, &v->m), FY_OK);
    assert_int_equal(fy_wan_vae_set_threads(v->m, 2), FY_OK);
}

static void env_close(vae_env *v)
{
    fy_wan_vae_free(v->m);
    fy_engine_free(v->e);
    fy_model_free(v->model);
}

static fy_run_options untiled(fy_run_options o)
{
    o.vae_tiling = false;
    o.vae_tile[0] = o.vae_tile[1] = o.vae_tile_stride[0] = o.vae_tile_stride[1] = 1 << 30;
    return o;
}

/* ---- golden fixtures -------------------------------------------------------------- */

static void test_config(void **state)
{
    (void)state;
    fy_run_options o = emu_options();
    vae_env v;
    env_open(&v, &o, FY_WAN_VAE_BOTH);
    const fy_wan_vae_config *k = fy_wan_vae_get_config(v.m);
    assert_true(k->is_residual);
    assert_int_equal(k->patch_size, 2);
    assert_int_equal(k->video_channels, 3);
    assert_int_equal(k->z_dim, 48);
    assert_int_equal(k->spatial_ratio * k->patch_size, 16);
    fy_wan_vae_decode_shape ds = {1, 3, 4, 4};
    int64_t vs[5];
    assert_int_equal(fy_wan_vae_decode_output_shape(v.m, &ds, vs), FY_OK);
    int64_t want[5] = {1, 3, 9, 64, 64};
    assert_memory_equal(vs, want, sizeof want);
    fy_wan_vae_encode_shape es = {1, 9, 64, 64}, odd = {1, 9, 63, 64};
    int64_t ls[5], lwant[5] = {1, 48, 3, 4, 4};
    assert_int_equal(fy_wan_vae_encode_output_shape(v.m, &es, ls), FY_OK);
    assert_memory_equal(ls, lwant, sizeof lwant);
    assert_int_equal(fy_wan_vae_encode_output_shape(v.m, &odd, ls), FY_ERR_INVALID);
    assert_non_null(strstr(fy_error_message(), "patches"));
    env_close(&v);
}

static void test_golden_cpu(void **state)
{
    (void)state;
    fy_run_options o;
    fy_run_options_init(&o);
    o.threads = 2;
    assert_int_equal(verify(&o), FY_OK);
}

/* The bound of plan o with the verifier's reservation. */
static uint64_t golden_bound(const fy_run_options *o)
{
    fy_run_options unlimited = *o;
    memset(unlimited.max_memory, 0, sizeof unlimited.max_memory);
    vae_env v;
    env_open(&v, &unlimited, FY_WAN_VAE_BOTH);
    fy_tensor dec = fixture_tensor("decode.input"), mean = fixture_tensor("encode.mean"),
              enc = fixture_tensor("encode.input");
    fy_run_options un = untiled(*o);
    fy_wan_vae_decode_shape ds = {1, dec.shape[2], dec.shape[3], dec.shape[4]};
    fy_wan_vae_decode_shape rs = {1, mean.shape[2], mean.shape[3], mean.shape[4]};
    fy_wan_vae_encode_shape es = {1, enc.shape[2], enc.shape[3], enc.shape[4]};
    uint64_t a = fy_wan_vae_decode_activation_bytes(v.m, &ds, &un);
    uint64_t b = fy_wan_vae_decode_activation_bytes(v.m, &rs, &un);
    uint64_t c = fy_wan_vae_encode_activation_bytes(v.m, &es, &un);
    uint64_t m = a > b ? a : b;
    m = m > c ? m : c;
    assert_int_equal(fy_engine_reserve(v.e, m), FY_OK);
    fy_plan plan;
    assert_int_equal(fy_engine_evaluate_plan(v.e, o, &plan), FY_OK);
    fy_tensor_free(&dec);
    fy_tensor_free(&mean);
    fy_tensor_free(&enc);
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
    plans[n] = emu_options(), plans[n].offload = FY_OFFLOAD_LAYERWISE, plans[n++].prefetch_depth = 2;
    plans[n] = emu_options(), plans[n].offload = FY_OFFLOAD_LAYERWISE, plans[n++].resident_blocks = 1;
    plans[n] = emu_options(), plans[n++].vae_slicing = true;
    for (int i = 0; i < n; i++) {
        plans[i].max_memory[0] = golden_bound(&plans[i]);
        print_message("plan %s: budget %llu bytes\n", fy_offload_policy_name(plans[i].offload),
                      (unsigned long long)plans[i].max_memory[0]);
        assert_int_equal(verify(&plans[i]), FY_OK);
    }
    fy_run_options host = emu_options();
    host.vae_cpu_offload = true;
    host.max_memory[0] = 1024;
    assert_int_equal(verify(&host), FY_OK);
}

/* ---- patches -------------------------------------------------------------------------- */

/* The column offset is the slower index: the fixture's patches exactly; unpatchify inverts. */
static void test_patchify(void **state)
{
    (void)state;
    fy_tensor in = fixture_tensor("encode.input"), ref = fixture_tensor("encode.patchified");
    float *p = malloc(numel5(ref.shape) * sizeof(float)), *back = malloc(numel5(in.shape) * sizeof(float));
    vae22_patchify(in.data, in.shape, 2, p);
    assert_memory_equal(p, ref.data, numel5(ref.shape) * sizeof(float));
    vae22_unpatchify(p, ref.shape, 2, back);
    assert_memory_equal(back, in.data, numel5(in.shape) * sizeof(float));
    free(p);
    free(back);
    fy_tensor_free(&in);
    fy_tensor_free(&ref);
}

/* The decoder's raw 12-channel output, unfolded and clamped, is the round trip's video. */
static void test_unpatchify_decoder_output(void **state)
{
    (void)state;
    fy_tensor raw = fixture_tensor("roundtrip.decoder_raw"), ref = fixture_tensor("roundtrip.output");
    size_t n = numel5(ref.shape);
    float *v = malloc(n * sizeof(float));
    vae22_unpatchify(raw.data, raw.shape, 2, v);
    for (size_t i = 0; i < n; i++) v[i] = v[i] < -1.0f ? -1.0f : (v[i] > 1.0f ? 1.0f : v[i]);
    assert_memory_equal(v, ref.data, n * sizeof(float));
    free(v);
    fy_tensor_free(&raw);
    fy_tensor_free(&ref);
}

/* ---- tiles, frames, slices --------------------------------------------------------------- */

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
    assert_int_equal(fy_wan_vae_decode(v.m, &s, lat->data, o, video), FY_OK);
    assert_int_equal(fy_engine_finish(v.e), FY_OK);
    const fy_engine_stats *stats = fy_engine_stats_get(v.e);
    if (peak) *peak = stats->peak_device;
    assert_true(stats->peak_device <= stats->device_bound);
    env_close(&v);
    return video;
}

/* x with frames (k = 0) or rows and columns repeated twice. */
static fy_tensor repeat2(const fy_tensor *x, bool space)
{
    int64_t s[5] = {x->shape[0], x->shape[1], x->shape[2] * (space ? 1 : 2), x->shape[3] * (space ? 2 : 1),
                    x->shape[4] * (space ? 2 : 1)};
    fy_tensor out = {0};
    assert_int_equal(fy_tensor_alloc(&out, FY_F32, 5, s), FY_OK);
    const float *src = x->data;
    float *dst = out.data;
    for (int64_t bc = 0; bc < s[0] * s[1]; bc++)
        for (int64_t t = 0; t < s[2]; t++)
            for (int64_t i = 0; i < s[3]; i++)
                for (int64_t j = 0; j < s[4]; j++)
                    *dst++ = src[((bc * x->shape[2] + t % x->shape[2]) * x->shape[3] + i % x->shape[3]) * x->shape[4] +
                                 j % x->shape[4]];
    return out;
}

static void set_tiles(fy_run_options *o, int tile, int stride)
{
    o->vae_tiling = true;
    o->vae_tile[0] = o->vae_tile[1] = tile; /* in patches, as diffusers: 8 per latent */
    o->vae_tile_stride[0] = o->vae_tile_stride[1] = stride;
}

static void test_tiles(void **state)
{
    (void)state;
    fy_tensor lat = fixture_tensor("decode.input"), ref = fixture_tensor("decode.output");
    fy_run_options o = untiled(emu_options()), cover = emu_options(), small = emu_options();
    set_tiles(&cover, 24, 24); /* the frame in patches (48x64 pixels): not tiled */
    cover.vae_tile[1] = cover.vae_tile_stride[1] = 32;
    set_tiles(&small, 16, 8);
    int64_t vs[5];
    uint64_t peak = 0, peak_small = 0, peak_big = 0, est = 0;
    float *a = decode_on(&o, &lat, vs, &peak, &est);
    assert_true(rel_err(a, ref.data, numel5(vs)) <= 1e-4);
    assert_true(peak <= est + 4 * 1024 * 1024); /* weights of plan none plus the estimate */
    float *b = decode_on(&cover, &lat, vs, NULL, NULL);
    assert_memory_equal(a, b, numel5(vs) * sizeof(float));
    float *c = decode_on(&small, &lat, vs, &peak_small, NULL);
    assert_true(isfinite(rel_err(c, ref.data, numel5(vs)))); /* random weights: the seams differ */
    fy_tensor big = repeat2(&lat, true);
    int64_t vs2[5];
    float *d = decode_on(&small, &big, vs2, &peak_big, NULL);
    print_message("tiled peak %llu, twice the size %llu\n", (unsigned long long)peak_small,
                  (unsigned long long)peak_big);
    assert_int_equal(vs2[3], 2 * vs[3]);
    assert_true(peak_big <= peak_small);
    free(a);
    free(b);
    free(c);
    free(d);
    fy_tensor_free(&big);
    fy_tensor_free(&lat);
    fy_tensor_free(&ref);
}

static void test_peak_independent_of_frames(void **state)
{
    (void)state;
    fy_run_options o = untiled(emu_options());
    fy_tensor lat = fixture_tensor("decode.input"), twice = repeat2(&lat, false);
    int64_t vs[5], vs2[5];
    uint64_t p1 = 0, p2 = 0, e1 = 0, e2 = 0;
    float *a = decode_on(&o, &lat, vs, &p1, &e1);
    float *b = decode_on(&o, &twice, vs2, &p2, &e2);
    assert_int_equal(vs2[2], 1 + 4 * (2 * lat.shape[2] - 1));
    assert_true(p2 <= p1);
    assert_true(e2 == e1);
    free(a);
    free(b);
    fy_tensor_free(&lat);
    fy_tensor_free(&twice);
}

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
    fy_run_options o = untiled(emu_options()), sliced = untiled(emu_options());
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

static float *encode_on(const fy_run_options *o, const fy_tensor *video, int64_t ls[5])
{
    vae_env v;
    env_open(&v, o, FY_WAN_VAE_ENCODER);
    fy_wan_vae_encode_shape s = {video->shape[0], video->shape[2], video->shape[3], video->shape[4]};
    uint64_t bytes = fy_wan_vae_encode_activation_bytes(v.m, &s, o);
    assert_true(bytes > 0);
    assert_int_equal(fy_engine_reserve(v.e, bytes), FY_OK);
    assert_int_equal(fy_engine_prepare(v.e), FY_OK);
    assert_int_equal(fy_wan_vae_encode_output_shape(v.m, &s, ls), FY_OK);
    int64_t ms[5] = {ls[0], 2 * ls[1], ls[2], ls[3], ls[4]};
    float *moments = malloc(numel5(ms) * sizeof(float));
    assert_int_equal(fy_wan_vae_encode(v.m, &s, video->data, o, moments, NULL, NULL), FY_OK);
    assert_int_equal(fy_engine_finish(v.e), FY_OK);
    assert_true(fy_engine_stats_get(v.e)->peak_device <= fy_engine_stats_get(v.e)->device_bound);
    env_close(&v);
    return moments;
}

/* A tile covering the patches is the untiled encode; smaller tiles run and stay close. */
static void test_tiled_encode(void **state)
{
    (void)state;
    fy_tensor in = fixture_tensor("encode.input"), ref = fixture_tensor("encode.moments");
    fy_run_options o = untiled(emu_options()), cover = emu_options(), small = emu_options();
    set_tiles(&cover, 16, 16);
    set_tiles(&small, 8, 8);
    int64_t ls[5];
    float *a = encode_on(&o, &in, ls);
    float *b = encode_on(&cover, &in, ls);
    float *c = encode_on(&small, &in, ls);
    size_t n = numel5(ref.shape);
    assert_true(rel_err(a, ref.data, n) <= 1e-4);
    assert_memory_equal(a, b, n * sizeof(float));
    assert_true(isfinite(rel_err(c, ref.data, n)));
    free(a);
    free(b);
    free(c);
    fy_tensor_free(&in);
    fy_tensor_free(&ref);
}

/* The VAE's config with one edit, loaded against the fixture's weights. */
static fy_status load_edited(const char *from, const char *to)
{
    char *dir = fyt_temp_dir();
    assert_non_null(dir);
    size_t n = 0;
    char *text = fyt_read_file(MODEL "/vae/config.json", &n);
    assert_non_null(text);
    char *at = strstr(text, from);
    assert_non_null(at);
    char *edited = calloc(n + strlen(to) + 1, 1);
    memcpy(edited, text, (size_t)(at - text));
    strcat(edited, to);
    strcat(edited, at + strlen(from));
    char *cfg_path = fyt_path(dir, "config.json");
    assert_int_equal(fyt_write_file(cfg_path, edited, strlen(edited)), 0);
    fy_config *cfg = NULL;
    fy_st_set *weights = NULL;
    assert_int_equal(fy_config_load(cfg_path, &cfg), FY_OK);
    assert_int_equal(fy_st_set_open(MODEL "/vae/diffusion_pytorch_model.safetensors", &weights), FY_OK);
    fy_component c = {"vae", "diffusers", "AutoencoderKLWan", dir, cfg, weights, false, NULL};
    fy_run_options o;
    fy_run_options_init(&o);
    fy_engine *e = NULL;
    assert_int_equal(fy_engine_create(&o, &e), FY_OK);
    fy_wan_vae *m = NULL;
    fy_status st = fy_wan_vae_load(&c, e, FY_WAN_VAE_BOTH, &m);
    fy_wan_vae_free(m);
    fy_engine_free(e);
    fy_st_set_free(weights);
    fy_config_free(cfg);
    fyt_remove_tree(dir);
    free(dir);
    free(cfg_path);
    free(edited);
    free(text);
    return st;
}

/* Bad Wan2.2 settings name the key; a Wan2.1 layout over Wan2.2 weights names a weight. */
static void test_bad_configs(void **state)
{
    (void)state;
    assert_int_equal(load_edited("\"patch_size\": 2", "\"patch_size\": 3"), FY_ERR_FORMAT);
    assert_non_null(strstr(fy_error_message(), "patch_size"));
    assert_int_equal(load_edited("\"patch_size\": 2", "\"patch_size\": 0"), FY_ERR_FORMAT);
    assert_non_null(strstr(fy_error_message(), "patch_size"));
    assert_int_equal(load_edited("\"out_channels\": 12", "\"out_channels\": 8"), FY_ERR_UNSUPPORTED);
    assert_non_null(strstr(fy_error_message(), "out_channels"));
    assert_int_not_equal(load_edited("\"is_residual\": true", "\"is_residual\": false"), FY_OK);
    assert_non_null(strstr(fy_error_message(), "diffusion_pytorch_model.safetensors"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_golden_cpu),
        cmocka_unit_test(test_golden_every_plan_emu),
        cmocka_unit_test(test_patchify),
        cmocka_unit_test(test_unpatchify_decoder_output),
        cmocka_unit_test(test_tiles),
        cmocka_unit_test(test_peak_independent_of_frames),
        cmocka_unit_test(test_slicing),
        cmocka_unit_test(test_tiled_encode),
        cmocka_unit_test(test_bad_configs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
