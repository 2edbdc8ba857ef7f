/* Wan's rotary position embedding: interleaved pairs rotated in place. */
#include "backend/cpu/ops_internal.h"

typedef struct rope_args {
    float *x;
    const float *cos_t, *sin_t;
    int64_t L, H, D;
} rope_args;

static void rope_rows(void *raw, int64_t begin, int64_t end)
{
    const rope_args *p = raw;
    const int64_t half = p->D / 2;
    for (int64_t r = begin; r < end; r++) { /* r indexes (batch, position) */
        const float *c = p->cos_t + (r % p->L) * half;
        const float *s = p->sin_t + (r % p->L) * half;
        for (int64_t h = 0; h < p->H; h++) {
            float *x = p->x + (r * p->H + h) * p->D;
            for (int64_t i = 0; i < half; i++) {
                float x0 = x[2 * i], x1 = x[2 * i + 1];
                x[2 * i] = x0 * c[i] - x1 * s[i];
                x[2 * i + 1] = x0 * s[i] + x1 * c[i];
            }
        }
    }
}

void fy_cpu_rope(fy_cpu_ctx *ctx, float *x, const float *cos_t, const float *sin_t, int64_t B,
                 int64_t L, int64_t H, int64_t D)
{
    rope_args args = {x, cos_t, sin_t, L, H, D};
    int64_t row = H * D > 0 ? H * D : 1;
    fy_cpu_parallel_range(ctx, B * L, (FY_CPU_GRAIN + row - 1) / row, rope_rows, &args);
}
