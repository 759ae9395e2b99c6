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

/* One layer's datasets: name, element type (0 float, 1 int32), optional (debug), the capture
 * member, and the shape in width letters (trace_read checks every dataset against them): T
 * positions, D hidden, E experts, K top-k, Q = Dh*(H+2KV), H = H*Dh, I intermediate, 2 = 2I. */
typedef struct {
  const char *name;
  int is_int;
  int debug;                 /* optional when reading */
  size_t off;                /* offsetof(model_layer_capture, member) */
  const char *shape;
} layer_ds;

static const layer_ds layer_sets[] = {
    {"router_logits", 0, 0, offsetof(model_layer_capture, router_logits), "TE"},
    {"topk_indices", 1, 0, offsetof(model_layer_capture, topk_indices), "TK"},
    {"topk_values", 0, 0, offsetof(model_layer_capture, topk_values), "TK"},
    {"topk_weights", 0, 0, offsetof(model_layer_capture, topk_weights), "TK"},
    {"hidden_after_attn", 0, 0, offsetof(model_layer_capture, hidden_after_attn), "TD"},
    {"hidden_after_mlp", 0, 0, offsetof(model_layer_capture, hidden_after_mlp), "TD"},
    {"attn_norm_out", 0, 1, offsetof(model_layer_capture, attn_norm_out), "TD"},
    {"qkv_out", 0, 1, offsetof(model_layer_capture, qkv_out), "TQ"},
    {"sdpa_out", 0, 1, offsetof(model_layer_capture, sdpa_out), "TH"},
    {"mlp_norm_out", 0, 1, offsetof(model_layer_capture, mlp_norm_out), "TD"},
    {"mlp1_out", 0, 1, offsetof(model_layer_capture, mlp1_out), "TK2"},
    {"swiglu_out", 0, 1, offsetof(model_layer_capture, swiglu_out), "TKI"},
};
#define N_LAYER_SETS (int)(sizeof layer_sets / sizeof layer_sets[0])

static void **member(model_layer_capture *lc, int i) {
  return (void **)((char *)lc + layer_sets[i].off);
}

/* A width letter's value in a trace (the letters of layer_ds.shape, and V for the vocabulary). */
static int64_t width(const trace *tr, char w) {
  switch (w) {
    case 'T': return tr->T;
    case 'V': return tr->V;
    case 'D': return tr->D;
    case 'E': return tr->E;
    case 'K': return tr->K;
    case 'Q': return tr->QKV;
    case 'H': return tr->HD;
    case 'I': return tr->I;
    case '2': return 2 * (int64_t)tr->I;
    default: return 0;
  }
}

