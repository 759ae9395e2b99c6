/* Writing an exported model's files (export_write.h). */
#include "export_write.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic.h"
#include "export_client.h"
#include "export_graph.h"

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

/* Scratch of one writer: bounded chunks, never a whole tensor in memory. */
#define EXPORT_CHUNK (16u << 20)

int export_dir_stage(const export_layout *L, const char *output, long pid, atomic_out **out,
                     err *e) {
  if (atomic_stage_dir(output, pid, out, e) != 0) return -1;
  if (export_dir_init(atomic_path(*out), e) != 0) {
    atomic_abort(*out);
    *out = NULL;
    return -1;
  }
  if (L->o.per_rank_files) return 0;
  char path[PATH_MAX], f[64];
  export_layout_file_name(L, 0, f, sizeof f);
  snprintf(path, sizeof path, "%s/%s", atomic_path(*out), f);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  int rc = fd < 0 ? err_errno(e, errno, "%s: cannot create", path) : 0;
  if (rc == 0 && ftruncate(fd, (off_t)L->file_bytes[0]) != 0)
    rc = err_errno(e, errno, "%s: cannot size it to %llu bytes", path,
                   (unsigned long long)L->file_bytes[0]);
  if (fd >= 0 && close(fd) != 0 && rc == 0) rc = err_errno(e, errno, "%s: close", path);
  if (rc != 0) {
    atomic_abort(*out);
    *out = NULL;
  }
  return rc;
}

int export_write_share(const ckpt *ck, const export_layout *L, const plan *p, int rank,
                       const char *dir, export_progress_fn fn, void *ctx, err *e) {
  const uint64_t mine = export_layout_rank_bytes(L, p, rank);
  if (mine == 0) return 0;
  char path[PATH_MAX], f[64];
  const int file = L->o.per_rank_files ? rank : 0;
  export_layout_file_name(L, file, f, sizeof f);
  snprintf(path, sizeof path, "%s/%s", dir, f);
  int fd;
  if (L->o.per_rank_files) {
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0 && ftruncate(fd, (off_t)L->file_bytes[file]) != 0) {
      err_errno(e, errno, "%s: cannot size the data file", path);
      close(fd);
      return -1;
    }
  } else {
    fd = open(path, O_WRONLY | O_CLOEXEC);
  }
  if (fd < 0) return err_errno(e, errno, "%s: cannot open the data file", path);
  void *buf = malloc(EXPORT_CHUNK);
  int rc = buf ? 0 : err_set(e, EXIT_RUNTIME, "out of memory (%u MiB write buffer)", EXPORT_CHUNK >> 20);
  share_progress sp = {fn, ctx, 0};
  for (size_t i = 0; rc == 0 && i < L->n_tensors; i++) {
    uint64_t b0, b1;
    export_layout_share(L, p, i, rank, &b0, &b1);
    if (b0 == b1) continue;
    rc = export_layout_write(L, ck, i, b0, b1, fd, path, buf, EXPORT_CHUNK, fn ? share_chunk : NULL,
                             &sp, e);
    sp.base += b1 - b0;
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
