/* Reading a Hugging Face tokenizer.json of the tiktoken kind (see tok.h): the vocabulary
 * becomes the ranks; merges, pre-tokenizer, normalizer and added tokens are checked against
 * what o200k_harmony is, so that a file that would tokenize differently is refused rather than
 * read with other rules. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quote.h"
#include "tok_internal.h"

/* ---- byte-level alphabet (GPT-2 bytes_to_unicode) ------------------------------------------- */

static int byte_is_printable(unsigned b) {
  return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
}

uint32_t tok_byte_to_cp(uint8_t b) {
  if (byte_is_printable(b)) return b;
  uint32_t k = 0;                       /* rank of b among the bytes that are not printable */
  for (unsigned x = 0; x < b; x++) k += !byte_is_printable(x);
  return 256 + k;
}

int tok_cp_to_byte(uint32_t cp) {
  if (cp < 256) return byte_is_printable(cp) ? (int)cp : -1;
  if (cp >= 256 + 68) return -1;
  uint32_t k = 0;
  for (unsigned x = 0; x < 256; x++)
    if (!byte_is_printable(x) && k++ == cp - 256) return (int)x;
  return -1;
}

/* A byte-level string -> bytes (out holds at least strlen(s) bytes). -1 with the bad code point. */
static int bytelevel_decode(const char *s, uint8_t *out, size_t *n, uint32_t *bad_cp) {
  const uint8_t *u = (const uint8_t *)s;
  size_t len = strlen(s), o = 0;
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

static const char *kind(const cJSON *v) { return v ? quote_json_kind(v) : "missing"; }

static int get_index(const cJSON *v, double max, uint32_t *out) {
  if (!cJSON_IsNumber(v)) return -1;
  double d = v->valuedouble;
  if (!(d >= 0 && d < max) || d != floor(d)) return -1;
  *out = (uint32_t)d;
  return 0;
}

/* Walk the pre-tokenizer tree: exactly the o200k Split and a ByteLevel without its own regex. */
static int pretok_check(const tok *t, const cJSON *p, const char *where, int *split, int *bytelevel, err *e) {
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "type");
  if (!cJSON_IsObject(p) || !cJSON_IsString(type))
    return err_set(e, EXIT_RUNTIME, "%s: %s is %s, not a pre-tokenizer object with a \"type\"", t->path, where, kind(p));
  char q[128];
  if (!strcmp(type->valuestring, "Sequence")) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers"), *c;
    if (!cJSON_IsArray(list)) return err_set(e, EXIT_RUNTIME, "%s: %s.pretokenizers is %s, not an array", t->path, where, kind(list));
    cJSON_ArrayForEach(c, list) if (pretok_check(t, c, "pre_tokenizer.pretokenizers[]", split, bytelevel, e) != 0) return -1;
    return 0;
  }
  if (!strcmp(type->valuestring, "Split")) {
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
    const cJSON *beh = cJSON_GetObjectItemCaseSensitive(p, "behavior");
    const cJSON *inv = cJSON_GetObjectItemCaseSensitive(p, "invert");
    if (!cJSON_IsString(re))
      return err_set(e, EXIT_RUNTIME, "%s: %s: Split.pattern.Regex is %s, not a string", t->path, where, kind(re));
    if (strcmp(re->valuestring, tok_o200k_pattern) != 0)
      return err_set(e, EXIT_RUNTIME, "%s: %s: Split pattern '%s' is not o200k's split pattern", t->path, where,
                     quote_name(re->valuestring, q, sizeof q));
    if (!cJSON_IsString(beh) || strcmp(beh->valuestring, "Isolated") != 0)
      return err_set(e, EXIT_RUNTIME, "%s: %s: Split.behavior is not \"Isolated\"", t->path, where);
    if (inv && !cJSON_IsFalse(inv))
      return err_set(e, EXIT_RUNTIME, "%s: %s: Split.invert is not false", t->path, where);
    (*split)++;
    return 0;
  }
  if (!strcmp(type->valuestring, "ByteLevel")) {
    const cJSON *ur = cJSON_GetObjectItemCaseSensitive(p, "use_regex");
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(p, "add_prefix_space");
    if (!cJSON_IsFalse(ur))
      return err_set(e, EXIT_RUNTIME, "%s: %s: ByteLevel.use_regex is not false (a second split would apply)", t->path, where);
    if (ps && !cJSON_IsFalse(ps))
      return err_set(e, EXIT_RUNTIME, "%s: %s: ByteLevel.add_prefix_space is not false", t->path, where);
    (*bytelevel)++;
    return 0;
  }
  return err_set(e, EXIT_RUNTIME, "%s: %s: pre-tokenizer type '%s' is not part of o200k (Split + ByteLevel)",
                 t->path, where, quote_name(type->valuestring, q, sizeof q));
}

