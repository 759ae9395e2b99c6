/* dist: the ranks of a job (the only module with <mpi.h>, with the commands in mpi/).
 *
 * A dist holds the world communicator, this rank's place in the shard plan (shards/plan.h)
 * and a communicator per pipeline stage. Every function is COLLECTIVE over the world unless it
 * says "local".
 *
 * Failure policy (DESIGN.md): every rank checks; dist_agree turns the per-rank errors into one
 * verdict that every rank receives (the lowest failing rank's message, prefixed "rank r: "), so
 * rank 0 prints one line and every rank exits with the same code. Work between two agreements
 * never blocks on a rank that failed: the exchanges inside the forward pass always complete
 * (carrying a status) before the next agreement.
 *
 * Fault injection for tests: GPTOSS_FAULT="R:PHASE" (or "R:PHASE:N", the N-th time that phase
 * is reached on rank R, counting from 1) makes rank R fail with "injected fault" when it
 * reaches PHASE (open, load, attn, experts, head, decode, trace, alloc, mpi). Never set in
 * production. */
#ifndef GPTOSS_DIST_H
#define GPTOSS_DIST_H

#include <mpi.h>
#include <stdint.h>

#include "err.h"
#include "plan.h"

typedef struct {
  MPI_Comm world;            /* MPI_COMM_WORLD */
  MPI_Comm stage;            /* ranks of this rank's stage (group order) */
  int rank, size;
  plan plan;                 /* the same on every rank */
  const plan_rank *me;       /* &plan.ranks[rank] */
  uint64_t bytes_sent;       /* payload bytes this rank sent in the forward pass */
  uint64_t n_messages;
  int initialized;           /* MPI is up (dist_finalize has work to do) */
} dist;

/* MPI_Init_thread (MPI_THREAD_FUNNELED required), the world rank/size, the log rank, the stop
 * handlers of guard.h, and MPI's error handler: any failed MPI call prints which rank and what
 * failed, removes this rank's staged outputs and aborts the job (exit 1), so no MPI failure is
 * ever ignored. -1 (message printed) if MPI cannot start or lacks the thread level; call
 * dist_finalize in every case. Local to each process but every process of the job must call it. */
int dist_init(int *argc, char ***argv, dist *d);
/* Make the plan (same on every rank) and the stage communicator. */
int dist_setup(dist *d, const gpt_config *c, int n_stages, int max_tokens, int max_seq, err *e);
/* Free the communicators and the plan; MPI_Finalize. */
void dist_finalize(dist *d);

/* One verdict from every rank's err: 0 if none failed; otherwise -1 and e (on every rank) is
 * the lowest failing rank's error as "rank r: <message>", with its code. Calling it again on an
 * agreed error is safe (the prefix is not added twice). Fault hook: GPTOSS_FAULT=R:mpi makes
 * rank R's collective fail inside MPI (an invalid datatype), to test the error handler. */
int dist_agree(dist *d, err *e);
/* Test hook (local): -1 with an "injected fault" error if GPTOSS_FAULT names this rank and
 * phase (see above); 0 otherwise. */
int dist_fault(const dist *d, const char *phase, err *e);

/* Test hook (local): GPTOSS_PAUSE="R:PHASE:SECONDS" makes rank R sleep that long when it reaches
 * PHASE, so that a test can kill a rank, send a signal or change a file at a known point (phases:
 * prefill, candidate, trace-staged, report-staged, export-data). Never set in production. */
void dist_pause(const dist *d, const char *phase);

/* Sum of a per-rank counter over all ranks, delivered to every rank. */
uint64_t dist_sum_u64(dist *d, uint64_t v);
/* Largest per-rank value, delivered to every rank. */
uint64_t dist_max_u64(dist *d, uint64_t v);

/* Resident bytes of this process's file-backed mappings of files under `dir` (from
 * /proc/self/smaps), i.e. checkpoint pages this rank has touched. Local. */
uint64_t dist_resident_file_bytes(const char *dir);
/* Anonymous resident memory (RssAnon) of this process in bytes. Local. */
uint64_t dist_rss_anon(void);
/* Peak resident set (VmHWM) of this process in bytes. Local. */
uint64_t dist_peak_rss(void);
/* Reset VmHWM to the current resident set (Linux: "5" to /proc/self/clear_refs), so that
 * dist_peak_rss measures one phase. 0 ok, -1 when the kernel does not allow it. Local. */
int dist_reset_peak_rss(void);

#endif
