#define _GNU_SOURCE /* copy_file_range */
#include "guard.h"
#include "export_layout.h"
#include "byte_check.h"
#include "export_ort.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic.h"
#include "mx4.h"
#include "onnx_graph.h"

/* ------------------------------------------------------------------ the tensor list */

static exl_tensor *push(export_layout *L, size_t *cap, err *e) {
  if (L->n_tensors == *cap) {
    size_t nc = *cap ? 2 * *cap : 64;
    exl_tensor *nt = realloc(L->t, nc * sizeof *nt);
    if (!nt) {
      err_set(e, EXIT_RUNTIME, "out of memory (export tensor list)");
      return NULL;
    }
    L->t = nt;
    *cap = nc;
  }
  exl_tensor *t = &L->t[L->n_tensors++];
  memset(t, 0, sizeof *t);
  t->layer = -1;
  t->role = -1;
  return t;
}

static int64_t dims_elems(const exl_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->n_dims; i++) n *= t->dims[i];
  return n;
}

/* A checkpoint tensor as stored: bf16 stays bf16 (raw) unless the dense mode says fp32. */
static int add_ckpt(export_layout *L, size_t *cap, const ckpt *ck, int layer, ckpt_role role,
                    int dense, err *e) {
  const ckpt_tensor *ct = ckpt_tensor_find(ck, layer, role);
  const int as_f32 = dense == EXPORT_DENSE_FP32 ||
                     (dense == EXPORT_DENSE_AUTO && ct->n_bytes * 2 > EXPORT_FOLD_LIMIT);
  exl_tensor *t = push(L, cap, e);
  if (!t) return -1;
  snprintf(t->name, sizeof t->name, "%s", ct->name);
  t->layer = ckpt_role_is_global(role) ? -1 : layer;
  t->role = (int)role;
  t->t = ct;
  t->n_dims = ct->n_dims;
  memcpy(t->dims, ct->shape, sizeof t->dims);
  t->expert_major = role >= CK_MLP1_BLOCKS;
  if (ct->dtype == ST_U8) {
    t->src = EXL_RAW;
    t->dtype = ONNX_UINT8;
    t->n_bytes = ct->n_bytes;
  } else if (as_f32) {
    t->src = EXL_BF16_F32;
    t->dtype = ONNX_FLOAT;
    t->n_bytes = ct->n_bytes * 2;
  } else {
    t->src = EXL_RAW;
    t->dtype = ONNX_BFLOAT16;
    t->n_bytes = ct->n_bytes;
  }
  return 0;
}

/* An expert weight made from its MXFP4 blocks and scales at export time: fp32 [E, R, C]
 * (--weights fp32), or for the ort target its int8 codes [E, R, C] or their fp32 block scales
 * [E, R, C/32] (export_ort.h). */
static int add_mx4_derived(export_layout *L, size_t *cap, const ckpt *ck, int layer,
                           ckpt_role blocks, ckpt_role scales, const char *name, exl_source src,
                           err *e) {
  const ckpt_tensor *b = ckpt_tensor_find(ck, layer, blocks);
  exl_tensor *t = push(L, cap, e);
  if (!t) return -1;
  snprintf(t->name, sizeof t->name, "block.%d.mlp.%s", layer, name);
  t->src = src;
  t->layer = layer;
  t->role = (int)(src == EXL_MX4_Q8_SCALES ? scales : blocks);
  t->t = b;
  t->scales = ckpt_tensor_find(ck, layer, scales);
  t->dtype = src == EXL_MX4_Q8 ? ONNX_UINT8 : ONNX_FLOAT;
  t->n_dims = 3;
  t->dims[0] = b->shape[0];
  t->dims[1] = b->shape[1];
  t->dims[2] = src == EXL_MX4_Q8_SCALES ? b->shape[2] : b->shape[2] * 32;
  t->n_bytes = (uint64_t)dims_elems(t) * (src == EXL_MX4_Q8 ? 1 : 4);
  t->expert_major = 1;
  return 0;
}

