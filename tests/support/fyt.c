#include "support/fyt.h"

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *fyt_temp_dir(void)
{
    const char *base = getenv("TMPDIR");
    if (!base || !base[0]) base = "/tmp";
    char *dir = fyt_path(base, "ferry-test-XXXXXX");
    if (dir && !mkdtemp(dir)) {
        free(dir);
        return NULL;
    }
    return dir;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void fyt_remove_tree(const char *dir)
{
    if (dir) nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *fyt_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int fyt_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t wrote = n ? fwrite(data, 1, n, f) : 0;
    int rc = fclose(f);
    return (wrote == n && rc == 0) ? 0 : -1;
}

void *fyt_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        fclose(f);
        return NULL;
    }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size + 1);
    if (buf && fread(buf, 1, size, f) != size) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[size] = '\0';
        *n = size;
    }
    return buf;
}

int fyt_count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

uint8_t *fyt_st_bytes_len(uint64_t declared_len, const char *header_json, size_t data_bytes,
                          size_t *size)
{
    size_t hl = strlen(header_json);
    size_t n = 8 + hl + data_bytes;
    uint8_t *p = malloc(n ? n : 1);
    if (!p) return NULL;
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(declared_len >> (8 * i));
    memcpy(p + 8, header_json, hl);
    for (size_t i = 0; i < data_bytes; i++) p[8 + hl + i] = (uint8_t)((i * 7 + 1) & 0xff);
    *size = n;
    return p;
}

uint8_t *fyt_st_bytes(const char *header_json, size_t data_bytes, size_t *size)
{
    return fyt_st_bytes_len(strlen(header_json), header_json, data_bytes, size);
}
