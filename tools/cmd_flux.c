/* `ferry generate` and `ferry plan` for a FluxPipeline folder (FLUX.1-dev,
 * FLUX.1-schnell): an image in, as PNG, written whole or not at all. */
#include <string.h>

#include "cli.h"
#include "ferry/flux_t2i.h"
#include "ferry/log.h"
#include "ferry/video_out.h"

/* The Wan-shaped request the shared flag parser filled, as Flux parameters;
 * sizes, steps and guidance the user did not give take Flux's defaults. */
void cli_flux_params(const fy_wan_t2v_params *w, const cli_given *given, fy_flux_params *p)
{
    fy_flux_params_init(p);
    p->prompt = w->prompt;
    if (given->height) p->height = w->height;
    if (given->width) p->width = w->width;
    if (given->steps) p->steps = w->steps;
    if (given->guidance) p->guidance_scale = w->guidance_scale;
    if (given->max_sequence_length) p->max_sequence_length = w->max_sequence_length;
    p->seed = w->seed;
}

int cli_flux_generate(const char *model_dir, const char *output, const fy_flux_params *p, const fy_run_options *o)
{
    int rc = cli_check_outputs(output, 1, o);
    if (rc) return rc;
    fy_video_format fmt;
    if (fy_video_format_for_path(output, 1, &fmt) != FY_OK || fmt != FY_VIDEO_PNG)
        return cli_usage_error("generate", "--output %s: Flux writes one image: give a .png path", output);
    fy_flux_result r;
    if (fy_flux_t2i_run(model_dir, o, p, &r) != FY_OK) return cli_fail();
    if (cli_rank() != 0) { /* every rank computed the same image: rank 0 writes it */
        fy_flux_result_free(&r);
        return 0;
    }
    fy_status s = fy_video_write(output, r.image, 1, (int)r.height, (int)r.width, 1, FY_VIDEO_PNG);
    if (s == FY_OK) fy_info("wrote %s (%lldx%lld, %.1f s)", output, (long long)r.width, (long long)r.height, r.seconds);
    fy_flux_result_free(&r);
    return s == FY_OK ? 0 : cli_fail();
}

int cli_flux_plan(const char *model_dir, const fy_flux_params *p, const fy_run_options *o)
{
    return fy_flux_t2i_plan(model_dir, o, p, stdout) == FY_OK ? 0 : cli_fail();
}
