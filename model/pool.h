/* pool: the worker threads of the direct kernels (kern.h). pool_run hands out tasks 0..n-1
 * (each task a fixed range of output rows, so the result never depends on which thread runs a
 * task or on the thread count) and returns when all are done; the calling thread works too.
 *
 * Process-wide, like the matrix library's thread count (model_set_threads sets both). Workers
 * are created by pool_set_threads, outside any forward call, and sleep on a condition variable
 * between runs (no spinning: ranks of a node may share cores). Not reentrant: one pool_run at
 * a time (a model is used by one thread at a time, model.h). Local. */
#ifndef GPTOSS_POOL_H
#define GPTOSS_POOL_H

#include <stdint.h>

typedef void (*pool_task_fn)(void *ctx, int64_t task);

/* Use n threads in total (n - 1 workers; n < 1 counts as 1). Returns the count in use: fewer if
 * a thread could not be created. */
int pool_set_threads(int n);
int pool_threads(void);

/* Run fn(ctx, i) for i in [0, n_tasks) over the pool; returns when every task has finished. */
void pool_run(int64_t n_tasks, pool_task_fn fn, void *ctx);

#endif
