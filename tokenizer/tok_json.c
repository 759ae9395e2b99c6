/* A small JSON reader for tokenizer.json (RFC 8259): one pass builds a flat array of nodes that
 * point into the source text (no string is copied until asked for), so a 27 MB file costs about
 * 2x its size instead of a tree of heap nodes. Syntax errors name the byte and line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

#define TJ_DEPTH_MAX 256
/* o200k's tokenizer.json has about 1.6 million values; this bounds the nodes (20 bytes each)
 * a hostile file can make. */
#define TJ_NODES_MAX (16u << 20)

typedef struct {
  const char *s;
  size_t n, i;
  tj_doc *d;
  const char *path;
  err *e;
  int depth;
} tj_parser;

static int tj_fail(tj_parser *p, const char *what) {
  size_t line = 1, off = p->i < p->n ? p->i : p->n;
  for (size_t k = 0; k < off; k++) line += p->s[k] == '\n';
  return err_set(p->e, EXIT_RUNTIME, "%s: not valid JSON (at byte %zu, line %zu: %s)", p->path, off, line, what);
}

static void tj_ws(tj_parser *p) {
  while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r')) p->i++;
}

static int tj_new(tj_parser *p, tj_type type, uint32_t *idx) {
  tj_doc *d = p->d;
  if (d->n == d->cap) {
    size_t cap = d->cap ? 2 * d->cap : 4096;
    if (d->n >= TJ_NODES_MAX)
      return err_set(p->e, EXIT_RUNTIME, "%s: more than %u JSON values (not a tokenizer.json?)", p->path, TJ_NODES_MAX);
    tj_node *nn = realloc(d->node, cap * sizeof *nn);
    if (!nn) return err_set(p->e, EXIT_RUNTIME, "%s: out of memory", p->path);
    d->node = nn;
    d->cap = cap;
  }
  *idx = (uint32_t)d->n++;
  tj_node *x = &d->node[*idx];
  memset(x, 0, sizeof *x);
  x->type = type;
  x->off = (uint32_t)p->i;
  return 0;
}

static int tj_string(tj_parser *p, uint32_t *idx) {
  if (tj_new(p, TJ_STRING, idx) != 0) return -1;
  size_t start = ++p->i;               /* after the quote */
  int escaped = 0;
  for (;;) {
    if (p->i >= p->n) return tj_fail(p, "unterminated string");
    unsigned char c = (unsigned char)p->s[p->i];
    if (c == '"') break;
    if (c < 0x20) return tj_fail(p, "control character in a string");
    if (c == '\\') {
      escaped = 1;
      if (++p->i >= p->n) return tj_fail(p, "unterminated escape");
      char x = p->s[p->i];
      if (x == 'u') {
        for (int k = 1; k <= 4; k++) {
          char h = p->i + (size_t)k < p->n ? p->s[p->i + (size_t)k] : 0;
          if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F')))
            return tj_fail(p, "bad \\u escape");
        }
        p->i += 4;
      } else if (!strchr("\"\\/bfnrt", x) || !x) {
        return tj_fail(p, "unknown escape");
      }
    }
    p->i++;
  }
  tj_node *x = &p->d->node[*idx];
  x->off = (uint32_t)start;
  x->len = (uint32_t)(p->i - start);
  x->escaped = (unsigned)escaped;
  p->i++;
  return 0;
}

static int tj_number(tj_parser *p, uint32_t *idx) {
  if (tj_new(p, TJ_NUMBER, idx) != 0) return -1;
  size_t a = p->i;
  if (p->i < p->n && p->s[p->i] == '-') p->i++;
  if (p->i < p->n && p->s[p->i] == '0') p->i++;
  else if (p->i < p->n && p->s[p->i] >= '1' && p->s[p->i] <= '9') while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
  else return tj_fail(p, "bad number");
  if (p->i < p->n && p->s[p->i] == '.') {
    p->i++;
    if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return tj_fail(p, "bad number");
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
  }
  if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
    p->i++;
    if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
    if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return tj_fail(p, "bad number");
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
  }
  tj_node *x = &p->d->node[*idx];
  x->len = (uint32_t)(p->i - a);
  if (x->len > 40) return tj_fail(p, "number too long");
  return 0;
}

