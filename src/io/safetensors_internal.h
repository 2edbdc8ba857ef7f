/* Helpers shared by the safetensors reader and writer (not public API). */
#ifndef FERRY_IO_SAFETENSORS_INTERNAL_H
#define FERRY_IO_SAFETENSORS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "ferry/safetensors.h"

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF), as
 * the Rust crate requires of a header. */
bool fy_st_utf8_valid(const uint8_t *s, size_t n);

/* The view fy_st_view gives of tensor t of f (t may be a renamed copy of
 * one of f's entries, or hold data of its own). */
fy_status fy_st_view_info(const fy_st_file *f, const fy_st_info *t, fy_tensor *out);
/* One open checkpoint file; a GGUF file (io/gguf_read.c) fills the same
 * structure, so every reader of fy_st_file serves both formats. */
typedef struct fy_st_meta {
    char *key;
    char *value;
} fy_st_meta;

struct fy_st_file {
    char *path;
    const uint8_t *base;     /* the whole file */
    size_t size;
    bool mapped;             /* base is our mmap (else borrowed memory) */
    const uint8_t *data;     /* the data section: base + 8 + header length */
    uint64_t data_size;
    fy_st_info *tensors;     /* ascending offset */
    size_t count;
    const fy_st_info **by_name;
    fy_st_meta *meta;        /* sorted by key */
    size_t meta_count;
    bool has_meta;
    void *copy;              /* read into memory instead of mapped (misaligned data) */
    size_t copy_size;
    struct stat opened;      /* identity at open, for fy_st_check_unchanged */
};

/* GGUF files start with these four bytes (the safetensors header length
 * they would spell is far past its cap). */
bool fy_gguf_magic(const uint8_t *base, size_t size);
/* Fill f's tensors, metadata and data section from the GGUF file at
 * f->base [f->size] (names, shapes, offsets validated as fy_st_open does). */
fy_status fy_gguf_parse(fy_st_file *f);
/* Sort f's tensors by name into f->by_name; a name twice is an error. */
fy_status fy_st_index_names(fy_st_file *f);
char *fy_st_dup_string(const char *s);

#endif
