/* safetensors: golden files, writer -> reader round trips for every dtype,
 * re-sharding (the diffusers layout) and reading it back, sizes, and that
 * opening a file reads none of its tensor data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ferry/error.h"
#include "ferry/safetensors.h"
#include "support/fyt.h"

#define MODEL_DIR FERRY_FIXTURES_DIR "/wan-tiny/model"
#define TRANSFORMER MODEL_DIR "/transformer/diffusion_pytorch_model.safetensors"
#define VAE MODEL_DIR "/vae/diffusion_pytorch_model.safetensors"
#define FIXTURES FERRY_FIXTURES_DIR "/wan-tiny/fixtures"
/* The safetensors dtypes come first in fy_dtype; GGUF's block types follow. */
#define ST_DTYPES FY_Q8_0

static uint64_t header_len(const uint8_t *bytes)
{
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | bytes[i];
    return n;
}

/* Every tensor's bytes, as the file holds them (read without mmap). */
static void check_against_raw(const fy_st_file *f, const char *path)
{
    size_t size;
    uint8_t *raw = fyt_read_file(path, &size);
    assert_non_null(raw);
    const uint8_t *data = raw + 8 + header_len(raw);
    uint64_t expect = 0;
    for (size_t i = 0; i < fy_st_count(f); i++) {
        const fy_st_info *t = fy_st_at(f, i);
        assert_int_equal(t->offset, expect);
        expect += t->nbytes;
        assert_true(t->nbytes == 0 || memcmp(t->data, data + t->offset, t->nbytes) == 0);
        assert_ptr_equal(fy_st_find(f, t->name), t);
    }
    assert_int_equal(8 + header_len(raw) + expect, size);
    free(raw);
}

static void test_golden_transformer(void **state)
{
    (void)state;
    fy_st_file *f;
    assert_int_equal(fy_st_open(TRANSFORMER, &f), FY_OK);
    assert_int_equal(fy_st_count(f), 69);
    assert_string_equal(fy_st_metadata(f, "format"), "pt");
    assert_null(fy_st_metadata(f, "nope"));
    assert_string_equal(fy_st_path(f), TRANSFORMER);
    const fy_st_info *t = fy_st_find(f, "blocks.0.attn1.norm_k.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, FY_F32);
    assert_int_equal(t->ndim, 1);
    assert_int_equal(t->shape[0], 32);
    assert_int_equal(t->offset, 0);
    assert_int_equal(t->nbytes, 128);
    fy_tensor v;
    assert_int_equal(fy_st_view(f, "blocks.0.attn1.norm_k.weight", &v), FY_OK);
    assert_ptr_equal(v.data, t->data);
    assert_false(v.owns_data);
    assert_int_equal(v.shape[0], 32);
    assert_null(fy_st_find(f, "no.such.tensor"));
    assert_int_equal(fy_st_view(f, "no.such.tensor", &v), FY_ERR_NOT_FOUND);
    assert_non_null(strstr(fy_error_message(), "diffusion_pytorch_model.safetensors"));
    check_against_raw(f, TRANSFORMER);
    fy_st_close(f);
}

/* Every golden fixture opens; the fixtures' __metadata__["info"] is JSON. */
static void test_golden_fixtures(void **state)
{
    (void)state;
    DIR *d = opendir(FIXTURES);
    assert_non_null(d);
    int opened = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 12 || strcmp(e->d_name + n - 12, ".safetensors") != 0) continue;
        char *path = fyt_path(FIXTURES, e->d_name);
        fy_st_file *f;
        assert_int_equal(fy_st_open(path, &f), FY_OK);
        const char *info = fy_st_metadata(f, "info");
        assert_non_null(info);
        cJSON *j = cJSON_Parse(info);
        assert_non_null(j);
        cJSON_Delete(j);
        assert_true(fy_st_metadata_count(f) >= 1);
        check_against_raw(f, path);
        fy_st_close(f);
        free(path);
        opened++;
    }
    closedir(d);
    assert_true(opened >= 8);

    fy_st_file *f;
    assert_int_equal(fy_st_open(FIXTURES "/tokenizer.safetensors", &f), FY_OK);
    const fy_st_info *ids = fy_st_find(f, "case0.input_ids");
    assert_non_null(ids);
    assert_int_equal(ids->dtype, FY_I64);
    assert_int_equal(ids->shape[0], 19);
    fy_st_close(f);
}

