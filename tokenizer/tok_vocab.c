/* The vocabulary: building and validating it, the rank hash table, reading files (ranks files
 * here; tokenizer.json in tok_hf_read.c), and finding them next to a checkpoint. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quote.h"
#include "tok_internal.h"

#define RANKS_LINE_MAX 2048     /* a ranks line longer than this is refused */

/* ---- hash ---------------------------------------------------------------------------------- */

static inline uint64_t hash_mix(uint64_t x) {
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 32;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 29;
  return x;
}

static inline uint64_t tok_hash(const uint8_t *p, size_t n) {
  uint64_t h = 0x243f6a8885a308d3ull ^ ((uint64_t)n * 0x9e3779b97f4a7c15ull);
  while (n >= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    h = hash_mix(h ^ v);
    p += 8;
    n -= 8;
  }
  uint64_t v = 0;
  memcpy(&v, p, n);
  return hash_mix(h ^ v);
}

uint32_t tok_rank_of(const tok *t, const uint8_t *p, size_t n) {
  if (n == 1) return t->byte_rank[p[0]];
  if (n == 2) return t->pair_rank[(uint32_t)p[0] << 8 | p[1]];
  if (n == 0 || n > t->max_len) return TOK_NO_RANK;
  uint64_t h = tok_hash(p, n), tag = h >> 32;
  for (uint64_t i = h & t->mask;; i = (i + 1) & t->mask) {
    uint64_t s = t->slots[i];
    if (!s) return TOK_NO_RANK;
    if ((s >> 32) == tag) {
      uint32_t r = (uint32_t)s - 1;
      if (t->off[r + 1] - t->off[r] == n && memcmp(t->blob + t->off[r], p, n) == 0) return r;
    }
  }
}

/* ---- building ------------------------------------------------------------------------------ */

int tok_vocab_begin(tok *t, const char *name, tok_source src, unsigned flags, err *e) {
  t->path = strdup(name ? name : "(memory)");
  t->source = src;
  t->flags = flags;
  t->unit = src == TOK_SRC_TIKTOKEN ? "line" : "model.vocab entry";
  t->src_line = calloc(TOK_N_RANKS, sizeof *t->src_line);
  t->tmp_off = calloc(TOK_N_RANKS, sizeof *t->tmp_off);
  t->tmp_len = calloc(TOK_N_RANKS, sizeof *t->tmp_len);
  if (!t->path || !t->src_line || !t->tmp_off || !t->tmp_len)
    return err_set(e, EXIT_RUNTIME, "%s: out of memory", name ? name : "tokenizer");
  return 0;
}

int tok_vocab_add(tok *t, const uint8_t *p, size_t n, uint32_t rank, uint32_t where, err *e) {
  if (n == 0) return err_set(e, EXIT_RUNTIME, "%s: %s %u: empty token", t->path, t->unit, where);
  if (n > TOK_TOKEN_MAX)
    return err_set(e, EXIT_RUNTIME, "%s: %s %u: token of %zu bytes (at most %d)", t->path, t->unit,
                   where, n, TOK_TOKEN_MAX);
  if (rank >= TOK_FIRST_SPECIAL)
    return err_set(e, EXIT_RUNTIME,
                   "%s: %s %u: rank %u is not below %d (ids from %d on are the special tokens)",
                   t->path, t->unit, where, rank, TOK_FIRST_SPECIAL, TOK_FIRST_SPECIAL);
  if (t->tmp_len[rank])
    return err_set(e, EXIT_RUNTIME, "%s: %s %u: rank %u was already given (%s %u)", t->path,
                   t->unit, where, rank, t->unit, t->src_line[rank]);
  if (t->tmp_n + n > t->tmp_cap) {
    size_t cap = t->tmp_cap ? t->tmp_cap * 2 : (1u << 20);
    while (cap < t->tmp_n + n) cap *= 2;
    uint8_t *nb = realloc(t->tmp_blob, cap);
    if (!nb) return err_set(e, EXIT_RUNTIME, "%s: out of memory", t->path);
    t->tmp_blob = nb;
    t->tmp_cap = cap;
  }
  memcpy(t->tmp_blob + t->tmp_n, p, n);
  t->tmp_off[rank] = (uint32_t)t->tmp_n;
  t->tmp_len[rank] = (uint32_t)n;
  t->src_line[rank] = where;
  t->tmp_n += n;
  if (rank > t->max_rank || t->n_added == 0) t->max_rank = rank;
  t->n_added++;
  return 0;
}

