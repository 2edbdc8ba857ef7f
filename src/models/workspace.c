/* Scratch buffers from one table: estimate, allocate, release. */
#include "models/workspace.h"

#include <string.h>

static uint64_t row_bytes(const fy_ws_row *r)
{
    return (uint64_t)(r->count > 0 ? r->count : 0) * r->elem;
}

static uint64_t aligned(uint64_t bytes)
{
    return (bytes + FY_WS_ALIGN - 1) / FY_WS_ALIGN * FY_WS_ALIGN;
}

void fy_ws_init(fy_workspace *w, const char *label)
{
    memset(w, 0, sizeof *w);
    w->label = label;
}

void fy_ws_add(fy_workspace *w, void *slot, int64_t count, size_t elem, const char *label)
{
    *(void **)slot = NULL;
    if (w->n < FY_WS_MAX_ROWS) w->rows[w->n] = (fy_ws_row){slot, count, elem, label};
    w->n++; /* past FY_WS_MAX_ROWS, fy_ws_alloc refuses the table */
}

uint64_t fy_ws_bytes(const fy_workspace *w)
{
    uint64_t total = 0;
    for (int i = 0; i < w->n && i < FY_WS_MAX_ROWS; i++)
        total += w->label ? aligned(row_bytes(&w->rows[i])) : row_bytes(&w->rows[i]);
    return total;
}

fy_status fy_ws_alloc(fy_workspace *w, fy_engine *e)
{
    if (w->n > FY_WS_MAX_ROWS)
        return fy_error(FY_ERR_INTERNAL, "workspace: %d buffers, at most %d", w->n, FY_WS_MAX_ROWS);
    if (!w->label) {
        /* An empty row still gets a buffer of one element: a valid, distinct pointer. */
        for (int i = 0; i < w->n; i++) {
            const fy_ws_row *r = &w->rows[i];
            FY_TRY(fy_engine_alloc(e, (size_t)(r->count > 0 ? row_bytes(r) : r->elem), r->label, (void **)r->slot));
        }
        return FY_OK;
    }
    FY_TRY(fy_engine_alloc(e, (size_t)fy_ws_bytes(w), w->label, &w->base));
    uint64_t at = 0;
    for (int i = 0; i < w->n; i++) {
        *(void **)w->rows[i].slot = (char *)w->base + at;
        at += aligned(row_bytes(&w->rows[i]));
    }
    return FY_OK;
}

void fy_ws_free(fy_workspace *w, fy_engine *e)
{
    int n = w->n < FY_WS_MAX_ROWS ? w->n : FY_WS_MAX_ROWS;
    if (w->label) fy_engine_free_buffer(e, w->base);
    for (int i = 0; i < n; i++) {
        void **slot = w->rows[i].slot;
        if (!w->label) fy_engine_free_buffer(e, *slot);
        *slot = NULL;
    }
    w->base = NULL;
}
