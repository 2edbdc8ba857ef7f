/* Scanning stored weights for NaN and infinity: the bits of each format,
 * so that no value is converted (and the scan runs at memory speed). */
#include "ferry/finite.h"
#include "ferry/quant_gguf.h"

#include <string.h>

/* Blocks of 64 elements without branches (the compiler vectorises them),
 * then element by element from the block that has a hit. */
#define BLOCK 64

static bool scan16(const uint8_t *p, size_t n, uint16_t exp_mask, size_t *at)
{
    size_t i = 0;
    for (; i + BLOCK <= n; i += BLOCK) {
        uint16_t v[BLOCK];
        memcpy(v, p + 2 * i, sizeof v);
        unsigned hit = 0;
        for (size_t k = 0; k < BLOCK; k++) hit |= (v[k] & exp_mask) == exp_mask;
        if (hit) break;
    }
    for (; i < n; i++) {
        uint16_t v;
        memcpy(&v, p + 2 * i, 2);
        if ((v & exp_mask) == exp_mask) return *at = i, true;
    }
    return false;
}

static bool scan32(const uint8_t *p, size_t n, size_t *at)
{
    const uint32_t mask = 0x7f800000u;
    size_t i = 0;
    for (; i + BLOCK <= n; i += BLOCK) {
        uint32_t v[BLOCK];
        memcpy(v, p + 4 * i, sizeof v);
        unsigned hit = 0;
        for (size_t k = 0; k < BLOCK; k++) hit |= (v[k] & mask) == mask;
        if (hit) break;
    }
    for (; i < n; i++) {
        uint32_t v;
        memcpy(&v, p + 4 * i, 4);
        if ((v & mask) == mask) return *at = i, true;
    }
    return false;
}

static bool scan64(const uint8_t *p, size_t n, size_t *at)
{
    const uint64_t mask = 0x7ff0000000000000ull;
    for (size_t i = 0; i < n; i++) {
        uint64_t v;
        memcpy(&v, p + 8 * i, 8);
        if ((v & mask) == mask) return *at = i, true;
    }
    return false;
}

static bool scan8(const uint8_t *p, size_t n, uint8_t mask, uint8_t value, size_t *at)
{
    for (size_t i = 0; i < n; i++)
        if ((p[i] & mask) == value) return *at = i, true;
    return false;
}

bool fy_find_nonfinite(const void *data, fy_dtype dtype, size_t n, size_t *at)
{
    const uint8_t *p = data;
    if (fy_dtype_is_quant(dtype)) { /* only the blocks' f16 scales can be NaN or infinite */
        int64_t block = 0;
        if (!fy_gguf_find_nonfinite(p, dtype, (int64_t)(n / fy_dtype_block(dtype)), &block)) return false;
        *at = (size_t)block * fy_dtype_block(dtype);
        return true;
    }
    switch (dtype) {
    case FY_F32: return scan32(p, n, at);
    case FY_F16: return scan16(p, n, 0x7c00u, at);
    case FY_BF16: return scan16(p, n, 0x7f80u, at);
    case FY_F64: return scan64(p, n, at);
    case FY_F8_E4M3: return scan8(p, n, 0x7f, 0x7f, at); /* e4m3fn: only NaN, S.1111.111 */
    case FY_F8_E5M2: return scan8(p, n, 0x7c, 0x7c, at);
    default: return false; /* integers and scale formats hold no NaN */
    }
}
