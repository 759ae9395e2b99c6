/* Text: UTF-8 validation, decoding ids to text (raw, replaced, escaped), streaming decode, and
 * the growable buffers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

/* ---- buffers ------------------------------------------------------------------------------- */

int tok_ids_push(tok_ids *v, int32_t id, err *e) {
  if (v->n == v->cap) {
    size_t cap = v->cap ? 2 * v->cap : 256;
    if (cap > SIZE_MAX / sizeof *v->ids) return err_set(e, EXIT_RUNTIME, "tokenizer: too many ids");
    int32_t *p = realloc(v->ids, cap * sizeof *p);
    if (!p) return err_set(e, EXIT_RUNTIME, "tokenizer: out of memory for %zu ids", cap);
    v->ids = p;
    v->cap = cap;
  }
  v->ids[v->n++] = id;
  return 0;
}

void tok_ids_free(tok_ids *v) {
  free(v->ids);
  v->ids = NULL;
  v->n = v->cap = 0;
}

int tok_buf_append(tok_buf *b, const void *data, size_t n, err *e) {
  if (n >= SIZE_MAX / 2 - b->n) return err_set(e, EXIT_RUNTIME, "tokenizer: text too large");
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return err_set(e, EXIT_RUNTIME, "tokenizer: out of memory for %zu bytes of text", cap);
    b->p = p;
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->n, data, n);
  b->n += n;
  b->p[b->n] = '\0';
  return 0;
}

void tok_buf_free(tok_buf *b) {
  free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
}

int tok_buf_put_utf8(tok_buf *b, uint32_t cp, err *e) {
  uint8_t u[4];
  size_t n;
  if (cp < 0x80) { u[0] = (uint8_t)cp; n = 1; }
  else if (cp < 0x800) { u[0] = (uint8_t)(0xc0 | cp >> 6); u[1] = (uint8_t)(0x80 | (cp & 63)); n = 2; }
  else if (cp < 0x10000) {
    u[0] = (uint8_t)(0xe0 | cp >> 12); u[1] = (uint8_t)(0x80 | ((cp >> 6) & 63));
    u[2] = (uint8_t)(0x80 | (cp & 63)); n = 3;
  } else {
    u[0] = (uint8_t)(0xf0 | cp >> 18); u[1] = (uint8_t)(0x80 | ((cp >> 12) & 63));
    u[2] = (uint8_t)(0x80 | ((cp >> 6) & 63)); u[3] = (uint8_t)(0x80 | (cp & 63)); n = 4;
  }
  return tok_buf_append(b, u, n, e);
}

/* ---- UTF-8 --------------------------------------------------------------------------------- */

/* WHATWG "UTF-8 decode": the first byte fixes the length and the range of the second byte
 * (which excludes overlongs, surrogates and code points above U+10FFFF); a byte outside the
 * expected range ends the maximal subpart, which becomes one U+FFFD, and is read again. */
int tok_utf8_next(const uint8_t *s, size_t n, size_t i, uint32_t *cp, size_t *len_bad, int *at_end) {
  uint8_t b = s[i];
  *at_end = 0;
  if (b < 0x80) { *cp = b; return 1; }
  size_t need;
  uint32_t c;
  uint8_t lo = 0x80, hi = 0xbf;
  if (b >= 0xc2 && b <= 0xdf) { need = 1; c = b & 0x1f; }
  else if (b >= 0xe0 && b <= 0xef) {
    need = 2; c = b & 0x0f;
    if (b == 0xe0) lo = 0xa0;
    if (b == 0xed) hi = 0x9f;
  } else if (b >= 0xf0 && b <= 0xf4) {
    need = 3; c = b & 0x07;
    if (b == 0xf0) lo = 0x90;
    if (b == 0xf4) hi = 0x8f;
  } else {
    *len_bad = 1;
    return 0;
  }
  for (size_t k = 1; k <= need; k++) {
    if (i + k >= n) { *len_bad = k; *at_end = 1; return 0; }
    uint8_t x = s[i + k];
    if (x < lo || x > hi) { *len_bad = k; return 0; }
    lo = 0x80;
    hi = 0xbf;
    c = c << 6 | (x & 0x3f);
  }
  *cp = c;
  return (int)need + 1;
}