static int add_derived(export_layout *L, size_t *cap, const char *name, exl_source src,
                       int n_dims, int64_t d0, int64_t d1, err *e) {
  exl_tensor *t = push(L, cap, e);
  if (!t) return -1;
  snprintf(t->name, sizeof t->name, "%s", name);
  t->src = src;
  t->dtype = ONNX_FLOAT;
  t->n_dims = n_dims;
  t->dims[0] = d0;
  t->dims[1] = d1;
  t->n_bytes = (uint64_t)dims_elems(t) * 4;
  return 0;
}

/* RoPE inverse frequencies: the same function as the forward pass (config_rope_inv_freq). */
static int rope_init(export_layout *L, err *e) {
  const gpt_config *c = &L->c;
  const int d2 = c->head_dim / 2;
  L->inv_freq = malloc((size_t)d2 * sizeof *L->inv_freq);
  if (!L->inv_freq) return err_set(e, EXIT_RUNTIME, "out of memory (RoPE tables)");
  if (config_rope_inv_freq(c, L->inv_freq, &L->concentration, e) != 0) return -1;
  return 0;
}

/* Writer of tensor i in per-rank mode: whole tensors; expert tensors round robin in the stage. */
static int whole_owner(const export_layout *L, const plan *p, size_t i);

static int stage_of_layer(const plan *p, int layer) {
  int s = 0;
  while (s + 1 < p->n_stages && layer >= p->stage_layer0[s + 1]) s++;
  return s;
}

static int head_rank(const plan *p) {
  for (int r = 0; r < p->n_ranks; r++)
    if (p->ranks[r].has_head) return r;
  return 0;
}

static int whole_owner(const export_layout *L, const plan *p, size_t i) {
  const exl_tensor *t = &L->t[i];
  if (t->layer < 0)
    return (t->role == CK_NORM || t->role == CK_UNEMBEDDING) ? head_rank(p) : 0;
  const int s = stage_of_layer(p, t->layer);
  if (!t->expert_major) return s * p->n_groups;
  /* count this tensor among its layer's expert tensors */
  int j = 0;
  for (size_t k = i; k > 0 && L->t[k - 1].layer == t->layer && L->t[k - 1].expert_major; k--) j++;
  return s * p->n_groups + (j + t->layer) % p->n_groups;
}

