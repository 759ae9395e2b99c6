/* strbuf: a growable text buffer filled with printf, for outputs that are built whole before
 * anything is written (so a failure prints nothing half-done). Local. */
#ifndef GPTOSS_STRBUF_H
#define GPTOSS_STRBUF_H

#include <stddef.h>

typedef struct {
  char *p;       /* NUL-terminated text (NULL while empty) */
  size_t n, cap;
  int oom;       /* an allocation failed: the text is incomplete */
} strbuf;

/* Append printf-style text; after a failed allocation every call does nothing and oom is 1. */
void strbuf_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_free(strbuf *b);

#endif
