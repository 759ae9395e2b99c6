/* Unit tests of tokenizer/ (tok.h), against expectations written here, never against the
 * module itself: the byte-pair merge against tiktoken's O(n^2) rule re-implemented below on
 * random vocabularies; UTF-8 replacement against the Unicode/WHATWG examples; specials, chat
 * text and ids from openai-harmony's renderings; the vocabulary readers' error for each kind of
 * corrupt file; the search order of tok_find. $TOK_RANKS is o200k_base.tiktoken (required). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "tok.h"
#include "tok_b64.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n) {
  rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
  return (uint32_t)(rng % n);
}

/* ---- a small vocabulary: the 256 bytes, then tokens made by merging two earlier ones -------- */

#define SV_MAX 600
typedef struct {
  char tok[SV_MAX][64];
  size_t len[SV_MAX];
  int n;
} small_vocab;

static int sv_find(const small_vocab *v, const char *p, size_t n) {
  for (int i = 0; i < v->n; i++)
    if (v->len[i] == n && memcmp(v->tok[i], p, n) == 0) return i;
  return -1;
}

static void sv_make(small_vocab *v, int n_merges, const char *alphabet) {
  v->n = 0;
  for (int b = 0; b < 256; b++) { v->tok[v->n][0] = (char)b; v->len[v->n++] = 1; }
  size_t na = strlen(alphabet);
  while (v->n < 256 + n_merges) {
    /* merge two tokens over the alphabet (bytes of the alphabet or earlier merges) */
    int cand[SV_MAX], nc = 0;
    for (int i = 0; i < v->n; i++)
      if (memchr(alphabet, v->tok[i][0], na) && (v->len[i] > 1 || memchr(alphabet, v->tok[i][0], na))) {
        int ok = 1;
        for (size_t k = 0; k < v->len[i]; k++) ok &= memchr(alphabet, v->tok[i][k], na) != NULL;
        if (ok) cand[nc++] = i;
      }
    int l = cand[rnd((uint32_t)nc)], r = cand[rnd((uint32_t)nc)];
    if (v->len[l] + v->len[r] >= 63) continue;
    char s[64];
    memcpy(s, v->tok[l], v->len[l]);
    memcpy(s + v->len[l], v->tok[r], v->len[r]);
    if (sv_find(v, s, v->len[l] + v->len[r]) >= 0) continue;
    memcpy(v->tok[v->n], s, v->len[l] + v->len[r]);
    v->len[v->n++] = v->len[l] + v->len[r];
  }
}

static char *sv_ranks_text(const small_vocab *v, size_t *n) {
  size_t cap = (size_t)v->n * 100 + 1, o = 0;
  char *s = malloc(cap), b[128];
  for (int i = 0; i < v->n; i++) {
    tok_b64_encode((const uint8_t *)v->tok[i], v->len[i], b);
    o += (size_t)snprintf(s + o, cap - o, "%s %d\n", b, i);
  }
  *n = o;
  return s;
}

/* tiktoken's _byte_pair_merge, literally: the lowest rank among adjacent pairs, the first of
 * equals, until no pair is a token; a piece that is a token is that token. */
static size_t naive_bpe(const small_vocab *v, const char *p, size_t n, int *out) {
  int whole = sv_find(v, p, n);
  if (whole >= 0) { out[0] = whole; return 1; }
  size_t b[256], m = n + 1;
  for (size_t i = 0; i <= n; i++) b[i] = i;
  for (;;) {
    int best = -1;
    size_t at = 0;
    for (size_t i = 0; i + 2 < m; i++) {
      int r = sv_find(v, p + b[i], b[i + 2] - b[i]);
      if (r >= 0 && (best < 0 || r < best)) { best = r; at = i; }
    }
    if (best < 0) break;
    memmove(b + at + 1, b + at + 2, (m - at - 2) * sizeof b[0]);
    m--;
  }
  for (size_t i = 0; i + 1 < m; i++) out[i] = sv_find(v, p + b[i], b[i + 1] - b[i]);
  return m - 1;
}

