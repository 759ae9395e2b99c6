/* pool.c: one job slot. A run is published under the lock (generation + tasks), tasks are
 * claimed with an atomic counter by the caller and by the workers that join while the run is
 * open; when the caller has no task left it closes the run and waits only for the workers that
 * joined. A worker that wakes late (the machine is busy, its core is taken) finds the run
 * closed and goes back to sleep, so a run never waits for a scheduler wake-up it does not need. */
#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>

#define POOL_MAX 256

static struct {
  pthread_mutex_t mu;
  pthread_cond_t wake, done;
  pthread_t tid[POOL_MAX];
  unsigned long start_gen[POOL_MAX]; /* generation when worker i was created */
  int n_workers;             /* threads besides the caller; worker i >= n_workers exits */
  unsigned long gen;         /* bumped for every run (and for a shrink) */
  int open;                  /* the current run may still be joined */
  int active;                /* workers inside the current run */
  pool_task_fn fn;
  void *ctx;
  int64_t n_tasks;
  atomic_llong next;         /* next task to claim */
} P = {.mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER};

static void work(void) {
  for (;;) {
    const int64_t i = atomic_fetch_add(&P.next, 1);
    if (i >= P.n_tasks) return;
    P.fn(P.ctx, i);
  }
}

static void *worker(void *arg) {
  const int self = (int)(intptr_t)arg;
  pthread_mutex_lock(&P.mu);
  unsigned long seen = P.start_gen[self];
  for (;;) {
    while (P.gen == seen) pthread_cond_wait(&P.wake, &P.mu);
    seen = P.gen;
    if (self >= P.n_workers) break;
    if (!P.open) continue;
    P.active++;
    pthread_mutex_unlock(&P.mu);
    work();
    pthread_mutex_lock(&P.mu);
    if (--P.active == 0 && !P.open) pthread_cond_signal(&P.done);
  }
  pthread_mutex_unlock(&P.mu);
  return NULL;
}

int pool_threads(void) { return P.n_workers + 1; }

int pool_set_threads(int n) {
  const int want = (n < 1 ? 1 : n > POOL_MAX ? POOL_MAX : n) - 1;
  pthread_mutex_lock(&P.mu);
  const int old = P.n_workers;
  if (want < old) { /* workers >= want exit when they see the new generation */
    P.n_workers = want;
    P.open = 0;
    P.gen++;
    pthread_cond_broadcast(&P.wake);
  }
  while (P.n_workers < want) {
    P.start_gen[P.n_workers] = P.gen;
    if (pthread_create(&P.tid[P.n_workers], NULL, worker, (void *)(intptr_t)P.n_workers) != 0)
      break;
    P.n_workers++;
  }
  const int now = P.n_workers;
  pthread_mutex_unlock(&P.mu);
  for (int i = want; i < old; i++) pthread_join(P.tid[i], NULL);
  return now + 1;
}

void pool_run(int64_t n_tasks, pool_task_fn fn, void *ctx) {
  if (P.n_workers == 0 || n_tasks <= 1) {
    for (int64_t i = 0; i < n_tasks; i++) fn(ctx, i);
    return;
  }
  pthread_mutex_lock(&P.mu);
  P.fn = fn;
  P.ctx = ctx;
  P.n_tasks = n_tasks;
  atomic_store(&P.next, 0);
  P.open = 1;
  P.gen++;
  pthread_cond_broadcast(&P.wake);
  pthread_mutex_unlock(&P.mu);
  work();
  pthread_mutex_lock(&P.mu);
  P.open = 0; /* every task is claimed: late workers stay out */
  while (P.active > 0) pthread_cond_wait(&P.done, &P.mu);
  pthread_mutex_unlock(&P.mu);
}
