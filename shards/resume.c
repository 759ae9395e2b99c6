/* The unfinished state of a resumable output directory (resume.h). */
#define _GNU_SOURCE
#include "resume.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic.h"
#include "guard.h"
#include "xxh64.h"

#define MANIFEST_NAME "manifest"
#define LOCK_NAME "lock"
#define JOURNAL_PREFIX "journal."
#define MANIFEST_MAX (256u << 20)
#define JOURNAL_MAX (1u << 30)

struct resume_dir {
  char target[PATH_MAX], partial[PATH_MAX], parent[PATH_MAX];
  int lock_fd, created;
};

static int split_target(const char *target, char *t, char *parent, size_t len, err *e) {
  size_t n = strlen(target);
  while (n > 1 && target[n - 1] == '/') n--;
  if (n == 0 || n + 16 >= len) return err_set(e, EXIT_USAGE, "output path '%.100s' is empty or too long", target);
  memcpy(t, target, n);
  t[n] = '\0';
  const char *slash = strrchr(t, '/');
  if (!slash) snprintf(parent, len, ".");
  else if (slash == t) snprintf(parent, len, "/");
  else snprintf(parent, len, "%.*s", (int)(slash - t), t);
  return 0;
}

int resume_partial_path(const char *target, char *buf, size_t len, err *e) {
  char t[PATH_MAX], parent[PATH_MAX];
  if (split_target(target, t, parent, sizeof t, e) != 0) return -1;
  if ((size_t)snprintf(buf, len, "%s.partial", t) >= len)
    return err_set(e, EXIT_USAGE, "%s: path too long", target);
  return 0;
}

const char *resume_dir_path(const resume_dir *d) { return d->partial; }
int resume_dir_created(const resume_dir *d) { return d->created; }

/* flock the lock file of dir (created if missing) and write who holds it; -1 if held elsewhere */
static int lock_take(resume_dir *d, const char *dir, err *e) {
  char path[PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/%s", dir, LOCK_NAME);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return err_errno(e, errno, "%s: cannot open the lock file", path);
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int saved = errno;
    char who[256] = "";
    ssize_t r = pread(fd, who, sizeof who - 1, 0);
    who[r > 0 ? r : 0] = '\0';
    who[strcspn(who, "\n")] = '\0';
    close(fd);
    if (saved == EWOULDBLOCK)
      return err_set(e, EXIT_RUNTIME, "%s is being written by another export (%s): two jobs cannot "
                     "write the same directory; wait for it or stop it", d->partial,
                     who[0] ? who : "holder unknown");
    return err_errno(e, saved, "%s: cannot lock", path);
  }
  char host[128] = "?", who[256];
  gethostname(host, sizeof host - 1);
  host[sizeof host - 1] = '\0';
  int n = snprintf(who, sizeof who, "host %s, pid %ld\n", host, (long)getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, who, (size_t)n, 0) != n) {
    const int saved = errno;
    close(fd);
    return err_errno(e, saved, "%s: cannot write the lock file", path);
  }
  d->lock_fd = fd;
  return 0;
}

