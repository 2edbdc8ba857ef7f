/* CLIPImageProcessor's and VideoProcessor's preprocessing of the input
 * image, in the reference's arithmetic (see ferry/image_preprocess.h). */
#include "ferry/image_preprocess.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ferry/config.h"

static fy_status read_triple(const fy_config *cfg, const char *key, float *out)
{
    double v[3];
    size_t n = 0;
    FY_TRY(fy_config_double_array(cfg, key, v, 3, &n));
    if (n != 3) return fy_error(FY_ERR_FORMAT, "%s: \"%s\" has %zu values; expected 3 (R, G, B)", fy_config_path(cfg), key, n);
    for (int i = 0; i < 3; i++) out[i] = (float)v[i];
    return FY_OK;
}

/* A member of a nested object ("size": {"shortest_edge": 224}); the
 * config API reads top-level keys, so these two go through cJSON. */
static fy_status nested_int(const char *path, const cJSON *root, const char *obj, const char *key, int64_t *out)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, obj);
    const cJSON *v = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int64_t)v->valuedouble)
        return fy_error(FY_ERR_FORMAT, "%s: \"%s\": {\"%s\": N} is missing or not an integer (ferry reads "
                        "CLIPImageProcessor configs)", path, obj, key);
    *out = (int64_t)v->valuedouble;
    return FY_OK;
}

static fy_status read_size(const fy_config *cfg, fy_clip_preprocess *p)
{
    const char *path = fy_config_path(cfg);
    FILE *f = fopen(path, "rb");
    if (!f) return fy_error(FY_ERR_IO, "%s: cannot open", path);
    char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    cJSON *root = cJSON_Parse(text);
    if (!root) return fy_error(FY_ERR_FORMAT, "%s: not JSON", path);
    fy_status st = nested_int(path, root, "size", "shortest_edge", &p->shortest_edge);
    if (st == FY_OK) st = nested_int(path, root, "crop_size", "height", &p->crop_h);
    if (st == FY_OK) st = nested_int(path, root, "crop_size", "width", &p->crop_w);
    cJSON_Delete(root);
    FY_TRY(st);
    if (p->shortest_edge < 1 || p->shortest_edge > 16384 || p->crop_h < 1 || p->crop_w < 1 || p->crop_h > 16384 ||
        p->crop_w > 16384)
        return fy_error(FY_ERR_FORMAT, "%s: size.shortest_edge and crop_size must be 1 to 16384 pixels", path);
    return FY_OK;
}

static fy_status read_processor(const fy_config *cfg, fy_clip_preprocess *p)
{
    FY_TRY(fy_config_bool_or(cfg, "do_resize", true, &p->do_resize));
    FY_TRY(fy_config_bool_or(cfg, "do_center_crop", true, &p->do_center_crop));
    FY_TRY(fy_config_bool_or(cfg, "do_rescale", true, &p->do_rescale));
    FY_TRY(fy_config_bool_or(cfg, "do_normalize", true, &p->do_normalize));
    FY_TRY(read_size(cfg, p));
    int64_t resample = 3;
    FY_TRY(fy_config_int_or(cfg, "resample", 3, &resample));
    if (resample < 1 || resample > 5)
        return fy_error(FY_ERR_UNSUPPORTED, "%s: \"resample\" %lld is not supported (1 to 5: Pillow's filters "
                        "other than NEAREST)", fy_config_path(cfg), (long long)resample);
    p->resample = (fy_resample)resample;
    FY_TRY(fy_config_double_or(cfg, "rescale_factor", 1.0 / 255.0, &p->rescale_factor));
    FY_TRY(read_triple(cfg, "image_mean", p->mean));
    FY_TRY(read_triple(cfg, "image_std", p->std));
    for (int i = 0; i < 3; i++)
        if (!(p->std[i] > 0))
            return fy_error(FY_ERR_FORMAT, "%s: image_std must be positive", fy_config_path(cfg));
    return FY_OK;
}

