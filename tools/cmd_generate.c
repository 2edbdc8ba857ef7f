/* `ferry generate`: a prompt in, a video file out, under the memory options
 * diffusers and FastVideo users know. Ctrl-C stops between steps; the output
 * is written to a temporary name and renamed, so it is whole or absent. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "ferry/collectives.h"
#include "ferry/log.h"
#include "ferry/options.h"
#include "ferry/progress.h"
#include "ferry/video_out.h"
#include "ferry/wan_t2v.h"

static const char usage[] =
    "usage: ferry generate --model DIR --prompt \"...\" --output out.mp4 [options]\n"
    "\n"
    "Wan2.1 and Wan2.2 A14B text to video, Wan2.1 image to video, Flux.1 (dev, schnell) text to image.\n"
    "Defaults follow the model card (Flux: 1024 x 1024, 28 steps, guidance 3.5, a .png output).\n"
    "\n"
    "  --model DIR                a diffusers Wan T2V or I2V folder (Wan-AI/Wan2.1-T2V-1.3B-Diffusers,\n"
    "                             Wan-AI/Wan2.2-T2V-A14B-Diffusers)\n"
    "  --prompt TEXT              what to generate\n"
    "  --negative-prompt TEXT     what to avoid (default: the model card's negative prompt)\n"
    "  --image FILE               image to video (Wan2.1 I2V folders): the first frame, PNG or JPEG,\n"
    "                             any size (resized to --height x --width)\n"
    "  --last-image FILE          first-last-frame to video (FLF2V): not implemented, refused\n"
    "  --output PATH              .mp4 (H.264), .png (one frame or a numbered sequence),\n"
    "                             a path with %%d, or a directory ending in /\n"
    "  --height N --width N       pixels, multiples of 16 (default 480 x 832)\n"
    "  --num-frames N             4k+1 frames (default 81)\n"
    "  --steps N                  denoising steps (default 50)\n"
    "  --guidance-scale G         classifier-free guidance (default 5.0; <= 1 turns it off);\n"
    "                             Flux.1-dev: its distilled guidance (default 3.5; schnell ignores it)\n"
    "  --guidance-scale-2 G       Wan2.2 A14B: the low-noise expert's steps (default: --guidance-scale)\n"
    "  --flow-shift S             override the scheduler's flow_shift (3.0 for 480p, 5.0 for 720p)\n"
    "  --seed N                   noise seed (default 0; torch.manual_seed's stream)\n"
    "  --fps N                    frames per second of the file (default 16)\n"
    "  --max-sequence-length N    prompt tokens (default 512)\n"
    "\n";

void cli_generate_help(FILE *out)
{
    fputs(usage, out);
    fputs(fy_run_options_help(), out);
}

typedef struct generate_args {
    const char *model_dir;
    const char *output;
    int fps;
    fy_wan_t2v_params params;
    fy_run_options options;
    cli_given given;
} generate_args;

/* One generate-specific flag with its value; returns -1 when arg is not one. */
static int take_flag(void *user, const char *arg, const char *value)
{
    generate_args *a = user;
    fy_wan_t2v_params *p = &a->params;
    if (strcmp(arg, "--model") == 0) return a->model_dir = value, 0;
    if (strcmp(arg, "--prompt") == 0) return p->prompt = value, 0;
    if (strcmp(arg, "--negative-prompt") == 0) return p->negative_prompt = value, 0;
    if (strcmp(arg, "--image") == 0) return p->image = value, 0;
    if (strcmp(arg, "--last-image") == 0) return p->last_image = value, 0;
    if (strcmp(arg, "--output") == 0 || strcmp(arg, "-o") == 0) return a->output = value, 0;
    if (strcmp(arg, "--height") == 0)
        return a->given.height = true, cli_int_value("generate", arg, value, 1, 8192, &p->height);
    if (strcmp(arg, "--width") == 0)
        return a->given.width = true, cli_int_value("generate", arg, value, 1, 8192, &p->width);
    if (strcmp(arg, "--num-frames") == 0) return cli_int_value("generate", arg, value, 1, 4096, &p->num_frames);
    if (strcmp(arg, "--steps") == 0)
        return a->given.steps = true, cli_int_value("generate", arg, value, 1, 10000, &p->steps);
    if (strcmp(arg, "--fps") == 0) return cli_int_value("generate", arg, value, 1, 240, &a->fps);
    if (strcmp(arg, "--max-sequence-length") == 0)
        return a->given.max_sequence_length = true,
               cli_int_value("generate", arg, value, 1, 4096, &p->max_sequence_length);
    if (strcmp(arg, "--guidance-scale") == 0)
        return a->given.guidance = true,
               cli_double_range("generate", arg, value, -CLI_GUIDANCE_MAX, CLI_GUIDANCE_MAX, &p->guidance_scale);
    if (strcmp(arg, "--guidance-scale-2") == 0)
        return cli_double_range("generate", arg, value, -CLI_GUIDANCE_MAX, CLI_GUIDANCE_MAX, &p->guidance_scale_2);
    if (strcmp(arg, "--flow-shift") == 0) return cli_double_value("generate", arg, value, &p->flow_shift);
    if (strcmp(arg, "--seed") == 0) return cli_seed_value("generate", value, &p->seed);
    return -1;
}