static int vocab_hash_build(tok *t, err *e) {
  uint64_t cap = 1;
  while (cap < 2ull * t->n_ranks) cap <<= 1;
  t->slots = calloc(cap, sizeof *t->slots);
  t->pair_rank = malloc(65536 * sizeof *t->pair_rank);
  if (!t->slots || !t->pair_rank) return err_set(e, EXIT_RUNTIME, "%s: out of memory", t->path);
  t->mask = cap - 1;
  memset(t->pair_rank, 0xff, 65536 * sizeof *t->pair_rank);
  for (int b = 0; b < 256; b++) t->byte_rank[b] = TOK_NO_RANK;
  for (uint32_t r = 0; r < t->n_ranks; r++) {
    const uint8_t *p = t->blob + t->off[r];
    size_t n = t->off[r + 1] - t->off[r];
    if (n > t->max_len) t->max_len = (uint32_t)n;
    uint64_t h = tok_hash(p, n), i = h & t->mask;
    for (;; i = (i + 1) & t->mask) {
      uint64_t s = t->slots[i];
      if (!s) break;
      uint32_t q = (uint32_t)s - 1;
      if ((s >> 32) == (h >> 32) && t->off[q + 1] - t->off[q] == n &&
          memcmp(t->blob + t->off[q], p, n) == 0)
        return err_set(e, EXIT_RUNTIME, "%s: %s %u: the token of rank %u repeats the bytes of rank %u (%s %u)",
                       t->path, t->unit, t->src_line[r], r, q, t->unit, t->src_line[q]);
    }
    t->slots[i] = (h >> 32) << 32 | (uint64_t)(r + 1);
    if (n == 1) t->byte_rank[p[0]] = r;
    if (n == 2) t->pair_rank[(uint32_t)p[0] << 8 | p[1]] = r;
  }
  for (int b = 0; b < 256; b++)
    if (t->byte_rank[b] == TOK_NO_RANK)
      return err_set(e, EXIT_RUNTIME, "%s: byte 0x%02x has no rank (a byte-level BPE needs all 256 bytes)",
                     t->path, b);
  return 0;
}

int tok_vocab_finish(tok *t, err *e) {
  if (t->n_added == 0) return err_set(e, EXIT_RUNTIME, "%s: no tokens", t->path);
  if (t->n_added != t->max_rank + 1) {
    uint32_t r = 0;
    while (r < t->max_rank && t->tmp_len[r]) r++;
    return err_set(e, EXIT_RUNTIME, "%s: rank %u is missing (ranks must be 0..N-1 without gaps; highest is %u)",
                   t->path, r, t->max_rank);
  }
  t->n_ranks = t->n_added;
  if (!(t->flags & TOK_OPEN_PARTIAL) && t->n_ranks != TOK_N_RANKS)
    return err_set(e, EXIT_RUNTIME, "%s: %u ranks; o200k_harmony has %d (ranks 0..%d): truncated or not o200k?",
                   t->path, t->n_ranks, TOK_N_RANKS, TOK_N_RANKS - 1);
  size_t total = t->tmp_n;
  for (int32_t id = TOK_FIRST_SPECIAL; id < TOK_N_VOCAB; id++) total += strlen(tok_special_name(id));
  t->blob = malloc(total + 1);
  t->off = malloc((TOK_N_VOCAB + 1) * sizeof *t->off);
  if (!t->blob || !t->off) return err_set(e, EXIT_RUNTIME, "%s: out of memory", t->path);
  uint32_t o = 0;
  for (uint32_t id = 0; id < TOK_N_VOCAB; id++) {
    t->off[id] = o;
    if (id < t->n_ranks) {
      memcpy(t->blob + o, t->tmp_blob + t->tmp_off[id], t->tmp_len[id]);
      o += t->tmp_len[id];
    } else if (id >= TOK_FIRST_SPECIAL) {
      const char *s = tok_special_name((int32_t)id);
      memcpy(t->blob + o, s, strlen(s));
      o += (uint32_t)strlen(s);
    }
  }
  t->off[TOK_N_VOCAB] = o;
  if (vocab_hash_build(t, e) != 0) return -1;
  free(t->tmp_blob); free(t->tmp_off); free(t->tmp_len); free(t->src_line);
  t->tmp_blob = NULL; t->tmp_off = t->tmp_len = t->src_line = NULL;
  return tok_regex_compile(t, e);
}

