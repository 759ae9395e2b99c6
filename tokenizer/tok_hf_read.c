/* Reading a Hugging Face tokenizer.json of the tiktoken kind (see tok.h): the vocabulary
 * becomes the ranks; merges, pre-tokenizer, normalizer and added tokens are checked against
 * what o200k_harmony is, so that a file that would tokenize differently is refused rather than
 * read with other rules. The JSON is read with tok_json.c (nodes pointing into the text). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quote.h"
#include "tok_internal.h"

/* ---- byte-level alphabet (GPT-2 bytes_to_unicode) ------------------------------------------- */

static int byte_is_printable(unsigned b) {
  return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
}

/* The bytes that are not printable, in order, are 0x00-0x20, 0x7f-0xa0 and 0xad: they map to
 * U+0100.. in that order. */
uint32_t tok_byte_to_cp(uint8_t b) {
  if (byte_is_printable(b)) return b;
  return 256 + (b <= 0x20 ? b : b <= 0xa0 ? 33u + (b - 0x7fu) : 67u);
}

int tok_cp_to_byte(uint32_t cp) {
  if (cp < 256) return byte_is_printable(cp) ? (int)cp : -1;
  cp -= 256;
  return cp < 33 ? (int)cp : cp < 67 ? (int)(0x7f + cp - 33) : cp == 67 ? 0xad : -1;
}

/* A byte-level string s[0..len) -> bytes (out holds len bytes). -1 with the bad code point. */
static int bytelevel_decode(const char *s, size_t len, uint8_t *out, size_t *n, uint32_t *bad_cp) {
  const uint8_t *u = (const uint8_t *)s;
  size_t o = 0;
  for (size_t i = 0; i < len;) {
    uint32_t cp;
    size_t bad;
    int at_end;
    int k = tok_utf8_next(u, len, i, &cp, &bad, &at_end);
    int b = k > 0 ? tok_cp_to_byte(cp) : -1;
    if (b < 0) { *bad_cp = k > 0 ? cp : 0xfffd; return -1; }
    out[o++] = (uint8_t)b;
    i += (size_t)k;
  }
  *n = o;
  return 0;
}

/* ---- checks -------------------------------------------------------------------------------- */

#define STR_MAX (4 * TOK_TOKEN_MAX + 8)

/* A string node decoded for messages (quoted) or comparison; "" when it is not a string. */
static const char *str_of(const tj_doc *d, uint32_t i, char *buf, size_t cap) {
  if (!i || tj_str(d, i, buf, cap, NULL) != 0) buf[0] = '\0';
  return buf;
}