static int parse_args(generate_args *a, int argc, char **argv)
{
    int rc = cli_parse_flags("generate", argc, argv, &a->options, take_flag, a);
    if (rc) return rc;
    if (!a->model_dir) return cli_usage_error("generate", "--model DIR is required");
    if (!a->params.prompt) return cli_usage_error("generate", "--prompt is required");
    if (!a->output) return cli_usage_error("generate", "--output PATH is required (e.g. out.mp4)");
    if (fy_run_options_validate(&a->options) != FY_OK) return cli_usage_error("generate", "%s", fy_error_message());
    fy_run_options_default_storage(&a->options);
    fy_run_options_default_plan(&a->options);
    return cli_dist_start(&a->options);
}

typedef struct generate_ui {
    fy_progress *loading;
    fy_progress *bar;
    int steps;
} generate_ui;

/* Stages are for -v: the progress bar and the closing report say the rest,
 * and a failing run prints only its one error line. */
static void on_stage(void *user, const char *stage)
{
    generate_ui *ui = user;
    fy_debug("%s", stage);
    cli_stop_test_hook(stage);
    if (cli_rank() != 0) return; /* one progress bar: rank 0's */
    if (strncmp(stage, "loading", 7) == 0) {
        /* A terminal nicety: logs get the closing report's load time instead. */
        if (!isatty(fileno(stderr))) return;
        if (!ui->loading)
            fy_progress_create(stderr, "loading", "part", FY_WAN_T2V_LOAD_STAGES, NULL, &ui->loading);
        else
            fy_progress_step(ui->loading);
        return;
    }
    if (ui->loading) fy_progress_update(ui->loading, FY_WAN_T2V_LOAD_STAGES);
    fy_progress_free(ui->loading);
    ui->loading = NULL;
    /* The bar starts with the loop, so the first step's time counts. */
    if (strcmp(stage, "denoising") == 0 && !ui->bar)
        fy_progress_create(stderr, "denoising", "step", ui->steps, NULL, &ui->bar);
}

static void on_step(void *user, int i, int n, double seconds)
{
    generate_ui *ui = user;
    (void)seconds;
    (void)n;
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

/* Every rank's share of the block weights and its peak RSS, on rank 0's
 * report: FSDP's point is that each holds about 1/N. */
static fy_status report_ranks(const fy_wan_t2v_result *r)
{
    fy_comm *w = fy_dist_world();
    if (!w || fy_comm_size(w) < 2 || r->report.engine.ranks == 0) return FY_OK;
    int n = fy_comm_size(w);
    uint64_t mine[2] = {r->report.engine.shard_bytes, r->report.peak_host_bytes};
    uint64_t *all = calloc((size_t)n, sizeof mine);
    if (!all) return fy_error(FY_ERR_NOMEM, "out of memory");
    fy_status s = fy_comm_all_gather(w, mine, all, sizeof mine);
    if (s == FY_OK && fy_comm_rank(w) == 0) {
        fprintf(stderr, "ranks        block weights held per rank (of %.1f KiB):", (double)r->report.engine.sharded_bytes / 1024.0);
        for (int i = 0; i < n; i++) fprintf(stderr, " %.1f KiB", (double)all[2 * i] / 1024.0);
        fprintf(stderr, "; peak RSS per rank:");
        for (int i = 0; i < n; i++) fprintf(stderr, " %.1f MiB", (double)all[2 * i + 1] / 1048576.0);
        fprintf(stderr, "\n");
    }
    free(all);
    return s;
}

/* "out/" names a folder of frames: it exists as a writable folder, or its
 * parent does (the PNG writer creates it). */
static fy_status check_frame_folder(const char *output)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", output);
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') dir[--len] = '\0';
    struct stat st;
    if (stat(dir, &st) != 0) return fy_check_output_folder("--output", dir);
    if (!S_ISDIR(st.st_mode))
        return fy_error(FY_ERR_IO, "--output %s: %s exists and is not a folder: give a new folder name", output, dir);
    if (access(dir, W_OK | X_OK) != 0)
        return fy_error(FY_ERR_IO, "--output %s: the folder is not writable: give a folder you can write", output);
    return FY_OK;
}