/* Shape of layer dataset i (rank and dims) for trace tr. */
static int layer_shape(const trace *tr, int i, hsize_t dims[3]) {
  const char *sh = layer_sets[i].shape;
  int r = 0;
  for (; sh[r]; r++) dims[r] = (hsize_t)width(tr, sh[r]);
  return r;
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

int trace_stage(const trace *tr, const trace_meta *meta, const char *path, atomic_out **staged,
                err *e) {
  h5io_file f;
  *staged = NULL;
  if (h5io_create(path, &f, e) != 0) return -1;
  if (write_all(f.file, tr, meta, path, e) != 0) {
    h5io_abort(&f);
    return -1;
  }
  return h5io_finish(&f, staged, e);
}

int trace_write(const trace *tr, const trace_meta *meta, const char *path, err *e) {
  atomic_out *o;
  if (trace_stage(tr, meta, path, &o, e) != 0) return -1;
  return atomic_publish(o, e);
}

/* ---------------------------------------------------------------- reading */

/* Reading is two passes: first the shape of every dataset (nothing allocated), checked against
 * the widths the trace's config attributes give, or else against the widths most datasets agree
 * on, so that a wrong dataset is named as the wrong one and a file that claims more data than it
 * holds is refused before any memory is spent on it; then the data. */

#define SURVEY_MAX_VOTES 8
typedef struct {
  int64_t v[SURVEY_MAX_VOTES];
  int n[SURVEY_MAX_VOTES];
  int used;
  int64_t fixed;           /* from a config attribute, 0 if none */
} votes;

typedef struct {
  const char *path, *gp;   /* file, group path with a trailing '/' */
  votes w[128];            /* by width letter */
} survey;

static void vote(survey *sv, char letter, int64_t value) {
  votes *v = &sv->w[(unsigned char)letter];
  for (int i = 0; i < v->used; i++)
    if (v->v[i] == value) { v->n[i]++; return; }
  if (v->used < SURVEY_MAX_VOTES) {
    v->v[v->used] = value;
    v->n[v->used++] = 1;
  }
}

/* The agreed value of a width: the config attribute's, else the most common one (the first seen
 * on a tie); 0 if nothing voted. */
static int64_t agreed(const survey *sv, char letter) {
  const votes *v = &sv->w[(unsigned char)letter];
  if (v->fixed) return v->fixed;
  int best = -1;
  for (int i = 0; i < v->used; i++)
    if (best < 0 || v->n[i] > v->n[best]) best = i;
  return best < 0 ? 0 : v->v[best];
}

/* Rank and dims of a dataset (-1 if absent); an unreadable one is an error. */
static int ds_shape(hid_t loc, const char *file, const char *gpath, const char *name, int *rank,
                    hsize_t *dims, err *e) {
  *rank = -1;
  if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) return 0;
  hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
  if (ds < 0) return err_set(e, EXIT_RUNTIME, "%s: cannot open dataset '%s%s'", file, gpath, name);
  hid_t sp = H5Dget_space(ds);
  int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
  int rc = 0;
  if (r < 1 || r > 3)
    rc = err_set(e, EXIT_RUNTIME, "%s: dataset '%s%s' has rank %d (traces hold 1 to 3)", file, gpath,
                 name, r);
  else
    H5Sget_simple_extent_dims(sp, dims, NULL);
  /* the data must be in the file: an unfiltered dataset stores every byte it declares, a
   * compressed one at most ~1032:1 (deflate's limit) */
  if (rc == 0) {
    hid_t ty = H5Dget_type(ds), dcpl = H5Dget_create_plist(ds);
    const double want = (double)dims_count(r, dims) * (double)(ty >= 0 ? H5Tget_size(ty) : 4);
    const double have = (double)H5Dget_storage_size(ds);
    const int filtered = dcpl >= 0 && H5Pget_nfilters(dcpl) > 0;
    if (have < (filtered ? want / 1100.0 : want))
      rc = err_set(e, EXIT_RUNTIME, "%s: dataset '%s%s' declares %.0f bytes but the file holds %.0f "
                   "of them (truncated or forged trace)", file, gpath, name, want, have);
    if (ty >= 0) H5Tclose(ty);
    if (dcpl >= 0) H5Pclose(dcpl);
  }
  if (sp >= 0) H5Sclose(sp);
  H5Dclose(ds);
  *rank = rc == 0 ? r : -1;
  return rc;
}

/* Survey one dataset: its shape must have the rank of its letters; every letter votes. */
static int survey_ds(survey *sv, hid_t loc, const char *gpath, const char *name, const char *shape,
                     int optional, err *e) {
  int rank;
  hsize_t d[3] = {0, 0, 0};
  if (ds_shape(loc, sv->path, gpath, name, &rank, d, e) != 0) return -1;
  if (rank < 0) {
    if (optional) return 0;
    return err_set(e, EXIT_RUNTIME, "%s: dataset '%s%s' missing", sv->path, gpath, name);
  }
  const int want = (int)strlen(shape);
  if (rank != want)
    return err_set(e, EXIT_RUNTIME, "%s: dataset '%s%s' has rank %d, expected %d", sv->path, gpath,
                   name, rank, want);
  for (int i = 0; i < rank; i++) {
    if (d[i] < 1 || d[i] > (1ull << 31) || (shape[i] == '2' && d[i] % 2))
      return err_set(e, EXIT_RUNTIME, "%s: dataset '%s%s' dim %d is %llu", sv->path, gpath, name, i,
                     (unsigned long long)d[i]);
    vote(sv, shape[i] == '2' ? 'I' : shape[i], shape[i] == '2' ? (int64_t)d[i] / 2 : (int64_t)d[i]);
  }
  return 0;
}

