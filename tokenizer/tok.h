/* tok: the o200k_harmony tokenizer of GPT-OSS: text <-> token ids, harmony chat prompts, and
 * the tokenizer files Hugging Face clients read. Local (no MPI), no model math.
 *
 * Ids (o200k_harmony, 201,088 = TOK_N_VOCAB): 0..199,997 are byte-level BPE ranks (o200k_base);
 * 199,998..201,087 are special tokens, never produced from text (a typed "<|end|>" is text):
 *   <|startoftext|> 199998  <|endoftext|> 199999  <|return|> 200002  <|constrain|> 200003
 *   <|channel|> 200005  <|start|> 200006  <|end|> 200007  <|message|> 200008  <|call|> 200012
 *   <|endofprompt|> 200018 (o200k_base's name, kept by Hugging Face's gpt-oss tokenizer files;
 *   openai-harmony calls it <|reserved_200018|>, accepted as an alias), <|reserved_N|> the rest.
 *
 * Vocabulary files (tok_open detects the format from the first non-blank byte):
 *  - a tiktoken ranks file (o200k_base.tiktoken): lines "<base64 token bytes> <rank>", blank
 *    lines ignored, "\r\n" accepted;
 *  - a Hugging Face tokenizer.json whose model is a tiktoken-style byte-level BPE (what
 *    transformers' TikTokenConverter writes and gpt-oss ships): model.vocab maps byte-level
 *    strings to ids = ranks, model.merges ("a b" strings or ["a","b"] pairs) in rank order,
 *    pre_tokenizer = Split(o200k regex) + ByteLevel, added_tokens = harmony specials.
 * Both are validated whole before use: ranks exactly 0..N-1 (no gap, no duplicate rank or
 * token), every single byte present, N = 199,998 (unless TOK_OPEN_PARTIAL), lines and files of
 * bounded size, merges consistent with the ranks, added tokens equal to the harmony specials.
 * Any failure: -1 and one err naming the file, the line (or JSON field, or byte offset) and
 * what was wrong. Files must be regular files (a FIFO or device is refused without blocking).
 *
 * Encoding (tiktoken's encode_ordinary, exactly): the text, which must be valid UTF-8, is split
 * by the o200k regex (PCRE2, UTF + UCP, JIT when available; character classes follow Unicode
 * 16.0 like tiktoken's Rust regex, \s is Unicode White_Space); a piece that is a token is that
 * token, otherwise its bytes are merged pairwise, always the lowest-ranked adjacent pair first
 * (leftmost on ties), with a heap over a linked list of parts: O(n log n) per piece.
 *
 * Decoding: each id's bytes (a special's bytes are its name), concatenated; TOK_TEXT_REPLACE
 * turns bytes that are not UTF-8 into U+FFFD exactly as Python's errors="replace" and the
 * WHATWG TextDecoder do (one U+FFFD per maximal invalid subpart); TOK_TEXT_ESCAPE gives one
 * printable line (controls, backslash and invalid bytes as \n \t \\ \xNN, C1/U+2028/U+2029 as
 * \u{XXXX}) for messages and reports.
 *
 * A tok is read-only after tok_open: every function taking `const tok *` may run concurrently.
 * Buffers (tok_ids, tok_buf) are caller-owned and grown by the functions that append to them;
 * on error they hold what was appended before the error (free them either way). */
#ifndef GPTOSS_TOK_H
#define GPTOSS_TOK_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define TOK_N_VOCAB 201088        /* ids 0..201087 */
#define TOK_N_RANKS 199998        /* o200k_base ranks 0..199997 */
#define TOK_FIRST_SPECIAL 199998

enum {
  TOK_STARTOFTEXT = 199998, TOK_ENDOFTEXT = 199999, TOK_RETURN = 200002, TOK_CONSTRAIN = 200003,
  TOK_CHANNEL = 200005, TOK_START = 200006, TOK_END = 200007, TOK_MESSAGE = 200008,
  TOK_CALL = 200012, TOK_ENDOFPROMPT = 200018
};

typedef struct tok tok;

