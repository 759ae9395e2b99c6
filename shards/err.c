#include "err.h"

#include <stdio.h>
#include <string.h>

int err_vset(err *e, int code, const char *fmt, va_list ap) {
  if (!e || e->code != 0) return -1;  /* first error wins */
  e->code = code ? code : EXIT_RUNTIME;
  e->agreed = 0;
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  return -1;
}

int err_set(err *e, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  err_vset(e, code, fmt, ap);
  va_end(ap);
  return -1;
}

int err_errno(err *e, int errnum, const char *fmt, ...) {
  if (!e || e->code != 0) return -1;
  char head[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(head, sizeof head, fmt, ap);
  va_end(ap);
  return err_set(e, EXIT_RUNTIME, "%s: %s", head, strerror(errnum));
}

void err_clear(err *e) {
  e->code = 0;
  e->agreed = 0;
  e->msg[0] = '\0';
}
