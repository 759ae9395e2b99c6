/* trace.c: HDF5 trace groups (see trace.h for the layout). */
#define _GNU_SOURCE
#include "trace.h"

#include <errno.h>
#include <stdint.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5io.h"

/* One layer's datasets: name, element type (0 float, 1 int32), dims as multiples of
 * (T, inner1, inner2); offsetof the capture member. */
typedef struct {
  const char *name;
  int is_int;
  int debug;                 /* optional when reading */
  size_t off;                /* offsetof(model_layer_capture, member) */
  char defines;              /* reading: the width it fixes if still unknown (E, K, D, Q = QKV,
                              * H = H*Dh, I), 0 = none */
} layer_ds;

/* Datasets that fix a width come before the ones that are checked against it. */
static const layer_ds layer_sets[] = {
    {"router_logits", 0, 0, offsetof(model_layer_capture, router_logits), 'E'},
    {"topk_indices", 1, 0, offsetof(model_layer_capture, topk_indices), 'K'},
    {"hidden_after_attn", 0, 0, offsetof(model_layer_capture, hidden_after_attn), 'D'},
    {"qkv_out", 0, 1, offsetof(model_layer_capture, qkv_out), 'Q'},
    {"sdpa_out", 0, 1, offsetof(model_layer_capture, sdpa_out), 'H'},
    {"swiglu_out", 0, 1, offsetof(model_layer_capture, swiglu_out), 'I'},
    {"mlp1_out", 0, 1, offsetof(model_layer_capture, mlp1_out), 'I'},
    {"topk_values", 0, 0, offsetof(model_layer_capture, topk_values), 0},
    {"topk_weights", 0, 0, offsetof(model_layer_capture, topk_weights), 0},
    {"hidden_after_mlp", 0, 0, offsetof(model_layer_capture, hidden_after_mlp), 0},
    {"attn_norm_out", 0, 1, offsetof(model_layer_capture, attn_norm_out), 0},
    {"mlp_norm_out", 0, 1, offsetof(model_layer_capture, mlp_norm_out), 0},
};

/* The trace field a width letter names. */
static int *width_of(trace *tr, char w) {
  switch (w) {
    case 'E': return &tr->E;
    case 'K': return &tr->K;
    case 'D': return &tr->D;
    case 'Q': return &tr->QKV;
    case 'H': return &tr->HD;
    case 'I': return &tr->I;
    default: return NULL;
  }
}
#define N_LAYER_SETS (int)(sizeof layer_sets / sizeof layer_sets[0])

static void **member(model_layer_capture *lc, int i) {
  return (void **)((char *)lc + layer_sets[i].off);
}

/* Shape of layer dataset i (rank and dims) for trace tr. */
static int layer_shape(const trace *tr, int i, hsize_t dims[3]) {
  const char *n = layer_sets[i].name;
  dims[0] = (hsize_t)tr->T;
  if (!strcmp(n, "router_logits")) { dims[1] = tr->E; return 2; }
  if (!strncmp(n, "topk_", 5)) { dims[1] = tr->K; return 2; }
  if (!strcmp(n, "qkv_out")) { dims[1] = tr->QKV; return 2; }
  if (!strcmp(n, "sdpa_out")) { dims[1] = tr->HD; return 2; }
  if (!strcmp(n, "mlp1_out")) { dims[1] = tr->K; dims[2] = 2 * (hsize_t)tr->I; return 3; }
  if (!strcmp(n, "swiglu_out")) { dims[1] = tr->K; dims[2] = tr->I; return 3; }
  dims[1] = tr->D;
  return 2;
}

static size_t dims_count(int rank, const hsize_t *dims) {
  size_t n = 1;
  for (int i = 0; i < rank; i++) n *= (size_t)dims[i];
  return n;
}

/* ---------------------------------------------------------------- allocation */