/* Check a dataset's shape against the agreed widths (second look, after every vote). */
static int check_ds(const survey *sv, hid_t loc, const char *gpath, const char *name,
                    const char *shape, err *e) {
  int rank;
  hsize_t d[3] = {0, 0, 0};
  if (ds_shape(loc, sv->path, gpath, name, &rank, d, e) != 0 || rank < 0) return rank < 0 ? 0 : -1;
  for (int i = 0; i < rank; i++) {
    const char l = shape[i] == '2' ? 'I' : shape[i];
    const int64_t w = agreed(sv, l) * (shape[i] == '2' ? 2 : 1);
    if ((int64_t)d[i] != w) {
      char got[96], exp[96];
      int g = 0, x = 0;
      for (int k = 0; k < rank; k++) {
        const int64_t wk = agreed(sv, shape[k] == '2' ? 'I' : shape[k]) * (shape[k] == '2' ? 2 : 1);
        g += snprintf(got + g, sizeof got - (size_t)g, "%s%llu", k ? ", " : "", (unsigned long long)d[k]);
        x += snprintf(exp + x, sizeof exp - (size_t)x, "%s%lld", k ? ", " : "", (long long)wk);
      }
      return err_set(e, EXIT_RUNTIME, "%s: dataset '%s%s' has shape [%s], expected [%s] (%s)",
                     sv->path, gpath, name, got, exp,
                     sv->w[(unsigned char)l].fixed ? "from the trace's configuration attributes"
                                                   : "the shape the other datasets agree on");
    }
  }
  return 0;
}

/* Read a dataset whose shape was checked into a new buffer (NULL and 0 if absent). */
static int read_ds(hid_t loc, const char *file, const char *gpath, const char *name, int is_int,
                   size_t n, void **out, err *e) {
  *out = NULL;
  if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) return 0;
  hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
  if (ds < 0) return err_set(e, EXIT_RUNTIME, "%s: cannot open dataset '%s%s'", file, gpath, name);
  int rc = 0;
  if (!(*out = malloc(n * 4 + 1)))
    rc = err_set(e, EXIT_RUNTIME, "%s: out of memory reading '%s%s'", file, gpath, name);
  else if (H5Dread(ds, is_int ? H5T_NATIVE_INT32 : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                   *out) < 0)
    rc = err_set(e, EXIT_RUNTIME, "%s: cannot read dataset '%s%s' as %s", file, gpath, name,
                 is_int ? "int32" : "float32");
  if (rc != 0) {
    free(*out);
    *out = NULL;
  }
  H5Dclose(ds);
  return rc;
}

/* A positive integer attribute of g, or 0. */
static int64_t attr_pos(hid_t g, const char *key) {
  long long x = 0;
  if (H5Aexists(g, key) <= 0) return 0;
  hid_t a = H5Aopen(g, key, H5P_DEFAULT);
  if (a < 0 || H5Aread(a, H5T_NATIVE_LLONG, &x) < 0) x = 0;
  if (a >= 0) H5Aclose(a);
  return x > 0 && x < (1ll << 31) ? x : 0;
}

/* The config attributes a trace of ours carries (trace_meta) fix the widths. */
static void fixed_from_attrs(survey *sv, hid_t g) {
  sv->w['E'].fixed = attr_pos(g, "num_experts");
  sv->w['K'].fixed = attr_pos(g, "experts_per_token");
  sv->w['D'].fixed = attr_pos(g, "hidden_size");
  sv->w['I'].fixed = attr_pos(g, "intermediate_size");
  sv->w['V'].fixed = attr_pos(g, "vocab_size");
  const int64_t dh = attr_pos(g, "head_dim"), h = attr_pos(g, "num_attention_heads"),
                kv = attr_pos(g, "num_key_value_heads");
  if (dh && h && kv) {
    sv->w['Q'].fixed = dh * (h + 2 * kv);
    sv->w['H'].fixed = dh * h;
  }
}

