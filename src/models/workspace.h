/* A model's scratch buffers, declared once as a table: each row says which
 * pointer it fills, how many elements of that pointer's type it holds and
 * what it is called. The same table gives the activation estimate the
 * planner reserves, the buffers and their release, so none can drift from
 * the others. */
#ifndef FERRY_MODELS_WORKSPACE_H
#define FERRY_MODELS_WORKSPACE_H

#include <stddef.h>
#include <stdint.h>

#include "ferry/engine.h"
#include "ferry/error.h"

#define FY_WS_MAX_ROWS 32
#define FY_WS_ALIGN 64 /* bytes: where each row starts inside one shared buffer */

typedef struct fy_ws_row {
    void *slot;        /* the address of the model's pointer (a float **, int64_t **, ...) */
    int64_t count;     /* elements */
    size_t elem;       /* bytes per element */
    const char *label; /* the buffer's name when each row has its own */
} fy_ws_row;

typedef struct fy_workspace {
    const char *label; /* one buffer of this name holds every row; NULL: a buffer per row */
    fy_ws_row rows[FY_WS_MAX_ROWS];
    int n;
    void *base; /* the one buffer */
} fy_workspace;

/* An empty table: label names one buffer carved into the rows (each at a
 * multiple of FY_WS_ALIGN), NULL gives every row an engine buffer of its own. */
void fy_ws_init(fy_workspace *w, const char *label);

/* A row of count elements of ptr's type, whose address goes into ptr (set NULL until allocated). */
#define FY_WS_ADD(w, ptr, count, label) fy_ws_add((w), (void *)&(ptr), (int64_t)(count), sizeof *(ptr), (label))
void fy_ws_add(fy_workspace *w, void *slot, int64_t count, size_t elem, const char *label);

/* The device bytes fy_ws_alloc takes for this table. */
uint64_t fy_ws_bytes(const fy_workspace *w);

/* Allocates the table's buffers from the engine and fills every row's pointer. */
fy_status fy_ws_alloc(fy_workspace *w, fy_engine *e);

/* Releases whatever fy_ws_alloc got (also after it failed part way) and clears the pointers. */
void fy_ws_free(fy_workspace *w, fy_engine *e);

#endif
