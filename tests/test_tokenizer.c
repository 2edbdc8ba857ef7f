/* The tokenizer against the golden fixtures: the seven tokenizer cases and
 * the pipeline's padded, truncated prompt ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/safetensors.h"
#include "ferry/tokenizer.h"

#define FIXTURES FERRY_FIXTURES_DIR "/wan-tiny/fixtures"
#define TOKENIZER_DIR FERRY_FIXTURES_DIR "/wan-tiny/model/tokenizer"

static fy_tokenizer *load_tokenizer(void)
{
    fy_tokenizer *tok = NULL;
    fy_status s = fy_tokenizer_load(TOKENIZER_DIR, &tok);
    if (s != FY_OK) fail_msg("%s", fy_error_message());
    return tok;
}

static const fy_st_info *find_i64(const fy_st_file *f, const char *name)
{
    const fy_st_info *info = fy_st_find(f, name);
    if (!info) fail_msg("%s: no tensor %s", fy_st_path(f), name);
    assert_int_equal(info->dtype, FY_I64);
    assert_int_equal(info->ndim, 1);
    return info;
}

static cJSON *parse_info(const fy_st_file *f)
{
    const char *text = fy_st_metadata(f, "info");
    assert_non_null(text);
    cJSON *info = cJSON_Parse(text);
    assert_non_null(info);
    return info;
}

static void expect_ids(const char *label, const int64_t *ours, int n_ours, const fy_st_info *ref)
{
    int64_t n = ref->shape[0];
    const int64_t *want = ref->data;
    if (n_ours != n) fail_msg("%s: %d tokens, expected %lld", label, n_ours, (long long)n);
    for (int64_t i = 0; i < n; i++)
        if (ours[i] != want[i])
            fail_msg("%s: token %lld is %lld, expected %lld", label, (long long)i, (long long)ours[i],
                     (long long)want[i]);
}

static void test_fixture_cases(void **state)
{
    (void)state;
    fy_tokenizer *tok = load_tokenizer();
    fy_st_file *f = NULL;
    assert_int_equal(fy_st_open(FIXTURES "/tokenizer.safetensors", &f), FY_OK);
    cJSON *info = parse_info(f);
    cJSON *cases = cJSON_GetObjectItem(info, "cases");
    assert_true(cJSON_IsArray(cases));
    assert_int_equal(cJSON_GetArraySize(cases), 7);
    int i = 0;
    for (cJSON *c = cases->child; c; c = c->next, i++) {
        const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(c, "text"));
        assert_non_null(text);
        char name[64];
        snprintf(name, sizeof name, "case%d.input_ids", i);
        const fy_st_info *ref = find_i64(f, name);
        int64_t ids[128], mask[128];
        int n_real = -1, n_dropped = -1;
        assert_int_equal(fy_tokenizer_encode(tok, text, 128, ids, mask, &n_real, &n_dropped), FY_OK);
        assert_int_equal(n_dropped, 0);
        expect_ids(name, ids, n_real, ref);
        for (int j = 0; j < 128; j++) {
            assert_int_equal(mask[j], j < n_real);
            if (j >= n_real) assert_int_equal(ids[j], 0);
        }
    }
    cJSON_Delete(info);
    fy_st_close(f);
    fy_tokenizer_free(tok);
}

/* prompt_cleaned is what WanPipeline's prompt_clean (ftfy, html unescape,
 * whitespace) produced; the tokenizer sees that string. */