static void test_golden_sets(void **state)
{
    (void)state;
    fy_st_set *s;
    assert_int_equal(fy_st_set_open_dir(MODEL_DIR "/transformer", "diffusion_pytorch_model", &s), FY_OK);
    assert_int_equal(fy_st_set_count(s), 69);
    assert_int_equal(fy_st_set_file_count(s), 1);
    for (size_t i = 1; i < fy_st_set_count(s); i++)
        assert_true(strcmp(fy_st_set_at(s, i - 1)->name, fy_st_set_at(s, i)->name) < 0);
    const fy_st_info *t = fy_st_set_at(s, 5);
    assert_ptr_equal(fy_st_set_find(s, t->name), t);
    assert_ptr_equal(fy_st_set_file_of(s, t->name), fy_st_set_file(s, 0));
    fy_tensor v;
    assert_int_equal(fy_st_set_view(s, t->name, &v), FY_OK);
    assert_ptr_equal(v.data, t->data);
    assert_int_equal(fy_st_set_view(s, "missing", &v), FY_ERR_NOT_FOUND);
    assert_null(fy_st_set_file_of(s, "missing"));
    fy_st_set_free(s);

    assert_int_equal(fy_st_set_open_dir(MODEL_DIR "/text_encoder", "model", &s), FY_OK);
    assert_true(fy_st_set_count(s) > 0);
    fy_st_set_free(s);

    assert_int_equal(fy_st_set_open_dir(MODEL_DIR "/vae", "model", &s), FY_ERR_NOT_FOUND);
    assert_non_null(strstr(fy_error_message(), "model.safetensors"));
    assert_non_null(strstr(fy_error_message(), "model.safetensors.index.json"));
}

/* ---- Writer round trips ------------------------------------------------- */