/* routing_only: every shape checked, but of the data only input_ids and topk_indices read. */
static int read_all(hid_t f, hid_t g, const char *path, const char *group, int routing_only,
                    trace *tr, err *e) {
  char gp[256];
  snprintf(gp, sizeof gp, "%s%s", group, group[strlen(group) - 1] == '/' ? "" : "/");
  survey *sv = calloc(1, sizeof *sv);
  if (!sv) return err_set(e, EXIT_RUNTIME, "out of memory");
  sv->path = path;
  sv->gp = gp;
  fixed_from_attrs(sv, g);
  /* golden.h5 keeps input_ids at the file root, not inside the precision group */
  const int in_group = H5Lexists(g, "input_ids", H5P_DEFAULT) > 0;
  const hid_t idloc = in_group ? g : f;
  const char *idgp = in_group ? gp : "/";
  hid_t lg = -1;
  int rc = 0, L = 0;
  if (survey_ds(sv, idloc, idgp, "input_ids", "T", 0, e) || survey_ds(sv, g, gp, "logits", "TV", 0, e) ||
      survey_ds(sv, g, gp, "embedding_out", "TD", 1, e) || survey_ds(sv, g, gp, "final_norm_out", "TD", 1, e))
    rc = -1;
  if (rc == 0 && (lg = H5Gopen2(g, "layers", H5P_DEFAULT)) < 0)
    rc = err_set(e, EXIT_RUNTIME, "%s: group '%slayers' missing", path, gp);
  H5G_info_t info;
  if (rc == 0 && H5Gget_info(lg, &info) < 0)
    rc = err_set(e, EXIT_RUNTIME, "%s: cannot list '%slayers'", path, gp);
  if (rc == 0 && (info.nlinks < 1 || info.nlinks > 100000))
    rc = err_set(e, EXIT_RUNTIME, "%s: '%slayers' holds %llu layers", path, gp, (unsigned long long)info.nlinks);
  if (rc == 0) L = (int)info.nlinks;
  /* pass 1: every layer's shapes vote; pass 2: every shape is checked against the agreed widths */
  for (int pass = 0; rc == 0 && pass < 2; pass++) {
    if (pass == 1) {
      const char *top[4][3] = {{"input_ids", "T", idgp}, {"logits", "TV", gp}, {"embedding_out", "TD", gp},
                               {"final_norm_out", "TD", gp}};
      for (int i = 0; rc == 0 && i < 4; i++)
        rc = check_ds(sv, i ? g : idloc, top[i][2], top[i][0], top[i][1], e);
    }
    for (int l = 0; rc == 0 && l < L; l++) {
      char name[32], lp[320];
      snprintf(name, sizeof name, "%d", l);
      snprintf(lp, sizeof lp, "%slayers/%d/", gp, l);
      hid_t lgr = H5Lexists(lg, name, H5P_DEFAULT) > 0 ? H5Gopen2(lg, name, H5P_DEFAULT) : -1;
      if (lgr < 0) {
        rc = err_set(e, EXIT_RUNTIME, "%s: group '%s' missing (layers must be 0..%d)", path, lp, L - 1);
        break;
      }
      for (int i = 0; rc == 0 && i < N_LAYER_SETS; i++)
        rc = pass == 0 ? survey_ds(sv, lgr, lp, layer_sets[i].name, layer_sets[i].shape, layer_sets[i].debug, e)
                       : check_ds(sv, lgr, lp, layer_sets[i].name, layer_sets[i].shape, e);
      H5Gclose(lgr);
    }
  }
  if (rc == 0) {
    tr->T = (int)agreed(sv, 'T');
    tr->V = (int)agreed(sv, 'V');
    tr->D = (int)agreed(sv, 'D');
    tr->E = (int)agreed(sv, 'E');
    tr->K = (int)agreed(sv, 'K');
    tr->QKV = (int)agreed(sv, 'Q');
    tr->HD = (int)agreed(sv, 'H');
    tr->I = (int)agreed(sv, 'I');
    tr->n_layers = L;
    tr->layers = calloc((size_t)L, sizeof(model_layer_capture));
    tr->sliding_window = calloc((size_t)L, sizeof(int));
    if (!tr->layers || !tr->sliding_window) rc = err_set(e, EXIT_RUNTIME, "out of memory");
  }
  /* the data */
  void *p;
  const size_t T = (size_t)tr->T, D = (size_t)tr->D;
  if (rc == 0 && (rc = read_ds(idloc, path, idgp, "input_ids", 1, T, &p, e)) == 0) tr->input_ids = p;
  if (rc == 0 && !routing_only &&
      (rc = read_ds(g, path, gp, "logits", 0, T * (size_t)tr->V, &p, e)) == 0) tr->logits = p;
  if (rc == 0 && !routing_only &&
      (rc = read_ds(g, path, gp, "embedding_out", 0, T * D, &p, e)) == 0) tr->embedding_out = p;
  if (rc == 0 && !routing_only &&
      (rc = read_ds(g, path, gp, "final_norm_out", 0, T * D, &p, e)) == 0) tr->final_norm_out = p;
  for (int l = 0; rc == 0 && l < L; l++) {
    char name[32], lp[320];
    snprintf(name, sizeof name, "%d", l);
    snprintf(lp, sizeof lp, "%slayers/%d/", gp, l);
    hid_t lgr = H5Gopen2(lg, name, H5P_DEFAULT);
    if (lgr < 0) {
      rc = err_set(e, EXIT_RUNTIME, "%s: cannot open group '%s'", path, lp);
      break;
    }
    if (H5Aexists(lgr, "sliding_window") > 0) {
      hid_t a = H5Aopen(lgr, "sliding_window", H5P_DEFAULT);
      long long v = 0;
      if (a < 0 || H5Aread(a, H5T_NATIVE_LLONG, &v) < 0 || v < 0 || v > INT32_MAX)
        rc = err_set(e, EXIT_RUNTIME, "%s: bad attribute '%s' sliding_window", path, lp);
      if (a >= 0) H5Aclose(a);
      tr->sliding_window[l] = (int)v;
    }
    for (int i = 0; rc == 0 && i < N_LAYER_SETS; i++) {
      if (routing_only && member(&tr->layers[l], i) != (void **)&tr->layers[l].topk_indices) continue;
      hsize_t dims[3];
      const int rank = layer_shape(tr, i, dims);
      rc = read_ds(lgr, path, lp, layer_sets[i].name, layer_sets[i].is_int, dims_count(rank, dims),
                   member(&tr->layers[l], i), e);
    }
    H5Gclose(lgr);
  }
  if (lg >= 0) H5Gclose(lg);
  free(sv);
  return rc;
}

