/* Opening input files without blocking (see io/regular_file.h). */
#include "io/regular_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *fy_file_kind(mode_t mode)
{
    if (S_ISDIR(mode)) return "a folder";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISLNK(mode)) return "a symbolic link";
    return "a regular file";
}

static fy_status check_open(const char *path, int fd, uint64_t max_bytes, const char *what, struct stat *st)
{
    if (fstat(fd, st) != 0) return fy_error(FY_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    if (!S_ISREG(st->st_mode))
        return fy_error(FY_ERR_IO, "%s: is %s, not a regular file (expected %s)", path, fy_file_kind(st->st_mode),
                        what);
    if (max_bytes && (uint64_t)st->st_size > max_bytes)
        return fy_error(FY_ERR_FORMAT, "%s: %lld bytes is too large for %s (limit %llu MiB); is this the right file?",
                        path, (long long)st->st_size, what, (unsigned long long)(max_bytes >> 20));
    /* Regular files ignore O_NONBLOCK; cleared anyway so that nothing later depends on it. */
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0)
        return fy_error(FY_ERR_IO, "%s: cannot set blocking mode: %s", path, strerror(errno));
    return FY_OK;
}

fy_status fy_open_regular(const char *path, uint64_t max_bytes, const char *what, int *fd, struct stat *st)
{
    *fd = -1;
    /* O_NONBLOCK: opening a FIFO for reading otherwise waits for a writer. */
    int f = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (f < 0)
        return fy_error(errno == ENOENT ? FY_ERR_NOT_FOUND : FY_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    fy_status s = check_open(path, f, max_bytes, what, st);
    if (s != FY_OK) {
        close(f);
        return s;
    }
    *fd = f;
    return FY_OK;
}

fy_status fy_fopen_regular(const char *path, uint64_t max_bytes, const char *what, FILE **out, struct stat *st)
{
    *out = NULL;
    int fd;
    FY_TRY(fy_open_regular(path, max_bytes, what, &fd, st));
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        int err = errno;
        close(fd);
        return fy_error(FY_ERR_IO, "%s: cannot open: %s", path, strerror(err));
    }
    *out = f;
    return FY_OK;
}

fy_status fy_read_regular(const char *path, uint64_t max_bytes, const char *what, char **text, size_t *len)
{
    *text = NULL;
    *len = 0;
    FILE *f;
    struct stat st;
    FY_TRY(fy_fopen_regular(path, max_bytes, what, &f, &st));
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size + 1);
    if (!buf) {
        fclose(f);
        return fy_error(FY_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, size, f);
    int failed = ferror(f);
    fclose(f);
    if (failed || got != size) {
        free(buf);
        return fy_error(FY_ERR_IO, "%s: read failed (the file changed while ferry read it?)", path);
    }
    buf[size] = '\0';
    *text = buf;
    *len = size;
    return FY_OK;
}
