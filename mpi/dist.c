#include "dist.h"

#include <errno.h>
#include <limits.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guard.h"
#include "log.h"

/* MPI's own failures end the job at once, cleanly: this rank says what failed, removes the
 * outputs it staged (guard.h) and aborts the job (mpirun then stops every rank, whose stop
 * handlers remove theirs). Nothing is left to check at the call sites, so no failed MPI call can
 * ever read as success (a failed Allreduce would otherwise leave an agreement's verdict unset). */
static void on_mpi_error(MPI_Comm *comm, int *code, ...) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0, rank = log_rank();
  if (MPI_Error_string(*code, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", *code);
  guard_cleanup();
  const char *note = guard_stop_note_text(); /* an export keeps its .partial for --resume */
  fprintf(stderr, "gptoss-mpi: error: rank %d: MPI failure: %s%s\n", rank, msg,
          note[0] ? note : " (partial output removed)");
  fflush(stderr);
  MPI_Abort(comm ? *comm : MPI_COMM_WORLD, EXIT_RUNTIME);
  _exit(EXIT_RUNTIME);
}

int dist_init(int *argc, char ***argv, dist *d) {
  memset(d, 0, sizeof *d);
  d->world = MPI_COMM_WORLD;
  d->stage = MPI_COMM_NULL;
  int provided = 0;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    log_error("MPI_Init_thread failed: the MPI library could not start (run under mpirun, srun "
              "--mpi=pmix, or alone)");
    return -1;
  }
  MPI_Comm_rank(d->world, &d->rank);
  MPI_Comm_size(d->world, &d->size);
  log_set_rank(d->rank);
  guard_install(d->rank, d->size);
  MPI_Errhandler eh;
  MPI_Comm_create_errhandler(on_mpi_error, &eh);
  MPI_Comm_set_errhandler(d->world, eh); /* communicators split from world inherit it */
  MPI_Errhandler_free(&eh);
  d->initialized = 1;
  if (provided < MPI_THREAD_FUNNELED) {
    /* OpenBLAS and ONNX Runtime run threads in every rank; MPI is called from the main one */
    log_error("the MPI library provides thread level %d, below MPI_THREAD_FUNNELED (%d) that "
              "gptoss-mpi needs (worker threads of the matrix library and ONNX Runtime)", provided,
              MPI_THREAD_FUNNELED);
    return -1;
  }
  return 0;
}

int dist_setup(dist *d, const gpt_config *c, int n_stages, int max_tokens, int max_seq, err *e) {
  if (plan_make(c, d->size, n_stages, max_tokens, max_seq, &d->plan, e) != 0) return -1;
  d->me = &d->plan.ranks[d->rank];
  if (MPI_Comm_split(d->world, d->me->stage, d->me->group, &d->stage) != MPI_SUCCESS)
    return err_set(e, EXIT_RUNTIME, "MPI_Comm_split for the stage communicator failed");
  return 0;
}

void dist_finalize(dist *d) {
  guard_finishing(); /* the verdict is out: a SIGTERM from mpirun now only cleans up */
  if (!d->initialized) return;
  if (d->stage != MPI_COMM_NULL) MPI_Comm_free(&d->stage);
  plan_free(&d->plan);
  MPI_Finalize();
  d->initialized = 0;
}

int dist_agree(dist *d, err *e) {
  int mine = e->code ? d->rank : INT_MAX, first = INT_MAX;
  /* test hook: a collective that MPI itself fails (an invalid datatype) */
  err fe = {0};
  MPI_Datatype t = dist_fault(d, "mpi", &fe) ? MPI_DATATYPE_NULL : MPI_INT;
  MPI_Allreduce(&mine, &first, 1, t, MPI_MIN, d->world);
  if (first == INT_MAX) return 0;
  struct { int code, agreed; char msg[sizeof e->msg]; } buf;
  memset(&buf, 0, sizeof buf);
  if (d->rank == first) {
    buf.code = e->code;
    buf.agreed = e->agreed;
    memcpy(buf.msg, e->msg, sizeof buf.msg);
  }
  MPI_Bcast(&buf, (int)sizeof buf, MPI_BYTE, first, d->world);
  e->code = buf.code;
  /* an error that is already the verdict of an earlier agreement keeps its "rank r: " */
  if (d->size > 1 && !buf.agreed)
    snprintf(e->msg, sizeof e->msg, "rank %d: %.*s", first, (int)sizeof e->msg - 16, buf.msg);
  else
    memcpy(e->msg, buf.msg, sizeof e->msg);
  e->agreed = 1;
  return -1;
}

