#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static int g_level = LOG_NORMAL;
static int g_rank = 0;

void log_set_level(int level) { g_level = level; }
int log_level(void) { return g_level; }
void log_set_rank(int rank) { g_rank = rank; }
int log_rank(void) { return g_rank; }

static void emit(const char *prefix, const char *fmt, va_list ap) {
  fputs(prefix, stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  fflush(stderr);
}

#define LOG_BODY(cond, prefix)        \
  do {                                \
    if (!(cond)) return;              \
    va_list ap;                       \
    va_start(ap, fmt);                \
    emit(prefix, fmt, ap);            \
    va_end(ap);                       \
  } while (0)

void log_error(const char *fmt, ...) { LOG_BODY(g_rank == 0, "gptoss-mpi: error: "); }
void log_warn(const char *fmt, ...) { LOG_BODY(g_rank == 0, "gptoss-mpi: warning: "); }
void log_info(const char *fmt, ...) { LOG_BODY(g_rank == 0 && g_level >= LOG_NORMAL, ""); }
void log_verbose(const char *fmt, ...) { LOG_BODY(g_rank == 0 && g_level >= LOG_VERBOSE, ""); }
void log_debug(const char *fmt, ...) { LOG_BODY(g_rank == 0 && g_level >= LOG_DEBUG, "debug: "); }

void log_rank_warn(const char *fmt, ...) {
  char prefix[48];
  snprintf(prefix, sizeof prefix, "gptoss-mpi: warning: [rank %d] ", g_rank);
  LOG_BODY(1, prefix);
}

void log_rank_info(const char *fmt, ...) {
  char prefix[32];
  snprintf(prefix, sizeof prefix, "[rank %d] ", g_rank);
  LOG_BODY(g_level >= LOG_NORMAL, prefix);
}

double log_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
