/* outpath: the paths a command will write, checked before any work starts (DESIGN.md "Failure
 * policy": an output is never one of the inputs, never a device node or FIFO, outputs never
 * collide, and nothing is computed for an output that cannot be written).
 *
 * An output may be absent, or be what the atomic rename of shards/atomic.h can replace:
 *   file:      a regular file (not a symbolic link: the rename would replace the link itself);
 *   directory: an empty directory that is not a symbolic link, not a mount point, not the
 *              current directory, not '.' or '..'.
 * Its parent directory must exist and be writable. No two outputs may resolve to the same path,
 * no output may be an input (the same file, by device and inode, or the same resolved path), and
 * no output may lie inside an input directory (e.g. the checkpoint).
 * Exit codes of the errors: 2 (usage) when the command line itself is contradictory (outputs
 * colliding, an output that is an input or inside one), 1 otherwise (what is on the disk).
 * Local (no MPI); the commands call it on rank 0 and agree on the result. */
#ifndef GPTOSS_OUTPATH_H
#define GPTOSS_OUTPATH_H

#include "err.h"

typedef enum { OUTPATH_FILE = 0, OUTPATH_DIR = 1 } outpath_kind;

typedef struct {
  const char *path;   /* NULL entries are skipped */
  const char *what;   /* the option that names it, for messages: "--report" */
  outpath_kind kind;
} outpath;

/* Check out[0..n) against each other and against the inputs in[0..n_in) (files or directories
 * the command reads; NULL entries skipped). 0 ok, -1 with e set. */
int outpath_check(const outpath *out, int n, const char *const *in, int n_in, err *e);

#endif
