/* `ferry generate` and `ferry plan` for a FluxPipeline folder (FLUX.1-dev,
 * FLUX.1-schnell): an image in, as PNG, written whole or not at all, with
 * the Wan runs' progress bar and stop signals. */
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ferry/flux_t2i.h"
#include "ferry/log.h"
#include "ferry/progress.h"
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

typedef struct flux_ui {
    fy_progress *bar;
    int steps;
    bool quiet;
} flux_ui;

static void on_stage(void *user, const char *stage)
{
    flux_ui *ui = user;
    fy_debug("%s", stage);
    cli_stop_test_hook(stage);
    /* The bar starts with the loop, so the first step's time counts. */
    if (!strcmp(stage, "denoising") && !ui->bar && !ui->quiet && cli_rank() == 0)
        fy_progress_create(stderr, "denoising", "step", ui->steps, NULL, &ui->bar);
}

static void on_step(void *user, int i, int n, double seconds)
{
    flux_ui *ui = user;
    (void)seconds;
    cli_dist_test_hook(i + 2); /* step i + 1 is done: step i + 2 begins */
    if (!ui->bar) return;
    fy_progress_update(ui->bar, i + 1);
    if (i + 1 == n) fy_progress_finish(ui->bar);
}

static bool should_stop(void *user)
{
    (void)user;
    return cli_stop_requested();
}

static bool should_stop_writing(void *user)
{
    cli_stop_test_hook("write");
    return should_stop(user);
}

static fy_status make_image(const char *model_dir, const char *output, const fy_flux_params *p,
                            const fy_run_options *o)
{
    fy_flux_pipeline *pipe = NULL;
    FY_TRY(fy_flux_t2i_open(model_dir, o, &pipe));
    flux_ui ui = {NULL, p->steps ? p->steps : 28, fy_log_get_level() < FY_LOG_INFO};
    fy_flux_hooks hooks = {.user = &ui, .stage = on_stage, .step = on_step, .should_stop = should_stop};
    fy_flux_result r;
    fy_status s = fy_flux_t2i_generate(pipe, p, &hooks, &r);
    fy_progress_free(ui.bar);
    fy_flux_t2i_close(pipe);
    if (s != FY_OK || cli_rank() != 0) { /* every rank computed the same image: rank 0 writes it */
        fy_flux_result_free(&r);
        return s;
    }
    s = fy_flux_t2i_save(output, &r, p, should_stop_writing, NULL);
    if (s == FY_OK) fy_info("wrote %s (%lldx%lld, %.1f s)", output, (long long)r.width, (long long)r.height, r.seconds);
    fy_flux_result_free(&r);
    return s;
}

int cli_flux_generate(const char *model_dir, const char *output, const fy_flux_params *p, const fy_run_options *o)
{
    int rc = cli_check_outputs(output, 1, o);
    if (rc) return rc;
    fy_video_format fmt;
    if (fy_video_format_for_path(output, 1, &fmt) != FY_OK || fmt != FY_VIDEO_PNG)
        return cli_usage_error("generate", "--output %s: Flux writes one image: give a .png path", output);
    cli_stop_install();
    fy_status s = make_image(model_dir, output, p, o);
    rc = s == FY_OK ? 0 : s == FY_ERR_INTERRUPTED && cli_stop_requested() ? cli_stopped() : cli_fail();
    cli_stop_restore();
    return rc;
}

int cli_flux_plan(const char *model_dir, const fy_flux_params *p, const fy_run_options *o)
{
    return fy_flux_t2i_plan(model_dir, o, p, stdout) == FY_OK ? 0 : cli_fail();
}
