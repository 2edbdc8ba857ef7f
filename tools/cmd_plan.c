/* `ferry plan`: load a model folder into engines as `ferry generate` would,
 * run nothing, and show the plan: policy, depth, resident blocks, slots, a
 * table of groups with their bytes and tiers, the device bound against the
 * budget, pinned host bytes, and the planner's prediction (--vram-budget). */
#include <string.h>

#include "cli.h"
#include "ferry/options.h"
#include "ferry/wan_t2v.h"

static const char usage[] =
    "usage: ferry plan --model DIR [--height N --width N --num-frames N --max-sequence-length N] [options]\n"
    "\n"
    "Show how the weights would be placed and streamed for a generate run with\n"
    "these sizes and memory options, without running it.\n"
    "\n"
    "  --model DIR                a diffusers Wan (T2V, I2V, Wan2.2) or Flux.1 folder\n"
    "  --image FILE               plan image to video: needed for a Wan2.2 TI2V folder (its image\n"
    "                             mode encodes the image with the VAE); I2V folders plan it always\n"
    "  --height N --width N       pixels, multiples of 16 (default 480 x 832)\n"
    "  --num-frames N             4k+1 frames (default 81)\n"
    "  --max-sequence-length N    text tokens (default 512)\n"
    "  --guidance-scale G         <= 1: no guidance branch (changes activations)\n"
    "  --guidance-scale-2 G       Wan2.2 A14B: the low-noise expert's scale (checked only)\n"
    "\n";

void cli_plan_help(FILE *out)
{
    fputs(usage, out);
    fputs(fy_run_options_help(), out);
}

typedef struct plan_args {
    fy_wan_t2v_params params;
    const char *model;
    cli_given given;
} plan_args;

static const char *const own_flags[] = {"--model", "--image", NULL};

static int take_flag(void *user, const char *arg, const char *value)
{
    plan_args *a = user;
    if (strcmp(arg, "--model") == 0) return a->model = value, 0;
    if (strcmp(arg, "--image") == 0) return a->params.image = value, 0;
    return -1;
}

int cli_plan_main(int argc, char **argv)
{
    fy_run_options o;
    fy_run_options_init(&o);
    plan_args a = {.model = NULL};
    fy_wan_t2v_params_init(&a.params);
    a.params.prompt = "plan"; /* the request check wants one; nothing is encoded */
    int rc = cli_parse_flags("plan", argc, argv, &o, &a.params, &a.given, own_flags, take_flag, &a);
    if (rc) return rc;
    if (!a.model) a.model = o.config_dir;
    if (!a.model) return cli_usage_error("plan", "--model DIR is required (or FILE, or --config DIR with single files)");
    if (o.trace_path)
        return cli_usage_error("plan", "--trace: plan runs nothing, so there is no timeline to write; drop --trace "
                               "(ferry generate --trace FILE records one)");
    if (fy_run_options_validate(&o) != FY_OK) return cli_usage_error("plan", "%s", fy_error_message());
    fy_run_options_default_storage(&o);
    fy_run_options_default_plan(&o);
    rc = cli_dist_start(&o);
    if (rc) return rc;
    if (fy_flux_is_model(a.model, &o)) {
        if (a.params.image)
            return cli_usage_error("plan", "--image %s: %s is a Flux text-to-image model; image input is for Wan "
                                   "image-to-video folders", a.params.image, a.model);
        fy_flux_params fp;
        cli_flux_params(&a.params, &a.given, &fp);
        return cli_flux_plan(a.model, &fp, &o);
    }
    fy_status s = fy_wan_t2v_plan(a.model, &o, &a.params, stdout);
    if (s == FY_ERR_BUDGET) cli_budget_hint(a.model, &o, &a.params);
    if (s != FY_OK) return cli_fail();
    return 0;
}
