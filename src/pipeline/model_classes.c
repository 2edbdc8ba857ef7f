/* The component classes each pipeline runs (see pipeline/model_classes.h).
 * A pipeline is a list of rows; a new pipeline or component is a row. */
#include "pipeline/model_classes.h"

#include <stdio.h>
#include <string.h>

#define MAX_CLASSES 4

typedef struct component_row {
    const char *pipeline;  /* model_index.json's _class_name */
    const char *component; /* its key */
    const char *library;
    /* The classes accepted, as diffusers and transformers write them; none:
     * the entry must be [null, null] (why says what is missing). */
    const char *classes[MAX_CLASSES];
    const char *why;
} component_row;

static const component_row rows[] = {
    {"WanPipeline", "tokenizer", "transformers", {"T5Tokenizer", "T5TokenizerFast", "AutoTokenizer"}, NULL},
    {"WanPipeline", "text_encoder", "transformers", {"UMT5EncoderModel"}, NULL},
    {"WanPipeline", "transformer", "diffusers", {"WanTransformer3DModel"}, NULL},
    {"WanPipeline", "transformer_2", "diffusers", {"WanTransformer3DModel"}, NULL},
    {"WanPipeline", "vae", "diffusers", {"AutoencoderKLWan"}, NULL},
    {"WanPipeline", "scheduler", "diffusers", {"UniPCMultistepScheduler", "FlowMatchEulerDiscreteScheduler"}, NULL},
    {"FluxPipeline", "tokenizer", "transformers", {"CLIPTokenizer", "CLIPTokenizerFast"}, NULL},
    {"FluxPipeline", "tokenizer_2", "transformers", {"T5Tokenizer", "T5TokenizerFast"}, NULL},
    {"FluxPipeline", "text_encoder", "transformers", {"CLIPTextModel"}, NULL},
    {"FluxPipeline", "text_encoder_2", "transformers", {"T5EncoderModel"}, NULL},
    {"FluxPipeline", "transformer", "diffusers", {"FluxTransformer2DModel"}, NULL},
    {"FluxPipeline", "vae", "diffusers", {"AutoencoderKL"}, NULL},
    {"FluxPipeline", "scheduler", "diffusers", {"FlowMatchEulerDiscreteScheduler"}, NULL},
    {"WanImageToVideoPipeline", "tokenizer", "transformers", {"T5Tokenizer", "T5TokenizerFast", "AutoTokenizer"},
     NULL},
    {"WanImageToVideoPipeline", "text_encoder", "transformers", {"UMT5EncoderModel"}, NULL},
    {"WanImageToVideoPipeline", "image_encoder", "transformers", {"CLIPVisionModel"}, NULL},
    {"WanImageToVideoPipeline", "image_processor", "transformers", {"CLIPImageProcessor"}, NULL},
    {"WanImageToVideoPipeline", "transformer", "diffusers", {"WanTransformer3DModel"}, NULL},
    {"WanImageToVideoPipeline", "transformer_2", "diffusers", {"WanTransformer3DModel"}, NULL},
    {"WanImageToVideoPipeline", "vae", "diffusers", {"AutoencoderKLWan"}, NULL},
    {"WanImageToVideoPipeline", "scheduler", "diffusers",
     {"UniPCMultistepScheduler", "FlowMatchEulerDiscreteScheduler"}, NULL},
};

#define ROW_COUNT (sizeof rows / sizeof rows[0])

static const component_row *find_row(const char *pipeline, const char *component)
{
    for (size_t i = 0; i < ROW_COUNT; i++)
        if (strcmp(rows[i].pipeline, pipeline) == 0 && strcmp(rows[i].component, component) == 0) return &rows[i];
    return NULL;
}

static bool row_accepts(const component_row *r, const char *library, const char *class_name)
{
    if (strcmp(r->library, library) != 0) return false;
    for (int i = 0; i < MAX_CLASSES && r->classes[i]; i++)
        if (strcmp(r->classes[i], class_name) == 0) return true;
    return false;
}

static void list_classes(const component_row *r, char *buf, size_t size)
{
    buf[0] = '\0';
    for (int i = 0, used = 0; i < MAX_CLASSES && r->classes[i]; i++) {
        int n = snprintf(buf + used, size - (size_t)used, "%s%s", i ? " or " : "", r->classes[i]);
        if (n < 0 || (size_t)(used + n) >= size) break;
        used += n;
    }
}

static fy_status check_component(const fy_model *m, const fy_component *c)
{
    const char *pipeline = fy_model_class(m);
    const char *index = fy_config_path(fy_model_index(m));
    const component_row *r = find_row(pipeline, c->name);
    if (!r)
        return fy_error(FY_ERR_UNSUPPORTED, "%s: component \"%s\" ([%s, %s]) is not part of %s as ferry runs it",
                        index, c->name, c->library, c->class_name, pipeline);
    if (!r->classes[0])
        return fy_error(FY_ERR_UNSUPPORTED, "%s: \"%s\" is [%s, %s]: %s (ferry runs %s with it [null, null])", index,
                        c->name, c->library, c->class_name, r->why, pipeline);
    if (row_accepts(r, c->library, c->class_name)) return FY_OK;
    char want[256];
    list_classes(r, want, sizeof want);
    return fy_error(FY_ERR_UNSUPPORTED, "%s: \"%s\" is [%s, %s]; %s's %s must be a %s class: %s", index, c->name,
                    c->library, c->class_name, pipeline, c->name, r->library, want);
}

fy_status fy_model_check_classes(const fy_model *m)
{
    const char *pipeline = fy_model_class(m);
    bool known = false;
    for (size_t i = 0; i < ROW_COUNT && !known; i++) known = strcmp(rows[i].pipeline, pipeline) == 0;
    if (!known)
        return fy_error(FY_ERR_UNSUPPORTED, "%s: pipeline class \"%s\" is not one ferry runs",
                        fy_config_path(fy_model_index(m)), pipeline);
    for (size_t i = 0; i < fy_model_component_count(m); i++)
        FY_TRY(check_component(m, fy_model_component_at(m, i)));
    return FY_OK;
}
