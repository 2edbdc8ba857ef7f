/* Helpers shared by the safetensors reader and writer (not public API). */
#ifndef FERRY_IO_SAFETENSORS_INTERNAL_H
#define FERRY_IO_SAFETENSORS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ferry/safetensors.h"

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF), as
 * the Rust crate requires of a header. */
bool fy_st_utf8_valid(const uint8_t *s, size_t n);

/* The view fy_st_view gives of tensor t of f (t may be a renamed copy of
 * one of f's entries, or hold data of its own). */
fy_status fy_st_view_info(const fy_st_file *f, const fy_st_info *t, fy_tensor *out);

#endif
