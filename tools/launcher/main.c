/* The ferry executable. `ferry --version` and `ferry --help` are answered
 * here; everything else runs in libferry-cli.so, opened only then, so those
 * two never load CUDA, FFmpeg or MPI (a machine without them, or without a
 * GPU driver, still gets them at once), and the run's libraries load once. */
#include <dlfcn.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli_commands.h"
#include "ferry/version.h"

/* Where libferry-cli.so is, relative to this executable: beside it in the
 * build tree, FERRY_CLI_LIBDIR (the installed lib folder) after install. */
#ifndef FERRY_CLI_LIBDIR
#define FERRY_CLI_LIBDIR "../lib"
#endif
#define CLI_LIBRARY "libferry-cli.so"

typedef int (*cli_main_fn)(int argc, char **argv);

static bool log_flag(const char *arg)
{
    return !strcmp(arg, "-v") || !strcmp(arg, "-vv") || !strcmp(arg, "-q") || !strcmp(arg, "--verbose") ||
           !strcmp(arg, "--quiet");
}

/* 0 or 1: answered (--version, --help); -1: the library's to run. */
static int answer_here(int argc, char **argv)
{
    int i = 1;
    while (i < argc && log_flag(argv[i])) i++;
    if (i >= argc) return -1;
    if (!strcmp(argv[i], "--version")) {
        printf("ferry %s\n", FERRY_VERSION);
        return 0;
    }
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
        cli_print_usage(stdout);
        return 0;
    }
    return -1;
}

static void *open_cli(char *why, size_t size)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    const char *const dirs[] = {"", "/" FERRY_CLI_LIBDIR};
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) *slash = '\0';
        for (size_t d = 0; d < sizeof dirs / sizeof dirs[0]; d++) {
            char path[PATH_MAX + 64];
            snprintf(path, sizeof path, "%s%s/%s", self, dirs[d], CLI_LIBRARY);
            if (access(path, F_OK) != 0) continue;
            /* GLOBAL: OpenMPI's plugins look up libmpi's symbols. */
            void *lib = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
            if (lib) return lib;
            snprintf(why, size, "%s", dlerror());
            return NULL;
        }
    }
    void *lib = dlopen(CLI_LIBRARY, RTLD_NOW | RTLD_GLOBAL); /* LD_LIBRARY_PATH, the loader's cache */
    if (!lib) snprintf(why, size, "%s", dlerror());
    return lib;
}

int main(int argc, char **argv)
{
    int rc = answer_here(argc, argv);
    if (rc >= 0) return rc;
    char why[1024] = "";
    void *lib = open_cli(why, sizeof why);
    cli_main_fn run = lib ? (cli_main_fn)dlsym(lib, "ferry_cli_main") : NULL;
    if (!run) {
        fprintf(stderr, "ferry: error: cannot load %s (%s): reinstall ferry (cmake --install build) or run the ferry "
                "of a build folder\n", CLI_LIBRARY, lib ? dlerror() : why);
        return 1;
    }
    return run(argc, argv);
}