int export_layout_make(const ckpt *ck, const export_opts *o, const plan *p, export_layout *L,
                       err *e) {
  memset(L, 0, sizeof *L);
  L->o = *o;
  L->c = *ckpt_config(ck);
  if (o->sub_model && (o->layer0 < 0 || o->layer0 >= o->n_layers || o->n_layers > L->c.n_layers))
    return err_set(e, EXIT_USAGE, "--layers %d:%d: need 0 <= A < B <= %d (the checkpoint's "
                   "layers)", o->layer0, o->n_layers, L->c.n_layers);
  if (!o->sub_model && (o->layer0 != 0 || o->n_layers < 1 || o->n_layers > L->c.n_layers))
    return err_set(e, EXIT_USAGE, "--max-layers %d: the checkpoint has %d layers", o->n_layers,
                   L->c.n_layers);
  if (o->max_positions < 1)
    return err_set(e, EXIT_USAGE, "--max-positions %d: must be at least 1", o->max_positions);
  if (o->per_rank_files && !p)
    return err_set(e, EXIT_RUNTIME, "per-rank data files need the shard plan");
  /* before anything is allocated: a refusal leaves nothing to free */
  if (o->target == EXPORT_TARGET_ORT && export_ort_check(&L->c, o, e) != 0) return -1;
  L->c.n_layers = o->n_layers;
  size_t cap = 0;
  int rc = 0;
  if (!o->sub_model) /* Gather of bf16 rows, Cast after */
    rc |= add_ckpt(L, &cap, ck, -1, CK_EMBEDDING, EXPORT_DENSE_BF16, e);
  if (export_layout_has_head(L)) {
    rc |= add_ckpt(L, &cap, ck, -1, CK_NORM, o->dense, e);
    rc |= add_ckpt(L, &cap, ck, -1, CK_UNEMBEDDING, o->dense, e);
  }
  const int ort = o->target == EXPORT_TARGET_ORT;
  for (int l = o->layer0; l < o->n_layers && rc == 0; l++)
    for (int r = CK_FIRST_LAYER_ROLE; r < CK_N_ROLES && rc == 0; r++) {
      const int mlp1 = r == CK_MLP1_BLOCKS || r == CK_MLP1_SCALES;
      const ckpt_role blocks = mlp1 ? CK_MLP1_BLOCKS : CK_MLP2_BLOCKS;
      const ckpt_role scales = mlp1 ? CK_MLP1_SCALES : CK_MLP2_SCALES;
      if (r != CK_MLP1_BLOCKS && r != CK_MLP1_SCALES && r != CK_MLP2_BLOCKS && r != CK_MLP2_SCALES)
        rc = add_ckpt(L, &cap, ck, l, (ckpt_role)r, o->dense, e);
      else if (ort)
        rc = add_mx4_derived(L, &cap, ck, l, blocks, scales,
                             r == (int)blocks ? (mlp1 ? "mlp1_weight.codes" : "mlp2_weight.codes")
                                              : (mlp1 ? "mlp1_weight.code_scales" : "mlp2_weight.code_scales"),
                             r == (int)blocks ? EXL_MX4_Q8 : EXL_MX4_Q8_SCALES, e);
      else if (o->experts_fp32 && r == (int)blocks)
        rc = add_mx4_derived(L, &cap, ck, l, blocks, scales, mlp1 ? "mlp1_weight" : "mlp2_weight",
                             EXL_MX4_F32, e);
      else if (!o->experts_fp32)
        rc = add_ckpt(L, &cap, ck, l, (ckpt_role)r, o->dense, e);
    }
  if (rc == 0 && !o->experts_fp32 && !ort) {
    rc |= add_derived(L, &cap, "mxfp4.lut_fp4_pairs", EXL_LUT_FP4, 2, 256, 2, e);
    rc |= add_derived(L, &cap, "mxfp4.lut_e8m0", EXL_LUT_E8M0, 1, 256, 0, e);
  }
  if (rc == 0) {
    rc |= add_derived(L, &cap, "rope.cos_cache", EXL_ROPE_COS, 2, o->max_positions,
                      L->c.head_dim / 2, e);
    rc |= add_derived(L, &cap, "rope.sin_cache", EXL_ROPE_SIN, 2, o->max_positions,
                      L->c.head_dim / 2, e);
  }
  if (rc != 0 || rope_init(L, e) != 0) {
    export_layout_free(L);
    return -1;
  }
  /* files and offsets: a pure function of the list (and, per-rank, of the plan) */
  L->n_files = o->per_rank_files ? p->n_ranks : 1;
  L->file_bytes = calloc((size_t)L->n_files, sizeof *L->file_bytes);
  if (!L->file_bytes) {
    export_layout_free(L);
    return err_set(e, EXIT_RUNTIME, "out of memory (export layout)");
  }
  for (size_t i = 0; i < L->n_tensors; i++) {
    exl_tensor *t = &L->t[i];
    t->file = o->per_rank_files ? whole_owner(L, p, i) : 0;
    const uint64_t a = t->n_bytes >= EXPORT_BIG_TENSOR ? EXPORT_ALIGN_BIG : EXPORT_ALIGN_SMALL;
    uint64_t *end = &L->file_bytes[t->file];
    t->offset = (*end + a - 1) / a * a;
    *end = t->offset + t->n_bytes;
  }
  return 0;
}

int export_layout_has_head(const export_layout *L) {
  return !L->o.sub_model || L->o.sub_head;
}

void export_layout_free(export_layout *L) {
  free(L->t);
  free(L->file_bytes);
  free(L->inv_freq);
  memset(L, 0, sizeof *L);
}

void export_layout_data_location(const export_layout *L, int f, char *buf, size_t len) {
  if (L->o.per_rank_files) snprintf(buf, len, "%s.%d", EXPORT_DATA_FILE, f);
  else snprintf(buf, len, "%s", EXPORT_DATA_FILE);
}

void export_layout_file_name(const export_layout *L, int f, char *buf, size_t len) {
  char loc[64];
  export_layout_data_location(L, f, loc, sizeof loc);
  snprintf(buf, len, "%s/%s", EXPORT_MODEL_DIR, loc);
}

long export_layout_find(const export_layout *L, const char *name) {
  for (size_t i = 0; i < L->n_tensors; i++)
    if (!strcmp(L->t[i].name, name)) return (long)i;
  return -1;
}