static void test_round_trip_every_dtype(void **state)
{
    (void)state;
    char *dir = fyt_temp_dir();
    assert_non_null(dir);
    char *path = fyt_path(dir, "all.safetensors");
    uint8_t bytes[8 * 2 * 4 * 8];
    for (size_t i = 0; i < sizeof bytes; i++) bytes[i] = (uint8_t)(i * 13 + 5);

    fy_st_writer *w;
    assert_int_equal(fy_st_writer_create(&w), FY_OK);
    assert_int_equal(fy_st_writer_set_metadata(w, "format", "pt"), FY_OK);
    assert_int_equal(fy_st_writer_set_metadata(w, "note", "quote \" backslash \\ tab \t é"), FY_OK);
    int64_t shape[2] = {2, 4};
    uint64_t total = 0;
    char name[64];
    for (int d = 0; d < ST_DTYPES; d++) {
        uint64_t nbytes = 8 * fy_dtype_bits((fy_dtype)d) / 8;
        snprintf(name, sizeof name, "t.%s", fy_dtype_name((fy_dtype)d));
        assert_int_equal(fy_st_writer_add(w, name, (fy_dtype)d, 2, shape, bytes + total, nbytes), FY_OK);
        total += nbytes;
    }
    int64_t zero_shape[3] = {4, 0, 2};
    assert_int_equal(fy_st_writer_add(w, "empty", FY_F32, 3, zero_shape, NULL, 0), FY_OK);
    assert_int_equal(fy_st_writer_add(w, "scalar", FY_F32, 0, NULL, bytes, 4), FY_OK);
    int64_t rank8[8] = {1, 1, 1, 1, 1, 1, 2, 1};
    assert_int_equal(fy_st_writer_add(w, "rank8", FY_F16, 8, rank8, bytes, 4), FY_OK);
    fy_tensor src;
    int64_t tshape[2] = {3, 5};
    assert_int_equal(fy_tensor_alloc(&src, FY_F32, 2, tshape), FY_OK);
    for (int i = 0; i < 15; i++) ((float *)src.data)[i] = (float)i * 0.5f;
    assert_int_equal(fy_st_writer_add_tensor(w, "from.tensor", &src), FY_OK);
    assert_int_equal(fy_st_writer_bytes(w), total + 4 + 4 + 60);
    assert_int_equal(fy_st_writer_finish(w, path), FY_OK);
    fy_st_writer_free(w);
    assert_int_equal(fyt_count_files(dir), 1); /* no temporary left behind */

    size_t size;
    uint8_t *raw = fyt_read_file(path, &size);
    assert_non_null(raw);
    assert_int_equal(header_len(raw) % 8, 0);
    assert_int_equal(raw[8], '{');
    assert_int_equal(memcmp(raw + 8, "{\"__metadata__\":{\"format\":\"pt\"", 30), 0);
    free(raw);

    fy_st_file *f;
    assert_int_equal(fy_st_open(path, &f), FY_OK);
    assert_int_equal(fy_st_count(f), ST_DTYPES + 4);
    assert_string_equal(fy_st_metadata(f, "note"), "quote \" backslash \\ tab \t é");
    assert_int_equal(fy_st_metadata_count(f), 2);
    total = 0;
    for (int d = 0; d < ST_DTYPES; d++) {
        const fy_st_info *t = fy_st_at(f, (size_t)d);  /* file order == insertion order */
        snprintf(name, sizeof name, "t.%s", fy_dtype_name((fy_dtype)d));
        assert_string_equal(t->name, name);
        assert_int_equal(t->dtype, d);
        assert_int_equal(t->ndim, 2);
        assert_int_equal(t->shape[0], 2);
        assert_int_equal(t->shape[1], 4);
        assert_int_equal(t->nbytes, 8 * fy_dtype_bits((fy_dtype)d) / 8);
        assert_memory_equal(t->data, bytes + total, t->nbytes);
        total += t->nbytes;
    }
    const fy_st_info *e = fy_st_find(f, "empty");
    assert_int_equal(e->nbytes, 0);
    assert_int_equal(e->shape[1], 0);
    fy_tensor v;
    assert_int_equal(fy_st_view(f, "empty", &v), FY_OK);
    assert_int_equal(fy_st_view(f, "scalar", &v), FY_OK);
    assert_int_equal(v.ndim, 0);
    assert_int_equal(fy_st_find(f, "rank8")->ndim, 8);
    assert_int_equal(fy_st_view(f, "rank8", &v), FY_ERR_UNSUPPORTED);
    assert_int_equal(fy_st_view(f, "t.f4", &v), FY_ERR_UNSUPPORTED);
    assert_int_equal(fy_st_view(f, "from.tensor", &v), FY_OK);
    assert_int_equal(v.dtype, FY_F32);
    assert_float_equal(((const float *)v.data)[7], 3.5f, 0);
    fy_st_close(f);
    fy_tensor_free(&src);

    fyt_remove_tree(dir);
    free(path);
    free(dir);
}

static void test_empty_file_and_memory(void **state)
{
    (void)state;
    char *dir = fyt_temp_dir();
    char *path = fyt_path(dir, "empty.safetensors");
    fy_st_writer *w;
    assert_int_equal(fy_st_writer_create(&w), FY_OK);
    assert_int_equal(fy_st_writer_finish(w, path), FY_OK);
    fy_st_writer_free(w);
    size_t size;
    uint8_t *raw = fyt_read_file(path, &size);
    assert_int_equal(size, 16);
    assert_memory_equal(raw + 8, "{}      ", 8);
    fy_st_file *f;
    assert_int_equal(fy_st_open_memory(raw, size, "mem", &f), FY_OK);
    assert_int_equal(fy_st_count(f), 0);
    assert_int_equal(fy_st_metadata_count(f), 0);
    assert_string_equal(fy_st_path(f), "mem");
    fy_st_close(f);
    assert_int_equal(fy_st_open(path, &f), FY_OK);
    assert_int_equal(fy_st_count(f), 0);
    fy_st_close(f);
    free(raw);

    /* JSON order need not be file order; zero-size tensors may sit anywhere. */
    uint8_t *img = fyt_st_bytes("{\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]},"
                                "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
                                "\"a\":{\"dtype\":\"U8\",\"shape\":[2,2],\"data_offsets\":[0,4]}}",
                                8, &size);
    assert_int_equal(fy_st_open_memory(img, size, "mem", &f), FY_OK);
    assert_string_equal(fy_st_at(f, 0)->name, "a");
    assert_string_equal(fy_st_at(f, 1)->name, "z");
    assert_string_equal(fy_st_at(f, 2)->name, "b");
    assert_null(fy_st_at(f, 3));
    assert_int_equal(((const uint8_t *)fy_st_find(f, "b")->data)[0], (4 * 7 + 1) & 0xff);
    fy_st_close(f);
    free(img);

    fyt_remove_tree(dir);
    free(path);
    free(dir);
}

