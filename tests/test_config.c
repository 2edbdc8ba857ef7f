/* Config files: typed lookups, defaults, nulls, model_index pairs, and one
 * clear message (file + key) for every kind of bad file or value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferry/config.h"
#include "ferry/error.h"
#include "support/fyt.h"

#define MODEL_DIR FERRY_FIXTURES_DIR "/wan-tiny/model"

static const char *const sample =
    "{\n"
    "  \"_class_name\": \"WanTransformer3DModel\",\n"
    "  \"num_layers\": 2,\n"
    "  \"eps\": 1e-06,\n"
    "  \"qk_norm\": \"rms_norm_across_heads\",\n"
    "  \"cross_attn_norm\": true,\n"
    "  \"image_dim\": null,\n"
    "  \"patch_size\": [1, 2, 2],\n"
    "  \"latents_mean\": [-0.75, 0.5],\n"
    "  \"half\": 2.5,\n"
    "  \"as_text\": \"12\",\n"
    "  \"scheduler\": [\"diffusers\", \"UniPCMultistepScheduler\"],\n"
    "  \"transformer_2\": [null, null],\n"
    "  \"bad_pair\": [\"diffusers\"]\n"
    "}\n";

static fy_config *parse_sample(void)
{
    fy_config *c = NULL;
    assert_int_equal(fy_config_parse(sample, "transformer/config.json", &c), FY_OK);
    assert_non_null(c);
    return c;
}

static void assert_message(const char *needle)
{
    if (!strstr(fy_error_message(), needle)) fail_msg("message \"%s\" lacks \"%s\"", fy_error_message(), needle);
}

static void test_typed_lookups(void **state)
{
    (void)state;
    fy_config *c = parse_sample();
    int64_t i;
    double d;
    bool b;
    const char *s;
    assert_int_equal(fy_config_int(c, "num_layers", &i), FY_OK);
    assert_int_equal(i, 2);
    assert_int_equal(fy_config_double(c, "eps", &d), FY_OK);
    assert_true(d == 1e-6);
    assert_int_equal(fy_config_double(c, "num_layers", &d), FY_OK); /* an integer is a number too */
    assert_true(d == 2.0);
    assert_int_equal(fy_config_bool(c, "cross_attn_norm", &b), FY_OK);
    assert_true(b);
    assert_int_equal(fy_config_string(c, "qk_norm", &s), FY_OK);
    assert_string_equal(s, "rms_norm_across_heads");
    assert_true(fy_config_has(c, "eps"));
    assert_false(fy_config_has(c, "image_dim")); /* null counts as absent */
    assert_false(fy_config_has(c, "nope"));
    assert_string_equal(fy_config_path(c), "transformer/config.json");
    fy_config_free(c);
}

static void test_missing_and_wrong_type_messages(void **state)
{
    (void)state;
    fy_config *c = parse_sample();
    int64_t i;
    bool b;
    const char *s;
    assert_int_equal(fy_config_int(c, "num_heads", &i), FY_ERR_NOT_FOUND);
    assert_string_equal(fy_error_message(), "transformer/config.json: missing required key \"num_heads\"");
    assert_int_equal(fy_config_int(c, "image_dim", &i), FY_ERR_NOT_FOUND);
    assert_message("\"image_dim\"");
    assert_int_equal(fy_config_int(c, "as_text", &i), FY_ERR_FORMAT);
    assert_string_equal(fy_error_message(), "transformer/config.json: key \"as_text\" is a string, expected an integer");
    assert_int_equal(fy_config_int(c, "half", &i), FY_ERR_FORMAT);
    assert_message("2.5, expected an integer");
    assert_int_equal(fy_config_bool(c, "num_layers", &b), FY_ERR_FORMAT);
    assert_message("is a number, expected a boolean");
    assert_int_equal(fy_config_string(c, "patch_size", &s), FY_ERR_FORMAT);
    assert_message("is an array, expected a string");
    fy_config_free(c);
}

static void test_defaults(void **state)
{
    (void)state;
    fy_config *c = parse_sample();
    int64_t i;
    double d;
    bool b;
    const char *s;
    assert_int_equal(fy_config_int_or(c, "absent", 7, &i), FY_OK);
    assert_int_equal(i, 7);
    assert_int_equal(fy_config_int_or(c, "image_dim", 9, &i), FY_OK);
    assert_int_equal(i, 9);
    assert_int_equal(fy_config_int_or(c, "num_layers", 7, &i), FY_OK);
    assert_int_equal(i, 2);
    assert_int_equal(fy_config_double_or(c, "absent", 0.5, &d), FY_OK);
    assert_true(d == 0.5);
    assert_int_equal(fy_config_bool_or(c, "absent", true, &b), FY_OK);
    assert_true(b);
    assert_int_equal(fy_config_string_or(c, "absent", "x", &s), FY_OK);
    assert_string_equal(s, "x");
    /* A present value of the wrong type is still an error. */
    assert_int_equal(fy_config_int_or(c, "qk_norm", 1, &i), FY_ERR_FORMAT);
    assert_int_equal(fy_config_bool_or(c, "eps", false, &b), FY_ERR_FORMAT);
    assert_int_equal(fy_config_string_or(c, "eps", "x", &s), FY_ERR_FORMAT);
    assert_int_equal(fy_config_double_or(c, "qk_norm", 1.0, &d), FY_ERR_FORMAT);
    fy_config_free(c);
}

