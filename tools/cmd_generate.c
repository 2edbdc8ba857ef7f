/* `ferry generate`: a prompt in, a video file out, under the memory options
 * diffusers and FastVideo users know. Ctrl-C stops between steps; the output
 * is written to a temporary name and renamed, so it is whole or absent. */
#include <cjson/cJSON.h>
#include <errno.h>
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
    "Wan2.1 and Wan2.2 (A14B, TI2V-5B) text to video, Wan2.1 and Wan2.2 (I2V-A14B, TI2V-5B) image to\n"
    "video, Flux.1 (dev, schnell) text to image.\n"
    "Defaults follow the model card (Flux: 1024 x 1024, 28 steps, guidance 3.5, a .png output).\n"
    "\n"
    "  --model DIR                a diffusers Wan T2V or I2V folder (Wan-AI/Wan2.1-T2V-1.3B-Diffusers,\n"
    "                             Wan-AI/Wan2.2-T2V-A14B-Diffusers)\n"
    "  -p, --prompt TEXT          what to generate\n"
    "  --image FILE               image to video (WanImageToVideoPipeline folders, and Wan2.2 TI2V\n"
    "                             ones): the first frame, PNG or JPEG, any size (resized to\n"
    "                             --height x --width)\n"
    "  --last-image FILE          first-last-frame to video (FLF2V): not implemented, refused\n"
    "  --prompt-file FILE         one prompt per line: one video each from one model load\n"
    "                             (outputs numbered: out_001.mp4, out_002.mp4, ...)\n"
    "  -n, --negative-prompt TEXT what to avoid (default: the model card's negative prompt)\n"
    "  -o, --output PATH          .mp4 (H.264), .png (one frame or a numbered sequence),\n"
    "                             a path with %d (e.g. f_%04d.png), or a directory ending in /\n"
    "  -H, --height N, -W, --width N  pixels, multiples of 16 (default 480 x 832)\n"
    "  --num-frames N             4k+1 frames (default 81; also --video-frames)\n"
    "  --steps N                  denoising steps (default 50; also --num-inference-steps)\n"
    "  --guidance-scale G         classifier-free guidance (default 5.0; <= 1 turns it off;\n"
    "                             also --cfg-scale); Flux.1-dev: its distilled guidance\n"
    "                             (default 3.5; schnell ignores it)\n"
    "  --guidance-scale-2 G       Wan2.2 A14B: the low-noise expert's steps (default: --guidance-scale)\n"
    "  --flow-shift S             override the scheduler's flow_shift (3.0 for 480p, 5.0 for 720p)\n"
    "  --seed N                   noise seed (default 0; torch.manual_seed's stream; -1: random,\n"
    "                             printed in the settings line and stored in the file)\n"
    "  --fps N                    frames per second of the file (default 16)\n"
    "  --crf N                    MP4 quality: x264's constant rate factor, 0 (lossless) to 51\n"
    "                             (default 18; lower is better and larger)\n"
    "  --max-sequence-length N    prompt tokens (default 512)\n"
    "  --report-json FILE         the settings and the closing report as JSON (an array with\n"
    "                             --prompt-file), written whole or not at all\n"
    "The prompt, negative prompt, seed, steps and guidance go into the MP4's metadata and each\n"
    "PNG's text chunks. -q prints errors and warnings only: no settings, progress or report.\n"
    "\n";

void cli_generate_help(FILE *out)
{
    fputs(usage, out);
    fputs(fy_run_options_help(), out);
}

typedef struct generate_args {
    cli_generate_spec spec;
    fy_wan_t2v_params params;
    fy_run_options options;
    cli_given given;
} generate_args;

static const char *const own_flags[] = {"--model", "--output", "--output-path", "--fps", "--crf",
                                        "--prompt-file", "--report-json", "--image", "--last-image", NULL};

/* One generate-specific flag with its value; returns -1 when arg is not one. */
static int take_flag(void *user, const char *arg, const char *value)
{
    generate_args *a = user;
    cli_generate_spec *g = &a->spec;
    if (strcmp(arg, "--model") == 0) return g->model_dir = value, 0;
    if (strcmp(arg, "--output") == 0 || strcmp(arg, "--output-path") == 0) return g->output = value, 0;
    if (strcmp(arg, "--prompt-file") == 0) return g->prompt_file = value, 0;
    if (strcmp(arg, "--report-json") == 0) return g->report_json = value, 0;
    if (strcmp(arg, "--fps") == 0) return cli_int_value("generate", arg, value, 1, 240, &g->fps);
    if (strcmp(arg, "--crf") == 0) return cli_int_value("generate", arg, value, 0, 51, &g->crf);
    if (strcmp(arg, "--image") == 0) return a->params.image = value, 0;
    if (strcmp(arg, "--last-image") == 0) return a->params.last_image = value, 0;
    return -1;
}

