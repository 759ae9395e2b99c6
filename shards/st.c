/* safetensors reading: header validation (overflow-checked) and a read-only mapping (st.h). */
#define _GNU_SOURCE
#include "st.h"
#include "guard.h"
#include "quote.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct st_file {
  char *path;
  uint64_t file_size;
  uint64_t data_start;          /* 8 + header length */
  size_t n_tensors;
  st_tensor *tensors;           /* header order; names owned here */
  size_t *by_name;              /* indices sorted by name, for st_file_find */
  void *map;                    /* whole file, or NULL (header-only parse or empty data) */
  size_t map_len;
  /* identity at open, to tell that the file changed while it was read (st_file_unchanged) */
  int have_stat;
  dev_t dev;
  ino_t ino;
  struct timespec mtime;
};

static const char *const dtype_names[ST_N_DTYPES] = {
    "BOOL", "U8", "I8", "F8_E4M3", "F8_E5M2", "U16", "I16", "F16",
    "BF16", "U32", "I32", "F32", "U64", "I64", "F64"};
static const size_t dtype_sizes[ST_N_DTYPES] = {1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 8, 8, 8};

int st_dtype_parse(const char *s) {
  for (int i = 0; i < ST_N_DTYPES; i++)
    if (strcmp(s, dtype_names[i]) == 0) return i;
  return -1;
}

const char *st_dtype_name(st_dtype t) {
  return (unsigned)t < ST_N_DTYPES ? dtype_names[t] : "?";
}

size_t st_dtype_size(st_dtype t) { return (unsigned)t < ST_N_DTYPES ? dtype_sizes[t] : 0; }


/* A JSON number that is an exact non-negative integer below 2^53 (from there on doubles skip
 * integers, so the value written in the file may not be the one we read). */
static int json_u53(const cJSON *v, uint64_t *out) {
  if (!cJSON_IsNumber(v)) return -1;
  double d = v->valuedouble;
  if (!isfinite(d) || d < 0 || d >= 9007199254740992.0 || floor(d) != d) return -1;
  *out = (uint64_t)d;
  return 0;
}


static void describe_entry(const cJSON *v, char *buf, size_t len) {
  if (cJSON_IsNumber(v))
    snprintf(buf, len, "%.17g", v->valuedouble);
  else if (cJSON_IsString(v)) {
    char qb[128];
    snprintf(buf, len, "\"%s\"", quote_name(v->valuestring, qb, sizeof qb));
  } else
    snprintf(buf, len, "%s", quote_json_kind(v));
}