/* a fresh OUT.partial: staged under a hidden name with its manifest and lock, then renamed */
static int create_fresh(resume_dir *d, const char *manifest, err *e) {
  char staged[PATH_MAX + 64], path[PATH_MAX + 80];
  const char *base = strrchr(d->partial, '/') ? strrchr(d->partial, '/') + 1 : d->partial;
  if ((size_t)snprintf(staged, sizeof staged, "%s/.%s.tmp.%ld", d->parent, base, (long)getpid()) >=
      sizeof staged)
    return err_set(e, EXIT_USAGE, "%s: path too long", d->partial);
  guard_remove_tree(staged); /* a killed process that had our pid left it */
  if (guard_add_output(staged) != 0) return err_set(e, EXIT_RUNTIME, "too many outputs staged at once");
  int rc = 0;
  if (mkdir(staged, 0755) != 0) rc = err_errno(e, errno, "%s: cannot create the temporary directory", staged);
  if (rc == 0) {
    snprintf(path, sizeof path, "%s/%s", staged, MANIFEST_NAME);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) rc = err_errno(e, errno, "%s: cannot create", path);
    if (rc == 0) rc = fs_write_all(fd, manifest, strlen(manifest), path, e);
    if (fd >= 0 && rc == 0 && fsync(fd) != 0) rc = err_errno(e, errno, "%s: fsync", path);
    if (fd >= 0 && close(fd) != 0 && rc == 0) rc = err_errno(e, errno, "%s: close", path);
  }
  if (rc == 0) rc = lock_take(d, staged, e);
  if (rc == 0) rc = fs_fsync_dir(staged, e);
  if (rc == 0 && rename(staged, d->partial) != 0)
    rc = err_errno(e, errno, "%s: cannot rename %s to it (another export made it at the same time?)",
                   d->partial, staged);
  if (rc == 0) rc = fs_fsync_dir(d->parent, e);
  if (rc != 0) {
    if (d->lock_fd >= 0) close(d->lock_fd);
    d->lock_fd = -1;
    guard_remove_tree(staged);
  }
  guard_drop_output(staged);
  d->created = rc == 0;
  return rc;
}

/* the first line where a and b differ, for the message */
static void first_diff(const char *a, const char *b, char *la, char *lb, size_t len) {
  while (*a && *a == *b) {
    const char *na = strchr(a, '\n'), *nb = strchr(b, '\n');
    if (!na || !nb || na - a != nb - b || memcmp(a, b, (size_t)(na - a)) != 0) break;
    a = na + 1;
    b = nb + 1;
  }
  snprintf(la, len, "%.*s", (int)strcspn(a, "\n"), a);
  snprintf(lb, len, "%.*s", (int)strcspn(b, "\n"), b);
}

int resume_dir_open(const char *target, const char *manifest, int resume, resume_dir **out,
                    err *e) {
  *out = NULL;
  resume_dir *d = calloc(1, sizeof *d);
  if (!d) return err_set(e, EXIT_RUNTIME, "out of memory");
  d->lock_fd = -1;
  if (split_target(target, d->target, d->parent, sizeof d->target, e) != 0 ||
      resume_partial_path(target, d->partial, sizeof d->partial, e) != 0) {
    free(d);
    return -1;
  }
  struct stat st;
  int rc = 0;
  if (lstat(d->partial, &st) != 0) {
    if (errno != ENOENT) rc = err_errno(e, errno, "%s: cannot stat", d->partial);
    else rc = create_fresh(d, manifest, e);
  } else if (!S_ISDIR(st.st_mode)) {
    rc = err_set(e, EXIT_RUNTIME, "%s exists and is not a directory (an unfinished export is a "
                 "directory): remove it", d->partial);
  } else if (!resume) {
    rc = err_set(e, EXIT_RUNTIME, "%s exists: an unfinished export of %s; pass --resume to continue "
                 "it, or remove it to start again", d->partial, d->target);
  } else {
    char path[PATH_MAX + 16], *old = NULL;
    size_t n = 0;
    snprintf(path, sizeof path, "%s/%s", d->partial, MANIFEST_NAME);
    rc = lock_take(d, d->partial, e);
    if (rc == 0 && fs_read_file(path, "the manifest of an unfinished export", MANIFEST_MAX, &old, &n, e) != 0)
      rc = err_set(e, EXIT_RUNTIME, "%s: no readable manifest: not an export that can be resumed; "
                   "remove it to start again", d->partial);
    if (rc == 0 && (n != strlen(manifest) || memcmp(old, manifest, n) != 0)) {
      char la[200], lb[200];
      first_diff(old, manifest, la, lb, sizeof la);
      rc = err_set(e, EXIT_USAGE, "--resume: %s was started by a different export (checkpoint, "
                   "options or version): its manifest has '%s' where this one has '%s'; run the "
                   "same command, or remove it to start again", d->partial, la, lb);
    }
    free(old);
  }
  if (rc != 0) {
    resume_dir_close(d, 0);
    return -1;
  }
  *out = d;
  return 0;
}

