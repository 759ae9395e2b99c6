/* libFuzzer target: the tokenizer (tokenizer/tok.h). The first byte picks what the rest is:
 *   0: a vocabulary file (ranks file or tokenizer.json, TOK_OPEN_PARTIAL); if accepted, text
 *      encodes and decodes back through it;
 *   1: text, encoded with a small built-in vocabulary and, when $TOK_RANKS names
 *      o200k_base.tiktoken (scripts/fuzz.sh sets it), with o200k: valid UTF-8 must encode and
 *      decode back to itself, invalid UTF-8 must be refused with an error;
 *   2: token ids (4 bytes each, little-endian): every decoding mode, and streaming == whole.
 * Any violation traps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tok_b64.h"
#include "tok.h"

static tok *small, *o200k;

static tok *small_vocab(void) {
  /* the 256 bytes, then a few merges over ASCII and UTF-8 bytes */
  static const char *merges[] = {"th", "the", "in", "an", " t", " the", "er", "\xc3\xa9", "\xe4\xb8", "ab", "aba", "bab"};
  char *text = malloc(64 * 300), b64[64];
  size_t o = 0;
  for (int r = 0; r < 256 + (int)(sizeof merges / sizeof merges[0]); r++) {
    uint8_t p[8];
    size_t n;
    if (r < 256) { p[0] = (uint8_t)r; n = 1; }
    else { n = strlen(merges[r - 256]); memcpy(p, merges[r - 256], n); }
    tok_b64_encode(p, n, b64);
    o += (size_t)snprintf(text + o, 64, "%s %d\n", b64, r);
  }
  tok *t = NULL;
  err e = {0};
  if (tok_open_mem("small", text, o, TOK_OPEN_PARTIAL, &t, &e) != 0) __builtin_trap();
  free(text);
  return t;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  small = small_vocab();
  const char *r = getenv("TOK_RANKS");
  err e = {0};
  if (r && *r && tok_open(r, &o200k, &e) != 0) {
    fprintf(stderr, "fuzz_tokenizer: TOK_RANKS: %s\n", e.msg);
    abort();
  }
  return 0;
}

static void round_trip(const tok *t, const char *s, size_t n) {
  tok_ids ids = {0};
  tok_buf back = {0};
  err e = {0};
  size_t bad;
  int valid = tok_utf8_check(s, n, &bad) == 0;
  int rc = tok_encode(t, NULL, s, n, &ids, &e);
  if (valid != (rc == 0)) __builtin_trap();
  if (rc != 0 && (e.code != 1 || !strstr(e.msg, "offset"))) __builtin_trap();
  if (rc == 0) {
    if (tok_decode(t, ids.ids, ids.n, TOK_TEXT_RAW, &back, &e) != 0) __builtin_trap();
    if (back.n != n || (n && memcmp(back.p, s, n) != 0)) __builtin_trap();
  }
  tok_ids_free(&ids);
  tok_buf_free(&back);
}

static void decode_ids(const tok *t, const uint8_t *d, size_t n) {
  size_t k = n / 4;
  int32_t *ids = malloc((k + 1) * sizeof *ids);
  for (size_t i = 0; i < k; i++) {
    uint32_t v = (uint32_t)d[4 * i] | (uint32_t)d[4 * i + 1] << 8 | (uint32_t)d[4 * i + 2] << 16 | (uint32_t)d[4 * i + 3] << 24;
    ids[i] = (int32_t)(v % (TOK_N_VOCAB + 8));
  }
  tok_buf raw = {0}, rep = {0}, esc = {0}, st = {0};
  err e = {0};
  int rc = tok_decode(t, ids, k, TOK_TEXT_RAW, &raw, &e);
  int all_valid = 1;
  for (size_t i = 0; i < k; i++) all_valid &= tok_id_valid(t, ids[i]);
  if ((rc == 0) != all_valid) __builtin_trap();
  if (rc == 0) {
    size_t bad;
    if (tok_decode(t, ids, k, TOK_TEXT_REPLACE, &rep, &e) != 0 || tok_utf8_check(rep.p ? rep.p : "", rep.n, &bad) != 0)
      __builtin_trap();
    if (tok_decode(t, ids, k, TOK_TEXT_ESCAPE, &esc, &e) != 0 || tok_utf8_check(esc.p ? esc.p : "", esc.n, &bad) != 0)
      __builtin_trap();
    for (size_t i = 0; i < esc.n; i++)
      if ((unsigned char)esc.p[i] < 0x20) __builtin_trap();   /* one printable line */
    tok_stream s;
    tok_stream_init(&s);
    for (size_t i = 0; i < k; i++)
      if (tok_stream_push(t, &s, ids[i], &st, &e) != 0) __builtin_trap();
    if (tok_stream_finish(&s, &st, &e) != 0) __builtin_trap();
    if (st.n != rep.n || (st.n && memcmp(st.p, rep.p, st.n) != 0)) __builtin_trap();
  }
  tok_buf_free(&raw);
  tok_buf_free(&rep);
  tok_buf_free(&esc);
  tok_buf_free(&st);
  free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const char *rest = (const char *)data + 1;
  size_t n = size - 1;
  switch (data[0] % 3) {
    case 0: {
      tok *t = NULL;
      err e = {0};
      if (tok_open_mem("fuzz/vocab", rest, n, TOK_OPEN_PARTIAL, &t, &e) == 0) {
        static const char sample[] = "Hello, world! caf\xc3\xa9 \xe4\xb8\x80 1234 'll  \n\t x";
        round_trip(t, sample, sizeof sample - 1);
        tok_close(t);
      } else if (e.code != 1 || e.msg[0] == '\0' || t != NULL) {
        __builtin_trap();
      }
      break;
    }
    case 1:
      round_trip(small, rest, n);
      if (o200k) round_trip(o200k, rest, n);
      break;
    default:
      decode_ids(o200k ? o200k : small, (const uint8_t *)rest, n);
      break;
  }
  return 0;
}
