#include "h5io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


int h5io_create(const char *path, h5io_file *f, err *e) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  memset(f, 0, sizeof *f);
  f->file = -1;
  if (strlen(path) >= sizeof f->path) return err_set(e, EXIT_RUNTIME, "%s: path too long", path);
  snprintf(f->path, sizeof f->path, "%s", path);
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  /* memory only: grows in 4 MiB steps, never written by HDF5 */
  if (fapl < 0 || H5Pset_fapl_core(fapl, (size_t)4 << 20, 0) < 0) {
    if (fapl >= 0) H5Pclose(fapl);
    return err_set(e, EXIT_RUNTIME, "%s: HDF5 could not set up an in-memory file", path);
  }
  f->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (f->file < 0) return err_set(e, EXIT_RUNTIME, "%s: HDF5 could not create the file in memory", path);
  return 0;
}

void h5io_abort(h5io_file *f) {
  if (f->file >= 0) H5Fclose(f->file);
  f->file = -1;
}

int h5io_finish(h5io_file *f, atomic_out **staged, err *e) {
  *staged = NULL;
  int rc = 0;
  void *img = NULL;
  ssize_t n = -1;
  if (H5Fflush(f->file, H5F_SCOPE_GLOBAL) < 0 || (n = H5Fget_file_image(f->file, NULL, 0)) < 0)
    rc = err_set(e, EXIT_RUNTIME, "%s: HDF5 could not finish the file", f->path);
  if (rc == 0 && !(img = malloc(n > 0 ? (size_t)n : 1)))
    rc = err_set(e, EXIT_RUNTIME, "%s: out of memory for the %zd-byte file image", f->path, n);
  if (rc == 0 && H5Fget_file_image(f->file, img, (size_t)n) != n)
    rc = err_set(e, EXIT_RUNTIME, "%s: HDF5 could not copy the file image", f->path);
  if (H5Fclose(f->file) < 0 && rc == 0)
    rc = err_set(e, EXIT_RUNTIME, "%s: HDF5 could not close the file", f->path);
  f->file = -1;
  atomic_out *o = NULL;
  if (rc == 0 && atomic_stage_file(f->path, &o, e) == 0) {
    if (atomic_write(o, img, (size_t)n, e) != 0) {
      atomic_abort(o);
      rc = -1;
    } else if (atomic_seal(o, e) != 0) {
      rc = -1;
    } else {
      *staged = o;
    }
  } else if (rc == 0) {
    rc = -1;
  }
  free(img);
  return rc;
}

int h5io_commit(h5io_file *f, err *e) {
  atomic_out *o;
  if (h5io_finish(f, &o, e) != 0) return -1;
  return atomic_publish(o, e);
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