static int added_tokens_check(const tok *t, const cJSON *list, err *e) {
  if (!list || cJSON_IsNull(list)) return 0;
  if (!cJSON_IsArray(list)) return err_set(e, EXIT_RUNTIME, "%s: added_tokens is %s, not an array", t->path, kind(list));
  size_t i = 0;
  const cJSON *a;
  cJSON_ArrayForEach(a, list) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id"), *c = cJSON_GetObjectItemCaseSensitive(a, "content");
    uint32_t v;
    if (get_index(id, TOK_N_VOCAB, &v) != 0)
      return err_set(e, EXIT_RUNTIME, "%s: added_tokens[%zu].id is %s, not an id below %d", t->path, i, kind(id), TOK_N_VOCAB);
    if (!cJSON_IsString(c))
      return err_set(e, EXIT_RUNTIME, "%s: added_tokens[%zu].content is %s, not a string", t->path, i, kind(c));
    char q[128];
    if (tok_special_find(c->valuestring, strlen(c->valuestring)) != (int32_t)v)
      return err_set(e, EXIT_RUNTIME, "%s: added_tokens[%zu]: id %u is '%s'; o200k_harmony's id %u is %s", t->path, i,
                     v, quote_name(c->valuestring, q, sizeof q), v,
                     tok_special_name((int32_t)v) ? tok_special_name((int32_t)v) : "a rank, not a special token");
    i++;
  }
  return 0;
}

/* ---- reading ------------------------------------------------------------------------------- */

static int json_parse(const tok *t, const char *data, size_t n, cJSON **root, err *e) {
  const char *endp = NULL;
  *root = cJSON_ParseWithLengthOpts(data, n, &endp, 0);
  if (*root) {
    size_t k = endp && endp >= data && endp <= data + n ? (size_t)(endp - data) : n;
    while (k < n && (data[k] == ' ' || data[k] == '\t' || data[k] == '\r' || data[k] == '\n')) k++;
    if (k == n) return 0;
    cJSON_Delete(*root);
    *root = NULL;
    return err_set(e, EXIT_RUNTIME, "%s: text after the JSON value (at byte %zu)", t->path, k);
  }
  const char *ep = cJSON_GetErrorPtr();
  size_t off = ep && ep >= data && ep <= data + n ? (size_t)(ep - data) : n, line = 1;
  for (size_t i = 0; i < off; i++) line += data[i] == '\n';
  return err_set(e, EXIT_RUNTIME, "%s: not valid JSON (at byte %zu, line %zu)", t->path, off, line);
}

int tok_hf_read(tok *t, const char *data, size_t n, void **json, err *e) {
  *json = NULL;
  cJSON *root;
  if (json_parse(t, data, n, &root, e) != 0) return -1;
  *json = root;
  if (!cJSON_IsObject(root)) return err_set(e, EXIT_RUNTIME, "%s: the top level is %s, not an object", t->path, kind(root));
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
  if (!cJSON_IsObject(model)) return err_set(e, EXIT_RUNTIME, "%s: model is %s, not an object", t->path, kind(model));
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
  if (type && !(cJSON_IsString(type) && !strcmp(type->valuestring, "BPE")))
    return err_set(e, EXIT_RUNTIME, "%s: model.type is not \"BPE\"", t->path);
  const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
  if (!cJSON_IsObject(vocab)) return err_set(e, EXIT_RUNTIME, "%s: model.vocab is %s, not an object", t->path, kind(vocab));
  const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
  if (!cJSON_IsArray(merges)) return err_set(e, EXIT_RUNTIME, "%s: model.merges is %s, not an array", t->path, kind(merges));
  const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
  if (norm && !cJSON_IsNull(norm))
    return err_set(e, EXIT_RUNTIME, "%s: normalizer is %s, not null (o200k does not normalise text)", t->path, kind(norm));
  const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
  int split = 0, bytelevel = 0;
  if (pretok_check(t, pre, "pre_tokenizer", &split, &bytelevel, e) != 0) return -1;
  if (split != 1 || bytelevel != 1)
    return err_set(e, EXIT_RUNTIME, "%s: pre_tokenizer has %d o200k Split and %d ByteLevel (want one of each)", t->path,
                   split, bytelevel);
  if (added_tokens_check(t, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), e) != 0) return -1;

  uint8_t bytes[4 * TOK_TOKEN_MAX];
  uint32_t entry = 0;
  const cJSON *v;
  cJSON_ArrayForEach(v, vocab) {
    entry++;
    char q[128];
    uint32_t id, bad_cp;
    size_t len;
    if (get_index(v, TOK_N_VOCAB, &id) != 0)
      return err_set(e, EXIT_RUNTIME, "%s: model.vocab['%s'] is %s, not an id below %d", t->path,
                     quote_name(v->string, q, sizeof q), cJSON_IsNumber(v) ? "a number out of range" : kind(v), TOK_N_VOCAB);
    if (id >= TOK_FIRST_SPECIAL) {        /* some files list the specials in the vocabulary too */
      if (tok_special_find(v->string, strlen(v->string)) != (int32_t)id)
        return err_set(e, EXIT_RUNTIME, "%s: model.vocab['%s'] = %u, which is the special token %s", t->path,
                       quote_name(v->string, q, sizeof q), id, tok_special_name((int32_t)id));
      continue;
    }
    if (strlen(v->string) > sizeof bytes)
      return err_set(e, EXIT_RUNTIME, "%s: model.vocab key of id %u is too long", t->path, id);
    if (bytelevel_decode(v->string, bytes, &len, &bad_cp) != 0)
      return err_set(e, EXIT_RUNTIME, "%s: model.vocab['%s'] (id %u) holds U+%04X, outside the byte-level alphabet",
                     t->path, quote_name(v->string, q, sizeof q), id, (unsigned)bad_cp);
    if (tok_vocab_add(t, bytes, len, id, entry, e) != 0) return -1;
  }
  return 0;
}

