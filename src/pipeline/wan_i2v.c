/* The image-to-video stages of the Wan pipeline: the image read and
 * prepared both ways, its CLIP tokens, the condition, and the transformer's
 * input (see wan_i2v_internal.h). */
#include "pipeline/wan_i2v_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/config.h"
#include "ferry/image.h"
#include "ferry/wan_i2v.h"

#define I2V_CLASS "WanImageToVideoPipeline"

/* The transformer's image_dim: whether it reads CLIP image tokens (diffusers
 * encodes the image with CLIP only then). */
static bool reads_clip_tokens(const fy_model *m)
{
    const fy_component *dit = fy_model_component(m, "transformer");
    int64_t image_dim = 0;
    if (!dit || !dit->config || fy_config_int_or(dit->config, "image_dim", 0, &image_dim) != FY_OK) image_dim = 0;
    fy_error_clear();
    return image_dim != 0;
}

static fy_status pick_mode(const fy_model *m, const fy_wan_t2v_params *p, bool expand_timesteps, bool need_image,
                           fy_i2v_mode *mode)
{
    const char *cls = fy_model_class(m);
    bool i2v_class = cls && strcmp(cls, I2V_CLASS) == 0;
    *mode = FY_I2V_OFF;
    if (i2v_class || (expand_timesteps && p->image)) *mode = expand_timesteps ? FY_I2V_FIRST_FRAME : FY_I2V_CONCAT;
    if (p->last_image)
        return fy_error(FY_ERR_UNSUPPORTED, "--last-image %s: first-last-frame to video (Wan2.1 FLF2V) is not "
                        "implemented; give --image alone", p->last_image);
    if (*mode == FY_I2V_OFF && p->image)
        return fy_error(FY_ERR_INVALID, "--image %s: %s is a text-to-video model (%s); --image needs an "
                        "image-to-video folder (%s, e.g. Wan-AI/Wan2.1-I2V-14B-480P-Diffusers) or a Wan2.2 TI2V one "
                        "(expand_timesteps, Wan-AI/Wan2.2-TI2V-5B-Diffusers)", p->image, fy_model_dir(m),
                        cls ? cls : "no class", I2V_CLASS);
    if (i2v_class && !p->image && need_image)
        return fy_error(FY_ERR_INVALID, "%s is an image-to-video model (%s): give the first frame with --image FILE "
                        "(PNG or JPEG)", fy_model_dir(m), I2V_CLASS);
    return FY_OK;
}

fy_status fy_i2v_check(const fy_model *m, const fy_wan_t2v_params *p, bool expand_timesteps, bool need_image,
                       fy_i2v_mode *mode, bool *clip)
{
    FY_TRY(pick_mode(m, p, expand_timesteps, need_image, mode));
    *clip = *mode != FY_I2V_OFF && reads_clip_tokens(m);
    if (*mode == FY_I2V_OFF) return FY_OK;
    if (p->image) { /* a bad file is found before anything loads */
        fy_image img;
        FY_TRY(fy_image_load(p->image, &img));
        fy_image_free(&img);
    }
    if (*clip && *mode == FY_I2V_FIRST_FRAME)
        return fy_error(FY_ERR_UNSUPPORTED, "%s: a transformer with image_dim (CLIP image tokens) under "
                        "expand_timesteps: ferry runs Wan2.2 TI2V (no image encoder) and Wan2.1 I2V (no "
                        "expand_timesteps), not both at once", fy_model_dir(m));
    static const char *const needed[] = {"image_encoder", "image_processor"};
    for (size_t i = 0; i < 2 && *clip; i++)
        if (!fy_model_component(m, needed[i]))
            return fy_error(FY_ERR_NOT_FOUND, "%s: the transformer reads image tokens (image_dim) but the "
                            "image-to-video folder has no '%s' component", fy_model_dir(m), needed[i]);
    fy_error_clear();
    return FY_OK;
}

