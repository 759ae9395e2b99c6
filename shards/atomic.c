/* One commit path for files and directories, and checked file I/O (atomic.h). */
#include "atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guard.h"

struct atomic_out {
  int fd;                    /* staged file; -1 for a directory or once closed */
  int is_dir, sealed;
  char target[PATH_MAX];
  char staged[PATH_MAX];
  char parent[PATH_MAX];
};

/* ------------------------------------------------------------------ plain I/O */

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

ssize_t fs_pread_full(int fd, void *buf, size_t n, uint64_t off) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    got += (size_t)r;
  }
  return (ssize_t)got;
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

int fs_open_regular(const char *path, const char *what, err *e) {
  /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return err_set(e, EXIT_RUNTIME, "%s: %s is missing", path, what), -1;
    return err_errno(e, errno, "%s: cannot open %s", path, what), -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int saved = errno;
    close(fd);
    return err_errno(e, saved, "%s: cannot stat %s", path, what), -1;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return err_set(e, EXIT_RUNTIME, "%s: %s is %s, not a regular file", path, what,
                   S_ISDIR(st.st_mode)    ? "a directory"
                   : S_ISFIFO(st.st_mode) ? "a FIFO"
                   : S_ISCHR(st.st_mode)  ? "a character device"
                   : S_ISBLK(st.st_mode)  ? "a block device"
                   : S_ISSOCK(st.st_mode) ? "a socket"
                                          : "special"), -1;
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  return fd;
}

int fs_read_file(const char *path, const char *what, size_t max_bytes, char **data, size_t *len,
                 err *e) {
  *data = NULL;
  *len = 0;
  int fd = fs_open_regular(path, what, e);
  if (fd < 0) return -1;
  struct stat st;
  if (fstat(fd, &st) != 0 || (uint64_t)st.st_size > max_bytes) {
    close(fd);
    return err_set(e, EXIT_RUNTIME, "%s: %s is larger than %zu bytes", path, what, max_bytes);
  }
  size_t cap = (size_t)st.st_size + 1, n = 0;
  char *buf = malloc(cap + 1);
  if (!buf) {
    close(fd);
    return err_set(e, EXIT_RUNTIME, "%s: out of memory reading %s", path, what);
  }
  /* read up to one byte more than the size said: a file that grows is caught below */
  for (;;) {
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int saved = errno;
      free(buf);
      close(fd);
      return err_errno(e, saved, "%s: cannot read %s", path, what);
    }
    if (r == 0) break;
    n += (size_t)r;
    if (n == cap) {
      free(buf);
      close(fd);
      return err_set(e, EXIT_RUNTIME, "%s: %s changed while it was read", path, what);
    }
  }
  close(fd);
  buf[n] = '\0';
  *data = buf;
  *len = n;
  return 0;
}

/* ------------------------------------------------------------------ staging */

/* target (trailing slashes dropped) -> parent directory and staged name "<parent>/.<base>.tmp.<pid>" */
static int names(atomic_out *o, const char *target, long pid, err *e) {
  size_t n = strlen(target);
  while (n > 1 && target[n - 1] == '/') n--;
  if (n == 0 || n >= sizeof o->target)
    return err_set(e, EXIT_USAGE, "output path '%.100s' is empty or too long", target);
  memcpy(o->target, target, n);
  o->target[n] = '\0';
  const char *slash = strrchr(o->target, '/');
  const char *base = slash ? slash + 1 : o->target;
  if (!slash) snprintf(o->parent, sizeof o->parent, ".");
  else if (slash == o->target) snprintf(o->parent, sizeof o->parent, "/");
  else snprintf(o->parent, sizeof o->parent, "%.*s", (int)(slash - o->target), o->target);
  if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
    return err_set(e, EXIT_USAGE, "%s: an output needs a name of its own (not '.', '..' or '/')",
                   o->target);
  if ((size_t)snprintf(o->staged, sizeof o->staged, "%s/.%s.tmp.%ld", o->parent, base,
                       pid ? pid : (long)getpid()) >= sizeof o->staged)
    return err_set(e, EXIT_USAGE, "%s: path too long", o->target);
  return 0;
}

