/* Opening input files without blocking: a FIFO, a device (/dev/zero) or a
 * folder where a model file belongs would hang a read or feed it forever, so
 * every input is opened non-blocking and refused unless it is a regular file
 * (not part of the public API). */
#ifndef FERRY_IO_REGULAR_FILE_H
#define FERRY_IO_REGULAR_FILE_H

#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "ferry/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A read-only descriptor of the regular file at path (blocking mode restored),
 * its stat in *st; max_bytes > 0 refuses larger files, naming what the file
 * should be ("a config file"). */
fy_status fy_open_regular(const char *path, uint64_t max_bytes, const char *what, int *fd, struct stat *st);
/* The same as a stdio stream. */
fy_status fy_fopen_regular(const char *path, uint64_t max_bytes, const char *what, FILE **f, struct stat *st);
/* The whole regular file into a NUL-terminated malloc'd buffer. */
fy_status fy_read_regular(const char *path, uint64_t max_bytes, const char *what, char **text, size_t *len);
/* "a FIFO", "a folder", ... for messages. */
const char *fy_file_kind(mode_t mode);

#ifdef __cplusplus
}
#endif
#endif
