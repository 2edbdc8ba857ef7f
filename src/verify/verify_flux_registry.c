/* The Flux components `ferry verify` knows, in the order they run (a NULL
 * run: known by name, not implemented in this build yet). */
#include "verify/verify_flux.h"

#include <cjson/cJSON.h>
#include <string.h>

static const fy_verifier registry[] = {
    {"tokenizer", "tokenizer.safetensors", fy_verify_flux_tokenizer, NULL},
    {"tokenizer_2", "tokenizer_2.safetensors", fy_verify_flux_tokenizer_2, NULL},
    {"text_encoder", "text_encoder.safetensors", fy_verify_flux_text_encoder, NULL},
    {"text_encoder_2", "text_encoder_2.safetensors", fy_verify_flux_text_encoder_2, NULL},
    {"transformer", NULL, fy_verify_flux_transformer, NULL},
    {"vae", "vae.safetensors", fy_verify_flux_vae, NULL},
    {"scheduler", NULL, fy_verify_flux_scheduler, NULL},
    {"pipeline", NULL, fy_verify_flux_pipeline, NULL},
};

bool fy_verify_is_flux(const fy_model *m)
{
    const char *cls = m ? fy_model_class(m) : NULL;
    return cls && !strcmp(cls, "FluxPipeline");
}

bool fy_flux_is_schnell(const fy_model *m)
{
    const fy_component *c = m ? fy_model_component(m, "transformer") : NULL;
    bool guidance = true;
    if (!c || !c->config || fy_config_bool_or(c->config, "guidance_embeds", false, &guidance) != FY_OK) {
        fy_error_clear();
        return false;
    }
    return !guidance;
}

const fy_verifier *fy_flux_verifiers(size_t *count)
{
    if (count) *count = sizeof registry / sizeof registry[0];
    return registry;
}

fy_status fy_flux_fixture_info(const fy_st_file *f, cJSON **out)
{
    const char *text = fy_st_metadata(f, "info");
    if (!text) return fy_error(FY_ERR_FORMAT, "%s: no \"info\" entry in __metadata__", fy_st_path(f));
    *out = cJSON_Parse(text);
    if (!*out) return fy_error(FY_ERR_FORMAT, "%s: __metadata__ info is not JSON", fy_st_path(f));
    return FY_OK;
}

fy_status fy_flux_open_fixture(fy_verify_ctx *ctx, const char *file, fy_st_file **out)
{
    char path[4096];
    *out = NULL;
    if (snprintf(path, sizeof path, "%s/%s", ctx->fixture_dir, file) >= (int)sizeof path)
        return fy_error(FY_ERR_INVALID, "%s: fixture path too long", ctx->fixture_dir);
    return fy_st_open(path, out);
}
