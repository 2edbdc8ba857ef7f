/* Helpers shared by the safetensors reader and writer (not public API). */
#ifndef FERRY_IO_SAFETENSORS_INTERNAL_H
#define FERRY_IO_SAFETENSORS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF), as
 * the Rust crate requires of a header. */
bool fy_st_utf8_valid(const uint8_t *s, size_t n);

#endif