static void check_pipeline_prompt(const fy_st_file *f, cJSON *info, fy_tokenizer *tok, const char *key,
                                  const char *tensor_prefix, int expect_dropped)
{
    int max_len = cJSON_GetObjectItem(info, "max_sequence_length")->valueint;
    const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(info, key));
    assert_non_null(text);
    char name[64];
    snprintf(name, sizeof name, "%s.input_ids", tensor_prefix);
    const fy_st_info *ids_ref = find_i64(f, name);
    snprintf(name, sizeof name, "%s.attention_mask", tensor_prefix);
    const fy_st_info *mask_ref = find_i64(f, name);
    assert_int_equal(ids_ref->shape[0], max_len);

    int64_t *ids = calloc((size_t)max_len, sizeof *ids), *mask = calloc((size_t)max_len, sizeof *mask);
    int n_real = 0, n_dropped = -1;
    assert_int_equal(fy_tokenizer_encode(tok, text, max_len, ids, mask, &n_real, &n_dropped), FY_OK);
    expect_ids(tensor_prefix, ids, max_len, ids_ref);
    expect_ids(tensor_prefix, mask, max_len, mask_ref);
    if (expect_dropped >= 0) assert_int_equal(n_dropped, expect_dropped);
    free(ids);
    free(mask);
}

static void test_pipeline_prompts(void **state)
{
    (void)state;
    fy_tokenizer *tok = load_tokenizer();
    fy_st_file *f = NULL;
    assert_int_equal(fy_st_open(FIXTURES "/pipeline.safetensors", &f), FY_OK);
    cJSON *info = parse_info(f);
    /* The prompt has 18 content tokens: 3 are cut to fit 15 + </s> in 16. */
    check_pipeline_prompt(f, info, tok, "prompt_cleaned", "prompt", 3);
    check_pipeline_prompt(f, info, tok, "negative_prompt_cleaned", "negative_prompt", 0);
    cJSON_Delete(info);
    fy_st_close(f);
    fy_tokenizer_free(tok);
}

static void test_truncation_edges(void **state)
{
    (void)state;
    fy_tokenizer *tok = load_tokenizer();
    int64_t ids[4], mask[4];
    int n_real, n_dropped;
    assert_int_equal(fy_tokenizer_encode(tok, "a cat", 1, ids, mask, &n_real, &n_dropped), FY_OK);
    assert_int_equal(n_real, 1);
    assert_int_equal(ids[0], fy_tokenizer_eos_id(tok));
    assert_int_equal(n_dropped, 2);
    assert_int_equal(fy_tokenizer_encode(tok, "a cat", 0, ids, mask, &n_real, &n_dropped), FY_ERR_INVALID);
    /* Literal special tokens map to their ids, as transformers' added tokens;
     * a trailing </s> is not doubled. */
    assert_int_equal(fy_tokenizer_encode(tok, "a cat</s>", 4, ids, mask, &n_real, &n_dropped), FY_OK);
    assert_int_equal(n_real, 3);
    assert_int_equal(ids[0], 75);
    assert_int_equal(ids[1], 70);
    assert_int_equal(ids[2], 1);
    assert_int_equal(ids[3], 0);
    assert_int_equal(fy_tokenizer_encode(tok, "<pad>a", 4, ids, NULL, &n_real, NULL), FY_OK);
    assert_int_equal(n_real, 3);
    assert_int_equal(ids[0], 0);
    assert_int_equal(ids[1], 75);
    assert_int_equal(fy_tokenizer_vocab_size(tok), 320);
    assert_int_equal(fy_tokenizer_pad_id(tok), 0);
    fy_tokenizer_free(tok);
}

static void test_missing_and_corrupt(void **state)
{
    (void)state;
    fy_tokenizer *tok = NULL;
    assert_int_equal(fy_tokenizer_load(FERRY_FIXTURES_DIR "/wan-tiny/model/vae", &tok), FY_ERR_NOT_FOUND);
    assert_null(tok);
    assert_non_null(strstr(fy_error_message(), "vae/spiece.model"));

    char dir[] = "/tmp/ferry_tok_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/spiece.model", dir);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs("this is not a protobuf \xff\xff\xff\xff", fp);
    fclose(fp);
    assert_int_equal(fy_tokenizer_load(dir, &tok), FY_ERR_FORMAT);
    assert_null(tok);
    assert_non_null(strstr(fy_error_message(), path));
    remove(path);
    remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_cases),
        cmocka_unit_test(test_pipeline_prompts),
        cmocka_unit_test(test_truncation_edges),
        cmocka_unit_test(test_missing_and_corrupt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
