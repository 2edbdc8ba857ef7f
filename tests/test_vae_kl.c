/* Flux's AutoencoderKL tiling: a tiled encode is diffusers' tiled_encode
 * (each tile encoded on its own, blended with the tiles above and to the
 * left, a stride's worth of each kept), checked against tiles encoded
 * untiled and blended here; an image no larger than a tile is encoded
 * untiled; the default tiling is diffusers' (sample_size, overlap 1/4). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/engine.h"
#include "ferry/model.h"
#include "ferry/options.h"
#include "ferry/vae_kl.h"

#define DEV FERRY_FIXTURES_DIR "/flux-tiny/model"
#define IMG_H 64
#define IMG_W 80

typedef struct vae_fixture {
    fy_model *model;
    fy_engine *engine;
    fy_vae_kl *vae;
    float image[3 * IMG_H * IMG_W];
} vae_fixture;

static int setup(void **state)
{
    vae_fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    fy_run_options o;
    fy_run_options_init(&o);
    o.threads = 2;
    assert_int_equal(fy_model_open(DEV, &f->model), FY_OK);
    assert_int_equal(fy_engine_create(&o, &f->engine), FY_OK);
    assert_int_equal(fy_vae_kl_load(fy_model_component(f->model, "vae"), f->engine, FY_VAE_KL_ENCODER, &f->vae),
                     FY_OK);
    assert_int_equal(fy_engine_reserve(f->engine, fy_vae_kl_encode_activation_bytes(f->vae, IMG_H, IMG_W, NULL)),
                     FY_OK);
    assert_int_equal(fy_engine_prepare(f->engine), FY_OK);
    for (int i = 0; i < 3 * IMG_H * IMG_W; i++) f->image[i] = sinf(0.37f * (float)i) * cosf(0.011f * (float)i);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    vae_fixture *f = *state;
    fy_vae_kl_free(f->vae);
    fy_engine_free(f->engine);
    fy_model_free(f->model);
    free(f);
    return 0;
}

/* The moments of the crop (y0, x0, th x tw) encoded on its own. */
static float *encode_crop(vae_fixture *f, int y0, int x0, int th, int tw)
{
    float *crop = malloc(sizeof(float) * 3 * (size_t)(th * tw)), *mo = malloc(sizeof(float) * 32 * (size_t)(th * tw));
    assert_true(crop && mo);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < th; y++)
            memcpy(crop + (c * th + y) * tw, f->image + (c * IMG_H + y0 + y) * IMG_W + x0, sizeof(float) * (size_t)tw);
    assert_int_equal(fy_vae_kl_encode(f->vae, crop, 1, th, tw, NULL, mo), FY_OK);
    free(crop);
    return mo;
}

/* diffusers' blend_v / blend_h on [32, h, w] moments. */
static void blend(const float *a, int ah, int aw, float *b, int bh, int bw, int extent, bool vertical)
{
    int e = vertical ? (ah < bh ? ah : bh) : (aw < bw ? aw : bw);
    e = e < extent ? e : extent;
    for (int c = 0; c < 32; c++)
        for (int y = 0; y < (vertical ? e : bh); y++)
            for (int x = 0; x < (vertical ? bw : e); x++) {
                int k = vertical ? y : x;
                const float *pa = vertical ? a + (c * ah + ah - e + y) * aw + x : a + (c * ah + y) * aw + aw - e + x;
                float *pb = b + (c * bh + y) * bw + x;
                *pb = *pa * (1.0f - (float)k / (float)e) + *pb * ((float)k / (float)e);
            }
}

static void test_tiled_encode_is_diffusers(void **state)
{
    vae_fixture *f = *state;
    enum { T = 32, S = 24, UP = 8, ROWS = 3, COLS = 4, H = IMG_H / UP, W = IMG_W / UP };
    fy_vae_kl_tiling tiling = {T / UP, S / UP};
    float *tiled = malloc(sizeof(float) * 32 * H * W), *want = calloc(32 * H * W, sizeof(float));
    assert_true(tiled && want);
    assert_int_equal(fy_vae_kl_encode(f->vae, f->image, 1, IMG_H, IMG_W, &tiling, tiled), FY_OK);
    float *tiles[ROWS][COLS];
    int th[ROWS], tw[COLS];
    for (int i = 0; i < ROWS; i++)
        for (int j = 0; j < COLS; j++) {
            th[i] = IMG_H - i * S < T ? IMG_H - i * S : T;
            tw[j] = IMG_W - j * S < T ? IMG_W - j * S : T;
            tiles[i][j] = encode_crop(f, i * S, j * S, th[i], tw[j]);
        }
    int blend_extent = (T - S) / UP, limit = S / UP;
    for (int i = 0; i < ROWS; i++)
        for (int j = 0; j < COLS; j++) {
            int h = th[i] / UP, w = tw[j] / UP;
            if (i > 0) blend(tiles[i - 1][j], th[i - 1] / UP, w, tiles[i][j], h, w, blend_extent, true);
            if (j > 0) blend(tiles[i][j - 1], h, tw[j - 1] / UP, tiles[i][j], h, w, blend_extent, false);
            for (int c = 0; c < 32; c++)
                for (int y = 0; y < limit && y < h && i * limit + y < H; y++)
                    for (int x = 0; x < limit && x < w && j * limit + x < W; x++)
                        want[(c * H + i * limit + y) * W + j * limit + x] = tiles[i][j][(c * h + y) * w + x];
        }
    for (int k = 0; k < 32 * H * W; k++)
        if (tiled[k] != want[k]) fail_msg("moment %d: tiled %.9g, diffusers' recipe %.9g", k, tiled[k], want[k]);
    for (int i = 0; i < ROWS; i++)
        for (int j = 0; j < COLS; j++) free(tiles[i][j]);
    free(tiled);
    free(want);
}

static void test_image_within_a_tile_is_untiled(void **state)
{
    vae_fixture *f = *state;
    size_t n = 32 * (IMG_H / 8) * (IMG_W / 8);
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    assert_true(a && b);
    fy_vae_kl_tiling big = {IMG_W / 8, IMG_W / 8 * 3 / 4};
    assert_int_equal(fy_vae_kl_encode(f->vae, f->image, 1, IMG_H, IMG_W, NULL, a), FY_OK);
    assert_int_equal(fy_vae_kl_encode(f->vae, f->image, 1, IMG_H, IMG_W, &big, b), FY_OK);
    assert_memory_equal(a, b, n * sizeof(float));
    fy_vae_kl_tiling bad = {4, 5};
    assert_int_equal(fy_vae_kl_encode(f->vae, f->image, 1, IMG_H, IMG_W, &bad, b), FY_ERR_INVALID);
    free(a);
    free(b);
}

static void test_default_tiling_is_diffusers(void **state)
{
    vae_fixture *f = *state;
    /* sample_size 1024 (the real FLUX.1 VAE's too): 128-latent tiles every 96. */
    fy_vae_kl_tiling t = fy_vae_kl_default_tiling(f->vae);
    assert_int_equal(fy_vae_kl_get_config(f->vae)->sample_size, 1024);
    assert_int_equal(t.tile_latent, 128);
    assert_int_equal(t.stride_latent, 96);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiled_encode_is_diffusers),
        cmocka_unit_test(test_image_within_a_tile_is_untiled),
        cmocka_unit_test(test_default_tiling_is_diffusers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