static void test_arrays(void **state)
{
    (void)state;
    fy_config *c = parse_sample();
    int64_t ints[4];
    double dbl[4];
    size_t n = 0;
    assert_int_equal(fy_config_int_array(c, "patch_size", ints, 4, &n), FY_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ints[2], 2);
    assert_int_equal(fy_config_int_array(c, "patch_size", ints, 2, &n), FY_ERR_FORMAT);
    assert_message("at most 2");
    assert_int_equal(fy_config_double_array(c, "latents_mean", dbl, 4, &n), FY_OK);
    assert_int_equal(n, 2);
    assert_true(dbl[0] == -0.75);
    assert_int_equal(fy_config_int_array(c, "latents_mean", ints, 4, &n), FY_ERR_FORMAT);
    assert_message("\"latents_mean\" entry 0 is not an integer");
    assert_int_equal(fy_config_int_array(c, "eps", ints, 4, &n), FY_ERR_FORMAT);
    assert_int_equal(fy_config_int_array(c, "absent", ints, 4, &n), FY_ERR_NOT_FOUND);
    fy_config_free(c);
}

static void test_pairs_and_key_order(void **state)
{
    (void)state;
    fy_config *c = parse_sample();
    const char *lib, *cls;
    assert_int_equal(fy_config_pair(c, "scheduler", &lib, &cls), FY_OK);
    assert_string_equal(lib, "diffusers");
    assert_string_equal(cls, "UniPCMultistepScheduler");
    assert_int_equal(fy_config_pair(c, "transformer_2", &lib, &cls), FY_OK);
    assert_null(lib);
    assert_null(cls);
    assert_int_equal(fy_config_pair(c, "bad_pair", &lib, &cls), FY_ERR_FORMAT);
    assert_int_equal(fy_config_pair(c, "num_layers", &lib, &cls), FY_ERR_FORMAT);
    assert_int_equal(fy_config_key_count(c), 13);
    assert_string_equal(fy_config_key_at(c, 0), "_class_name");
    assert_string_equal(fy_config_key_at(c, 12), "bad_pair");
    assert_null(fy_config_key_at(c, 13));
    fy_config_free(c);
}

static void test_bad_text(void **state)
{
    (void)state;
    fy_config *c = (fy_config *)1;
    assert_int_equal(fy_config_parse("{\n  \"a\": 1,\n  \"b\": }\n", "x.json", &c), FY_ERR_FORMAT);
    assert_null(c);
    assert_message("x.json: not JSON");
    assert_message("line 3");
    assert_int_equal(fy_config_parse("", "e.json", &c), FY_ERR_FORMAT);
    assert_message("empty");
    assert_int_equal(fy_config_parse("[1, 2]", "arr.json", &c), FY_ERR_FORMAT);
    assert_message("arr.json: expected a JSON object");
    assert_int_equal(fy_config_parse("{} {}", "two.json", &c), FY_ERR_FORMAT);
    assert_message("trailing data");
    assert_int_equal(fy_config_parse("{\"a\": 1, \"a\": 2}", "dup.json", &c), FY_ERR_FORMAT);
    assert_message("\"a\" appears twice");
    assert_int_equal(fy_config_parse(NULL, "n.json", &c), FY_ERR_INVALID);
}

static void test_load_fixture_configs(void **state)
{
    (void)state;
    fy_config *c = NULL;
    assert_int_equal(fy_config_load(MODEL_DIR "/transformer/config.json", &c), FY_OK);
    int64_t patch[3];
    size_t n;
    assert_int_equal(fy_config_int_array(c, "patch_size", patch, 3, &n), FY_OK);
    assert_int_equal(n, 3);
    fy_config_free(c);
    assert_int_equal(fy_config_load(MODEL_DIR "/scheduler/scheduler_config.json", &c), FY_OK);
    double shift;
    assert_int_equal(fy_config_double(c, "flow_shift", &shift), FY_OK);
    assert_true(shift == 3.0);
    fy_config_free(c);
    assert_int_equal(fy_config_load(MODEL_DIR "/model_index.json", &c), FY_OK);
    const char *cls;
    assert_int_equal(fy_config_string(c, "_class_name", &cls), FY_OK);
    assert_string_equal(cls, "WanPipeline");
    fy_config_free(c);
}

static void test_load_bad_files(void **state)
{
    (void)state;
    char *dir = fyt_temp_dir();
    assert_non_null(dir);
    fy_config *c = NULL;
    char *missing = fyt_path(dir, "missing.json");
    assert_int_equal(fy_config_load(missing, &c), FY_ERR_NOT_FOUND);
    assert_message(missing);

    char *bad = fyt_path(dir, "bad.json");
    assert_int_equal(fyt_write_file(bad, "{\"num_layers\": 2,,}", 19), 0);
    assert_int_equal(fy_config_load(bad, &c), FY_ERR_FORMAT);
    assert_message(bad);
    assert_message("not JSON");
    assert_message("column");

    char *binary = fyt_path(dir, "binary.json");
    assert_int_equal(fyt_write_file(binary, "{\0}", 3), 0);
    assert_int_equal(fy_config_load(binary, &c), FY_ERR_FORMAT);
    assert_message("not JSON");

    /* A sparse 17 MiB file: refused from its size, never read. */
    char *huge = fyt_path(dir, "huge.json");
    int fd = open(huge, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 17 << 20), 0);
    close(fd);
    assert_int_equal(fy_config_load(huge, &c), FY_ERR_FORMAT);
    assert_message("too large");

    assert_int_equal(fy_config_load(dir, &c), FY_ERR_IO); /* a folder */
    assert_null(c);
    free(missing);
    free(bad);
    free(binary);
    free(huge);
    fyt_remove_tree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_typed_lookups),
        cmocka_unit_test(test_missing_and_wrong_type_messages),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_arrays),
        cmocka_unit_test(test_pairs_and_key_order),
        cmocka_unit_test(test_bad_text),
        cmocka_unit_test(test_load_fixture_configs),
        cmocka_unit_test(test_load_bad_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
