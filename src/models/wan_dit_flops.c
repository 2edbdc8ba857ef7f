/* The arithmetic of one transformer block at a shape: what the planner
 * divides by the device's rate for its first estimate of a step, before
 * anything has run. Multiply-adds count 2; norms, modulation and RoPE are
 * left out (a few percent at video sizes). */
#include "models/wan_dit_internal.h"

double fy_wan_dit_block_flops(const fy_wan_dit *m, const fy_wan_dit_shape *s, bool cross_kv_cached)
{
    if (!m || fy_wan_dit_check_shape(m, s) != FY_OK) return 0;
    const fy_wan_dit_config *c = &m->cfg;
    double D = (double)c->dim, F = (double)c->ffn_dim, B = (double)s->batch;
    double L = (double)(s->frames / c->patch[0]) * (double)(s->height / c->patch[1]) * (double)(s->width / c->patch[2]);
    double Lt = (double)s->text_len, Li = (double)s->image_len;
    double per_token = 8 * D * D   /* self-attention q, k, v, out */
                       + 4 * L * D /* its scores and weighted sum */
                       + 4 * D * D /* cross-attention q, out */
                       + 4 * Lt * D + 4 * Li * D /* cross-attention over the text (and image) tokens */
                       + 4 * D * F; /* feed-forward */
    double flops = B * L * per_token;
    if (!cross_kv_cached) flops += B * (Lt + Li) * 4 * D * D; /* their keys and values, each step */
    return flops;
}

fy_status fy_wan_dit_declare_flops(fy_wan_dit *m, const fy_wan_dit_shape *s, bool cross_kv_cached)
{
    double flops = fy_wan_dit_block_flops(m, s, cross_kv_cached);
    for (int64_t i = 0; i < m->cfg.num_layers; i++) FY_TRY(fy_engine_set_group_flops(m->engine, m->block_groups[i], flops));
    return FY_OK;
}
