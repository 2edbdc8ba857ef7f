/* Wan2.2 TI2V-5B image to video (diffusers' WanImageToVideoPipeline with
 * expand_timesteps) on wan22-ti2v-tiny. No golden fixture exists for it, so
 * what is exact is checked: the image's latent (the VAE encoding of the
 * preprocessed image, computed here separately) is the output's first latent
 * frame; every step gives the transformer that frame at timestep 0 and the
 * latents elsewhere at t; the video's first frame is the same whatever
 * the seed, prompt or frame count; cpu and emu under every plan (fp8 blocks too)
 * give the same bytes; one loaded pipeline switches between text and image
 * requests; the wrong folders and options are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/engine.h"
#include "ferry/image.h"
#include "ferry/image_preprocess.h"
#include "ferry/model.h"
#include "ferry/options.h"
#include "ferry/wan_i2v.h"
#include "ferry/wan_t2v.h"
#include "ferry/wan_vae.h"

#define MODEL_DIR FERRY_FIXTURES_DIR "/wan22-ti2v-tiny/model"
#define IMAGE FERRY_FIXTURES_DIR "/wan-i2v-tiny/fixtures/image_other.png"
#define T2V_DIR FERRY_FIXTURES_DIR "/wan-tiny/model"

enum { HEIGHT = 64, WIDTH = 96, FRAMES = 9, STEPS = 3 };

static void request(fy_wan_t2v_params *p, const char *image)
{
    fy_wan_t2v_params_init(p);
    p->prompt = "a fox";
    p->height = HEIGHT;
    p->width = WIDTH;
    p->num_frames = FRAMES;
    p->steps = STEPS;
    p->max_sequence_length = 16;
    p->seed = 11;
    p->image = image;
}

/* ---- the run's intermediates, by name ------------------------------------ */

#define MAX_TAPS 64

typedef struct tap {
    char name[48];
    float *data;
    int64_t shape[5];
    int ndim;
    size_t n;
} tap;

typedef struct taps {
    tap t[MAX_TAPS];
    int count;
} taps;