/* unlink dir/name for every entry starting with prefix (or equal to it) */
static int unlink_prefixed(const char *dir, const char *prefix, int exact, err *e) {
  DIR *dp = opendir(dir);
  if (!dp) return err_errno(e, errno, "%s: cannot list", dir);
  int rc = 0;
  for (struct dirent *de; rc == 0 && (de = readdir(dp));) {
    if (exact ? strcmp(de->d_name, prefix) != 0 : strncmp(de->d_name, prefix, strlen(prefix)) != 0) continue;
    if (unlinkat(dirfd(dp), de->d_name, 0) != 0 && errno != ENOENT)
      rc = err_errno(e, errno, "%s/%s: cannot remove", dir, de->d_name);
  }
  closedir(dp);
  return rc;
}

/* 0 when d's target does not exist or is an empty directory (rename(2) replaces such a one) */
static int target_free(const resume_dir *d, err *e) {
  DIR *dp = opendir(d->target);
  int n = 0;
  if (dp) {
    for (struct dirent *de; (de = readdir(dp));)
      if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) n++;
    closedir(dp);
  }
  if ((dp || errno == ENOENT) && n == 0) return 0;
  return err_set(e, EXIT_RUNTIME, "%s appeared while exporting and is not an empty directory; %s "
                 "is complete and kept: move %s out of the way and rerun with --resume (it "
                 "verifies and publishes)", d->target, d->partial, d->target);
}

/* The bookkeeping goes only once nothing can stop the rename: the target is checked first (a
 * failure keeps the manifest and journals, so --resume still works once the target is out of
 * the way), and stop signals wait until the rename is done (a signal between the unlinks and the
 * rename would strand a complete export that --resume no longer recognizes). */
int resume_dir_publish(resume_dir *d, err *e) {
  int rc = target_free(d, e);
  if (rc != 0) {
    resume_dir_close(d, 0);
    return -1;
  }
  sigset_t stop, old;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGHUP);
  sigaddset(&stop, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &stop, &old);
  rc = unlink_prefixed(d->partial, JOURNAL_PREFIX, 0, e);
  if (rc == 0) rc = unlink_prefixed(d->partial, MANIFEST_NAME, 1, e);
  if (rc == 0) rc = unlink_prefixed(d->partial, LOCK_NAME, 1, e);
  if (rc == 0) rc = fs_fsync_dir(d->partial, e);
  if (rc == 0 && rename(d->partial, d->target) != 0)
    rc = err_errno(e, errno, "%s: cannot rename %s to it (%s holds the complete export: move it "
                   "there by hand)", d->target, d->partial, d->partial);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc == 0) rc = fs_fsync_dir(d->parent, e);
  resume_dir_close(d, 0);
  return rc;
}

void resume_dir_close(resume_dir *d, int remove_tree) {
  if (!d) return;
  if (remove_tree) guard_remove_tree(d->partial);
  if (d->lock_fd >= 0) close(d->lock_fd);
  free(d);
}

/* ------------------------------------------------------------------ journals */

static int rec_cmp(const void *pa, const void *pb) {
  const resume_record *a = pa, *b = pb;
  if (a->file != b->file) return a->file < b->file ? -1 : 1;
  if (a->offset != b->offset) return a->offset < b->offset ? -1 : 1;
  if (a->length != b->length) return a->length < b->length ? -1 : 1;
  return strcmp(a->name, b->name);
}

static int parse_u64(const char **p, int base, uint64_t *v) {
  char *end;
  if (!(**p >= '0' && **p <= '9') && !(base == 16 && ((**p >= 'a' && **p <= 'f')))) return -1;
  errno = 0;
  unsigned long long x = strtoull(*p, &end, base);
  if (errno || end == *p || *end != ' ') return -1;
  *v = x;
  *p = end + 1;
  return 0;
}

