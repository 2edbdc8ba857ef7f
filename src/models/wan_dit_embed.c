/* Wan DiT embeddings that are pure index and trigonometry work: patches,
 * the sinusoidal timestep, the 3D rotary tables. */
#include <math.h>
#include <string.h>

#include "models/wan_dit_internal.h"

int64_t fy_wan_patch_len(const fy_wan_dit_config *c, int64_t channels)
{
    return channels * c->patch[0] * c->patch[1] * c->patch[2];
}

/* Conv3d with kernel == stride is a GEMM over non-overlapping patches; the
 * patch is flattened in the weight's (c, kt, kh, kw) order. */
void fy_wan_patchify(const fy_wan_dit_config *c, const float *x, float *out, int64_t B, int64_t C,
                     int64_t F, int64_t H, int64_t W)
{
    int64_t pt = c->patch[0], ph = c->patch[1], pw = c->patch[2];
    int64_t F2 = F / pt, H2 = H / ph, W2 = W / pw, P = fy_wan_patch_len(c, C);
    for (int64_t b = 0; b < B; b++)
        for (int64_t f = 0; f < F2; f++)
            for (int64_t h = 0; h < H2; h++)
                for (int64_t w = 0; w < W2; w++) {
                    float *dst = out + (((b * F2 + f) * H2 + h) * W2 + w) * P;
                    for (int64_t ch = 0; ch < C; ch++)
                        for (int64_t i = 0; i < pt; i++)
                            for (int64_t j = 0; j < ph; j++) {
                                const float *src = x + (((b * C + ch) * F + f * pt + i) * H + h * ph + j) * W + w * pw;
                                memcpy(dst, src, (size_t)pw * sizeof *dst);
                                dst += pw;
                            }
                }
}

/* diffusers: reshape(B, F', H', W', pt, ph, pw, C).permute(0, 7, 1, 4, 2, 5, 3, 6). */
void fy_wan_unpatchify(const fy_wan_dit_config *c, const float *y, float *out, int64_t B, int64_t C,
                       int64_t F, int64_t H, int64_t W)
{
    int64_t pt = c->patch[0], ph = c->patch[1], pw = c->patch[2];
    int64_t F2 = F / pt, H2 = H / ph, W2 = W / pw, P = fy_wan_patch_len(c, C);
    for (int64_t b = 0; b < B; b++)
        for (int64_t f = 0; f < F2; f++)
            for (int64_t h = 0; h < H2; h++)
                for (int64_t w = 0; w < W2; w++) {
                    const float *src = y + (((b * F2 + f) * H2 + h) * W2 + w) * P;
                    for (int64_t i = 0; i < pt; i++)
                        for (int64_t j = 0; j < ph; j++)
                            for (int64_t k = 0; k < pw; k++)
                                for (int64_t ch = 0; ch < C; ch++) {
                                    int64_t at = (((b * C + ch) * F + f * pt + i) * H + h * ph + j) * W + w * pw + k;
                                    out[at] = *src++;
                                }
                }
}

/* Every step rounds to float32 where torch's float32 tensors do, so the
 * large arguments (t up to 1000) match to the last bit or two. */
void fy_wan_timestep_sinusoid(const float *t, int64_t B, int64_t freq_dim, float *out)
{
    int64_t half = freq_dim / 2;
    const float neg_log_period = (float)-log(10000.0);
    for (int64_t b = 0; b < B; b++) {
        float *row = out + b * freq_dim;
        for (int64_t i = 0; i < half; i++) {
            float exponent = (neg_log_period * (float)i) / (float)half;
            float arg = t[b] * expf(exponent);
            row[i] = (float)cos((double)arg);
            row[half + i] = (float)sin((double)arg);
        }
        if (freq_dim % 2) row[freq_dim - 1] = 0.0f; /* torch pads an odd dim with a zero */
    }
}

/* One axis's inverse frequencies (dim / 2 pairs), float64 as diffusers
 * computes them; the angles are rounded once to float32. */
static void rope_inv_freq(int64_t dim, double *inv_out)
{
    for (int64_t j = 0; j < dim / 2; j++) inv_out[j] = 1.0 / pow(10000.0, (double)(2 * j) / (double)dim);
}

void fy_wan_rope_tables(const fy_wan_dit_config *c, int64_t F, int64_t H, int64_t W, float *cos_t,
                        float *sin_t)
{
    int64_t d = c->head_dim;
    int64_t hd = 2 * (d / 6), wd = hd, td = d - hd - wd;
    int64_t half = d / 2;
    double inv_t[512], inv_h[512], inv_w[512]; /* head_dim <= 1024 is checked at load */
    rope_inv_freq(td, inv_t);
    rope_inv_freq(hd, inv_h);
    rope_inv_freq(wd, inv_w);
    for (int64_t f = 0; f < F; f++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++) {
                int64_t s = (f * H + h) * W + w;
                float *cr = cos_t + s * half, *sr = sin_t + s * half;
                int64_t j = 0;
                for (int64_t i = 0; i < td / 2; i++, j++) {
                    double a = (double)f * inv_t[i];
                    cr[j] = (float)cos(a);
                    sr[j] = (float)sin(a);
                }
                for (int64_t i = 0; i < hd / 2; i++, j++) {
                    double a = (double)h * inv_h[i];
                    cr[j] = (float)cos(a);
                    sr[j] = (float)sin(a);
                }
                for (int64_t i = 0; i < wd / 2; i++, j++) {
                    double a = (double)w * inv_w[i];
                    cr[j] = (float)cos(a);
                    sr[j] = (float)sin(a);
                }
            }
}
