/* Video output: an MP4 decoded back with libav (frames, size, rate, pixels),
 * PNGs read back exactly with libpng, and failures that leave no file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ferry/video_out.h"
#include "support/fyt.h"

#ifdef FERRY_HAVE_LIBAV
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswscale/swscale.h>
#endif
#ifdef FERRY_HAVE_PNG
#include <png.h>
#endif

enum { F = 9, H = 32, W = 48 };

/* A smooth moving gradient in [0, 1], (F, H, W, 3). */
static float *gradient(int frames, int height, int width)
{
    float *v = malloc((size_t)frames * height * width * 3 * sizeof(float));
    for (int f = 0; f < frames; f++)
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++) {
                float *p = v + (((size_t)f * height + y) * width + x) * 3;
                p[0] = (float)x / (float)(width - 1);
                p[1] = (float)y / (float)(height - 1);
                p[2] = 0.25f + 0.5f * (float)f / (float)(frames > 1 ? frames - 1 : 1);
            }
    return v;
}

static void assert_message(const char *needle)
{
    if (!strstr(fy_error_message(), needle)) fail_msg("message \"%s\" lacks \"%s\"", fy_error_message(), needle);
}

static void test_u8_conversion(void **state)
{
    (void)state;
    const float in[7] = {0.0f, 0.999f, 1.0f, 0.5f, NAN, 1.5f, -1.0f};
    uint8_t t[7], r[7];
    fy_video_to_u8_trunc(in, 7, t);
    fy_video_to_u8_round(in, 7, r);
    const uint8_t want_t[7] = {0, 254, 255, 127, 0, 255, 0};
    const uint8_t want_r[7] = {0, 255, 255, 128, 0, 255, 0}; /* 127.5 rounds half to even */
    assert_memory_equal(t, want_t, 7);
    assert_memory_equal(r, want_r, 7);
}

static void test_format_for_path(void **state)
{
    (void)state;
    fy_video_format f;
    assert_int_equal(fy_video_format_for_path("a/b.MP4", 9, &f), FY_OK);
    assert_int_equal(f, FY_VIDEO_MP4);
    assert_int_equal(fy_video_format_for_path("b.png", 1, &f), FY_OK);
    assert_int_equal(f, FY_VIDEO_PNG);
    assert_int_equal(fy_video_format_for_path("b.png", 2, &f), FY_OK);
    assert_int_equal(f, FY_VIDEO_PNG_SEQUENCE);
    assert_int_equal(fy_video_format_for_path("out/", 1, &f), FY_OK);
    assert_int_equal(f, FY_VIDEO_PNG_SEQUENCE);
    assert_int_equal(fy_video_format_for_path("f_%04d.png", 1, &f), FY_OK);
    assert_int_equal(f, FY_VIDEO_PNG_SEQUENCE);
    assert_int_equal(fy_video_format_for_path("clip.avi", 9, &f), FY_ERR_UNSUPPORTED);
    assert_message("clip.avi");
    assert_message(".mp4");
    assert_int_equal(fy_video_format_for_path("noext", 9, &f), FY_ERR_UNSUPPORTED);
    assert_int_equal(fy_video_format_for_path("a%s.png", 9, &f), FY_ERR_INVALID);
    assert_int_equal(fy_video_format_for_path("", 9, &f), FY_ERR_INVALID);
}

#ifdef FERRY_HAVE_LIBAV
static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

typedef struct decoded {
    int frames, width, height;
    AVRational rate;
    enum AVCodecID codec;
    double mean_abs_err; /* against `want`, over all frames decoded */
} decoded;

