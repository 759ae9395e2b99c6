/* pool: every task of every run executes exactly once, for 1, 2, 3 and 8 threads, across
 * resizes up and down, for many short runs (where workers often wake after the caller has
 * claimed every task) and for runs of one task (inline); with slow tasks the workers do take
 * part; pool_threads reports the count. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "pool.h"
#include "testutil.h"

#define MAX_TASKS 257

typedef struct {
  atomic_int hits[MAX_TASKS];
  atomic_int extra;            /* a task index out of range */
  atomic_int on_worker;        /* tasks not run by the calling thread */
  int slow;
} job;

static pthread_t caller;

static void task(void *ctx, int64_t i) {
  job *j = ctx;
  if (j->slow)
    for (volatile int k = 0; k < 20000; k++) {
    }
  if (!pthread_equal(pthread_self(), caller)) atomic_fetch_add(&j->on_worker, 1);
  if (i < 0 || i >= MAX_TASKS) atomic_fetch_add(&j->extra, 1);
  else atomic_fetch_add(&j->hits[i], 1);
}

int main(void) {
  static const int counts[] = {1, 2, 3, 8, 2, 1, 4};
  static job j;
  caller = pthread_self();
  for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
    const int got = pool_set_threads(counts[c]);
    TU_CHECK(got == counts[c] && pool_threads() == counts[c], "pool_set_threads(%d) gave %d, reports %d",
             counts[c], got, pool_threads());
    long bad = 0;
    for (int run = 0; run < 3000; run++) {
      const int n = run % 7 == 0 ? MAX_TASKS : 1 + run % 5;
      memset(&j, 0, sizeof j);
      pool_run(n, task, &j);
      for (int i = 0; i < MAX_TASKS; i++) bad += atomic_load(&j.hits[i]) != (i < n);
      bad += atomic_load(&j.extra);
    }
    TU_CHECK(bad == 0, "%d threads: %ld tasks ran other than once", counts[c], bad);
    /* slow tasks (each some microseconds): the workers join; give a busy machine time to
     * schedule them (up to 100 runs) */
    int on_worker = 0;
    for (int run = 0; run < 100 && (counts[c] == 1 || on_worker == 0); run++) {
      memset(&j, 0, sizeof j);
      j.slow = 1;
      pool_run(64, task, &j);
      for (int i = 0; i < 64; i++) bad += atomic_load(&j.hits[i]) != 1;
      on_worker += atomic_load(&j.on_worker);
    }
    TU_CHECK(bad == 0, "%d threads, slow tasks: %ld tasks ran other than once", counts[c], bad);
    TU_CHECK(counts[c] == 1 ? on_worker == 0 : on_worker > 0,
             "%d threads: %d tasks ran on workers", counts[c], on_worker);
  }
  pool_set_threads(1);
  return tu_finish("test_pool");
}
