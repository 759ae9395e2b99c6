/* Random checkpoints in the official layout, streamed to disk (contract in synth.h). */
#define _GNU_SOURCE
#include "synth.h"
#include "strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic.h"
#include "outpath.h"
#include "ckpt.h"
#include "st.h"

#define CHUNK_BYTES (8u << 20)
#define PATH_BUF (4096 + 160) /* a directory name (< 4096) + "/" + a file name */
/* Published shard sizes: original 120b ~9.3 GB per shard (7 shards); transformers fills
 * shards up to its default max_shard_size of 5 GB. */
#define ORIG_SHARD_MAX 9400000000ull
#define HF_SHARD_MAX 5000000000ull

/* ---- growable string ---------------------------------------------------------------------- */


/* ---- plan: every tensor of every file, with its offsets -------------------------------------- */

typedef struct {
  char name[96];        /* name in the file */
  char orig[96];        /* original-layout name of the logical tensor (keys the PRNG) */
  ckpt_role role;
  st_dtype dtype;
  int n_dims;
  int64_t shape[4];
  uint64_t elem0;       /* first logical element (q/k/v parts start inside qkv) */
  uint64_t n_bytes;
  int file;
  uint64_t offset;      /* within the data section */
} synth_entry;

typedef struct {
  gpt_config cfg;
  ckpt_layout layout;
  synth_entry *t;
  size_t n;
  int n_files;
  char (*fname)[64];
  char **header;        /* padded JSON header of each file */
  uint64_t *header_len, *data_bytes;
  uint64_t total;       /* all safetensors bytes */
} synth_plan;

void synth_opts_init(synth_opts *o) {
  memset(o, 0, sizeof *o);
  o->preset = SYNTH_TINY;
  o->layout = LAYOUT_ORIGINAL;
}

int synth_preset_parse(const char *s, synth_preset *out) {
  static const char *const names[] = {"tiny", "20b", "120b"};
  for (int i = 0; i < 3; i++)
    if (!strcmp(s, names[i])) { *out = (synth_preset)i; return 0; }
  return -1;
}

const char *synth_preset_name(synth_preset p) {
  return p == SYNTH_20B ? "20b" : p == SYNTH_120B ? "120b" : "tiny";
}

int synth_config(const synth_opts *o, gpt_config *c, err *e) {
  if (o->preset == SYNTH_20B) {
    config_preset_20b(c);
  } else if (o->preset == SYNTH_120B) {
    config_preset_120b(c);
  } else {
    /* the shape of golden case-a */
    config_defaults(c);
    c->n_layers = 4; c->n_experts = 16; c->top_k = 4; c->vocab = 512;
    c->hidden = 64; c->intermediate = 96; c->head_dim = 16;
    c->n_heads = 8; c->n_kv_heads = 2; c->sliding_window = 8;
  }
  if (o->n_layers < 0 || o->n_experts < 0 || o->vocab < 0)
    return err_set(e, EXIT_USAGE, "synth: layer, expert and vocabulary counts must be positive");
  if (o->n_layers > 0) c->n_layers = o->n_layers;
  if (o->n_experts > 0) c->n_experts = o->n_experts;
  if (o->vocab > 0) c->vocab = o->vocab;
  if (c->top_k > c->n_experts) c->top_k = c->n_experts;
  return config_validate(c, "synth", e);
}

static void plan_free(synth_plan *p) {
  if (p->header)
    for (int i = 0; i < p->n_files; i++) free(p->header[i]);
  free(p->header);
  free(p->header_len);
  free(p->data_bytes);
  free(p->fname);
  free(p->t);
  memset(p, 0, sizeof *p);
}