/* ------------------------------------------------------------------ who writes what */

void export_layout_share(const export_layout *L, const plan *p, size_t i, int rank,
                         uint64_t *b0, uint64_t *b1) {
  const exl_tensor *t = &L->t[i];
  *b0 = *b1 = 0;
  if (L->o.per_rank_files || !t->expert_major || t->layer < 0) {
    if (whole_owner(L, p, i) == rank) *b1 = t->n_bytes;
    return;
  }
  const plan_rank *pr = &p->ranks[rank];
  if (stage_of_layer(p, t->layer) != pr->stage || pr->n_experts == 0) return;
  const uint64_t per_expert = t->n_bytes / (uint64_t)t->dims[0];
  *b0 = (uint64_t)pr->expert0 * per_expert;
  *b1 = (uint64_t)(pr->expert0 + pr->n_experts) * per_expert;
}

uint64_t export_layout_rank_bytes(const export_layout *L, const plan *p, int rank) {
  uint64_t s = 0, b0, b1;
  for (size_t i = 0; i < L->n_tensors; i++) {
    export_layout_share(L, p, i, rank, &b0, &b1);
    s += b1 - b0;
  }
  return s;
}

/* ------------------------------------------------------------------ encoding and writing */

/* Checkpoint bytes [s0, s1) of a (possibly 3-part) tensor, parts concatenated in order. */
static const uint8_t *part_span(const ckpt_tensor *t, uint64_t s, uint64_t *avail, int *pi) {
  for (int k = 0; k < t->n_parts; k++) {
    if (s < t->part[k]->n_bytes) {
      *avail = t->part[k]->n_bytes - s;
      *pi = k;
      return (const uint8_t *)t->part[k]->data + s;
    }
    s -= t->part[k]->n_bytes;
  }
  *avail = 0;
  return NULL;
}

/* The precise message for bad data found in bytes [b0, b1) of t's encoding: ckpt_check_rows
 * names the file, tensor, row and value. */
static int report_bad(const ckpt *ck, const exl_tensor *t, const ckpt_tensor *src, uint64_t b0,
                      uint64_t b1, err *e) {
  const uint64_t rows = (uint64_t)t->dims[0], row_bytes = t->n_bytes / rows;
  if (ckpt_check_rows(ck, src, (int64_t)(b0 / row_bytes), (int64_t)((b1 - b0 + row_bytes - 1) / row_bytes), e) == 0)
    err_set(e, EXIT_RUNTIME, "%s: corrupt data in bytes [%llu, %llu)", t->name,
            (unsigned long long)b0, (unsigned long long)b1);
  return -1;
}

/* Checkpoint bytes unchanged, in one read pass. Tensors that are checked (bf16: no NaN/inf;
 * scales: no byte that overflows fp32) are read once into buf, checked there, and written from
 * there: the bytes written are the bytes checked. The others (the MXFP4 blocks, most of a real
 * checkpoint) are copied in the kernel (copy_file_range) where the file system allows it, else
 * written from the mapping. */