/* Walk the pre-tokenizer tree: exactly the o200k Split and a ByteLevel without its own regex. */
static int pretok_check(const tok *t, const tj_doc *d, uint32_t p, const char *where, int *split, int *bytelevel, err *e) {
  uint32_t type = tj_get(d, p, "type");
  char q[128], s[1024];
  if (!type || d->node[type].type != TJ_STRING)
    return err_set(e, EXIT_RUNTIME, "%s: %s is %s, not a pre-tokenizer object with a \"type\"", t->path, where, tj_kind(d, p));
  if (tj_is_str(d, type, "Sequence")) {
    uint32_t list = tj_get(d, p, "pretokenizers");
    if (!list || d->node[list].type != TJ_ARRAY)
      return err_set(e, EXIT_RUNTIME, "%s: %s.pretokenizers is %s, not an array", t->path, where, tj_kind(d, list));
    for (uint32_t c = tj_first(d, list); c; c = d->node[c].next)
      if (pretok_check(t, d, c, "pre_tokenizer.pretokenizers[]", split, bytelevel, e) != 0) return -1;
    return 0;
  }
  if (tj_is_str(d, type, "Split")) {
    uint32_t pat = tj_get(d, p, "pattern"), re = pat ? tj_get(d, pat, "Regex") : 0;
    uint32_t beh = tj_get(d, p, "behavior"), inv = tj_get(d, p, "invert");
    if (!re || d->node[re].type != TJ_STRING)
      return err_set(e, EXIT_RUNTIME, "%s: %s: Split.pattern.Regex is %s, not a string", t->path, where, tj_kind(d, re));
    if (tj_str(d, re, s, sizeof s, NULL) != 0 || strcmp(s, tok_o200k_pattern) != 0)
      return err_set(e, EXIT_RUNTIME, "%s: %s: Split pattern '%s' is not o200k's split pattern", t->path, where,
                     quote_name(s, q, sizeof q));
    if (!tj_is_str(d, beh, "Isolated"))
      return err_set(e, EXIT_RUNTIME, "%s: %s: Split.behavior is not \"Isolated\"", t->path, where);
    if (inv && d->node[inv].type != TJ_FALSE)
      return err_set(e, EXIT_RUNTIME, "%s: %s: Split.invert is not false", t->path, where);
    (*split)++;
    return 0;
  }
  if (tj_is_str(d, type, "ByteLevel")) {
    uint32_t ur = tj_get(d, p, "use_regex"), ps = tj_get(d, p, "add_prefix_space");
    if (!ur || d->node[ur].type != TJ_FALSE)
      return err_set(e, EXIT_RUNTIME, "%s: %s: ByteLevel.use_regex is not false (a second split would apply)", t->path, where);
    if (ps && d->node[ps].type != TJ_FALSE)
      return err_set(e, EXIT_RUNTIME, "%s: %s: ByteLevel.add_prefix_space is not false", t->path, where);
    (*bytelevel)++;
    return 0;
  }
  return err_set(e, EXIT_RUNTIME, "%s: %s: pre-tokenizer type '%s' is not part of o200k (Split + ByteLevel)",
                 t->path, where, quote_name(str_of(d, type, s, sizeof s), q, sizeof q));
}

static int added_tokens_check(const tok *t, const tj_doc *d, uint32_t list, err *e) {
  if (!list || d->node[list].type == TJ_NULL) return 0;
  if (d->node[list].type != TJ_ARRAY)
    return err_set(e, EXIT_RUNTIME, "%s: added_tokens is %s, not an array", t->path, tj_kind(d, list));
  size_t i = 0;
  for (uint32_t a = tj_first(d, list); a; a = d->node[a].next, i++) {
    uint32_t id = tj_get(d, a, "id"), c = tj_get(d, a, "content"), v;
    char s[256], q[128];
    size_t len;
    if (tj_index(d, id, TOK_N_VOCAB, &v) != 0)
      return err_set(e, EXIT_RUNTIME, "%s: added_tokens[%zu].id is %s, not an id below %d", t->path, i, tj_kind(d, id), TOK_N_VOCAB);
    if (!c || d->node[c].type != TJ_STRING)
      return err_set(e, EXIT_RUNTIME, "%s: added_tokens[%zu].content is %s, not a string", t->path, i, tj_kind(d, c));
    if (tj_str(d, c, s, sizeof s, &len) != 0 || tok_special_find(s, len) != (int32_t)v)
      return err_set(e, EXIT_RUNTIME, "%s: added_tokens[%zu]: id %u is '%s'; o200k_harmony's id %u is %s", t->path, i,
                     v, quote_name(s, q, sizeof q), v,
                     tok_special_name((int32_t)v) ? tok_special_name((int32_t)v) : "a rank, not a special token");
  }
  return 0;
}

/* ---- reading ------------------------------------------------------------------------------- */

