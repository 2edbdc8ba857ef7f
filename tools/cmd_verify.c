/* `ferry verify MODEL_DIR FIXTURE_DIR`: ferry's numerics against golden tensors. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ferry/options.h"
#include "verify/verify.h"

static const char usage[] =
    "usage: ferry verify MODEL_DIR FIXTURE_DIR [--component NAME[,NAME...]] [run options]\n"
    "\n"
    "Run ferry's components on the inputs stored in FIXTURE_DIR (e.g. wan-tiny/fixtures)\n"
    "with the weights of MODEL_DIR and compare with the reference tensors: one line per\n"
    "comparison (relative error max|ours - ref| / max|ref|, tolerance, pass/FAIL), then\n"
    "\"N passed, M failed\". Exits 0 only when every comparison passed.\n"
    "\n"
    "  --component LIST   tokenizer, text_encoder, transformer, vae, scheduler, pipeline\n"
    "                     (default: every component implemented in this build)\n"
    "\n";

void cli_verify_help(FILE *out)
{
    fputs(usage, out);
    fputs(fy_run_options_help(), out);
}

typedef struct verify_args {
    const char *model_dir;
    const char *fixture_dir;
    const char *components;
    fy_run_options options;
} verify_args;

static int take_positional(verify_args *a, const char *arg)
{
    if (!a->model_dir) a->model_dir = arg;
    else if (!a->fixture_dir) a->fixture_dir = arg;
    else return cli_usage_error("verify", "unexpected argument \"%s\"", arg);
    return 0;
}

static int parse_args(verify_args *a, int argc, char **argv)
{
    for (int i = 1; i < argc;) {
        const char *arg = argv[i];
        bool consumed = false;
        if (fy_run_options_parse_arg(&a->options, argc, argv, &i, &consumed) != FY_OK)
            return cli_usage_error("verify", "%s", fy_error_message());
        if (consumed) continue;
        i++;
        if (cli_log_flag(arg)) continue;
        if (strcmp(arg, "--component") == 0 || strcmp(arg, "--components") == 0) {
            if (i >= argc) return cli_usage_error("verify", "--component needs a value");
            a->components = argv[i++];
        } else if (strncmp(arg, "--component=", 12) == 0) {
            a->components = arg + 12;
        } else if (strncmp(arg, "--components=", 13) == 0) {
            a->components = arg + 13;
        } else if (arg[0] == '-' && arg[1]) {
            return cli_usage_error("verify", "unknown option \"%s\"", arg);
        } else {
            int rc = take_positional(a, arg);
            if (rc) return rc;
        }
    }
    if (!a->fixture_dir) return cli_usage_error("verify", "expected MODEL_DIR and FIXTURE_DIR");
    if (fy_run_options_validate(&a->options) != FY_OK) return cli_usage_error("verify", "%s", fy_error_message());
    /* A trace that cannot be written fails now, not after the comparisons. */
    if (fy_run_options_check_files(&a->options) != FY_OK) return cli_fail();
    return cli_dist_start(&a->options);
}

int cli_verify_main(int argc, char **argv)
{
    verify_args a = {0};
    fy_run_options_init(&a.options);
    int rc = parse_args(&a, argc, argv);
    if (rc) return rc;
    fy_status s = fy_verify_run(a.model_dir, a.fixture_dir, a.components, &a.options, stdout);
    fflush(stdout);
    return s == FY_OK ? 0 : cli_fail();
}
