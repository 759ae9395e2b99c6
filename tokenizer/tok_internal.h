/* tok_internal: what the files of tokenizer/ share (not for other modules).
 *
 * A vocabulary is built in three steps by the two readers (tok_vocab.c for ranks files,
 * tok_hf_read.c for tokenizer.json): tok_vocab_begin, tok_vocab_add per token (any order),
 * tok_vocab_finish (validation, rank-ordered byte blob, hash table, specials, regex). */
#ifndef GPTOSS_TOK_INTERNAL_H
#define GPTOSS_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>

#include "tok.h"

#define TOK_NO_RANK UINT32_MAX
#define TOK_TOKEN_MAX 1024            /* bytes in one token (o200k's longest: 128) */
#define TOK_FILE_MAX (128u << 20)     /* a vocabulary file larger than this is refused */

struct tok {
  char *path;
  tok_source source;
  uint32_t n_ranks;
  /* token bytes of every id 0..TOK_N_VOCAB-1: blob[off[id] .. off[id+1]); an id in
   * [n_ranks, TOK_FIRST_SPECIAL) (partial vocabularies) has no bytes and is not valid */
  uint8_t *blob;
  uint32_t *off;                    /* [TOK_N_VOCAB + 1] */
  uint32_t max_len;                 /* longest rank token, bytes */
  uint32_t byte_rank[256];
  uint32_t *pair_rank;              /* [65536]: rank of the 2-byte token (b0 << 8 | b1) */
  uint64_t *slots;                  /* hash: (hash >> 32) << 32 | (rank + 1); 0 = empty */
  uint64_t mask;
  pcre2_code *re;
  int jit;
  /* building only */
  uint32_t *src_line;               /* [TOK_N_RANKS] line (or entry) number of each rank */
  uint32_t *tmp_off, *tmp_len;      /* [TOK_N_RANKS] position in tmp_blob, length */
  uint8_t *tmp_blob;
  size_t tmp_n, tmp_cap;
  uint32_t n_added, max_rank;
  unsigned flags;
  const char *unit;                 /* "line" or "model.vocab entry", for messages */
};

/* Rank of the token with bytes p[0..n), TOK_NO_RANK if none. */
uint32_t tok_rank_of(const tok *t, const uint8_t *p, size_t n);

int tok_vocab_begin(tok *t, const char *name, tok_source src, unsigned flags, err *e);
/* Add token bytes p[0..n) with rank; where = its line/entry number (for messages). */
int tok_vocab_add(tok *t, const uint8_t *p, size_t n, uint32_t rank, uint32_t where, err *e);
int tok_vocab_finish(tok *t, err *e);
/* Free everything t holds (t itself too). */
void tok_free(tok *t);

/* tokenizer.json -> t (after tok_vocab_begin): structure, pre-tokenizer, added tokens and the
 * vocabulary. *json (the parsed file; tok_hf_json_free) is set even on error. After
 * tok_vocab_finish, tok_hf_check checks the merges against the ranks. */
int tok_hf_read(tok *t, const char *data, size_t n, void **json, err *e);
int tok_hf_check(const tok *t, void *json, err *e);
void tok_hf_json_free(void *json);
/* Byte-level alphabet (GPT-2 bytes_to_unicode): byte -> code point, and back (-1 if none). */
uint32_t tok_byte_to_cp(uint8_t b);
int tok_cp_to_byte(uint32_t cp);

/* tok_json.c: JSON as a flat array of nodes pointing into the text (a 27 MB tokenizer.json
 * costs about twice its size). Node 0 means "none"; the document's value is TJ_ROOT. A
 * container's first child follows it (tj_first), siblings chain through next, and an object
 * member's value carries the index of its key. Errors name the byte and line. */
typedef enum { TJ_NULL, TJ_FALSE, TJ_TRUE, TJ_NUMBER, TJ_STRING, TJ_ARRAY, TJ_OBJECT } tj_type;
typedef struct {
  uint32_t type : 3, escaped : 1;
  uint32_t off, len;                /* strings: raw text between the quotes; containers: len = count */
  uint32_t next, key;
} tj_node;
typedef struct {
  const char *src;
  tj_node *node;
  size_t n, cap;
} tj_doc;
#define TJ_ROOT 1
int tj_parse(const char *path, const char *s, size_t n, tj_doc *d, err *e);
void tj_free(tj_doc *d);
/* "an object", "a string", ... or "missing" for node 0. */
const char *tj_kind(const tj_doc *d, uint32_t i);
/* Member of object obj by (unescaped) key; 0 if absent or obj is not an object. */
uint32_t tj_get(const tj_doc *d, uint32_t obj, const char *key);
/* First element (array) or first member value (object); 0 if none. */
uint32_t tj_first(const tj_doc *d, uint32_t i);
int tj_is_str(const tj_doc *d, uint32_t i, const char *s);
/* Decoded string into buf[cap] (NUL-terminated, length in *len); -1 if node i is not a string,
 * is too long, or holds \u0000 or a lone surrogate. */
int tj_str(const tj_doc *d, uint32_t i, char *buf, size_t cap, size_t *len);
/* An integral number in [0, max) -> *out; -1 otherwise. */
int tj_index(const tj_doc *d, uint32_t i, double max, uint32_t *out);

/* The o200k split pattern as tiktoken writes it (what tokenizer.json files carry). */
extern const char tok_o200k_pattern[];
int tok_regex_compile(tok *t, err *e);

/* Decode one UTF-8 code point at s[i..n): returns its length (1..4) and *cp, or 0 if the bytes
 * at i do not start a valid sequence (WHATWG rules): *len_bad = the maximal subpart (what one
 * U+FFFD replaces) and *at_end = 1 if that subpart is a valid beginning cut by the end of s. */
int tok_utf8_next(const uint8_t *s, size_t n, size_t i, uint32_t *cp, size_t *len_bad, int *at_end);
int tok_buf_put_utf8(tok_buf *b, uint32_t cp, err *e);

#endif
