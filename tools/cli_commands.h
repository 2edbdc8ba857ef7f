/* Every subcommand: its name and one-line summary. A row here and a
 * cmd_NAME.c (cli_NAME_main, cli_NAME_help) add a command. Shared by the
 * command table (ferry.c) and the launcher (launcher/main.c), which prints
 * `ferry --help` without loading the library. */
#ifndef FERRY_TOOLS_CLI_COMMANDS_H
#define FERRY_TOOLS_CLI_COMMANDS_H

#include <stdio.h>

#define CLI_COMMANDS(X)                                                                                         \
    X(info, "show a model folder's components, parameters, dtypes and block sizes")                            \
    X(verify, "compare ferry's components with golden fixture tensors")                                        \
    X(shard, "re-shard a safetensors checkpoint into files of at most a given size")                           \
    X(generate, "text to video (Wan) or image (Flux): a prompt in, .mp4 or PNG out")                                       \
    X(plan, "show how weights would be placed and streamed, without running")                                  \
    X(demo, "the whole pipeline on a small random-weight model, no download: streaming under a budget")


/* `ferry --help`: every command with its line, and where each one's flags are. */
static inline void cli_print_usage(FILE *f)
{
    static const struct {
        const char *name, *summary;
    } rows[] = {
#define CLI_ROW(name, summary) {#name, summary},
        CLI_COMMANDS(CLI_ROW)
#undef CLI_ROW
    };
    fprintf(f, "usage: ferry [-v|-q] COMMAND [ARGS...]\n"
               "       ferry COMMAND --help\n"
               "\n"
               "Run large diffusion models on small GPUs by streaming weights just in time.\n"
               "\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) fprintf(f, "  %-10s %s\n", rows[i].name, rows[i].summary);
    fprintf(f, "\n"
               "options:\n"
               "  -v, --verbose   more log output (-vv: trace)\n"
               "  -q, --quiet     warnings and errors only: no settings line, progress or report\n"
               "                  (-q -q: errors only)\n"
               "  --version       print the version\n"
               "  -h, --help      this help\n"
               "The log level can also be set with FERRY_LOG=error|warn|info|debug|trace.\n"
               "\n"
               "Run 'ferry COMMAND --help' (or 'ferry help COMMAND') for a command's flags.\n");
}

#endif
