/* The image preprocessing verifier: both fixture images through both of the
 * pipeline's paths, every uint8 intermediate and the float outputs exact. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/clip_vision.h"
#include "ferry/config.h"
#include "ferry/engine.h"
#include "ferry/image_preprocess.h"
#include "ferry/wan_i2v.h"
#include "ferry/wan_vae.h"
#include "ferry/model.h"
#include "verify/verify_image.h"

static const char *const IMAGES[2][2] = {{"main", "image.png"}, {"other", "image_other.png"}};

static fy_status compare_u8(fy_verify_ctx *ctx, const fy_st_file *f, const char *prefix, const char *what,
                            const fy_image *img)
{
    char name[96];
    snprintf(name, sizeof name, "%s.%s", prefix, what);
    fy_tensor ref;
    FY_TRY(fy_st_view(f, name, &ref));
    size_t n = (size_t)(img->width * img->height * 3);
    int64_t *ours = malloc(n * sizeof *ours);
    if (!ours) return fy_error(FY_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) ours[i] = img->rgb[i];
    bool same_shape = ref.ndim == 3 && ref.shape[0] == img->height && ref.shape[1] == img->width && ref.shape[2] == 3;
    fy_status st = fy_verify_compare_ids(ctx, name, ours, same_shape ? n : 0, &ref);
    free(ours);
    return st;
}

static fy_status compare_f32(fy_verify_ctx *ctx, const fy_st_file *f, const char *prefix, const char *what,
                             const float *data, int64_t h, int64_t w)
{
    char name[96];
    snprintf(name, sizeof name, "%s.%s", prefix, what);
    fy_tensor ref;
    FY_TRY(fy_st_view(f, name, &ref));
    int64_t shape[4] = {1, 3, h, w};
    fy_tensor ours = fy_tensor_wrap((void *)data, FY_F32, 4, shape, FY_HOST);
    return fy_verify_compare(ctx, name, &ours, &ref, 0.0);
}

static fy_status clip_path(fy_verify_ctx *ctx, const fy_st_file *f, const char *prefix, const fy_image *img)
{
    const fy_component *proc = fy_model_component(ctx->model, "image_processor");
    if (!proc) return fy_error(FY_ERR_NOT_FOUND, "%s: no image_processor component", fy_model_dir(ctx->model));
    fy_clip_preprocess p;
    FY_TRY(fy_clip_preprocess_load(proc->dir, &p));
    int64_t h, w;
    fy_clip_preprocess_size(&p, img, &h, &w);
    float *pixels = malloc(sizeof *pixels * (size_t)(3 * h * w));
    if (!pixels) return fy_error(FY_ERR_NOMEM, "out of memory");
    fy_image resized = {0}, cropped = {0};
    fy_status st = fy_clip_preprocess_run(&p, img, pixels, &resized, &cropped);
    if (st == FY_OK) st = compare_u8(ctx, f, prefix, "clip_resized_uint8", &resized);
    if (st == FY_OK) st = compare_u8(ctx, f, prefix, "clip_cropped_uint8", &cropped);
    if (st == FY_OK) st = compare_f32(ctx, f, prefix, "pixel_values", pixels, h, w);
    fy_image_free(&resized);
    fy_image_free(&cropped);
    free(pixels);
    return st;
}

/* The video path's size is the fixture's video_image (the pipeline's height x width). */
static fy_status video_path(fy_verify_ctx *ctx, const fy_st_file *f, const char *prefix, const fy_image *img)
{
    char name[96];
    snprintf(name, sizeof name, "%s.video_image", prefix);
    fy_tensor ref;
    FY_TRY(fy_st_view(f, name, &ref));
    if (ref.ndim != 4) return fy_error(FY_ERR_FORMAT, "%s: %s is not [1, 3, H, W]", fy_st_path(f), name);
    int64_t h = ref.shape[2], w = ref.shape[3];
    float *frame = malloc(sizeof *frame * (size_t)(3 * h * w));
    if (!frame) return fy_error(FY_ERR_NOMEM, "out of memory");
    fy_image resized = {0};
    fy_status st = fy_video_image_preprocess(img, w, h, frame, &resized);
    if (st == FY_OK) st = compare_u8(ctx, f, prefix, "video_resized_uint8", &resized);
    if (st == FY_OK) st = compare_f32(ctx, f, prefix, "video_image", frame, h, w);
    fy_image_free(&resized);
    free(frame);
    return st;
}

