/* gptoss-mpi tokenize: text -> ids, ids -> text, harmony chat prompts, JSON Lines batches
 * (tokenizer/tok.h). The whole output is built before anything is printed, so an error leaves
 * stdout empty. Local: does not initialise MPI. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "log.h"
#include "tok.h"

static const char tokenize_usage[] =
    "usage: gptoss-mpi tokenize [CKPT] [--tokenizer F] (--text TEXT | --file F | -) [--chat]\n"
    "                           [--reasoning low|medium|high] [--system TEXT] [--jsonl]\n"
    "       gptoss-mpi tokenize [CKPT] [--tokenizer F] --decode IDS|- [--file F] [--jsonl]\n"
    "\n"
    "Encode text with the o200k_harmony tokenizer of GPT-OSS and print the ids, comma-separated,\n"
    "on one line. Text is ordinary text: a typed \"<|end|>\" stays text. The vocabulary is CKPT's\n"
    "tokenizer.json or o200k_base.tiktoken (also looked for in the parent of an original/\n"
    "directory), else $TIKTOKEN_ENCODINGS_BASE/o200k_base.tiktoken; --tokenizer overrides.\n"
    "\n"
    "  --tokenizer F     a tokenizer.json or a tiktoken ranks file (format detected)\n"
    "  --text TEXT       the text to encode\n"
    "  --file F, -       read the text (or, with --jsonl, the lines) from F or standard input\n"
    "  --chat            the text is a user message: encode the harmony conversation (default\n"
    "                    system message, optional developer message, user, <|start|>assistant)\n"
    "  --reasoning R     the system message's reasoning effort: low, medium (default) or high\n"
    "  --system TEXT     add a developer message \"# Instructions\\n\\n\" + TEXT (with --chat)\n"
    "  --jsonl           input: one JSON string per line; output: one JSON array of ids per line\n"
    "                    (with --decode: arrays of ids in, JSON strings out)\n"
    "  --decode IDS      print the text of ids (\"1,2,3\"; \"-\" reads them from --file or stdin),\n"
    "                    followed by a newline; bytes that are not UTF-8 print as U+FFFD\n";

enum { OPT_TOKENIZER = CLI_OPT_FIRST_COMMAND_OPT, OPT_TEXT, OPT_FILE, OPT_CHAT, OPT_REASONING,
       OPT_SYSTEM, OPT_JSONL, OPT_DECODE };

#define INPUT_MAX (256u << 20)

typedef struct {
  const char *ckpt, *tokenizer, *text, *file, *system, *decode;
  int from_stdin, chat, jsonl;
  tok_reasoning reasoning;
} tok_opts;

/* ---- input --------------------------------------------------------------------------------- */

