/* Filling the pinned host copies in the background, for a cold start at
 * disk speed: prepare allocates and locks every streamed group's copy (so a
 * budget or pinning failure shows before any work), and this thread then
 * reads the weights out of the model files into them in declared order,
 * while the caller goes on (the text encoder runs as the transformer's
 * blocks load). An upload from a copy not filled yet waits for it, and the
 * wait counts as a stall. */
#include <stdlib.h>
#include <string.h>

#include "mem/engine_internal.h"

struct eng_pinner {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t filled_cv;
    int filled;  /* groups [0, filled) are done */
    bool stop;
};

static void fill(const fy_engine *e, eng_group *g)
{
    if (fy_eng_cast_pins_itself(g)) {
        fy_eng_cast_fill(e, g, g->pinned);
        return;
    }
    memset(g->pinned, 0, g->bytes); /* alignment padding */
    for (int w = 0; w < g->n; w++)
        memcpy((char *)g->pinned + g->offset[w], g->src[w].data, fy_tensor_nbytes(&g->src[w]));
}

static void *pinner_main(void *arg)
{
    fy_engine *e = arg;
    eng_pinner *p = e->pinner;
    for (int i = 0; i < e->n_groups; i++) {
        pthread_mutex_lock(&p->mu);
        bool stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop) break;
        if (e->groups[i].pin_pending) fill(e, &e->groups[i]);
        pthread_mutex_lock(&p->mu);
        p->filled = i + 1;
        pthread_cond_broadcast(&p->filled_cv);
        pthread_mutex_unlock(&p->mu);
    }
    return NULL;
}

fy_status fy_eng_pinner_start(fy_engine *e)
{
    bool any = false;
    for (int i = 0; i < e->n_groups; i++) any = any || e->groups[i].pin_pending;
    if (!any) return FY_OK;
    eng_pinner *p = calloc(1, sizeof *p);
    if (!p) return fy_error(FY_ERR_NOMEM, "engine: out of memory for the pinning thread");
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->filled_cv, NULL);
    e->pinner = p;
    if (pthread_create(&p->thread, NULL, pinner_main, e) != 0) {
        /* No thread: fill them here, as before. */
        e->pinner = NULL;
        pthread_cond_destroy(&p->filled_cv);
        pthread_mutex_destroy(&p->mu);
        free(p);
        for (int i = 0; i < e->n_groups; i++)
            if (e->groups[i].pin_pending) fill(e, &e->groups[i]);
        for (int i = 0; i < e->n_groups; i++) e->groups[i].pin_pending = false;
    }
    return FY_OK;
}

void fy_eng_pinner_wait(fy_engine *e, const eng_group *g)
{
    eng_pinner *p = e->pinner;
    if (!p || !g->pin_pending) return;
    int index = (int)(g - e->groups);
    pthread_mutex_lock(&p->mu);
    if (p->filled <= index) {
        double t0 = fy_backend_now();
        while (p->filled <= index) pthread_cond_wait(&p->filled_cv, &p->mu);
        pthread_mutex_unlock(&p->mu);
        fy_eng_stats_stall(e, g->name, t0, fy_backend_now());
        return;
    }
    pthread_mutex_unlock(&p->mu);
}

void fy_eng_pinner_stop(fy_engine *e)
{
    eng_pinner *p = e->pinner;
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    pthread_cond_destroy(&p->filled_cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
    e->pinner = NULL;
}