typedef struct {
  int32_t *ids;
  size_t n, cap;
} tok_ids;

typedef struct {
  char *p;        /* n bytes (may hold NUL bytes), NUL-terminated when p != NULL */
  size_t n, cap;
} tok_buf;

typedef enum { TOK_SRC_TIKTOKEN, TOK_SRC_HF_JSON } tok_source;

enum { TOK_OPEN_PARTIAL = 1 };    /* accept any N >= 256 ranks (tests, fuzzing) */

/* ---- loading ------------------------------------------------------------------------------ */

/* Read and validate a vocabulary file of either format. Caller owns *out (tok_close). */
int tok_open(const char *path, tok **out, err *e);
/* The same from memory; name is used in messages. flags: 0 or TOK_OPEN_PARTIAL. */
int tok_open_mem(const char *name, const void *data, size_t n, unsigned flags, tok **out, err *e);
/* Find the vocabulary of a checkpoint and open it. explicit_path (may be NULL) wins and is the
 * only place tried when given. Otherwise, in order: CKPT/tokenizer.json, the repository root's
 * tokenizer.json (the parent of CKPT when CKPT is an `original/` directory),
 * CKPT/o200k_base.tiktoken, the root's o200k_base.tiktoken, then
 * $TIKTOKEN_ENCODINGS_BASE/o200k_base.tiktoken (openai-harmony's variable). ckpt_dir may be
 * NULL (then only the variable is tried). The first file that exists is opened (a corrupt one
 * is an error, not skipped); when none exists the error names every place looked at. */
int tok_find(const char *ckpt_dir, const char *explicit_path, tok **out, err *e);
void tok_close(tok *t);

const char *tok_path(const tok *t);           /* the file read (or the name given) */
tok_source tok_get_source(const tok *t);
size_t tok_n_ranks(const tok *t);             /* 199998 unless opened TOK_OPEN_PARTIAL */
int tok_uses_jit(const tok *t);               /* 1 if the split regex runs JIT-compiled */
/* 1 if id is a token of this vocabulary (a rank, or a special). */
int tok_id_valid(const tok *t, int32_t id);

/* ---- encoding ----------------------------------------------------------------------------- */

/* Append the ids of text[0..n) as ordinary text (no specials). what names the text in errors
 * (NULL: "text"); invalid UTF-8 is an error naming the byte offset. */
int tok_encode(const tok *t, const char *what, const char *text, size_t n, tok_ids *out, err *e);
/* 0 if s[0..n) is valid UTF-8 (no surrogates, no overlongs, <= U+10FFFF); otherwise -1 and
 * *bad_off = offset of the first byte of the first invalid sequence. */
int tok_utf8_check(const char *s, size_t n, size_t *bad_off);

/* ---- harmony chat ------------------------------------------------------------------------- */

typedef enum { TOK_REASONING_LOW, TOK_REASONING_MEDIUM, TOK_REASONING_HIGH } tok_reasoning;

typedef struct {
  tok_reasoning reasoning;        /* the system message's "Reasoning: ..." line */
  const char *developer;          /* NULL: no developer message; else "# Instructions\n\n" + it */
  size_t developer_len;
  const char *user;               /* the user message */
  size_t user_len;
} tok_chat;

/* reasoning medium, no developer message, empty user message. */
void tok_chat_init(tok_chat *c);
/* "low" / "medium" / "high" -> *out; -1 (and *out untouched) otherwise. */
int tok_reasoning_parse(const char *s, tok_reasoning *out);
const char *tok_reasoning_name(tok_reasoning r);
/* Append the conversation as openai-harmony renders it for completion:
 *   <|start|>system<|message|>{system}<|end|>
 *   [<|start|>developer<|message|># Instructions\n\n{developer}<|end|>]
 *   <|start|>user<|message|>{user}<|end|><|start|>assistant
 * system = "You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff:
 * 2024-06\n\nReasoning: {low|medium|high}\n\n# Valid channels: analysis, commentary, final.
 * Channel must be included for every message." Specials as ids, every text as ordinary text. */
