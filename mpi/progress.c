/* Progress lines with the job's figures (progress.h). */
#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

enum { PROGRESS_TAG = 7101 };

void progress_begin(progress *p, dist *d, int reduce, const char *label, const char *unit,
                    uint64_t total, double every_s) {
  memset(p, 0, sizeof *p);
  p->label = label;
  p->unit = unit;
  p->total = total;
  p->every = every_s;
  p->t0 = p->last_print = p->last_send = log_now();
  p->d = d;
  p->reduce = reduce && d && d->size > 1;
  p->req = MPI_REQUEST_NULL;
  p->comm = MPI_COMM_NULL;
  if (!p->reduce) return;
  MPI_Comm_dup(d->world, &p->comm);
  int ok = 1;
  if (d->rank == 0) {
    p->counts = calloc((size_t)d->size, sizeof *p->counts);
    p->final = calloc((size_t)d->size, 1);
    ok = p->counts && p->final;
  }
  MPI_Bcast(&ok, 1, MPI_INT, 0, p->comm);
  if (!ok) { /* no memory for the counts: rank 0's own figure only */
    free(p->counts);
    free(p->final);
    p->counts = NULL;
    p->final = NULL;
    MPI_Comm_free(&p->comm);
    p->reduce = 0;
  }
}

static uint64_t job_done(const progress *p) {
  if (!p->reduce) return p->own;
  uint64_t s = p->own;
  for (int r = 1; r < p->d->size; r++) s += p->counts[r];
  return s;
}

/* Rank 0: take every count that has arrived. */
static void drain(progress *p) {
  for (;;) {
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, PROGRESS_TAG, p->comm, &flag, &st);
    if (!flag) return;
    uint64_t m[2];
    MPI_Recv(m, 2, MPI_UINT64_T, st.MPI_SOURCE, PROGRESS_TAG, p->comm, MPI_STATUS_IGNORE);
    p->counts[st.MPI_SOURCE] = m[0];
    if (m[1]) p->final[st.MPI_SOURCE] = 1;
  }
}

static void print_line(const progress *p, uint64_t done, double now) {
  const double el = now - p->t0, rate = el > 0 ? (double)done / el : 0;
  const double left = rate > 0 && p->total > done ? (double)(p->total - done) / rate : 0;
  const double pct = p->total ? 100.0 * (double)done / (double)p->total : 100.0;
  char ranks[32] = "";
  if (p->reduce) snprintf(ranks, sizeof ranks, ", %d ranks", p->d->size);
  if (p->unit)
    log_info("%s: %llu of %llu %s (%.0f %%%s), %.2f %s/s, %.0f s left", p->label,
             (unsigned long long)done, (unsigned long long)p->total, p->unit, pct, ranks, rate,
             p->unit, left);
  else if (p->total >= (1ull << 30))
    log_info("%s: %.2f of %.2f GiB (%.0f %%%s), %.1f MiB/s, %.0f s left", p->label,
             done / 1073741824.0, p->total / 1073741824.0, pct, ranks, rate / 1048576.0, left);
  else
    log_info("%s: %.1f of %.1f MiB (%.0f %%%s), %.1f MiB/s, %.0f s left", p->label,
             done / 1048576.0, p->total / 1048576.0, pct, ranks, rate / 1048576.0, left);
}

void progress_note(progress *p, uint64_t done) {
  p->own = done;
  if (p->every <= 0) return;
  const double now = log_now();
  if (p->reduce && p->d->rank != 0) {
    /* at most one message in flight, at most one every half interval */
    int idle = 1;
    if (p->req != MPI_REQUEST_NULL) MPI_Test(&p->req, &idle, MPI_STATUS_IGNORE);
    if (idle && now - p->last_send >= p->every / 2) {
      p->msg[0] = done;
      p->msg[1] = 0;
      MPI_Isend(p->msg, 2, MPI_UINT64_T, 0, PROGRESS_TAG, p->comm, &p->req);
      p->last_send = now;
    }
    return;
  }
  if (p->reduce) drain(p);
  if (now - p->last_print < p->every) return;
  p->last_print = now;
  const uint64_t all = job_done(p);
  if (all < p->total) print_line(p, all, now);
}

uint64_t progress_end(progress *p) {
  if (!p->reduce) return p->own;
  uint64_t all = p->own;
  if (p->d->rank != 0) {
    if (p->req != MPI_REQUEST_NULL) MPI_Wait(&p->req, MPI_STATUS_IGNORE);
    p->msg[0] = p->own;
    p->msg[1] = 1;
    MPI_Send(p->msg, 2, MPI_UINT64_T, 0, PROGRESS_TAG, p->comm);
  } else {
    /* every rank's messages, up to and including its final one (same source and tag: in order) */
    for (int r = 1; r < p->d->size; r++)
      while (!p->final[r]) {
        uint64_t m[2];
        MPI_Recv(m, 2, MPI_UINT64_T, r, PROGRESS_TAG, p->comm, MPI_STATUS_IGNORE);
        p->counts[r] = m[0];
        p->final[r] = (uint8_t)(m[1] != 0);
      }
    all = job_done(p);
  }
  free(p->counts);
  free(p->final);
  p->counts = NULL;
  p->final = NULL;
  MPI_Comm_free(&p->comm);
  return all;
}
