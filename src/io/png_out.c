/* PNG output through libpng's simplified API: one frame, or a numbered
 * sequence written all-or-nothing (every frame under a temporary name first,
 * renamed into place only once all of them are on disk). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/video_out_internal.h"

#ifdef FERRY_HAVE_PNG
#include <png.h>

#define PNG_MAX_TEXT 16

/* libpng reports through longjmp: quietly, the caller names the file. */
static void png_quiet_error(png_structp png, png_const_charp msg)
{
    (void)msg;
    png_longjmp(png, 1);
}

static void png_quiet_warning(png_structp png, png_const_charp msg)
{
    (void)png, (void)msg;
}

/* The setjmp frame alone: nothing here changes after it is set. */
static bool png_encode(png_structp png, png_infop info, FILE *f, png_bytep *rows, int height, int width,
                       png_text *text, int n_text)
{
    if (setjmp(png_jmpbuf(png))) return false;
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (n_text) png_set_text(png, info, text, n_text);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, info);
    return true;
}

/* Text chunks from key, value pairs (UTF-8, so iTXt: prompts are not Latin-1). */
static int png_texts(const char *const *meta, png_text *text)
{
    int n = 0;
    for (; meta && meta[2 * n] && meta[2 * n + 1] && n < PNG_MAX_TEXT; n++) {
        memset(&text[n], 0, sizeof text[n]);
        text[n].compression = PNG_ITXT_COMPRESSION_NONE;
        text[n].key = (png_charp)meta[2 * n];
        text[n].text = (png_charp)meta[2 * n + 1];
        text[n].itxt_length = strlen(meta[2 * n + 1]);
    }
    return n;
}

fy_status fy_png_write_rgb8(const char *path, const char *tmp_path, const uint8_t *rgb, int height, int width,
                            const char *const *meta)
{
    FILE *f = fopen(tmp_path, "wb");
    if (!f) return fy_error(FY_ERR_IO, "%s: cannot write PNG: %s", path, strerror(errno));
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_quiet_error, png_quiet_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *rows = malloc(sizeof *rows * (size_t)height);
    png_text text[PNG_MAX_TEXT];
    fy_status s = FY_OK;
    if (!png || !info || !rows) {
        s = fy_error(FY_ERR_NOMEM, "%s: out of memory", path);
    } else {
        for (int y = 0; y < height; y++) rows[y] = (png_bytep)rgb + (size_t)y * (size_t)width * 3u;
        if (!png_encode(png, info, f, rows, height, width, text, png_texts(meta, text)))
            s = fy_error(FY_ERR_IO, "%s: cannot write PNG (is the disk full?)", path);
    }
    png_destroy_write_struct(&png, &info);
    free(rows);
    if (fclose(f) != 0 && s == FY_OK) s = fy_error(FY_ERR_IO, "%s: cannot write PNG: %s", path, strerror(errno));
    return s;
}
#else
fy_status fy_png_write_rgb8(const char *path, const char *tmp_path, const uint8_t *rgb, int height, int width,
                            const char *const *meta)
{
    (void)tmp_path, (void)rgb, (void)height, (void)width, (void)meta;
    return fy_error(FY_ERR_UNSUPPORTED, "%s: this ferry was built without libpng (install libpng-dev and rebuild)",
                    path);
}
#endif

/* pattern with its one %d / %0Nd replaced by i. */
static char *frame_name(const char *pattern, int i)
{
    const char *pct = strchr(pattern, '%');
    const char *q = pct + 1;
    unsigned width = 0;
    while (*q >= '0' && *q <= '9') width = width * 10 + (unsigned)(*q++ - '0');
    char number[32];
    snprintf(number, sizeof number, "%0*d", (int)(width < 16 ? width : 16), i);
    size_t n = strlen(pattern) + sizeof number;
    char *name = malloc(n);
    if (name) snprintf(name, n, "%.*s%s%s", (int)(pct - pattern), pattern, number, q + 1);
    return name;
}

/* The folder a trailing-'/' output names; made here when missing. */
static fy_status ensure_folder(const char *label, bool *created)
{
    *created = false;
    size_t len = strlen(label);
    if (len == 0 || label[len - 1] != '/') return FY_OK;
    struct stat st;
    if (stat(label, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return fy_error(FY_ERR_IO, "%s: exists and is not a folder", label);
        return FY_OK;
    }
    if (mkdir(label, 0777) != 0)
        return fy_error(FY_ERR_IO, "%s: cannot create the output folder: %s", label, strerror(errno));
    *created = true;
    return FY_OK;
}

typedef struct sequence {
    char **final, **tmp;
    int written;   /* temporary files on disk */
    int published; /* of them, renamed into place */
} sequence;

static void sequence_discard(sequence *q, int frames)
{
    for (int i = 0; i < q->published; i++) unlink(q->final[i]);
    for (int i = q->published; i < q->written; i++) unlink(q->tmp[i]);
    for (int i = 0; i < frames; i++) {
        if (q->final) free(q->final[i]);
        if (q->tmp) free(q->tmp[i]);
    }
    free(q->final), free(q->tmp);
}

static fy_status write_frames(sequence *q, const char *label, const char *pattern, const float *video,
                              int frames, int height, int width, const fy_video_options *opts)
{
    size_t frame_values = (size_t)height * (size_t)width * 3u;
    uint8_t *rgb = malloc(frame_values);
    if (!rgb) return fy_error(FY_ERR_NOMEM, "%s: out of memory", label);
    fy_status s = FY_OK;
    for (int i = 0; i < frames && s == FY_OK; i++) {
        s = fy_video_check_stop(label, opts);
        if (s != FY_OK) break;
        q->final[i] = frame_name(pattern, i);
        q->tmp[i] = q->final[i] ? fy_video_temp_name(q->final[i]) : NULL;
        if (!q->tmp[i]) {
            s = fy_error(FY_ERR_NOMEM, "%s: out of memory", label);
            break;
        }
        fy_video_to_u8_round(video + (size_t)i * frame_values, frame_values, rgb);
        s = fy_png_write_rgb8(q->final[i], q->tmp[i], rgb, height, width, opts ? opts->metadata : NULL);
        if (s == FY_OK) q->written = i + 1;
        else unlink(q->tmp[i]);
    }
    free(rgb);
    return s;
}

fy_status fy_png_write_sequence(const char *label, const char *pattern, const float *video, int frames,
                                int height, int width, const fy_video_options *opts)
{
    bool created = false;
    FY_TRY(ensure_folder(label, &created));
    sequence q = {calloc((size_t)frames, sizeof(char *)), calloc((size_t)frames, sizeof(char *)), 0, 0};
    fy_status s = q.final && q.tmp ? write_frames(&q, label, pattern, video, frames, height, width, opts)
                                   : fy_error(FY_ERR_NOMEM, "%s: out of memory", label);
    for (int i = 0; s == FY_OK && i < frames; i++) {
        if (rename(q.tmp[i], q.final[i]) != 0)
            s = fy_error(FY_ERR_IO, "%s: cannot move a finished frame into place: %s", q.final[i], strerror(errno));
        else q.published = i + 1;
    }
    if (s == FY_OK) q.published = q.written = 0; /* keep everything */
    sequence_discard(&q, frames);
    if (s != FY_OK && created) rmdir(label);
    if (s != FY_OK && s != FY_ERR_INTERRUPTED) fy_error_prefix(s, "%s: no frames written: ", label);
    return s;
}
