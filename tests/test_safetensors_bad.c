/* safetensors: every kind of broken file and broken sharded checkpoint gets
 * the right status and one line naming the file (and the tensor). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/error.h"
#include "ferry/safetensors.h"
#include "support/fyt.h"

typedef struct bad_case {
    const char *what;
    const char *header;
    size_t data;
    fy_status status;
    const char *needle;  /* a word the message must hold */
} bad_case;

#define T(name, dtype, shape, b, e) \
    "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

static const bad_case header_cases[] = {
    {"not JSON", "{not json}", 0, FY_ERR_FORMAT, "not JSON"},
    {"JSON array", "[1, 2]", 0, FY_ERR_FORMAT, "not an object"},
    {"trailing bytes", "{}x", 0, FY_ERR_FORMAT, "after its JSON"},
    {"invalid UTF-8", "{\"\xff\xfe\":1}", 0, FY_ERR_FORMAT, "UTF-8"},
    {"offsets reversed", "{" T("a", "F32", "[1]", 4, 0) "}", 4, FY_ERR_FORMAT, "tensor 'a'"},
    {"overlap",
     "{" T("a", "F32", "[2]", 0, 8) "," T("b", "F32", "[2]", 4, 12) "}", 12, FY_ERR_FORMAT,
     "overlap"},
    {"past the end", "{" T("a", "F32", "[4]", 0, 16) "}", 8, FY_ERR_FORMAT, "truncated"},
    {"gap", "{" T("a", "F32", "[1]", 0, 4) "," T("b", "F32", "[1]", 8, 12) "}", 12,
     FY_ERR_FORMAT, "gap"},
    {"trailing data", "{" T("a", "F32", "[1]", 0, 4) "}", 8, FY_ERR_FORMAT, "trailing"},
    {"data without tensors", "{}", 8, FY_ERR_FORMAT, "no tensor"},
    {"shape x dtype != bytes", "{" T("a", "F32", "[3]", 0, 8) "}", 8, FY_ERR_FORMAT, "needs 12 bytes"},
    {"sub-byte not whole bytes", "{" T("a", "F4", "[3]", 0, 2) "}", 2, FY_ERR_FORMAT, "whole number"},
    {"unknown dtype", "{" T("a", "F128", "[1]", 0, 16) "}", 16, FY_ERR_FORMAT, "F128"},
    {"missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, FY_ERR_FORMAT, "dtype"},
    {"duplicate name", "{" T("a", "F32", "[1]", 0, 4) "," T("a", "F32", "[1]", 4, 8) "}", 8,
     FY_ERR_FORMAT, "twice"},
    {"negative dim", "{" T("a", "F32", "[-1]", 0, 0) "}", 0, FY_ERR_FORMAT, "non-negative"},
    {"fractional dim", "{" T("a", "F32", "[1.5]", 0, 4) "}", 4, FY_ERR_FORMAT, "non-negative"},
    {"shape not array", "{" T("a", "F32", "4", 0, 16) "}", 16, FY_ERR_FORMAT, "shape"},
    {"rank 9", "{" T("a", "U8", "[1,1,1,1,1,1,1,1,1]", 0, 1) "}", 1, FY_ERR_UNSUPPORTED, "rank 9"},
    {"shape overflow", "{" T("a", "F32", "[4294967296,4294967296,16]", 0, 4) "}", 4, FY_ERR_FORMAT,
     "overflow"},
    {"three offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 4,
     FY_ERR_FORMAT, "data_offsets"},
    {"negative offset", "{" T("a", "F32", "[1]", -4, 0) "}", 4, FY_ERR_FORMAT, "data_offsets"},
    {"entry not object", "{\"a\":5}", 0, FY_ERR_FORMAT, "tensor 'a'"},
    {"metadata not object", "{\"__metadata__\":[1]}", 0, FY_ERR_FORMAT, "__metadata__"},
    {"metadata value not string", "{\"__metadata__\":{\"k\":1}}", 0, FY_ERR_FORMAT, "\"k\""},
    {"metadata twice", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, FY_ERR_FORMAT, "twice"},
};

static void test_bad_headers(void **state)
{
    (void)state;
    char *dir = fyt_temp_dir();
    assert_non_null(dir);
    char *path = fyt_path(dir, "model.safetensors");
    for (size_t i = 0; i < sizeof header_cases / sizeof header_cases[0]; i++) {
        const bad_case *c = &header_cases[i];
        size_t size;
        uint8_t *img = fyt_st_bytes(c->header, c->data, &size);
        assert_int_equal(fyt_write_file(path, img, size), 0);
        fy_st_file *f = (fy_st_file *)1;
        fy_status s = fy_st_open(path, &f);
        if (s != c->status || !strstr(fy_error_message(), "model.safetensors") ||
            !strstr(fy_error_message(), c->needle) || strchr(fy_error_message(), '\n'))
            fail_msg("case '%s': status %s, message '%s'", c->what, fy_status_name(s),
                     fy_error_message());
        assert_null(f);
        /* The same bytes from memory give the same answer. */
        assert_int_equal(fy_st_open_memory(img, size, "mem.safetensors", &f), c->status);
        assert_non_null(strstr(fy_error_message(), "mem.safetensors"));
        free(img);
    }
    fyt_remove_tree(dir);
    free(path);
    free(dir);
}

static void open_expect(const char *path, fy_status status, const char *needle)
{
    fy_st_file *f;
    fy_status s = fy_st_open(path, &f);
    if (s != status || !strstr(fy_error_message(), needle))
        fail_msg("%s: status %s, message '%s'", path, fy_status_name(s), fy_error_message());
    const char *base = strrchr(path, '/') + 1;
    assert_non_null(strstr(fy_error_message(), base));
}

static void test_bad_lengths(void **state)
{
    (void)state;
    char *dir = fyt_temp_dir();
    char *path = fyt_path(dir, "model.safetensors");

    assert_int_equal(fyt_write_file(path, "", 0), 0);
    open_expect(path, FY_ERR_FORMAT, "too short");
    assert_int_equal(fyt_write_file(path, "\x10\0\0", 3), 0);
    open_expect(path, FY_ERR_FORMAT, "too short");

    size_t size;
    uint8_t *img = fyt_st_bytes_len(9999999, "{}", 0, &size);
    assert_int_equal(fyt_write_file(path, img, size), 0);
    open_expect(path, FY_ERR_FORMAT, "runs past the end of the file (size 10)");
    assert_non_null(strstr(fy_error_message(), "re-download"));
    free(img);

    img = fyt_st_bytes_len(200000000ull, "{}", 0, &size);
    assert_int_equal(fyt_write_file(path, img, size), 0);
    open_expect(path, FY_ERR_FORMAT, "limit");
    free(img);

    img = fyt_st_bytes_len(UINT64_MAX, "{}", 0, &size);
    assert_int_equal(fyt_write_file(path, img, size), 0);
    open_expect(path, FY_ERR_FORMAT, "limit");
    free(img);

    /* A good file cut short in its data section. */
    img = fyt_st_bytes("{" T("a", "F32", "[4]", 0, 16) "}", 16, &size);
    assert_int_equal(fyt_write_file(path, img, size - 5), 0);
    open_expect(path, FY_ERR_FORMAT, "truncated");
    free(img);

    char *missing = fyt_path(dir, "missing.safetensors");
    open_expect(missing, FY_ERR_NOT_FOUND, "cannot open");
    open_expect(dir, FY_ERR_IO, "not a regular file");

    fy_st_file *f;
    assert_int_equal(fy_st_open_memory(NULL, 0, NULL, &f), FY_ERR_FORMAT);
    fyt_remove_tree(dir);
    free(missing);
    free(path);
    free(dir);
}

/* ---- Sharded checkpoints ------------------------------------------------- */

static void write_shard(const char *dir, const char *name, const char *header, size_t data)
{
    char *path = fyt_path(dir, name);
    size_t size;
    uint8_t *img = fyt_st_bytes(header, data, &size);
    assert_int_equal(fyt_write_file(path, img, size), 0);
    free(img);
    free(path);
}

static void write_index(const char *dir, const char *json)
{
    char *path = fyt_path(dir, "model.safetensors.index.json");
    assert_int_equal(fyt_write_file(path, json, strlen(json)), 0);
    free(path);
}

static void set_expect(const char *dir, fy_status status, const char *needle1, const char *needle2)
{
    fy_st_set *s = (fy_st_set *)1;
    fy_status st = fy_st_set_open_dir(dir, "model", &s);
    if (st != status || !strstr(fy_error_message(), needle1) ||
        (needle2 && !strstr(fy_error_message(), needle2)))
        fail_msg("status %s, message '%s' (wanted '%s')", fy_status_name(st), fy_error_message(),
                 needle1);
    if (status == FY_OK) fy_st_set_free(s);
    else assert_null(s);
}

#define SHARD1 "model-00001-of-00002.safetensors"
#define SHARD2 "model-00002-of-00002.safetensors"

static void test_bad_sets(void **state)
{
    (void)state;
    char *dir = fyt_temp_dir();
    set_expect(dir, FY_ERR_NOT_FOUND, "model.safetensors.index.json", "model.safetensors");

    write_shard(dir, SHARD1, "{" T("a", "F32", "[1]", 0, 4) "}", 4);
    write_shard(dir, SHARD2, "{" T("b", "F32", "[2]", 0, 8) "}", 8);
    write_index(dir, "{\"metadata\":{\"total_size\":12},\"weight_map\":{\"a\":\"" SHARD1
                     "\",\"b\":\"" SHARD2 "\"}}");
    set_expect(dir, FY_OK, "", NULL);

    /* A shard the index names is missing. */
    write_index(dir, "{\"weight_map\":{\"a\":\"" SHARD1 "\",\"b\":\"model-00003-of-00003.safetensors\"}}");
    set_expect(dir, FY_ERR_NOT_FOUND, "model.safetensors.index.json", "model-00003-of-00003");

    /* The index names a tensor its shard does not hold. */
    write_index(dir, "{\"weight_map\":{\"a\":\"" SHARD1 "\",\"b\":\"" SHARD2 "\",\"c\":\"" SHARD2 "\"}}");
    set_expect(dir, FY_ERR_FORMAT, "model.safetensors.index.json", "'c'");

    /* A shard holds a tensor the index does not list. */
    write_shard(dir, SHARD1, "{" T("a", "F32", "[1]", 0, 4) "," T("x", "F32", "[1]", 4, 8) "}", 8);
    write_index(dir, "{\"weight_map\":{\"a\":\"" SHARD1 "\",\"b\":\"" SHARD2 "\"}}");
    set_expect(dir, FY_ERR_FORMAT, "does not list", "'x'");
    write_shard(dir, SHARD1, "{" T("a", "F32", "[1]", 0, 4) "}", 4);
    write_index(dir, "{\"weight_map\":{\"a\":\"" SHARD1 "\",\"b\":\"" SHARD1 "\"}}");
    set_expect(dir, FY_ERR_FORMAT, "'b'", SHARD1);

    /* The same tensor in two shards. */
    write_shard(dir, SHARD2, "{" T("a", "F32", "[1]", 0, 4) "," T("b", "F32", "[2]", 4, 12) "}", 12);
    write_index(dir, "{\"weight_map\":{\"a\":\"" SHARD1 "\",\"b\":\"" SHARD2 "\"}}");
    set_expect(dir, FY_ERR_FORMAT, "'a'", "both");

    /* Broken index files. */
    write_index(dir, "{\"weight_map\":");
    set_expect(dir, FY_ERR_FORMAT, "not JSON", "index.json");
    write_index(dir, "{\"metadata\":{}}");
    set_expect(dir, FY_ERR_FORMAT, "weight_map", "index.json");
    write_index(dir, "{\"weight_map\":{\"a\":\"../" SHARD1 "\"}}");
    set_expect(dir, FY_ERR_FORMAT, "shard file name", "'a'");
    write_index(dir, "{\"weight_map\":{\"a\":7}}");
    set_expect(dir, FY_ERR_FORMAT, "shard file name", "'a'");
    write_index(dir, "{\"weight_map\":{\"a\":\"" SHARD1 "\",\"a\":\"" SHARD1 "\"}}");
    set_expect(dir, FY_ERR_FORMAT, "twice", "'a'");

    /* A broken shard is reported as itself. */
    write_shard(dir, SHARD2, "{" T("b", "F32", "[3]", 0, 8) "}", 8);
    write_index(dir, "{\"weight_map\":{\"a\":\"" SHARD1 "\",\"b\":\"" SHARD2 "\"}}");
    set_expect(dir, FY_ERR_FORMAT, SHARD2, "tensor 'b'");

    fyt_remove_tree(dir);
    free(dir);
}

static void test_reshard_failures_leave_nothing(void **state)
{
    (void)state;
    char *dir = fyt_temp_dir();
    char *out = fyt_path(dir, "out");
    char *bad = fyt_path(dir, "bad.safetensors");
    assert_int_equal(fyt_write_file(bad, "garbage!garbage!", 16), 0);
    assert_int_equal(fy_st_reshard(bad, out, "model", 1000), FY_ERR_FORMAT);
    assert_non_null(strstr(fy_error_message(), "bad.safetensors"));
    assert_int_equal(fyt_count_files(out), 0);
    assert_int_equal(fy_st_reshard(bad, out, "a/b", 1000), FY_ERR_INVALID);
    char *missing = fyt_path(dir, "missing.safetensors.index.json");
    assert_int_equal(fy_st_reshard(missing, out, "model", 1000), FY_ERR_NOT_FOUND);
    assert_int_equal(fyt_count_files(out), 0);
    fyt_remove_tree(dir);
    free(missing);
    free(bad);
    free(out);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_bad_lengths),
        cmocka_unit_test(test_bad_sets),
        cmocka_unit_test(test_reshard_failures_leave_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