static int parse_args(generate_args *a, int argc, char **argv)
{
    int rc = cli_parse_flags("generate", argc, argv, &a->options, &a->params, &a->given, own_flags, take_flag, a);
    if (rc) return rc;
    if (!a->spec.model_dir) a->spec.model_dir = a->options.config_dir;
    if (!a->spec.model_dir)
        return cli_usage_error("generate", "--model DIR is required (or FILE, or --config DIR with single files)");
    if (a->params.prompt && a->spec.prompt_file)
        return cli_usage_error("generate", "give --prompt or --prompt-file, not both");
    if (!a->params.prompt && !a->spec.prompt_file) return cli_usage_error("generate", "--prompt is required");
    if (!a->spec.output) return cli_usage_error("generate", "--output PATH is required (e.g. out.mp4)");
    if (fy_run_options_validate(&a->options) != FY_OK) return cli_usage_error("generate", "%s", fy_error_message());
    fy_run_options_default_storage(&a->options);
    fy_run_options_default_plan(&a->options);
    return cli_dist_start(&a->options);
}

typedef struct generate_ui {
    fy_progress *loading;
    fy_progress *bar;
    int steps;
    bool quiet;
    const fy_wan_t2v_pipeline *pipe;
} generate_ui;

/* The settings that matter, once, before the progress bar: what a log
 * needs to reproduce the video. */
static void print_settings(const generate_ui *ui)
{
    char line[4096];
    if (fy_wan_t2v_describe(ui->pipe, line, sizeof line) == FY_OK) fprintf(stderr, "settings     %s\n", line);
}

/* Stages are for -v: the progress bar and the closing report say the rest,
 * and a failing run prints only its one error line. */