static int write_raw(const ckpt *ck, const exl_tensor *t, uint64_t b0, uint64_t b1, int fd,
                     const char *path, void *buf, size_t buf_bytes, export_progress_fn fn,
                     void *ctx, err *e) {
  const int check_bf16 = t->dtype == ONNX_BFLOAT16;
  const int check_scales = t->role == CK_MLP1_SCALES || t->role == CK_MLP2_SCALES;
  const int checked = check_bf16 || check_scales;
  const uint64_t chunk = checked ? (uint64_t)buf_bytes : 64ull << 20;
  uint64_t done = 0;
  int sfd = -1, sfd_part = -1;
  int rc = 0;
  for (uint64_t s = b0; rc == 0 && s < b1;) {
    uint64_t avail;
    int k;
    const uint8_t *src = part_span(t->t, s, &avail, &k);
    if (!src) {
      rc = err_set(e, EXIT_RUNTIME, "%s: tensor '%s': range past its end", path, t->name);
      break;
    }
    uint64_t n = b1 - s < avail ? b1 - s : avail;
    if (n > chunk) n = chunk;
    const st_tensor *pt = t->t->part[k];
    const st_file *sf = ckpt_file(ck, (size_t)t->t->file_index[k]);
    const uint64_t in0 = pt->file_offset + (uint64_t)(src - (const uint8_t *)pt->data);
    const uint64_t out0 = t->offset + s;
    if (sfd_part != k) { /* one descriptor per source file (a q/k/v split has three parts) */
      if (sfd >= 0) close(sfd);
      sfd = open(st_file_path(sf), O_RDONLY | O_CLOEXEC);
      sfd_part = k;
      if (sfd < 0) {
        rc = err_errno(e, errno, "%s: cannot open to copy tensor '%s'", st_file_path(sf), t->name);
        break;
      }
    }
    if (checked) {
      const ssize_t r = fs_pread_full(sfd, buf, (size_t)n, in0);
      if (r != (ssize_t)n) {
        /* a file that changed since it was opened is that, not a read error */
        if (st_file_unchanged(sf, e) == 0)
          err_errno(e, r < 0 ? errno : EIO, "%s: cannot read tensor '%s'", st_file_path(sf), t->name);
        rc = -1;
        break;
      }
      if (check_bf16 ? bf16_any_nonfinite(buf, n / 2) : scales_any_overflow(buf, n)) {
        rc = report_bad(ck, t, t->t, s, s + n, e);
        break;
      }
      rc = fs_pwrite_all(fd, buf, (size_t)n, out0, path, e);
    } else {
      uint64_t left = n;
      loff_t in_off = (loff_t)in0, out_off = (loff_t)out0;
      while (left > 0) {
        ssize_t w = copy_file_range(sfd, &in_off, fd, &out_off, left, 0);
        if (w <= 0) break;
        left -= (uint64_t)w;
      }
      /* copy_file_range may be unsupported here (the mapping then serves), but if the source
       * file shrank the mapping holds nothing either: say that the checkpoint changed */
      if (left > 0 && st_file_unchanged(sf, e) != 0) rc = -1;
      else if (left > 0) rc = fs_pwrite_all(fd, src + (n - left), left, out0 + (n - left), path, e);
    }
    s += n;
    done += n;
    if (rc == 0 && fn) fn(ctx, done);
  }
  if (sfd >= 0) close(sfd);
  return rc;
}

static void lut_fill(exl_source src, float *out) {
  for (int b = 0; b < 256; b++) {
    if (src == EXL_LUT_FP4) {
      out[2 * b] = mx4_fp4_table[b & 15];
      out[2 * b + 1] = mx4_fp4_table[b >> 4];
    } else {
      out[b] = mx4_scale((uint8_t)b);
    }
  }
}