static int stage(const char *target, int is_dir, long pid, atomic_out **out, err *e) {
  *out = NULL;
  atomic_out *o = calloc(1, sizeof *o);
  if (!o) return err_set(e, EXIT_RUNTIME, "%s: out of memory", target);
  o->fd = -1;
  o->is_dir = is_dir;
  if (names(o, target, pid, e) != 0) {
    free(o);
    return -1;
  }
  if (guard_add_output(o->staged) != 0) {
    free(o);
    return err_set(e, EXIT_RUNTIME, "%s: too many outputs staged at once", target);
  }
  int rc = -1;
  for (int attempt = 0; attempt < 2 && rc != 0; attempt++) {
    /* a staged name left by a killed process that had our pid is ours to replace */
    if (attempt) guard_remove_tree(o->staged);
    if (is_dir)
      rc = mkdir(o->staged, 0755);
    else
      rc = (o->fd = open(o->staged, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0 ? -1 : 0;
    if (rc != 0 && errno != EEXIST) break;
  }
  if (rc != 0) {
    err_errno(e, errno, "%s: cannot create the temporary %s %s", o->target,
              is_dir ? "directory" : "file", o->staged);
    guard_drop_output(o->staged);
    free(o);
    return -1;
  }
  *out = o;
  return 0;
}

int atomic_stage_file(const char *target, atomic_out **out, err *e) {
  return stage(target, 0, 0, out, e);
}

int atomic_stage_dir(const char *target, long pid, atomic_out **out, err *e) {
  return stage(target, 1, pid, out, e);
}

const char *atomic_path(const atomic_out *o) { return o->staged; }
const char *atomic_target(const atomic_out *o) { return o->target; }
int atomic_fd(const atomic_out *o) { return o->fd; }

int atomic_write(atomic_out *o, const void *data, size_t n, err *e) {
  return fs_write_all(o->fd, data, n, o->target, e);
}

int atomic_pwrite(atomic_out *o, const void *data, size_t n, uint64_t off, err *e) {
  return fs_pwrite_all(o->fd, data, n, off, o->target, e);
}

void atomic_abort(atomic_out *o) {
  if (!o) return;
  if (o->fd >= 0) close(o->fd);
  guard_remove_tree(o->staged);
  guard_drop_output(o->staged);
  free(o);
}

int atomic_seal(atomic_out *o, err *e) {
  if (o->sealed) return 0;
  int rc = 0;
  if (o->is_dir) {
    rc = fs_fsync_dir(o->staged, e);
  } else {
    if (fsync(o->fd) != 0) rc = err_errno(e, errno, "%s: fsync of %s failed", o->target, o->staged);
    if (close(o->fd) != 0 && rc == 0)
      rc = err_errno(e, errno, "%s: close of %s failed", o->target, o->staged);
    o->fd = -1;
  }
  if (rc != 0) {
    atomic_abort(o);
    return -1;
  }
  o->sealed = 1;
  return 0;
}

/* Undo a rename that could not be made durable: target back to the staged name, then removed. */
static void unpublish(atomic_out *o) {
  if (rename(o->target, o->staged) != 0) guard_remove_tree(o->target);
}

int atomic_publish_all(atomic_out **outs, int n, err *e) {
  int rc = 0, renamed = 0; /* outs[0..renamed) are under their target names */
  for (int i = 0; rc == 0 && i < n; i++)
    if (outs[i] && atomic_seal(outs[i], e) != 0) {
      outs[i] = NULL; /* the failed seal removed and freed it */
      rc = -1;
    }
  while (rc == 0 && renamed < n) {
    atomic_out *o = outs[renamed];
    if (o && rename(o->staged, o->target) != 0)
      rc = err_errno(e, errno, "%s: cannot rename %s to it", o->target, o->staged);
    else
      renamed++;
  }
  for (int i = 0; rc == 0 && i < n; i++)
    if (outs[i]) rc = fs_fsync_dir(outs[i]->parent, e);
  for (int i = 0; i < n; i++) {
    if (!outs[i]) continue;
    if (rc != 0) {
      if (i < renamed) unpublish(outs[i]);
      atomic_abort(outs[i]);
    } else {
      guard_drop_output(outs[i]->staged);
      free(outs[i]);
    }
    outs[i] = NULL;
  }
  return rc;
}

int atomic_publish(atomic_out *o, err *e) { return atomic_publish_all(&o, 1, e); }

int atomic_write_file(const char *path, const void *data, size_t n, err *e) {
  atomic_out *o;
  if (atomic_stage_file(path, &o, e) != 0) return -1;
  if (atomic_write(o, data, n, e) != 0) {
    atomic_abort(o);
    return -1;
  }
  return atomic_publish(o, e);
}
