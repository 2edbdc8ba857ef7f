/* libFuzzer: any bytes as model_index.json beside the components of
 * FERRY_FUZZ_MODEL (a model folder; its component folders symlinked in
 * once). Opening the folder and checking its component classes must end in
 * success or one message. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ferry/model.h"
#include "fuzz_util.h"
#include "pipeline/model_classes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void set_up(void)
{
    fuzz_mkdir("index");
    const char *model = getenv("FERRY_FUZZ_MODEL");
    static const char *const comps[] = {"transformer", "vae", "text_encoder", "tokenizer", "scheduler"};
    for (size_t i = 0; model && i < sizeof comps / sizeof comps[0]; i++) {
        char src[1024], dst[1024];
        snprintf(src, sizeof src, "%s/%s", model, comps[i]);
        fuzz_path(dst, sizeof dst, "index/");
        snprintf(dst + strlen(dst), sizeof dst - strlen(dst), "%s", comps[i]);
        if (symlink(src, dst) != 0 && access(dst, F_OK) != 0) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        set_up();
        ready = 1;
    }
    fuzz_write("index/model_index.json", data, size);
    char dir[1024];
    fuzz_path(dir, sizeof dir, "index");
    fy_model *m = NULL;
    fy_status s = fy_model_open(dir, &m);
    if (s == FY_OK) s = fy_model_check_classes(m);
    if (s != FY_OK && fy_error_message()[0] == '\0') __builtin_trap();
    fy_model_free(m);
    return 0;
}