static int read_all(const char *path, tok_buf *out, err *e) {
  FILE *f = path ? fopen(path, "rb") : stdin;
  const char *name = path ? path : "standard input";
  if (!f) return err_errno(e, errno, "%s: cannot open", path);
  char chunk[65536];
  size_t r;
  int rc = 0;
  while (rc == 0 && (r = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (out->n + r > INPUT_MAX) rc = err_set(e, EXIT_RUNTIME, "%s: more than %u MiB of input", name, INPUT_MAX >> 20);
    else rc = tok_buf_append(out, chunk, r, e);
  }
  if (rc == 0 && ferror(f)) rc = err_errno(e, errno, "%s: read error", name);
  if (path) fclose(f);
  if (rc == 0 && !out->p) rc = tok_buf_append(out, "", 0, e);
  return rc;
}

/* One JSON string (RFC 8259) s[0..n) -> its UTF-8 bytes. -1 with a reason in why. */
static int json_string_decode(const char *s, size_t n, tok_buf *out, const char **why, err *e) {
  size_t i = 0;
  while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) i++;
  if (i == n || s[i] != '"') { *why = "not a JSON string"; return -1; }
  i++;
  for (;;) {
    if (i >= n) { *why = "unterminated string"; return -1; }
    unsigned char c = (unsigned char)s[i];
    if (c == '"') { i++; break; }
    if (c < 0x20) { *why = "a raw control character inside the string"; return -1; }
    if (c != '\\') {
      size_t j = i;
      while (j < n && s[j] != '"' && s[j] != '\\' && (unsigned char)s[j] >= 0x20) j++;
      if (tok_buf_append(out, s + i, j - i, e) != 0) return -2;
      i = j;
      continue;
    }
    if (++i >= n) { *why = "unterminated escape"; return -1; }
    const char *simple = strchr("\"\\/bfnrt", s[i]);
    if (simple && s[i]) {
      static const char map[] = "\"\\/\b\f\n\r\t";
      if (tok_buf_append(out, &map[simple - "\"\\/bfnrt"], 1, e) != 0) return -2;
      i++;
      continue;
    }
    if (s[i] != 'u') { *why = "an unknown escape"; return -1; }
    uint32_t cp = 0;
    for (int pass = 0; pass < 2; pass++) {
      uint32_t v = 0;
      if (i + 4 >= n) { *why = "a short \\u escape"; return -1; }
      for (int k = 1; k <= 4; k++) {
        char h = s[i + k];
        int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
        if (d < 0) { *why = "a bad \\u escape"; return -1; }
        v = v << 4 | (uint32_t)d;
      }
      i += 5;
      if (pass == 0) {
        if (v >= 0xdc00 && v <= 0xdfff) { *why = "a lone low surrogate"; return -1; }
        if (v < 0xd800 || v > 0xdbff) { cp = v; break; }
        cp = v;
        if (i + 1 >= n || s[i] != '\\' || s[i + 1] != 'u') { *why = "a lone high surrogate"; return -1; }
        i++;
      } else {
        if (v < 0xdc00 || v > 0xdfff) { *why = "a high surrogate without its low surrogate"; return -1; }
        cp = 0x10000 + ((cp - 0xd800) << 10) + (v - 0xdc00);
      }
    }
    uint8_t u[4];
    size_t k = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (k == 1) u[0] = (uint8_t)cp;
    else if (k == 2) { u[0] = (uint8_t)(0xc0 | cp >> 6); u[1] = (uint8_t)(0x80 | (cp & 63)); }
    else if (k == 3) { u[0] = (uint8_t)(0xe0 | cp >> 12); u[1] = (uint8_t)(0x80 | ((cp >> 6) & 63)); u[2] = (uint8_t)(0x80 | (cp & 63)); }
    else { u[0] = (uint8_t)(0xf0 | cp >> 18); u[1] = (uint8_t)(0x80 | ((cp >> 12) & 63)); u[2] = (uint8_t)(0x80 | ((cp >> 6) & 63)); u[3] = (uint8_t)(0x80 | (cp & 63)); }
    if (tok_buf_append(out, u, k, e) != 0) return -2;
  }
  while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) i++;
  if (i != n) { *why = "text after the string"; return -1; }
  return 0;
}

/* "[1, 2, 3]" -> ids. -1 with a reason. */
static int json_ids_decode(const char *s, size_t n, tok_ids *out, const char **why, err *e) {
  size_t i = 0;
#define SKIP_WS while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) i++
  SKIP_WS;
  if (i == n || s[i] != '[') { *why = "not a JSON array of ids"; return -1; }
  i++;
  SKIP_WS;
  if (i < n && s[i] == ']') { i++; goto end; }
  for (;;) {
    SKIP_WS;
    if (i == n || s[i] < '0' || s[i] > '9') { *why = "an element that is not a non-negative integer"; return -1; }
    long v = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
      v = v * 10 + (s[i++] - '0');
      if (v > TOK_N_VOCAB) { *why = "an id beyond the vocabulary"; return -1; }
    }
    if (tok_ids_push(out, (int32_t)v, e) != 0) return -2;
    SKIP_WS;
    if (i < n && s[i] == ',') { i++; continue; }
    if (i < n && s[i] == ']') { i++; break; }
    *why = "a missing ',' or ']'";
    return -1;
  }
end:
  SKIP_WS;
#undef SKIP_WS
  if (i != n) { *why = "text after the array"; return -1; }
  return 0;
}

/* ---- output -------------------------------------------------------------------------------- */

static int put_ids(const tok_ids *v, int json, tok_buf *out, err *e) {
  char num[16];
  if (json && tok_buf_append(out, "[", 1, e) != 0) return -1;
  for (size_t i = 0; i < v->n; i++) {
    int k = snprintf(num, sizeof num, "%s%ld", i ? "," : "", (long)v->ids[i]);
    if (tok_buf_append(out, num, (size_t)k, e) != 0) return -1;
  }
  return tok_buf_append(out, json ? "]\n" : "\n", json ? 2 : 1, e);
}