static void on_stage(void *user, const char *stage)
{
    generate_ui *ui = user;
    fy_debug("%s", stage);
    cli_stop_test_hook(stage);
    if (cli_rank() != 0 || ui->quiet) return; /* one progress bar: rank 0's */
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
    if (strcmp(stage, "text encoder") == 0) print_settings(ui);
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

/* The i-th output of a prompt file (1-based): "out.mp4" -> "out_002.mp4",
 * "frames/" -> "frames/002/"; one prompt keeps the name as given. */
static char *numbered_output(const char *output, int i, int count)
{
    size_t n = strlen(output) + 16;
    char *path = malloc(n);
    if (!path) return NULL;
    if (count == 1) {
        snprintf(path, n, "%s", output);
    } else if (output[strlen(output) - 1] == '/') {
        snprintf(path, n, "%s%03d/", output, i);
    } else {
        const char *slash = strrchr(output, '/');
        const char *dot = strrchr(output, '.');
        size_t stem = dot && (!slash || dot > slash) ? (size_t)(dot - output) : strlen(output);
        snprintf(path, n, "%.*s_%03d%s", (int)stem, output, i, output + stem);
    }
    return path;
}

typedef struct prompt_list {
    char *text;      /* the file, its lines cut in place */
    char **prompts;
    int count;
} prompt_list;

static void prompts_free(prompt_list *l)
{
    free(l->text);
    free(l->prompts);
}

/* One prompt per line; blank lines are skipped, "\r\n" endings accepted. */
static fy_status read_prompts(const char *path, prompt_list *l)
{
    memset(l, 0, sizeof *l);
    FILE *f = fopen(path, "rb");
    if (!f) return fy_error(FY_ERR_IO, "--prompt-file %s: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    l->text = malloc(cap);
    for (size_t got; l->text && (got = fread(l->text + len, 1, cap - len - 1, f)) > 0;) {
        len += got;
        if (len + 1 == cap) {
            char *bigger = cap < ((size_t)64 << 20) ? realloc(l->text, cap * 2) : NULL;
            if (!bigger) {
                fclose(f);
                return fy_error(FY_ERR_INVALID, "--prompt-file %s: too large (at most 64 MiB of prompts)", path);
            }
            l->text = bigger;
            cap *= 2;
        }
    }
    bool failed = ferror(f);
    fclose(f);
    if (!l->text) return fy_error(FY_ERR_NOMEM, "--prompt-file %s: out of memory", path);
    if (failed) return fy_error(FY_ERR_IO, "--prompt-file %s: read error", path);
    l->text[len] = '\0';
    if (memchr(l->text, '\0', len)) return fy_error(FY_ERR_FORMAT, "--prompt-file %s: not a text file", path);
    l->prompts = malloc(sizeof *l->prompts * (len / 2 + 1));
    if (!l->prompts) return fy_error(FY_ERR_NOMEM, "--prompt-file %s: out of memory", path);
    for (char *line = l->text, *next; line; line = next) {
        char *nl = strchr(line, '\n');
        next = nl ? nl + 1 : NULL;
        if (nl) *nl = '\0';
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t')) line[--n] = '\0';
        if (n) l->prompts[l->count++] = line;
    }
    if (!l->count) return fy_error(FY_ERR_INVALID, "--prompt-file %s: no prompts in it (one per line)", path);
    return FY_OK;
}

/* --report-json: written under a temporary name and renamed into place. */
static fy_status write_text_file(const char *path, const char *text)
{
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp) return fy_error(FY_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    fy_status s = FY_OK;
    if (!f) {
        s = fy_error(FY_ERR_IO, "--report-json %s: %s", path, strerror(errno));
    } else {
        bool ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF;
        ok = fclose(f) == 0 && ok;
        if (!ok || rename(tmp, path) != 0) {
            s = fy_error(FY_ERR_IO, "--report-json %s: cannot write it: %s", path, strerror(errno));
            unlink(tmp);
        }
    }
    free(tmp);
    return s;
}

/* The video's settings, report and file as one JSON object, added to all. */
static fy_status add_report(cJSON *all, const fy_wan_t2v_params *p, const fy_wan_t2v_result *r, const char *output)
{
    char *text = fy_wan_t2v_report_json(p, &r->report);
    cJSON *one = text ? cJSON_Parse(text) : NULL;
    fy_wan_t2v_string_free(text);
    if (!one) return fy_error(FY_ERR_NOMEM, "out of memory for the report");
    cJSON_AddStringToObject(one, "output", output);
    cJSON_AddItemToArray(all, one);
    return FY_OK;
}

static fy_status save_reports(const char *path, cJSON *all, bool single)
{
    char *text = cJSON_Print(single ? cJSON_GetArrayItem(all, 0) : all);
    if (!text) return fy_error(FY_ERR_NOMEM, "out of memory for the report");
    fy_status s = write_text_file(path, text);
    cJSON_free(text);
    return s;
}

typedef struct generate_job {
    const cli_generate_spec *spec;
    const fy_run_options *options;
    fy_wan_t2v_pipeline *pipe;
    char **outputs;
    cJSON *reports;
    bool quiet;
} generate_job;

/* One video: generate, write with its tags, report. */
static fy_status one_video(generate_job *job, const fy_wan_t2v_params *p, const char *output)
{
    generate_ui ui = {NULL, NULL, p->steps, job->quiet, job->pipe};
    fy_wan_t2v_hooks hooks = {0};
    hooks.user = &ui;
    hooks.stage = on_stage;
    hooks.step = on_step;
    hooks.should_stop = should_stop;
    fy_wan_t2v_result result;
    fy_status s = fy_wan_t2v_generate(job->pipe, p, &hooks, &result);
    fy_progress_free(ui.loading);
    fy_progress_free(ui.bar);
    if (s == FY_ERR_BUDGET) cli_budget_hint(job->spec->model_dir, job->options, p);
    if (s == FY_OK && cli_stop_requested()) {
        fy_wan_t2v_result_free(&result);
        s = fy_error(FY_ERR_INTERRUPTED, "stopped by the user during the VAE decode");
    }
    if (s != FY_OK) return s;
    if (cli_rank() != 0) { /* every rank computed the same video: rank 0 writes it */
        s = report_ranks(&result);
        fy_wan_t2v_result_free(&result);
        return s;
    }
    fy_video_options vo = {.crf = job->spec->crf, .should_stop = should_stop_writing};
    s = fy_wan_t2v_save_opts(output, &result, p, job->spec->fps, &vo);
    if (s == FY_OK) {
        if (!job->quiet) fy_wan_t2v_report_print(&result.report, stderr);
        s = report_ranks(&result);
        fy_info("wrote %s", output);
    }
    if (s == FY_OK && job->reports) s = add_report(job->reports, p, &result, output);
    fy_wan_t2v_result_free(&result);
    return s;
}

static fy_status run_videos(generate_job *job, const fy_wan_t2v_params *params, char *const *prompts, int count)
{
    FY_TRY(fy_wan_t2v_open(job->spec->model_dir, job->options, &job->pipe));
    fy_status s = FY_OK;
    for (int i = 0; i < count && s == FY_OK; i++) {
        fy_wan_t2v_params p = *params;
        p.prompt = prompts[i];
        if (count > 1) fy_info("video %d of %d: %s", i + 1, count, job->outputs[i]);
        s = one_video(job, &p, job->outputs[i]);
    }
    if (s == FY_OK && job->reports && cli_rank() == 0)
        s = save_reports(job->spec->report_json, job->reports, count == 1);
    return s;
}

/* Every output (and the report) checked before the model loads. */
static int check_all_outputs(const generate_job *job, int count, int frames)
{
    for (int i = 0; i < count; i++) {
        if (!job->outputs[i]) return fy_error(FY_ERR_NOMEM, "out of memory"), cli_fail();
        int rc = cli_check_outputs(job->outputs[i], frames, job->options);
        if (rc) return rc;
    }
    if (job->spec->report_json && fy_check_output_file("--report-json", job->spec->report_json) != FY_OK)
        return cli_fail();
    return 0;
}

int cli_generate_run(const cli_generate_spec *spec, const fy_wan_t2v_params *params, const fy_run_options *options)
{
    prompt_list list = {0};
    char *one[1] = {(char *)params->prompt};
    char **prompts = one;
    int count = 1;
    if (spec->prompt_file) {
        if (read_prompts(spec->prompt_file, &list) != FY_OK) {
            prompts_free(&list);
            return cli_fail();
        }
        prompts = list.prompts;
        count = list.count;
    }
    generate_job job = {spec, options, NULL, calloc((size_t)count, sizeof(char *)), NULL,
                        fy_log_get_level() < FY_LOG_INFO};
    int rc = job.outputs ? 0 : (fy_error(FY_ERR_NOMEM, "out of memory"), cli_fail());
    for (int i = 0; !rc && i < count; i++) job.outputs[i] = numbered_output(spec->output, i + 1, count);
    /* Reject an unwritable output or trace before minutes of work. */
    if (!rc) rc = check_all_outputs(&job, count, params->num_frames);
    fy_wan_t2v_params checked = *params;
    checked.prompt = prompts[0];
    if (!rc && fy_wan_t2v_check_with(spec->model_dir, options, &checked) != FY_OK) rc = cli_fail();
    if (!rc && spec->report_json) job.reports = cJSON_CreateArray();
    if (!rc) {
        cli_stop_install();
        fy_status s = run_videos(&job, params, prompts, count);
        if (s != FY_OK) rc = s == FY_ERR_INTERRUPTED && cli_stop_requested() ? cli_stopped() : cli_fail();
        cli_stop_restore();
    }
    fy_wan_t2v_close(job.pipe);
    cJSON_Delete(job.reports);
    for (int i = 0; job.outputs && i < count; i++) free(job.outputs[i]);
    free(job.outputs);
    prompts_free(&list);
    return rc;
}

int cli_generate_main(int argc, char **argv)
{
    generate_args a;
    memset(&a, 0, sizeof a);
    a.spec.fps = 16;
    a.spec.crf = -1;
    fy_wan_t2v_params_init(&a.params);
    fy_run_options_init(&a.options);
    int rc = parse_args(&a, argc, argv);
    if (rc) return rc;
    if (fy_flux_is_model(a.spec.model_dir, &a.options)) {
        if (a.params.image || a.params.last_image) /* text to image: an image option would be ignored */
            return cli_usage_error("generate", "%s %s: %s is a Flux text-to-image model; image input is for Wan "
                                   "image-to-video folders", a.params.image ? "--image" : "--last-image",
                                   a.params.image ? a.params.image : a.params.last_image, a.spec.model_dir);
        fy_flux_params fp;
        cli_flux_params(&a.params, &a.given, &fp);
        return cli_flux_generate(a.spec.model_dir, a.spec.output, &fp, &a.options);
    }
    return cli_generate_run(&a.spec, &a.params, &a.options);
}
