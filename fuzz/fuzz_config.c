/* libFuzzer: any bytes as a config.json. Parsing and every lookup must either
 * succeed or fail with a message naming the file; no crash, no leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void need_message(fy_status s)
{
    if (s != FY_OK && strstr(fy_error_message(), "fuzz.json") == NULL) __builtin_trap();
}

static void look_up(const fy_config *c, const char *key)
{
    int64_t i, ia[8];
    double d, da[8];
    bool b, ba[8];
    const char *str, *lib, *cls;
    size_t n;
    need_message(fy_config_int(c, key, &i));
    need_message(fy_config_double(c, key, &d));
    need_message(fy_config_bool(c, key, &b));
    need_message(fy_config_string(c, key, &str));
    need_message(fy_config_int_array(c, key, ia, 8, &n));
    need_message(fy_config_double_array(c, key, da, 8, &n));
    need_message(fy_config_bool_array(c, key, ba, 8, &n));
    need_message(fy_config_int_range(c, key, 1, 64, &i));
    need_message(fy_config_int_range_or(c, key, 8, 1, 64, &i));
    need_message(fy_config_int_array_range(c, key, 1, 64, ia, 3));
    need_message(fy_config_pair(c, key, &lib, &cls));
    need_message(fy_config_string_or(c, key, "x", &str));
    need_message(fy_config_double_or(c, key, 1.0, &d));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 20) return 0;
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    fy_config *c = NULL;
    fy_status s = fy_config_parse(text, "fuzz.json", &c);
    free(text);
    if (s != FY_OK) {
        need_message(s);
        return 0;
    }
    for (size_t i = 0; i < fy_config_key_count(c); i++) look_up(c, fy_config_key_at(c, i));
    /* The keys the models read, present or not. */
    static const char *const keys[] = {"patch_size", "scale_factor_spatial", "dim_mult", "temperal_downsample",
                                       "_class_name", "num_layers", "latents_mean"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) look_up(c, keys[i]);
    fy_config_free(c);
    return 0;
}
