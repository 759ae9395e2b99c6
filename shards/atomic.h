/* atomic: outputs that appear complete or not at all, and checked file I/O (STYLE.md, after redis
 * rdb.c). ONE commit path for every file and directory the tool writes:
 *
 *   atomic_stage_file / _dir   create "<parent>/.<name>.tmp.<pid>" next to the target: a file open
 *                              for writing, or an empty directory to fill (by this process or by
 *                              other ranks, which write into atomic_path()); the staged path is
 *                              registered with guard (guard.h), so a stopped process removes it
 *   atomic_write / _pwrite     (files) or the caller's own writes inside the staged directory
 *   atomic_seal                no more writes: a file is fsync'ed and closed (checked); for a
 *                              directory, every file in it is fsync'ed by its writer and the
 *                              directory itself is fsync'ed here
 *   atomic_publish             rename the staged output over the target, fsync the parent
 *   atomic_abort               remove the staged output (any time before publish succeeded)
 *
 * The rollback rule, the same for files and directories: until atomic_publish returns 0 the
 * target never holds this output. Any failed step removes the staged output; when the rename
 * succeeded but the parent directory could not be synced, the target is renamed back and removed
 * as well (a rename that is not durable may vanish in a crash: it is not reported as done). Every
 * failure names the step and the path. Outputs that belong together (a report, its summary and
 * its chart) are published with atomic_publish_all: all or none.
 *
 * In a distributed job (mpi/) the ranks agree after the last work of every rank and before the
 * publish: stage (rank 0) -> everyone writes -> seal -> agree -> publish (rank 0) -> agree.
 * Every function frees the handle when it returns the output to the file system (publish, abort,
 * and a failed seal). Local (no MPI). */
#ifndef GPTOSS_ATOMIC_H
#define GPTOSS_ATOMIC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h> /* ssize_t */

#include "err.h"

typedef struct atomic_out atomic_out;

/* Stage a file (opened for writing) or an empty directory next to `target` (trailing slashes
 * ignored). pid: the pid in the staged name, 0 = this process's. Caller owns *out. */
int atomic_stage_file(const char *target, atomic_out **out, err *e);
int atomic_stage_dir(const char *target, long pid, atomic_out **out, err *e);
/* The staged path (where the data goes until publish) and the target. Borrowed. */
const char *atomic_path(const atomic_out *o);
const char *atomic_target(const atomic_out *o);
/* A staged file's descriptor, for callers that write it themselves (-1 for a directory). */
int atomic_fd(const atomic_out *o);
/* Append n bytes / write n bytes at offset off of a staged file. */
int atomic_write(atomic_out *o, const void *data, size_t n, err *e);
int atomic_pwrite(atomic_out *o, const void *data, size_t n, uint64_t off, err *e);
/* fsync and close a file, or fsync a directory. On failure the output is removed and o freed. */
int atomic_seal(atomic_out *o, err *e);
/* Seal if not yet sealed, rename over the target, fsync the parent; frees o in every case. */
int atomic_publish(atomic_out *o, err *e);
/* Publish outs[0..n) in order (NULL entries skipped), all or none; frees them all. */
int atomic_publish_all(atomic_out **outs, int n, err *e);
/* Remove the staged output and free o. NULL is fine. */
void atomic_abort(atomic_out *o);
/* Whole-file convenience: data[0..n) to path, staged, sealed and published. */
int atomic_write_file(const char *path, const void *data, size_t n, err *e);

/* fsync a directory (after a rename or create inside it). */
int fs_fsync_dir(const char *dir, err *e);
/* Write all n bytes with write(2)/pwrite(2), retrying on EINTR and short writes. */
int fs_write_all(int fd, const void *data, size_t n, const char *what, err *e);
int fs_pwrite_all(int fd, const void *data, size_t n, uint64_t off, const char *what, err *e);
/* pread all n bytes at off, retrying on EINTR and short reads: the count read (< n only at the
 * end of the file), or -1 with errno set. */
ssize_t fs_pread_full(int fd, void *buf, size_t n, uint64_t off);
/* Open an input for reading, refusing anything but a regular file (a FIFO would block, a device
 * would never end) without blocking on it. what: how the caller names it ("config.json",
 * "--prompt-file"). Returns the descriptor or -1 with e set. */
int fs_open_regular(const char *path, const char *what, err *e);
/* Read a whole regular file of at most max_bytes into a new NUL-terminated buffer (*len bytes
 * before the NUL). Errors name the file: missing, not regular, larger than max_bytes. */
int fs_read_file(const char *path, const char *what, size_t max_bytes, char **data, size_t *len,
                 err *e);

#endif