static void test_bpe_against_naive(void) {
  static small_vocab v;
  const char *alphabets[] = {"ab", "abc", "abcdefgh"};
  size_t checked = 0;
  for (int a = 0; a < 3; a++) {
    sv_make(&v, a == 0 ? 60 : 300, alphabets[a]);
    size_t n;
    char *text = sv_ranks_text(&v, &n);
    tok *t = NULL;
    err e = {0};
    TU_CHECK(tok_open_mem("small", text, n, TOK_OPEN_PARTIAL, &t, &e) == 0, "%s", e.msg);
    free(text);
    if (!t) return;
    size_t na = strlen(alphabets[a]);
    for (int k = 0; k < 3000; k++) {
      char s[200];
      size_t len = 1 + rnd(k < 2800 ? 40 : 199);
      for (size_t i = 0; i < len; i++) s[i] = alphabets[a][k % 3 == 0 ? (i % 2) : rnd((uint32_t)na)];
      int want[256];
      size_t nw = naive_bpe(&v, s, len, want);
      tok_ids got = {0};
      TU_CHECK(tok_encode(t, NULL, s, len, &got, &e) == 0, "%s", e.msg);
      int same = got.n == nw;
      for (size_t i = 0; same && i < nw; i++) same = got.ids[i] == want[i];
      TU_CHECK(same, "alphabet %s, '%.*s': %zu ids, naive %zu", alphabets[a], (int)len, s, got.n, nw);
      checked++;
      tok_ids_free(&got);
    }
    tok_close(t);
  }
  TU_CHECK(checked == 9000, "%zu pieces", checked);
}

/* ---- UTF-8 --------------------------------------------------------------------------------- */

static void check_text(const char *in, size_t n, tok_text_mode mode, const char *want) {
  tok_buf b = {0};
  err e = {0};
  TU_CHECK(tok_text_append(in, n, mode, &b, &e) == 0, "%s", e.msg);
  TU_CHECK(b.p && strlen(want) == b.n && memcmp(b.p, want, b.n) == 0, "mode %d: got '%s' want '%s'", mode,
           b.p ? b.p : "", want);
  tok_buf_free(&b);
}

#define R "\xef\xbf\xbd"
static void test_utf8(void) {
  /* Unicode 16.0 section 3.9, table 3-8 (maximal subparts), and WHATWG examples */
  check_text("\xc0\xaf\xe0\x80\xbf\xf0\x81\x82\x41", 9, TOK_TEXT_REPLACE, R R R R R R R R "A");
  check_text("\xed\xa0\x80\xed\xbf\xbf\xed\xaf\x41", 9, TOK_TEXT_REPLACE, R R R R R R R R "A");
  check_text("\xf4\x91\x92\x93\xff\x41\x80\xbf\x42", 9, TOK_TEXT_REPLACE, R R R R R "A" R R "B");
  check_text("\xe1\x80\xe2\xf0\x91\x92\xf1\xbf\x41", 9, TOK_TEXT_REPLACE, R R R R "A");
  check_text("a\xe2\x82", 3, TOK_TEXT_REPLACE, "a" R);
  check_text("\xf0\x9f\x98\x80 ok", 7, TOK_TEXT_REPLACE, "\xf0\x9f\x98\x80 ok");
  check_text("a\tb\\c\n\x01\xc2\x85\xe2\x80\xa8\xff\xe2\x82", 15, TOK_TEXT_ESCAPE,
             "a\\tb\\\\c\\n\\x01\\u{0085}\\u{2028}\\xff\\xe2\\x82");
  check_text("caf\xc3\xa9", 5, TOK_TEXT_ESCAPE, "caf\xc3\xa9");
  size_t off = 99;
  TU_CHECK(tok_utf8_check("ok\xc3\xa9\xed\xa0\x80", 7, &off) == -1 && off == 4, "surrogate at 4, got %zu", off);
  TU_CHECK(tok_utf8_check("\xf4\x8f\xbf\xbf", 4, &off) == 0, "U+10FFFF is valid");
  TU_CHECK(tok_utf8_check("abcdefghijklmno\xf5", 16, &off) == -1 && off == 15, "0xf5 at 15, got %zu", off);
  TU_CHECK(tok_utf8_check("", 0, &off) == 0, "empty is valid");
}