static void decode_mp4(const char *path, const uint8_t *want, int want_w, int want_h, decoded *out)
{
    memset(out, 0, sizeof *out);
    AVFormatContext *fmt = NULL;
    assert_int_equal(avformat_open_input(&fmt, path, NULL, NULL), 0);
    assert_true(avformat_find_stream_info(fmt, NULL) >= 0);
    int si = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    assert_true(si >= 0);
    AVStream *st = fmt->streams[si];
    const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
    assert_non_null(codec);
    AVCodecContext *c = avcodec_alloc_context3(codec);
    avcodec_parameters_to_context(c, st->codecpar);
    assert_int_equal(avcodec_open2(c, codec, NULL), 0);
    out->width = c->width, out->height = c->height, out->rate = st->avg_frame_rate, out->codec = codec->id;
    AVPacket *pkt = av_packet_alloc();
    AVFrame *frame = av_frame_alloc();
    uint8_t *rgb = malloc((size_t)c->width * c->height * 3);
    struct SwsContext *sws = NULL;
    double err = 0;
    size_t count = 0;
    bool flushing = false;
    for (;;) {
        if (!flushing) {
            int r = av_read_frame(fmt, pkt);
            if (r < 0) {
                flushing = true;
                avcodec_send_packet(c, NULL);
            } else {
                if (pkt->stream_index == si) avcodec_send_packet(c, pkt);
                av_packet_unref(pkt);
            }
        }
        int r;
        while ((r = avcodec_receive_frame(c, frame)) == 0) {
            sws = sws_getCachedContext(sws, frame->width, frame->height, frame->format, frame->width, frame->height,
                                       AV_PIX_FMT_RGB24, SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT,
                                       NULL, NULL, NULL);
            uint8_t *dst[1] = {rgb};
            int stride[1] = {frame->width * 3};
            sws_scale(sws, (const uint8_t *const *)frame->data, frame->linesize, 0, frame->height, dst, stride);
            if (want && out->frames < F) {
                const uint8_t *ref = want + (size_t)out->frames * want_w * want_h * 3;
                for (int y = 0; y < want_h; y++)
                    for (int x = 0; x < want_w * 3; x++, count++)
                        err += fabs((double)rgb[(size_t)y * frame->width * 3 + x] - ref[(size_t)y * want_w * 3 + x]);
            }
            out->frames++;
        }
        if (flushing && r == AVERROR_EOF) break;
    }
    out->mean_abs_err = count ? err / (double)count : 0;
    sws_freeContext(sws);
    free(rgb);
    av_frame_free(&frame);
    av_packet_free(&pkt);
    avcodec_free_context(&c);
    avformat_close_input(&fmt);
}

static void test_mp4_roundtrip(void **state)
{
    (void)state;
    char *dir = fyt_temp_dir();
    char *path = fyt_path(dir, "clip.mp4");
    float *v = gradient(F, H, W);
    assert_int_equal(fy_video_write(path, v, F, H, W, 16, FY_VIDEO_AUTO), FY_OK);
    assert_int_equal(fyt_count_files(dir), 1); /* no temporary left behind */
    uint8_t *want = malloc((size_t)F * H * W * 3);
    fy_video_to_u8_trunc(v, (size_t)F * H * W * 3, want);
    decoded d;
    decode_mp4(path, want, W, H, &d);
    assert_int_equal(d.frames, F);
    assert_int_equal(d.width, W);
    assert_int_equal(d.height, H);
    assert_int_equal(d.rate.num * 1, 16 * d.rate.den);
    if (avcodec_find_encoder_by_name("libx264")) assert_int_equal(d.codec, AV_CODEC_ID_H264);
    if (d.mean_abs_err > 2.0) fail_msg("mean |decoded - input| = %.3f levels", d.mean_abs_err);
    free(want), free(v), free(path);
    fyt_remove_tree(dir);
    free(dir);
}

/* Odd sides are padded by one replicated column/row; the rate survives any fps. */
static void test_mp4_odd_size(void **state)
{
    (void)state;
    char *dir = fyt_temp_dir();
    char *path = fyt_path(dir, "odd.mp4");
    float *v = gradient(3, 33, 47);
    assert_int_equal(fy_video_write(path, v, 3, 33, 47, 7, FY_VIDEO_AUTO), FY_OK);
    decoded d;
    decode_mp4(path, NULL, 0, 0, &d);
    assert_int_equal(d.frames, 3);
    assert_int_equal(d.width, 48);
    assert_int_equal(d.height, 34);
    assert_int_equal(d.rate.num, 7 * d.rate.den);
    free(v), free(path);
    fyt_remove_tree(dir);
    free(dir);
}