void tok_free(tok *t) {
  if (!t) return;
  if (t->re) pcre2_code_free(t->re);
  free(t->path); free(t->blob); free(t->off); free(t->pair_rank); free(t->slots);
  free(t->tmp_blob); free(t->tmp_off); free(t->tmp_len); free(t->src_line);
  free(t);
}

void tok_close(tok *t) { tok_free(t); }

const char *tok_path(const tok *t) { return t->path; }
tok_source tok_get_source(const tok *t) { return t->source; }
size_t tok_n_ranks(const tok *t) { return t->n_ranks; }
int tok_uses_jit(const tok *t) { return t->jit; }

int tok_id_valid(const tok *t, int32_t id) {
  return id >= 0 && ((uint32_t)id < t->n_ranks || (id >= TOK_FIRST_SPECIAL && id < TOK_N_VOCAB));
}

int tok_token_bytes(const tok *t, int32_t id, const uint8_t **p, size_t *n, err *e) {
  if (!tok_id_valid(t, id))
    return err_set(e, EXIT_RUNTIME, "token id %ld is not in the vocabulary (%u ranks, specials %d..%d)",
                   (long)id, t->n_ranks, TOK_FIRST_SPECIAL, TOK_N_VOCAB - 1);
  *p = t->blob + t->off[id];
  *n = t->off[id + 1] - t->off[id];
  return 0;
}

/* ---- ranks files --------------------------------------------------------------------------- */

static int b64_value(uint8_t c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* Strict standard base64 (padding required, canonical trailing bits). -1 with a reason. */
static int b64_decode(const uint8_t *s, size_t n, uint8_t *out, size_t *out_n, const char **why) {
  if (n == 0 || n % 4 != 0) { *why = "its length is not a multiple of 4"; return -1; }
  size_t pad = s[n - 1] == '=' ? (s[n - 2] == '=' ? 2 : 1) : 0, o = 0;
  for (size_t i = 0; i < n; i += 4) {
    int v[4];
    for (int k = 0; k < 4; k++) {
      size_t j = i + (size_t)k;
      v[k] = (j >= n - pad) ? 0 : b64_value(s[j]);
      if (v[k] < 0) { *why = s[j] == '=' ? "'=' before the end" : "a character outside the base64 alphabet"; return -1; }
    }
    uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
    size_t nb = (i + 4 == n) ? 3 - pad : 3;
    if (i + 4 == n && ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff)))) {
      *why = "non-zero bits in its padding";
      return -1;
    }
    for (size_t k = 0; k < nb; k++) out[o++] = (uint8_t)(w >> (16 - 8 * k));
  }
  *out_n = o;
  return 0;
}