fy_status fy_verify_image_processor(fy_verify_ctx *ctx, const fy_st_file *fixture)
{
    for (int i = 0; i < 2; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", ctx->fixture_dir, IMAGES[i][1]);
        fy_image img;
        FY_TRY(fy_image_load(path, &img));
        fy_status st = compare_u8(ctx, fixture, IMAGES[i][0], "uint8", &img);
        if (st == FY_OK) st = clip_path(ctx, fixture, IMAGES[i][0], &img);
        if (st == FY_OK) st = video_path(ctx, fixture, IMAGES[i][0], &img);
        fy_image_free(&img);
        FY_TRY(st);
    }
    return FY_OK;
}

/* ---- the image encoder ----------------------------------------------------- */

#define ENCODER_TOLERANCE 1e-5

static fy_status compare_tokens(fy_verify_ctx *ctx, const fy_st_file *f, const char *name, const float *data,
                                const fy_clip_vision_config *g)
{
    fy_tensor ref = {0}, view;
    FY_TRY(fy_st_view(f, name, &view));
    FY_TRY(fy_tensor_to_f32(&view, &ref));
    int64_t shape[3] = {1, g->tokens, g->hidden};
    fy_tensor ours = fy_tensor_wrap((void *)data, FY_F32, 3, shape, FY_HOST);
    fy_status st = fy_verify_compare(ctx, name, &ours, &ref, ENCODER_TOLERANCE);
    fy_tensor_free(&ref);
    return st;
}

/* One engine, one model of `layers` layers (0: all), each image through it. */
static fy_status encode_images(fy_verify_ctx *ctx, const fy_st_file *f, const fy_component *comp, int64_t layers)
{
    const fy_run_options *o = ctx->options;
    fy_engine *e = NULL;
    FY_TRY(o->image_encoder_cpu_offload ? fy_engine_create_host(o, &e) : fy_engine_create(o, &e));
    fy_clip_vision *m = NULL;
    float *buf = NULL;
    fy_status st = fy_clip_vision_load(comp, e, layers, &m);
    if (st == FY_OK) st = fy_clip_vision_set_threads(m, o->threads);
    if (st == FY_OK) st = fy_engine_reserve(e, fy_clip_vision_activation_bytes(m, 1));
    if (st == FY_OK) st = fy_engine_prepare(e);
    const fy_clip_vision_config *g = m ? fy_clip_vision_get_config(m) : NULL;
    int64_t run = m ? fy_clip_vision_layers_run(m) : 0, per = g ? g->tokens * g->hidden : 0;
    if (st == FY_OK && !(buf = malloc(sizeof *buf * (size_t)(per * (run + 2)))))
        st = fy_error(FY_ERR_NOMEM, "out of memory");
    float *hidden[4097];
    for (int64_t i = 0; st == FY_OK && i <= run; i++) hidden[i] = buf + (i + 1) * per;
    for (int i = 0; st == FY_OK && i < 2; i++) {
        char name[96];
        snprintf(name, sizeof name, "%s.pixel_values", IMAGES[i][0]);
        fy_tensor px = {0}, view;
        st = fy_st_view(f, name, &view);
        if (st == FY_OK) st = fy_tensor_to_f32(&view, &px);
        if (st == FY_OK) st = fy_clip_vision_forward(m, px.data, 1, buf, layers ? NULL : hidden);
        fy_tensor_free(&px);
        for (int64_t k = 0; st == FY_OK && !layers && k <= run; k++) {
            snprintf(name, sizeof name, "%s.hidden_states.%lld", IMAGES[i][0], (long long)k);
            st = compare_tokens(ctx, f, name, hidden[k], g);
        }
        snprintf(name, sizeof name, "%s.%s", IMAGES[i][0], layers ? "image_embeds" : "last_hidden_state");
        if (st == FY_OK) st = compare_tokens(ctx, f, name, buf, g);
    }
    fy_status fin = fy_engine_finish(e);
    if (st == FY_OK) st = fin;
    free(buf);
    fy_clip_vision_free(m);
    fy_engine_free(e);
    return st;
}

fy_status fy_verify_image_encoder(fy_verify_ctx *ctx, const fy_st_file *fixture)
{
    const fy_component *comp = fy_model_component(ctx->model, "image_encoder");
    if (!comp) return fy_error(FY_ERR_NOT_FOUND, "%s: no image_encoder component", fy_model_dir(ctx->model));
    if (!comp->config) return fy_error(FY_ERR_NOT_FOUND, "%s: the image encoder has no config.json", comp->dir);
    int64_t layers = 0;
    FY_TRY(fy_config_int(comp->config, "num_hidden_layers", &layers));
    if (layers < 2 || layers > 4096)
        return fy_error(FY_ERR_FORMAT, "%s: num_hidden_layers %lld: the pipeline reads the second-to-last layer's "
                        "output, so it needs 2 to 4096", fy_config_path(comp->config), (long long)layers);
    FY_TRY(encode_images(ctx, fixture, comp, 0));
    return encode_images(ctx, fixture, comp, layers - 1);
}