static int parse_tensor(const char *path, const cJSON *item, uint64_t data_size,
                        st_tensor *t, err *e) {
  char qn[128];
  const char *name = quote_name(item->string, qn, sizeof qn);
  if (!cJSON_IsObject(item))
    return err_set(e, EXIT_RUNTIME, "%s: tensor '%s': entry is %s, expected an object "
                   "{dtype, shape, data_offsets}", path, name, quote_json_kind(item));
  const cJSON *dt = NULL, *sh = NULL, *off = NULL;
  for (const cJSON *k = item->child; k; k = k->next) {
    const cJSON **slot = strcmp(k->string, "dtype") == 0          ? &dt
                         : strcmp(k->string, "shape") == 0        ? &sh
                         : strcmp(k->string, "data_offsets") == 0 ? &off
                                                                  : NULL;
    char qk[128];
    if (!slot)
      return err_set(e, EXIT_RUNTIME, "%s: tensor '%s': unknown field '%s' (expected dtype, "
                     "shape, data_offsets)", path, name, quote_name(k->string, qk, sizeof qk));
    if (*slot)
      return err_set(e, EXIT_RUNTIME, "%s: tensor '%s': field '%s' given twice", path, name,
                     k->string);
    *slot = k;
  }
  if (!dt || !sh || !off)
    return err_set(e, EXIT_RUNTIME, "%s: tensor '%s': missing field '%s'", path, name,
                   !dt ? "dtype" : !sh ? "shape" : "data_offsets");

  if (!cJSON_IsString(dt))
    return err_set(e, EXIT_RUNTIME, "%s: tensor '%s': dtype is %s, expected a string", path,
                   name, quote_json_kind(dt));
  int d = st_dtype_parse(dt->valuestring);
  char qd[128];
  if (d < 0)
    return err_set(e, EXIT_RUNTIME, "%s: tensor '%s': unknown dtype '%s' (expected one of "
                   "BOOL, U8, I8, F8_E4M3, F8_E5M2, U16, I16, F16, BF16, U32, I32, F32, U64, "
                   "I64, F64)", path, name, quote_name(dt->valuestring, qd, sizeof qd));
  t->dtype = (st_dtype)d;

  if (!cJSON_IsArray(sh))
    return err_set(e, EXIT_RUNTIME, "%s: tensor '%s': shape is %s, expected an array", path,
                   name, quote_json_kind(sh));
  int n_dims = cJSON_GetArraySize(sh);
  if (n_dims > ST_MAX_DIMS)
    return err_set(e, EXIT_RUNTIME, "%s: tensor '%s': shape has %d dimensions, at most %d "
                   "supported", path, name, n_dims, ST_MAX_DIMS);
  t->n_dims = n_dims;
  uint64_t n_elems = 1;
  int i = 0;
  for (const cJSON *v = sh->child; v; v = v->next, i++) {
    uint64_t dim;
    char found[160];
    if (json_u53(v, &dim) != 0) {
      describe_entry(v, found, sizeof found);
      return err_set(e, EXIT_RUNTIME, "%s: tensor '%s': shape entry %d is %s, expected a "
                     "non-negative integer", path, name, i, found);
    }
    t->shape[i] = (int64_t)dim;
    if (__builtin_mul_overflow(n_elems, dim, &n_elems))
      return err_set(e, EXIT_RUNTIME, "%s: tensor '%s': shape element count overflows 64 bits",
                     path, name);
  }
  t->n_elems = n_elems;
  uint64_t n_bytes;
  if (__builtin_mul_overflow(n_elems, (uint64_t)dtype_sizes[d], &n_bytes))
    return err_set(e, EXIT_RUNTIME, "%s: tensor '%s': byte size overflows 64 bits", path,
                   name);

  if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
    return err_set(e, EXIT_RUNTIME, "%s: tensor '%s': data_offsets must be an array "
                   "[begin, end]", path, name);
  uint64_t b, en;
  if (json_u53(off->child, &b) != 0 || json_u53(off->child->next, &en) != 0)
    return err_set(e, EXIT_RUNTIME, "%s: tensor '%s': data_offsets entries must be "
                   "non-negative integers", path, name);
  if (b > en)
    return err_set(e, EXIT_RUNTIME, "%s: tensor '%s': data_offsets [%llu, %llu) begins after "
                   "it ends", path, name, (unsigned long long)b, (unsigned long long)en);
  if (en - b != n_bytes)
    return err_set(e, EXIT_RUNTIME, "%s: tensor '%s': data [%llu, %llu) holds %llu bytes, but "
                   "%s shape with %llu elements needs %llu", path, name, (unsigned long long)b,
                   (unsigned long long)en, (unsigned long long)(en - b), dtype_names[d],
                   (unsigned long long)n_elems, (unsigned long long)n_bytes);
  if (en > data_size)
    return err_set(e, EXIT_RUNTIME, "%s: tensor '%s': data [%llu, %llu) runs past the end of "
                   "the data section (%llu bytes)", path, name, (unsigned long long)b,
                   (unsigned long long)en, (unsigned long long)data_size);
  t->n_bytes = n_bytes;
  t->file_offset = b;   /* made absolute by the caller */
  return 0;
}

static int cmp_name(const void *a, const void *b, void *ctx) {
  const st_tensor *t = ctx;
  return strcmp(t[*(const size_t *)a].name, t[*(const size_t *)b].name);
}
static int cmp_offset(const void *a, const void *b, void *ctx) {
  const st_tensor *x = (const st_tensor *)ctx + *(const size_t *)a;
  const st_tensor *y = (const st_tensor *)ctx + *(const size_t *)b;
  if (x->file_offset != y->file_offset) return x->file_offset < y->file_offset ? -1 : 1;
  return x->n_bytes < y->n_bytes ? -1 : x->n_bytes > y->n_bytes;
}