static int put_json_text(const char *s, size_t n, tok_buf *out, err *e) {
  char q[8];
  if (tok_buf_append(out, "\"", 1, e) != 0) return -1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    int rc;
    if (c == '"' || c == '\\') { q[0] = '\\'; q[1] = (char)c; rc = tok_buf_append(out, q, 2, e); }
    else if (c < 0x20) { snprintf(q, sizeof q, "\\u%04x", c); rc = tok_buf_append(out, q, 6, e); }
    else rc = tok_buf_append(out, s + i, 1, e);
    if (rc != 0) return -1;
  }
  return tok_buf_append(out, "\"\n", 2, e);
}

/* ---- the work ------------------------------------------------------------------------------ */

static int encode_one(const tok *t, const tok_opts *o, const char *what, const char *s, size_t n, tok_ids *ids, err *e) {
  if (!o->chat) return tok_encode(t, what, s, n, ids, e);
  tok_chat c;
  tok_chat_init(&c);
  c.reasoning = o->reasoning;
  c.user = s;
  c.user_len = n;
  if (o->system) {
    c.developer = o->system;
    c.developer_len = strlen(o->system);
  }
  return tok_chat_encode(t, &c, ids, e);
}

/* --jsonl: each line of in (the final newline optional) encoded or decoded; errors name the
 * line. */
static int for_each_line(const tok *t, const tok_opts *o, const tok_buf *in, tok_buf *out, err *e) {
  const char *name = o->file ? o->file : "standard input";
  size_t line = 0;
  for (size_t i = 0; i < in->n;) {
    const char *nl = memchr(in->p + i, '\n', in->n - i);
    size_t end = nl ? (size_t)(nl - in->p) : in->n;
    line++;
    tok_buf s = {0};
    tok_ids ids = {0};
    const char *why = NULL;
    err le = {0};
    int rc = o->decode ? json_ids_decode(in->p + i, end - i, &ids, &why, &le)
                       : json_string_decode(in->p + i, end - i, &s, &why, &le);
    if (rc == -1) err_set(&le, EXIT_RUNTIME, "%s", why);
    if (rc == 0 && o->decode) {
      rc = tok_decode(t, ids.ids, ids.n, TOK_TEXT_REPLACE, &s, &le);
      if (rc == 0) rc = put_json_text(s.p ? s.p : "", s.n, out, &le);
    } else if (rc == 0) {
      rc = encode_one(t, o, "the text", s.p ? s.p : "", s.n, &ids, &le);
      if (rc == 0) rc = put_ids(&ids, 1, out, &le);
    }
    if (rc != 0) err_set(e, EXIT_RUNTIME, "%s: line %zu: %s", name, line, le.msg);
    tok_buf_free(&s);
    tok_ids_free(&ids);
    if (rc != 0) return -1;
    i = nl ? end + 1 : in->n;
  }
  return 0;
}

static int tokenize_run(const tok_opts *o, tok_buf *out, err *e) {
  tok *t = NULL;
  tok_buf in = {0};
  tok_ids ids = {0};
  int rc = tok_find(o->ckpt, o->tokenizer, &t, e);
  if (rc == 0)
    log_verbose("tokenize: %s (%s, %zu ranks, split regex %s)", tok_path(t),
                tok_get_source(t) == TOK_SRC_HF_JSON ? "tokenizer.json" : "tiktoken ranks", tok_n_ranks(t),
                tok_uses_jit(t) ? "JIT-compiled" : "interpreted");
  int need_input = !o->text && (!o->decode || !strcmp(o->decode, "-"));
  if (rc == 0 && need_input) rc = read_all(o->file, &in, e);
  if (rc == 0 && o->jsonl) {
    rc = for_each_line(t, o, &in, out, e);
  } else if (rc == 0 && o->decode) {
    tok_buf text = {0};
    int32_t *v = NULL;
    int n = 0;
    if (!strcmp(o->decode, "-"))   /* ids from a file: any whitespace separates them too */
      for (size_t i = 0; i < in.n; i++)
        if (in.p[i] == '\n' || in.p[i] == '\t' || in.p[i] == '\r') in.p[i] = ' ';
    const char *src = strcmp(o->decode, "-") ? o->decode : in.p;
    const char *what = strcmp(o->decode, "-") ? "--decode" : o->file ? o->file : "standard input";
    rc = cli_parse_ids(src, what, TOK_N_VOCAB - 1, &v, &n, e);
    if (rc == 0) rc = tok_decode(t, v, (size_t)n, TOK_TEXT_REPLACE, &text, e);
    if (rc == 0) rc = tok_buf_append(out, text.p ? text.p : "", text.n, e);
    if (rc == 0) rc = tok_buf_append(out, "\n", 1, e);
    free(v);
    tok_buf_free(&text);
  } else if (rc == 0) {
    const char *s = o->text ? o->text : in.p;
    size_t n = o->text ? strlen(o->text) : in.n;
    const char *what = o->text ? "--text" : o->file ? o->file : "standard input";
    rc = encode_one(t, o, what, s, n, &ids, e);
    if (rc == 0) rc = put_ids(&ids, 0, out, e);
  }
  tok_ids_free(&ids);
  tok_buf_free(&in);
  tok_close(t);
  return rc;
}

