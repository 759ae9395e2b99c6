#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void strbuf_printf(strbuf *b, const char *fmt, ...) {
  if (b->oom) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
    va_end(ap);
    if (k < 0) { b->oom = 1; return; }
    if (b->p && (size_t)k < b->cap - b->n) { b->n += (size_t)k; return; }
    size_t cap = b->cap ? b->cap : 8192;
    while (cap < b->n + (size_t)k + 1) cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np) { b->oom = 1; return; }
    b->p = np;
    b->cap = cap;
  }
}

void strbuf_free(strbuf *b) {
  free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
}