fy_status fy_i2v_load(fy_i2v_state *s, const fy_model *m, fy_engine *e, int threads)
{
    if (!s->clip) return FY_OK;
    const fy_component *enc = fy_model_component(m, "image_encoder");
    const fy_component *proc = fy_model_component(m, "image_processor");
    FY_TRY(fy_clip_preprocess_load(proc->dir, &s->proc));
    int64_t layers = 0;
    if (!enc->config) return fy_error(FY_ERR_NOT_FOUND, "%s: the image encoder has no config.json", enc->dir);
    FY_TRY(fy_config_int(enc->config, "num_hidden_layers", &layers));
    if (layers < 2)
        return fy_error(FY_ERR_FORMAT, "%s: num_hidden_layers %lld: the pipeline reads the second-to-last layer's "
                        "output, so it needs at least 2", fy_config_path(enc->config), (long long)layers);
    /* hidden_states[-2]: every layer but the last. */
    FY_TRY(fy_clip_vision_load(enc, e, layers - 1, &s->encoder));
    FY_TRY(fy_clip_vision_set_threads(s->encoder, threads));
    const fy_clip_vision_config *c = fy_clip_vision_get_config(s->encoder);
    s->image_len = c->tokens;
    s->image_dim = c->hidden;
    return FY_OK;
}

uint64_t fy_i2v_encoder_bytes(const fy_i2v_state *s)
{
    return s->encoder ? fy_clip_vision_activation_bytes(s->encoder, 1) : 0;
}

static void emit(fy_i2v_tensor_fn fn, void *user, const char *name, const float *data, int ndim, const int64_t *shape)
{
    if (fn) fn(user, name, data, ndim, shape);
}

/* CLIP path -> the encoder -> [batch, I, D] (the same tokens per item). */
static fy_status image_tokens(fy_i2v_state *s, const fy_image *img, int64_t batch, fy_i2v_tensor_fn fn, void *user)
{
    const fy_clip_vision_config *c = fy_clip_vision_get_config(s->encoder);
    int64_t h, w;
    fy_clip_preprocess_size(&s->proc, img, &h, &w);
    if (h != c->image_size || w != c->image_size)
        return fy_error(FY_ERR_FORMAT, "the image processor makes %lldx%lld pixels; the image encoder takes %lldx%lld "
                        "(preprocessor_config.json's crop_size vs image_encoder/config.json's image_size)",
                        (long long)w, (long long)h, (long long)c->image_size, (long long)c->image_size);
    float *pixels = malloc(sizeof *pixels * (size_t)(3 * h * w));
    int64_t per = s->image_len * s->image_dim;
    free(s->image_embeds);
    s->image_embeds = malloc(sizeof *s->image_embeds * (size_t)(batch * per));
    fy_status st = pixels && s->image_embeds ? FY_OK : fy_error(FY_ERR_NOMEM, "out of host memory for the image");
    if (st == FY_OK) st = fy_clip_preprocess_run(&s->proc, img, pixels, NULL, NULL);
    if (st == FY_OK) st = fy_clip_vision_forward(s->encoder, pixels, 1, s->image_embeds, NULL);
    free(pixels);
    FY_TRY(st);
    for (int64_t b = 1; b < batch; b++)
        memcpy(s->image_embeds + b * per, s->image_embeds, sizeof *s->image_embeds * (size_t)per);
    int64_t shape[3] = {1, s->image_len, s->image_dim};
    emit(fn, user, "image_embeds", s->image_embeds, 3, shape);
    return FY_OK;
}

uint64_t fy_i2v_condition_bytes(const fy_i2v_state *s, const fy_wan_vae *vae, const fy_wan_t2v_params *p,
                                const fy_run_options *o)
{
    int64_t frames = s->mode == FY_I2V_FIRST_FRAME ? 1 : p->num_frames;
    return s->mode == FY_I2V_OFF ? 0 : fy_wan_i2v_condition_activation_bytes(vae, frames, p->height, p->width, o);
}

static fy_status condition_shape(const fy_i2v_state *s, const fy_wan_vae *vae, int64_t frames, int64_t h, int64_t w,
                                 int64_t out[5])
{
    if (s->mode == FY_I2V_FIRST_FRAME) return fy_wan_i2v_first_frame_shape(vae, h, w, out);
    return fy_wan_i2v_condition_shape(vae, frames, h, w, out);
}

