/* guard: what a process does when it must stop at once (DESIGN.md "Failure policy").
 *
 * Outputs are staged under hidden temporary names (shards/atomic.h) and published by a rename only
 * at the end. guard keeps the list of staged paths of this process, and removes them (files, or
 * directories with everything in them) when the process is stopped:
 *   - SIGTERM, SIGINT, SIGHUP (Slurm's time limit, scancel, Ctrl-C, a lost terminal; mpirun
 *     forwards them to every rank): the staged outputs are removed, rank 0 prints one line
 *     "gptoss-mpi: stopped by SIGTERM (partial output removed)", and the process dies of the same
 *     signal (so the exit status says which);
 *   - SIGBUS on a mapped checkpoint file (a file truncated while it is read): one line naming the
 *     file, "...: the checkpoint file changed while it was being read", cleanup, exit 1;
 *   - guard_fatal (the MPI error handler of mpi/dist.c): cleanup, then the caller aborts.
 * Everything that runs in a signal handler is async-signal-safe (open/getdents64/unlinkat/rmdir/
 * write); the registries are fixed-size arrays, filled before the work they protect starts.
 * Process-wide, not thread-safe for registration (call from the main thread). No MPI. */
#ifndef GPTOSS_GUARD_H
#define GPTOSS_GUARD_H

#include <stddef.h>

#include "err.h"

#define GUARD_MAX_OUTPUTS 32
#define GUARD_MAX_MAPPINGS 256

/* Install the handlers (idempotent; later calls update rank and size). rank, size: for the
 * messages (only rank 0 reports a stop; "rank r: " prefixes a fault when size > 1). */
void guard_install(int rank, int size);

/* The command has printed its verdict: a stop signal from now on (mpirun ending the other ranks
 * of a failed job) removes what is staged but prints nothing more. */
void guard_finishing(void);

/* Text added to rank 0's stop line (e.g. "; the export is unfinished: rerun with --resume"),
 * copied; NULL or "" for none. */
void guard_stop_note(const char *note);
/* The current note ("" if none). */
const char *guard_stop_note_text(void);

/* A staged output (file or directory tree) to remove if the process is stopped. Returns -1 if
 * the registry is full or the path too long (the caller should refuse to start the work). */
int guard_add_output(const char *path);
/* Forget a staged output (published, or already removed). Unknown paths are ignored. */
void guard_drop_output(const char *path);
/* Remove every registered output now and forget them (async-signal-safe). */
void guard_cleanup(void);

/* Run fn(arg) so that a SIGBUS on a registered checkpoint mapping inside it becomes a return
 * value: -2 with *path = the file (borrowed), instead of the process dying. fn's own result
 * otherwise. The readers of mapped data (ckpt, mx4, the exporter) go through it, so a file
 * truncated under a running job is an ordinary error that the ranks agree on. Nests; per thread. */
int guard_mapped_call(int (*fn)(void *arg), void *arg, const char **path);
/* The error for a -2 of guard_mapped_call: "<path>: the checkpoint file changed while it was
 * being read ...". Returns -1. */
int guard_bus_error(err *e, const char *path);

/* A read-only mapping of a checkpoint file, so that a SIGBUS inside it names the file. */
void guard_add_mapping(const void *addr, size_t len, const char *path);
void guard_drop_mapping(const void *addr);

/* Remove path: a file, or a directory and everything below it (no symlinks followed).
 * Async-signal-safe; errors ignored (ENOENT is the normal case). 0 if nothing is left. */
int guard_remove_tree(const char *path);

#endif
