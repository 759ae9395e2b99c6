#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static int g_level = LOG_NORMAL;
static int g_rank = 0;

void log_set_level(int level) { g_level = level; }
int log_level(void) { return g_level; }
void log_set_rank(int rank) { g_rank = rank; }
int log_rank(void) { return g_rank; }

/* One line, one write(2): under mpirun a line written in pieces can be interleaved with the
 * launcher's own messages. */
static void emit(const char *prefix, const char *fmt, va_list ap) {
  char line[2048];
  int n = snprintf(line, sizeof line, "%s", prefix);
  if (n < 0) return;
  if ((size_t)n < sizeof line) {
    int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    n = m < 0 ? n : n + m;
  }
  if ((size_t)n >= sizeof line - 1) n = (int)sizeof line - 2; /* cut, but still one line */
  line[n++] = '\n';
  fflush(stderr);
  for (const char *p = line; n > 0;) {
    ssize_t w = write(STDERR_FILENO, p, (size_t)n);
    if (w <= 0) break;
    p += w;
    n -= (int)w;
  }
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
