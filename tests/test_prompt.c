/* Prompt cleaning: the fixture's prompts exactly as diffusers cleaned them,
 * then each ftfy / html / whitespace rule on its own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ferry/prompt.h"
#include "ferry/safetensors.h"

static void expect_clean(const char *in, const char *want)
{
    char *got = NULL;
    assert_int_equal(fy_prompt_clean(in, &got), FY_OK);
    if (strcmp(got, want) != 0) fail_msg("prompt_clean(\"%s\") = \"%s\", want \"%s\"", in, got, want);
    free(got);
}

static void expect_unescape(const char *in, const char *want)
{
    char *got = NULL;
    assert_int_equal(fy_html_unescape(in, &got), FY_OK);
    if (strcmp(got, want) != 0) fail_msg("html.unescape(\"%s\") = \"%s\", want \"%s\"", in, got, want);
    free(got);
}

static void test_fixture_prompts(void **state)
{
    (void)state;
    fy_st_file *f = NULL;
    assert_int_equal(fy_st_open(FERRY_FIXTURES_DIR "/wan-tiny/fixtures/pipeline.safetensors", &f), FY_OK);
    const char *info = fy_st_metadata(f, "info");
    assert_non_null(info);
    cJSON *j = cJSON_Parse(info);
    assert_non_null(j);
    static const char *pairs[][2] = {{"prompt", "prompt_cleaned"}, {"negative_prompt", "negative_prompt_cleaned"}};
    for (int i = 0; i < 2; i++) {
        const char *raw = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, pairs[i][0]));
        const char *want = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, pairs[i][1]));
        assert_non_null(raw);
        assert_non_null(want);
        expect_clean(raw, want);
    }
    cJSON_Delete(j);
    fy_st_close(f);
}

static void test_whitespace(void **state)
{
    (void)state;
    expect_clean("  a\t\tb\n\nc  ", "a b c");
    expect_clean("a\r\nb\xE2\x80\xA8" "c", "a b c");                     /* CRLF, U+2028 */
    expect_clean("a\xC2\xA0\xE2\x80\x83" "b\xE3\x80\x80" "c\xE2\x80\xAF" "d", "a b c d"); /* NBSP, em, ideographic, narrow */
    expect_clean("", "");
    expect_clean(" \t\n ", "");
    expect_clean("a\x0b\x0c" "b", "a b"); /* ftfy drops \v; \f is whitespace */
}

static void test_entities(void **state)
{
    (void)state;
    expect_clean("dog &amp; cat", "dog & cat");
    expect_clean("&amp;amp;lt;", "<");          /* ftfy repeats until nothing changes */
    {
        char deep[2048] = "&";
        for (int i = 0; i < 300; i++) strcat(deep, "amp;");
        expect_clean(deep, "&");
    }
    expect_clean("a&nbsp;b", "a b");
    expect_clean("&#39;quoted&#39; &#x41;&#X42;", "'quoted' AB");
    expect_clean("&AMP; &NTILDE;", "& \xC3\x91"); /* ftfy's upper-cased names */
    expect_clean("&copy 2024", "\xC2\xA9 2024"); /* html.unescape's legacy names */
    expect_clean("&notit; &unknown;", "\xC2\xACit; &unknown;");
    /* A line holding '<' turns ftfy's unescaping off for the rest of the text;
     * html.unescape still runs twice. */
    expect_clean("a &amp; b < c\n&amp;amp;amp;", "a & b < c &amp;");
    expect_clean("&amp;amp;amp;\na < b", "& a < b");
}