int tok_chat_encode(const tok *t, const tok_chat *c, tok_ids *out, err *e);
/* The same rendering as text with the specials spelled out (what a chat template produces). */
int tok_chat_text(const tok_chat *c, tok_buf *out, err *e);

/* ---- special and stop tokens (no vocabulary needed) ---------------------------------------- */

/* Name of a special id ("<|start|>"), NULL if id is not in [TOK_FIRST_SPECIAL, TOK_N_VOCAB). */
const char *tok_special_name(int32_t id);
/* Id of a special token name (s[0..n)), aliases included; -1 if none. */
int32_t tok_special_find(const char *s, size_t n);
/* 1 for the tokens that end an assistant turn in generation: <|return|>, <|call|>. */
int tok_is_stop(int32_t id);
/* generation_config.json eos_token_id of gpt-oss: {200002, 199999, 200012}. Returns the count. */
size_t tok_eos_ids(const int32_t **ids);

/* ---- decoding ----------------------------------------------------------------------------- */

typedef enum { TOK_TEXT_RAW, TOK_TEXT_REPLACE, TOK_TEXT_ESCAPE } tok_text_mode;

/* The bytes of one id (borrowed from t). -1 and an err naming the id if it is not valid. */
int tok_token_bytes(const tok *t, int32_t id, const uint8_t **p, size_t *n, err *e);
/* Append the text of ids[0..n) in the given mode (RAW: the bytes as they are). An invalid id
 * is an error naming it and its position. */
int tok_decode(const tok *t, const int32_t *ids, size_t n, tok_text_mode mode, tok_buf *out,
               err *e);
/* Append bytes[0..n) as text in the given mode (the conversion tok_decode applies). */
int tok_text_append(const void *bytes, size_t n, tok_text_mode mode, tok_buf *out, err *e);

/* Decoding one id at a time (printing generated text): complete characters are appended as
 * soon as they are known (TOK_TEXT_REPLACE rules); an incomplete UTF-8 sequence at the end is
 * held until the next id completes it or tok_stream_finish turns it into U+FFFD. The text
 * appended over a whole stream equals tok_decode(..., TOK_TEXT_REPLACE) of all its ids. */
typedef struct {
  uint8_t pend[4];
  int n_pend;
} tok_stream;
void tok_stream_init(tok_stream *s);
int tok_stream_push(const tok *t, tok_stream *s, int32_t id, tok_buf *out, err *e);
int tok_stream_finish(tok_stream *s, tok_buf *out, err *e);

/* ---- Hugging Face tokenizer files ---------------------------------------------------------- */

/* tokenizer.json for t: TikTokenConverter's vocab (byte-level strings -> ranks) and merges (for
 * each token in rank order, every split into two tokens, sorted by their ranks), Split(o200k
 * regex, Isolated) + ByteLevel(use_regex false) pre-tokenizer, ByteLevel decoder, the 1,090
 * specials as added tokens. Appended to out. */
int tok_hf_tokenizer_json(const tok *t, tok_buf *out, err *e);
/* tokenizer_config.json: added_tokens_decoder, bos/eos/pad tokens, PreTrainedTokenizerFast,
 * and chat_template = tok_chat_template(). Appended to out. */
int tok_hf_tokenizer_config(tok_buf *out, err *e);
/* Jinja chat template whose rendering of [system or developer message (optional), user] with
 * add_generation_prompt (and optional reasoning_effort) equals tok_chat_text. Static string. */
const char *tok_chat_template(void);
/* Write dir/tokenizer.json and dir/tokenizer_config.json (dir must exist), each atomically
 * (shards/atomic.h: a temporary file, fsync, rename, fsync of dir). */
int tok_hf_write_dir(const tok *t, const char *dir, err *e);

/* ---- buffers ------------------------------------------------------------------------------ */

int tok_ids_push(tok_ids *v, int32_t id, err *e);
void tok_ids_free(tok_ids *v);
int tok_buf_append(tok_buf *b, const void *data, size_t n, err *e);
void tok_buf_free(tok_buf *b);

#endif