static fy_status condition(fy_i2v_state *s, const fy_image *img, fy_wan_vae *vae, const fy_run_options *o,
                           const int64_t *lat, int64_t frames, fy_i2v_tensor_fn fn, void *user)
{
    const fy_wan_vae_config *vc = fy_wan_vae_get_config(vae);
    int64_t pixels = vc->spatial_ratio * vc->patch_size; /* per latent, across */
    int64_t h = lat[3] * pixels, w = lat[4] * pixels;
    FY_TRY(condition_shape(s, vae, frames, h, w, s->cond_shape));
    bool first = s->mode == FY_I2V_FIRST_FRAME;
    if ((!first && s->cond_shape[2] != lat[2]) || (first && s->cond_shape[1] != lat[1]) ||
        s->cond_shape[3] != lat[3] || s->cond_shape[4] != lat[4])
        return fy_error(FY_ERR_INTERNAL, "i2v: the condition's latent size differs from the latents'");
    s->cond_numel = s->cond_shape[1] * s->cond_shape[2] * s->cond_shape[3] * s->cond_shape[4];
    free(s->condition);
    float *frame = malloc(sizeof *frame * (size_t)(3 * h * w));
    s->condition = malloc(sizeof *s->condition * (size_t)s->cond_numel);
    fy_status st = frame && s->condition ? FY_OK : fy_error(FY_ERR_NOMEM, "out of host memory for the condition");
    if (st == FY_OK) st = fy_video_image_preprocess(img, w, h, frame, NULL);
    int64_t fshape[4] = {1, 3, h, w};
    if (st == FY_OK) emit(fn, user, "video_image", frame, 4, fshape);
    if (st == FY_OK && first) st = fy_wan_i2v_first_frame(vae, o, frame, h, w, NULL, NULL, s->condition);
    else if (st == FY_OK) st = fy_wan_i2v_condition(vae, o, frame, frames, h, w, NULL, NULL, s->condition);
    free(frame);
    FY_TRY(st);
    emit(fn, user, "condition", s->condition, 5, s->cond_shape);
    return FY_OK;
}

fy_status fy_i2v_encode(fy_i2v_state *s, const fy_wan_t2v_params *p, int64_t batch, fy_wan_vae *vae,
                        const fy_run_options *o, const int64_t latent_shape[5], fy_i2v_tensor_fn fn, void *user)
{
    fy_image img;
    FY_TRY(fy_image_load(p->image, &img));
    fy_status st = s->clip ? image_tokens(s, &img, batch, fn, user) : FY_OK;
    if (st == FY_OK) st = condition(s, &img, vae, o, latent_shape, p->num_frames, fn, user);
    fy_image_free(&img);
    return st;
}

void fy_i2v_blend(const fy_i2v_state *s, const float *latents, const int64_t latent_shape[5], float *out)
{
    int64_t channels = latent_shape[1], frames = latent_shape[2], plane = latent_shape[3] * latent_shape[4];
    for (int64_t c = 0; c < channels; c++)
        for (int64_t t = 0; t < frames; t++) {
            const float *cond = s->condition + c * plane; /* one frame, broadcast over t */
            const float *lat = latents + (c * frames + t) * plane;
            float *o = out + (c * frames + t) * plane;
            float mask = t == 0 ? 0.0f : 1.0f;
            for (int64_t i = 0; i < plane; i++) o[i] = (1.0f - mask) * cond[i] + mask * lat[i];
        }
}

void fy_i2v_input(const fy_i2v_state *s, const float *latents, const int64_t latent_shape[5], int64_t batch,
                  float *input)
{
    int64_t n = latent_shape[1] * latent_shape[2] * latent_shape[3] * latent_shape[4];
    if (s->mode == FY_I2V_FIRST_FRAME) {
        for (int64_t b = 0; b < batch; b++) fy_i2v_blend(s, latents, latent_shape, input + b * n);
        return;
    }
    for (int64_t b = 0; b < batch; b++) {
        float *item = input + b * (n + s->cond_numel);
        memcpy(item, latents, sizeof *item * (size_t)n);
        memcpy(item + n, s->condition, sizeof *item * (size_t)s->cond_numel);
    }
}

void fy_i2v_token_timesteps(const int64_t latent_shape[5], const int64_t patch[3], float t, int64_t batch,
                            float *out)
{
    int64_t per_frame = latent_shape[3] / patch[1] * (latent_shape[4] / patch[2]);
    int64_t tokens = latent_shape[2] / patch[0] * per_frame;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t i = 0; i < tokens; i++) out[b * tokens + i] = (i < per_frame ? 0.0f : 1.0f) * t;
}

void fy_i2v_free(fy_i2v_state *s)
{
    fy_clip_vision_free(s->encoder);
    free(s->image_embeds);
    free(s->condition);
    memset(s, 0, sizeof *s);
}