static void test_ftfy_fixes(void **state)
{
    (void)state;
    expect_clean("\xE2\x80\x9CHello\xE2\x80\x9D \xE2\x80\x98world\xE2\x80\x99 it\xE2\x80\x99s", "\"Hello\" 'world' it's");
    expect_clean("\xEF\xBC\xA1\xEF\xBC\xA2\xEF\xBC\xA3\xEF\xBC\x91\xEF\xBC\x81", "ABC1!"); /* full width */
    expect_clean("\xEF\xAC\x81ne \xEF\xAC\x82ow", "fine flow");                       /* ligatures */
    expect_clean("\xC5\x89", "'n");                                                    /* U+0149 */
    expect_clean("wait\xC2\x85" "done", "wait\xE2\x80\xA6" "done");                    /* C1 U+0085 */
    expect_clean("a\x01" "b\x7f" "c\xEF\xBB\xBF" "d", "abcd");                         /* controls, BOM */
    expect_clean("\x1b[31mred\x1b[0m fox", "red fox");                                 /* terminal escapes */
    expect_clean("\xE4\xB8\x80\xE5\x8F\xAA\xE7\x8B\x90\xE7\x8B\xB8 \xF0\x9F\xA6\x8A",
                 "\xE4\xB8\x80\xE5\x8F\xAA\xE7\x8B\x90\xE7\x8B\xB8 \xF0\x9F\xA6\x8A"); /* CJK, emoji kept */
    expect_clean("caf\xC3\xA9 na\xC3\xAFve", "caf\xC3\xA9 na\xC3\xAFve");
    expect_clean("a\xFF" "b\xC3", "a\xEF\xBF\xBD" "b\xEF\xBF\xBD"); /* bad UTF-8 -> U+FFFD */

    char *fixed = NULL;
    assert_int_equal(fy_ftfy_fix_text("  keep  spaces&amp;  ", &fixed), FY_OK);
    assert_string_equal(fixed, "  keep  spaces&  ");
    free(fixed);
}

/* Python's html.unescape, case by case (each checked against CPython 3.11). */
static void test_html_unescape(void **state)
{
    (void)state;
    expect_unescape("&lt;&gt;&quot;&apos;", "<>\"'");
    expect_unescape("&#0;&#13;&#x80;&#128;", "\xEF\xBF\xBD\r\xE2\x82\xAC\xE2\x82\xAC");
    expect_unescape("&#x110000;&#55296;&#99999999999999999999;", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    expect_unescape("&#1;&#x0b;", "");
    expect_unescape("&#65&#x42", "AB");
    expect_unescape("&#;&#x;& &", "&#;&#x;& &");
    expect_unescape("&ampere;", "&ere;");
    expect_unescape("&fjlig;", "fj");
}

/* unicodedata.normalize("NFC"), and ftfy applying it. */
static void test_nfc(void **state)
{
    (void)state;
    char *got = NULL;
    /* e + U+0301 -> é; Hangul jamo L V T -> one syllable; marks reordered by class. */
    assert_int_equal(fy_unicode_nfc("e\xCC\x81 \xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8 a\xCC\x81\xCC\xA3", &got), FY_OK);
    assert_string_equal(got, "\xC3\xA9 \xEA\xB0\x81 \xE1\xBA\xA1\xCC\x81");
    free(got);
    /* Singletons and excluded composites: U+212B ANGSTROM -> U+00C5, U+0958 stays decomposed. */
    assert_int_equal(fy_unicode_nfc("\xE2\x84\xAB \xE0\xA5\x98", &got), FY_OK);
    assert_string_equal(got, "\xC3\x85 \xE0\xA4\x95\xE0\xA4\xBC");
    free(got);
    expect_clean("cafe\xCC\x81", "caf\xC3\xA9");
}

static void test_null_input(void **state)
{
    (void)state;
    char *out = NULL;
    assert_int_equal(fy_prompt_clean(NULL, &out), FY_ERR_INVALID);
    assert_null(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_prompts), cmocka_unit_test(test_whitespace),
        cmocka_unit_test(test_entities),        cmocka_unit_test(test_ftfy_fixes),
        cmocka_unit_test(test_html_unescape),   cmocka_unit_test(test_nfc),
        cmocka_unit_test(test_null_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
