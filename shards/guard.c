/* Process guard: staged outputs removed on stop signals, SIGBUS on a mapping named (guard.h).
 * Only async-signal-safe calls below the handlers: no stdio, no malloc, no locks. */
#define _GNU_SOURCE
#include "guard.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "err.h"

static char g_outputs[GUARD_MAX_OUTPUTS][PATH_MAX];
static volatile sig_atomic_t g_output_used[GUARD_MAX_OUTPUTS];
static struct {
  const void *addr;
  size_t len;
  const char *path;   /* owned by the mapping's owner (st_file), valid while registered */
} g_maps[GUARD_MAX_MAPPINGS];
static volatile sig_atomic_t g_map_used[GUARD_MAX_MAPPINGS];
static int g_rank, g_size = 1;

/* The innermost guard_mapped_call of this thread (the SIGBUS handler jumps back into it). */
typedef struct {
  sigjmp_buf jb;
  const char *path;
} bus_ctx;
static __thread bus_ctx *volatile g_bus;

int guard_mapped_call(int (*fn)(void *arg), void *arg, const char **path) {
  bus_ctx ctx, *volatile outer = g_bus;
  ctx.path = NULL;
  if (sigsetjmp(ctx.jb, 1) != 0) { /* the mask is restored: SIGBUS is unblocked again */
    g_bus = outer;
    if (path) *path = ctx.path;
    return -2;
  }
  g_bus = &ctx;
  const int rc = fn(arg);
  g_bus = outer;
  return rc;
}
static int g_installed;
static volatile sig_atomic_t g_finishing;

void guard_finishing(void) { g_finishing = 1; }

int guard_bus_error(err *e, const char *path) {
  return err_set(e, EXIT_RUNTIME, "%s: the checkpoint file changed while it was being read (part "
                 "of its mapping is beyond its end now: truncated or replaced?)",
                 path ? path : "a checkpoint file");
}

/* ------------------------------------------------------------------ removal */

struct dirent64_raw {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

static void remove_at(int dirfd, const char *name, int depth) {
  if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT) return;
  if ((errno != EISDIR && errno != EPERM) || depth > 8) return;
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return;
  /* removing entries while listing may make the listing skip some: list again until a whole
   * pass removes nothing */
  char buf[4096] __attribute__((aligned(8)));
  for (int pass = 0, removed = 1; removed && pass < 64; pass++) {
    removed = 0;
    if (lseek(fd, 0, SEEK_SET) != 0) break;
    for (;;) {
      long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
      if (n <= 0) break;
      for (long off = 0; off < n;) {
        const struct dirent64_raw *d = (const struct dirent64_raw *)(buf + off);
        off += d->d_reclen;
        if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0) continue;
        remove_at(fd, d->d_name, depth + 1);
        removed = 1;
      }
    }
  }
  close(fd);
  unlinkat(dirfd, name, AT_REMOVEDIR);
}

int guard_remove_tree(const char *path) {
  const int saved = errno;
  remove_at(AT_FDCWD, path, 0);
  struct stat st;
  const int gone = lstat(path, &st) != 0 && errno == ENOENT;
  errno = saved;
  return gone ? 0 : -1;
}

/* ------------------------------------------------------------------ registries */

int guard_add_output(const char *path) {
  const size_t n = strlen(path);
  if (n == 0 || n >= PATH_MAX) return -1;
  for (int i = 0; i < GUARD_MAX_OUTPUTS; i++)
    if (!g_output_used[i]) {
      memcpy(g_outputs[i], path, n + 1);
      g_output_used[i] = 1;
      return 0;
    }
  return -1;
}

void guard_drop_output(const char *path) {
  for (int i = 0; i < GUARD_MAX_OUTPUTS; i++)
    if (g_output_used[i] && strcmp(g_outputs[i], path) == 0) g_output_used[i] = 0;
}

/* Remove and forget every registered output; how many there were. */
static int cleanup_count(void) {
  int n = 0;
  for (int i = 0; i < GUARD_MAX_OUTPUTS; i++)
    if (g_output_used[i]) {
      guard_remove_tree(g_outputs[i]);
      g_output_used[i] = 0;
      n++;
    }
  return n;
}

void guard_cleanup(void) { cleanup_count(); }

void guard_add_mapping(const void *addr, size_t len, const char *path) {
  for (int i = 0; i < GUARD_MAX_MAPPINGS; i++)
    if (!g_map_used[i]) {
      g_maps[i].addr = addr;
      g_maps[i].len = len;
      g_maps[i].path = path;
      g_map_used[i] = 1;
      return;
    }
  /* full: a SIGBUS there is reported without the file name */
}

