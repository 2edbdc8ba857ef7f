/* Shared pieces of the ferry command line: one function per subcommand,
 * the error conventions, and number formatting for tables. */
#ifndef FERRY_TOOLS_CLI_H
#define FERRY_TOOLS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "ferry/error.h"
#include "ferry/options.h"
#include "ferry/flux_t2i.h"
#include "ferry/wan_t2v.h"

/* Exit statuses: failures of the work itself, and mistakes on the command line. */
#define CLI_EXIT_FAILURE 1
#define CLI_EXIT_USAGE 2

/* A subcommand gets its own name in argv[0] and returns the exit status. */
typedef int (*cli_main_fn)(int argc, char **argv);

typedef struct cli_command {
    const char *name;
    const char *summary;
    cli_main_fn run;    /* NULL: planned, not in this build yet */
    void (*help)(FILE *out); /* full help for `ferry NAME --help` */
} cli_command;

int cli_info_main(int argc, char **argv);
int cli_verify_main(int argc, char **argv);
int cli_shard_main(int argc, char **argv);
int cli_generate_main(int argc, char **argv);
int cli_plan_main(int argc, char **argv);
int cli_demo_main(int argc, char **argv);
void cli_demo_help(FILE *out);
void cli_plan_help(FILE *out);
void cli_info_help(FILE *out);
void cli_verify_help(FILE *out);
void cli_shard_help(FILE *out);
void cli_generate_help(FILE *out);

/* Under mpirun (cli_dist.c): the world communicator when launched by mpirun
 * or asked for (--use-fsdp-inference); ranks other than 0 print only errors.
 * Returns 0 or the exit status of the failure it printed. */
int cli_dist_start(const fy_run_options *o);
void cli_dist_finish(int rc);
int cli_rank(void); /* 0 without mpirun */
void cli_dist_test_hook(int step);
/* `ferry generate`'s run, shared with `ferry demo`: checks, settings line,
 * progress bars, Ctrl-C, the video files (whole or absent, with their
 * settings as metadata), the closing report on stderr and --report-json.
 * Returns the exit status. */
typedef struct cli_generate_spec {
    const char *model_dir;
    const char *output;
    int fps;
    int crf;                  /* < 0: the writer's default */
    const char *prompt_file;  /* one prompt per line, or NULL for params->prompt */
    const char *report_json;  /* or NULL */
} cli_generate_spec;
int cli_generate_run(const cli_generate_spec *spec, const fy_wan_t2v_params *params, const fy_run_options *options);

/* Flux (cmd_flux.c): which size/steps/guidance flags the user gave, since
 * Flux's defaults (1024 x 1024, 28 steps, guidance 3.5) are not Wan's. */
typedef struct cli_given {
    bool height, width, steps, guidance, max_sequence_length;
} cli_given;
void cli_flux_params(const fy_wan_t2v_params *w, const cli_given *given, fy_flux_params *p);
int cli_flux_generate(const char *model_dir, const char *output, const fy_flux_params *p, const fy_run_options *o);
int cli_flux_plan(const char *model_dir, const fy_flux_params *p, const fy_run_options *o);
/* Print `ferry: error: MESSAGE` (the library's last message) and return 1. */
/* SIGINT and SIGTERM (cli_signals.c): install/restore around a command's
 * work; cli_stopped prints the one line (the error message, which says where
 * the run stopped) and returns the exit status, 128 + the signal. */
void cli_stop_install(void);
void cli_stop_restore(void);
bool cli_stop_requested(void);
int cli_stopped(void);
void cli_stop_test_hook(const char *stage); /* FERRY_TEST_RAISE, for the CLI tests */

int cli_fail(void);
/* After FY_ERR_BUDGET: name the host offloads of components that would fit, with their device bounds. */
void cli_budget_hint(const char *model, const fy_run_options *o, const fy_wan_t2v_params *p);
/* Print `ferry: error: CMD: MESSAGE (see ferry CMD --help)` and return 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* A command's own flag: 0 taken, > 0 an exit status (already reported),
 * < 0 not a flag of this command. */
typedef int (*cli_flag_fn)(void *user, const char *flag, const char *value);
/* Parses argv[1..]: the shared run options into o, log flags, the video
 * settings by name into params (when not NULL; fy_wan_t2v_params_set),
 * noting in given (when not NULL) which size, steps and guidance settings
 * were given, then the command's own flags (names, NULL-terminated, "--model" ...)
 * handed to take with their values. -p -n -W -H -o are --prompt,
 * --negative-prompt, --width, --height, --output; underscores read as
 * dashes. An unknown flag is named with the nearest known one. 0, or an
 * exit status. */
struct cli_given;
int cli_parse_flags(const char *cmd, int argc, char **argv, fy_run_options *o, fy_wan_t2v_params *params,
                    struct cli_given *given, const char *const *names, cli_flag_fn take, void *user);

/* Flag values: 0, or the usage error's exit status (printed). */
int cli_int_value(const char *cmd, const char *flag, const char *text, long min, long max, int *out);
int cli_double_value(const char *cmd, const char *flag, const char *text, double *out); /* finite */
/* --output (and --trace) before any work: a writable folder, a new or regular
 * file (or the folder of a PNG sequence). 0, or the exit status (printed). */
int cli_check_outputs(const char *output, int frames, const fy_run_options *o);

/* -v, -vv, -q, --verbose, --quiet: adjusts the log level; true if arg was one. */
bool cli_log_flag(const char *arg);
/* -h / --help */
bool cli_is_help(const char *arg);

/* "1.42M", "33.2K", "999"; "5.4 MiB", "41.2 KiB", "12 B". */
const char *cli_human_count(uint64_t n, char *buf, size_t size);
const char *cli_human_bytes(uint64_t n, char *buf, size_t size);

#endif
