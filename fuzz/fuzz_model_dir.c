/* libFuzzer: a whole Wan model folder's JSON files from one input, split at
 * NUL bytes in this order: model_index.json, transformer/config.json,
 * vae/config.json, scheduler/scheduler_config.json, text_encoder/config.json
 * (missing parts are left empty). The weights and the tokenizer are the ones
 * of FERRY_FUZZ_MODEL (a model folder; symlinked in once). Opening the
 * folder, checking a request against it and planning a run on the emulated
 * device must end in success or one message; no crash, hang or leak. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/model.h"
#include "ferry/options.h"
#include "ferry/wan_t2v.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const parts[] = {"model/model_index.json", "model/transformer/config.json",
                                    "model/vae/config.json", "model/scheduler/scheduler_config.json",
                                    "model/text_encoder/config.json"};
#define PART_COUNT (sizeof parts / sizeof parts[0])

static void set_up(void)
{
    static const char *const folders[] = {"model", "model/transformer", "model/vae", "model/scheduler",
                                          "model/text_encoder", "model/tokenizer"};
    for (size_t i = 0; i < sizeof folders / sizeof folders[0]; i++) fuzz_mkdir(folders[i]);
    const char *model = getenv("FERRY_FUZZ_MODEL");
    if (!model) return;
    static const char *const comps[] = {"transformer", "vae", "text_encoder", "tokenizer"};
    char src[1024], dst[64];
    for (size_t i = 0; i < sizeof comps / sizeof comps[0]; i++) {
        snprintf(src, sizeof src, "%s/%s", model, comps[i]);
        snprintf(dst, sizeof dst, "model/%s", comps[i]);
        fuzz_link_files(src, ".safetensors", dst);
        fuzz_link_files(src, ".model", dst);
    }
}

static void check(fy_status s)
{
    if (s != FY_OK && fy_error_message()[0] == '\0') __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        set_up();
        ready = 1;
    }
    if (size > 1 << 16) return 0;
    size_t start = 0;
    for (size_t i = 0; i < PART_COUNT; i++) {
        const uint8_t *end = start < size ? memchr(data + start, 0, size - start) : NULL;
        size_t len = start < size ? (end ? (size_t)(end - (data + start)) : size - start) : 0;
        fuzz_write(parts[i], data + start, len);
        start += len + 1;
    }
    char dir[1024];
    fuzz_path(dir, sizeof dir, "model");
    fy_model *m = NULL;
    fy_status s = fy_model_open(dir, &m);
    check(s);
    if (s != FY_OK) return 0;
    fy_model_free(m);
    fy_wan_t2v_params p;
    fy_wan_t2v_params_init(&p);
    p.prompt = "a fox";
    p.height = p.width = 16;
    p.num_frames = 1;
    p.steps = 2;
    p.max_sequence_length = 8;
    s = fy_wan_t2v_check(dir, &p);
    check(s);
    if (s != FY_OK) return 0;
    fy_run_options o;
    fy_run_options_init(&o);
    o.device = FY_DEVICE_EMU;
    FILE *sink = fopen("/dev/null", "w");
    if (!sink) abort();
    check(fy_wan_t2v_plan(dir, &o, &p, sink));
    fclose(sink);
    return 0;
}