static void test_stream(tok *t) {
  /* streamed text == decoded text, for ids whose bytes cut characters anywhere */
  err e = {0};
  for (int k = 0; k < 200; k++) {
    int32_t ids[40];
    int n = 1 + (int)rnd(39);
    for (int i = 0; i < n; i++) ids[i] = rnd(10) == 0 ? TOK_START + (int32_t)rnd(3) : (int32_t)rnd(256);
    tok_buf whole = {0}, streamed = {0};
    tok_stream s;
    tok_stream_init(&s);
    TU_CHECK(tok_decode(t, ids, (size_t)n, TOK_TEXT_REPLACE, &whole, &e) == 0, "%s", e.msg);
    for (int i = 0; i < n; i++) TU_CHECK(tok_stream_push(t, &s, ids[i], &streamed, &e) == 0, "%s", e.msg);
    TU_CHECK(tok_stream_finish(&s, &streamed, &e) == 0, "%s", e.msg);
    TU_CHECK(whole.n == streamed.n && (whole.n == 0 || memcmp(whole.p, streamed.p, whole.n) == 0),
             "stream %d differs", k);
    tok_buf_free(&whole);
    tok_buf_free(&streamed);
  }
  int32_t bad = 201088;
  tok_buf b = {0};
  TU_CHECK(tok_decode(t, &bad, 1, TOK_TEXT_RAW, &b, &e) == -1 && strstr(e.msg, "201088"), "%s", e.msg);
  tok_buf_free(&b);
}

/* ---- specials and chat --------------------------------------------------------------------- */

static void test_specials(void) {
  const struct { int32_t id; const char *name; } named[] = {
      {199998, "<|startoftext|>"}, {199999, "<|endoftext|>"}, {200000, "<|reserved_200000|>"},
      {200002, "<|return|>"}, {200003, "<|constrain|>"}, {200004, "<|reserved_200004|>"},
      {200005, "<|channel|>"}, {200006, "<|start|>"}, {200007, "<|end|>"}, {200008, "<|message|>"},
      {200012, "<|call|>"}, {200013, "<|reserved_200013|>"}, {200018, "<|endofprompt|>"},
      {200019, "<|reserved_200019|>"}, {200999, "<|reserved_200999|>"}, {201087, "<|reserved_201087|>"}};
  for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
    const char *s = tok_special_name(named[i].id);
    TU_CHECK(s && !strcmp(s, named[i].name), "%d: %s", named[i].id, s ? s : "NULL");
    TU_CHECK(tok_special_find(named[i].name, strlen(named[i].name)) == named[i].id, "%s", named[i].name);
  }
  for (int32_t id = TOK_FIRST_SPECIAL; id < TOK_N_VOCAB; id++) {
    const char *s = tok_special_name(id);
    TU_CHECK(s && tok_special_find(s, strlen(s)) == id, "round trip of %d", id);
  }
  TU_CHECK(tok_special_name(199997) == NULL && tok_special_name(201088) == NULL, "outside the specials");
  TU_CHECK(tok_special_find("<|reserved_200018|>", 19) == 200018, "harmony's name of 200018");
  TU_CHECK(tok_special_find("<|reserved_200002|>", 19) == -1, "200002 is <|return|>");
  TU_CHECK(tok_is_stop(200002) && tok_is_stop(200012) && !tok_is_stop(199999) && !tok_is_stop(200007), "stops");
  const int32_t *eos;
  TU_CHECK(tok_eos_ids(&eos) == 3 && eos[0] == 200002 && eos[1] == 199999 && eos[2] == 200012, "eos ids");
  tok_reasoning r;
  TU_CHECK(tok_reasoning_parse("high", &r) == 0 && r == TOK_REASONING_HIGH, "high");
  TU_CHECK(tok_reasoning_parse("HIGH", &r) == -1 && tok_reasoning_parse("", &r) == -1, "strict names");
}

