/* Shared by the fuzzers that need files: one private temporary folder per
 * process, files written into it whole. */
#ifndef FERRY_FUZZ_UTIL_H
#define FERRY_FUZZ_UTIL_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The folder (created on first use, under TMPDIR); aborts if it cannot be made. */
static inline const char *fuzz_dir(void)
{
    static char dir[512];
    if (dir[0]) return dir;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/ferry-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) abort();
    return dir;
}

static inline void fuzz_path(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", fuzz_dir(), name);
}

static inline void fuzz_write(const char *name, const uint8_t *data, size_t size)
{
    char path[1024];
    fuzz_path(path, sizeof path, name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
}

static inline void fuzz_mkdir(const char *name)
{
    char path[1024];
    fuzz_path(path, sizeof path, name);
    mkdir(path, 0755);
}

/* Symlinks every file of src whose name ends in suffix into the folder `into`. */
static inline void fuzz_link_files(const char *src, const char *suffix, const char *into)
{
    DIR *d = src ? opendir(src) : NULL;
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name), k = strlen(suffix);
        if (n < k || strcmp(e->d_name + n - k, suffix) != 0) continue;
        char from[1024], to[1024];
        snprintf(from, sizeof from, "%s/%s", src, e->d_name);
        snprintf(to, sizeof to, "%s/%s/%s", fuzz_dir(), into, e->d_name);
        if (symlink(from, to) != 0 && access(to, F_OK) != 0) abort();
    }
    closedir(d);
}

#endif
