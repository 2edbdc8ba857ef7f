/* Helpers linked into every test: temporary folders, files, and raw
 * safetensors bytes for crafting good and bad inputs. */
#ifndef FERRY_TESTS_SUPPORT_FYT_H
#define FERRY_TESTS_SUPPORT_FYT_H

#include <stddef.h>
#include <stdint.h>

/* A fresh empty folder under $TMPDIR (or /tmp); free() the result. NULL on failure. */
char *fyt_temp_dir(void);
/* Delete a folder and everything in it. */
void fyt_remove_tree(const char *dir);
/* "<dir>/<name>", malloc'ed. */
char *fyt_path(const char *dir, const char *name);
/* Write n bytes to path (created or truncated); 0 on success. */
int fyt_write_file(const char *path, const void *data, size_t n);
/* Read a whole file; free() the result. NULL on failure. */
void *fyt_read_file(const char *path, size_t *n);
/* Number of regular entries in a folder (-1 on failure). */
int fyt_count_files(const char *dir);

/* A safetensors image: the 8-byte little-endian length of header_json, the
 * header, then data_bytes bytes of the pattern (i * 7 + 1) & 0xff.
 * fyt_st_bytes_len writes declared_len as the length instead. free() it. */
uint8_t *fyt_st_bytes(const char *header_json, size_t data_bytes, size_t *size);
uint8_t *fyt_st_bytes_len(uint64_t declared_len, const char *header_json, size_t data_bytes,
                          size_t *size);

#endif