static int check_metadata(const char *path, const cJSON *m, err *e) {
  if (!cJSON_IsObject(m))
    return err_set(e, EXIT_RUNTIME, "%s: __metadata__ is %s, expected an object of strings",
                   path, quote_json_kind(m));
  for (const cJSON *v = m->child; v; v = v->next) {
    char qk[128];
    if (!cJSON_IsString(v))
      return err_set(e, EXIT_RUNTIME, "%s: __metadata__ entry '%s' is %s, expected a string",
                     path, quote_name(v->string, qk, sizeof qk), quote_json_kind(v));
  }
  return 0;
}

/* Validate header text (json, len bytes, NUL-terminated by the caller) into f. */
static int parse_json(st_file *f, const char *json, size_t len, err *e) {
  const char *path = f->path;
  const char *end = NULL;
  size_t at;
  const int bad = quote_json_scan(json, len, &at);
  if (bad)
    return err_set(e, EXIT_RUNTIME, "%s: header has a string with %s at byte %zu (names must "
                   "not contain NUL or control characters)", path,
                   bad == 1 ? "an embedded NUL (\\u0000)" : "a raw control character", at);
  cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
  if (!root) {
    const char *at = cJSON_GetErrorPtr();
    long pos = at && at >= json && at <= json + len ? (long)(at - json) : -1;
    return err_set(e, EXIT_RUNTIME, "%s: header is not valid JSON (error near byte %ld of %zu)",
                   path, pos, len);
  }
  int rc = -1;
  size_t n = 0;
  for (const char *p = end; p < json + len; p++)
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
      err_set(e, EXIT_RUNTIME, "%s: header has non-space bytes after the JSON object (at byte "
              "%ld of %zu)", path, (long)(p - json), len);
      goto out;
    }
  if (!cJSON_IsObject(root)) {
    err_set(e, EXIT_RUNTIME, "%s: header is %s, expected a JSON object", path,
            quote_json_kind(root));
    goto out;
  }
  for (const cJSON *it = root->child; it; it = it->next)
    if (strcmp(it->string, "__metadata__") != 0) n++;
  f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
  f->by_name = calloc(n ? n : 1, sizeof *f->by_name);
  if (!f->tensors || !f->by_name) {
    err_set(e, EXIT_RUNTIME, "%s: out of memory for %zu tensor entries", path, n);
    goto out;
  }
  const uint64_t data_size = f->file_size - f->data_start;
  int seen_meta = 0;
  for (const cJSON *it = root->child; it; it = it->next) {
    if (strcmp(it->string, "__metadata__") == 0) {
      if (seen_meta++) {
        err_set(e, EXIT_RUNTIME, "%s: __metadata__ given twice", path);
        goto out;
      }
      if (check_metadata(path, it, e) != 0) goto out;
      continue;
    }
    st_tensor *t = &f->tensors[f->n_tensors];
    if (parse_tensor(path, it, data_size, t, e) != 0) goto out;
    t->file_offset += f->data_start;   /* cannot overflow: both within file_size */
    if (!(t->name = strdup(it->string))) {
      err_set(e, EXIT_RUNTIME, "%s: out of memory", path);
      goto out;
    }
    f->by_name[f->n_tensors] = f->n_tensors;
    f->n_tensors++;
  }

  /* cJSON keeps repeated keys; a repeated tensor name would make lookups ambiguous. */
  qsort_r(f->by_name, n, sizeof *f->by_name, cmp_name, f->tensors);
  for (size_t i = 1; i < n; i++) {
    const char *a = f->tensors[f->by_name[i - 1]].name, *b = f->tensors[f->by_name[i]].name;
    char qa[128];
    if (strcmp(a, b) == 0) {
      err_set(e, EXIT_RUNTIME, "%s: tensor '%s' appears twice in the header", path,
              quote_name(a, qa, sizeof qa));
      goto out;
    }
  }
  if (n > 1) {
    size_t *ord = malloc(n * sizeof *ord);
    if (!ord) {
      err_set(e, EXIT_RUNTIME, "%s: out of memory", path);
      goto out;
    }
    for (size_t i = 0; i < n; i++) ord[i] = i;
    qsort_r(ord, n, sizeof *ord, cmp_offset, f->tensors);
    const st_tensor *far = NULL;   /* the non-empty range reaching furthest so far */
    for (size_t i = 0; i < n; i++) {
      const st_tensor *t = &f->tensors[ord[i]];
      if (t->n_bytes == 0) continue;   /* an empty range overlaps nothing */
      if (far && t->file_offset < far->file_offset + far->n_bytes) {
        char qa[128], qb[128];
        err_set(e, EXIT_RUNTIME, "%s: tensor '%s' data [%llu, %llu) overlaps tensor '%s' data "
                "[%llu, %llu)", path, quote_name(t->name, qa, sizeof qa),
                (unsigned long long)(t->file_offset - f->data_start),
                (unsigned long long)(t->file_offset - f->data_start + t->n_bytes),
                quote_name(far->name, qb, sizeof qb),
                (unsigned long long)(far->file_offset - f->data_start),
                (unsigned long long)(far->file_offset - f->data_start + far->n_bytes));
        free(ord);
        goto out;
      }
      if (!far || t->file_offset + t->n_bytes > far->file_offset + far->n_bytes) far = t;
    }
    free(ord);
  }
  rc = 0;
