/* libFuzzer: any bytes as a tokenizer folder's spiece.model. Loading must
 * fail with a message or give a tokenizer that encodes a prompt. */
#include <stdint.h>
#include <stdlib.h>

#include "ferry/tokenizer.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write("spiece.model", data, size);
    fy_tokenizer *tok = NULL;
    if (fy_tokenizer_load(fuzz_dir(), &tok) != FY_OK) {
        if (fy_error_message()[0] == '\0') __builtin_trap();
        return 0;
    }
    int64_t ids[32], mask[32];
    int real = 0, dropped = 0;
    fy_tokenizer_encode(tok, "A red fox </s> runs through fresh snow", 32, ids, mask, &real, &dropped);
    fy_tokenizer_free(tok);
    return 0;
}
