/* atomic: output files that appear complete or not at all (STYLE.md, after redis rdb.c).
 *
 * atomic_open creates "<dir>/.<name>.tmp.<pid>" next to the target; atomic_commit flushes,
 * fsyncs, closes (checked), renames over the target and fsyncs the directory. atomic_abort
 * (or a failed commit) unlinks the temporary file. A killed process leaves at most a hidden
 * ".tmp" file, never a file under the target name. Local (no MPI). */
#ifndef GPTOSS_ATOMIC_H
#define GPTOSS_ATOMIC_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct atomic_file atomic_file;

/* Start writing `path` atomically. Caller owns *out until commit/abort. */
int atomic_open(const char *path, atomic_file **out, err *e);
/* Append n bytes. */
int atomic_write(atomic_file *f, const void *data, size_t n, err *e);
/* Write n bytes at absolute offset off (file grows as needed). */
int atomic_pwrite(atomic_file *f, const void *data, size_t n, uint64_t off, err *e);
/* The temporary file's descriptor, for callers that write it themselves. */
int atomic_fd(const atomic_file *f);
/* fsync, close, rename to the target, fsync the directory; frees f in every case. */
int atomic_commit(atomic_file *f, err *e);
/* Remove the temporary file and free f. NULL is fine. */
void atomic_abort(atomic_file *f);
/* Whole-file convenience: write data[0..n) to path atomically. */
int atomic_write_file(const char *path, const void *data, size_t n, err *e);
/* fsync a directory (after a rename or create inside it). */
int fs_fsync_dir(const char *dir, err *e);
/* Write all n bytes with write(2)/pwrite(2), retrying on EINTR and short writes. */
int fs_write_all(int fd, const void *data, size_t n, const char *what, err *e);
int fs_pwrite_all(int fd, const void *data, size_t n, uint64_t off, const char *what, err *e);

#endif