int trace_alloc(trace *tr, const gpt_config *c, int T, int n_layers, err *e) {
  memset(tr, 0, sizeof *tr);
  tr->T = T;
  tr->n_layers = n_layers;
  tr->V = c->vocab;
  tr->D = c->hidden;
  tr->E = c->n_experts;
  tr->K = c->top_k;
  tr->I = c->intermediate;
  tr->QKV = (int)config_qkv_rows(c);
  tr->HD = c->n_heads * c->head_dim;
  tr->stop_layer = -1;
  int fail = 0;
  tr->input_ids = calloc((size_t)T, sizeof(int32_t));
  tr->embedding_out = calloc((size_t)T * tr->D, sizeof(float));
  tr->final_norm_out = calloc((size_t)T * tr->D, sizeof(float));
  tr->logits = calloc((size_t)T * tr->V, sizeof(float));
  tr->layers = calloc((size_t)(n_layers > 0 ? n_layers : 1), sizeof(model_layer_capture));
  tr->sliding_window = calloc((size_t)(n_layers > 0 ? n_layers : 1), sizeof(int));
  fail = !tr->input_ids || !tr->embedding_out || !tr->final_norm_out || !tr->logits ||
         !tr->layers || !tr->sliding_window;
  for (int l = 0; !fail && l < n_layers; l++) {
    tr->sliding_window[l] = config_layer_is_sliding(c, l) ? c->sliding_window : 0;
    for (int i = 0; i < N_LAYER_SETS; i++) {
      hsize_t dims[3];
      const int rank = layer_shape(tr, i, dims);
      void *p = calloc(dims_count(rank, dims), 4);
      *member(&tr->layers[l], i) = p;
      if (!p) fail = 1;
    }
  }
  if (fail) {
    trace_free(tr);
    return err_set(e, EXIT_RUNTIME, "trace: out of memory for %d positions x %d layers", T,
                   n_layers);
  }
  return 0;
}

void trace_free(trace *tr) {
  for (int l = 0; tr->layers && l < tr->n_layers; l++)
    for (int i = 0; i < N_LAYER_SETS; i++) free(*member(&tr->layers[l], i));
  free(tr->layers);
  free(tr->input_ids);
  free(tr->embedding_out);
  free(tr->final_norm_out);
  free(tr->logits);
  free(tr->sliding_window);
  free(tr->call);
  memset(tr, 0, sizeof *tr);
}

void trace_capture(trace *tr, model_capture *cap) {
  cap->embedding_out = tr->embedding_out;
  cap->final_norm_out = tr->final_norm_out;
  cap->logits = tr->logits;
  cap->layers = tr->layers;
}

/* ---------------------------------------------------------------- writing */

static int write_meta(hid_t root, const trace_meta *meta) {
  const gpt_config *c = meta->config;
  int rc = 0;
  rc |= h5io_attr_str(root, "tool", "gptoss-mpi");
  rc |= h5io_attr_str(root, "version", GPTOSS_VERSION);
  rc |= h5io_attr_str(root, "precision", meta->precision);
  rc |= h5io_attr_int(root, "n_ranks", meta->n_ranks);
  rc |= h5io_attr_str(root, "checkpoint", meta->checkpoint ? meta->checkpoint : "");
  rc |= h5io_attr_config(root, c);
  rc |= h5io_attr_double(root, "rmsnorm_eps", 1e-5);
  return rc;
}

static int write_all(hid_t f, const trace *tr, const trace_meta *meta, const char *path,
                     err *e) {
  hsize_t d1[1] = {(hsize_t)tr->T};
  hsize_t dD[2] = {(hsize_t)tr->T, (hsize_t)tr->D};
  hsize_t dV[2] = {(hsize_t)tr->T, (hsize_t)tr->V};
  if (write_meta(f, meta) != 0)
    return err_set(e, EXIT_RUNTIME, "%s: HDF5 could not write the root attributes", path);
  if (h5io_write(f, path, "/", "input_ids", H5T_NATIVE_INT32, 1, d1, tr->input_ids, e) ||
      h5io_write(f, path, "/", "embedding_out", H5T_NATIVE_FLOAT, 2, dD, tr->embedding_out, e) ||
      h5io_write(f, path, "/", "final_norm_out", H5T_NATIVE_FLOAT, 2, dD, tr->final_norm_out, e) ||
      h5io_write(f, path, "/", "logits", H5T_NATIVE_FLOAT, 2, dV, tr->logits, e))
    return -1;
  hid_t layers = h5io_group(f, path, "layers", e);
  if (layers < 0) return -1;
  int rc = 0;
  for (int l = 0; rc == 0 && l < tr->n_layers; l++) {
    char name[32], gpath[48];
    snprintf(name, sizeof name, "%d", l);
    snprintf(gpath, sizeof gpath, "/layers/%d/", l);
    hid_t g = H5Gcreate2(layers, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0 || h5io_attr_int(g, "sliding_window", tr->sliding_window[l]) != 0)
      rc = err_set(e, EXIT_RUNTIME, "%s: HDF5 could not write group '%s'", path, gpath);
    for (int i = 0; rc == 0 && i < N_LAYER_SETS; i++) {
      hsize_t dims[3];
      const int rank = layer_shape(tr, i, dims);
      const void *data = *member(&tr->layers[l], i);
      if (data)
        rc = h5io_write(g, path, gpath, layer_sets[i].name,
                        layer_sets[i].is_int ? H5T_NATIVE_INT32 : H5T_NATIVE_FLOAT, rank, dims,
                        data, e);
    }
    if (g >= 0) H5Gclose(g);
  }
  H5Gclose(layers);
  return rc;
}

