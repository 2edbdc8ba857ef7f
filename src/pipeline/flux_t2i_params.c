/* An image's settings by name, for bindings: the video settings' parser
 * (one set of names, aliases, range checks and messages), then the Flux
 * fields copied out of it. */
#include <stdlib.h>
#include <string.h>

#include "ferry/flux_t2i.h"
#include "ferry/wan_t2v.h"

static const char *const flux_settings[] = {"prompt", "height", "width", "steps", "guidance-scale",
                                            "max-sequence-length", "seed"};

static bool is_flux_setting(const char *canonical)
{
    for (size_t i = 0; i < sizeof flux_settings / sizeof flux_settings[0]; i++)
        if (!strcmp(flux_settings[i], canonical)) return true;
    return false;
}

fy_status fy_flux_params_set(fy_flux_params *p, const char *name, const char *value)
{
    if (!p || !name) return fy_error(FY_ERR_INVALID, "fy_flux_params_set: NULL params or name");
    const char *canonical = fy_wan_t2v_param_canonical(name);
    if (canonical && !strcmp(canonical, "negative-prompt"))
        return fy_error(FY_ERR_INVALID, "negative_prompt: FluxPipeline has no negative prompt (true CFG is not "
                        "implemented)");
    if (!canonical || !is_flux_setting(canonical))
        return fy_error(FY_ERR_INVALID, "unknown image setting \"%s\" (Flux takes prompt, height, width, steps, "
                        "guidance_scale, max_sequence_length, seed)", name);
    fy_wan_t2v_params w;
    fy_wan_t2v_params_init(&w);
    FY_TRY(fy_wan_t2v_params_set(&w, name, value));
    if (!strcmp(canonical, "prompt")) p->prompt = w.prompt;
    else if (!strcmp(canonical, "height")) p->height = w.height;
    else if (!strcmp(canonical, "width")) p->width = w.width;
    else if (!strcmp(canonical, "steps")) p->steps = w.steps;
    else if (!strcmp(canonical, "guidance-scale")) p->guidance_scale = w.guidance_scale;
    else if (!strcmp(canonical, "max-sequence-length")) p->max_sequence_length = w.max_sequence_length;
    else p->seed = w.seed;
    return FY_OK;
}

fy_flux_params *fy_flux_params_new(void)
{
    fy_flux_params *p = malloc(sizeof *p);
    if (p) fy_flux_params_init(p);
    else fy_error(FY_ERR_NOMEM, "out of memory for the image settings");
    return p;
}

void fy_flux_params_free(fy_flux_params *p)
{
    free(p);
}
