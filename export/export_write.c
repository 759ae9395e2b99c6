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

#define LOCAL_CHUNK (16u << 20)

int export_write_local(const ckpt *ck, const export_layout *L, const char *dir, err *e) {
  if (L->o.per_rank_files)
    return err_set(e, EXIT_RUNTIME, "a model written by one process has a single data file");
  char path[PATH_MAX], f[64];
  if (export_dir_init(dir, e) != 0) return -1;
  export_layout_file_name(L, 0, f, sizeof f);
  snprintf(path, sizeof path, "%s/%s", dir, f);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return err_errno(e, errno, "%s: cannot create", path);
  void *buf = malloc(LOCAL_CHUNK);
  int rc = buf ? 0 : err_set(e, EXIT_RUNTIME, "out of memory (%u MiB write buffer)", LOCAL_CHUNK >> 20);
  if (rc == 0 && ftruncate(fd, (off_t)L->file_bytes[0]) != 0)
    rc = err_errno(e, errno, "%s: cannot size", path);
  for (size_t i = 0; rc == 0 && i < L->n_tensors; i++)
    rc = export_layout_write(L, ck, i, 0, L->t[i].n_bytes, fd, path, buf, LOCAL_CHUNK, NULL, NULL, e);
  free(buf);
  if (close(fd) != 0 && rc == 0) rc = err_errno(e, errno, "%s: close", path);
  if (rc == 0) rc = export_graph_write(L, dir, NULL, NULL, e);
  return rc;
}

void export_dir_remove(const char *dir, const export_layout *L) {
  char p[PATH_MAX], f[64];
  snprintf(p, sizeof p, "%s/%s", dir, EXPORT_MODEL_FILE);
  unlink(p);
  for (int i = 0; i < EXPORT_N_CLIENT_FILES; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, export_client_files[i]);
    unlink(p);
  }
  for (int i = 0; L && i < L->n_files; i++) {
    export_layout_file_name(L, i, f, sizeof f);
    snprintf(p, sizeof p, "%s/%s", dir, f);
    unlink(p);
  }
  snprintf(p, sizeof p, "%s/%s", dir, EXPORT_MODEL_DIR);
  rmdir(p);
  rmdir(dir);
}