int tok_hf_read(tok *t, const char *data, size_t n, void **json, err *e) {
  tj_doc *d = calloc(1, sizeof *d);
  *json = d;
  if (!d) return err_set(e, EXIT_RUNTIME, "%s: out of memory", t->path);
  if (tj_parse(t->path, data, n, d, e) != 0) return -1;
  if (d->node[TJ_ROOT].type != TJ_OBJECT)
    return err_set(e, EXIT_RUNTIME, "%s: the top level is %s, not an object", t->path, tj_kind(d, TJ_ROOT));
  uint32_t model = tj_get(d, TJ_ROOT, "model");
  if (!model || d->node[model].type != TJ_OBJECT)
    return err_set(e, EXIT_RUNTIME, "%s: model is %s, not an object", t->path, tj_kind(d, model));
  uint32_t type = tj_get(d, model, "type");
  if (type && !tj_is_str(d, type, "BPE")) return err_set(e, EXIT_RUNTIME, "%s: model.type is not \"BPE\"", t->path);
  uint32_t vocab = tj_get(d, model, "vocab"), merges = tj_get(d, model, "merges");
  if (!vocab || d->node[vocab].type != TJ_OBJECT)
    return err_set(e, EXIT_RUNTIME, "%s: model.vocab is %s, not an object", t->path, tj_kind(d, vocab));
  if (!merges || d->node[merges].type != TJ_ARRAY)
    return err_set(e, EXIT_RUNTIME, "%s: model.merges is %s, not an array", t->path, tj_kind(d, merges));
  uint32_t norm = tj_get(d, TJ_ROOT, "normalizer");
  if (norm && d->node[norm].type != TJ_NULL)
    return err_set(e, EXIT_RUNTIME, "%s: normalizer is %s, not null (o200k does not normalise text)", t->path, tj_kind(d, norm));
  int split = 0, bytelevel = 0;
  if (pretok_check(t, d, tj_get(d, TJ_ROOT, "pre_tokenizer"), "pre_tokenizer", &split, &bytelevel, e) != 0) return -1;
  if (split != 1 || bytelevel != 1)
    return err_set(e, EXIT_RUNTIME, "%s: pre_tokenizer has %d o200k Split and %d ByteLevel (want one of each)", t->path,
                   split, bytelevel);
  if (added_tokens_check(t, d, tj_get(d, TJ_ROOT, "added_tokens"), e) != 0) return -1;

  char key[STR_MAX];
  uint8_t bytes[STR_MAX];
  uint32_t entry = 0;
  for (uint32_t v = tj_first(d, vocab); v; v = d->node[v].next) {
    entry++;
    char q[128];
    uint32_t id, bad_cp;
    size_t len, kl;
    if (tj_str(d, d->node[v].key, key, sizeof key, &kl) != 0)
      return err_set(e, EXIT_RUNTIME, "%s: model.vocab entry %u: the key is too long or holds \\u0000 or a lone surrogate",
                     t->path, entry);
    if (tj_index(d, v, TOK_N_VOCAB, &id) != 0)
      return err_set(e, EXIT_RUNTIME, "%s: model.vocab['%s'] is %s, not an id below %d", t->path,
                     quote_name(key, q, sizeof q), d->node[v].type == TJ_NUMBER ? "a number out of range" : tj_kind(d, v),
                     TOK_N_VOCAB);
    if (id >= TOK_FIRST_SPECIAL) {        /* some files list the specials in the vocabulary too */
      if (tok_special_find(key, kl) != (int32_t)id)
        return err_set(e, EXIT_RUNTIME, "%s: model.vocab['%s'] = %u, which is the special token %s", t->path,
                       quote_name(key, q, sizeof q), id, tok_special_name((int32_t)id));
      continue;
    }
    if (bytelevel_decode(key, kl, bytes, &len, &bad_cp) != 0)
      return err_set(e, EXIT_RUNTIME, "%s: model.vocab['%s'] (id %u) holds U+%04X, outside the byte-level alphabet",
                     t->path, quote_name(key, q, sizeof q), id, (unsigned)bad_cp);
    if (tok_vocab_add(t, bytes, len, id, entry, e) != 0) return -1;
  }
  return 0;
}

