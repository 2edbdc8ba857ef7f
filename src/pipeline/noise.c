/* torch-compatible seeded normal noise (see ferry/noise.h for the algorithm). */
#include "ferry/noise.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#define MT_N 624
#define MT_M 397

/* at::mt19937: the reference Mersenne Twister, one 32-bit output per call. */
typedef struct mt19937 {
    uint32_t state[MT_N];
    int next;
} mt19937;

static void mt_seed(mt19937 *mt, uint64_t seed)
{
    mt->state[0] = (uint32_t)(seed & 0xffffffffu);
    for (int j = 1; j < MT_N; j++) {
        uint32_t prev = mt->state[j - 1];
        mt->state[j] = 1812433253u * (prev ^ (prev >> 30)) + (uint32_t)j;
    }
    mt->next = MT_N;
}

static void mt_twist(mt19937 *mt)
{
    uint32_t *s = mt->state;
    for (int i = 0; i < MT_N; i++) {
        uint32_t y = (s[i] & 0x80000000u) | (s[(i + 1) % MT_N] & 0x7fffffffu);
        s[i] = s[(i + MT_M) % MT_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    mt->next = 0;
}

static uint32_t mt_next(mt19937 *mt)
{
    if (mt->next >= MT_N) mt_twist(mt);
    uint32_t y = mt->state[mt->next++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

/* at::uniform_real_distribution<float>: 24 random bits scaled to [0, 1). */
static float uniform_float(mt19937 *mt)
{
    return (float)(mt_next(mt) & 0xffffffu) * (1.0f / 16777216.0f);
}

/* at::uniform_real_distribution<double>: 53 bits of random64() (first output high). */
static double uniform_double(mt19937 *mt)
{
    uint64_t hi = mt_next(mt);
    uint64_t lo = mt_next(mt);
    uint64_t v = ((hi << 32) | lo) & ((UINT64_C(1) << 53) - 1);
    return (double)v * (1.0 / 9007199254740992.0);
}

/* torch's x86 build runs Box-Muller through avx_mathfun.h's Cephes polynomials
 * (log256_ps, sincos256_ps), compiled with fused multiply-adds. Matching its
 * bits means the same polynomials with fmaf() exactly where that build fuses,
 * and no other contraction (hence one operation per statement). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

static float bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t float_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* log256_ps for one lane; x > 0. */
static float cephes_logf(float x)
{
    x = fmaxf(x, bits_to_float(0x00800000u)); /* smallest normal */
    int32_t exponent = (int32_t)(float_to_bits(x) >> 23) - 0x7f;
    x = bits_to_float((float_to_bits(x) & ~0x7f800000u) | float_to_bits(0.5f)); /* mantissa in [0.5, 1) */
    float e = (float)exponent;
    e = e + 1.0f;
    bool below = x < 0.707106781186547524f;
    float tmp = below ? x : 0.0f;
    x = x - 1.0f;
    if (below) e = e - 1.0f;
    x = x + tmp;
    float z = x * x;
    float y = 7.0376836292e-2f;
    y = fmaf(y, x, -1.1514610310e-1f);
    y = fmaf(y, x, 1.1676998740e-1f);
    y = fmaf(y, x, -1.2420140846e-1f);
    y = fmaf(y, x, 1.4249322787e-1f);
    y = fmaf(y, x, -1.6668057665e-1f);
    y = fmaf(y, x, 2.0000714765e-1f);
    y = fmaf(y, x, -2.4999993993e-1f);
    y = fmaf(y, x, 3.3333331174e-1f);
    y = y * x;
    float e_q1 = e * -2.12194440e-4f;
    y = fmaf(y, z, e_q1);
    y = fmaf(z, -0.5f, y);
    x = x + y;
    return fmaf(e, 0.693359375f, x);
}

/* sincos256_ps for one lane. */
static void cephes_sincosf(float theta, float *sin_out, float *cos_out)
{
    uint32_t sign_sin = float_to_bits(theta) & 0x80000000u;
    float x = fabsf(theta);
    float scaled = x * 1.27323954473516f; /* 4 / pi */
    int32_t octant = (int32_t)scaled;     /* truncation, as cvttps */
    octant = (octant + 1) & ~1;
    float yq = (float)octant;
    uint32_t swap_sign = (uint32_t)(octant & 4) << 29;
    bool sine_poly = (octant & 2) == 0;
    sign_sin ^= swap_sign;
    uint32_t sign_cos = (uint32_t)(~(octant - 2) & 4) << 29;
    /* x - yq * pi/4 in three pieces (extended precision). */
    x = fmaf(yq, -0.78515625f, x);
    x = fmaf(yq, -2.4187564849853515625e-4f, x);
    x = fmaf(yq, -3.77489497744594108e-8f, x);
    float z = x * x;
    float yc = fmaf(2.443315711809948e-5f, z, -1.388731625493765e-3f);
    yc = fmaf(yc, z, 4.166664568298827e-2f);
    yc = yc * z;
    float half_z = z * 0.5f;
    yc = fmaf(yc, z, -half_z);
    yc = yc + 1.0f;
    float ys = fmaf(-1.9515295891e-4f, z, 8.3321608736e-3f);
    ys = fmaf(ys, z, -1.6666654611e-1f);
    ys = ys * z;
    ys = fmaf(ys, x, x);
    float s = sine_poly ? ys : yc, c = sine_poly ? yc : ys;
    *sin_out = bits_to_float(float_to_bits(s) ^ sign_sin);
    *cos_out = bits_to_float(float_to_bits(c) ^ sign_cos);
}

/* normal_fill_16_AVX2: eight Box-Muller pairs (j, j + 8). */
static void box_muller_16(const float u[16], float out[16])
{
    const float two_pi = (float)(2.0 * 3.14159265358979323846);
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - u[j];
        float radius = sqrtf(-2.0f * cephes_logf(u1));
        float theta = two_pi * u[j + 8];
        float s, c;
        cephes_sincosf(theta, &s, &c);
        /* torch stores fmadd(n, std = 1, mean = 0): n + 0, which turns -0 into +0. */
        float n1 = radius * c, n2 = radius * s;
        out[j] = n1 + 0.0f;
        out[j + 8] = n2 + 0.0f;
    }
}

static void fill_16(mt19937 *mt, float u[16])
{
    for (int j = 0; j < 16; j++) u[j] = uniform_float(mt);
}

/* Copy the part of a 16-block starting at element `base` that lies in [first, first+count). */
static void copy_overlap(const float block[16], size_t base, size_t first, size_t count, float *out)
{
    size_t lo = base > first ? base : first;
    size_t hi = base + 16 < first + count ? base + 16 : first + count;
    for (size_t i = lo; i < hi; i++) out[i - first] = block[i - base];
}

/* n >= 16: torch's normal_fill. */
static void randn_vectorised(mt19937 *mt, size_t n, size_t first, size_t count, float *out)
{
    size_t full = n / 16;
    /* Elements from tail_start on come from the redrawn final block. */
    size_t tail_start = (n % 16) ? n - 16 : n;
    size_t end = first + count;
    float u[16], z[16];
    for (size_t b = 0; b < full; b++) {
        size_t base = b * 16;
        fill_16(mt, u);
        if (base + 16 <= first || base >= end || base >= tail_start) continue;
        box_muller_16(u, z);
        size_t stop = base + 16 < tail_start ? 16 : tail_start - base;
        size_t hi = end < base + stop ? end : base + stop;
        for (size_t i = base > first ? base : first; i < hi; i++) out[i - first] = z[i - base];
    }
    if (n % 16) {
        fill_16(mt, u);
        box_muller_16(u, z);
        copy_overlap(z, tail_start, first, count, out);
    }
}

/* n < 16: at::normal_distribution<double>, caching the sine of each pair. */
static void randn_scalar(mt19937 *mt, size_t n, float *all)
{
    const double two_pi = 2.0 * 3.14159265358979323846;
    for (size_t i = 0; i < n; i += 2) {
        double u1 = uniform_double(mt);
        double u2 = uniform_double(mt);
        double r = sqrt(-2.0 * log(1.0 - u2));
        double theta = two_pi * u1;
        all[i] = (float)(r * cos(theta));
        if (i + 1 < n) all[i + 1] = (float)(r * sin(theta));
    }
}

fy_status fy_randn_slice(uint64_t seed, size_t n, size_t first, float *out, size_t count)
{
    if (first > n || count > n - first)
        return fy_error(FY_ERR_INVALID, "randn: slice [%zu, %zu) is outside %zu elements", first,
                        first + count, n);
    if (count == 0) return FY_OK;
    if (!out) return fy_error(FY_ERR_INVALID, "randn: no output buffer");
    mt19937 mt;
    mt_seed(&mt, seed);
    if (n >= 16) {
        randn_vectorised(&mt, n, first, count, out);
    } else {
        float all[16];
        randn_scalar(&mt, n, all);
        memcpy(out, all + first, count * sizeof(float));
    }
    return FY_OK;
}

fy_status fy_randn(uint64_t seed, float *out, size_t n)
{
    return fy_randn_slice(seed, n, 0, out, n);
}

fy_status fy_rand_uniform(uint64_t seed, float *out, size_t n)
{
    if (n == 0) return FY_OK;
    if (!out) return fy_error(FY_ERR_INVALID, "rand: no output buffer");
    mt19937 mt;
    mt_seed(&mt, seed);
    for (size_t i = 0; i < n; i++) out[i] = uniform_float(&mt);
    return FY_OK;
}
