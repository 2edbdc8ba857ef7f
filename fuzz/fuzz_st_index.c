/* libFuzzer: any bytes as a sharded checkpoint's
 * diffusion_pytorch_model.safetensors.index.json, beside the shards of
 * FERRY_FUZZ_SHARDS (a folder; symlinked in once). Opening must fail with a
 * message or give a set whose every tensor is found by name. */
#include <stdint.h>
#include <stdlib.h>

#include "ferry/safetensors.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INDEX "diffusion_pytorch_model.safetensors.index.json"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int linked;
    if (!linked) {
        fuzz_mkdir("ckpt");
        fuzz_link_files(getenv("FERRY_FUZZ_SHARDS"), ".safetensors", "ckpt");
        linked = 1;
    }
    fuzz_write("ckpt/" INDEX, data, size);
    char path[1024];
    fuzz_path(path, sizeof path, "ckpt/" INDEX);
    fy_st_set *s = NULL;
    if (fy_st_set_open(path, &s) != FY_OK) {
        if (fy_error_message()[0] == '\0') __builtin_trap();
        return 0;
    }
    for (size_t i = 0; i < fy_st_set_count(s); i++) {
        const fy_st_info *t = fy_st_set_at(s, i);
        if (fy_st_set_find(s, t->name) != t || !fy_st_set_file_of(s, t->name)) __builtin_trap();
    }
    fy_st_set_free(s);
    return 0;
}