out:
  cJSON_Delete(root);
  return rc;
}

static st_file *st_new(const char *path, uint64_t file_size, err *e) {
  st_file *f = calloc(1, sizeof *f);
  if (f && !(f->path = strdup(path))) {
    free(f);
    f = NULL;
  }
  if (!f) err_set(e, EXIT_RUNTIME, "%s: out of memory", path);
  else f->file_size = file_size;
  return f;
}

int st_header_parse(const char *path, const uint8_t *buf, size_t buf_len, uint64_t file_size,
                    st_file **out, err *e) {
  *out = NULL;
  if (buf_len > ST_HEADER_MAX)
    return err_set(e, EXIT_RUNTIME, "%s: header length %zu exceeds the limit of %u bytes", path,
                   buf_len, ST_HEADER_MAX);
  if (file_size < 8 || buf_len > file_size - 8)
    return err_set(e, EXIT_RUNTIME, "%s: header length %zu runs past the end of the file "
                   "(%llu bytes)", path, buf_len, (unsigned long long)file_size);
  st_file *f = st_new(path, file_size, e);
  if (!f) return -1;
  f->data_start = 8 + (uint64_t)buf_len;
  /* cJSON reads up to a NUL in some paths; give it a terminated private copy. */
  char *json = malloc(buf_len + 1);
  if (!json) {
    st_file_close(f);
    return err_set(e, EXIT_RUNTIME, "%s: out of memory for a %zu-byte header", path, buf_len);
  }
  memcpy(json, buf, buf_len);
  json[buf_len] = '\0';
  int rc = parse_json(f, json, buf_len, e);
  free(json);
  if (rc != 0) {
    st_file_close(f);
    return -1;
  }
  *out = f;
  return 0;
}

static int pread_full(int fd, void *buf, size_t n, off_t off) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = pread(fd, (char *)buf + done, n - done, off + (off_t)done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return r == 0 ? EIO : errno;
    done += (size_t)r;
  }
  return 0;
}

