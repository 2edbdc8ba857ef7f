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

fy_status fy_i2v_check(const fy_model *m, const fy_wan_t2v_params *p, bool need_image, bool *is_i2v)
{
    const char *cls = fy_model_class(m);
    *is_i2v = cls && strcmp(cls, I2V_CLASS) == 0;
    if (p->last_image)
        return fy_error(FY_ERR_UNSUPPORTED, "--last-image %s: first-last-frame to video (Wan2.1 FLF2V) is not "
                        "implemented; give --image alone", p->last_image);
    if (!*is_i2v && p->image)
        return fy_error(FY_ERR_INVALID, "--image %s: %s is a text-to-video model (%s); --image needs an "
                        "image-to-video folder (%s, e.g. Wan-AI/Wan2.1-I2V-14B-480P-Diffusers)", p->image,
                        fy_model_dir(m), cls ? cls : "no class", I2V_CLASS);
    if (*is_i2v && !p->image && need_image)
        return fy_error(FY_ERR_INVALID, "%s is an image-to-video model (%s): give the first frame with --image FILE "
                        "(PNG or JPEG)", fy_model_dir(m), I2V_CLASS);
    if (!*is_i2v) return FY_OK;
    if (p->image) { /* a bad file is found before anything loads */
        fy_image img;
        FY_TRY(fy_image_load(p->image, &img));
        fy_image_free(&img);
    }
    static const char *const needed[] = {"image_encoder", "image_processor"};
    for (size_t i = 0; i < 2; i++)
        if (!fy_model_component(m, needed[i]))
            return fy_error(FY_ERR_NOT_FOUND, "%s: the image-to-video folder has no '%s' component", fy_model_dir(m),
                            needed[i]);
    return FY_OK;
}

fy_status fy_i2v_load(fy_i2v_state *s, const fy_model *m, fy_engine *e, int threads)
{
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

static fy_status condition(fy_i2v_state *s, const fy_image *img, fy_wan_vae *vae, const fy_run_options *o,
                           const int64_t *lat, int64_t frames, fy_i2v_tensor_fn fn, void *user)
{
    int64_t h = lat[3] * fy_wan_vae_get_config(vae)->spatial_ratio, w = lat[4] * fy_wan_vae_get_config(vae)->spatial_ratio;
    FY_TRY(fy_wan_i2v_condition_shape(vae, frames, h, w, s->cond_shape));
    if (s->cond_shape[2] != lat[2] || s->cond_shape[3] != lat[3] || s->cond_shape[4] != lat[4])
        return fy_error(FY_ERR_INTERNAL, "i2v: the condition's latent size differs from the latents'");
    s->cond_numel = s->cond_shape[1] * s->cond_shape[2] * s->cond_shape[3] * s->cond_shape[4];
    float *frame = malloc(sizeof *frame * (size_t)(3 * h * w));
    s->condition = malloc(sizeof *s->condition * (size_t)s->cond_numel);
    fy_status st = frame && s->condition ? FY_OK : fy_error(FY_ERR_NOMEM, "out of host memory for the condition");
    if (st == FY_OK) st = fy_video_image_preprocess(img, w, h, frame, NULL);
    int64_t fshape[4] = {1, 3, h, w};
    if (st == FY_OK) emit(fn, user, "video_image", frame, 4, fshape);
    if (st == FY_OK) st = fy_wan_i2v_condition(vae, o, frame, frames, h, w, NULL, NULL, s->condition);
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
    fy_status st = image_tokens(s, &img, batch, fn, user);
    if (st == FY_OK) st = condition(s, &img, vae, o, latent_shape, p->num_frames, fn, user);
    fy_image_free(&img);
    return st;
}

void fy_i2v_input(const fy_i2v_state *s, const float *latents, int64_t latent_numel, int64_t batch, float *input)
{
    for (int64_t b = 0; b < batch; b++) {
        float *item = input + b * (latent_numel + s->cond_numel);
        memcpy(item, latents, sizeof *item * (size_t)latent_numel);
        memcpy(item + latent_numel, s->condition, sizeof *item * (size_t)s->cond_numel);
    }
}

void fy_i2v_free(fy_i2v_state *s)
{
    fy_clip_vision_free(s->encoder);
    free(s->image_embeds);
    free(s->condition);
    memset(s, 0, sizeof *s);
}