/* one line (without its newline) -> r; -1 if it is not a valid record */
static int parse_line(const char *s, size_t n, resume_record *r) {
  char line[512];
  if (n < 40 || n + 2 > sizeof line) return -1; /* room for the ' ' and the NUL below */
  memcpy(line, s, n);
  line[n] = ' '; /* every field, the check included, ends with a space for parse_u64 */
  line[n + 1] = '\0';
  const char *last = line + n - 16;
  if (last[-1] != ' ') return -1;
  const char *q = last;
  uint64_t check;
  if (parse_u64(&q, 16, &check) != 0 || xxh64(line, (size_t)(last - line), RESUME_LINE_SEED) != check)
    return -1;
  const char *sp = strchr(line, ' ');
  if (!sp || sp == line || (size_t)(sp - line) >= sizeof r->name) return -1;
  memcpy(r->name, line, (size_t)(sp - line));
  r->name[sp - line] = '\0';
  const char *p = sp + 1;
  uint64_t file;
  if (parse_u64(&p, 10, &file) != 0 || file > INT32_MAX || parse_u64(&p, 10, &r->offset) != 0 ||
      parse_u64(&p, 10, &r->length) != 0 || parse_u64(&p, 16, &r->hash) != 0 || p != last)
    return -1;
  r->file = (int)file;
  return 0;
}

int resume_records_read(const char *dir, resume_records *out, err *e) {
  memset(out, 0, sizeof *out);
  DIR *dp = opendir(dir);
  if (!dp) return err_errno(e, errno, "%s: cannot list", dir);
  size_t cap = 0;
  int rc = 0;
  for (struct dirent *de; rc == 0 && (de = readdir(dp));) {
    if (strncmp(de->d_name, JOURNAL_PREFIX, strlen(JOURNAL_PREFIX)) != 0) continue;
    char path[PATH_MAX + 300], *text = NULL;
    size_t n = 0;
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    if (fs_read_file(path, "a journal", JOURNAL_MAX, &text, &n, e) != 0) {
      rc = -1;
      break;
    }
    for (size_t a = 0; rc == 0 && a < n;) {
      const char *nl = memchr(text + a, '\n', n - a);
      const size_t len = nl ? (size_t)(nl - (text + a)) : n - a;
      if (out->n == cap) {
        size_t nc = cap ? 2 * cap : 256;
        resume_record *nr = realloc(out->r, nc * sizeof *nr);
        if (!nr) {
          rc = err_set(e, EXIT_RUNTIME, "out of memory (journal records)");
          break;
        }
        out->r = nr;
        cap = nc;
      }
      if (nl && parse_line(text + a, len, &out->r[out->n]) == 0) out->n++;
      else if (len > 0) out->n_ignored++; /* a torn last line has no newline: ignored as well */
      a += len + 1;
    }
    free(text);
  }
  closedir(dp);
  if (rc != 0) {
    resume_records_free(out);
    return -1;
  }
  if (out->n) qsort(out->r, out->n, sizeof *out->r, rec_cmp);
  return 0;
}

const resume_record *resume_records_find(const resume_records *rs, const char *name, int file,
                                         uint64_t offset, uint64_t length) {
  size_t lo = 0, hi = rs->n;
  while (lo < hi) { /* the first record with key >= (file, offset, length) */
    const size_t mid = lo + (hi - lo) / 2;
    const resume_record *m = &rs->r[mid];
    const int less = m->file != file ? m->file < file : m->offset != offset ? m->offset < offset
                                                                            : m->length < length;
    if (less) lo = mid + 1;
    else hi = mid;
  }
  const resume_record *found = NULL;
  for (size_t i = lo; i < rs->n && rs->r[i].file == file && rs->r[i].offset == offset &&
                      rs->r[i].length == length; i++) {
    if (strcmp(rs->r[i].name, name) != 0) return NULL;
    if (found && found->hash != rs->r[i].hash) return NULL;
    found = &rs->r[i];
  }
  return found;
}

void resume_records_free(resume_records *rs) {
  free(rs->r);
  memset(rs, 0, sizeof *rs);
}