static int read_file(const char *path, const char *group, int routing_only, trace *tr, err *e) {
  memset(tr, 0, sizeof *tr);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  /* a FIFO or a device would make HDF5 block or read forever */
  int fd = fs_open_regular(path, "trace file", e);
  if (fd < 0) return -1;
  close(fd);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return err_set(e, EXIT_RUNTIME, "%s: not an HDF5 file", path);
  hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
  int rc;
  if (g < 0) {
    rc = err_set(e, EXIT_RUNTIME, "%s: group '%s' not found", path, group);
  } else {
    rc = read_all(f, g, path, group, routing_only, tr, e);
    H5Gclose(g);
  }
  H5Fclose(f);
  if (rc != 0) trace_free(tr);
  return rc;
}

int trace_read(const char *path, const char *group, trace *tr, err *e) {
  return read_file(path, group, 0, tr, e);
}

void trace_split_arg(const char *arg, char *file, size_t fl, char *group, size_t gl) {
  const char *c = strrchr(arg, ':');
  if (c && c[1] == '/') {
    snprintf(file, fl, "%.*s", (int)(c - arg), arg);
    snprintf(group, gl, "%s", c + 1);
  } else {
    snprintf(file, fl, "%s", arg);
    snprintf(group, gl, "/");
  }
}

int trace_read_arg(const char *arg, trace *tr, err *e) {
  char file[4096], group[1024];
  trace_split_arg(arg, file, sizeof file, group, sizeof group);
  return read_file(file, group, 0, tr, e);
}

int trace_read_routing_arg(const char *arg, trace *tr, err *e) {
  char file[4096], group[1024];
  trace_split_arg(arg, file, sizeof file, group, sizeof group);
  return read_file(file, group, 1, tr, e);
}
