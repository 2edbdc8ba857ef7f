/* The I2V condition: the condition video through the VAE encoder, the
 * normalised mean, the first-frame mask (see ferry/wan_i2v.h). */
#include "ferry/wan_i2v.h"

#include <stdlib.h>
#include <string.h>

static fy_wan_vae_encode_shape encode_shape(int64_t frames, int64_t height, int64_t width)
{
    return (fy_wan_vae_encode_shape){1, frames, height, width};
}

fy_status fy_wan_i2v_condition_shape(const fy_wan_vae *vae, int64_t frames, int64_t height, int64_t width,
                                     int64_t out[5])
{
    fy_wan_vae_encode_shape s = encode_shape(frames, height, width);
    FY_TRY(fy_wan_vae_encode_output_shape(vae, &s, out));
    out[1] += FY_WAN_I2V_MASK_CHANNELS;
    return FY_OK;
}

uint64_t fy_wan_i2v_condition_activation_bytes(const fy_wan_vae *vae, int64_t frames, int64_t height,
                                               int64_t width, const fy_run_options *o)
{
    fy_wan_vae_encode_shape s = encode_shape(frames, height, width);
    return fy_wan_vae_encode_activation_bytes(vae, &s, o);
}

static void emit(fy_wan_i2v_tap tap, void *user, const char *name, const float *data, const int64_t *shape)
{
    if (tap) tap(user, name, data, 5, shape);
}

/* mask [1, 4, T, h, w]: diffusers repeats pixel frame 0's mask 4 times and
 * folds the 4T entries as mask[c, t] = entry[4t + c]; only frame 0 is 1,
 * so latent frame 0 is 1 in every channel and the rest 0. */
static void fill_mask(float *mask, const int64_t *shape)
{
    int64_t T = shape[2], plane = shape[3] * shape[4];
    for (int64_t c = 0; c < FY_WAN_I2V_MASK_CHANNELS; c++)
        for (int64_t t = 0; t < T; t++) {
            float *p = mask + (c * T + t) * plane;
            for (int64_t i = 0; i < plane; i++) p[i] = t == 0 ? 1.0f : 0.0f;
        }
}

static fy_status encode(fy_wan_vae *vae, const fy_run_options *o, const float *video, int64_t frames,
                        int64_t height, int64_t width, const int64_t *lat, fy_wan_i2v_tap tap, void *user,
                        float *mean)
{
    fy_wan_vae_encode_shape s = encode_shape(frames, height, width);
    size_t n = (size_t)(lat[1] * lat[2] * lat[3] * lat[4]);
    float *moments = malloc(sizeof *moments * 2 * n);
    if (!moments) return fy_error(FY_ERR_NOMEM, "out of host memory for the condition latents");
    fy_status st = fy_wan_vae_encode(vae, &s, video, o, moments, mean, NULL);
    free(moments);
    FY_TRY(st);
    emit(tap, user, "vae_mean", mean, lat);
    FY_TRY(fy_wan_vae_normalize(vae, mean, lat));
    emit(tap, user, "latent_condition", mean, lat);
    return FY_OK;
}

fy_status fy_wan_i2v_condition(fy_wan_vae *vae, const fy_run_options *o, const float *frame, int64_t frames,
                               int64_t height, int64_t width, fy_wan_i2v_tap tap, void *tap_user, float *condition)
{
    if (!vae || !o || !frame || !condition) return fy_error(FY_ERR_INVALID, "fy_wan_i2v_condition: NULL argument");
    int64_t shape[5];
    FY_TRY(fy_wan_i2v_condition_shape(vae, frames, height, width, shape));
    int64_t lat[5] = {1, shape[1] - FY_WAN_I2V_MASK_CHANNELS, shape[2], shape[3], shape[4]};
    int64_t mask_shape[5] = {1, FY_WAN_I2V_MASK_CHANNELS, shape[2], shape[3], shape[4]};
    int64_t video_shape[5] = {1, 3, frames, height, width};
    size_t plane = (size_t)(height * width);
    float *video = calloc(3 * (size_t)frames * plane, sizeof *video);
    if (!video) return fy_error(FY_ERR_NOMEM, "out of host memory for the condition video");
    for (int c = 0; c < 3; c++) memcpy(video + (size_t)c * (size_t)frames * plane, frame + c * plane, plane * sizeof *video);
    emit(tap, tap_user, "video_condition", video, video_shape);
    float *mask = condition, *latent = condition + FY_WAN_I2V_MASK_CHANNELS * shape[2] * shape[3] * shape[4];
    fy_status st = encode(vae, o, video, frames, height, width, lat, tap, tap_user, latent);
    free(video);
    FY_TRY(st);
    fill_mask(mask, mask_shape);
    emit(tap, tap_user, "mask", mask, mask_shape);
    emit(tap, tap_user, "condition", condition, shape);
    return FY_OK;
}

fy_status fy_wan_i2v_first_frame_shape(const fy_wan_vae *vae, int64_t height, int64_t width, int64_t out[5])
{
    fy_wan_vae_encode_shape s = encode_shape(1, height, width);
    return fy_wan_vae_encode_output_shape(vae, &s, out);
}

fy_status fy_wan_i2v_first_frame(fy_wan_vae *vae, const fy_run_options *o, const float *frame, int64_t height,
                                 int64_t width, fy_wan_i2v_tap tap, void *tap_user, float *latent)
{
    if (!vae || !o || !frame || !latent) return fy_error(FY_ERR_INVALID, "fy_wan_i2v_first_frame: NULL argument");
    int64_t lat[5];
    FY_TRY(fy_wan_i2v_first_frame_shape(vae, height, width, lat));
    return encode(vae, o, frame, 1, height, width, lat, tap, tap_user, latent);
}
