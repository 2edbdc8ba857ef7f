/* Image input: decoding (PNG, JPEG, bad files) and Pillow's resampler
 * against the I2V fixtures' uint8 intermediates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#ifdef FERRY_HAVE_JPEG
#include <jpeglib.h>
#endif

#include "ferry/image.h"
#include "ferry/image_preprocess.h"
#include "ferry/safetensors.h"

#define I2V FERRY_FIXTURES_DIR "/wan-i2v-tiny"

static void expect_pixels(const fy_st_file *f, const char *name, const fy_image *img)
{
    fy_tensor ref;
    assert_int_equal(fy_st_view(f, name, &ref), FY_OK);
    assert_int_equal(ref.shape[0], img->height);
    assert_int_equal(ref.shape[1], img->width);
    assert_memory_equal(ref.data, img->rgb, (size_t)(img->width * img->height * 3));
}

typedef struct resize_case {
    const char *png, *prefix;
} resize_case;

/* Both images, both filters: the fixture's uint8 resizes to the byte. */
static void test_resize_matches_pillow(void **state)
{
    (void)state;
    static const resize_case cases[] = {{I2V "/fixtures/image.png", "main"}, {I2V "/fixtures/image_other.png", "other"}};
    fy_st_file *f = NULL;
    assert_int_equal(fy_st_open(I2V "/fixtures/image_preprocess.safetensors", &f), FY_OK);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[64];
        fy_image img, r;
        assert_int_equal(fy_image_load(cases[i].png, &img), FY_OK);
        snprintf(name, sizeof name, "%s.uint8", cases[i].prefix);
        expect_pixels(f, name, &img);
        fy_tensor ref;
        snprintf(name, sizeof name, "%s.clip_resized_uint8", cases[i].prefix);
        assert_int_equal(fy_st_view(f, name, &ref), FY_OK);
        assert_int_equal(fy_image_resize(&img, ref.shape[1], ref.shape[0], FY_RESAMPLE_BICUBIC, &r), FY_OK);
        expect_pixels(f, name, &r);
        fy_image_free(&r);
        snprintf(name, sizeof name, "%s.video_resized_uint8", cases[i].prefix);
        assert_int_equal(fy_st_view(f, name, &ref), FY_OK);
        assert_int_equal(fy_image_resize(&img, ref.shape[1], ref.shape[0], FY_RESAMPLE_LANCZOS, &r), FY_OK);
        expect_pixels(f, name, &r);
        fy_image_free(&r);
        fy_image_free(&img);
    }
    fy_st_close(f);
}

/* The whole CLIP path: pixel_values bit for bit. */
static void test_clip_preprocess(void **state)
{
    (void)state;
    fy_clip_preprocess p;
    assert_int_equal(fy_clip_preprocess_load(I2V "/model/image_processor", &p), FY_OK);
    assert_int_equal(p.shortest_edge, 28);
    assert_int_equal(p.resample, FY_RESAMPLE_BICUBIC);
    fy_st_file *f = NULL;
    assert_int_equal(fy_st_open(I2V "/fixtures/image_preprocess.safetensors", &f), FY_OK);
    fy_image img;
    assert_int_equal(fy_image_load(I2V "/fixtures/image_other.png", &img), FY_OK);
    int64_t h, w;
    fy_clip_preprocess_size(&p, &img, &h, &w);
    float *px = malloc(sizeof *px * (size_t)(3 * h * w));
    assert_non_null(px);
    assert_int_equal(fy_clip_preprocess_run(&p, &img, px, NULL, NULL), FY_OK);
    fy_tensor ref;
    assert_int_equal(fy_st_view(f, "other.pixel_values", &ref), FY_OK);
    assert_memory_equal(ref.data, px, sizeof *px * (size_t)(3 * h * w));
    free(px);
    fy_image_free(&img);
    fy_st_close(f);
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, n, fp), n);
    fclose(fp);
}

/* Not an image, a truncated PNG, a missing file: one clear error each. */
static void test_bad_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/ferry_image_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    fy_image img;
    snprintf(path, sizeof path, "%s/text.png", dir);
    write_file(path, "hello", 5);
    assert_int_equal(fy_image_load(path, &img), FY_ERR_FORMAT);
    assert_non_null(strstr(fy_error_message(), "not a PNG or JPEG"));
    FILE *src = fopen(I2V "/fixtures/image.png", "rb");
    assert_non_null(src);
    unsigned char buf[600];
    size_t n = fread(buf, 1, sizeof buf, src);
    fclose(src);
    snprintf(path, sizeof path, "%s/cut.png", dir);
    write_file(path, buf, n);
    assert_int_equal(fy_image_load(path, &img), FY_ERR_FORMAT);
    assert_non_null(strstr(fy_error_message(), "cut.png"));
    unlink(path);
    snprintf(path, sizeof path, "%s/text.png", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/none.jpg", dir);
    assert_int_equal(fy_image_load(path, &img), FY_ERR_IO);
    rmdir(dir);
}

#ifdef FERRY_HAVE_JPEG
/* A JPEG written by libjpeg reads back at its size, close to its pixels. */
static void test_jpeg_roundtrip(void **state)
{
    (void)state;
    char path[] = "/tmp/ferry_image_XXXXXX.jpg";
    int fd = mkstemps(path, 4);
    assert_true(fd >= 0);
    FILE *fp = fdopen(fd, "wb");
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, fp);
    c.image_width = 20;
    c.image_height = 12;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 100, TRUE);
    jpeg_start_compress(&c, TRUE);
    unsigned char row[60];
    for (int x = 0; x < 60; x++) row[x] = (unsigned char)(x % 3 == 0 ? 200 : 40);
    while (c.next_scanline < c.image_height) {
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(fp);
    fy_image img;
    assert_int_equal(fy_image_load(path, &img), FY_OK);
    assert_int_equal(img.width, 20);
    assert_int_equal(img.height, 12);
    for (int i = 0; i < 20 * 12; i++) {
        assert_in_range(img.rgb[3 * i], 190, 210);
        assert_in_range(img.rgb[3 * i + 1], 30, 50);
    }
    fy_image_free(&img);
    unlink(path);
}
#endif

/* Upscaling and downscaling in one call, both axes, stays inside 0..255 and
 * keeps a flat image flat. */
static void test_resize_flat(void **state)
{
    (void)state;
    fy_image img, r;
    assert_int_equal(fy_image_alloc(7, 5, &img), FY_OK);
    memset(img.rgb, 77, 7 * 5 * 3);
    static const int64_t sizes[][2] = {{3, 11}, {14, 2}, {1, 1}, {7, 9}};
    for (size_t i = 0; i < 4; i++) {
        for (int f = FY_RESAMPLE_LANCZOS; f <= FY_RESAMPLE_HAMMING; f++) {
            assert_int_equal(fy_image_resize(&img, sizes[i][0], sizes[i][1], (fy_resample)f, &r), FY_OK);
            for (int64_t k = 0; k < r.width * r.height * 3; k++) assert_int_equal(r.rgb[k], 77);
            fy_image_free(&r);
        }
    }
    assert_int_equal(fy_image_resize(&img, 3, 3, FY_RESAMPLE_NEAREST, &r), FY_ERR_UNSUPPORTED);
    fy_image_free(&img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resize_matches_pillow),
        cmocka_unit_test(test_clip_preprocess),
        cmocka_unit_test(test_bad_files),
#ifdef FERRY_HAVE_JPEG
        cmocka_unit_test(test_jpeg_roundtrip),
#endif
        cmocka_unit_test(test_resize_flat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
