/* Workers sleep on a condition variable between runs; a run is announced by
 * bumping a generation counter, tasks are claimed with an atomic counter. */
#include "backend/cpu/threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

struct fy_threadpool {
    int n_threads;
    pthread_t *workers;            /* n_threads - 1 */
    pthread_mutex_t mu;
    pthread_cond_t work_cv;
    pthread_cond_t done_cv;
    uint64_t generation;
    bool stopping;
    int busy;                      /* workers still in the current run */
    fy_task_fn fn;
    void *arg;
    int64_t n_tasks;
    atomic_int_fast64_t next_task;
};

typedef struct worker_start {
    fy_threadpool *pool;
    int index;
} worker_start;

static void run_tasks(fy_threadpool *p, int thread)
{
    for (;;) {
        int64_t t = atomic_fetch_add(&p->next_task, 1);
        if (t >= p->n_tasks) return;
        p->fn(p->arg, t, thread);
    }
}

static void *worker_main(void *raw)
{
    worker_start start = *(worker_start *)raw;
    free(raw);
    fy_threadpool *p = start.pool;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stopping && p->generation == seen) pthread_cond_wait(&p->work_cv, &p->mu);
        if (p->stopping) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        run_tasks(p, start.index);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0) pthread_cond_signal(&p->done_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void stop_workers(fy_threadpool *p, int started)
{
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < started; i++) pthread_join(p->workers[i], NULL);
}

fy_status fy_threadpool_create(int n_threads, fy_threadpool **out)
{
    *out = NULL;
    if (n_threads < 1) return fy_error(FY_ERR_INVALID, "thread pool: %d threads requested (need >= 1)", n_threads);
    fy_threadpool *p = calloc(1, sizeof *p);
    if (!p) return fy_error(FY_ERR_NOMEM, "thread pool: out of memory");
    p->n_threads = n_threads;
    p->workers = calloc((size_t)n_threads, sizeof *p->workers);
    if (!p->workers) {
        free(p);
        return fy_error(FY_ERR_NOMEM, "thread pool: out of memory");
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    atomic_init(&p->next_task, 0);
    for (int i = 1; i < n_threads; i++) {
        worker_start *ws = malloc(sizeof *ws);
        int rc = ws ? 0 : 1;
        if (ws) {
            ws->pool = p;
            ws->index = i;
            rc = pthread_create(&p->workers[i - 1], NULL, worker_main, ws);
            if (rc != 0) free(ws);
        }
        if (rc != 0) {
            stop_workers(p, i - 1);
            p->n_threads = 0;
            fy_threadpool_free(p);
            return fy_error(FY_ERR_NOMEM, "thread pool: cannot start thread %d of %d", i + 1, n_threads);
        }
    }
    *out = p;
    return FY_OK;
}

void fy_threadpool_free(fy_threadpool *p)
{
    if (!p) return;
    if (p->n_threads > 1) stop_workers(p, p->n_threads - 1);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->done_cv);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}

int fy_threadpool_threads(const fy_threadpool *p)
{
    return p->n_threads;
}

void fy_threadpool_run(fy_threadpool *p, int64_t n_tasks, fy_task_fn fn, void *arg)
{
    if (n_tasks <= 0) return;
    if (p->n_threads == 1 || n_tasks == 1) {
        for (int64_t t = 0; t < n_tasks; t++) fn(arg, t, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    atomic_store(&p->next_task, 0);
    p->busy = p->n_threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);

    run_tasks(p, 0);

    pthread_mutex_lock(&p->mu);
    while (p->busy > 0) pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
