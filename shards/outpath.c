/* Checks of output paths before any work (outpath.h). */
#define _GNU_SOURCE
#include "outpath.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* path without trailing slashes -> parent and base (base "" for "/"). */
static void split(const char *path, char *parent, size_t pl, char *base, size_t bl) {
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s", path);
  for (size_t n = strlen(p); n > 1 && p[n - 1] == '/'; n--) p[n - 1] = '\0';
  char *slash = strrchr(p, '/');
  if (!slash) {
    snprintf(parent, pl, ".");
    snprintf(base, bl, "%s", p);
  } else {
    snprintf(base, bl, "%s", slash + 1);
    if (slash == p) snprintf(parent, pl, "/");
    else snprintf(parent, pl, "%.*s", (int)(slash - p), p);
  }
}

/* The resolved absolute path an output will have: realpath(parent)/base. */
static int resolve_out(const outpath *o, char *out, size_t len, err *e) {
  char parent[PATH_MAX], base[PATH_MAX], rp[PATH_MAX];
  if (strlen(o->path) >= PATH_MAX - 1)
    return err_set(e, EXIT_USAGE, "%s %.80s...: path too long", o->what, o->path);
  split(o->path, parent, sizeof parent, base, sizeof base);
  if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
    return err_set(e, EXIT_RUNTIME, "%s %s: cannot be replaced atomically; name a new %s (e.g. "
                   "%s/NAME)", o->what, o->path, o->kind == OUTPATH_DIR ? "directory" : "file",
                   o->path);
  struct stat st;
  if (stat(parent, &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return err_set(e, EXIT_RUNTIME, "%s %s: directory %s does not exist", o->what, o->path, parent);
    return err_errno(e, errno, "%s %s: directory %s", o->what, o->path, parent);
  }
  if (!S_ISDIR(st.st_mode))
    return err_set(e, EXIT_RUNTIME, "%s %s: %s is not a directory", o->what, o->path, parent);
  if (access(parent, W_OK | X_OK) != 0)
    return err_errno(e, errno, "%s %s: cannot write in %s", o->what, o->path, parent);
  if (!realpath(parent, rp)) return err_errno(e, errno, "%s %s: cannot resolve %s", o->what, o->path, parent);
  if ((size_t)snprintf(out, len, "%s/%s", strcmp(rp, "/") ? rp : "", base) >= len)
    return err_set(e, EXIT_USAGE, "%s %s: path too long", o->what, o->path);
  return 0;
}

static const char *kind_of(mode_t m) {
  return S_ISDIR(m) ? "a directory" : S_ISLNK(m) ? "a symbolic link" : S_ISFIFO(m) ? "a FIFO"
         : S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device"
         : S_ISSOCK(m) ? "a socket" : "a regular file";
}

/* An existing output: can the rename replace it? */
static int check_existing(const outpath *o, const struct stat *lst, err *e) {
  if (S_ISLNK(lst->st_mode))
    return err_set(e, EXIT_RUNTIME, "%s %s is a symbolic link; give the path it points to (the "
                   "output replaces its target by a rename, which would replace the link)", o->what,
                   o->path);
  if (o->kind == OUTPATH_FILE) {
    if (!S_ISREG(lst->st_mode))
      return err_set(e, EXIT_RUNTIME, "%s %s is %s; outputs are regular files (refusing to "
                     "replace it)", o->what, o->path, kind_of(lst->st_mode));
    return 0;
  }
  if (!S_ISDIR(lst->st_mode))
    return err_set(e, EXIT_RUNTIME, "%s %s exists and is %s, not a directory; refusing to "
                   "overwrite it", o->what, o->path, kind_of(lst->st_mode));
  DIR *d = opendir(o->path);
  if (!d) return err_errno(e, errno, "%s %s", o->what, o->path);
  struct dirent *de;
  int n = 0;
  while ((de = readdir(d)))
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
  closedir(d);
  if (n)
    return err_set(e, EXIT_RUNTIME, "%s %s exists and is not empty; refusing to overwrite it "
                   "(remove it or choose another directory)", o->what, o->path);
  char parent[PATH_MAX], base[PATH_MAX];
  split(o->path, parent, sizeof parent, base, sizeof base);
  struct stat pst, cwd;
  if (stat(parent, &pst) == 0 && pst.st_dev != lst->st_dev)
    return err_set(e, EXIT_RUNTIME, "%s %s is a mount point, which a rename cannot replace; "
                   "name a new directory inside it", o->what, o->path);
  if (stat(".", &cwd) == 0 && cwd.st_dev == lst->st_dev && cwd.st_ino == lst->st_ino)
    return err_set(e, EXIT_RUNTIME, "%s %s is the current directory, which a rename cannot "
                   "replace; name a new directory", o->what, o->path);
  return 0;
}

int outpath_check(const outpath *out, int n, const char *const *in, int n_in, err *e) {
  char (*res)[PATH_MAX] = calloc((size_t)(n > 0 ? n : 1), PATH_MAX);
  if (!res) return err_set(e, EXIT_RUNTIME, "out of memory");
  int rc = 0;
  for (int i = 0; rc == 0 && i < n; i++) {
    const outpath *o = &out[i];
    if (!o->path) continue;
    if (!*o->path) {
      rc = err_set(e, EXIT_USAGE, "%s: empty path", o->what);
      break;
    }
    if ((rc = resolve_out(o, res[i], PATH_MAX, e)) != 0) break;
    struct stat lst;
    const int exists = lstat(o->path, &lst) == 0;
    if (!exists && errno != ENOENT) {
      rc = err_errno(e, errno, "%s %s", o->what, o->path);
      break;
    }
    /* the same file first (the sharper message), then inside an input directory */
    for (int pass = 0; pass < 2; pass++)
      for (int k = 0; rc == 0 && k < n_in; k++) {
        if (!in[k]) continue;
        char ri[PATH_MAX];
        struct stat ist;
        if (!realpath(in[k], ri) || stat(in[k], &ist) != 0) continue; /* the reader reports it */
        const size_t rl = strlen(ri);
        const int same = !strcmp(ri, res[i]) ||
                         (exists && !S_ISLNK(lst.st_mode) && lst.st_dev == ist.st_dev &&
                          lst.st_ino == ist.st_ino);
        if (pass == 0 && same)
          rc = err_set(e, EXIT_USAGE, "%s %s is an input of this command (%s); refusing to "
                       "overwrite it", o->what, o->path, in[k]);
        else if (pass == 1 && S_ISDIR(ist.st_mode) && !strncmp(res[i], ri, rl) && res[i][rl] == '/')
          rc = err_set(e, EXIT_USAGE, "%s %s is inside the input directory %s; refusing to "
                       "write there", o->what, o->path, in[k]);
      }
    for (int j = 0; rc == 0 && j < i; j++)
      if (out[j].path && !strcmp(res[i], res[j]))
        rc = err_set(e, EXIT_USAGE, "%s %s and %s %s are the same file; every output needs its "
                     "own path", out[j].what, out[j].path, o->what, o->path);
    if (rc == 0 && exists) rc = check_existing(o, &lst, e);
  }
  free(res);
  return rc;
}
