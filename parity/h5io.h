/* h5io: the small HDF5 writing layer shared by traces and parity reports.
 *
 * Files are written atomically: h5io_create opens "<dir>/.<name>.tmp.<pid>", h5io_commit closes,
 * fsyncs and renames it over the target and fsyncs the directory; h5io_abort removes it. HDF5's
 * own error-stack printing is switched off; failures come back as err messages naming the file
 * and the object. Local (no MPI). */
#ifndef GPTOSS_H5IO_H
#define GPTOSS_H5IO_H

#include <hdf5.h>

#include "config.h"
#include "err.h"

typedef struct {
  hid_t file;
  char path[4096];   /* target */
  char tmp[4096];    /* temporary name next to it */
} h5io_file;

int h5io_create(const char *path, h5io_file *f, err *e);
int h5io_commit(h5io_file *f, err *e);   /* closes; on failure removes the temporary file */
void h5io_abort(h5io_file *f);           /* closes and removes the temporary file */

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
