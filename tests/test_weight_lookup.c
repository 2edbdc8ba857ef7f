/* The weight lookup every model shares: a tensor of the shape the config
 * implies comes back as a view; any other shape, rank or dtype is one line
 * naming the file, the tensor, what it holds and what the config implies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ferry/error.h"
#include "ferry/model.h"
#include "models/weight.h"
#include "support/fyt.h"

typedef struct fixture {
    char *dir, *weights;
    fy_model *model;
    const fy_component *net;
} fixture;

static void write_text(const char *dir, const char *name, const char *text)
{
    char *p = fyt_path(dir, name);
    assert_int_equal(fyt_write_file(p, text, strlen(text)), 0);
    free(p);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = fyt_temp_dir();
    write_text(f->dir, "model_index.json", "{\"_class_name\": \"P\", \"net\": [\"diffusers\", \"Net\"]}");
    char *net = fyt_path(f->dir, "net");
    assert_int_equal(mkdir(net, 0755), 0);
    write_text(net, "config.json", "{\"_class_name\": \"Net\"}");
    const char *header = "{\"proj.weight\":{\"dtype\":\"BF16\",\"shape\":[3,2],\"data_offsets\":[0,12]},"
                         "\"proj.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[12,24]},"
                         "\"ids\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[24,48]}}    "; /* 8-byte aligned data */
    size_t size;
    uint8_t *bytes = fyt_st_bytes(header, 48, &size);
    f->weights = fyt_path(net, "diffusion_pytorch_model.safetensors");
    assert_int_equal(fyt_write_file(f->weights, bytes, size), 0);
    free(bytes);
    free(net);
    assert_int_equal(fy_model_open(f->dir, &f->model), FY_OK);
    fy_model_set_check_finite(f->model, false); /* the bytes are a pattern, not real weights */
    f->net = fy_model_component(f->model, "net");
    assert_non_null(f->net);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    fy_model_free(f->model);
    fyt_remove_tree(f->dir);
    free(f->dir);
    free(f->weights);
    free(f);
    return 0;
}

static void test_expected_shapes(void **state)
{
    fixture *f = *state;
    fy_tensor t;
    assert_int_equal(fy_weight_lookup2(f->net, "proj.weight", 3, 2, &t), FY_OK);
    assert_int_equal(t.ndim, 2);
    assert_int_equal(t.dtype, FY_BF16);
    assert_int_equal(fy_weight_lookup2(f->net, "proj.bias", 3, 0, &t), FY_OK);
    int64_t shape[1] = {3};
    assert_int_equal(fy_weight_lookup(f->net, "proj.bias", 1, shape, &t), FY_OK);
    assert_int_equal(t.shape[0], 3);
}

/* Each refusal's message holds the file, the tensor, what it is and what the config implies. */
static void test_refusals(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *name;
        int64_t d0, d1;
        fy_status status;
        const char *got, *want;
    } cases[] = {
        {"proj.weight", 2, 3, FY_ERR_FORMAT, "is bf16 [3, 2]", "float tensor (f32, f16, bf16 or f8) [2, 3]"},
        {"proj.weight", 3, 0, FY_ERR_FORMAT, "is bf16 [3, 2]", "[3]"},
        {"proj.bias", 3, 1, FY_ERR_FORMAT, "is f32 [3]", "[3, 1]"},
        {"ids", 3, 0, FY_ERR_FORMAT, "is i64 [3]", "float tensor"},
        {"missing.weight", 3, 0, FY_ERR_NOT_FOUND, "missing.weight", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fy_tensor t;
        assert_int_equal(fy_weight_lookup2(f->net, cases[i].name, cases[i].d0, cases[i].d1, &t), cases[i].status);
        const char *msg = fy_error_message();
        if (!strstr(msg, cases[i].got) || !strstr(msg, cases[i].want) || !strstr(msg, cases[i].name) ||
            (cases[i].status == FY_ERR_FORMAT && (!strstr(msg, f->weights) || !strstr(msg, "config.json"))) ||
            strchr(msg, '\n'))
            fail_msg("case %zu: message \"%s\"", i, msg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_expected_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
