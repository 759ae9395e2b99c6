#include "h5io.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic.h"

int h5io_create(const char *path, h5io_file *f, err *e) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  memset(f, 0, sizeof *f);
  f->file = -1;
  char dcopy[4096], bcopy[4096];
  snprintf(f->path, sizeof f->path, "%s", path);
  snprintf(dcopy, sizeof dcopy, "%s", path);
  snprintf(bcopy, sizeof bcopy, "%s", path);
  if (strlen(path) >= sizeof dcopy ||
      (size_t)snprintf(f->tmp, sizeof f->tmp, "%s/.%s.tmp.%ld", dirname(dcopy), basename(bcopy),
                       (long)getpid()) >= sizeof f->tmp)
    return err_set(e, EXIT_RUNTIME, "%s: path too long", path);
  f->file = H5Fcreate(f->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f->file < 0)
    return err_set(e, EXIT_RUNTIME, "%s: HDF5 could not create the file (directory missing or "
                   "not writable?)", path);
  return 0;
}

void h5io_abort(h5io_file *f) {
  if (f->file >= 0) H5Fclose(f->file);
  f->file = -1;
  unlink(f->tmp);
}

int h5io_commit(h5io_file *f, err *e) {
  int rc = H5Fclose(f->file) < 0 ? err_set(e, EXIT_RUNTIME, "%s: HDF5 could not close the file", f->path) : 0;
  f->file = -1;
  if (rc == 0) {
    int fd = open(f->tmp, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) rc = err_errno(e, errno, "%s: fsync", f->tmp);
    if (fd >= 0) close(fd);
  }
  if (rc == 0 && rename(f->tmp, f->path) != 0)
    rc = err_errno(e, errno, "%s: rename to %s", f->tmp, f->path);
  if (rc == 0) {
    char dcopy[4096];
    snprintf(dcopy, sizeof dcopy, "%s", f->path);
    if ((rc = fs_fsync_dir(dirname(dcopy), e)) != 0) unlink(f->path); /* not durable: not done */
  }
  if (rc != 0) unlink(f->tmp);
  return rc;
}

static hid_t file_type_of(hid_t mem_type) {
  if (H5Tequal(mem_type, H5T_NATIVE_INT32) > 0) return H5T_STD_I32LE;
  if (H5Tequal(mem_type, H5T_NATIVE_UINT8) > 0) return H5T_STD_U8LE;
  if (H5Tequal(mem_type, H5T_NATIVE_DOUBLE) > 0) return H5T_IEEE_F64LE;
  if (H5Tequal(mem_type, H5T_NATIVE_INT64) > 0) return H5T_STD_I64LE;
  return H5T_IEEE_F32LE;
}

int h5io_write(hid_t loc, const char *file, const char *gpath, const char *name, hid_t mem_type,
               int rank, const hsize_t *dims, const void *data, err *e) {
  hid_t sp = H5Screate_simple(rank, dims, NULL);
  hid_t ds = sp >= 0 ? H5Dcreate2(loc, name, file_type_of(mem_type), sp, H5P_DEFAULT,
                                  H5P_DEFAULT, H5P_DEFAULT)
                     : -1;
  int rc = ds >= 0 && H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0 ? 0 : -1;
  if (ds >= 0 && H5Dclose(ds) < 0) rc = -1;
  if (sp >= 0) H5Sclose(sp);
  if (rc != 0)
    return err_set(e, EXIT_RUNTIME, "%s: HDF5 could not write dataset '%s%s'", file, gpath, name);
  return 0;
}

static int attr_write(hid_t loc, const char *name, hid_t ftype, hid_t mtype, hid_t sp, const void *v) {
  hid_t a = sp >= 0 ? H5Acreate2(loc, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT) : -1;
  int rc = (a >= 0 && H5Awrite(a, mtype, v) >= 0) ? 0 : -1;
  if (a >= 0) H5Aclose(a);
  if (sp >= 0) H5Sclose(sp);
  return rc;
}

int h5io_attr_int(hid_t loc, const char *name, long long v) {
  return attr_write(loc, name, H5T_STD_I64LE, H5T_NATIVE_LLONG, H5Screate(H5S_SCALAR), &v);
}

int h5io_attr_double(hid_t loc, const char *name, double v) {
  return attr_write(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, H5Screate(H5S_SCALAR), &v);
}

int h5io_attr_ints(hid_t loc, const char *name, const int *v, int n) {
  hsize_t d = (hsize_t)n;
  return attr_write(loc, name, H5T_STD_I32LE, H5T_NATIVE_INT, H5Screate_simple(1, &d, NULL), v);
}

int h5io_attr_str(hid_t loc, const char *name, const char *v) {
  hid_t ty = H5Tcopy(H5T_C_S1);
  H5Tset_size(ty, H5T_VARIABLE);
  H5Tset_cset(ty, H5T_CSET_UTF8);
  int rc = attr_write(loc, name, ty, ty, H5Screate(H5S_SCALAR), &v);
  H5Tclose(ty);
  return rc;
}

hid_t h5io_group(hid_t loc, const char *file, const char *name, err *e) {
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t g = H5Gcreate2(loc, name, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  H5Pclose(lcpl);
  if (g < 0) err_set(e, EXIT_RUNTIME, "%s: HDF5 could not create group '%s'", file, name);
  return g;
}

int h5io_attr_config(hid_t loc, const gpt_config *c) {
  const long long ints[] = {c->n_layers, c->n_experts, c->top_k, c->vocab, c->hidden,
                            c->intermediate};
  int rc = 0;
  for (int i = 0; i < 6; i++) rc |= h5io_attr_int(loc, config_key_names[i], ints[i]);
  rc |= h5io_attr_double(loc, "swiglu_limit", c->swiglu_limit);
  rc |= h5io_attr_int(loc, "head_dim", c->head_dim);
  rc |= h5io_attr_int(loc, "num_attention_heads", c->n_heads);
  rc |= h5io_attr_int(loc, "num_key_value_heads", c->n_kv_heads);
  rc |= h5io_attr_int(loc, "sliding_window", c->sliding_window);
  rc |= h5io_attr_int(loc, "initial_context_length", c->initial_context_length);
  rc |= h5io_attr_double(loc, "rope_theta", c->rope_theta);
  rc |= h5io_attr_double(loc, "rope_scaling_factor", c->rope_scaling_factor);
  rc |= h5io_attr_double(loc, "rope_ntk_alpha", c->rope_ntk_alpha);
  rc |= h5io_attr_double(loc, "rope_ntk_beta", c->rope_ntk_beta);
  return rc;
}