/* One merge "a b" or ["a", "b"] -> the three ranks (a, b, a+b). */
static int merge_ranks(const tok *t, const cJSON *m, size_t i, uint32_t r[3], err *e) {
  const char *a, *b;
  char tmp[4 * TOK_TOKEN_MAX + 2];
  if (cJSON_IsString(m)) {
    const char *sp = strchr(m->valuestring, ' ');
    size_t len = strlen(m->valuestring);
    if (!sp || strchr(sp + 1, ' ') || len >= sizeof tmp)
      return err_set(e, EXIT_RUNTIME, "%s: model.merges[%zu] is not \"<left> <right>\"", t->path, i);
    memcpy(tmp, m->valuestring, len + 1);
    tmp[sp - m->valuestring] = '\0';
    a = tmp;
    b = tmp + (sp - m->valuestring) + 1;
  } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(cJSON_GetArrayItem(m, 0)) &&
             cJSON_IsString(cJSON_GetArrayItem(m, 1))) {
    a = cJSON_GetArrayItem(m, 0)->valuestring;
    b = cJSON_GetArrayItem(m, 1)->valuestring;
  } else {
    return err_set(e, EXIT_RUNTIME, "%s: model.merges[%zu] is %s, not a pair of strings", t->path, i, kind(m));
  }
  uint8_t ab[8 * TOK_TOKEN_MAX];
  size_t na, nb;
  uint32_t bad;
  if (strlen(a) > TOK_TOKEN_MAX * 4 || strlen(b) > TOK_TOKEN_MAX * 4 || bytelevel_decode(a, ab, &na, &bad) != 0 ||
      bytelevel_decode(b, ab + na, &nb, &bad) != 0)
    return err_set(e, EXIT_RUNTIME, "%s: model.merges[%zu] is not a pair of byte-level tokens", t->path, i);
  r[0] = tok_rank_of(t, ab, na);
  r[1] = tok_rank_of(t, ab + na, nb);
  r[2] = tok_rank_of(t, ab, na + nb);
  if (r[0] == TOK_NO_RANK || r[1] == TOK_NO_RANK || r[2] == TOK_NO_RANK) {
    char q1[64], q2[64];
    return err_set(e, EXIT_RUNTIME, "%s: model.merges[%zu] ('%s' + '%s'): %s is not in model.vocab", t->path, i,
                   quote_name(a, q1, sizeof q1), quote_name(b, q2, sizeof q2),
                   r[0] == TOK_NO_RANK ? "the left part" : r[1] == TOK_NO_RANK ? "the right part" : "the merged token");
  }
  return 0;
}

int tok_hf_check(const tok *t, void *json, err *e) {
  const cJSON *merges = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(json, "model"), "merges");
  /* Ids are read as ranks, which is right only when the merges are in rank order (a merge's
   * priority in Hugging Face's BPE is its index); every token longer than one byte must also
   * be made by some merge, or the file was cut. */
  uint8_t *made = calloc(t->n_ranks, 1);
  if (!made) return err_set(e, EXIT_RUNTIME, "%s: out of memory", t->path);
  uint32_t last = 0;
  size_t i = 0;
  int rc = 0;
  const cJSON *m;
  cJSON_ArrayForEach(m, merges) {
    uint32_t r[3];
    if ((rc = merge_ranks(t, m, i, r, e)) != 0) break;
    if (r[2] < last) {
      rc = err_set(e, EXIT_RUNTIME, "%s: model.merges[%zu] makes rank %u after rank %u: merges are not in rank order "
                   "(ids are read as tiktoken ranks)", t->path, i, r[2], last);
      break;
    }
    last = r[2];
    made[r[2]] = 1;
    i++;
  }
  for (uint32_t r = 0; rc == 0 && r < t->n_ranks; r++)
    if (!made[r] && t->off[r + 1] - t->off[r] > 1)
      rc = err_set(e, EXIT_RUNTIME, "%s: rank %u (%u bytes) is made by no entry of model.merges (%zu merges): "
                   "truncated file?", t->path, r, t->off[r + 1] - t->off[r], i);
  free(made);
  return rc;
}

void tok_hf_json_free(void *json) { cJSON_Delete(json); }
