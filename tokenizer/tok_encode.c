/* Encoding: the o200k split (PCRE2) and the byte-pair merge, as tiktoken's encode_ordinary. */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "tok_unicode16.h"

const char tok_o200k_pattern[] =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* The same pattern for PCRE2. Two differences in PCRE2's reading of it are spelled out:
 * \s is Unicode White_Space as in Rust's regex (PCRE2's UCP \s lacks U+0085 NEL), and the
 * classes get the code points Unicode 16.0 (tiktoken's tables) added since the Unicode version
 * of Debian 12's PCRE2 (14.0; tok_unicode16.h; harmless with a newer PCRE2 up to 16.0). */
#define WS "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
#define CL "\\p{L}" TOK_U16_L
#define CN "\\p{N}" TOK_U16_N
#define CUP "\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}" TOK_U16_UPPER
#define CLO "\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}" TOK_U16_LOWER
#define CONTR "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
static const char pcre_pattern[] =
    "[^\\r\\n" CL CN "]?[" CUP "]*[" CLO "]+" CONTR
    "|[^\\r\\n" CL CN "]?[" CUP "]+[" CLO "]*" CONTR
    "|[" CN "]{1,3}"
    "| ?[^" WS CL CN "]+[\\r\\n/]*"
    "|[" WS "]*[\\r\\n]+"
    "|[" WS "]+(?![^" WS "])"
    "|[" WS "]+";

int tok_regex_compile(tok *t, err *e) {
  int ec;
  PCRE2_SIZE eo;
  t->re = pcre2_compile((PCRE2_SPTR)pcre_pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &ec,
                        &eo, NULL);
  if (!t->re) {
    PCRE2_UCHAR msg[200];
    pcre2_get_error_message(ec, msg, sizeof msg);
    return err_set(e, EXIT_RUNTIME, "tokenizer: PCRE2 refused the split pattern at %zu: %s", (size_t)eo,
                   (const char *)msg);
  }
  /* JIT when it works here (it may be compiled out or forbidden by W^X policies); the
   * interpreter gives the same matches. GPTOSS_TOK_NO_JIT=1 forces the interpreter (tests). */
  const char *no_jit = getenv("GPTOSS_TOK_NO_JIT");
  uint32_t have_jit = 0;
  pcre2_config(PCRE2_CONFIG_JIT, &have_jit);
  t->jit = have_jit && !(no_jit && *no_jit && strcmp(no_jit, "0") != 0) &&
           pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE) == 0;
  return 0;
}

/* ---- byte-pair merge ------------------------------------------------------------------------ */

/* Parts of a piece are named by the offset of their first byte. A heap holds candidate merges
 * keyed (rank << 32 | offset): the lowest rank first, and among equal ranks the leftmost, which
 * is tiktoken's rule. Entries made stale by an earlier merge are recognised and dropped. */
typedef struct {
  uint32_t *next, *prev, *pair, *self; /* [n + 1]: next part, previous, rank of (part, next), own rank */
  uint64_t *heap;                      /* [3n] */
  size_t cap;
} bpe_scratch;

#define DEAD UINT32_MAX

static int scratch_reserve(bpe_scratch *s, size_t n, err *e) {
  if (n + 1 <= s->cap) return 0;
  size_t cap = s->cap ? s->cap : 256;
  while (cap < n + 1) cap *= 2;
  if (cap > (SIZE_MAX / 3) / sizeof(uint64_t)) return err_set(e, EXIT_RUNTIME, "tokenizer: piece too long");
  free(s->next); free(s->prev); free(s->pair); free(s->self); free(s->heap);
  s->next = malloc(cap * sizeof *s->next);
  s->prev = malloc(cap * sizeof *s->prev);
  s->pair = malloc(cap * sizeof *s->pair);
  s->self = malloc(cap * sizeof *s->self);
  s->heap = malloc(3 * cap * sizeof *s->heap);
  s->cap = cap;
  if (!s->next || !s->prev || !s->pair || !s->self || !s->heap) {
    s->cap = 0;
    return err_set(e, EXIT_RUNTIME, "tokenizer: out of memory for a piece of %zu bytes", n);
  }
  return 0;
}

static void scratch_free(bpe_scratch *s) {
  free(s->next); free(s->prev); free(s->pair); free(s->self); free(s->heap);
}

static inline void heap_push(uint64_t *h, size_t *hn, uint64_t k) {
  size_t i = (*hn)++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (h[p] <= k) break;
    h[i] = h[p];
    i = p;
  }
  h[i] = k;
}

static inline void heap_sift_down(uint64_t *h, size_t hn, size_t i) {
  uint64_t k = h[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= hn) break;
    if (c + 1 < hn && h[c + 1] < h[c]) c++;
    if (h[c] >= k) break;
    h[i] = h[c];
    i = c;
  }
  h[i] = k;
}