static void test_chat_text(void) {
  /* openai-harmony test-data/test_simple_convo_high_effort.txt's rendering */
  const char *want =
      "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
      "Knowledge cutoff: 2024-06\n\nReasoning: high\n\n# Valid channels: analysis, commentary, final. "
      "Channel must be included for every message.<|end|><|start|>developer<|message|># Instructions\n\n"
      "Answer the user's questions like a robot.<|end|><|start|>user<|message|>What is the capital of the "
      "largest country in the world?<|end|><|start|>assistant";
  tok_chat c;
  tok_chat_init(&c);
  c.reasoning = TOK_REASONING_HIGH;
  c.developer = "Answer the user's questions like a robot.";
  c.developer_len = strlen(c.developer);
  c.user = "What is the capital of the largest country in the world?";
  c.user_len = strlen(c.user);
  tok_buf b = {0};
  err e = {0};
  TU_CHECK(tok_chat_text(&c, &b, &e) == 0 && b.p && !strcmp(b.p, want), "got:\n%s", b.p ? b.p : "");
  tok_buf_free(&b);
}

static int ids_equal(const tok_ids *v, const int32_t *want, size_t n) {
  if (v->n != n) return 0;
  for (size_t i = 0; i < n; i++)
    if (v->ids[i] != want[i]) return 0;
  return 1;
}

static void test_o200k(tok *t) {
  err e = {0};
  /* docs/clients.md samples (tiktoken and openai-harmony) */
  static const int32_t hello[] = {13225, 11, 2375, 0, 623, 4853, 19705, 68347, 65613, 1072, 290, 29082, 6446, 13,
                                  3413, 44, 2105, 11, 7163, 1354, 26, 4275, 220, 7633, 19354, 22, 13};
  const char *s = "Hello, world! The quick brown fox jumps over the lazy dog. I'M here, you're there; it's 1234567.";
  tok_ids v = {0};
  TU_CHECK(tok_encode(t, NULL, s, strlen(s), &v, &e) == 0 && ids_equal(&v, hello, sizeof hello / 4),
           "ascii sample: %zu ids", v.n);
  v.n = 0;
  static const int32_t chat[] = {200006, 17360, 200008, 3575, 553, 17554, 162016, 11, 261, 4410, 6439, 2359, 22203,
      656, 7788, 17527, 558, 87447, 100594, 25, 220, 1323, 19, 12, 3218, 279, 30377, 289, 25, 14093, 279, 2, 13888,
      18403, 25, 8450, 11, 49159, 11, 1721, 13, 21030, 2804, 413, 7360, 395, 1753, 3176, 13, 200007, 200006, 1428,
      200008, 4827, 382, 220, 17, 659, 220, 17, 30, 200007, 200006, 173781};
  tok_chat c;
  tok_chat_init(&c);
  c.user = "What is 2 + 2?";
  c.user_len = strlen(c.user);
  TU_CHECK(tok_chat_encode(t, &c, &v, &e) == 0 && ids_equal(&v, chat, sizeof chat / 4), "chat: %zu ids", v.n);
  /* specials are never read from text */
  v.n = 0;
  TU_CHECK(tok_encode(t, NULL, "<|end|>", 7, &v, &e) == 0 && v.n > 1, "typed <|end|> is text: %zu ids", v.n);
  for (size_t i = 0; i < v.n; i++) TU_CHECK(v.ids[i] < TOK_FIRST_SPECIAL, "id %d", v.ids[i]);
  /* invalid UTF-8 names the offset */
  v.n = 0;
  err e2 = {0};
  TU_CHECK(tok_encode(t, "--text", "abc\xff", 4, &v, &e2) == -1 && strstr(e2.msg, "--text") &&
           strstr(e2.msg, "offset 3"), "%s", e2.msg);
  tok_ids_free(&v);

  /* O(n log n): a 1 MiB word, a 1 MiB whitespace run, 1 MiB of digits, decoded back */
  const char *fill[] = {"abcdefghijklmnopqrstuvwxyz", " ", "\t \n", "0123456789", "\xe4\xb8\x80"};
  for (int k = 0; k < 5; k++) {
    size_t n = 1u << 20, fl = strlen(fill[k]);
    char *big = malloc(n + 4);
    for (size_t i = 0; i < n; i += fl) memcpy(big + i, fill[k], fl);
    n = n / fl * fl;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    tok_ids w = {0};
    tok_buf back = {0};
    TU_CHECK(tok_encode(t, NULL, big, n, &w, &e) == 0, "%s", e.msg);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double sec = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    TU_CHECK(sec < 20.0, "fill %d: %.1f s for 1 MiB", k, sec);
    TU_CHECK(tok_decode(t, w.ids, w.n, TOK_TEXT_RAW, &back, &e) == 0 && back.n == n && !memcmp(back.p, big, n),
             "fill %d: decode(encode(x)) != x", k);
    tok_ids_free(&w);
    tok_buf_free(&back);
    free(big);
  }
}