static int export_layout_write_unguarded(const export_layout *L, const ckpt *ck, size_t i, uint64_t b0,
                        uint64_t b1, int fd, const char *path, void *buf, size_t buf_bytes,
                        export_progress_fn fn, void *ctx, err *e) {
  const exl_tensor *t = &L->t[i];
  if (b0 >= b1) return 0;
  /* the checkpoint is untrusted: no NaN/inf bf16 and no overflowing scale byte is written */
  if (t->src == EXL_RAW) return write_raw(ck, t, b0, b1, fd, path, buf, buf_bytes, fn, ctx, e);
  if (t->src == EXL_MX4_Q8 || t->src == EXL_MX4_Q8_SCALES)
    return export_ort_write_q8(ck, t, b0, b1, fd, path, buf, buf_bytes, fn, ctx, e);
  if (t->src == EXL_MX4_F32 && ckpt_check_rows(ck, t->scales, (int64_t)(b0 / (t->n_bytes / (uint64_t)t->dims[0])),
                                               (int64_t)((b1 - b0) / (t->n_bytes / (uint64_t)t->dims[0])), e) != 0)
    return -1;
  float *out = buf;
  uint64_t done = 0;
  if (t->src == EXL_BF16_F32) {
    const uint64_t per = buf_bytes / 4;
    for (uint64_t k = b0 / 4; k < b1 / 4;) {
      uint64_t n = b1 / 4 - k < per ? b1 / 4 - k : per;
      for (uint64_t j = 0; j < n;) {
        uint64_t avail;
        int pi;
        const uint8_t *src = part_span(t->t, (k + j) * 2, &avail, &pi);
        uint64_t m = avail / 2 < n - j ? avail / 2 : n - j;
        if (bf16_any_nonfinite(src, m)) return report_bad(ck, t, t->t, (k + j) * 4, (k + j + m) * 4, e);
        for (uint64_t q = 0; q < m; q++) out[j + q] = st_bf16_to_f32(bf16_at(src + 2 * q));
        j += m;
      }
      if (fs_pwrite_all(fd, out, n * 4, t->offset + k * 4, path, e) != 0) return -1;
      k += n;
      done += n * 4;
      if (fn) fn(ctx, done);
    }
    return 0;
  }
  if (t->src == EXL_MX4_F32) {
    const int64_t C = t->dims[2];
    const uint64_t row_bytes = (uint64_t)C * 4, per = buf_bytes / row_bytes;
    const uint8_t *blocks = ckpt_tensor_data(t->t), *scales = ckpt_tensor_data(t->scales);
    for (uint64_t g = b0 / row_bytes; g < b1 / row_bytes;) {
      uint64_t n = b1 / row_bytes - g < per ? b1 / row_bytes - g : per;
      for (uint64_t r = 0; r < n; r++)
        mx4_decode_row(blocks + (g + r) * (uint64_t)(C / 2), scales + (g + r) * (uint64_t)(C / 32),
                       C, out + r * (uint64_t)C);
      if (fs_pwrite_all(fd, out, n * row_bytes, t->offset + g * row_bytes, path, e) != 0) return -1;
      g += n;
      done += n * row_bytes;
      if (fn) fn(ctx, done);
    }
    return 0;
  }
  if (t->src == EXL_LUT_FP4 || t->src == EXL_LUT_E8M0) {
    lut_fill(t->src, out);
    if (fs_pwrite_all(fd, (const uint8_t *)out + b0, b1 - b0, t->offset + b0, path, e) != 0) return -1;
    if (fn) fn(ctx, b1 - b0);
    return 0;
  }
  /* RoPE caches: rows of Dh/2, angle as a float32 product (spec 6.3) */
  const int d2 = L->c.head_dim / 2;
  const uint64_t row_bytes = (uint64_t)d2 * 4, per = buf_bytes / row_bytes;
  const float conc = L->concentration;
  for (uint64_t p = b0 / row_bytes; p < b1 / row_bytes;) {
    uint64_t n = b1 / row_bytes - p < per ? b1 / row_bytes - p : per;
    for (uint64_t r = 0; r < n; r++)
      for (int k = 0; k < d2; k++) {
        const float angle = (float)(p + r) * L->inv_freq[k];
        out[r * d2 + k] = t->src == EXL_ROPE_COS ? (float)cos((double)angle) * conc
                                                 : (float)sin((double)angle) * conc;
      }
    if (fs_pwrite_all(fd, out, n * row_bytes, t->offset + p * row_bytes, path, e) != 0) return -1;
    p += n;
    done += n * row_bytes;
    if (fn) fn(ctx, done);
  }
  return 0;
}

typedef struct {
  const export_layout *L;
  const ckpt *ck;
  size_t i;
  uint64_t b0, b1;
  int fd;
  const char *path;
  void *buf;
  size_t buf_bytes;
  export_progress_fn fn;
  void *ctx;
  err *e;
} export_layout_write_args;

static int export_layout_write_call(void *p) {
  export_layout_write_args *a = p;
  return export_layout_write_unguarded(a->L, a->ck, a->i, a->b0, a->b1, a->fd, a->path, a->buf, a->buf_bytes, a->fn, a->ctx, a->e);
}

int export_layout_write(const export_layout *L, const ckpt *ck, size_t i, uint64_t b0,
                        uint64_t b1, int fd, const char *path, void *buf, size_t buf_bytes,
                        export_progress_fn fn, void *ctx, err *e) {
  export_layout_write_args a = {L, ck, i, b0, b1, fd, path, buf, buf_bytes, fn, ctx, e};
  const char *bad = NULL;
  const int rc = guard_mapped_call(export_layout_write_call, &a, &bad);
  return rc == -2 ? guard_bus_error(e, bad) : rc;
}
