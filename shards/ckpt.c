/* Checkpoint directory -> validated tensor catalog (ckpt.h). */
#define _GNU_SOURCE
#include "guard.h"
#include "ckpt.h"
#include "atomic.h"
#include "quote.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct ckpt {
  char *dir;                 /* the directory actually read */
  char *config_path;
  gpt_config cfg;
  ckpt_layout layout;
  char defaulted[512];
  size_t n_files;
  st_file **files;           /* sorted by file name */
  size_t n_tensors;          /* 3 + L * CK_N_LAYER_ROLES */
  ckpt_tensor *tensors;      /* globals in enum order, then layer 0 roles, layer 1, ... */
};

/* One tensor of one file, for the catalog-wide name index. */
typedef struct {
  const char *name;
  const st_tensor *t;
  int file;
  int used;
} entry;

static char *path_join(const char *dir, const char *name) {
  size_t n = strlen(dir);
  while (n > 1 && dir[n - 1] == '/') n--;
  char *p = malloc(n + strlen(name) + 2);
  if (p) sprintf(p, "%.*s/%s", (int)n, dir, name);
  return p;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}
static int cmp_entry(const void *a, const void *b) {
  return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void free_list(char **list, size_t n) {
  for (size_t i = 0; i < n; i++) free(list[i]);
  free(list);
}

/* Every `*.safetensors` entry of dir, sorted by name (full paths). Each must be a regular file
 * (after following symlinks), since skipping one would silently drop tensors. */
static int list_safetensors(const char *dir, char ***out, size_t *n_out, err *e) {
  *out = NULL;
  *n_out = 0;
  DIR *d = opendir(dir);
  if (!d) return err_errno(e, errno, "%s: cannot read the checkpoint directory", dir);
  char **list = NULL;
  size_t n = 0, cap = 0;
  struct dirent *de;
  int rc = 0;
  errno = 0;
  while ((de = readdir(d))) {
    if (!ends_with(de->d_name, ".safetensors")) continue;
    char *p = path_join(dir, de->d_name);
    if (p && n == cap) {
      const size_t nc = cap ? 2 * cap : 8;
      char **nl = realloc(list, nc * sizeof *list);
      if (nl) {
        list = nl;
        cap = nc;
      }
    }
    if (!p || n == cap) { /* the list stays valid on a failed realloc */
      free(p);
      rc = err_set(e, EXIT_RUNTIME, "%s: out of memory listing the directory", dir);
      break;
    }
    list[n++] = p;
    struct stat sb;
    if (stat(p, &sb) != 0) {
      rc = err_errno(e, errno, "%s: cannot read checkpoint file", p);
      break;
    }
    if (!S_ISREG(sb.st_mode)) {
      rc = err_set(e, EXIT_RUNTIME, "%s: not a regular file (every *.safetensors entry of a "
                   "checkpoint directory is read)", p);
      break;
    }
    errno = 0;
  }
  if (rc == 0 && errno != 0) rc = err_errno(e, errno, "%s: cannot read the directory", dir);
  closedir(d);
  if (rc != 0) {
    free_list(list, n);
    return -1;
  }
  if (n) qsort(list, n, sizeof *list, cmp_str);
  *out = list;
  *n_out = n;
  return 0;
}

static int is_dir(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* Original-layout global names and the HF prefixes, for layout detection. */
static int name_layout(const char *n) {
  if (strncmp(n, "block.", 6) == 0 || strcmp(n, "embedding.weight") == 0 ||
      strcmp(n, "norm.scale") == 0 || strcmp(n, "unembedding.weight") == 0)
    return LAYOUT_ORIGINAL;
  if (strncmp(n, "model.", 6) == 0 || strncmp(n, "lm_head.", 8) == 0) return LAYOUT_HF;
  return -1;
}


static void shape_str(int n_dims, const int64_t *shape, char *buf, size_t len) {
  size_t o = (size_t)snprintf(buf, len, "[");
  for (int i = 0; i < n_dims && o < len; i++)
    o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
  if (o < len) snprintf(buf + o, len - o, "]");
}

/* The config keys a role's shape comes from, with their values, in the layout's spelling. */
static void shape_reason(const gpt_config *c, ckpt_layout lay, ckpt_role r, char *buf,
                         size_t len) {
  const int hf = lay == LAYOUT_HF;
  const char *E = hf ? "num_local_experts" : "num_experts";
  switch (r) {
    case CK_EMBEDDING: case CK_UNEMBEDDING:
      snprintf(buf, len, "vocab_size=%d, hidden_size=%d", c->vocab, c->hidden); break;
    case CK_NORM: case CK_ATTN_NORM: case CK_MLP_NORM: case CK_OUT_B:
      snprintf(buf, len, "hidden_size=%d", c->hidden); break;
    case CK_QKV_W: case CK_QKV_B:
      snprintf(buf, len, "head_dim=%d, num_attention_heads=%d, num_key_value_heads=%d, "
               "hidden_size=%d", c->head_dim, c->n_heads, c->n_kv_heads, c->hidden); break;
    case CK_SINKS: snprintf(buf, len, "num_attention_heads=%d", c->n_heads); break;
    case CK_OUT_W:
      snprintf(buf, len, "hidden_size=%d, num_attention_heads=%d, head_dim=%d", c->hidden,
               c->n_heads, c->head_dim); break;
    case CK_GATE_W: case CK_GATE_B:
      snprintf(buf, len, "%s=%d, hidden_size=%d", E, c->n_experts, c->hidden); break;
    default:
      snprintf(buf, len, "%s=%d, intermediate_size=%d, hidden_size=%d", E, c->n_experts,
               c->intermediate, c->hidden); break;
  }
}

static int read_config(ckpt *c, err *e) {
  /* config.json is a few hundred bytes; anything beyond 1 MiB is not a config. A FIFO or a
   * device in its place is refused without blocking on it. */
  struct stat sb;
  if (stat(c->config_path, &sb) != 0 && errno == ENOENT)
    return err_set(e, EXIT_RUNTIME, "%s: missing (a checkpoint directory needs config.json "
                   "next to its safetensors files)", c->config_path);
  char *buf;
  size_t n;
  if (fs_read_file(c->config_path, "config.json", 1u << 20, &buf, &n, e) != 0) return -1;
  int rc = config_parse(c->config_path, buf, n, c->layout, &c->cfg, c->defaulted,
                        sizeof c->defaulted, e);
  free(buf);
  return rc;
}

/* Detect the layout from the tensor names: every name must belong to one layout. */
static int detect_layout(ckpt *c, const entry *ents, size_t n, err *e) {
  int first[2] = {-1, -1};
  for (size_t i = 0; i < n; i++) {
    int l = name_layout(ents[i].name);
    if (l >= 0 && first[l] < 0) first[l] = (int)i;
  }
  char qa[128], qb[128];
  if (first[0] >= 0 && first[1] >= 0)
    return err_set(e, EXIT_RUNTIME, "%s: mixed tensor layouts: '%s' (original, in %s) and '%s' "
                   "(Hugging Face, in %s)", c->dir, quote_name(ents[first[0]].name, qa, sizeof qa),
                   st_file_path(c->files[ents[first[0]].file]),
                   quote_name(ents[first[1]].name, qb, sizeof qb),
                   st_file_path(c->files[ents[first[1]].file]));
  if (first[0] < 0 && first[1] < 0) {
    if (n == 0)
      return err_set(e, EXIT_RUNTIME, "%s: the safetensors files hold no tensors", c->dir);
    return err_set(e, EXIT_RUNTIME, "%s: unknown tensor '%s' (neither original block.N.* nor "
                   "Hugging Face model.layers.N.* names)", st_file_path(c->files[ents[0].file]),
                   quote_name(ents[0].name, qa, sizeof qa));
  }
  c->layout = first[0] >= 0 ? LAYOUT_ORIGINAL : LAYOUT_HF;
  return 0;
}

static entry *find_entry(entry *ents, size_t n, const char *name) {
  entry key = {.name = name};
  return bsearch(&key, ents, n, sizeof *ents, cmp_entry);
}

/* Fill the logical tensor (layer, role) from the index, checking dtype and part shapes. */
static int bind_tensor(ckpt *c, entry *ents, size_t n, int layer, ckpt_role role,
                       ckpt_tensor *t, err *e) {
  const gpt_config *g = &c->cfg;
  char names[3][96];
  int n_parts;
  if (c->layout == LAYOUT_HF) {
    n_parts = ckpt_role_hf_names(layer, role, names);
  } else {
    ckpt_role_name(layer, role, names[0], sizeof names[0]);
    n_parts = 1;
  }
  ckpt_role_name(layer, role, t->name, sizeof t->name);
  t->role = role;
  t->layer = ckpt_role_is_global(role) ? -1 : layer;
  t->n_dims = ckpt_role_shape(g, role, &t->dtype, t->shape);
  t->n_parts = n_parts;
  /* Rows of each part: HF q/k/v split the logical dim 0 as H*Dh, KV*Dh, KV*Dh. */
  const int64_t part_rows[3] = {(int64_t)g->n_heads * g->head_dim,
                                (int64_t)g->n_kv_heads * g->head_dim,
                                (int64_t)g->n_kv_heads * g->head_dim};
  uint64_t total = 0;
  for (int p = 0; p < n_parts; p++) {
    int64_t want[4];
    memcpy(want, t->shape, sizeof want);
    if (n_parts == 3) want[0] = part_rows[p];
    char ws[96], fs[160], why[256];
    shape_str(t->n_dims, want, ws, sizeof ws);
    entry *en = find_entry(ents, n, names[p]);
    if (!en)
      return err_set(e, EXIT_RUNTIME, "%s: missing tensor '%s' (expected %s %s)", c->dir,
                     names[p], st_dtype_name(t->dtype), ws);
    en->used = 1;
    const st_tensor *s = en->t;
    const char *fp = st_file_path(c->files[en->file]);
    if (s->dtype != t->dtype)
      return err_set(e, EXIT_RUNTIME, "%s: tensor '%s': dtype %s, expected %s", fp, names[p],
                     st_dtype_name(s->dtype), st_dtype_name(t->dtype));
    int same = s->n_dims == t->n_dims;
    for (int i = 0; same && i < t->n_dims; i++) same = s->shape[i] == want[i];
    if (!same) {
      shape_str(s->n_dims, s->shape, fs, sizeof fs);
      shape_reason(g, c->layout, role, why, sizeof why);
      return err_set(e, EXIT_RUNTIME, "%s: tensor '%s': shape %s contradicts config.json "
                     "(expected %s from %s)", fp, names[p], fs, ws, why);
    }
    t->part[p] = s;
    t->file_index[p] = en->file;
    total += s->n_bytes;
  }
  for (int p = n_parts; p < 3; p++) {
    t->part[p] = NULL;
    t->file_index[p] = -1;
  }
  t->n_bytes = total;
  return 0;
}

/* The layer of a tensor name in either layout, or -1. */
static long name_layer(const char *n) {
  const char *p = !strncmp(n, "block.", 6) ? n + 6 : !strncmp(n, "model.layers.", 13) ? n + 13 : NULL;
  if (!p || *p < '0' || *p > '9') return -1;
  char *end;
  long v = strtol(p, &end, 10);
  return *end == '.' && v >= 0 && v < (1L << 30) ? v : -1;
}

static int check_layer_count(const ckpt *c, entry *ents, size_t n, err *e) {
  const int L = c->cfg.n_layers;
  char name[3][96];
  if (c->layout == LAYOUT_HF) ckpt_role_hf_names(L - 1, CK_ATTN_NORM, name);
  else ckpt_role_name(L - 1, CK_ATTN_NORM, name[0], sizeof name[0]);
  if (find_entry(ents, n, name[0])) return 0;
  long top = -1;
  for (size_t i = 0; i < n; i++) {
    long l = name_layer(ents[i].name);
    if (l > top) top = l;
  }
  if (top < 0)
    return err_set(e, EXIT_RUNTIME, "%s: num_hidden_layers = %d, but the safetensors files hold "
                   "no layer tensors at all (missing tensor '%s')", c->config_path, L, name[0]);
  return err_set(e, EXIT_RUNTIME, "%s: num_hidden_layers = %d, but the safetensors files hold "
                 "layers 0-%ld only (missing tensor '%s')", c->config_path, L, top, name[0]);
}

static int build_catalog(ckpt *c, err *e) {
  size_t n = 0;
  for (size_t f = 0; f < c->n_files; f++) n += st_file_n_tensors(c->files[f]);
  entry *ents = calloc(n ? n : 1, sizeof *ents);
  if (!ents) return err_set(e, EXIT_RUNTIME, "%s: out of memory", c->dir);
  size_t k = 0;
  for (size_t f = 0; f < c->n_files; f++)
    for (size_t i = 0; i < st_file_n_tensors(c->files[f]); i++) {
      const st_tensor *t = st_file_tensor(c->files[f], i);
      ents[k++] = (entry){.name = t->name, .t = t, .file = (int)f};
    }
  int rc = -1;
  char qa[128];
  if (detect_layout(c, ents, n, e) != 0) goto out;
  if (read_config(c, e) != 0) goto out;
  /* Stable sort is not needed: equal names are an error, reported with both files. */
  qsort(ents, n, sizeof *ents, cmp_entry);
  for (size_t i = 1; i < n; i++)
    if (strcmp(ents[i - 1].name, ents[i].name) == 0) {
      int a = ents[i - 1].file < ents[i].file ? ents[i - 1].file : ents[i].file;
      int b = ents[i - 1].file < ents[i].file ? ents[i].file : ents[i - 1].file;
      err_set(e, EXIT_RUNTIME, "tensor '%s' appears in two files: %s and %s",
              quote_name(ents[i].name, qa, sizeof qa), st_file_path(c->files[a]),
              st_file_path(c->files[b]));
      goto out;
    }
  const int L = c->cfg.n_layers;
  /* every layer needs its tensors: a num_hidden_layers beyond what the files hold is reported as
   * such before anything is allocated for the catalog */
  if (check_layer_count(c, ents, n, e) != 0) goto out;
  size_t n_log = (size_t)CK_FIRST_LAYER_ROLE + (size_t)L * CK_N_LAYER_ROLES;
  c->tensors = calloc(n_log, sizeof *c->tensors);
  if (!c->tensors) {
    err_set(e, EXIT_RUNTIME, "%s: out of memory for %zu tensors", c->dir, n_log);
    goto out;
  }
  size_t t = 0;
  for (int r = 0; r < CK_FIRST_LAYER_ROLE; r++)
    if (bind_tensor(c, ents, n, -1, (ckpt_role)r, &c->tensors[t++], e) != 0) goto out;
  for (int l = 0; l < L; l++)
    for (int r = CK_FIRST_LAYER_ROLE; r < CK_N_ROLES; r++)
      if (bind_tensor(c, ents, n, l, (ckpt_role)r, &c->tensors[t++], e) != 0) goto out;
  c->n_tensors = n_log;
  /* Names in header order of the first file holding an unused one, so the report is stable. */
  for (size_t f = 0; f < c->n_files; f++)
    for (size_t i = 0; i < st_file_n_tensors(c->files[f]); i++) {
      const st_tensor *s = st_file_tensor(c->files[f], i);
      const entry *en = find_entry(ents, n, s->name);
      if (en && !en->used) {
        err_set(e, EXIT_RUNTIME, "%s: unknown tensor '%s' (not one of the %zu tensors "
                "of a checkpoint in %s layout with num_hidden_layers=%d)",
                st_file_path(c->files[f]), quote_name(s->name, qa, sizeof qa),
                c->layout == LAYOUT_HF ? n_log + 4 * (size_t)L : n_log,
                c->layout == LAYOUT_HF ? "Hugging Face" : "original", L);
        goto out;
      }
    }
  rc = 0;
out:
  free(ents);
  return rc;
}

int ckpt_open(const char *dir, ckpt **out, err *e) {
  *out = NULL;
  struct stat sb;
  if (stat(dir, &sb) != 0) return err_errno(e, errno, "%s: cannot open checkpoint", dir);
  if (!S_ISDIR(sb.st_mode))
    return err_set(e, EXIT_RUNTIME, "%s: not a directory (a checkpoint is a directory with "
                   "config.json and *.safetensors files)", dir);
  ckpt *c = calloc(1, sizeof *c);
  if (!c) return err_set(e, EXIT_RUNTIME, "%s: out of memory", dir);
  char **list = NULL;
  size_t n = 0;
  if (!(c->dir = strdup(dir))) goto oom;
  if (list_safetensors(c->dir, &list, &n, e) != 0) goto fail;
  if (n == 0) {
    char *sub = path_join(dir, "original");
    if (!sub) goto oom;
    if (!is_dir(sub)) {
      err_set(e, EXIT_RUNTIME, "%s: no *.safetensors files (and no original/ subdirectory)",
              dir);
      free(sub);
      goto fail;
    }
    free(c->dir);
    c->dir = sub;
    free_list(list, n);
    if (list_safetensors(c->dir, &list, &n, e) != 0) goto fail;
    if (n == 0) {
      err_set(e, EXIT_RUNTIME, "%s: no *.safetensors files in the directory nor in %s", dir,
              c->dir);
      goto fail;
    }
  }
  if (!(c->config_path = path_join(c->dir, "config.json"))) goto oom;
  if (!(c->files = calloc(n, sizeof *c->files))) goto oom;
  for (size_t i = 0; i < n; i++) {
    if (st_file_open(list[i], &c->files[i], e) != 0) goto fail;
    c->n_files++;
  }
  free_list(list, n);
  list = NULL;
  n = 0;
  if (build_catalog(c, e) != 0) goto fail;
  *out = c;
  return 0;
oom:
  err_set(e, EXIT_RUNTIME, "%s: out of memory", dir);
fail:
  free_list(list, n);
  ckpt_close(c);
  return -1;
}

void ckpt_close(ckpt *c) {
  if (!c) return;
  for (size_t i = 0; i < c->n_files; i++) st_file_close(c->files[i]);
  free(c->files);
  free(c->tensors);
  free(c->config_path);
  free(c->dir);
  free(c);
}

const gpt_config *ckpt_config(const ckpt *c) { return &c->cfg; }
ckpt_layout ckpt_get_layout(const ckpt *c) { return c->layout; }
const char *ckpt_dir(const ckpt *c) { return c->dir; }
const char *ckpt_config_path(const ckpt *c) { return c->config_path; }
const char *ckpt_defaulted_keys(const ckpt *c) { return c->defaulted; }
size_t ckpt_n_files(const ckpt *c) { return c->n_files; }
const st_file *ckpt_file(const ckpt *c, size_t i) { return i < c->n_files ? c->files[i] : NULL; }

size_t ckpt_input_paths(const ckpt *c, const char **out, size_t cap) {
  size_t n = 0;
  if (n < cap) out[n++] = c->dir;
  if (n < cap) out[n++] = c->config_path;
  for (size_t i = 0; i < c->n_files && n < cap; i++) out[n++] = st_file_path(c->files[i]);
  return n;
}

int ckpt_unchanged(const ckpt *c, err *e) {
  for (size_t i = 0; i < c->n_files; i++)
    if (st_file_unchanged(c->files[i], e) != 0) return -1;
  return 0;
}
void ckpt_release_pages(const ckpt *c) {
  for (size_t i = 0; i < c->n_files; i++) st_file_release_pages(c->files[i]);
}
size_t ckpt_n_tensors(const ckpt *c) { return c->n_tensors; }
const ckpt_tensor *ckpt_tensor_at(const ckpt *c, size_t i) {
  return i < c->n_tensors ? &c->tensors[i] : NULL;
}

const ckpt_tensor *ckpt_tensor_find(const ckpt *c, int layer, ckpt_role role) {
  if ((unsigned)role >= CK_N_ROLES) return NULL;
  if (ckpt_role_is_global(role)) return &c->tensors[role];
  if (layer < 0 || layer >= c->cfg.n_layers) return NULL;
  return &c->tensors[CK_FIRST_LAYER_ROLE + (size_t)layer * CK_N_LAYER_ROLES +
                     (role - CK_FIRST_LAYER_ROLE)];
}

static int ckpt_tensor_rows_f32_unguarded(const ckpt_tensor *t, int64_t row0, int64_t n_rows, float *out,
                         err *e) {
  if (t->dtype != ST_BF16)
    return err_set(e, EXIT_RUNTIME, "%s: dtype %s, expected BF16 for fp32 conversion", t->name,
                   st_dtype_name(t->dtype));
  int64_t cols = 1;
  for (int i = 1; i < t->n_dims; i++) cols *= t->shape[i];
  const int64_t rows = t->shape[0];
  if (row0 < 0 || n_rows < 0 || row0 > rows || n_rows > rows - row0)
    return err_set(e, EXIT_RUNTIME, "%s: rows [%lld, %lld) out of range [0, %lld)", t->name,
                   (long long)row0, (long long)(row0 + n_rows), (long long)rows);
  int64_t base = 0;   /* first logical row of part p */
  for (int p = 0; p < t->n_parts && n_rows > 0; p++) {
    const st_tensor *s = t->part[p];
    const int64_t pr = s->shape[0];
    if (row0 < base + pr) {
      const int64_t r0 = row0 - base, nr = n_rows < pr - r0 ? n_rows : pr - r0;
      /* memcpy loads: data_offsets need not be even; the compiler makes this a vector loop */
      const uint8_t *b = (const uint8_t *)s->data + (size_t)(r0 * cols) * 2;
      for (int64_t i = 0; i < nr * cols; i++) {
        uint16_t h;
        memcpy(&h, b + 2 * i, sizeof h);
        out[i] = st_bf16_to_f32(h);
      }
      out += nr * cols;
      row0 += nr;
      n_rows -= nr;
    }
    base += pr;
  }
  return 0;
}

typedef struct {
  const ckpt_tensor *t;
  int64_t row0, n_rows;
  float *out;
  err *e;
} ckpt_tensor_rows_f32_args;

static int ckpt_tensor_rows_f32_call(void *p) {
  ckpt_tensor_rows_f32_args *a = p;
  return ckpt_tensor_rows_f32_unguarded(a->t, a->row0, a->n_rows, a->out, a->e);
}

int ckpt_tensor_rows_f32(const ckpt_tensor *t, int64_t row0, int64_t n_rows, float *out,
                         err *e) {
  ckpt_tensor_rows_f32_args a = {t, row0, n_rows, out, e};
  const char *bad = NULL;
  const int rc = guard_mapped_call(ckpt_tensor_rows_f32_call, &a, &bad);
  return rc == -2 ? guard_bus_error(e, bad) : rc;
}

int ckpt_tensor_f32(const ckpt_tensor *t, float *out, err *e) {
  return ckpt_tensor_rows_f32(t, 0, t->shape[0], out, e);
}
