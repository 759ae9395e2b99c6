/* Writing an exported model's files (export_write.h). */
#define _GNU_SOURCE /* fdatasync, nanosleep */
#include "export_write.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic.h"
#include "export_client.h"
#include "export_graph.h"
#include "guard.h"
#include "xxh64.h"

/* Running byte count of one rank's share across its tensors (export_layout_write counts per call). */
typedef struct {
  export_progress_fn fn;
  void *ctx;
  uint64_t base;
} share_progress;

static void share_chunk(void *ctx, uint64_t bytes) {
  share_progress *sp = ctx;
  sp->fn(sp->ctx, sp->base + bytes);
}

int export_dir_init(const char *dir, err *e) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", dir, EXPORT_MODEL_DIR);
  if (mkdir(path, 0755) != 0) return err_errno(e, errno, "%s: cannot create", path);
  return 0;
}

int export_graph_write(const export_layout *L, const char *dir, uint64_t *n_bytes,
                       size_t *n_nodes, err *e) {
  onnx_graph *g = NULL;
  char path[PATH_MAX];
  uint64_t nb = 0;
  snprintf(path, sizeof path, "%s/%s", dir, EXPORT_MODEL_FILE);
  if (export_graph_build(L, &g, e) != 0) return -1;
  if (n_nodes) *n_nodes = onnx_graph_n_nodes(g);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  int rc = fd < 0 ? err_errno(e, errno, "%s: cannot create", path) : 0;
  if (rc == 0)
    rc = onnx_model_write_fd(g, EXPORT_IR_VERSION, EXPORT_OPSET, "gptoss-mpi", GPTOSS_VERSION, fd,
                             path, &nb, e);
  if (fd >= 0 && rc == 0 && fsync(fd) != 0) rc = err_errno(e, errno, "%s: fsync", path);
  if (fd >= 0 && close(fd) != 0 && rc == 0) rc = err_errno(e, errno, "%s: close", path);
  if (n_bytes) *n_bytes = nb;
  onnx_graph_free(g);
  /* the model's directory entries (graph and data files) */
  snprintf(path, sizeof path, "%s/%s", dir, EXPORT_MODEL_DIR);
  if (rc == 0) rc = fs_fsync_dir(path, e);
  return rc;
}

/* Scratch of one writer: bounded chunks, never a whole tensor in memory (the plan counts it:
 * PLAN_EXPORT_PEAK_BYTES). */
#define EXPORT_CHUNK ((unsigned)PLAN_EXPORT_CHUNK_BYTES)

