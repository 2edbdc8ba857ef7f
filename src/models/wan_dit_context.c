/* The cross-attention K/V cache: one [batch * text_len, dim] key and value
 * buffer per block in the engine pool, filled by the first forward that
 * uses it (the text's K/V depend on nothing else) and reused until
 * fy_wan_dit_context_invalidate. */
#include <stdlib.h>
#include <string.h>

#include "models/wan_dit_internal.h"

static uint64_t context_bytes(const fy_wan_dit *m, int64_t batch, int64_t tokens)
{
    return (uint64_t)m->cfg.num_layers * 2 * (uint64_t)batch * (uint64_t)tokens * (uint64_t)m->cfg.dim *
           sizeof(float);
}

uint64_t fy_wan_dit_context_bytes(const fy_wan_dit *m, int64_t batch, int64_t text_len)
{
    if (!m || batch < 1 || text_len < 1) return 0;
    return context_bytes(m, batch, text_len);
}

uint64_t fy_wan_dit_context_bytes_for(const fy_wan_dit *m, const fy_wan_dit_shape *s)
{
    if (!m || !s || s->batch < 1 || s->text_len < 1 || s->image_len < 0) return 0;
    return context_bytes(m, s->batch, s->text_len + s->image_len);
}

fy_status fy_wan_dit_context_create(fy_wan_dit *m, fy_wan_dit_context **out)
{
    if (!m || !out) return fy_error(FY_ERR_INVALID, "fy_wan_dit_context_create: NULL argument");
    fy_wan_dit_context *c = calloc(1, sizeof *c);
    if (c) c->valid = calloc((size_t)m->cfg.num_layers, sizeof *c->valid);
    if (!c || !c->valid) {
        free(c);
        return fy_error(FY_ERR_NOMEM, "wan transformer: out of memory");
    }
    c->model = m;
    *out = c;
    return FY_OK;
}

void fy_wan_dit_context_invalidate(fy_wan_dit_context *c)
{
    if (c) memset(c->valid, 0, (size_t)c->model->cfg.num_layers * sizeof *c->valid);
}

void fy_wan_dit_context_free(fy_wan_dit_context *c)
{
    if (!c) return;
    if (c->kv) fy_engine_free_buffer(c->model->engine, c->kv);
    free(c->valid);
    free(c);
}

/* Buffers on first use; a different batch or text length is a new prompt. */
fy_status fy_wan_context_bind(fy_wan_dit_context *c, fy_wan_dit *m, int64_t batch, int64_t text_len,
                              int64_t image_len)
{
    if (c->model != m) return fy_error(FY_ERR_INVALID, "wan transformer: the context belongs to another model");
    if (c->kv && c->batch == batch && c->text_len == text_len && c->image_len == image_len) return FY_OK;
    if (c->kv) fy_engine_free_buffer(m->engine, c->kv);
    c->kv = NULL;
    fy_wan_dit_context_invalidate(c);
    FY_TRY(fy_engine_alloc(m->engine, (size_t)context_bytes(m, batch, text_len + image_len), "wan cross k/v cache",
                           (void **)&c->kv));
    c->batch = batch;
    c->text_len = text_len;
    c->image_len = image_len;
    return FY_OK;
}

bool fy_wan_context_complete(const fy_wan_dit_context *c)
{
    for (int64_t i = 0; i < c->model->cfg.num_layers; i++)
        if (!c->valid[i]) return false;
    return true;
}