static void keep_tensor(void *user, const char *name, const float *data, int ndim, const int64_t *shape)
{
    taps *k = user;
    if (k->count == MAX_TAPS || ndim > 5) return;
    if (strncmp(name, "latents", 7) && strcmp(name, "condition") && !strstr(name, ".timestep") &&
        !strstr(name, ".latent_model_input"))
        return;
    tap *t = &k->t[k->count++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->n = 1;
    for (int i = 0; i < ndim; i++) t->n *= (size_t)(t->shape[i] = shape[i]);
    t->data = malloc(t->n * sizeof *t->data);
    assert_non_null(t->data);
    memcpy(t->data, data, t->n * sizeof *t->data);
}

static int64_t timesteps[STEPS];

static void keep_ids(void *user, const char *name, const int64_t *data, int64_t n)
{
    (void)user;
    if (strcmp(name, "timesteps") == 0 && n == STEPS) memcpy(timesteps, data, sizeof timesteps);
}

static const tap *find(const taps *k, const char *name)
{
    for (int i = 0; i < k->count; i++)
        if (strcmp(k->t[i].name, name) == 0) return &k->t[i];
    fail_msg("the run gave no \"%s\"", name);
    return NULL;
}

static void taps_free(taps *k)
{
    for (int i = 0; i < k->count; i++) free(k->t[i].data);
}

/* ---- the image's latent, computed apart from the pipeline ------------------ */

/* The preprocessed image through the VAE's encoder as a one-frame video,
 * normalised: [z, h * w]. */
static float *encode_image_alone(int64_t lat[5])
{
    fy_run_options o;
    fy_run_options_init(&o);
    o.threads = 2;
    fy_model *m = NULL;
    fy_engine *e = NULL;
    fy_wan_vae *vae = NULL;
    assert_int_equal(fy_model_open(MODEL_DIR, &m), FY_OK);
    assert_int_equal(fy_engine_create(&o, &e), FY_OK);
    assert_int_equal(fy_wan_vae_load(fy_model_component(m, "vae"), e, FY_WAN_VAE_ENCODER, &vae), FY_OK);
    assert_int_equal(fy_wan_vae_set_threads(vae, 2), FY_OK);
    fy_wan_vae_encode_shape es = {1, 1, HEIGHT, WIDTH};
    assert_int_equal(fy_engine_reserve(e, fy_wan_vae_encode_activation_bytes(vae, &es, &o)), FY_OK);
    assert_int_equal(fy_engine_prepare(e), FY_OK);
    fy_image img;
    assert_int_equal(fy_image_load(IMAGE, &img), FY_OK);
    float *frame = malloc(sizeof *frame * 3 * HEIGHT * WIDTH);
    assert_non_null(frame);
    assert_int_equal(fy_video_image_preprocess(&img, WIDTH, HEIGHT, frame, NULL), FY_OK);
    fy_image_free(&img);
    assert_int_equal(fy_wan_vae_encode_output_shape(vae, &es, lat), FY_OK);
    size_t n = (size_t)(lat[1] * lat[2] * lat[3] * lat[4]);
    float *moments = malloc(sizeof *moments * 2 * n), *mean = malloc(sizeof *mean * n);
    assert_non_null(moments);
    assert_non_null(mean);
    assert_int_equal(fy_wan_vae_encode(vae, &es, frame, &o, moments, mean, NULL), FY_OK);
    assert_int_equal(fy_wan_vae_normalize(vae, mean, lat), FY_OK);
    assert_int_equal(fy_engine_finish(e), FY_OK);
    free(moments);
    free(frame);
    fy_wan_vae_free(vae);
    fy_engine_free(e);
    fy_model_free(m);
    return mean;
}

/* Frame t of channel c of a [1, C, T, h, w] tensor. */
static const float *frame_of(const tap *x, int64_t c, int64_t t)
{
    return x->data + (c * x->shape[2] + t) * x->shape[3] * x->shape[4];
}

/* a's frames from `from` on equal b's (same shape), bit for bit. */
static void frames_equal(const tap *a, const tap *b, int64_t from)
{
    size_t plane = (size_t)(a->shape[3] * a->shape[4]);
    for (int i = 0; i < 5; i++) assert_int_equal(a->shape[i], b->shape[i]);
    for (int64_t c = 0; c < a->shape[1]; c++)
        for (int64_t t = from; t < a->shape[2]; t++)
            assert_memory_equal(frame_of(a, c, t), frame_of(b, c, t), plane * sizeof(float));
}

/* Frame 0 of x is the image's latent [z, plane]. */
static void first_frame_is(const tap *x, const float *image_latent)
{
    size_t plane = (size_t)(x->shape[3] * x->shape[4]);
    for (int64_t c = 0; c < x->shape[1]; c++)
        assert_memory_equal(frame_of(x, c, 0), image_latent + c * (int64_t)plane, plane * sizeof(float));
}

static void test_first_frame_is_the_image(void **state)
{
    (void)state;
    int64_t lat[5];
    float *image_latent = encode_image_alone(lat);
    assert_int_equal(lat[2], 1);

    fy_wan_t2v_params p;
    request(&p, IMAGE);
    fy_run_options o;
    fy_run_options_init(&o);
    o.threads = 2;
    taps k = {.count = 0};
    fy_wan_t2v_hooks hooks = {.user = &k, .tensor = keep_tensor, .ids = keep_ids};
    fy_wan_t2v_result r;
    assert_int_equal(fy_wan_t2v_run(MODEL_DIR, &o, &p, &hooks, &r), FY_OK);
    assert_int_equal(r.frames, FRAMES);

    const tap *cond = find(&k, "condition");
    assert_int_equal(cond->n, (size_t)(lat[1] * lat[3] * lat[4]));
    assert_memory_equal(cond->data, image_latent, cond->n * sizeof(float));
    /* The decoded latents: the image's frame, then the last step's latents. */
    const tap *final = find(&k, "latents.final");
    char name[48];
    snprintf(name, sizeof name, "latents.%d", STEPS);
    const tap *last = find(&k, name);
    assert_int_equal(final->shape[1], lat[1]);
    assert_int_equal(final->shape[3], lat[3]);
    first_frame_is(final, image_latent);
    frames_equal(final, last, 1);
    /* The scheduler moves frame 0 like the rest; only the blend hides it. */
    assert_memory_not_equal(frame_of(last, 0, 0), image_latent, (size_t)(lat[3] * lat[4]) * sizeof(float));

    int64_t per_frame = lat[3] / 2 * (lat[4] / 2), tokens = final->shape[2] * per_frame;
    for (int i = 0; i < STEPS; i++) {
        snprintf(name, sizeof name, "step%d.latent_model_input", i);
        const tap *in = find(&k, name);
        snprintf(name, sizeof name, "latents.%d", i);
        first_frame_is(in, image_latent);
        frames_equal(in, find(&k, name), 1);
        snprintf(name, sizeof name, "step%d.timestep", i);
        const tap *ts = find(&k, name);
        assert_int_equal(ts->n, (size_t)tokens);
        for (int64_t j = 0; j < tokens; j++) {
            float want = j < per_frame ? 0.0f : (float)timesteps[i];
            assert_memory_equal(&ts->data[j], &want, sizeof want);
        }
    }
    taps_free(&k);
    free(image_latent);
    fy_wan_t2v_result_free(&r);
}

/* The causal decoder makes the video's first frame a function of the first
 * latent frame alone, which is the image's: the same pixels whatever the
 * seed, the prompt or the frame count (one frame: no noise left at all). */
static void test_first_frame_ignores_seed_and_prompt(void **state)
{
    (void)state;
    fy_run_options o;
    fy_run_options_init(&o);
    o.threads = 2;
    fy_wan_t2v_params p;
    request(&p, IMAGE);
    fy_wan_t2v_result a, b, one;
    assert_int_equal(fy_wan_t2v_run(MODEL_DIR, &o, &p, NULL, &a), FY_OK);
    p.seed = 12345;
    p.prompt = "a snowy owl";
    assert_int_equal(fy_wan_t2v_run(MODEL_DIR, &o, &p, NULL, &b), FY_OK);
    p.num_frames = 1;
    assert_int_equal(fy_wan_t2v_run(MODEL_DIR, &o, &p, NULL, &one), FY_OK);
    assert_int_equal(one.frames, 1);
    size_t frame = (size_t)(a.height * a.width * 3) * sizeof(float);
    assert_memory_equal(a.video, b.video, frame);
    assert_memory_equal(a.video, one.video, frame);
    assert_memory_not_equal((char *)a.video + frame, (char *)b.video + frame, frame);
    fy_wan_t2v_result_free(&a);
    fy_wan_t2v_result_free(&b);
    fy_wan_t2v_result_free(&one);
}

/* ---- plans -------------------------------------------------------------------- */

static fy_run_options emu(fy_offload_policy policy)
{
    fy_run_options o;
    fy_run_options_init(&o);
    o.threads = 2;
    o.device = FY_DEVICE_EMU;
    o.offload = policy;
    o.max_memory[0] = 8ull << 20;
    return o;
}

static void test_every_plan_same_bytes(void **state)
{
    (void)state;
    fy_run_options cases[12];
    int n = 0;
    fy_offload_policy plans[] = {FY_OFFLOAD_NONE, FY_OFFLOAD_MODEL, FY_OFFLOAD_SEQUENTIAL, FY_OFFLOAD_GROUP,
                                 FY_OFFLOAD_LAYERWISE};
    for (size_t i = 0; i < sizeof plans / sizeof plans[0]; i++) cases[n++] = emu(plans[i]);
    cases[3].num_blocks_per_group = 2;
    cases[n] = emu(FY_OFFLOAD_LAYERWISE);
    cases[n].prefetch_depth = 2;
    cases[n++].resident_blocks = 1;
    cases[n] = emu(FY_OFFLOAD_LAYERWISE);
    cases[n].text_encoder_cpu_offload = true;
    cases[n++].vae_cpu_offload = true;
    cases[n] = emu(FY_OFFLOAD_LAYERWISE);
    cases[n++].vram_budget = 4ull << 20;
    cases[n] = emu(FY_OFFLOAD_LAYERWISE);
    cases[n++].max_memory_cpu = 600ull * 1000; /* blocks from the disk tier */
    cases[n] = emu(FY_OFFLOAD_LAYERWISE);
    cases[n++].device_map = FY_DEVICE_MAP_BALANCED;
    cases[n - 1].offload = FY_OFFLOAD_NONE;
    cases[n - 1].max_memory[1] = 8ull << 20;

    fy_wan_t2v_params p;
    request(&p, IMAGE);
    fy_run_options cpu;
    fy_run_options_init(&cpu);
    cpu.threads = 2;
    fy_wan_t2v_result ref;
    assert_int_equal(fy_wan_t2v_run(MODEL_DIR, &cpu, &p, NULL, &ref), FY_OK);
    size_t bytes = (size_t)(ref.frames * ref.height * ref.width * 3) * sizeof(float);
    for (int i = 0; i < n; i++) {
        fy_wan_t2v_result r;
        fy_status s = fy_wan_t2v_run(MODEL_DIR, &cases[i], &p, NULL, &r);
        if (s != FY_OK) fail_msg("plan %d: %s", i, fy_error_message());
        assert_int_equal(r.frames, ref.frames);
        assert_memory_equal(r.video, ref.video, bytes);
        fy_wan_t2v_result_free(&r);
    }
    /* Without guidance batching (two passes of one, other GEMM shapes): the
     * same bytes on cpu and emu, and the batched video within rounding. */
    cpu.cfg_batch = false;
    fy_run_options layerwise = emu(FY_OFFLOAD_LAYERWISE);
    layerwise.cfg_batch = false;
    fy_wan_t2v_result two_cpu, two_emu;
    assert_int_equal(fy_wan_t2v_run(MODEL_DIR, &cpu, &p, NULL, &two_cpu), FY_OK);
    assert_int_equal(fy_wan_t2v_run(MODEL_DIR, &layerwise, &p, NULL, &two_emu), FY_OK);
    assert_memory_equal(two_cpu.video, two_emu.video, bytes);
    for (size_t i = 0; i < bytes / sizeof(float); i++) assert_true(fabsf(two_cpu.video[i] - ref.video[i]) < 1e-4f);
    fy_wan_t2v_result_free(&two_cpu);
    fy_wan_t2v_result_free(&two_emu);
    /* fp8 blocks: their own video, the same on cpu and emu, near the f32 one. */
    cpu.cfg_batch = true;
    cpu.storage_dtype = FY_F8_E4M3;
    layerwise = emu(FY_OFFLOAD_LAYERWISE);
    layerwise.storage_dtype = FY_F8_E4M3;
    fy_wan_t2v_result fp8_cpu, fp8_emu;
    assert_int_equal(fy_wan_t2v_run(MODEL_DIR, &cpu, &p, NULL, &fp8_cpu), FY_OK);
    assert_int_equal(fy_wan_t2v_run(MODEL_DIR, &layerwise, &p, NULL, &fp8_emu), FY_OK);
    assert_memory_equal(fp8_cpu.video, fp8_emu.video, bytes);
    assert_memory_not_equal(fp8_cpu.video, ref.video, bytes);
    for (size_t i = 0; i < bytes / sizeof(float); i++) assert_true(fabsf(fp8_cpu.video[i] - ref.video[i]) < 0.1f);
    fy_wan_t2v_result_free(&fp8_cpu);
    fy_wan_t2v_result_free(&fp8_emu);
    fy_wan_t2v_result_free(&ref);
}

/* One load serves text and image requests in any order: each video is the
 * one a fresh run gives. */
static void test_one_pipeline_both_modes(void **state)
{
    (void)state;
    fy_run_options o = emu(FY_OFFLOAD_LAYERWISE);
    fy_wan_t2v_params text, image;
    request(&text, NULL);
    request(&image, IMAGE);
    fy_wan_t2v_result fresh_text, fresh_image;
    assert_int_equal(fy_wan_t2v_run(MODEL_DIR, &o, &text, NULL, &fresh_text), FY_OK);
    assert_int_equal(fy_wan_t2v_run(MODEL_DIR, &o, &image, NULL, &fresh_image), FY_OK);
    size_t bytes = (size_t)(fresh_text.frames * fresh_text.height * fresh_text.width * 3) * sizeof(float);
    assert_memory_not_equal(fresh_text.video, fresh_image.video, bytes);

    fy_wan_t2v_pipeline *pipe = NULL;
    assert_int_equal(fy_wan_t2v_open(MODEL_DIR, &o, &pipe), FY_OK);
    const fy_wan_t2v_params *order[] = {&image, &text, &image, &image};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        fy_wan_t2v_result r;
        assert_int_equal(fy_wan_t2v_generate(pipe, order[i], NULL, &r), FY_OK);
        assert_memory_equal(r.video, order[i]->image ? fresh_image.video : fresh_text.video, bytes);
        fy_wan_t2v_result_free(&r);
    }
    fy_wan_t2v_close(pipe);
    fy_wan_t2v_result_free(&fresh_text);
    fy_wan_t2v_result_free(&fresh_image);
}