int resume_journal_open(const char *dir, int rank, resume_journal *j, err *e) {
  j->fd = -1;
  if ((size_t)snprintf(j->path, sizeof j->path, "%s/%s%d", dir, JOURNAL_PREFIX, rank) >= sizeof j->path)
    return err_set(e, EXIT_USAGE, "%s: path too long", dir);
  int fd = open(j->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return err_errno(e, errno, "%s: cannot open the journal", j->path);
  struct stat st;
  char last = '\n';
  if (fstat(fd, &st) != 0) {
    close(fd);
    return err_errno(e, errno, "%s: cannot stat the journal", j->path);
  }
  if (st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) != 1) last = 0;
  if (last != '\n') { /* a torn last line: cut it off, so that the next record starts a line */
    off_t keep = 0;
    char buf[4096];
    for (off_t end = st.st_size; end > 0 && !keep;) {
      const off_t from = end > (off_t)sizeof buf ? end - (off_t)sizeof buf : 0;
      ssize_t r = pread(fd, buf, (size_t)(end - from), from);
      if (r <= 0) break;
      for (ssize_t k = r - 1; k >= 0; k--)
        if (buf[k] == '\n') {
          keep = from + k + 1;
          break;
        }
      end = from;
    }
    if (ftruncate(fd, keep) != 0 || fdatasync(fd) != 0) {
      close(fd);
      return err_errno(e, errno, "%s: cannot cut the torn last line of the journal", j->path);
    }
  }
  j->fd = fd;
  return 0;
}

int resume_journal_append(resume_journal *j, const resume_record *r, size_t n, err *e) {
  char *buf = malloc(n * 200 + 1);
  if (!buf) return err_set(e, EXIT_RUNTIME, "out of memory (journal)");
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    char *line = buf + len;
    int m = snprintf(line, 200, "%s %d %" PRIu64 " %" PRIu64 " %016" PRIx64 " ", r[i].name, r[i].file,
                     r[i].offset, r[i].length, r[i].hash);
    m += snprintf(line + m, 200 - (size_t)m, "%016" PRIx64 "\n", xxh64(line, (size_t)m, RESUME_LINE_SEED));
    len += (size_t)m;
  }
  int rc = fs_write_all(j->fd, buf, len, j->path, e);
  free(buf);
  if (rc == 0 && fdatasync(j->fd) != 0) rc = err_errno(e, errno, "%s: fdatasync", j->path);
  return rc;
}

void resume_journal_close(resume_journal *j) {
  if (j->fd >= 0) close(j->fd);
  j->fd = -1;
}

/* ------------------------------------------------------------------ readers */

static int has_manifest(const char *dir) {
  char path[PATH_MAX + 16], head[64];
  if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, MANIFEST_NAME) >= sizeof path) return 0;
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t r = read(fd, head, sizeof head);
  close(fd);
  const size_t m = strlen(RESUME_MANIFEST_MAGIC);
  return r >= (ssize_t)m && memcmp(head, RESUME_MANIFEST_MAGIC, m) == 0;
}

int resume_refuse_partial(const char *path, err *e) {
  char d[PATH_MAX];
  if ((size_t)snprintf(d, sizeof d, "%s", path) >= sizeof d) return 0;
  struct stat st;
  for (int up = 0; up < 3; up++) {
    if (stat(d, &st) == 0 && S_ISDIR(st.st_mode) && has_manifest(d))
      return err_set(e, EXIT_RUNTIME, "%s: an unfinished export (%s holds the manifest of an export "
                     "still being written): finish it with `gptoss-mpi export ... --resume`; nothing "
                     "is read from an unfinished export", path, d);
    char *slash = strrchr(d, '/');
    while (slash && slash > d && slash[1] == '\0') { /* trailing slashes */
      *slash = '\0';
      slash = strrchr(d, '/');
    }
    if (!slash) {
      if (up == 0 && strcmp(d, ".") != 0) snprintf(d, sizeof d, ".");
      else break;
    } else if (slash == d) {
      d[1] = '\0';
    } else {
      *slash = '\0';
    }
  }
  return 0;
}