static void plan_add_role(synth_plan *p, int layer, ckpt_role role) {
  int64_t shape[4];
  st_dtype dt;
  int nd = ckpt_role_shape(&p->cfg, role, &dt, shape);
  char orig[96];
  ckpt_role_name(layer, role, orig, sizeof orig);
  uint64_t elems = 1;
  for (int d = 0; d < nd; d++) elems *= (uint64_t)shape[d];
  if (p->layout == LAYOUT_HF && (role == CK_QKV_W || role == CK_QKV_B)) {
    char names[3][96];
    ckpt_role_hf_names(layer, role, names);
    const int64_t Dh = p->cfg.head_dim;
    const int64_t rows[3] = {Dh * p->cfg.n_heads, Dh * p->cfg.n_kv_heads, Dh * p->cfg.n_kv_heads};
    const uint64_t cols = role == CK_QKV_W ? (uint64_t)shape[1] : 1;
    uint64_t e0 = 0;
    for (int k = 0; k < 3; k++) {
      synth_entry *t = &p->t[p->n++];
      memset(t, 0, sizeof *t);
      memcpy(t->name, names[k], sizeof t->name);
      memcpy(t->orig, orig, sizeof orig);
      t->role = role; t->dtype = dt; t->n_dims = nd;
      memcpy(t->shape, shape, sizeof shape);
      t->shape[0] = rows[k];
      t->elem0 = e0;
      t->n_bytes = (uint64_t)rows[k] * cols * 2;
      e0 += (uint64_t)rows[k] * cols;
    }
    return;
  }
  synth_entry *t = &p->t[p->n++];
  memset(t, 0, sizeof *t);
  if (p->layout == LAYOUT_HF) {
    char names[3][96];
    ckpt_role_hf_names(layer, role, names);
    memcpy(t->name, names[0], sizeof t->name);
  } else {
    memcpy(t->name, orig, sizeof orig);
  }
  memcpy(t->orig, orig, sizeof orig);
  t->role = role; t->dtype = dt; t->n_dims = nd;
  memcpy(t->shape, shape, sizeof shape);
  t->n_bytes = elems * st_dtype_size(dt);
}

/* Files needed to hold the entries in order when each file is filled up to `limit` bytes
 * (a tensor larger than the limit gets a file of its own); assigns them when `assign`. */
static int fill_files(synth_plan *p, uint64_t limit, int assign) {
  int f = 0;
  uint64_t cur = 0;
  for (size_t i = 0; i < p->n; i++) {
    if (cur > 0 && cur + p->t[i].n_bytes > limit) { f++; cur = 0; }
    if (assign) p->t[i].file = f;
    cur += p->t[i].n_bytes;
  }
  return f + 1;
}

/* Assign entries (in order) to files: each file holds a contiguous run of entries. */
static void plan_assign_files(synth_plan *p, synth_preset preset) {
  uint64_t sum = 0, biggest = 0;
  for (size_t i = 0; i < p->n; i++) {
    sum += p->t[i].n_bytes;
    if (p->t[i].n_bytes > biggest) biggest = p->t[i].n_bytes;
  }
  if (p->layout == LAYOUT_HF) {
    p->n_files = fill_files(p, HF_SHARD_MAX, 1);
  } else if (preset == SYNTH_120B) {
    /* as many shards as the published ~9.4 GB gives (7 for 36 layers), with the largest shard
     * as small as the tensor order allows: the smallest fill limit that needs no more */
    uint64_t n = (sum + ORIG_SHARD_MAX - 1) / ORIG_SHARD_MAX;
    if (n == 0) n = 1;
    uint64_t lo = (sum + n - 1) / n, hi = sum;
    if (lo < biggest) lo = biggest;
    while (lo < hi) {
      uint64_t mid = lo + (hi - lo) / 2;
      if ((uint64_t)fill_files(p, mid, 0) <= n) hi = mid;
      else lo = mid + 1;
    }
    p->n_files = fill_files(p, lo, 1);
  } else {
    p->n_files = 1;
  }
}

static void plan_file_name(synth_plan *p, synth_preset preset, int f, char *out, size_t len) {
  if (p->layout == LAYOUT_HF)
    snprintf(out, len, "model-%05d-of-%05d.safetensors", f, p->n_files - 1);
  else if (preset == SYNTH_120B)
    snprintf(out, len, "model--%05d-of-%05d.safetensors", f + 1, p->n_files);
  else
    snprintf(out, len, "model.safetensors");
}