static void test_writer_rejects(void **state)
{
    (void)state;
    char *dir = fyt_temp_dir();
    char *path = fyt_path(dir, "bad.safetensors");
    uint8_t bytes[64] = {0};
    int64_t shape[1] = {4};
    fy_st_writer *w;
    assert_int_equal(fy_st_writer_create(&w), FY_OK);
    assert_int_equal(fy_st_writer_add(w, "a", FY_F32, 1, shape, bytes, 15), FY_ERR_INVALID);
    assert_int_equal(fy_st_writer_add(w, "", FY_F32, 1, shape, bytes, 16), FY_ERR_INVALID);
    assert_int_equal(fy_st_writer_add(w, "__metadata__", FY_F32, 1, shape, bytes, 16), FY_ERR_INVALID);
    int64_t row32[1] = {32};
    assert_int_equal(fy_st_writer_add(w, "q", FY_Q8_0, 1, row32, bytes, 34), FY_ERR_INVALID); /* GGUF only */
    int64_t odd[1] = {3};
    assert_int_equal(fy_st_writer_add(w, "f4", FY_F4, 1, odd, bytes, 2), FY_ERR_INVALID);
    int64_t neg[1] = {-1};
    assert_int_equal(fy_st_writer_add(w, "n", FY_F32, 1, neg, bytes, 0), FY_ERR_INVALID);
    assert_int_equal(fy_st_writer_add(w, "a", FY_F32, 1, shape, bytes, 16), FY_OK);
    assert_int_equal(fy_st_writer_add(w, "a", FY_F32, 1, shape, bytes, 16), FY_OK);
    assert_int_equal(fy_st_writer_finish(w, path), FY_ERR_INVALID);
    assert_non_null(strstr(fy_error_message(), "twice"));
    assert_int_equal(fyt_count_files(dir), 0);
    fy_st_writer_free(w);

    /* An unwritable destination leaves nothing behind either. */
    char *nodir = fyt_path(dir, "missing/x.safetensors");
    assert_int_equal(fy_st_writer_create(&w), FY_OK);
    assert_int_equal(fy_st_writer_add(w, "a", FY_F32, 1, shape, bytes, 16), FY_OK);
    assert_int_equal(fy_st_writer_finish(w, nodir), FY_ERR_IO);
    assert_non_null(strstr(fy_error_message(), "missing/x.safetensors"));
    assert_int_equal(fyt_count_files(dir), 0);
    fy_st_writer_free(w);

    fyt_remove_tree(dir);
    free(nodir);
    free(path);
    free(dir);
}

/* ---- Re-sharding --------------------------------------------------------- */

/* huggingface_hub's rule, restated: a tensor above the limit alone, a new
 * shard when the next tensor would not fit. Returns the shard count. */
static size_t expected_shards(const fy_st_file *f, uint64_t max)
{
    fy_st_set *s;
    assert_int_equal(fy_st_set_open(fy_st_path(f), &s), FY_OK);
    size_t shards = 0;
    uint64_t current = 0;
    int open_shard = 0;
    for (size_t i = 0; i < fy_st_set_count(s); i++) {
        uint64_t n = fy_st_set_at(s, i)->nbytes;
        if (n > max) {
            shards++;
            continue;
        }
        if (open_shard && current + n > max) {
            shards++;
            current = 0;
        }
        open_shard = 1;
        current += n;
    }
    fy_st_set_free(s);
    return shards + (size_t)open_shard;
}

