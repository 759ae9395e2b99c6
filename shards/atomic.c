#include "atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct atomic_file {
  int fd;
  char *path;  /* target */
  char *tmp;   /* hidden temporary next to it */
};

int fs_write_all(int fd, const void *data, size_t n, const char *what, err *e) {
  const char *p = data;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return err_errno(e, errno, "%s: write failed", what);
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int fs_pwrite_all(int fd, const void *data, size_t n, uint64_t off, const char *what, err *e) {
  const char *p = data;
  while (n > 0) {
    ssize_t w = pwrite(fd, p, n, (off_t)off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return err_errno(e, errno, "%s: write at offset %llu failed", what, (unsigned long long)off);
    }
    p += w;
    n -= (size_t)w;
    off += (uint64_t)w;
  }
  return 0;
}

int fs_fsync_dir(const char *dir, err *e) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return err_errno(e, errno, "%s: cannot open directory to sync it", dir);
  int rc = fsync(fd);
  int saved = errno;
  close(fd);
  /* Some file systems refuse fsync on directories (EINVAL); the rename is still done. */
  if (rc != 0 && saved != EINVAL) return err_errno(e, saved, "%s: fsync of directory failed", dir);
  return 0;
}

int atomic_open(const char *path, atomic_file **out, err *e) {
  *out = NULL;
  atomic_file *f = calloc(1, sizeof *f);
  char *dcopy = strdup(path), *bcopy = strdup(path);
  if (!f || !dcopy || !bcopy) {
    free(f); free(dcopy); free(bcopy);
    return err_set(e, EXIT_RUNTIME, "%s: out of memory", path);
  }
  const char *dir = dirname(dcopy), *base = basename(bcopy);
  size_t n = strlen(dir) + strlen(base) + 64;
  f->tmp = malloc(n);
  f->path = strdup(path);
  if (!f->tmp || !f->path) {
    free(f->tmp); free(f->path); free(f); free(dcopy); free(bcopy);
    return err_set(e, EXIT_RUNTIME, "%s: out of memory", path);
  }
  snprintf(f->tmp, n, "%s/.%s.tmp.%ld", dir, base, (long)getpid());
  free(dcopy);
  free(bcopy);
  f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (f->fd < 0) {
    int saved = errno;
    err_errno(e, saved, "%s: cannot create temporary file %s", path, f->tmp);
    free(f->tmp); free(f->path); free(f);
    return -1;
  }
  *out = f;
  return 0;
}

int atomic_fd(const atomic_file *f) { return f->fd; }

int atomic_write(atomic_file *f, const void *data, size_t n, err *e) {
  return fs_write_all(f->fd, data, n, f->path, e);
}

int atomic_pwrite(atomic_file *f, const void *data, size_t n, uint64_t off, err *e) {
  return fs_pwrite_all(f->fd, data, n, off, f->path, e);
}

static void atomic_free(atomic_file *f) {
  free(f->tmp);
  free(f->path);
  free(f);
}

void atomic_abort(atomic_file *f) {
  if (!f) return;
  if (f->fd >= 0) close(f->fd);
  unlink(f->tmp);
  atomic_free(f);
}

int atomic_commit(atomic_file *f, err *e) {
  if (fsync(f->fd) != 0) {
    err_errno(e, errno, "%s: fsync failed", f->path);
    atomic_abort(f);
    return -1;
  }
  int rc = close(f->fd);
  f->fd = -1;
  if (rc != 0) {
    err_errno(e, errno, "%s: close failed", f->path);
    atomic_abort(f);
    return -1;
  }
  if (rename(f->tmp, f->path) != 0) {
    err_errno(e, errno, "%s: rename from %s failed", f->path, f->tmp);
    atomic_abort(f);
    return -1;
  }
  char *dcopy = strdup(f->path);
  int drc = dcopy ? fs_fsync_dir(dirname(dcopy), e) : err_set(e, EXIT_RUNTIME, "out of memory");
  free(dcopy);
  if (drc != 0) unlink(f->path); /* the rename is not durable: leave nothing that looks done */
  atomic_free(f);
  return drc;
}

int atomic_write_file(const char *path, const void *data, size_t n, err *e) {
  atomic_file *f;
  if (atomic_open(path, &f, e) != 0) return -1;
  if (atomic_write(f, data, n, e) != 0) {
    atomic_abort(f);
    return -1;
  }
  return atomic_commit(f, e);
}
