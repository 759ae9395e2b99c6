#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic.h"
#include "log.h"

void cli_common_init(cli_common *cc) {
  cc->verbose = 0;
  cc->quiet = 0;
  cc->progress_s = 10.0;
  log_set_level(LOG_NORMAL);
}

int cli_common_opt(int opt, const char *arg, const char *usage, cli_common *cc, int *done, int *rc) {
  err e = {0};
  double v;
  switch (opt) {
    case 'h': /* under mpirun every rank parses; one copy is enough */
      if (log_rank() == 0) { fputs(usage, stdout); fputs(CLI_COMMON_HELP, stdout); }
      *done = 1; *rc = 0; return 1;
    case CLI_OPT_VERSION:
      if (log_rank() == 0) printf("gptoss-mpi %s\n", GPTOSS_VERSION);
      *done = 1; *rc = 0; return 1;
    case 'v': cc->verbose++; if (!cc->quiet) log_set_level(cc->verbose >= 2 ? LOG_DEBUG : LOG_VERBOSE); return 1;
    case 'q': cc->quiet = 1; log_set_level(LOG_QUIET); return 1;
    case CLI_OPT_PROGRESS:
      if (cli_parse_double(arg, "--progress", 0.0, 1e9, &v, &e) != 0) {
        log_error("%s", e.msg);
        *done = 1; *rc = EXIT_USAGE; return 1;
      }
      cc->progress_s = v;
      return 1;
    default: return 0;
  }
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  log_error("%s: %s (see 'gptoss-mpi %s --help')", cmd, msg, cmd);
  return EXIT_USAGE;
}

int cli_bad_option(const char *cmd) {
  /* getopt already printed what was wrong with the option */
  log_error("%s: bad option (see 'gptoss-mpi %s --help')", cmd, cmd);
  return EXIT_USAGE;
}

int cli_parse_long(const char *s, const char *what, long min, long max, long *out, err *e) {
  char *end;
  errno = 0;
  long v = s && *s ? strtol(s, &end, 10) : 0;
  if (!s || !*s || errno || *end != '\0')
    return err_set(e, EXIT_USAGE, "%s: '%s' is not an integer", what, s ? s : "");
  if (v < min || v > max)
    return err_set(e, EXIT_USAGE, "%s: %ld is out of range [%ld, %ld]", what, v, min, max);
  *out = v;
  return 0;
}

int cli_parse_double(const char *s, const char *what, double min, double max, double *out, err *e) {
  char *end;
  errno = 0;
  double v = s && *s ? strtod(s, &end) : 0;
  if (!s || !*s || errno || *end != '\0' || !isfinite(v))
    return err_set(e, EXIT_USAGE, "%s: '%s' is not a number", what, s ? s : "");
  if (v < min || v > max)
    return err_set(e, EXIT_USAGE, "%s: %g is out of range [%g, %g]", what, v, min, max);
  *out = v;
  return 0;
}

/* Shared by the two id readers: tokens separated by any char in seps. */
static int parse_id_list(const char *s, const char *seps, const char *what, int64_t max_id,
                         int32_t **ids, int *n, err *e) {
  *ids = NULL;
  *n = 0;
  size_t cap = 0, count = 0;
  int32_t *v = NULL;
  const char *p = s;
  while (*p) {
    while (*p && strchr(seps, *p)) p++;
    if (!*p) break;
    char *end;
    errno = 0;
    long long x = strtoll(p, &end, 10);
    if (end == p || errno || (*end && !strchr(seps, *end))) {
      free(v);
      return err_set(e, EXIT_USAGE, "%s: token %zu is not an integer id", what, count + 1);
    }
    if (x < 0 || x > INT32_MAX || (max_id >= 0 && x > max_id)) {
      free(v);
      return err_set(e, EXIT_USAGE, "%s: id %lld (token %zu) is out of range [0, %lld]", what, x,
                     count + 1, (long long)(max_id >= 0 ? max_id : INT32_MAX));
    }
    if (count == cap) {
      cap = cap ? 2 * cap : 64;
      int32_t *nv = realloc(v, cap * sizeof *nv);
      if (!nv) { free(v); return err_set(e, EXIT_RUNTIME, "%s: out of memory", what); }
      v = nv;
    }
    v[count++] = (int32_t)x;
    p = end;
  }
  if (count == 0) {
    free(v);
    return err_set(e, EXIT_USAGE, "%s: no token ids given", what);
  }
  if (count > INT32_MAX / 2) {
    free(v);
    return err_set(e, EXIT_USAGE, "%s: too many ids", what);
  }
  *ids = v;
  *n = (int)count;
  return 0;
}

int cli_parse_ids(const char *s, const char *what, int64_t max_id, int32_t **ids, int *n, err *e) {
  /* commas only: "1, 2" from a shell would be two arguments anyway */
  return parse_id_list(s, ", ", what, max_id, ids, n, e);
}

int cli_read_ids_file(const char *path, int64_t max_id, int32_t **ids, int *n, err *e) {
  char *buf;
  size_t len;
  if (fs_read_file(path, "prompt file", 64u << 20, &buf, &len, e) != 0) return -1;
  if (strlen(buf) != len) {
    free(buf);
    return err_set(e, EXIT_USAGE, "%s: binary data in prompt file", path);
  }
  int rc = parse_id_list(buf, ", \t\r\n", path, max_id, ids, n, e);
  free(buf);
  return rc;
}
