/* GELU(approximate="tanh"), the activation of the Wan feed-forward and of
 * T5's gated feed-forward. Outside the matrix products it is the largest
 * cost of a transformer block (ffn_dim x tokens values), and libm's tanhf is
 * a call per element. On AVX2+FMA hosts it runs 8 lanes at a time as
 * x * sigmoid(2u) = x / (1 + exp(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3)
 * -- the same function as 0.5 x (1 + tanh u) -- with Cephes' expf
 * polynomial (a few ulp, far inside the fixtures' 1e-5); elsewhere it is
 * the plain formula. The choice depends on the host, never on the thread
 * count, so results stay identical for any number of threads. */
#include "backend/cpu/ops_internal.h"

#include <math.h>
#include <stdbool.h>

static inline float gelu_tanh_scalar(float v)
{
    return 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
}

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define FY_HAVE_AVX2_GELU 1

__attribute__((target("avx2,fma"))) static void gelu_tanh_avx2(const float *x, float *out, int64_t n)
{
    const __m256 k = _mm256_set1_ps(0.79788456080286536f), c3 = _mm256_set1_ps(0.044715f);
    const __m256 lo = _mm256_set1_ps(-87.0f), hi = _mm256_set1_ps(88.0f), one = _mm256_set1_ps(1.0f);
    const __m256 m2 = _mm256_set1_ps(-2.0f), log2e = _mm256_set1_ps(1.44269504088896341f);
    const __m256 magic = _mm256_set1_ps(12582912.0f); /* 1.5 * 2^23: round to nearest */
    const __m256 ln2_hi = _mm256_set1_ps(0.693359375f), ln2_lo = _mm256_set1_ps(-2.12194440e-4f);
    const __m256 p0 = _mm256_set1_ps(1.9875691500e-4f), p1 = _mm256_set1_ps(1.3981999507e-3f);
    const __m256 p2 = _mm256_set1_ps(8.3334519073e-3f), p3 = _mm256_set1_ps(4.1665795894e-2f);
    const __m256 p4 = _mm256_set1_ps(1.6666665459e-1f), p5 = _mm256_set1_ps(5.0000001201e-1f);
    const __m256i bias = _mm256_set1_epi32(0x4B400000 - 127);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 u = _mm256_mul_ps(k, _mm256_fmadd_ps(_mm256_mul_ps(c3, v), _mm256_mul_ps(v, v), v));
        __m256 a = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(m2, u), lo), hi);
        /* exp(a) = 2^m p(r), r = a - m ln2 */
        __m256 t = _mm256_fmadd_ps(a, log2e, magic);
        __m256 m = _mm256_sub_ps(t, magic);
        __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_sub_epi32(_mm256_castps_si256(t), bias), 23));
        __m256 r = _mm256_fnmadd_ps(m, ln2_lo, _mm256_fnmadd_ps(m, ln2_hi, a));
        __m256 p = _mm256_fmadd_ps(p0, r, p1);
        p = _mm256_fmadd_ps(p, r, p2);
        p = _mm256_fmadd_ps(p, r, p3);
        p = _mm256_fmadd_ps(p, r, p4);
        p = _mm256_fmadd_ps(p, r, p5);
        p = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), one);
        __m256 e = _mm256_mul_ps(p, scale);
        _mm256_storeu_ps(out + i, _mm256_div_ps(v, _mm256_add_ps(one, e)));
    }
    for (; i < n; i++) out[i] = gelu_tanh_scalar(x[i]);
}

static bool have_avx2(void)
{
    /* Every thread computes the same value; atomic so that racing is defined. */
    static _Atomic int cached = -1;
    int v = cached;
    if (v < 0) cached = v = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return v == 1;
}
#endif

static void gelu_tanh_any(const float *x, float *out, int64_t n)
{
#ifdef FY_HAVE_AVX2_GELU
    if (have_avx2()) {
        gelu_tanh_avx2(x, out, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) out[i] = gelu_tanh_scalar(x[i]);
}

void fy_cpu_gelu_tanh_span(const float *x, const float *gate, float *out, int64_t n)
{
    if (!gate) {
        gelu_tanh_any(x, out, n);
        return;
    }
    /* out may be gate itself (in place): GELU a chunk aside before gating. */
    float tmp[256];
    for (int64_t at = 0; at < n; at += 256) {
        int64_t len = n - at < 256 ? n - at : 256;
        gelu_tanh_any(x + at, tmp, len);
        for (int64_t i = 0; i < len; i++) out[at + i] = tmp[i] * gate[at + i];
    }
}