int trace_write(const trace *tr, const trace_meta *meta, const char *path, err *e) {
  h5io_file f;
  if (h5io_create(path, &f, e) != 0) return -1;
  if (write_all(f.file, tr, meta, path, e) != 0) {
    h5io_abort(&f);
    return -1;
  }
  return h5io_commit(&f, e);
}

/* ---------------------------------------------------------------- reading */

/* Read dataset `name` under loc into a new buffer; dims out (rank must match). Missing
 * dataset: *out = NULL and 0 if optional, else an error. */
static int read_ds(hid_t loc, const char *file, const char *gpath, const char *name, int is_int,
                   int rank, hsize_t *dims, int optional, void **out, err *e) {
  *out = NULL;
  if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) {
    if (optional) return 0;
    return err_set(e, EXIT_RUNTIME, "%s: dataset '%s%s' missing", file, gpath, name);
  }
  hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
  if (ds < 0) return err_set(e, EXIT_RUNTIME, "%s: cannot open dataset '%s%s'", file, gpath, name);
  hid_t sp = H5Dget_space(ds);
  hsize_t d[8];
  int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
  int rc = 0;
  if (r != rank) {
    rc = err_set(e, EXIT_RUNTIME, "%s: dataset '%s%s' has rank %d, expected %d", file, gpath, name,
                 r, rank);
  } else {
    H5Sget_simple_extent_dims(sp, d, NULL);
    for (int i = 0; i < rank; i++) {
      if (dims[i] && dims[i] != d[i])
        rc = err_set(e, EXIT_RUNTIME, "%s: dataset '%s%s' dim %d is %llu, expected %llu", file,
                     gpath, name, i, (unsigned long long)d[i], (unsigned long long)dims[i]);
      dims[i] = d[i];
    }
  }
  if (rc == 0) {
    *out = malloc(dims_count(rank, dims) * 4 + 1);
    if (!*out) rc = err_set(e, EXIT_RUNTIME, "%s: out of memory reading '%s%s'", file, gpath, name);
  }
  if (rc == 0 && H5Dread(ds, is_int ? H5T_NATIVE_INT32 : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL,
                         H5P_DEFAULT, *out) < 0)
    rc = err_set(e, EXIT_RUNTIME, "%s: cannot read dataset '%s%s'", file, gpath, name);
  if (rc != 0) {
    free(*out);
    *out = NULL;
  }
  if (sp >= 0) H5Sclose(sp);
  H5Dclose(ds);
  return rc;
}