int cmd_tokenize(int argc, char **argv) {
  static const struct option longopts[] = {
      CLI_COMMON_LONGOPTS,
      {"tokenizer", required_argument, 0, OPT_TOKENIZER},
      {"text", required_argument, 0, OPT_TEXT},
      {"file", required_argument, 0, OPT_FILE},
      {"chat", no_argument, 0, OPT_CHAT},
      {"reasoning", required_argument, 0, OPT_REASONING},
      {"system", required_argument, 0, OPT_SYSTEM},
      {"jsonl", no_argument, 0, OPT_JSONL},
      {"decode", required_argument, 0, OPT_DECODE},
      {0, 0, 0, 0}};
  cli_common cc;
  cli_common_init(&cc);
  tok_opts o = {0};
  o.reasoning = TOK_REASONING_MEDIUM;
  int opt, done = 0, rc = 0, have_reasoning = 0;
  optind = 1;
  opterr = 1;
  while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
    if (cli_common_opt(opt, optarg, tokenize_usage, &cc, &done, &rc)) {
      if (done) return rc;
      continue;
    }
    switch (opt) {
      case OPT_TOKENIZER: o.tokenizer = optarg; break;
      case OPT_TEXT: o.text = optarg; break;
      case OPT_FILE: o.file = optarg; break;
      case OPT_CHAT: o.chat = 1; break;
      case OPT_SYSTEM: o.system = optarg; break;
      case OPT_JSONL: o.jsonl = 1; break;
      case OPT_DECODE: o.decode = optarg; break;
      case OPT_REASONING:
        if (tok_reasoning_parse(optarg, &o.reasoning) != 0)
          return cli_usage_error("tokenize", "--reasoning: '%s' is not one of low, medium, high", optarg);
        have_reasoning = 1;
        break;
      default: return cli_bad_option("tokenize");
    }
  }
  for (int i = optind; i < argc; i++) {
    if (!strcmp(argv[i], "-")) o.from_stdin = 1;
    else if (!o.ckpt) o.ckpt = argv[i];
    else return cli_usage_error("tokenize", "unexpected argument '%s'", argv[i]);
  }
  int n_src = !!o.text + !!o.file + o.from_stdin;
  int decode_reads = o.decode && !strcmp(o.decode, "-");
  if (o.decode && o.text) return cli_usage_error("tokenize", "--decode and --text exclude each other");
  if (o.decode && !decode_reads && n_src) return cli_usage_error("tokenize", "--decode IDS takes no other input (use --decode - to read ids)");
  if (!o.decode && n_src == 0) return cli_usage_error("tokenize", "no input: give --text TEXT, --file F or -");
  if (n_src > 1) return cli_usage_error("tokenize", "give only one of --text, --file and -");
  if (o.jsonl && o.text) return cli_usage_error("tokenize", "--jsonl reads lines from --file or standard input, not --text");
  if (o.jsonl && o.decode && !decode_reads) return cli_usage_error("tokenize", "--jsonl with --decode reads the ids from the input: use --decode -");
  if (o.decode && (o.chat || o.system || have_reasoning))
    return cli_usage_error("tokenize", "--chat, --system and --reasoning are for encoding, not --decode");
  if (!o.chat && (o.system || have_reasoning)) return cli_usage_error("tokenize", "--system and --reasoning need --chat");

  err e = {0};
  tok_buf out = {0};
  if (tokenize_run(&o, &out, &e) != 0) {
    log_error("%s", e.msg);
    tok_buf_free(&out);
    return e.code == EXIT_USAGE ? EXIT_USAGE : EXIT_RUNTIME;   /* bad --decode ids: usage */
  }
  size_t n = out.n, w = n ? fwrite(out.p, 1, n, stdout) : 0;
  tok_buf_free(&out);
  if (w != n || fflush(stdout) != 0) {
    log_error("tokenize: cannot write to standard output");
    return EXIT_RUNTIME;
  }
  return 0;
}