static int ranks_parse(tok *t, const uint8_t *d, size_t n, err *e) {
  uint8_t token[RANKS_LINE_MAX];
  uint32_t line = 0;
  for (size_t i = 0; i < n;) {
    line++;
    const uint8_t *nl = memchr(d + i, '\n', n - i);
    size_t start = i, end = nl ? (size_t)(nl - d) : n;
    i = nl ? end + 1 : n;
    if (end > start && d[end - 1] == '\r') end--;
    size_t len = end - start;
    if (len == 0) continue;
    if (len > RANKS_LINE_MAX)
      return err_set(e, EXIT_RUNTIME, "%s: line %u is %zu bytes long (a ranks line has at most %d)",
                     t->path, line, len, RANKS_LINE_MAX);
    const uint8_t *s = d + start;
    size_t a = 0;
    while (a < len && s[a] != ' ' && s[a] != '\t') a++;
    size_t b = a;
    while (b < len && (s[b] == ' ' || s[b] == '\t')) b++;
    if (a == 0 || b == a || b == len)
      return err_set(e, EXIT_RUNTIME, "%s: line %u: expected '<base64 token> <rank>'", t->path, line);
    uint64_t rank = 0;
    for (size_t k = b; k < len; k++) {
      if (s[k] < '0' || s[k] > '9')
        return err_set(e, EXIT_RUNTIME, "%s: line %u: the rank is not a non-negative integer", t->path, line);
      if (k - b >= 9)
        return err_set(e, EXIT_RUNTIME, "%s: line %u: the rank has more than 9 digits", t->path, line);
      rank = rank * 10 + (uint64_t)(s[k] - '0');
    }
    size_t tn;
    const char *why;
    if (b64_decode(s, a, token, &tn, &why) != 0)
      return err_set(e, EXIT_RUNTIME, "%s: line %u: the token is not valid base64 (%s)", t->path, line, why);
    if (tok_vocab_add(t, token, tn, (uint32_t)rank, line, e) != 0) return -1;
  }
  return 0;
}

/* ---- opening ------------------------------------------------------------------------------- */

int tok_open_mem(const char *name, const void *data, size_t n, unsigned flags, tok **out, err *e) {
  *out = NULL;
  const uint8_t *d = data;
  const char *nm = name ? name : "(memory)";
  if (n == 0) return err_set(e, EXIT_RUNTIME, "%s: empty file (expected a tokenizer.json or a tiktoken ranks file)", nm);
  if (n > TOK_FILE_MAX)
    return err_set(e, EXIT_RUNTIME, "%s: %zu bytes is larger than a tokenizer file may be (%u)", nm, n, TOK_FILE_MAX);
  size_t k = 0;
  while (k < n && (d[k] == ' ' || d[k] == '\t' || d[k] == '\r' || d[k] == '\n')) k++;
  if (k == n) return err_set(e, EXIT_RUNTIME, "%s: only blank lines (expected a tokenizer.json or a tiktoken ranks file)", nm);
  tok_source src = d[k] == '{' ? TOK_SRC_HF_JSON : TOK_SRC_TIKTOKEN;
  tok *t = calloc(1, sizeof *t);
  if (!t) return err_set(e, EXIT_RUNTIME, "%s: out of memory", nm);
  void *json = NULL;
  int rc = tok_vocab_begin(t, nm, src, flags, e);
  if (rc == 0) rc = src == TOK_SRC_HF_JSON ? tok_hf_read(t, data, n, &json, e) : ranks_parse(t, d, n, e);
  if (rc == 0) rc = tok_vocab_finish(t, e);
  if (rc == 0 && json) rc = tok_hf_check(t, json, e);
  tok_hf_json_free(json);
  if (rc != 0) {
    tok_free(t);
    return -1;
  }
  *out = t;
  return 0;
}

/* The whole of a regular file; a FIFO or device is refused without blocking on it. */
static int file_read(const char *path, uint8_t **data, size_t *n, err *e) {
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return err_errno(e, errno, "%s: cannot open tokenizer file", path);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int saved = errno;
    close(fd);
    return err_errno(e, saved, "%s: cannot stat tokenizer file", path);
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return err_set(e, EXIT_RUNTIME, "%s: %s, not a tokenizer file", path,
                   S_ISDIR(st.st_mode) ? "is a directory" : S_ISFIFO(st.st_mode) ? "is a FIFO"
                   : "is not a regular file");
  }
  if ((uint64_t)st.st_size > TOK_FILE_MAX) {
    close(fd);
    return err_set(e, EXIT_RUNTIME, "%s: %lld bytes is larger than a tokenizer file may be (%u)", path,
                   (long long)st.st_size, TOK_FILE_MAX);
  }
  size_t size = (size_t)st.st_size, got = 0;
  uint8_t *buf = malloc(size + 1);
  if (!buf) {
    close(fd);
    return err_set(e, EXIT_RUNTIME, "%s: out of memory", path);
  }
  while (got < size) {
    ssize_t r = read(fd, buf + got, size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int saved = errno;
      free(buf);
      close(fd);
      return err_errno(e, saved, "%s: read failed at byte %zu", path, got);
    }
    if (r == 0) break;
    got += (size_t)r;
  }
  close(fd);
  if (got != size) {
    free(buf);
    return err_set(e, EXIT_RUNTIME, "%s: file shrank while being read (%zu of %zu bytes)", path, got, size);
  }
  *data = buf;
  *n = size;
  return 0;
}