static void check_same_tensors(const fy_st_file *orig, const fy_st_set *s)
{
    assert_int_equal(fy_st_set_count(s), fy_st_count(orig));
    for (size_t i = 0; i < fy_st_count(orig); i++) {
        const fy_st_info *a = fy_st_at(orig, i);
        const fy_st_info *b = fy_st_set_find(s, a->name);
        assert_non_null(b);
        assert_int_equal(a->dtype, b->dtype);
        assert_int_equal(a->ndim, b->ndim);
        assert_memory_equal(a->shape, b->shape, sizeof a->shape[0] * (size_t)a->ndim);
        assert_int_equal(a->nbytes, b->nbytes);
        assert_true(a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0);
    }
}

static void test_reshard_vae(void **state)
{
    (void)state;
    char *dir = fyt_temp_dir();
    fy_st_file *orig;
    assert_int_equal(fy_st_open(VAE, &orig), FY_OK);
    const uint64_t max = 100000;
    size_t nshards = expected_shards(orig, max);
    assert_true(nshards > 3);

    assert_int_equal(fy_st_reshard(VAE, dir, "diffusion_pytorch_model", max), FY_OK);
    assert_int_equal(fyt_count_files(dir), (int)nshards + 1);
    char *index = fyt_path(dir, "diffusion_pytorch_model.safetensors.index.json");
    fy_st_set *s;
    assert_int_equal(fy_st_set_open(index, &s), FY_OK);
    assert_int_equal(fy_st_set_file_count(s), nshards);
    check_same_tensors(orig, s);
    char want[128];
    uint64_t total = 0;
    for (size_t k = 0; k < nshards; k++) {
        const fy_st_file *f = fy_st_set_file(s, k);
        snprintf(want, sizeof want, "/diffusion_pytorch_model-%05zu-of-%05zu.safetensors", k + 1, nshards);
        const char *p = fy_st_path(f);
        assert_string_equal(p + strlen(p) - strlen(want), want);
        assert_string_equal(fy_st_metadata(f, "format"), "pt");
        uint64_t bytes = 0;
        for (size_t i = 0; i < fy_st_count(f); i++) bytes += fy_st_at(f, i)->nbytes;
        /* No shard over the limit unless it holds one oversized tensor. */
        assert_true(bytes <= max || fy_st_count(f) == 1);
        total += bytes;
    }
    fy_st_set_free(s);

    /* The index: huggingface's JSON, total_size and weight_map in name order. */
    size_t n;
    char *text = fyt_read_file(index, &n);
    assert_non_null(text);
    assert_int_equal(strncmp(text, "{\n  \"metadata\": {\n    \"total_size\": ", 36), 0);
    cJSON *j = cJSON_Parse(text);
    assert_non_null(j);
    cJSON *ts = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "metadata"), "total_size");
    assert_true(cJSON_IsNumber(ts));
    assert_true((uint64_t)ts->valuedouble == total);
    cJSON *wm = cJSON_GetObjectItem(j, "weight_map");
    assert_int_equal(cJSON_GetArraySize(wm), (int)fy_st_count(orig));
    const char *prev = "";
    const cJSON *item;
    cJSON_ArrayForEach(item, wm) {
        assert_true(strcmp(prev, item->string) < 0);
        prev = item->string;
    }
    cJSON_Delete(j);
    free(text);

    assert_int_equal(fy_st_set_open_dir(dir, "diffusion_pytorch_model", &s), FY_OK);
    check_same_tensors(orig, s);
    fy_st_set_free(s);

    /* Re-shard the shards into one file in place: the index and shards go. */
    assert_int_equal(fy_st_reshard(index, dir, "diffusion_pytorch_model", 5000000000ull), FY_OK);
    assert_int_equal(fyt_count_files(dir), 1);
    char *single = fyt_path(dir, "diffusion_pytorch_model.safetensors");
    assert_int_equal(fy_st_set_open(single, &s), FY_OK);
    check_same_tensors(orig, s);
    assert_string_equal(fy_st_metadata(fy_st_set_file(s, 0), "format"), "pt");
    fy_st_set_free(s);
    /* And back to shards, from the single file in the same folder. */
    assert_int_equal(fy_st_reshard(single, dir, "diffusion_pytorch_model", max), FY_OK);
    assert_int_equal(fyt_count_files(dir), (int)nshards + 1);
    assert_int_equal(fy_st_set_open_dir(dir, "diffusion_pytorch_model", &s), FY_OK);
    assert_int_equal(fy_st_set_file_count(s), nshards);
    check_same_tensors(orig, s);
    fy_st_set_free(s);

    assert_int_equal(fy_st_reshard(VAE, dir, "x", 0), FY_ERR_INVALID);
    fy_st_close(orig);
    fyt_remove_tree(dir);
    free(single);
    free(index);
    free(dir);
}