int dist_fault(const dist *d, const char *phase, err *e) {
  const char *f = getenv("GPTOSS_FAULT");
  if (!f || !*f) return 0;
  int rank = -1, nth = 1, used = 0;
  char ph[32] = "";
  if (sscanf(f, "%d:%31[a-z-]%n", &rank, ph, &used) < 2) return 0;
  if (f[used] == ':') nth = atoi(f + used + 1);
  if (rank != d->rank || strcmp(ph, phase) != 0) return 0;
  /* count how many times the named phase was reached on this rank */
  static int count;
  if (++count != nth) return 0;
  return err_set(e, EXIT_RUNTIME, "injected fault in phase '%s' (GPTOSS_FAULT=%s)", phase, f);
}

void dist_pause(const dist *d, const char *phase) {
  const char *f = getenv("GPTOSS_PAUSE");
  if (!f || !*f) return;
  int rank = -1, used = 0;
  char ph[32] = "";
  if (sscanf(f, "%d:%31[a-z-]%n", &rank, ph, &used) < 2 || f[used] != ':') return;
  if (rank != d->rank || strcmp(ph, phase) != 0) return;
  const double secs = atof(f + used + 1);
  /* the test waits for this line before it acts */
  fprintf(stderr, "gptoss-mpi: test hook: rank %d paused at %s for %g s\n", d->rank, phase, secs);
  fflush(stderr);
  /* a stop signal ends the process from its handler, as it would end the real work */
  struct timespec ts = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

uint64_t dist_sum_u64(dist *d, uint64_t v) {
  uint64_t s = 0;
  MPI_Allreduce(&v, &s, 1, MPI_UINT64_T, MPI_SUM, d->world);
  return s;
}

uint64_t dist_max_u64(dist *d, uint64_t v) {
  uint64_t s = 0;
  MPI_Allreduce(&v, &s, 1, MPI_UINT64_T, MPI_MAX, d->world);
  return s;
}

uint64_t dist_resident_file_bytes(const char *dir) {
  FILE *f = fopen("/proc/self/smaps", "r");
  if (!f) return 0;
  char line[4096], real[PATH_MAX];
  const char *root = realpath(dir, real) ? real : dir;
  size_t rl = strlen(root);
  int in = 0;
  uint64_t total = 0;
  while (fgets(line, sizeof line, f)) {
    unsigned long long kb;
    char *slash;
    /* mapping header lines start with an address range "a-b perms ..." */
    if (strchr(line, '-') && sscanf(line, "%*x-%*x %*s %*s %*s %llu", &kb) == 1) {
      slash = strchr(line, '/');
      in = slash && strncmp(slash, root, rl) == 0 && slash[rl] == '/';
    } else if (in && sscanf(line, "Rss: %llu kB", &kb) == 1) {
      total += kb * 1024ull;
    }
  }
  fclose(f);
  return total;
}

uint64_t dist_rss_anon(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  unsigned long long kb = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "RssAnon: %llu kB", &kb) == 1) break;
  fclose(f);
  return kb * 1024ull;
}

int dist_reset_peak_rss(void) {
  FILE *f = fopen("/proc/self/clear_refs", "w");
  if (!f) return -1;
  int ok = fputs("5", f) >= 0;
  return fclose(f) == 0 && ok ? 0 : -1;
}

uint64_t dist_peak_rss(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  unsigned long long kb = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmHWM: %llu kB", &kb) == 1) break;
  fclose(f);
  return kb * 1024ull;
}