int tok_open(const char *path, tok **out, err *e) {
  *out = NULL;
  uint8_t *data = NULL;
  size_t n = 0;
  if (file_read(path, &data, &n, e) != 0) return -1;
  int rc = tok_open_mem(path, data, n, 0, out, e);
  free(data);
  return rc;
}

/* ---- finding ------------------------------------------------------------------------------- */

#define FIND_MAX 5

static char *path_join(const char *dir, size_t dir_len, const char *name) {
  size_t n = dir_len + strlen(name) + 2;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%.*s/%s", (int)dir_len, dir, name);
  return p;
}

int tok_find(const char *ckpt_dir, const char *explicit_path, tok **out, err *e) {
  *out = NULL;
  if (explicit_path) return tok_open(explicit_path, out, e);
  char *cand[FIND_MAX] = {0}, *root_dir = NULL;
  int nc = 0, rc = -1;
  const char *names[2] = {"tokenizer.json", "o200k_base.tiktoken"};
  if (ckpt_dir) {
    struct stat st;
    if (stat(ckpt_dir, &st) != 0) return err_errno(e, errno, "%s: cannot look for a tokenizer there", ckpt_dir);
    if (!S_ISDIR(st.st_mode)) return err_set(e, EXIT_RUNTIME, "%s: not a directory", ckpt_dir);
    size_t len = strlen(ckpt_dir), root_len = 0;
    while (len > 1 && ckpt_dir[len - 1] == '/') len--;
    const char *root = NULL;
    /* the repository root of an original/ directory is its parent */
    if (len >= 8 && memcmp(ckpt_dir + len - 8, "original", 8) == 0 && (len == 8 || ckpt_dir[len - 9] == '/')) {
      root_len = len - 8;
      while (root_len > 1 && ckpt_dir[root_len - 1] == '/') root_len--;
      root = root_len ? ckpt_dir : ".";
      if (!root_len) root_len = 1;
      if (!(root_dir = strndup(root, root_len))) return err_set(e, EXIT_RUNTIME, "tokenizer search: out of memory");
    }
    for (int k = 0; k < 2; k++) {
      cand[nc++] = path_join(ckpt_dir, len, names[k]);
      if (root) cand[nc++] = path_join(root, root_len, names[k]);
    }
  }
  const char *env = getenv("TIKTOKEN_ENCODINGS_BASE");
  int have_env = env && *env;
  if (have_env) cand[nc++] = path_join(env, strlen(env), names[1]);
  for (int i = 0; i < nc; i++)
    if (!cand[i]) {
      err_set(e, EXIT_RUNTIME, "tokenizer search: out of memory");
      goto done;
    }
  for (int i = 0; i < nc; i++) {
    struct stat st;
    if (lstat(cand[i], &st) == 0 || errno != ENOENT) {
      rc = tok_open(cand[i], out, e);
      goto done;
    }
  }
  {
    char q1[128], q2[128], q3[128], where[320] = "";
    if (ckpt_dir)
      snprintf(where, sizeof where, "tokenizer.json and o200k_base.tiktoken in %s%s%s, and for ",
               quote_name(ckpt_dir, q1, sizeof q1), root_dir ? " and in its repository root " : "",
               root_dir ? quote_name(root_dir, q2, sizeof q2) : "");
    err_set(e, EXIT_RUNTIME, "no tokenizer found: looked for %s%s%s; give one with --tokenizer FILE "
            "(a tokenizer.json or an o200k_base.tiktoken)", where,
            have_env ? quote_name(cand[nc - 1], q3, sizeof q3) : "$TIKTOKEN_ENCODINGS_BASE/o200k_base.tiktoken",
            have_env ? "" : " (variable not set)");
  }
done:
  for (int i = 0; i < nc; i++) free(cand[i]);
  free(root_dir);
  return rc;
}