/* One merge "a b" or ["a", "b"] -> the three ranks (a, b, a+b). */
static int merge_ranks(const tok *t, const tj_doc *d, uint32_t m, size_t i, uint32_t r[3], err *e) {
  char tmp[2 * STR_MAX];
  const char *a, *b;
  size_t la, lb;
  if (d->node[m].type == TJ_STRING) {
    size_t len;
    if (tj_str(d, m, tmp, sizeof tmp, &len) != 0) return err_set(e, EXIT_RUNTIME, "%s: model.merges[%zu] is too long", t->path, i);
    const char *sp = memchr(tmp, ' ', len);
    if (!sp || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - tmp)))
      return err_set(e, EXIT_RUNTIME, "%s: model.merges[%zu] is not \"<left> <right>\"", t->path, i);
    a = tmp;
    la = (size_t)(sp - tmp);
    b = sp + 1;
    lb = len - la - 1;
  } else {
    uint32_t x = tj_first(d, m), y = x ? d->node[x].next : 0;
    if (d->node[m].type != TJ_ARRAY || d->node[m].len != 2 || d->node[x].type != TJ_STRING || d->node[y].type != TJ_STRING)
      return err_set(e, EXIT_RUNTIME, "%s: model.merges[%zu] is %s, not a pair of strings", t->path, i, tj_kind(d, m));
    if (tj_str(d, x, tmp, STR_MAX, &la) != 0 || tj_str(d, y, tmp + STR_MAX, STR_MAX, &lb) != 0)
      return err_set(e, EXIT_RUNTIME, "%s: model.merges[%zu] is too long", t->path, i);
    a = tmp;
    b = tmp + STR_MAX;
  }
  uint8_t ab[2 * STR_MAX];
  size_t na, nb;
  uint32_t bad;
  if (bytelevel_decode(a, la, ab, &na, &bad) != 0 || bytelevel_decode(b, lb, ab + na, &nb, &bad) != 0)
    return err_set(e, EXIT_RUNTIME, "%s: model.merges[%zu] is not a pair of byte-level tokens", t->path, i);
  r[0] = tok_rank_of(t, ab, na);
  r[1] = tok_rank_of(t, ab + na, nb);
  r[2] = tok_rank_of(t, ab, na + nb);
  if (r[0] == TOK_NO_RANK || r[1] == TOK_NO_RANK || r[2] == TOK_NO_RANK) {
    char q1[64], q2[64], s1[STR_MAX], s2[STR_MAX];
    snprintf(s1, sizeof s1, "%.*s", (int)la, a);
    snprintf(s2, sizeof s2, "%.*s", (int)lb, b);
    return err_set(e, EXIT_RUNTIME, "%s: model.merges[%zu] ('%s' + '%s'): %s is not in model.vocab", t->path, i,
                   quote_name(s1, q1, sizeof q1), quote_name(s2, q2, sizeof q2),
                   r[0] == TOK_NO_RANK ? "the left part" : r[1] == TOK_NO_RANK ? "the right part" : "the merged token");
  }
  return 0;
}

int tok_hf_check(const tok *t, void *json, err *e) {
  const tj_doc *d = json;
  uint32_t merges = tj_get(d, tj_get(d, TJ_ROOT, "model"), "merges");
  /* Ids are read as ranks, which is right only when the merges are in rank order (a merge's
   * priority in Hugging Face's BPE is its index); every token longer than one byte must also
   * be made by some merge, or the file was cut. */
  uint8_t *made = calloc(t->n_ranks, 1);
  if (!made) return err_set(e, EXIT_RUNTIME, "%s: out of memory", t->path);
  uint32_t last = 0;
  size_t i = 0;
  int rc = 0;
  for (uint32_t m = tj_first(d, merges); m; m = d->node[m].next, i++) {
    uint32_t r[3];
    if ((rc = merge_ranks(t, d, m, i, r, e)) != 0) break;
    if (r[2] < last) {
      rc = err_set(e, EXIT_RUNTIME, "%s: model.merges[%zu] makes rank %u after rank %u: merges are not in rank order "
                   "(ids are read as tiktoken ranks)", t->path, i, r[2], last);
      break;
    }
    last = r[2];
    made[r[2]] = 1;
  }
  for (uint32_t r = 0; rc == 0 && r < t->n_ranks; r++)
    if (!made[r] && t->off[r + 1] - t->off[r] > 1)
      rc = err_set(e, EXIT_RUNTIME, "%s: rank %u (%u bytes) is made by no entry of model.merges (%zu merges): "
                   "truncated file?", t->path, r, t->off[r + 1] - t->off[r], i);
  free(made);
  return rc;
}

void tok_hf_json_free(void *json) {
  if (!json) return;
  tj_free(json);
  free(json);
}