/* ---- the condition --------------------------------------------------------- */

#define CONDITION_TOLERANCE 1e-5

typedef struct condition_taps {
    fy_verify_ctx *ctx;
    const fy_st_file *f;
    const char *prefix;
    fy_status status;
} condition_taps;

/* The image's frame and the mask are exact; what the encoder made, 1e-5. */
static void on_condition(void *user, const char *name, const float *data, int ndim, const int64_t *shape)
{
    condition_taps *t = user;
    if (t->status != FY_OK) return;
    bool shared = strcmp(name, "mask") == 0;
    if (shared && strcmp(t->prefix, "main") != 0) return; /* one mask for both images */
    char ref_name[96];
    snprintf(ref_name, sizeof ref_name, shared ? "%s%s" : "%s.%s", shared ? "" : t->prefix, name);
    fy_tensor view, ref = {0};
    t->status = fy_st_view(t->f, ref_name, &view);
    if (t->status == FY_OK) t->status = fy_tensor_to_f32(&view, &ref);
    fy_tensor ours = fy_tensor_wrap((void *)data, FY_F32, ndim, shape, FY_HOST);
    bool exact = shared || strcmp(name, "video_condition") == 0;
    if (t->status == FY_OK)
        t->status = fy_verify_compare(t->ctx, ref_name, &ours, &ref, exact ? 0.0 : CONDITION_TOLERANCE);
    fy_tensor_free(&ref);
}

static fy_status condition_of(fy_verify_ctx *ctx, const fy_st_file *f, fy_wan_vae *vae, int i)
{
    char name[96], path[4096];
    snprintf(name, sizeof name, "%s.video_condition", IMAGES[i][0]);
    fy_tensor ref;
    FY_TRY(fy_st_view(f, name, &ref));
    if (ref.ndim != 5) return fy_error(FY_ERR_FORMAT, "%s: %s is not [1, 3, F, H, W]", fy_st_path(f), name);
    int64_t frames = ref.shape[2], h = ref.shape[3], w = ref.shape[4], shape[5];
    FY_TRY(fy_wan_i2v_condition_shape(vae, frames, h, w, shape));
    snprintf(path, sizeof path, "%s/%s", ctx->fixture_dir, IMAGES[i][1]);
    fy_image img;
    FY_TRY(fy_image_load(path, &img));
    float *frame = malloc(sizeof *frame * (size_t)(3 * h * w));
    float *cond = malloc(sizeof *cond * (size_t)(shape[1] * shape[2] * shape[3] * shape[4]));
    fy_status st = frame && cond ? FY_OK : fy_error(FY_ERR_NOMEM, "out of memory");
    if (st == FY_OK) st = fy_video_image_preprocess(&img, w, h, frame, NULL);
    condition_taps taps = {ctx, f, IMAGES[i][0], FY_OK};
    if (st == FY_OK) st = fy_wan_i2v_condition(vae, ctx->options, frame, frames, h, w, on_condition, &taps, cond);
    if (st == FY_OK) st = taps.status;
    free(frame);
    free(cond);
    fy_image_free(&img);
    return st;
}

fy_status fy_verify_condition(fy_verify_ctx *ctx, const fy_st_file *fixture)
{
    const fy_component *comp = fy_model_component(ctx->model, "vae");
    if (!comp) return fy_error(FY_ERR_NOT_FOUND, "%s: no vae component", fy_model_dir(ctx->model));
    const fy_run_options *o = ctx->options;
    fy_engine *e = NULL;
    FY_TRY(o->vae_cpu_offload ? fy_engine_create_host(o, &e) : fy_engine_create(o, &e));
    fy_wan_vae *vae = NULL;
    fy_tensor ref;
    fy_status st = fy_st_view(fixture, "main.video_condition", &ref);
    if (st == FY_OK && ref.ndim != 5) st = fy_error(FY_ERR_FORMAT, "%s: main.video_condition is not 5-D", fy_st_path(fixture));
    if (st == FY_OK) st = fy_wan_vae_load(comp, e, FY_WAN_VAE_ENCODER, &vae);
    if (st == FY_OK) st = fy_wan_vae_set_threads(vae, o->threads);
    if (st == FY_OK)
        st = fy_engine_reserve(e, fy_wan_i2v_condition_activation_bytes(vae, ref.shape[2], ref.shape[3], ref.shape[4], o));
    if (st == FY_OK) st = fy_engine_prepare(e);
    for (int i = 0; st == FY_OK && i < 2; i++) st = condition_of(ctx, fixture, vae, i);
    fy_status fin = fy_engine_finish(e);
    if (st == FY_OK) st = fin;
    fy_wan_vae_free(vae);
    fy_engine_free(e);
    return st;
}
