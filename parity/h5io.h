/* h5io: the small HDF5 writing layer shared by traces and parity reports.
 *
 * A file is built in memory (HDF5's core driver, no backing store), so HDF5 itself never writes
 * to the disk: a full disk, a quota or an I/O error cannot leave HDF5 with a half-closed file
 * (HDF5 1.10 crashes at exit in that state). h5io_finish takes the finished image and writes it
 * through the one commit path of shards/atomic.h: staged next to the target and sealed, to be
 * published by the caller (after the ranks agreed) with atomic_publish; errors from the disk come
 * back with the system's reason (e.g. "No space left on device"). The image costs memory equal to
 * the file's size while it is written. HDF5's own error-stack printing is switched off; failures
 * come back as err messages naming the file and the object. Local (no MPI). */
#ifndef GPTOSS_H5IO_H
#define GPTOSS_H5IO_H

#include <hdf5.h>

#include "atomic.h"
#include "config.h"
#include "err.h"

typedef struct {
  hid_t file;        /* in memory */
  char path[4096];   /* target */
} h5io_file;

/* A new empty file in memory that will become `path`. */
int h5io_create(const char *path, h5io_file *f, err *e);
/* Close the file and write its image to a staged, sealed file next to the target; the caller
 * publishes *staged (atomic_publish) or drops it (atomic_abort). f is closed in every case. */
int h5io_finish(h5io_file *f, atomic_out **staged, err *e);
/* h5io_finish + atomic_publish, for outputs that need no agreement first. */
int h5io_commit(h5io_file *f, err *e);
/* Close and forget the file (nothing was written to the disk). */
void h5io_abort(h5io_file *f);

/* Dataset `name` under loc from data of memory type mem_type (H5T_NATIVE_FLOAT, _INT32,
 * _UINT8, _DOUBLE, _INT64), stored little-endian; gpath names the group in messages. */
int h5io_write(hid_t loc, const char *file, const char *gpath, const char *name, hid_t mem_type,
               int rank, const hsize_t *dims, const void *data, err *e);
/* Scalar attributes (0 ok, -1 failed); strings are variable-length UTF-8 as in the golden. */
int h5io_attr_int(hid_t loc, const char *name, long long v);
int h5io_attr_double(hid_t loc, const char *name, double v);
int h5io_attr_str(hid_t loc, const char *name, const char *v);
/* The 16 configuration values under their original key names (spec section 1). */
int h5io_attr_config(hid_t loc, const gpt_config *c);
/* 1-D attribute arrays. */
int h5io_attr_ints(hid_t loc, const char *name, const int *v, int n);
/* A group (with intermediate groups), or -1 with e set. */
hid_t h5io_group(hid_t loc, const char *file, const char *name, err *e);

#endif