/* ---- corrupt vocabularies ------------------------------------------------------------------ */

static void expect_error(const char *label, const char *data, size_t n, unsigned flags, const char *want) {
  tok *t = NULL;
  err e = {0};
  int rc = tok_open_mem(label, data, n, flags, &t, &e);
  TU_CHECK(rc == -1 && t == NULL && strstr(e.msg, label) && strstr(e.msg, want), "%s: rc %d, '%s' (want '%s')",
           label, rc, e.msg, want);
  tok_close(t);
}

static void test_corrupt_ranks(void) {
  small_vocab *v = malloc(sizeof *v);
  sv_make(v, 20, "ab");
  size_t n;
  char *good = sv_ranks_text(v, &n), *buf = malloc(n + 8192);
  tok *t = NULL;
  err e = {0};
  TU_CHECK(tok_open_mem("good", good, n, TOK_OPEN_PARTIAL, &t, &e) == 0 && tok_n_ranks(t) == 276, "%s", e.msg);
  tok_close(t);
  expect_error("full", good, n, 0, "276 ranks; o200k_harmony has 199998");
  /* line 3 is "Ag== 2" (byte 0x02) */
  const char *line3 = strstr(good, "Ag== 2\n");
  size_t at = (size_t)(line3 - good);
#define WITH_LINE3(s) (memcpy(buf, good, at), strcpy(buf + at, s), strcat(buf, line3 + 7), strlen(buf))
  expect_error("b64alpha", buf, WITH_LINE3("A*== 2\n"), TOK_OPEN_PARTIAL, "line 3: the token is not valid base64");
  expect_error("b64len", buf, WITH_LINE3("Ag= 2\n"), TOK_OPEN_PARTIAL, "not a multiple of 4");
  expect_error("b64bits", buf, WITH_LINE3("Ah== 2\n"), TOK_OPEN_PARTIAL, "padding");
  expect_error("duprank", buf, WITH_LINE3("Ag== 1\n"), TOK_OPEN_PARTIAL, "line 3: rank 1 was already given (line 2)");
  expect_error("duptok", buf, WITH_LINE3("AQ== 2\n"), TOK_OPEN_PARTIAL, "repeats the bytes of rank 1");
  expect_error("nonnum", buf, WITH_LINE3("Ag== 2x\n"), TOK_OPEN_PARTIAL, "line 3: the rank is not");
  expect_error("negative", buf, WITH_LINE3("Ag== -2\n"), TOK_OPEN_PARTIAL, "line 3: the rank is not");
  expect_error("nofield", buf, WITH_LINE3("Ag==\n"), TOK_OPEN_PARTIAL, "line 3: expected");
  expect_error("toobig", buf, WITH_LINE3("Ag== 199998\n"), TOK_OPEN_PARTIAL, "rank 199998 is not below 199998");
  expect_error("digits", buf, WITH_LINE3("Ag== 0000000002\n"), TOK_OPEN_PARTIAL, "more than 9 digits");
  expect_error("gap", buf, WITH_LINE3(""), TOK_OPEN_PARTIAL, "rank 2 is missing");
  expect_error("nobyte", buf, WITH_LINE3("Ag== 2\n" "YWFh 9999\n"), TOK_OPEN_PARTIAL, "rank 276 is missing");
  {
    char *huge = malloc(5000);
    memset(huge, 'Q', 4999);
    huge[4999] = '\0';
    size_t m = WITH_LINE3(huge);
    expect_error("hugeline", buf, m, TOK_OPEN_PARTIAL, "line 3 is 5005 bytes long");
    free(huge);
  }
  expect_error("empty", "", 0, TOK_OPEN_PARTIAL, "empty");
  expect_error("blank", "\n\n \n", 4, TOK_OPEN_PARTIAL, "only blank lines");
  expect_error("junk", "\x7f" "ELF\x01\x02", 6, TOK_OPEN_PARTIAL, "line 1");
  /* a missing byte: replace byte 0x02 by a two-byte token at rank 2 */
  expect_error("missbyte", buf, WITH_LINE3("AgI= 2\n"), TOK_OPEN_PARTIAL, "byte 0x02 has no rank");
  /* CRLF and blank lines are fine (tiktoken reads lines the same way) */
  {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
      if (good[i] == '\n') { buf[o++] = '\r'; buf[o++] = '\n'; if (i % 7 == 0) buf[o++] = '\n'; }
      else buf[o++] = good[i];
    }
    TU_CHECK(tok_open_mem("crlf", buf, o, TOK_OPEN_PARTIAL, &t, &e) == 0, "%s", e.msg);
    tok_close(t);
  }