int export_dir_prepare(const export_layout *L, const char *dir, err *e) {
  char path[PATH_MAX + 64], f[64];
  snprintf(path, sizeof path, "%s/%s", dir, EXPORT_MODEL_DIR);
  if (mkdir(path, 0755) != 0 && errno != EEXIST) return err_errno(e, errno, "%s: cannot create", path);
  /* what a stopped run may have left besides the data: a graph (written last, O_EXCL), hidden
   * temporary files of the client files; all rewritten */
  for (int sub = 0; sub < 2; sub++) {
    snprintf(path, sizeof path, "%s%s%s", dir, sub ? "/" : "", sub ? EXPORT_MODEL_DIR : "");
    DIR *dp = opendir(path);
    if (!dp) return err_errno(e, errno, "%s: cannot list", path);
    for (struct dirent *de; (de = readdir(dp));) {
      if (de->d_name[0] != '.' || !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
      char p2[PATH_MAX + 400];
      snprintf(p2, sizeof p2, "%s/%s", path, de->d_name);
      guard_remove_tree(p2);
    }
    closedir(dp);
  }
  snprintf(path, sizeof path, "%s/%s", dir, EXPORT_MODEL_FILE);
  if (unlink(path) != 0 && errno != ENOENT) return err_errno(e, errno, "%s: cannot remove", path);
  if (L->o.per_rank_files) return 0;
  export_layout_file_name(L, 0, f, sizeof f);
  snprintf(path, sizeof path, "%s/%s", dir, f);
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  int rc = fd < 0 ? err_errno(e, errno, "%s: cannot create", path) : 0;
  struct stat st;
  if (rc == 0 && fstat(fd, &st) != 0) rc = err_errno(e, errno, "%s: cannot stat", path);
  if (rc == 0 && (uint64_t)st.st_size != L->file_bytes[0] && ftruncate(fd, (off_t)L->file_bytes[0]) != 0)
    rc = err_errno(e, errno, "%s: cannot size it to %llu bytes", path,
                   (unsigned long long)L->file_bytes[0]);
  if (fd >= 0 && close(fd) != 0 && rc == 0) rc = err_errno(e, errno, "%s: close", path);
  return rc;
}

/* XXH64 of bytes [off, off + len) of fd: 0, 1 when the file is shorter, -1 on a read error. */
static int piece_hash(int fd, uint64_t off, uint64_t len, void *buf, size_t cap, uint64_t *h,
                      const char *path, err *e) {
  xxh64_state s;
  xxh64_init(&s, 0);
  for (uint64_t done = 0; done < len;) {
    const size_t n = len - done < cap ? (size_t)(len - done) : cap;
    const ssize_t r = fs_pread_full(fd, buf, n, off + done);
    if (r < 0) return err_errno(e, errno, "%s: cannot read back bytes at offset %llu", path,
                                (unsigned long long)(off + done));
    if ((size_t)r != n) return 1;
    xxh64_update(&s, buf, n);
    done += n;
  }
  *h = xxh64_digest(&s);
  return 0;
}

/* Pieces of the journal: a whole tensor, or one expert's slice of an expert tensor that the
 * ranks of a stage split (single data file); the same for every rank count. */
static uint64_t piece_bytes(const export_layout *L, const exl_tensor *t, uint64_t b0, uint64_t b1) {
  const int split = !L->o.per_rank_files && t->expert_major && t->layer >= 0;
  return split ? t->n_bytes / (uint64_t)t->dims[0] : b1 - b0;
}

static void throttle(long ms) {
  if (ms <= 0) return;
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

int export_write_share(const ckpt *ck, const export_layout *L, const plan *p, int rank,
                       const char *dir, export_progress_fn fn, void *ctx, export_resume *res,
                       err *e) {
  const uint64_t mine = export_layout_rank_bytes(L, p, rank);
  if (mine == 0) return 0;
  char path[PATH_MAX], f[64];
  const int file = L->o.per_rank_files ? rank : 0;
  export_layout_file_name(L, file, f, sizeof f);
  snprintf(path, sizeof path, "%s/%s", dir, f);
  /* read and write: written pieces are read back for their checksum */
  int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | (L->o.per_rank_files ? O_CREAT : 0), 0644);
  if (fd < 0) return err_errno(e, errno, "%s: cannot open the data file", path);
  struct stat st;
  if (L->o.per_rank_files && (fstat(fd, &st) != 0 || ((uint64_t)st.st_size != L->file_bytes[file] &&
                                                      ftruncate(fd, (off_t)L->file_bytes[file]) != 0))) {
    err_errno(e, errno, "%s: cannot size the data file", path);
    close(fd);
    return -1;
  }
  void *buf = malloc(EXPORT_CHUNK);
  int rc = buf ? 0 : err_set(e, EXIT_RUNTIME, "out of memory (%u MiB write buffer)", EXPORT_CHUNK >> 20);
  share_progress sp = {fn, ctx, 0};
  for (size_t i = 0; rc == 0 && i < L->n_tensors; i++) {
    uint64_t b0, b1;
    export_layout_share(L, p, i, rank, &b0, &b1);
    if (b0 == b1) continue;
    const exl_tensor *t = &L->t[i];
    const uint64_t pb = piece_bytes(L, t, b0, b1);
    const size_t n_pieces = (size_t)((b1 - b0) / pb);
    unsigned char *ok = calloc(n_pieces, 1); /* 1: a journaled piece whose bytes verified */
    if (!ok) {
      rc = err_set(e, EXIT_RUNTIME, "out of memory");
      break;
    }
    for (size_t k = 0; rc == 0 && res && res->done && k < n_pieces; k++) {
      const uint64_t off = t->offset + b0 + k * pb;
      const resume_record *r = resume_records_find(res->done, t->name, t->file, off, pb);
      if (!r) continue;
      uint64_t h = 0;
      const int hr = piece_hash(fd, off, pb, buf, EXPORT_CHUNK, &h, path, e);
      if (hr < 0) rc = -1;
      else if (hr == 0 && h == r->hash) ok[k] = 1;
      else res->n_mismatch++;
      if (ok[k]) {
        res->n_verified++;
        res->verified_bytes += pb;
        sp.base += pb;
        if (fn) fn(ctx, sp.base);
      }
    }
    /* runs of pieces to write: written, synced, read back for their checksums, journaled */
    for (size_t k0 = 0; rc == 0 && k0 < n_pieces;) {
      if (ok[k0]) {
        k0++;
        continue;
      }
      size_t k1 = k0 + 1;
      while (k1 < n_pieces && !ok[k1]) k1++;
      const uint64_t w0 = b0 + k0 * pb, w1 = b0 + k1 * pb;
      rc = export_layout_write(L, ck, i, w0, w1, fd, path, buf, EXPORT_CHUNK,
                               fn ? share_chunk : NULL, &sp, e);
      sp.base += w1 - w0;
      if (rc == 0 && res && res->journal && fdatasync(fd) != 0) rc = err_errno(e, errno, "%s: fdatasync", path);
      resume_record *recs = rc == 0 && res && res->journal ? calloc(k1 - k0, sizeof *recs) : NULL;
      if (rc == 0 && res && res->journal && !recs) rc = err_set(e, EXIT_RUNTIME, "out of memory");
      for (size_t k = k0; rc == 0 && recs && k < k1; k++) {
        resume_record *r = &recs[k - k0];
        snprintf(r->name, sizeof r->name, "%s", t->name);
        r->file = t->file;
        r->offset = t->offset + b0 + k * pb;
        r->length = pb;
        const int hr = piece_hash(fd, r->offset, pb, buf, EXPORT_CHUNK, &r->hash, path, e);
        if (hr > 0) rc = err_set(e, EXIT_RUNTIME, "%s: shorter than the layout says after writing '%s'", path, t->name);
        else if (hr < 0) rc = -1;
      }
      if (rc == 0 && recs) rc = resume_journal_append(res->journal, recs, k1 - k0, e);
      free(recs);
      if (rc == 0 && res) {
        res->n_written += k1 - k0;
        res->written_bytes += w1 - w0;
        throttle(res->throttle_ms);
      }
      k0 = k1;
    }
    free(ok);
  }
  free(buf);
  if (rc == 0 && fsync(fd) != 0) rc = err_errno(e, errno, "%s: fsync", path);
  if (close(fd) != 0 && rc == 0) rc = err_errno(e, errno, "%s: close", path);
  return rc;
}

int export_write_local(const ckpt *ck, const export_layout *L, const char *dir, err *e) {
  if (L->o.per_rank_files)
    return err_set(e, EXIT_RUNTIME, "a model written by one process has a single data file");
  char path[PATH_MAX], f[64];
  if (export_dir_init(dir, e) != 0) return -1;
  export_layout_file_name(L, 0, f, sizeof f);
  snprintf(path, sizeof path, "%s/%s", dir, f);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return err_errno(e, errno, "%s: cannot create", path);
  void *buf = malloc(EXPORT_CHUNK);
  int rc = buf ? 0 : err_set(e, EXIT_RUNTIME, "out of memory (%u MiB write buffer)", EXPORT_CHUNK >> 20);
  if (rc == 0 && ftruncate(fd, (off_t)L->file_bytes[0]) != 0)
    rc = err_errno(e, errno, "%s: cannot size", path);
  for (size_t i = 0; rc == 0 && i < L->n_tensors; i++)
    rc = export_layout_write(L, ck, i, 0, L->t[i].n_bytes, fd, path, buf, EXPORT_CHUNK, NULL, NULL, e);
  free(buf);
  if (close(fd) != 0 && rc == 0) rc = err_errno(e, errno, "%s: close", path);
  if (rc == 0) rc = export_graph_write(L, dir, NULL, NULL, e);
  return rc;
}
