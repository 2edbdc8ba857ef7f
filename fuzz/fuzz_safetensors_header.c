/* libFuzzer: any bytes as a whole safetensors file. Opening must either fail
 * with a message or give tensors whose every byte is inside the input. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ferry/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fy_st_file *f;
    if (fy_st_open_memory(data, size, "fuzz.safetensors", &f) != FY_OK) {
        if (fy_error_message()[0] == '\0') __builtin_trap();
        return 0;
    }
    uint8_t acc = 0;
    for (size_t i = 0; i < fy_st_count(f); i++) {
        const fy_st_info *t = fy_st_at(f, i);
        if (fy_st_find(f, t->name) != t) __builtin_trap();
        const volatile uint8_t *p = t->data;
        if ((const uint8_t *)p < data || (const uint8_t *)p + t->nbytes > data + size) __builtin_trap();
        /* Volatile reads of the first and last byte, so ASan checks the bounds. */
        if (t->nbytes) acc ^= p[0] ^ p[t->nbytes - 1];
        fy_tensor v;
        if (fy_st_view(f, t->name, &v) == FY_OK && v.data != t->data) __builtin_trap();
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
