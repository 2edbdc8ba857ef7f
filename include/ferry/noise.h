/* Seeded standard-normal noise, reproducing PyTorch's CPU generator.
 *
 * fy_randn(seed, out, n) gives the values of
 *     torch.manual_seed(seed); torch.randn(n)          (float32, CPU)
 * which is also what diffusers' randn_tensor(shape, generator=
 * torch.Generator("cpu").manual_seed(seed)) gives for a contiguous shape of
 * n elements. The algorithm (ATen's normal_kernel for CPU float):
 *   - mt19937 seeded with the low 32 bits of seed (torch's
 *     CPUGeneratorImpl/at::mt19937 init; seeds >= 2^32 are truncated the
 *     same way);
 *   - n >= 16: every element first gets a float uniform
 *     u = (mt() & 0xFFFFFF) * 2^-24; then each block of 16 becomes 8
 *     Box-Muller pairs (u1 = 1 - u[j], u2 = u[j+8]; r = sqrt(-2 ln u1),
 *     out[j] = r cos(2 pi u2), out[j+8] = r sin(2 pi u2)); when n % 16 != 0
 *     the last 16 elements are redrawn with 16 fresh uniforms and
 *     transformed again (overlapping the previous block), as torch does;
 *   - n < 16: the scalar path, one double Box-Muller pair per two elements
 *     from 53-bit uniforms of two mt() outputs each (the second value of a
 *     pair is cached, as torch's generator caches it).
 * The n >= 16 transform reproduces torch's x86-64 build (normal_fill_AVX2):
 * avx_mathfun.h's Cephes float polynomials for log and sin/cos, with fused
 * multiply-adds where that build fuses them, and theta = float(2 pi) * u2 in
 * float; with that, outputs are meant to be bit-identical to torch on x86
 * CPUs (checked here against torch's printed values to 4 decimals; the
 * instruction-level match follows a port verified bit-for-bit elsewhere, and
 * has not been checked bit-for-bit in this repository: no torch here).
 * torch builds without AVX2 (e.g. aarch64) use libm in a mix of float and
 * double instead and differ in the last bits; so may MKL-specific paths.
 *
 * The output depends only on (seed, n): never on threads or chunking. */
#ifndef FERRY_NOISE_H
#define FERRY_NOISE_H

#include <stddef.h>
#include <stdint.h>
#include "ferry/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* n standard-normal floats; out may be NULL only when n == 0. */
fy_status fy_randn(uint64_t seed, float *out, size_t n);

/* n floats in [0, 1): torch.manual_seed(seed); torch.rand(n). */
fy_status fy_rand_uniform(uint64_t seed, float *out, size_t n);

/* Elements [first, first + count) of fy_randn(seed, ., n), without
 * materialising the rest (for filling a large latent in slices). The uniform
 * stream is sequential, so this costs O(first) generator steps. */
fy_status fy_randn_slice(uint64_t seed, size_t n, size_t first, float *out, size_t count);

#ifdef __cplusplus
}
#endif
#endif