/* An oversized tensor gets its own shard ahead of the one being filled. */
static void test_reshard_oversized(void **state)
{
    (void)state;
    char *dir = fyt_temp_dir();
    char *in = fyt_path(dir, "in.safetensors");
    size_t size;
    uint8_t *img = fyt_st_bytes("{\"a\":{\"dtype\":\"U8\",\"shape\":[10],\"data_offsets\":[0,10]},"
                                "\"b\":{\"dtype\":\"U8\",\"shape\":[100],\"data_offsets\":[10,110]},"
                                "\"c\":{\"dtype\":\"U8\",\"shape\":[20],\"data_offsets\":[110,130]},"
                                "\"d\":{\"dtype\":\"U8\",\"shape\":[25],\"data_offsets\":[130,155]}}",
                                155, &size);
    assert_int_equal(fyt_write_file(in, img, size), 0);
    free(img);
    char *out = fyt_path(dir, "out");
    assert_int_equal(fy_st_reshard(in, out, "model", 50), FY_OK);
    fy_st_set *s;
    assert_int_equal(fy_st_set_open_dir(out, "model", &s), FY_OK);
    assert_int_equal(fy_st_set_file_count(s), 3);
    const char *shard_b = fy_st_path(fy_st_set_file_of(s, "b"));
    assert_non_null(strstr(shard_b, "model-00001-of-00003.safetensors"));
    assert_non_null(strstr(fy_st_path(fy_st_set_file_of(s, "a")), "model-00002-of-00003"));
    assert_non_null(strstr(fy_st_path(fy_st_set_file_of(s, "c")), "model-00002-of-00003"));
    assert_non_null(strstr(fy_st_path(fy_st_set_file_of(s, "d")), "model-00003-of-00003"));
    fy_st_set_free(s);
    fyt_remove_tree(dir);
    free(out);
    free(in);
    free(dir);
}

static void test_parse_size(void **state)
{
    (void)state;
    static const struct { const char *text; uint64_t bytes; } ok[] = {
        {"5GB", 5000000000ull}, {"500MB", 500000000ull}, {"10KB", 10000ull},
        {"2GiB", 2ull << 30},   {"512MiB", 512ull << 20}, {"1KiB", 1024},
        {"1024", 1024},         {"5gb", 625000000ull},   {"5GB", 5000000000ull},
        {"3gib", 3ull << 30},   {"7mB", 7000000},        {"0", 0},
        {"18446744073709551615", UINT64_MAX},
        {"1.5GB", 1500000000ull}, {"6.5GiB", 6979321856ull}, {"6G", 6ull << 30}, {"6g", 6ull << 30},
        {"512m", 512ull << 20},   {"5TB", 5000000000000ull}, {"2TiB", 2ull << 40}, {"100B", 100},
        {"0.5KiB", 512},          {"1.", 1},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t v = 1;
        assert_int_equal(fy_parse_size(ok[i].text, &v), FY_OK);
        assert_true(v == ok[i].bytes);
    }
    static const char *bad[] = {"", "GB", "-5GB", "5 GB", "1.2.3GB", "abc", ".GB", "5XB",
                                "18446744073709551616", "20000000000GB", "99999999999GiB", "+5", "1e9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v;
        assert_int_equal(fy_parse_size(bad[i], &v), FY_ERR_INVALID);
        assert_true(strlen(fy_error_message()) > 0);
    }
}