/* Where the video goes: one file replaced whole (.mp4, a single .png), the
 * numbered frames of a sequence beside the name, or a folder of frames. */
static fy_status check_video_output(const char *output, int frames)
{
    fy_video_format fmt;
    FY_TRY(fy_video_format_for_path(output, frames, &fmt));
    if (output[strlen(output) - 1] == '/') return check_frame_folder(output);
    if (fmt == FY_VIDEO_PNG_SEQUENCE) return fy_check_output_folder("--output", output);
    return fy_check_output_file("--output", output);
}

int cli_check_outputs(const char *output, int frames, const fy_run_options *o)
{
    if (check_video_output(output, frames) != FY_OK || fy_run_options_check_files(o) != FY_OK) return cli_fail();
    return 0;
}

/* The run, then the write; a stop signal at any point ends it with no output. */
static int run_and_write(const char *model_dir, const char *output, int fps, const fy_wan_t2v_params *params,
                         const fy_run_options *options, const fy_wan_t2v_hooks *hooks)
{
    fy_wan_t2v_result result;
    fy_status s = fy_wan_t2v_run(model_dir, options, params, hooks, &result);
    if (s == FY_ERR_BUDGET) cli_budget_hint(model_dir, options, params);
    if (s == FY_OK && cli_stop_requested()) {
        fy_wan_t2v_result_free(&result);
        s = fy_error(FY_ERR_INTERRUPTED, "stopped by the user during the VAE decode");
    }
    if (s != FY_OK) return s == FY_ERR_INTERRUPTED && cli_stop_requested() ? cli_stopped() : cli_fail();
    if (cli_rank() != 0) { /* every rank computed the same video: rank 0 writes it */
        s = report_ranks(&result);
        fy_wan_t2v_result_free(&result);
        return s == FY_OK ? 0 : cli_fail();
    }
    fy_video_options vo = {.crf = -1, .should_stop = should_stop_writing};
    s = fy_video_write_opts(output, result.video, (int)result.frames, (int)result.height, (int)result.width, fps,
                            FY_VIDEO_AUTO, &vo);
    if (s == FY_OK) {
        fy_wan_t2v_report_print(&result.report, stderr);
        s = report_ranks(&result);
        fy_info("wrote %s", output);
    }
    fy_wan_t2v_result_free(&result);
    if (s == FY_ERR_INTERRUPTED && cli_stop_requested()) return cli_stopped();
    return s == FY_OK ? 0 : cli_fail();
}

int cli_generate_run(const char *model_dir, const char *output, int fps, const fy_wan_t2v_params *params,
                     const fy_run_options *options)
{
    /* Reject an unwritable output or trace before minutes of work. */
    int rc = cli_check_outputs(output, params->num_frames, options);
    if (rc) return rc;
    if (fy_wan_t2v_check(model_dir, params) != FY_OK) return cli_fail();

    generate_ui ui = {NULL, NULL, params->steps};
    fy_wan_t2v_hooks hooks = {0};
    hooks.user = &ui;
    hooks.stage = on_stage;
    hooks.step = on_step;
    hooks.should_stop = should_stop;
    cli_stop_install();
    rc = run_and_write(model_dir, output, fps, params, options, &hooks);
    fy_progress_free(ui.loading);
    fy_progress_free(ui.bar);
    cli_stop_restore();
    return rc;
}

int cli_generate_main(int argc, char **argv)
{
    generate_args a;
    memset(&a, 0, sizeof a);
    a.fps = 16;
    fy_wan_t2v_params_init(&a.params);
    fy_run_options_init(&a.options);
    int rc = parse_args(&a, argc, argv);
    if (rc) return rc;
    if (fy_flux_is_model(a.model_dir, &a.options)) {
        if (a.params.image || a.params.last_image) /* text to image: an image option would be ignored */
            return cli_usage_error("generate", "%s %s: %s is a Flux text-to-image model; image input is for Wan "
                                   "image-to-video folders", a.params.image ? "--image" : "--last-image",
                                   a.params.image ? a.params.image : a.params.last_image, a.model_dir);
        fy_flux_params fp;
        cli_flux_params(&a.params, &a.given, &fp);
        return cli_flux_generate(a.model_dir, a.output, &fp, &a.options);
    }
    return cli_generate_run(a.model_dir, a.output, a.fps, &a.params, &a.options);
}