static int bpe_piece(const tok *t, const uint8_t *p, size_t n, bpe_scratch *s, tok_ids *out, err *e) {
  if (n > UINT32_MAX - 1) return err_set(e, EXIT_RUNTIME, "tokenizer: a piece of %zu bytes is too long", n);
  if (scratch_reserve(s, n, e) != 0) return -1;
  uint32_t *next = s->next, *prev = s->prev, *pair = s->pair, *self = s->self;
  uint64_t *h = s->heap;
  size_t hn = 0;
  for (uint32_t i = 0; i < n; i++) {
    next[i] = i + 1;
    prev[i] = i - 1;                 /* wraps for i = 0: never read */
    self[i] = t->byte_rank[p[i]];
    pair[i] = i + 1 < n ? t->pair_rank[(uint32_t)p[i] << 8 | p[i + 1]] : TOK_NO_RANK;
    if (pair[i] != TOK_NO_RANK) h[hn++] = (uint64_t)pair[i] << 32 | i;
  }
  next[n] = (uint32_t)n;
  for (size_t i = hn / 2; i-- > 0;) heap_sift_down(h, hn, i);
  while (hn > 0) {
    uint64_t k = h[0];
    h[0] = h[--hn];
    if (hn) heap_sift_down(h, hn, 0);
    uint32_t i = (uint32_t)k, r = (uint32_t)(k >> 32);
    if (self[i] == DEAD || pair[i] != r || next[i] >= n) continue;   /* stale */
    uint32_t j = next[i], after = next[j];
    self[i] = r;
    self[j] = DEAD;
    next[i] = after;
    if (after < n) prev[after] = i;
    pair[i] = after < n ? tok_rank_of(t, p + i, next[after] - i) : TOK_NO_RANK;
    if (pair[i] != TOK_NO_RANK) heap_push(h, &hn, (uint64_t)pair[i] << 32 | i);
    if (i > 0) {
      uint32_t q = prev[i];
      pair[q] = tok_rank_of(t, p + q, after - q);
      if (pair[q] != TOK_NO_RANK) heap_push(h, &hn, (uint64_t)pair[q] << 32 | q);
    }
  }
  for (uint32_t i = 0; i < n; i = next[i])
    if (tok_ids_push(out, (int32_t)self[i], e) != 0) return -1;
  return 0;
}

/* ---- encode -------------------------------------------------------------------------------- */

static int encode_piece(const tok *t, const uint8_t *p, size_t n, bpe_scratch *s, tok_ids *out, err *e) {
  uint32_t r = tok_rank_of(t, p, n);
  if (r != TOK_NO_RANK) return tok_ids_push(out, (int32_t)r, e);
  return bpe_piece(t, p, n, s, out, e);
}

int tok_encode(const tok *t, const char *what, const char *text, size_t n, tok_ids *out, err *e) {
  if (!what) what = "text";
  size_t bad;
  if (tok_utf8_check(text, n, &bad) != 0)
    return err_set(e, EXIT_RUNTIME, "%s is not valid UTF-8 at byte offset %zu (byte 0x%02x)", what, bad,
                   (unsigned)(uint8_t)text[bad]);
  if (n == 0) return 0;
  pcre2_match_data *md = pcre2_match_data_create(1, NULL);
  pcre2_match_context *mc = pcre2_match_context_create(NULL);
  pcre2_jit_stack *js = NULL;
  bpe_scratch s = {0};
  int rc = 0;
  if (!md || !mc) {
    rc = err_set(e, EXIT_RUNTIME, "tokenizer: out of memory");
    goto done;
  }
  /* The pattern is fixed and matches in linear time; a long whitespace run backtracks once
   * over its length, which PCRE2's default match limit (10 million) would refuse. */
  pcre2_set_match_limit(mc, UINT32_MAX);
  const uint8_t *u = (const uint8_t *)text;
  size_t pos = 0;
  while (pos < n) {
    int m = t->jit ? pcre2_jit_match(t->re, u, n, pos, 0, md, mc)
                   : pcre2_match(t->re, u, n, pos, PCRE2_NO_UTF_CHECK, md, mc);
    if (m == PCRE2_ERROR_JIT_STACKLIMIT && !js) {
      js = pcre2_jit_stack_create(32 * 1024, 64u << 20, NULL);
      if (!js) { rc = err_set(e, EXIT_RUNTIME, "tokenizer: out of memory"); break; }
      pcre2_jit_stack_assign(mc, NULL, js);
      continue;
    }
    if (m == PCRE2_ERROR_NOMATCH) break;
    if (m < 0) {
      PCRE2_UCHAR msg[200];
      pcre2_get_error_message(m, msg, sizeof msg);
      rc = err_set(e, EXIT_RUNTIME, "%s: the split failed at byte offset %zu: %s", what, pos, (const char *)msg);
      break;
    }
    const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    size_t a = ov[0], b = ov[1];
    if (b <= a) {                       /* cannot happen with this pattern; never loop */
      pos = a + 1;
      while (pos < n && (u[pos] & 0xc0) == 0x80) pos++;
      continue;
    }
    /* bytes the pattern skips (none with this pattern) are dropped, as tiktoken does */
    if ((rc = encode_piece(t, u + a, b - a, &s, out, e)) != 0) break;
    pos = b;
  }
done:
  scratch_free(&s);
  if (js) pcre2_jit_stack_free(js);
  pcre2_match_context_free(mc);
  pcre2_match_data_free(md);
  return rc;
}