static int tj_value(tj_parser *p, uint32_t *idx);

static int tj_container(tj_parser *p, uint32_t *idx, int object) {
  if (++p->depth > TJ_DEPTH_MAX) return tj_fail(p, "nested too deeply");
  if (tj_new(p, object ? TJ_OBJECT : TJ_ARRAY, idx) != 0) return -1;
  p->i++;
  uint32_t count = 0, prev = 0;
  tj_ws(p);
  if (p->i < p->n && p->s[p->i] == (object ? '}' : ']')) {
    p->i++;
  } else {
    for (;;) {
      uint32_t k = 0, v;
      tj_ws(p);
      if (object) {
        if (p->i >= p->n || p->s[p->i] != '"') return tj_fail(p, "expected a string key");
        if (tj_string(p, &k) != 0) return -1;
        tj_ws(p);
        if (p->i >= p->n || p->s[p->i] != ':') return tj_fail(p, "expected ':'");
        p->i++;
        tj_ws(p);
      }
      if (tj_value(p, &v) != 0) return -1;
      if (object) p->d->node[v].key = k;
      if (prev) p->d->node[prev].next = v;
      prev = v;
      count++;
      tj_ws(p);
      if (p->i < p->n && p->s[p->i] == ',') { p->i++; continue; }
      if (p->i < p->n && p->s[p->i] == (object ? '}' : ']')) { p->i++; break; }
      return tj_fail(p, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
  }
  p->d->node[*idx].len = count;
  p->depth--;
  return 0;
}

static int tj_literal(tj_parser *p, const char *word, tj_type type, uint32_t *idx) {
  size_t k = strlen(word);
  if (p->n - p->i < k || memcmp(p->s + p->i, word, k) != 0) return tj_fail(p, "unexpected character");
  if (tj_new(p, type, idx) != 0) return -1;
  p->i += k;
  return 0;
}

static int tj_value(tj_parser *p, uint32_t *idx) {
  if (p->i >= p->n) return tj_fail(p, "unexpected end");
  switch (p->s[p->i]) {
    case '{': return tj_container(p, idx, 1);
    case '[': return tj_container(p, idx, 0);
    case '"': return tj_string(p, idx);
    case 't': return tj_literal(p, "true", TJ_TRUE, idx);
    case 'f': return tj_literal(p, "false", TJ_FALSE, idx);
    case 'n': return tj_literal(p, "null", TJ_NULL, idx);
    default: return tj_number(p, idx);
  }
}

int tj_parse(const char *path, const char *s, size_t n, tj_doc *d, err *e) {
  memset(d, 0, sizeof *d);
  d->src = s;
  if (n > UINT32_MAX - 1) return err_set(e, EXIT_RUNTIME, "%s: too large for JSON", path);
  tj_parser p = {s, n, 0, d, path, e, 0};
  uint32_t none, root;
  if (tj_new(&p, TJ_NULL, &none) != 0) return -1;    /* node 0: "no node"; the root is TJ_ROOT */
  tj_ws(&p);
  if (tj_value(&p, &root) != 0) return -1;
  tj_ws(&p);
  if (p.i != n) return tj_fail(&p, "text after the JSON value");
  return 0;
}

void tj_free(tj_doc *d) {
  free(d->node);
  memset(d, 0, sizeof *d);
}

/* ---- access -------------------------------------------------------------------------------- */

const char *tj_kind(const tj_doc *d, uint32_t i) {
  static const char *const names[] = {"null", "false", "true", "a number", "a string", "an array", "an object"};
  return i && i < d->n ? names[d->node[i].type] : "missing";
}

uint32_t tj_first(const tj_doc *d, uint32_t i) {
  if (!i) return 0;
  const tj_node *x = &d->node[i];
  return (x->type == TJ_ARRAY || x->type == TJ_OBJECT) && x->len ? i + 1 + (x->type == TJ_OBJECT) : 0;
}

/* Decoded string of node i into buf (cap bytes, NUL-terminated); -1 if not a string, too long,
 * or holding a \u0000 or a lone surrogate. */
int tj_str(const tj_doc *d, uint32_t i, char *buf, size_t cap, size_t *len) {
  const tj_node *x = &d->node[i];
  if (!i || x->type != TJ_STRING) return -1;
  const char *s = d->src + x->off;
  size_t o = 0;
  if (!x->escaped) {
    if (x->len >= cap) return -1;
    memcpy(buf, s, x->len);
    o = x->len;
  } else {
    for (size_t k = 0; k < x->len;) {
      if (o + 5 >= cap) return -1;
      if (s[k] != '\\') { buf[o++] = s[k++]; continue; }
      char c = s[++k];
      k++;
      if (c != 'u') {
        buf[o++] = c == 'b' ? '\b' : c == 'f' ? '\f' : c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c;
        continue;
      }
      uint32_t cp = (uint32_t)strtoul((char[5]){s[k], s[k + 1], s[k + 2], s[k + 3], 0}, NULL, 16);
      k += 4;
      if (cp >= 0xd800 && cp <= 0xdbff && k + 6 <= x->len && s[k] == '\\' && s[k + 1] == 'u') {
        uint32_t lo = (uint32_t)strtoul((char[5]){s[k + 2], s[k + 3], s[k + 4], s[k + 5], 0}, NULL, 16);
        if (lo < 0xdc00 || lo > 0xdfff) return -1;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        k += 6;
      } else if (cp >= 0xd800 && cp <= 0xdfff) {
        return -1;
      }
      if (cp == 0) return -1;
      if (cp < 0x80) buf[o++] = (char)cp;
      else if (cp < 0x800) { buf[o++] = (char)(0xc0 | cp >> 6); buf[o++] = (char)(0x80 | (cp & 63)); }
      else if (cp < 0x10000) {
        buf[o++] = (char)(0xe0 | cp >> 12); buf[o++] = (char)(0x80 | ((cp >> 6) & 63)); buf[o++] = (char)(0x80 | (cp & 63));
      } else {
        buf[o++] = (char)(0xf0 | cp >> 18); buf[o++] = (char)(0x80 | ((cp >> 12) & 63));
        buf[o++] = (char)(0x80 | ((cp >> 6) & 63)); buf[o++] = (char)(0x80 | (cp & 63));
      }
    }
  }
  buf[o] = '\0';
  if (len) *len = o;
  return 0;
}

int tj_is_str(const tj_doc *d, uint32_t i, const char *s) {
  const tj_node *x = &d->node[i];
  size_t k = strlen(s);
  return i && x->type == TJ_STRING && !x->escaped && x->len == k && memcmp(d->src + x->off, s, k) == 0;
}

uint32_t tj_get(const tj_doc *d, uint32_t obj, const char *key) {
  if (!obj || d->node[obj].type != TJ_OBJECT) return 0;
  for (uint32_t v = tj_first(d, obj); v; v = d->node[v].next)
    if (tj_is_str(d, d->node[v].key, key)) return v;
  return 0;
}

int tj_index(const tj_doc *d, uint32_t i, double max, uint32_t *out) {
  const tj_node *x = &d->node[i];
  if (!i || x->type != TJ_NUMBER) return -1;
  char b[48];
  memcpy(b, d->src + x->off, x->len);
  b[x->len] = '\0';
  char *end;
  double v = strtod(b, &end);
  if (!(v >= 0 && v < max) || (double)(uint32_t)v != v) return -1;
  *out = (uint32_t)v;
  return 0;
}