static int synth_layout_make(const synth_opts *o, synth_plan *p, err *e) {
  memset(p, 0, sizeof *p);
  if (synth_config(o, &p->cfg, e) != 0) return -1;
  p->layout = o->layout;
  const int L = p->cfg.n_layers;
  size_t cap = 3 + (size_t)L * (CK_N_LAYER_ROLES + 4);
  p->t = calloc(cap, sizeof *p->t);
  if (!p->t) return err_set(e, EXIT_RUNTIME, "synth: out of memory");
  plan_add_role(p, -1, CK_EMBEDDING);
  for (int l = 0; l < L; l++)
    for (int r = CK_FIRST_LAYER_ROLE; r < CK_N_ROLES; r++) plan_add_role(p, l, (ckpt_role)r);
  plan_add_role(p, -1, CK_NORM);
  plan_add_role(p, -1, CK_UNEMBEDDING);
  plan_assign_files(p, o->preset);

  int nf = p->n_files;
  p->fname = calloc((size_t)nf, sizeof *p->fname);
  p->header = calloc((size_t)nf, sizeof *p->header);
  p->header_len = calloc((size_t)nf, sizeof *p->header_len);
  p->data_bytes = calloc((size_t)nf, sizeof *p->data_bytes);
  if (!p->fname || !p->header || !p->header_len || !p->data_bytes) {
    plan_free(p);
    return err_set(e, EXIT_RUNTIME, "synth: out of memory");
  }
  size_t i = 0;
  for (int f = 0; f < nf; f++) {
    plan_file_name(p, o->preset, f, p->fname[f], sizeof p->fname[f]);
    strbuf b = {0};
    strbuf_printf(&b, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t off = 0;
    for (; i < p->n && p->t[i].file == f; i++) {
      synth_entry *t = &p->t[i];
      t->offset = off;
      strbuf_printf(&b, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t->name, st_dtype_name(t->dtype));
      for (int d = 0; d < t->n_dims; d++) strbuf_printf(&b, "%s%lld", d ? "," : "", (long long)t->shape[d]);
      strbuf_printf(&b, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                (unsigned long long)(off + t->n_bytes));
      off += t->n_bytes;
    }
    strbuf_printf(&b, "}");
    while (!b.oom && b.n % 8 != 0) strbuf_printf(&b, " ");
    if (b.oom) {
      free(b.p);
      plan_free(p);
      return err_set(e, EXIT_RUNTIME, "synth: out of memory");
    }
    p->header[f] = b.p;
    p->header_len[f] = b.n;
    p->data_bytes[f] = off;
    p->total += 8 + b.n + off;
  }
  return 0;
}

int synth_total_bytes(const synth_opts *o, uint64_t *total, err *e) {
  synth_plan p;
  if (synth_layout_make(o, &p, e) != 0) return -1;
  *total = p.total;
  plan_free(&p);
  return 0;
}

/* ---- values ---------------------------------------------------------------------------------- */

/* splitmix64's finaliser, for keys. */
static inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
/* wyrand's output function on a counter: one 64x64->128 multiply per 64 random bits, and any
 * element range is reachable directly (the q/k/v parts of the HF layout start in the middle
 * of the logical tensor). */
static inline uint64_t rand_word(uint64_t key, uint64_t j) {
  uint64_t s = key + (j + 1) * 0xa0761d6478bd642full;
  __uint128_t t = (__uint128_t)s * (s ^ 0xe7037ed1a0b428dbull);
  return (uint64_t)(t >> 64) ^ (uint64_t)t;
}

static uint64_t tensor_key(uint64_t seed, const char *orig) {
  uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
  for (const unsigned char *s = (const unsigned char *)orig; *s; s++) h = (h ^ *s) * 0x100000001b3ull;
  return mix64(mix64(seed) ^ h);
}

/* Inverse of the standard normal CDF (Acklam; relative error < 1.2e-9), table build only. */
static double norm_inv(double p) {
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                             1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01, -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549671010243992e+00, 4.374664141464968e+00, 2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                             3.754408661907416e+00};
  if (p < 0.02425) {
    double q = sqrt(-2 * log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
           ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - 0.02425) return -norm_inv(1 - p);
  double q = p - 0.5, r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
         (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

/* Mean and standard deviation of a BF16 role (see synth.h for why these). */
static void role_dist(const gpt_config *c, ckpt_role r, double *mean, double *std) {
  *mean = 0.0;
  switch (r) {
    case CK_EMBEDDING: case CK_SINKS: *std = 1.0; break;
    case CK_NORM: case CK_ATTN_NORM: case CK_MLP_NORM: *mean = 1.0; *std = 0.05; break;
    case CK_UNEMBEDDING: case CK_QKV_W: case CK_GATE_W: *std = 1.0 / sqrt((double)c->hidden); break;
    case CK_OUT_W: *std = 1.0 / sqrt((double)c->n_heads * c->head_dim); break;
    default: *std = 0.02; break; /* biases */
  }
}

static void lut_build(uint16_t *lut, double mean, double std) {
  for (int i = 0; i < 65536; i++)
    lut[i] = st_f32_to_bf16((float)(mean + std * norm_inv((i + 0.5) / 65536.0)));
}

/* Scale bytes are base or base + 1, base + 1 with probability thr/256, chosen so that an
 * FP4 row has rms 1/sqrt(C): uniform codes have E[fp4^2] = 8.5625, so the mean of
 * 4^(s - 127) must be 1 / (8.5625 C). */
typedef struct { int base, thr; } scale_mix;
static scale_mix scale_params(int64_t C) {
  double t = 127.0 - 0.5 * log2(8.5625 * (double)C); /* exact (fractional) scale byte */
  double b = floor(t);
  double p = (pow(4.0, t - b) - 1.0) / 3.0;           /* E[4^u] = 1 + 3p for u in {0, 1} */
  scale_mix m = {(int)(b < 1 ? 1 : b > 253 ? 253 : b), (int)lround(p * 256.0)};
  return m;
}

static inline void store_le64(uint8_t *p, uint64_t w) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  memcpy(p, &w, 8); /* one store; the byte loop below is not always merged by the compiler */
#else
  for (int k = 0; k < 8; k++) p[k] = (uint8_t)(w >> (8 * k));
#endif
}

/* bf16 elements [i0, i0 + n) of the logical tensor keyed by key. */
static void gen_bf16(uint64_t key, const uint16_t *lut, uint64_t i0, size_t n, uint8_t *out) {
  uint64_t i = i0, end = i0 + n;
  if ((i & 3) == 0)
    for (; i + 4 <= end; i += 4, out += 8) {
      uint64_t w = rand_word(key, i >> 2);
      store_le64(out, (uint64_t)lut[w & 0xffff] | (uint64_t)lut[(w >> 16) & 0xffff] << 16 |
                          (uint64_t)lut[(w >> 32) & 0xffff] << 32 | (uint64_t)lut[w >> 48] << 48);
    }
  while (i < end) {
    uint64_t w = rand_word(key, i >> 2);
    for (unsigned lane = (unsigned)(i & 3); lane < 4 && i < end; lane++, i++, out += 2) {
      uint16_t v = lut[(w >> (16 * lane)) & 0xffff];
      out[0] = (uint8_t)v;
      out[1] = (uint8_t)(v >> 8);
    }
  }
}

/* Uniform bytes [i0, i0 + n) (the FP4 blocks). */
static void gen_blocks(uint64_t key, uint64_t i0, size_t n, uint8_t *out) {
  uint64_t i = i0, end = i0 + n;
  for (; i < end && (i & 7); i++) *out++ = (uint8_t)(rand_word(key, i >> 3) >> (8 * (i & 7)));
  for (; i + 8 <= end; i += 8, out += 8) store_le64(out, rand_word(key, i >> 3));
  for (; i < end; i++) *out++ = (uint8_t)(rand_word(key, i >> 3) >> (8 * (i & 7)));
}

/* Scale bytes [i0, i0 + n): base, or base + 1 when the random byte is below thr. */
static void gen_scales(uint64_t key, scale_mix m, uint64_t i0, size_t n, uint8_t *out) {
  uint64_t i = i0, end = i0 + n;
  while (i < end) {
    uint64_t w = rand_word(key, i >> 3);
    for (unsigned lane = (unsigned)(i & 7); lane < 8 && i < end; lane++, i++)
      *out++ = (uint8_t)(m.base + (((w >> (8 * lane)) & 0xff) < (uint64_t)m.thr));
  }
}

/* ---- writing --------------------------------------------------------------------------------- */

typedef struct {
  const synth_opts *o;
  uint64_t done, total;
  uint8_t *buf;
  uint16_t *lut;
} synth_writer;

static int write_entry(synth_writer *w, const synth_plan *p, const synth_entry *t, int fd,
                       const char *path, err *e) {
  const uint64_t key = tensor_key(w->o->seed, t->orig);
  scale_mix mix = {0, 0};
  if (t->dtype == ST_BF16) {
    double mean, std;
    role_dist(&p->cfg, t->role, &mean, &std);
    lut_build(w->lut, mean, std);
  } else if (t->role == CK_MLP1_SCALES) {
    mix = scale_params(p->cfg.hidden);
  } else if (t->role == CK_MLP2_SCALES) {
    mix = scale_params(p->cfg.intermediate);
  }
  const size_t isz = t->dtype == ST_BF16 ? 2 : 1;
  uint64_t left = t->n_bytes / isz, elem = t->elem0;
  while (left > 0) {
    size_t n = left < CHUNK_BYTES / isz ? (size_t)left : CHUNK_BYTES / isz;
    if (isz == 2)
      gen_bf16(key, w->lut, elem, n, w->buf);
    else if (t->role == CK_MLP1_BLOCKS || t->role == CK_MLP2_BLOCKS)
      gen_blocks(key, elem, n, w->buf);
    else
      gen_scales(key, mix, elem, n, w->buf);
    if (fs_write_all(fd, w->buf, n * isz, path, e) != 0) return -1;
    elem += n;
    left -= n;
    w->done += n * isz;
    if (w->o->progress) w->o->progress(w->done, w->total, w->o->progress_arg);
  }
  return 0;
}

static int close_synced(int fd, const char *path, err *e) {
  if (fsync(fd) != 0) {
    int saved = errno;
    close(fd);
    return err_errno(e, saved, "%s: fsync failed", path);
  }
  if (close(fd) != 0) return err_errno(e, errno, "%s: close failed", path);
  return 0;
}

static int write_small(const char *dir, const char *name, const strbuf *b, err *e) {
  char path[PATH_BUF];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (b->oom) return err_set(e, EXIT_RUNTIME, "%s: out of memory", path);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return err_errno(e, errno, "%s: cannot create", path);
  if (fs_write_all(fd, b->p, b->n, path, e) != 0) { close(fd); return -1; }
  return close_synced(fd, path, e);
}

static int write_shard(synth_writer *w, const synth_plan *p, int f, const char *dir, err *e) {
  char path[PATH_BUF];
  snprintf(path, sizeof path, "%s/%s", dir, p->fname[f]);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return err_errno(e, errno, "%s: cannot create", path);
  uint8_t len8[8];
  store_le64(len8, p->header_len[f]);
  if (fs_write_all(fd, len8, 8, path, e) != 0 ||
      fs_write_all(fd, p->header[f], p->header_len[f], path, e) != 0) {
    close(fd);
    return -1;
  }
  w->done += 8 + p->header_len[f];
  if (w->o->sparse) {
    if (ftruncate(fd, (off_t)(8 + p->header_len[f] + p->data_bytes[f])) != 0) {
      int saved = errno;
      close(fd);
      return err_errno(e, saved, "%s: ftruncate failed", path);
    }
    w->done += p->data_bytes[f];
    if (w->o->progress) w->o->progress(w->done, w->total, w->o->progress_arg);
  } else {
    for (size_t i = 0; i < p->n; i++) {
      if (p->t[i].file != f) continue;
      if (write_entry(w, p, &p->t[i], fd, path, e) != 0) { close(fd); return -1; }
    }
  }
  return close_synced(fd, path, e);
}

static int write_json_files(const synth_plan *p, const char *dir, err *e) {
  size_t cap = 4096 + 128 * (size_t)p->cfg.n_layers;
  char *cfg = malloc(cap);
  if (!cfg) return err_set(e, EXIT_RUNTIME, "synth: out of memory");
  int n = p->layout == LAYOUT_HF ? config_to_json_hf(&p->cfg, cfg, cap)
                                 : config_to_json_original(&p->cfg, cfg, cap);
  if (n < 0) { free(cfg); return err_set(e, EXIT_RUNTIME, "synth: config.json buffer too small"); }
  strbuf b = {cfg, (size_t)n, cap, 0};
  int rc = write_small(dir, "config.json", &b, e);
  free(cfg);
  if (rc != 0) return -1;

  strbuf j = {0};
  if (p->layout == LAYOUT_HF) {
    uint64_t total = 0;
    for (size_t i = 0; i < p->n; i++) total += p->t[i].n_bytes;
    strbuf_printf(&j, "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n  \"weight_map\": {",
              (unsigned long long)total);
    for (size_t i = 0; i < p->n; i++)
      strbuf_printf(&j, "%s\n    \"%s\": \"%s\"", i ? "," : "", p->t[i].name, p->fname[p->t[i].file]);
    strbuf_printf(&j, "\n  }\n}\n");
    rc = write_small(dir, "model.safetensors.index.json", &j, e);
  } else {
    strbuf_printf(&j, "{");
    for (size_t i = 0; i < p->n; i++) {
      const synth_entry *t = &p->t[i];
      const char *dt = t->dtype == ST_BF16 ? "BF16"
                       : (t->role == CK_MLP1_BLOCKS || t->role == CK_MLP2_BLOCKS) ? "FP4" : "UE8";
      strbuf_printf(&j, "%s\n  \"%s\": \"%s\"", i ? "," : "", t->name, dt);
    }
    strbuf_printf(&j, "\n}\n");
    rc = write_small(dir, "dtypes.json", &j, e);
  }
  free(j.p);
  return rc;
}

int synth_write(const char *out_dir, const synth_opts *o, err *e) {
  const outpath target = {out_dir, "synth: OUT_DIR", OUTPATH_DIR};
  if (outpath_check(&target, 1, NULL, 0, e) != 0) return -1;
  synth_plan p;
  if (synth_layout_make(o, &p, e) != 0) return -1;
  atomic_out *out;
  if (atomic_stage_dir(out_dir, 0, &out, e) != 0) {
    plan_free(&p);
    return -1;
  }
  const char *tmp = atomic_path(out);
  synth_writer w = {o, 0, p.total, aligned_alloc(4096, CHUNK_BYTES) /* page-aligned: the kernel copies it much faster */, malloc(65536 * sizeof(uint16_t))};
  int rc = 0;
  if (!w.buf || !w.lut) rc = err_set(e, EXIT_RUNTIME, "synth: out of memory");
  if (rc == 0) rc = write_json_files(&p, tmp, e);
  for (int f = 0; rc == 0 && f < p.n_files; f++) rc = write_shard(&w, &p, f, tmp, e);
  if (rc == 0) rc = atomic_publish(out, e); /* every file was synced as it was closed */
  else atomic_abort(out);
  free(w.buf);
  free(w.lut);
  plan_free(&p);
  return rc;
}