static void test_mp4_failures_leave_nothing(void **state)
{
    (void)state;
    char *dir = fyt_temp_dir();
    float *v = gradient(2, 8, 8);
    /* A parent that does not exist, and one that is a file. */
    char *missing = fyt_path(dir, "nope/clip.mp4");
    assert_int_equal(fy_video_write(missing, v, 2, 8, 8, 16, FY_VIDEO_AUTO), FY_ERR_IO);
    assert_message(missing);
    char *file = fyt_path(dir, "file");
    assert_int_equal(fyt_write_file(file, "x", 1), 0);
    char *under_file = fyt_path(dir, "file/clip.mp4");
    assert_int_equal(fy_video_write(under_file, v, 2, 8, 8, 16, FY_VIDEO_AUTO), FY_ERR_IO);
    /* The final name is taken by a folder: the finished temp cannot be renamed. */
    char *taken = fyt_path(dir, "taken.mp4");
    assert_int_equal(mkdir(taken, 0777), 0);
    assert_int_equal(fy_video_write(taken, v, 2, 8, 8, 16, FY_VIDEO_AUTO), FY_ERR_IO);
    assert_message("taken.mp4");
    assert_int_equal(fyt_count_files(dir), 2); /* "file" and "taken.mp4" only */
    /* An unknown encoder. */
    char *clip = fyt_path(dir, "clip.mp4");
    fy_video_options o = {.crf = -1, .encoder = "no-such-encoder"};
    assert_int_equal(fy_video_write_opts(clip, v, 2, 8, 8, 16, FY_VIDEO_AUTO, &o), FY_ERR_UNSUPPORTED);
    assert_message("no-such-encoder");
    assert_false(exists(clip));
    assert_int_equal(fyt_count_files(dir), 2);
    free(v), free(missing), free(file), free(under_file), free(taken), free(clip);
    fyt_remove_tree(dir);
    free(dir);
}
#endif

#ifdef FERRY_HAVE_PNG
static void assert_png_equals(const char *path, const float *frame, int height, int width)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path)) fail_msg("%s: %s", path, img.message);
    assert_int_equal(img.width, width);
    assert_int_equal(img.height, height);
    img.format = PNG_FORMAT_RGB;
    size_t n = (size_t)height * width * 3;
    uint8_t *got = malloc(n), *want = malloc(n);
    assert_true(png_image_finish_read(&img, NULL, got, 0, NULL));
    fy_video_to_u8_round(frame, n, want);
    assert_memory_equal(got, want, n);
    free(got), free(want);
}

static void test_png_single(void **state)
{
    (void)state;
    char *dir = fyt_temp_dir();
    char *path = fyt_path(dir, "still.png");
    float *v = gradient(1, H, W);
    assert_int_equal(fy_video_write(path, v, 1, H, W, 16, FY_VIDEO_AUTO), FY_OK);
    assert_int_equal(fyt_count_files(dir), 1);
    assert_png_equals(path, v, H, W);
    free(v), free(path);
    fyt_remove_tree(dir);
    free(dir);
}

static void check_sequence(const char *dir, const char *const *names, const float *v, int frames)
{
    assert_int_equal(fyt_count_files(dir), frames);
    for (int i = 0; i < frames; i++) {
        char *p = fyt_path(dir, names[i]);
        assert_png_equals(p, v + (size_t)i * H * W * 3, H, W);
        free(p);
    }
}

static void test_png_sequences(void **state)
{
    (void)state;
    char *dir = fyt_temp_dir();
    float *v = gradient(3, H, W);

    char *folder = fyt_path(dir, "frames/"); /* created */
    assert_int_equal(fy_video_write(folder, v, 3, H, W, 16, FY_VIDEO_AUTO), FY_OK);
    static const char *const in_folder[] = {"frame_0000.png", "frame_0001.png", "frame_0002.png"};
    check_sequence(folder, in_folder, v, 3);

    char *sub = fyt_path(dir, "seq");
    assert_int_equal(mkdir(sub, 0777), 0);
    char *stem = fyt_path(sub, "shot.png"); /* several frames for one .png name */
    assert_int_equal(fy_video_write(stem, v, 3, H, W, 16, FY_VIDEO_AUTO), FY_OK);
    static const char *const stemmed[] = {"shot_0000.png", "shot_0001.png", "shot_0002.png"};
    check_sequence(sub, stemmed, v, 3);

    char *pat_dir = fyt_path(dir, "pat");
    assert_int_equal(mkdir(pat_dir, 0777), 0);
    char *pattern = fyt_path(pat_dir, "f%03d.png");
    assert_int_equal(fy_video_write(pattern, v, 3, H, W, 16, FY_VIDEO_AUTO), FY_OK);
    static const char *const patterned[] = {"f000.png", "f001.png", "f002.png"};
    check_sequence(pat_dir, patterned, v, 3);

    free(v), free(folder), free(sub), free(stem), free(pat_dir), free(pattern);
    fyt_remove_tree(dir);
    free(dir);
}

