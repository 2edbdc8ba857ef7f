/* ferry: the command line. Global flags, then a subcommand from the table
 * (cli_commands.h). Built into libferry-cli.so, which the ferry executable
 * (launcher/main.c) opens for everything but --version and --help. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_commands.h"
#include "ferry/version.h"

#define CLI_COMMAND_ROW(name, summary) {#name, summary, cli_##name##_main, cli_##name##_help},
static const cli_command commands[] = {CLI_COMMANDS(CLI_COMMAND_ROW)};
#undef CLI_COMMAND_ROW

#define COMMAND_COUNT (sizeof commands / sizeof commands[0])

static void print_help(FILE *f)
{
    cli_print_usage(f);
}

static const cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++) {
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    }
    return NULL;
}

static int run_command(const cli_command *c, int argc, char **argv)
{
    if (!c->run) {
        fprintf(stderr, "ferry: error: %s is not available in this build yet\n", c->name);
        return CLI_EXIT_FAILURE;
    }
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            c->help(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--") == 0) break;
    }
    int rc = c->run(argc, argv);
    cli_dist_finish(rc);
    return rc;
}

static int help_command(int argc, char **argv)
{
    if (argc < 2) {
        print_help(stdout);
        return 0;
    }
    const cli_command *c = find_command(argv[1]);
    if (!c) return cli_usage_error(NULL, "unknown command \"%s\"", argv[1]);
    if (!c->help) {
        printf("ferry %s: %s\n", c->name, c->summary);
        return 0;
    }
    c->help(stdout);
    return 0;
}

/* Weights are read through mmap: a model file truncated or replaced while
 * ferry runs turns a read into SIGBUS. Say so in one line instead of dying
 * with a core (async-signal-safe: write and _exit only; outputs are renamed
 * into place at the end, so none is left half written). */
static void on_sigbus(int sig)
{
    static const char msg[] = "ferry: error: a model file was truncated or changed while ferry read it (bus error "
                              "on its memory mapping); leave the model folder alone while ferry runs and start "
                              "again\n";
    (void)sig;
    ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
    _exit(1);
}

#if defined(__SANITIZE_ADDRESS__)
#define FERRY_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FERRY_LSAN 1
#endif
#endif
#ifdef FERRY_LSAN
#include <sanitizer/lsan_interface.h>
#endif

/* A failed command leaves without running exit handlers: after an allocation
 * failure, OpenBLAS's handler can wait forever on a worker thread that is
 * still retrying one. Output is flushed first; the leak check that exit
 * would run under ASan runs here. */
static int leave(int rc)
{
    if (rc == 0) return 0;
    fflush(stdout);
    fflush(stderr);
#ifdef FERRY_LSAN
    __lsan_do_leak_check();
#endif
    _exit(rc);
}

static int run_main(int argc, char **argv);

/* Called by the launcher; exported from libferry-cli.so. */
__attribute__((visibility("default"))) int ferry_cli_main(int argc, char **argv);

int ferry_cli_main(int argc, char **argv)
{
    return leave(run_main(argc, argv));
}

static int run_main(int argc, char **argv)
{
    struct sigaction bus = {.sa_handler = on_sigbus};
    sigemptyset(&bus.sa_mask);
    sigaction(SIGBUS, &bus, NULL);
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (cli_log_flag(argv[i])) continue;
        if (cli_is_help(argv[i])) {
            print_help(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("ferry %s\n", FERRY_VERSION);
            return 0;
        }
        return cli_usage_error(NULL, "unknown option \"%s\"", argv[i]);
    }
    if (i >= argc) {
        print_help(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[i], "help") == 0) return help_command(argc - i, argv + i);
    const cli_command *c = find_command(argv[i]);
    if (!c) return cli_usage_error(NULL, "unknown command \"%s\"", argv[i]);
    return run_command(c, argc - i, argv + i);
}