static void test_size_ambiguity(void **state)
{
    (void)state;
    static const struct { const char *text; const char *says; } cases[] = {
        {"6GiB", NULL}, {"6GB", NULL}, {"0", NULL}, {"6000000000", "bytes"}, {"6gb", "bits"},
        {"6Gb", "bits"}, {"6G", "power of 2"}, {"6.5M", "power of 2"}, {"100B", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *note = fy_size_ambiguity(cases[i].text);
        if (!cases[i].says) assert_null(note);
        else assert_non_null(strstr(note, cases[i].says));
    }
}

/* ---- Lazy loading --------------------------------------------------------- */

static size_t resident_pages(const void *addr, size_t len)
{
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t start = (uintptr_t)addr & ~((uintptr_t)page - 1);
    uintptr_t end = (uintptr_t)addr + len;
    size_t n = (end - start + (size_t)page - 1) / (size_t)page;
    unsigned char *vec = malloc(n);
    assert_non_null(vec);
    assert_int_equal(mincore((void *)start, end - start, vec), 0);
    size_t r = 0;
    for (size_t i = 0; i < n; i++) r += vec[i] & 1;
    free(vec);
    return r;
}

/* Opening reads the header only; reading one tensor faults in its pages and
 * not the rest. Skipped where the page cache cannot be dropped (tmpfs). */
static void test_open_touches_no_data(void **state)
{
    (void)state;
    char *dir = fyt_temp_dir();
    char *path = fyt_path(dir, "big.safetensors");
    enum { N = 8, MB = 1 << 20 };
    uint8_t *chunk = malloc(4 * MB);
    memset(chunk, 0x5a, 4 * MB);
    fy_st_writer *w;
    assert_int_equal(fy_st_writer_create(&w), FY_OK);
    int64_t shape[1] = {4 * MB};
    char name[16];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "w%d", i);
        assert_int_equal(fy_st_writer_add(w, name, FY_U8, 1, shape, chunk, 4 * MB), FY_OK);
    }
    assert_int_equal(fy_st_writer_finish(w, path), FY_OK);
    fy_st_writer_free(w);
    free(chunk);

    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    void *probe = mmap(NULL, (size_t)N * 4 * MB, PROT_READ, MAP_SHARED, fd, 4096);
    assert_true(probe != MAP_FAILED);
    size_t cached = resident_pages(probe, (size_t)N * 4 * MB - 4096);
    munmap(probe, (size_t)N * 4 * MB);
    close(fd);
    if (cached > 16) {
        fyt_remove_tree(dir);
        free(path);
        free(dir);
        skip();
    }

    fy_st_file *f;
    assert_int_equal(fy_st_open(path, &f), FY_OK);
    size_t before = 0;
    for (int i = 0; i < N; i++) before += resident_pages(fy_st_at(f, (size_t)i)->data, 4 * MB);
    assert_true(before <= 2);  /* at most the page the header shares */
    const fy_st_info *t = fy_st_find(f, "w3");
    volatile uint8_t sum = 0;
    for (uint64_t i = 0; i < t->nbytes; i += 4096) sum += ((const uint8_t *)t->data)[i];
    (void)sum;
    assert_true(resident_pages(t->data, t->nbytes) >= t->nbytes / 4096);
    assert_true(resident_pages(fy_st_find(f, "w6")->data, 4 * MB) <= 2);
    assert_true(resident_pages(fy_st_find(f, "w0")->data, 4 * MB) <= 2);
    fy_st_close(f);
    fyt_remove_tree(dir);
    free(path);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_transformer),
        cmocka_unit_test(test_golden_fixtures),
        cmocka_unit_test(test_golden_sets),
        cmocka_unit_test(test_round_trip_every_dtype),
        cmocka_unit_test(test_empty_file_and_memory),
        cmocka_unit_test(test_writer_rejects),
        cmocka_unit_test(test_reshard_vae),
        cmocka_unit_test(test_reshard_oversized),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_size_ambiguity),
        cmocka_unit_test(test_open_touches_no_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