fy_status fy_clip_preprocess_load(const char *dir, fy_clip_preprocess *out)
{
    memset(out, 0, sizeof *out);
    char path[4096];
    snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
    fy_config *cfg = NULL;
    FY_TRY(fy_config_load(path, &cfg));
    fy_status st = read_processor(cfg, out);
    fy_config_free(cfg);
    return st;
}

/* transformers' get_resize_output_image_size(default_to_square=False). */
static void resized_size(const fy_clip_preprocess *p, const fy_image *img, int64_t *h, int64_t *w)
{
    if (!p->do_resize) {
        *h = img->height, *w = img->width;
        return;
    }
    bool tall = img->height >= img->width;
    int64_t s = tall ? img->width : img->height, l = tall ? img->height : img->width;
    int64_t new_l = (int64_t)((double)p->shortest_edge * (double)l / (double)s);
    *h = tall ? new_l : p->shortest_edge;
    *w = tall ? p->shortest_edge : new_l;
}

void fy_clip_preprocess_size(const fy_clip_preprocess *p, const fy_image *img, int64_t *h, int64_t *w)
{
    if (p->do_center_crop) {
        *h = p->crop_h, *w = p->crop_w;
        return;
    }
    resized_size(p, img, h, w);
}

static void to_pixels(const fy_clip_preprocess *p, const fy_image *img, float *out)
{
    int64_t plane = img->width * img->height;
    for (int64_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) {
            float x = img->rgb[i * 3 + c];
            if (p->do_rescale) x = (float)((double)img->rgb[i * 3 + c] * p->rescale_factor);
            if (p->do_normalize) x = (x - p->mean[c]) / p->std[c];
            out[c * plane + i] = x;
        }
}

fy_status fy_clip_preprocess_run(const fy_clip_preprocess *p, const fy_image *img, float *pixel_values,
                                 fy_image *resized, fy_image *cropped)
{
    if (!p || !img || !pixel_values) return fy_error(FY_ERR_INVALID, "fy_clip_preprocess_run: NULL argument");
    int64_t h, w;
    resized_size(p, img, &h, &w);
    fy_image r = {0}, c = {0};
    fy_status st = fy_image_resize(img, w, h, p->resample, &r);
    if (st == FY_OK && p->do_center_crop) {
        if (p->crop_h > h || p->crop_w > w)
            st = fy_error(FY_ERR_UNSUPPORTED, "CLIP preprocessing: crop %lldx%lld is larger than the resized "
                          "%lldx%lld image", (long long)p->crop_w, (long long)p->crop_h, (long long)w, (long long)h);
        else
            st = fy_image_crop(&r, (w - p->crop_w) / 2, (h - p->crop_h) / 2, p->crop_w, p->crop_h, &c);
    } else if (st == FY_OK) {
        st = fy_image_resize(&r, r.width, r.height, p->resample, &c); /* a copy */
    }
    if (st == FY_OK) to_pixels(p, &c, pixel_values);
    if (st == FY_OK && resized) *resized = r;
    else fy_image_free(&r);
    if (st == FY_OK && cropped) *cropped = c;
    else fy_image_free(&c);
    return st;
}

fy_status fy_video_image_preprocess(const fy_image *img, int64_t width, int64_t height, float *frame,
                                    fy_image *resized)
{
    if (!img || !frame) return fy_error(FY_ERR_INVALID, "fy_video_image_preprocess: NULL argument");
    fy_image r = {0};
    FY_TRY(fy_image_resize(img, width, height, FY_RESAMPLE_LANCZOS, &r));
    int64_t plane = width * height;
    for (int64_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) {
            float x = (float)r.rgb[i * 3 + c] / 255.0f;
            frame[c * plane + i] = 2.0f * x - 1.0f;
        }
    if (resized) *resized = r;
    else fy_image_free(&r);
    return FY_OK;
}