#undef WITH_LINE3
  free(buf);
  free(good);
  free(v);
}

/* buf = src[0..n) with the first `from` replaced by `to`; returns the new length, 0 if absent. */
static size_t replace_first(const char *src, size_t n, const char *from, const char *to, char *buf) {
  const char *p = strstr(src, from);
  if (!p) return 0;
  size_t a = (size_t)(p - src), lf = strlen(from), lt = strlen(to);
  memcpy(buf, src, a);
  memcpy(buf + a, to, lt);
  memcpy(buf + a + lt, p + lf, n - a - lf);
  return n - lf + lt;
}

/* tokenizer.json made by the writer from a small vocabulary, then altered. */
static void test_corrupt_json(void) {
  small_vocab *v = malloc(sizeof *v);
  sv_make(v, 30, "abc");
  size_t n;
  char *ranks = sv_ranks_text(v, &n);
  tok *t = NULL, *t2 = NULL;
  err e = {0};
  TU_CHECK(tok_open_mem("small", ranks, n, TOK_OPEN_PARTIAL, &t, &e) == 0, "%s", e.msg);
  tok_buf js = {0};
  TU_CHECK(tok_hf_tokenizer_json(t, &js, &e) == 0, "%s", e.msg);
  TU_CHECK(tok_open_mem("json", js.p, js.n, TOK_OPEN_PARTIAL, &t2, &e) == 0 && tok_get_source(t2) == TOK_SRC_HF_JSON,
           "own tokenizer.json: %s", e.msg);
  for (int32_t id = 0; t2 && id < (int32_t)tok_n_ranks(t); id++) {
    const uint8_t *p1, *p2;
    size_t n1, n2;
    TU_CHECK(tok_token_bytes(t, id, &p1, &n1, &e) == 0 && tok_token_bytes(t2, id, &p2, &n2, &e) == 0 && n1 == n2 &&
             !memcmp(p1, p2, n1), "rank %d differs after the round trip", id);
  }
  tok_close(t2);
  char *buf = malloc(js.n + 8192);
  /* the first occurrence of `from` replaced by `to` */
  struct { const char *label, *from, *to, *want; } cases[] = {
      {"jregex", "\\\\p{N}{1,3}", "\\\\p{N}{1,4}", "is not o200k's split pattern"},
      {"jbytelevel", "\"use_regex\": false", "\"use_regex\": true", "ByteLevel.use_regex is not false"},
      {"jnorm", "\"normalizer\": null", "\"normalizer\": {\"type\": \"NFC\"}", "normalizer is an object"},
      {"jmodel", "\"model\": {", "\"modelx\": {", "model is missing"},
      {"jtype", "\"type\": \"BPE\"", "\"type\": \"WordPiece\"", "model.type is not \"BPE\""},
      {"jvocab", "\"vocab\": {", "\"vocab\": [], \"x\": {", "model.vocab is an array"},
      {"jmerges", "\"merges\": [", "\"merges\": {}, \"y\": [", "model.merges is an object"},
      {"jvalue", "\"&\": 38,", "\"&\": 38.5,", "model.vocab['&'] is a number out of range"},
      {"jvalstr", "\"&\": 38,", "\"&\": \"38\",", "is a string, not an id"},
      {"jnobyte", "\"&\": 38,", "\"\xe4\xb8\x80\": 38,", "outside the byte-level alphabet"},
      {"jadded", "\"content\": \"<|start|>\"", "\"content\": \"<|begin|>\"", "added_tokens[8]"},
      {"jspecvocab", "\"&\": 38,", "\"&\": 38, \"<|x|>\": 200006,", "which is the special token <|start|>"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t m = replace_first(js.p, js.n, cases[i].from, cases[i].to, buf);
    TU_CHECK(m > 0, "%s: '%s' not in the file", cases[i].label, cases[i].from);
    if (m) expect_error(cases[i].label, buf, m, TOK_OPEN_PARTIAL, cases[i].want);
  }
  /* merges: swap the first two (rank order broken), drop the last (a token no merge makes) */
  {
    const char *m = strstr(js.p, "\"merges\": [\n      ");
    const char *m1 = m + strlen("\"merges\": [\n      "), *m2 = strstr(m1, ",\n      ") + 8, *m3 = strstr(m2, ",\n      ");
    size_t a = (size_t)(m1 - js.p), l1 = (size_t)(m2 - 8 - m1), l2 = (size_t)(m3 - m2);
    memcpy(buf, js.p, a);
    memcpy(buf + a, m2, l2);
    memcpy(buf + a + l2, ",\n      ", 8);
    memcpy(buf + a + l2 + 8, m1, l1);
    memcpy(buf + a + l2 + 8 + l1, m3, js.n - (size_t)(m3 - js.p));
    expect_error("jorder", buf, js.n, TOK_OPEN_PARTIAL, "merges are not in rank order");
    /* only the first merge kept: rank 257 is made by none */
    const char *tail = "\n    ]\n  }\n}\n";
    size_t keep = (size_t)(m2 - 8 - js.p);
    memcpy(buf, js.p, keep);
    memcpy(buf + keep, tail, strlen(tail));
    expect_error("jcut", buf, keep + strlen(tail), TOK_OPEN_PARTIAL, "is made by no entry of model.merges (1 merges)");
  }
  /* JSON forms that mean the same: an escaped key, an integral number in exponent form */
  struct { const char *from, *to; } same[] = {{"\"&\": 38,", "\"\\u0026\": 38,"}, {"\"&\": 38,", "\"&\": 3.8e1,"}};
  for (size_t i = 0; i < 2; i++) {
    size_t m = replace_first(js.p, js.n, same[i].from, same[i].to, buf);
    tok *t3 = NULL;
    err_clear(&e);
    TU_CHECK(m && tok_open_mem("jsame", buf, m, TOK_OPEN_PARTIAL, &t3, &e) == 0, "'%s': %s", same[i].to, e.msg);
    tok_close(t3);
  }
  struct { const char *label, *to, *want; } bad[] = {
      {"jlead", "\"&\": 038,", "not valid JSON"}, {"jnul", "\"\\u0000\": 38,", "holds \\u0000"},
      {"jsur", "\"\\ud800\": 38,", "lone surrogate"}, {"jlit", "\"&\": tru,", "not valid JSON"},
      {"jctl", "\"\t\": 38,", "control character"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    size_t m = replace_first(js.p, js.n, "\"&\": 38,", bad[i].to, buf);
    expect_error(bad[i].label, buf, m, TOK_OPEN_PARTIAL, bad[i].want);
  }
  expect_error("jtrunc", js.p, js.n / 2, TOK_OPEN_PARTIAL, "not valid JSON (at byte");
  memcpy(buf, js.p, js.n);
  memcpy(buf + js.n, " }\n", 3);
  expect_error("jtrail", buf, js.n + 3, TOK_OPEN_PARTIAL, "text after the JSON value");
  expect_error("jarray", "[1, 2]", 6, TOK_OPEN_PARTIAL, "line 1");   /* not '{': read as a ranks file */
  expect_error("jtop", " {\"a\": 1}", 9, TOK_OPEN_PARTIAL, "model is missing");
  {
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 8);
    size_t o = 0;
    deep[o++] = '{';
    deep[o++] = '"';
    deep[o++] = 'a';
    deep[o++] = '"';
    deep[o++] = ':';
    for (size_t i = 0; i < depth; i++) deep[o++] = '[';
    expect_error("jdeep", deep, o, TOK_OPEN_PARTIAL, "not valid JSON");
    free(deep);
  }
  free(buf);
  tok_buf_free(&js);
  tok_close(t);
  free(ranks);
  free(v);
}

/* ---- finding ------------------------------------------------------------------------------- */

static void test_find(const char *ranks_path) {
  char *dir = tu_mkdtemp("tok_find");
  char path[4096], orig[4096];
  tok *t = NULL;
  err e = {0};
  unsetenv("TIKTOKEN_ENCODINGS_BASE");
  snprintf(orig, sizeof orig, "%s/original", dir);
  mkdir(orig, 0755);
  TU_CHECK(tok_find(orig, NULL, &t, &e) == -1 && strstr(e.msg, "no tokenizer found") &&
           strstr(e.msg, "tokenizer.json and o200k_base.tiktoken in ") && strstr(e.msg, "/original and in its repository root") &&
           strstr(e.msg, "TIKTOKEN_ENCODINGS_BASE") && strstr(e.msg, "--tokenizer"), "%s", e.msg);
  /* the repository root of original/ */
  snprintf(path, sizeof path, "%s/o200k_base.tiktoken", dir);
  size_t n;
  void *data = tu_read_file(ranks_path, &n);
  TU_CHECK(data && tu_write_file(path, data, n) == 0, "copy of the ranks file");
  err_clear(&e);
  TU_CHECK(tok_find(orig, NULL, &t, &e) == 0 && !strcmp(tok_path(t), path), "%s", e.msg);
  tok_close(t);
  t = NULL;
  /* a tokenizer.json beside it wins; a corrupt one is an error, not skipped */
  snprintf(path, sizeof path, "%s/original/tokenizer.json", dir);
  TU_CHECK(tu_write_file(path, "{", 1) == 0, "write");
  err_clear(&e);
  TU_CHECK(tok_find(orig, NULL, &t, &e) == -1 && strstr(e.msg, "original/tokenizer.json: not valid JSON"), "%s", e.msg);
  unlink(path);
  /* the explicit path is the only one tried */
  err_clear(&e);
  TU_CHECK(tok_find(orig, "/nonexistent/tok.json", &t, &e) == -1 && strstr(e.msg, "/nonexistent/tok.json"), "%s", e.msg);
  /* $TIKTOKEN_ENCODINGS_BASE */
  setenv("TIKTOKEN_ENCODINGS_BASE", dir, 1);
  err_clear(&e);
  TU_CHECK(tok_find(NULL, NULL, &t, &e) == 0, "%s", e.msg);
  tok_close(t);
  t = NULL;
  unsetenv("TIKTOKEN_ENCODINGS_BASE");
  err_clear(&e);
  TU_CHECK(tok_find(NULL, NULL, &t, &e) == -1 && strstr(e.msg, "(variable not set)"), "%s", e.msg);
  /* not a directory, a FIFO, a directory as the file */
  err_clear(&e);
  TU_CHECK(tok_find(ranks_path, NULL, &t, &e) == -1 && strstr(e.msg, "not a directory"), "%s", e.msg);
  snprintf(path, sizeof path, "%s/fifo", dir);
  TU_CHECK(mkfifo(path, 0600) == 0, "mkfifo");
  err_clear(&e);
  TU_CHECK(tok_open(path, &t, &e) == -1 && strstr(e.msg, "is a FIFO"), "%s", e.msg);
  err_clear(&e);
  TU_CHECK(tok_open(dir, &t, &e) == -1 && strstr(e.msg, "is a directory"), "%s", e.msg);
  free(data);
  tu_rm_rf(dir);
  free(dir);
}

int main(void) {
  const char *ranks = getenv("TOK_RANKS");
  test_bpe_against_naive();
  test_utf8();
  test_specials();
  test_chat_text();
  test_corrupt_ranks();
  test_corrupt_json();
  tok *t = NULL;
  err e = {0};
  TU_CHECK(ranks && tok_open(ranks, &t, &e) == 0, "TOK_RANKS (o200k_base.tiktoken, from scripts/setup.sh --test): %s",
           ranks ? e.msg : "not set");
  if (t) {
    TU_CHECK(tok_n_ranks(t) == TOK_N_RANKS && tok_get_source(t) == TOK_SRC_TIKTOKEN, "%zu ranks", tok_n_ranks(t));
    test_o200k(t);
    test_stream(t);
    test_find(ranks);
    tok_close(t);
  }
  return tu_finish("test_tok");
}
