/* Pillow's 8-bit resampler (libImaging/Resample.c), which diffusers' and
 * transformers' image processors call: per output pixel a window of input
 * pixels weighted by the filter (stretched by the scale factor when
 * shrinking), normalised to sum 1, turned into 22-bit fixed point; the
 * horizontal pass first, then the vertical, each rounded and clamped to
 * uint8. Every step is reproduced, so the pixels match to the bit. */
#include "ferry/image.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS (32 - 8 - 2)

typedef struct filter {
    double (*fn)(double x);
    double support;
} filter;

static double box_filter(double x)
{
    return x > -0.5 && x <= 0.5 ? 1.0 : 0.0;
}

static double bilinear_filter(double x)
{
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static double hamming_filter(double x)
{
    if (x < 0.0) x = -x;
    if (x == 0.0) return 1.0;
    if (x >= 1.0) return 0.0;
    x = x * M_PI;
    return sin(x) / x * (0.54 + 0.46 * cos(x));
}

static double bicubic_filter(double x)
{
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static double sinc_filter(double x)
{
    if (x == 0.0) return 1.0;
    x = x * M_PI;
    return sin(x) / x;
}

static double lanczos_filter(double x)
{
    return -3.0 <= x && x < 3.0 ? sinc_filter(x) * sinc_filter(x / 3) : 0.0;
}

static bool filter_of(fy_resample f, filter *out)
{
    switch (f) {
    case FY_RESAMPLE_BOX: *out = (filter){box_filter, 0.5}; return true;
    case FY_RESAMPLE_BILINEAR: *out = (filter){bilinear_filter, 1.0}; return true;
    case FY_RESAMPLE_HAMMING: *out = (filter){hamming_filter, 1.0}; return true;
    case FY_RESAMPLE_BICUBIC: *out = (filter){bicubic_filter, 2.0}; return true;
    case FY_RESAMPLE_LANCZOS: *out = (filter){lanczos_filter, 3.0}; return true;
    default: return false;
    }
}

/* One axis: for each output index its first input index and count, and
 * ksize fixed-point coefficients. */
typedef struct axis {
    int ksize;
    int *bounds;   /* [out][2]: xmin, xmax (count) */
    int32_t *k;    /* [out][ksize] */
} axis;

static void axis_free(axis *a)
{
    free(a->bounds);
    free(a->k);
}

static fy_status precompute(int in_size, int out_size, const filter *f, axis *a)
{
    double scale = (double)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = f->support * filterscale;
    a->ksize = (int)ceil(support) * 2 + 1;
    a->bounds = malloc(sizeof *a->bounds * 2 * (size_t)out_size);
    a->k = malloc(sizeof *a->k * (size_t)out_size * (size_t)a->ksize);
    double *w = malloc(sizeof *w * (size_t)a->ksize);
    if (!a->bounds || !a->k || !w) {
        free(w);
        axis_free(a);
        return fy_error(FY_ERR_NOMEM, "image resize: out of memory");
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            w[x] = f->fn((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        int32_t *k = a->k + (size_t)xx * (size_t)a->ksize;
        for (int x = 0; x < a->ksize; x++) {
            double v = x < xmax ? (ww != 0.0 ? w[x] / ww : w[x]) : 0.0;
            k[x] = (int32_t)(v < 0 ? -0.5 + v * (1 << PRECISION_BITS) : 0.5 + v * (1 << PRECISION_BITS));
        }
        a->bounds[2 * xx] = xmin;
        a->bounds[2 * xx + 1] = xmax;
    }
    free(w);
    return FY_OK;
}

static uint8_t clip8(int64_t v)
{
    if (v >= (int64_t)1 << PRECISION_BITS << 8) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PRECISION_BITS);
}

/* in rows of in_w pixels -> out rows of out_w pixels, rows unchanged. */
static void pass_horizontal(const uint8_t *in, int64_t in_w, int64_t rows, const axis *a, uint8_t *out, int64_t out_w)
{
    for (int64_t y = 0; y < rows; y++)
        for (int64_t xx = 0; xx < out_w; xx++) {
            int xmin = a->bounds[2 * xx], xmax = a->bounds[2 * xx + 1];
            const int32_t *k = a->k + xx * a->ksize;
            for (int c = 0; c < 3; c++) {
                int64_t ss = (int64_t)1 << (PRECISION_BITS - 1);
                for (int x = 0; x < xmax; x++) ss += (int64_t)in[(y * in_w + x + xmin) * 3 + c] * k[x];
                out[(y * out_w + xx) * 3 + c] = clip8(ss);
            }
        }
}

static void pass_vertical(const uint8_t *in, int64_t w, const axis *a, uint8_t *out, int64_t out_h)
{
    for (int64_t yy = 0; yy < out_h; yy++) {
        int ymin = a->bounds[2 * yy], ymax = a->bounds[2 * yy + 1];
        const int32_t *k = a->k + yy * a->ksize;
        for (int64_t x = 0; x < w * 3; x++) {
            int64_t ss = (int64_t)1 << (PRECISION_BITS - 1);
            for (int y = 0; y < ymax; y++) ss += (int64_t)in[(y + ymin) * w * 3 + x] * k[y];
            out[yy * w * 3 + x] = clip8(ss);
        }
    }
}

static fy_status resample(const fy_image *in, int64_t width, int64_t height, const filter *f, fy_image *out)
{
    axis ax = {0}, ay = {0};
    fy_image tmp = {0};
    fy_status st = precompute((int)in->width, (int)width, f, &ax);
    if (st == FY_OK) st = precompute((int)in->height, (int)height, f, &ay);
    if (st == FY_OK) st = fy_image_alloc(width, in->height, &tmp);
    if (st == FY_OK) st = fy_image_alloc(width, height, out);
    if (st == FY_OK) {
        /* Pillow skips a pass whose size is unchanged (its coefficients
         * would be the identity anyway). */
        if (width != in->width) pass_horizontal(in->rgb, in->width, in->height, &ax, tmp.rgb, width);
        else memcpy(tmp.rgb, in->rgb, (size_t)(in->width * in->height * 3));
        if (height != in->height) pass_vertical(tmp.rgb, width, &ay, out->rgb, height);
        else memcpy(out->rgb, tmp.rgb, (size_t)(width * height * 3));
    }
    fy_image_free(&tmp);
    axis_free(&ax);
    axis_free(&ay);
    return st;
}

fy_status fy_image_resize(const fy_image *in, int64_t width, int64_t height, fy_resample which, fy_image *out)
{
    if (!in || !in->rgb || !out) return fy_error(FY_ERR_INVALID, "fy_image_resize: NULL argument");
    memset(out, 0, sizeof *out);
    filter f;
    if (!filter_of(which, &f))
        return fy_error(FY_ERR_UNSUPPORTED, "image resize: resample filter %d is not supported (bilinear 2, "
                        "bicubic 3, lanczos 1, box 4, hamming 5)", (int)which);
    if (width == in->width && height == in->height) {
        FY_TRY(fy_image_alloc(width, height, out));
        memcpy(out->rgb, in->rgb, (size_t)(width * height * 3));
        return FY_OK;
    }
    return resample(in, width, height, &f, out);
}

fy_status fy_image_crop(const fy_image *in, int64_t left, int64_t top, int64_t width, int64_t height,
                        fy_image *out)
{
    if (!in || !in->rgb || !out) return fy_error(FY_ERR_INVALID, "fy_image_crop: NULL argument");
    memset(out, 0, sizeof *out);
    if (left < 0 || top < 0 || left + width > in->width || top + height > in->height)
        return fy_error(FY_ERR_INVALID, "image crop %lldx%lld at (%lld, %lld) leaves the %lldx%lld image",
                        (long long)width, (long long)height, (long long)left, (long long)top, (long long)in->width,
                        (long long)in->height);
    FY_TRY(fy_image_alloc(width, height, out));
    for (int64_t y = 0; y < height; y++)
        memcpy(out->rgb + y * width * 3, in->rgb + ((top + y) * in->width + left) * 3, (size_t)(width * 3));
    return FY_OK;
}
