/* Image decoding: PNG through libpng's simplified API, JPEG through libjpeg
 * (the decoder Pillow itself links, with its default settings: islow DCT,
 * fancy upsampling), both to 8-bit RGB. */
#include "ferry/image.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef FERRY_HAVE_PNG
#include <png.h>
#endif
#ifdef FERRY_HAVE_JPEG
#include <jpeglib.h>
#endif

#define MAX_SIDE 16384

fy_status fy_image_alloc(int64_t width, int64_t height, fy_image *out)
{
    memset(out, 0, sizeof *out);
    if (width < 1 || height < 1 || width > MAX_SIDE || height > MAX_SIDE)
        return fy_error(FY_ERR_INVALID, "image size %lldx%lld: use 1 to %d pixels a side", (long long)width,
                        (long long)height, MAX_SIDE);
    out->rgb = calloc((size_t)(width * height * 3), 1);
    if (!out->rgb) return fy_error(FY_ERR_NOMEM, "out of memory for a %lldx%lld image", (long long)width, (long long)height);
    out->width = width;
    out->height = height;
    return FY_OK;
}

void fy_image_free(fy_image *img)
{
    if (!img) return;
    free(img->rgb);
    memset(img, 0, sizeof *img);
}

static fy_status check_side(const char *path, int64_t w, int64_t h)
{
    if (w < 1 || h < 1 || w > MAX_SIDE || h > MAX_SIDE)
        return fy_error(FY_ERR_FORMAT, "%s: the image is %lldx%lld; ferry reads 1 to %d pixels a side", path,
                        (long long)w, (long long)h, MAX_SIDE);
    return FY_OK;
}

/* ---- PNG ------------------------------------------------------------------ */

#ifdef FERRY_HAVE_PNG
static fy_status load_png(const char *path, fy_image *out)
{
    png_image png;
    memset(&png, 0, sizeof png);
    png.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&png, path))
        return fy_error(FY_ERR_FORMAT, "%s: not a readable PNG (%s)", path, png.message);
    fy_status st = check_side(path, png.width, png.height);
    if (st != FY_OK) {
        png_image_free(&png);
        return st;
    }
    /* RGBA then dropped: PIL's convert("RGB") discards alpha rather than
     * compositing it over a background, as RGB output would. */
    png.format = PNG_FORMAT_RGBA;
    size_t n = (size_t)png.width * png.height;
    uint8_t *rgba = malloc(n * 4);
    if (!rgba) {
        png_image_free(&png);
        return fy_error(FY_ERR_NOMEM, "%s: out of memory", path);
    }
    if (!png_image_finish_read(&png, NULL, rgba, 0, NULL)) {
        free(rgba);
        return fy_error(FY_ERR_FORMAT, "%s: corrupt PNG (%s)", path, png.message);
    }
    st = fy_image_alloc(png.width, png.height, out);
    for (size_t i = 0; st == FY_OK && i < n; i++) memcpy(out->rgb + 3 * i, rgba + 4 * i, 3);
    free(rgba);
    return st;
}
#endif

/* ---- JPEG ----------------------------------------------------------------- */

#ifdef FERRY_HAVE_JPEG
typedef struct jpeg_failure {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
} jpeg_failure;

static void jpeg_fail(j_common_ptr cinfo)
{
    jpeg_failure *f = (jpeg_failure *)cinfo->err;
    cinfo->err->format_message(cinfo, f->message);
    longjmp(f->jump, 1);
}

static void jpeg_quiet(j_common_ptr cinfo, int level)
{
    (void)cinfo;
    (void)level; /* warnings (a truncated tail libjpeg pads) are not errors, and not printed */
}

/* The decode proper; everything it allocates is released by the caller. */
static fy_status decode_jpeg(struct jpeg_decompress_struct *cinfo, const char *path, fy_image *out)
{
    jpeg_read_header(cinfo, TRUE);
    cinfo->out_color_space = JCS_RGB;
    jpeg_start_decompress(cinfo);
    FY_TRY(check_side(path, cinfo->output_width, cinfo->output_height));
    if (cinfo->output_components != 3)
        return fy_error(FY_ERR_UNSUPPORTED, "%s: a JPEG with %d colour components (ferry reads RGB and grey)", path,
                        cinfo->output_components);
    FY_TRY(fy_image_alloc(cinfo->output_width, cinfo->output_height, out));
    while (cinfo->output_scanline < cinfo->output_height) {
        JSAMPROW row = out->rgb + (size_t)cinfo->output_scanline * (size_t)out->width * 3;
        jpeg_read_scanlines(cinfo, &row, 1);
    }
    jpeg_finish_decompress(cinfo);
    return FY_OK;
}

static fy_status load_jpeg(const char *path, FILE *f, fy_image *out)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_failure fail;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&fail.mgr);
    fail.mgr.error_exit = jpeg_fail;
    fail.mgr.emit_message = jpeg_quiet;
    memset(out, 0, sizeof *out);
    if (setjmp(fail.jump)) {
        jpeg_destroy_decompress(&cinfo);
        fy_image_free(out);
        return fy_error(FY_ERR_FORMAT, "%s: corrupt JPEG (%s)", path, fail.message);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, f);
    fy_status st = decode_jpeg(&cinfo, path, out);
    jpeg_destroy_decompress(&cinfo);
    if (st != FY_OK) fy_image_free(out);
    return st;
}
#endif

/* ---- by content ----------------------------------------------------------- */

fy_status fy_image_load(const char *path, fy_image *out)
{
    if (!path || !out) return fy_error(FY_ERR_INVALID, "fy_image_load: NULL argument");
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return fy_error(FY_ERR_IO, "%s: cannot open the image (%s)", path, strerror(errno));
    unsigned char magic[8] = {0};
    size_t got = fread(magic, 1, sizeof magic, f);
    fy_status st;
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (got == 8 && memcmp(magic, png_sig, 8) == 0) {
#ifdef FERRY_HAVE_PNG
        fclose(f);
        return load_png(path, out);
#else
        st = fy_error(FY_ERR_UNSUPPORTED, "%s: a PNG, but this build has no libpng (install libpng-dev)", path);
#endif
    } else if (got >= 3 && magic[0] == 0xff && magic[1] == 0xd8 && magic[2] == 0xff) {
#ifdef FERRY_HAVE_JPEG
        rewind(f);
        st = load_jpeg(path, f, out);
#else
        st = fy_error(FY_ERR_UNSUPPORTED, "%s: a JPEG, but this build has no libjpeg (install libjpeg-dev)", path);
#endif
    } else {
        st = fy_error(FY_ERR_FORMAT, "%s: not a PNG or JPEG image (give --image a .png or .jpg file)", path);
    }
    fclose(f);
    return st;
}