static int read_all(hid_t f, hid_t g, const char *path, const char *group, trace *tr, err *e) {
  char gp[256];
  snprintf(gp, sizeof gp, "%s%s", group, group[strlen(group) - 1] == '/' ? "" : "/");
  hsize_t d[3] = {0, 0, 0};
  void *p;
  /* golden.h5 keeps input_ids at the file root, not inside the precision group */
  int in_group = H5Lexists(g, "input_ids", H5P_DEFAULT) > 0;
  if (read_ds(in_group ? g : f, path, in_group ? gp : "/", "input_ids", 1, 1, d, 0, &p, e)) return -1;
  tr->input_ids = p;
  if (d[0] < 1 || d[0] > INT32_MAX)
    return err_set(e, EXIT_RUNTIME, "%s: '%sinput_ids' holds %llu positions", path, gp, (unsigned long long)d[0]);
  tr->T = (int)d[0];
  hsize_t dl[2] = {d[0], 0};
  if (read_ds(g, path, gp, "logits", 0, 2, dl, 0, &p, e)) return -1;
  tr->logits = p;
  if (dl[1] < 1 || dl[1] > INT32_MAX)
    return err_set(e, EXIT_RUNTIME, "%s: '%slogits' has %llu columns", path, gp, (unsigned long long)dl[1]);
  tr->V = (int)dl[1];
  hsize_t de[2] = {d[0], 0};
  if (read_ds(g, path, gp, "embedding_out", 0, 2, de, 1, &p, e)) return -1;
  tr->embedding_out = p;
  if (p && (de[1] < 1 || de[1] > INT32_MAX))
    return err_set(e, EXIT_RUNTIME, "%s: '%sembedding_out' has %llu columns", path, gp, (unsigned long long)de[1]);
  tr->D = p ? (int)de[1] : 0;
  de[1] = (hsize_t)tr->D;
  if (read_ds(g, path, gp, "final_norm_out", 0, 2, de, 1, &p, e)) return -1;
  tr->final_norm_out = p;
  if (p && !tr->D) tr->D = (int)de[1]; /* checked against hidden_after_attn below */

  hid_t lg = H5Gopen2(g, "layers", H5P_DEFAULT);
  if (lg < 0) return err_set(e, EXIT_RUNTIME, "%s: group '%slayers' missing", path, gp);
  H5G_info_t info;
  int rc = H5Gget_info(lg, &info) < 0 ? -1 : 0;
  tr->n_layers = rc == 0 ? (int)info.nlinks : 0;
  tr->layers = calloc((size_t)(tr->n_layers ? tr->n_layers : 1), sizeof(model_layer_capture));
  tr->sliding_window = calloc((size_t)(tr->n_layers ? tr->n_layers : 1), sizeof(int));
  if (rc != 0 || !tr->layers || !tr->sliding_window) {
    H5Gclose(lg);
    return err_set(e, EXIT_RUNTIME, "%s: cannot list '%slayers'", path, gp);
  }
  /* the first layer fixes E, K, QKV, HD, I (and D if no embedding_out); every other dataset,
   * in every layer, must then have exactly the shape those widths give */
  for (int l = 0; rc == 0 && l < tr->n_layers; l++) {
    char name[32], lp[320];
    snprintf(name, sizeof name, "%d", l);
    snprintf(lp, sizeof lp, "%slayers/%d/", gp, l);
    hid_t lgr = H5Gopen2(lg, name, H5P_DEFAULT);
    if (lgr < 0) {
      rc = err_set(e, EXIT_RUNTIME, "%s: group '%s' missing (layers must be 0..%d)", path, lp,
                   tr->n_layers - 1);
      break;
    }
    if (H5Aexists(lgr, "sliding_window") > 0) {
      hid_t a = H5Aopen(lgr, "sliding_window", H5P_DEFAULT);
      long long v = 0;
      if (a < 0 || H5Aread(a, H5T_NATIVE_LLONG, &v) < 0)
        rc = err_set(e, EXIT_RUNTIME, "%s: cannot read attribute '%s' sliding_window", path, lp);
      if (a >= 0) H5Aclose(a);
      tr->sliding_window[l] = (int)v;
    }
    for (int i = 0; rc == 0 && i < N_LAYER_SETS; i++) {
      hsize_t dims[3];
      const int rank = layer_shape(tr, i, dims);
      const char *n = layer_sets[i].name;
      /* a width still unknown (0) in dims is learnt from this dataset */
      rc = read_ds(lgr, path, lp, n, layer_sets[i].is_int, rank, dims, layer_sets[i].debug,
                   member(&tr->layers[l], i), e);
      if (rc != 0 || !*member(&tr->layers[l], i)) continue;
      int *w = width_of(tr, layer_sets[i].defines);
      const hsize_t got = !strcmp(n, "mlp1_out") ? dims[2] / 2 : rank == 3 ? dims[2] : dims[1];
      if (w && *w == 0) {
        if (got < 1 || got > INT32_MAX / 4 || (!strcmp(n, "mlp1_out") && dims[2] % 2))
          rc = err_set(e, EXIT_RUNTIME, "%s: dataset '%s%s' has an unusable width %llu", path,
                       lp, n, (unsigned long long)(rank == 3 ? dims[2] : dims[1]));
        else
          *w = (int)got;
      }
      for (int j = 1; rc == 0 && j < rank; j++)
        if (dims[j] == 0)
          rc = err_set(e, EXIT_RUNTIME, "%s: dataset '%s%s' has an empty dimension", path, lp, n);
    }
    H5Gclose(lgr);
  }
  H5Gclose(lg);
  return rc;
}

int trace_read(const char *path, const char *group, trace *tr, err *e) {
  memset(tr, 0, sizeof *tr);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  if (access(path, R_OK) != 0) return err_errno(e, errno, "%s: cannot read trace file", path);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return err_set(e, EXIT_RUNTIME, "%s: not an HDF5 file", path);
  hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
  int rc;
  if (g < 0) {
    rc = err_set(e, EXIT_RUNTIME, "%s: group '%s' not found", path, group);
  } else {
    rc = read_all(f, g, path, group, tr, e);
    H5Gclose(g);
  }
  H5Fclose(f);
  if (rc != 0) trace_free(tr);
  return rc;
}