/* A frame that cannot be put in place undoes the whole sequence. */
static void test_png_sequence_all_or_nothing(void **state)
{
    (void)state;
    char *dir = fyt_temp_dir();
    float *v = gradient(3, H, W);
    char *blocker = fyt_path(dir, "frame_0002.png");
    assert_int_equal(mkdir(blocker, 0777), 0);
    char *folder = malloc(strlen(dir) + 2);
    sprintf(folder, "%s/", dir);
    assert_int_equal(fy_video_write(folder, v, 3, H, W, 16, FY_VIDEO_PNG_SEQUENCE), FY_ERR_IO);
    assert_message("frame_0002.png");
    assert_int_equal(fyt_count_files(dir), 1); /* only the blocker */

    /* A folder this call creates is removed again on failure. */
    char *missing = fyt_path(dir, "nope/deeper/");
    assert_int_equal(fy_video_write(missing, v, 3, H, W, 16, FY_VIDEO_AUTO), FY_ERR_IO);
    assert_int_equal(fyt_count_files(dir), 1);
    free(v), free(blocker), free(folder), free(missing);
    fyt_remove_tree(dir);
    free(dir);
}
#endif

static void test_bad_arguments_leave_nothing(void **state)
{
    (void)state;
    char *dir = fyt_temp_dir();
    float *v = gradient(2, 8, 8);
    char *avi = fyt_path(dir, "clip.avi");
    assert_int_equal(fy_video_write(avi, v, 2, 8, 8, 16, FY_VIDEO_AUTO), FY_ERR_UNSUPPORTED);
    assert_message("supported");
    char *mp4 = fyt_path(dir, "clip.mp4");
    assert_int_equal(fy_video_write(mp4, v, 0, 8, 8, 16, FY_VIDEO_AUTO), FY_ERR_INVALID);
    assert_int_equal(fy_video_write(mp4, v, 2, 0, 8, 16, FY_VIDEO_AUTO), FY_ERR_INVALID);
    assert_int_equal(fy_video_write(mp4, v, 2, 8, 100000, 16, FY_VIDEO_AUTO), FY_ERR_INVALID);
    assert_int_equal(fy_video_write(mp4, v, 100000, 16384, 16384, 16, FY_VIDEO_AUTO), FY_ERR_INVALID);
    assert_message("too large");
    assert_int_equal(fy_video_write(mp4, v, 2, 8, 8, 0, FY_VIDEO_AUTO), FY_ERR_INVALID);
    assert_int_equal(fy_video_write(mp4, NULL, 2, 8, 8, 16, FY_VIDEO_AUTO), FY_ERR_INVALID);
    assert_int_equal(fyt_count_files(dir), 0);
    free(v), free(avi), free(mp4);
    fyt_remove_tree(dir);
    free(dir);
}

/* A build without a library says which one is missing. */
static void test_missing_libraries(void **state)
{
    (void)state;
    char *dir = fyt_temp_dir();
    float *v = gradient(2, 8, 8);
    char *mp4 = fyt_path(dir, "clip.mp4");
    char *png = fyt_path(dir, "still.png");
    fy_status s = fy_video_write(mp4, v, 2, 8, 8, 16, FY_VIDEO_AUTO);
    if (!fy_video_have_mp4()) {
        assert_int_equal(s, FY_ERR_UNSUPPORTED);
        assert_message("libavcodec");
    } else {
        assert_int_equal(s, FY_OK);
    }
    s = fy_video_write(png, v, 1, 8, 8, 16, FY_VIDEO_AUTO);
    if (!fy_video_have_png()) {
        assert_int_equal(s, FY_ERR_UNSUPPORTED);
        assert_message("libpng");
    } else {
        assert_int_equal(s, FY_OK);
    }
    assert_int_equal(fyt_count_files(dir), fy_video_have_mp4() + fy_video_have_png());
    free(v), free(mp4), free(png);
    fyt_remove_tree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_u8_conversion),
        cmocka_unit_test(test_format_for_path),
        cmocka_unit_test(test_bad_arguments_leave_nothing),
        cmocka_unit_test(test_missing_libraries),
#ifdef FERRY_HAVE_LIBAV
        cmocka_unit_test(test_mp4_roundtrip),
        cmocka_unit_test(test_mp4_odd_size),
        cmocka_unit_test(test_mp4_failures_leave_nothing),
#endif
#ifdef FERRY_HAVE_PNG
        cmocka_unit_test(test_png_single),
        cmocka_unit_test(test_png_sequences),
        cmocka_unit_test(test_png_sequence_all_or_nothing),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
