/* libFuzzer: any bytes as a prompt. Cleaning must succeed and give valid
 * UTF-8 with single spaces between words and none at either end. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/prompt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int valid_utf8(const unsigned char *s)
{
    while (*s) {
        int n = *s < 0x80 ? 0 : (*s & 0xE0) == 0xC0 ? 1 : (*s & 0xF0) == 0xE0 ? 2 : (*s & 0xF8) == 0xF0 ? 3 : -1;
        if (n < 0) return 0;
        for (int i = 1; i <= n; i++)
            if ((s[i] & 0xC0) != 0x80) return 0;
        s += n + 1;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return 0;
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *out = NULL;
    if (fy_prompt_clean(text, &out) != FY_OK) __builtin_trap();
    size_t n = strlen(out);
    if (!valid_utf8((const unsigned char *)out)) __builtin_trap();
    if (n && (out[0] == ' ' || out[n - 1] == ' ' || strstr(out, "  "))) __builtin_trap();
    free(out);
    free(text);
    return 0;
}