/* A plan for the image mode reserves the encoder's activations; the video
 * mode's plan has no encoder. */
static void test_plan_knows_the_image(void **state)
{
    (void)state;
    fy_run_options o = emu(FY_OFFLOAD_LAYERWISE);
    fy_wan_t2v_params text, image;
    request(&text, NULL);
    request(&image, IMAGE);
    fy_plan pt, pi;
    assert_int_equal(fy_wan_t2v_device_plan(MODEL_DIR, &o, &text, &pt), FY_OK);
    assert_int_equal(fy_wan_t2v_device_plan(MODEL_DIR, &o, &image, &pi), FY_OK);
    assert_true(pi.device_bound > pt.device_bound); /* the VAE's encoder */
}

static void expect_refused(const char *model, const fy_wan_t2v_params *p, fy_status want, const char *words)
{
    assert_int_equal(fy_wan_t2v_check(model, p), want);
    if (!strstr(fy_error_message(), words)) fail_msg("\"%s\" lacks \"%s\"", fy_error_message(), words);
}

static void test_refusals(void **state)
{
    (void)state;
    fy_wan_t2v_params p;
    request(&p, IMAGE);
    assert_int_equal(fy_wan_t2v_check(MODEL_DIR, &p), FY_OK);
    p.last_image = IMAGE;
    expect_refused(MODEL_DIR, &p, FY_ERR_UNSUPPORTED, "first-last-frame");
    request(&p, FERRY_FIXTURES_DIR "/wan-i2v-tiny/fixtures/manifest.json");
    expect_refused(MODEL_DIR, &p, FY_ERR_FORMAT, "manifest.json");
    request(&p, IMAGE);
    expect_refused(T2V_DIR, &p, FY_ERR_INVALID, "Wan2.2 TI2V");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_frame_is_the_image),
        cmocka_unit_test(test_first_frame_ignores_seed_and_prompt),
        cmocka_unit_test(test_every_plan_same_bytes),
        cmocka_unit_test(test_one_pipeline_both_modes),
        cmocka_unit_test(test_plan_knows_the_image),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