int st_file_open(const char *path, st_file **out, err *e) {
  *out = NULL;
  /* O_NONBLOCK: a FIFO under a *.safetensors name must be refused (below), not waited on */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return err_errno(e, errno, "%s: cannot open", path);
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    int en = errno;
    close(fd);
    return err_errno(e, en, "%s: cannot stat", path);
  }
  if (!S_ISREG(sb.st_mode)) {
    close(fd);
    return err_set(e, EXIT_RUNTIME, "%s: not a regular file", path);
  }
  const uint64_t size = (uint64_t)sb.st_size;
  if (size < 8) {
    close(fd);
    return err_set(e, EXIT_RUNTIME, "%s: file of %llu bytes is too short for a safetensors "
                   "file (at least 8 bytes of header length)", path, (unsigned long long)size);
  }
  uint8_t lenb[8];
  int rc = pread_full(fd, lenb, 8, 0);
  if (rc != 0) {
    close(fd);
    return err_errno(e, rc, "%s: cannot read the header length", path);
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = (n << 8) | lenb[i];
  if (n > size - 8 || n > ST_HEADER_MAX) {
    close(fd);
    return err_set(e, EXIT_RUNTIME, "%s: header length %llu %s (file has %llu bytes, header "
                   "limit %u)", path, (unsigned long long)n,
                   n > size - 8 ? "runs past the end of the file" : "exceeds the limit",
                   (unsigned long long)size, ST_HEADER_MAX);
  }
  if (size > SIZE_MAX) {
    close(fd);
    return err_set(e, EXIT_RUNTIME, "%s: file of %llu bytes is too large to map", path,
                   (unsigned long long)size);
  }
  uint8_t *hdr = malloc((size_t)n + 1);
  if (!hdr) {
    close(fd);
    return err_set(e, EXIT_RUNTIME, "%s: out of memory for a %llu-byte header", path,
                   (unsigned long long)n);
  }
  rc = pread_full(fd, hdr, (size_t)n, 8);
  if (rc != 0) {
    free(hdr);
    close(fd);
    return err_errno(e, rc, "%s: cannot read the %llu-byte header", path, (unsigned long long)n);
  }
  st_file *f;
  rc = st_header_parse(path, hdr, (size_t)n, size, &f, e);
  free(hdr);
  if (rc != 0) {
    close(fd);
    return -1;
  }
  if (size > f->data_start) {
    void *m = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      int en = errno;
      close(fd);
      st_file_close(f);
      return err_errno(e, en, "%s: cannot map %llu bytes", path, (unsigned long long)size);
    }
    f->map = m;
    f->map_len = (size_t)size;
    guard_add_mapping(m, (size_t)size, f->path); /* a SIGBUS in it names the file */
    for (size_t i = 0; i < f->n_tensors; i++)
      f->tensors[i].data = (const uint8_t *)m + f->tensors[i].file_offset;
  }
  close(fd);   /* the mapping keeps the file */
  f->have_stat = 1;
  f->dev = sb.st_dev;
  f->ino = sb.st_ino;
  f->mtime = sb.st_mtim;
  *out = f;
  return 0;
}

void st_file_release_pages(const st_file *f) {
  if (f && f->map && f->map_len) (void)madvise(f->map, f->map_len, MADV_DONTNEED);
}

int st_file_unchanged(const st_file *f, err *e) {
  if (!f->have_stat) return 0;
  struct stat sb;
  if (stat(f->path, &sb) != 0)
    return err_errno(e, errno, "%s: the checkpoint file changed while it was being read (it is "
                     "gone now)", f->path);
  if (sb.st_dev != f->dev || sb.st_ino != f->ino || (uint64_t)sb.st_size != f->file_size ||
      sb.st_mtim.tv_sec != f->mtime.tv_sec || sb.st_mtim.tv_nsec != f->mtime.tv_nsec)
    return err_set(e, EXIT_RUNTIME, "%s: the checkpoint file changed while it was being read "
                   "(%llu bytes when opened, %llu now%s); nothing computed from it is kept",
                   f->path, (unsigned long long)f->file_size, (unsigned long long)sb.st_size,
                   sb.st_ino != f->ino ? ", replaced by another file" : ", modified");
  return 0;
}

void st_file_close(st_file *f) {
  if (!f) return;
  if (f->map) {
    guard_drop_mapping(f->map);
    munmap(f->map, f->map_len);
  }
  for (size_t i = 0; i < f->n_tensors; i++) free((char *)f->tensors[i].name);
  free(f->tensors);
  free(f->by_name);
  free(f->path);
  free(f);
}

const char *st_file_path(const st_file *f) { return f->path; }
uint64_t st_file_size(const st_file *f) { return f->file_size; }
uint64_t st_file_data_start(const st_file *f) { return f->data_start; }
size_t st_file_n_tensors(const st_file *f) { return f->n_tensors; }

const st_tensor *st_file_tensor(const st_file *f, size_t i) {
  return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const st_tensor *st_file_find(const st_file *f, const char *name) {
  size_t lo = 0, hi = f->n_tensors;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(name, f->tensors[f->by_name[mid]].name);
    if (c == 0) return &f->tensors[f->by_name[mid]];
    if (c < 0) hi = mid;
    else lo = mid + 1;
  }
  return NULL;
}