int tok_utf8_check(const char *str, size_t n, size_t *bad_off) {
  const uint8_t *s = (const uint8_t *)str;
  size_t i = 0;
  while (i < n) {
    while (i + 8 <= n) {     /* ASCII runs eight bytes at a time */
      uint64_t v;
      memcpy(&v, s + i, 8);
      if (v & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    if (s[i] < 0x80) { i++; continue; }
    uint32_t cp;
    size_t bad;
    int at_end;
    int k = tok_utf8_next(s, n, i, &cp, &bad, &at_end);
    if (k == 0) {
      *bad_off = i;
      return -1;
    }
    i += (size_t)k;
  }
  return 0;
}

/* ---- text modes ---------------------------------------------------------------------------- */

static int put_escaped_cp(tok_buf *b, uint32_t cp, const uint8_t *raw, int len, err *e) {
  char q[16];
  if (cp == '\n') return tok_buf_append(b, "\\n", 2, e);
  if (cp == '\r') return tok_buf_append(b, "\\r", 2, e);
  if (cp == '\t') return tok_buf_append(b, "\\t", 2, e);
  if (cp == '\\') return tok_buf_append(b, "\\\\", 2, e);
  if (cp < 0x20 || cp == 0x7f) {
    snprintf(q, sizeof q, "\\x%02x", (unsigned)cp);
    return tok_buf_append(b, q, 4, e);
  }
  if ((cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029) {
    int k = snprintf(q, sizeof q, "\\u{%04X}", (unsigned)cp);
    return tok_buf_append(b, q, (size_t)k, e);
  }
  return tok_buf_append(b, raw, (size_t)len, e);
}

int tok_text_append(const void *bytes, size_t n, tok_text_mode mode, tok_buf *out, err *e) {
  const uint8_t *s = bytes;
  if (mode == TOK_TEXT_RAW) return tok_buf_append(out, s, n, e);
  size_t i = 0;
  while (i < n) {
    size_t run = i;                       /* copy plain bytes in runs */
    while (run < n && s[run] >= 0x20 && s[run] < 0x7f && (mode == TOK_TEXT_REPLACE || s[run] != '\\')) run++;
    if (run > i) {
      if (tok_buf_append(out, s + i, run - i, e) != 0) return -1;
      i = run;
      continue;
    }
    uint32_t cp;
    size_t bad;
    int at_end;
    int k = tok_utf8_next(s, n, i, &cp, &bad, &at_end);
    if (k > 0) {
      int rc = mode == TOK_TEXT_ESCAPE ? put_escaped_cp(out, cp, s + i, k, e)
                                       : tok_buf_append(out, s + i, (size_t)k, e);
      if (rc != 0) return -1;
      i += (size_t)k;
    } else if (mode == TOK_TEXT_REPLACE) {
      if (tok_buf_append(out, "\xef\xbf\xbd", 3, e) != 0) return -1;
      i += bad;
    } else {
      for (size_t j = 0; j < bad; j++) {
        char q[8];
        snprintf(q, sizeof q, "\\x%02x", s[i + j]);
        if (tok_buf_append(out, q, 4, e) != 0) return -1;
      }
      i += bad;
    }
  }
  return 0;
}

int tok_decode(const tok *t, const int32_t *ids, size_t n, tok_text_mode mode, tok_buf *out, err *e) {
  if (mode == TOK_TEXT_RAW || n == 0) {
    for (size_t i = 0; i < n; i++) {
      const uint8_t *p;
      size_t len;
      if (!tok_id_valid(t, ids[i]))
        return err_set(e, EXIT_RUNTIME, "token %zu: id %ld is not in the vocabulary (ranks 0..%u, specials %d..%d)",
                       i + 1, (long)ids[i], t->n_ranks - 1, TOK_FIRST_SPECIAL, TOK_N_VOCAB - 1);
      if (tok_token_bytes(t, ids[i], &p, &len, e) != 0) return -1;
      if (tok_buf_append(out, p, len, e) != 0) return -1;
    }
    return 0;
  }
  /* a character may be split between tokens: convert the concatenated bytes */
  tok_buf raw = {0};
  int rc = tok_decode(t, ids, n, TOK_TEXT_RAW, &raw, e);
  if (rc == 0) rc = tok_text_append(raw.p, raw.n, mode, out, e);
  tok_buf_free(&raw);
  return rc;
}

/* ---- streaming ----------------------------------------------------------------------------- */

void tok_stream_init(tok_stream *s) { s->n_pend = 0; }

int tok_stream_push(const tok *t, tok_stream *s, int32_t id, tok_buf *out, err *e) {
  const uint8_t *p;
  size_t n;
  if (tok_token_bytes(t, id, &p, &n, e) != 0) return -1;
  uint8_t local[TOK_TOKEN_MAX + 4];
  size_t total = (size_t)s->n_pend + n;
  if (total > sizeof local) {           /* specials are short; ranks <= TOK_TOKEN_MAX */
    return err_set(e, EXIT_RUNTIME, "token id %ld: %zu bytes is too long to stream", (long)id, n);
  }
  memcpy(local, s->pend, (size_t)s->n_pend);
  memcpy(local + s->n_pend, p, n);
  size_t i = 0;
  while (i < total) {
    uint32_t cp;
    size_t bad;
    int at_end;
    int k = tok_utf8_next(local, total, i, &cp, &bad, &at_end);
    if (k > 0) {
      if (tok_buf_append(out, local + i, (size_t)k, e) != 0) return -1;
      i += (size_t)k;
    } else if (at_end) {                  /* a valid beginning: wait for the next token */
      break;
    } else {
      if (tok_buf_append(out, "\xef\xbf\xbd", 3, e) != 0) return -1;
      i += bad;
    }
  }
  s->n_pend = (int)(total - i);
  memcpy(s->pend, local + i, (size_t)s->n_pend);
  return 0;
}

int tok_stream_finish(tok_stream *s, tok_buf *out, err *e) {
  int rc = s->n_pend ? tok_buf_append(out, "\xef\xbf\xbd", 3, e) : 0;
  s->n_pend = 0;
  return rc;
}
