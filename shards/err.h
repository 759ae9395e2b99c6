/* err: the error value every library function fills (STYLE.md "Errors").
 *
 * Library code never prints, exits or aborts on bad input: it fills an `err` with the file,
 * the tensor or key, what was expected and what was found, and returns -1. The first error
 * wins (later err_set calls on an already-set err are ignored), so a caller can add context
 * only where nothing more precise was said.
 *
 * Exit codes of the tool (DESIGN.md): 0 ok, 1 runtime error, 2 usage, 3 parity failed. */
#ifndef GPTOSS_ERR_H
#define GPTOSS_ERR_H

#include <stdarg.h>

enum { EXIT_OK_ = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_PARITY = 3 };

typedef struct {
  int code;       /* 0 = no error; otherwise the exit code it maps to (1, 2 or 3) */
  int agreed;     /* 1 once dist_agree made it the job's verdict (msg carries "rank r: ") */
  char msg[512];  /* one line, no trailing newline */
} err;

/* Set e (if not already set) to code + printf-style message. Always returns -1. */
int err_set(err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Same with a va_list. */
int err_vset(err *e, int code, const char *fmt, va_list ap);
/* Runtime error (code 1) with the strerror text of errnum appended: "<msg>: <strerror>". */
int err_errno(err *e, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Clear e to "no error". */
void err_clear(err *e);
/* 1 if an error is set. */
static inline int err_isset(const err *e) { return e->code != 0; }

#endif