void guard_drop_mapping(const void *addr) {
  for (int i = 0; i < GUARD_MAX_MAPPINGS; i++)
    if (g_map_used[i] && g_maps[i].addr == addr) g_map_used[i] = 0;
}

/* ------------------------------------------------------------------ handlers */

/* The handlers' line, built in pieces and written with one write(2) (say_end), so that mpirun
 * does not interleave it with its own messages. */
static char g_line[1024];
static size_t g_len;

static void say(const char *s) {
  for (; *s && g_len < sizeof g_line - 1; s++) g_line[g_len++] = *s;
}

static void say_end(void) {
  const char *p = g_line;
  size_t n = g_len;
  while (n > 0) {
    ssize_t w = write(STDERR_FILENO, p, n);
    if (w <= 0) break;
    p += w;
    n -= (size_t)w;
  }
  g_len = 0;
}

static void say_int(int v) {
  char b[16];
  int i = (int)sizeof b - 1;
  b[i] = '\0';
  unsigned u = v < 0 ? 0u - (unsigned)v : (unsigned)v;
  do {
    b[--i] = (char)('0' + u % 10);
    u /= 10;
  } while (u && i > 1);
  if (v < 0) b[--i] = '-';
  say(b + i);
}

static const char *sig_name(int sig) {
  switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGHUP: return "SIGHUP";
    default: return "a signal";
  }
}

static void die_of(int sig) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, NULL);
  sigset_t m;
  sigemptyset(&m);
  sigaddset(&m, sig);
  sigprocmask(SIG_UNBLOCK, &m, NULL);
  raise(sig);
  _exit(128 + sig);
}

/* Said after the stop line (guard_stop_note); set before the work it describes starts. */
static char g_note[PATH_MAX + 256];

void guard_stop_note(const char *note) {
  size_t n = 0;
  if (note)
    for (; note[n] && n < sizeof g_note - 1; n++) g_note[n] = note[n];
  g_note[n] = '\0';
}

const char *guard_stop_note_text(void) { return g_note; }

static void on_stop(int sig) {
  /* the cleanup first: when mpirun itself is signalled it follows its SIGTERM with a SIGKILL a few
   * milliseconds later (measured: 8 ms), and an output left behind is worse than a lost line */
  const int n = cleanup_count();
  if (g_rank == 0 && !g_finishing) {
    say("gptoss-mpi: stopped by ");
    say(sig_name(sig));
    if (n) say(" (partial output removed)");
    say(g_note);
    say("\n");
    say_end();
  }
  die_of(sig);
}

static void on_bus(int sig, siginfo_t *si, void *uc) {
  (void)uc;
  const char *addr = si ? (const char *)si->si_addr : NULL;
  const char *path = NULL;
  for (int i = 0; addr && i < GUARD_MAX_MAPPINGS; i++)
    if (g_map_used[i] && addr >= (const char *)g_maps[i].addr &&
        addr < (const char *)g_maps[i].addr + g_maps[i].len)
      path = g_maps[i].path;
  if (!path && addr) die_of(sig); /* not a checkpoint mapping: a real fault, keep the core */
  bus_ctx *ctx = g_bus;
  if (ctx && path) { /* a guarded reader: it returns an error the ranks agree on */
    ctx->path = path;
    siglongjmp(ctx->jb, 1);
  }
  const int n = cleanup_count();
  say("gptoss-mpi: error: ");
  if (g_size > 1) {
    say("rank ");
    say_int(g_rank);
    say(": ");
  }
  say(path ? path : "a checkpoint file");
  say(": the checkpoint file changed while it was being read (a mapped page is beyond its "
      "end now: was it truncated or replaced?)");
  say(n ? "; partial output removed\n" : "\n");
  say_end();
  _exit(EXIT_RUNTIME);
}

void guard_install(int rank, int size) {
  g_rank = rank;
  g_size = size;
  if (g_installed) return;
  g_installed = 1;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sigfillset(&sa.sa_mask);
  sa.sa_handler = on_stop;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  memset(&sa, 0, sizeof sa);
  sigfillset(&sa.sa_mask);
  sa.sa_flags = SA_SIGINFO;
  sa.sa_sigaction = on_bus;
  sigaction(SIGBUS, &sa, NULL);
}
