/* libFuzzer: any bytes as a whole GGUF file. Opening must either fail with a
 * message or give tensors whose every byte is inside the input; quantised
 * ones are decoded (fy_st_set_view_f32's path) so ASan checks the blocks. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/quant_gguf.h"
#include "ferry/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Decoding a large tensor teaches the fuzzer nothing more than its first blocks. */
#define MAX_BLOCKS 64

static void decode(const fy_st_info *t)
{
    if (!fy_dtype_is_quant(t->dtype)) return;
    int64_t blocks = (int64_t)(t->nbytes / fy_dtype_block_bytes(t->dtype));
    if (blocks > MAX_BLOCKS) blocks = MAX_BLOCKS;
    float *out = malloc((size_t)(blocks ? blocks : 1) * fy_dtype_block(t->dtype) * sizeof(float));
    if (!out) return;
    fy_gguf_dequantize_blocks(out, t->data, t->dtype, blocks);
    int64_t at = 0;
    (void)fy_gguf_find_nonfinite(t->data, t->dtype, blocks, &at);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fy_st_file *f;
    if (fy_st_open_memory(data, size, "fuzz.gguf", &f) != FY_OK) {
        if (fy_error_message()[0] == '\0') __builtin_trap();
        return 0;
    }
    uint8_t acc = 0;
    for (size_t i = 0; i < fy_st_count(f); i++) {
        const fy_st_info *t = fy_st_at(f, i);
        if (fy_st_find(f, t->name) != t) __builtin_trap();
        const volatile uint8_t *p = t->data;
        if ((const uint8_t *)p < data || (const uint8_t *)p + t->nbytes > data + size) __builtin_trap();
        if (t->nbytes) acc ^= p[0] ^ p[t->nbytes - 1];
        decode(t);
        fy_tensor v;
        if (fy_st_view(f, t->name, &v) == FY_OK && (v.data != t->data || fy_tensor_nbytes(&v) != t->nbytes))
            __builtin_trap();
    }
    for (size_t i = 0; i < fy_st_metadata_count(f); i++) {
        const char *key = fy_st_metadata_key(f, i);
        if (!fy_st_metadata(f, key)) __builtin_trap();
        acc ^= (uint8_t)strlen(key);
    }
    (void)acc;
    fy_st_close(f);
    return 0;
}
