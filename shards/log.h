/* log: messages on stderr with the conventions of STYLE.md "Output, logs, progress".
 *
 * Errors and warnings are never hidden by -q; like info and progress (which also follow the
 * verbosity) they print on the reporting rank (rank 0) only, because the ranks agree on one
 * verdict first (mpi/dist.h) and rank 0 reports it. A rank speaking about itself uses
 * log_rank_*. Before MPI is up the rank is 0. Not thread-safe; call from the
 * main thread. */
#ifndef GPTOSS_LOG_H
#define GPTOSS_LOG_H

enum { LOG_QUIET = -1, LOG_NORMAL = 0, LOG_VERBOSE = 1, LOG_DEBUG = 2 };

void log_set_level(int level);
int log_level(void);
/* This process's rank and the rank that reports (0); used to drop info on other ranks. */
void log_set_rank(int rank);
int log_rank(void);

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));  /* "gptoss-mpi: error: ..." */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));   /* "gptoss-mpi: warning: ..." */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));   /* rank 0, unless -q */
void log_verbose(const char *fmt, ...) __attribute__((format(printf, 1, 2)));/* rank 0, with -v */
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));  /* rank 0, with -vv */
/* A rank speaking about itself: "[rank r] ..." on stderr, any rank, unless -q (warnings always). */
void log_rank_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_rank_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Seconds from a monotonic clock. */
double log_now(void);

#endif
