/* A fixed pool of worker threads running one parallel-for at a time.
 * The calling thread takes part (as thread 0), so a pool of n threads
 * starts n - 1 workers. Tasks are handed out in any order; the caller
 * returns when all are done. Not reentrant: a task must not run the pool. */
#ifndef FERRY_BACKEND_CPU_THREADPOOL_H
#define FERRY_BACKEND_CPU_THREADPOOL_H

#include <stdint.h>
#include "ferry/error.h"

typedef struct fy_threadpool fy_threadpool;

/* task in [0, n_tasks); thread in [0, n_threads) names the per-thread scratch. */
typedef void (*fy_task_fn)(void *arg, int64_t task, int thread);

fy_status fy_threadpool_create(int n_threads, fy_threadpool **out);
void fy_threadpool_free(fy_threadpool *p);
int fy_threadpool_threads(const fy_threadpool *p);
void fy_threadpool_run(fy_threadpool *p, int64_t n_tasks, fy_task_fn fn, void *arg);

#endif
