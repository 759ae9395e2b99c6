/* An ONNX Runtime run as a trace (ort_trace.h). */
#include "ort_trace.h"
#include "resume.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ort_decoder.h"

/* Output names per layer, in the order fetched. */
enum { OUT_IDX, OUT_W, OUT_LOGITS, OUT_ATTN, OUT_MLP, OUTS_PER_LAYER };
static const char *const out_fmt[OUTS_PER_LAYER] = {
    "routing.%d.topk_indices", "routing.%d.topk_weights", "routing.%d.router_logits",
    "hidden.%d.after_attn", "hidden.%d.after_mlp"};

static int find_io(const ort_io_info *io, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (!strcmp(io[i].name, name)) return i;
  return -1;
}

/* Check an output's type and [1, S, width] shape. */
static int check_out(const ort_value_out *v, int elem, int S, int64_t width, const char *model,
                     err *e) {
  if (v->elem_type != elem || v->n_dims != 3 || v->shape[0] != 1 || v->shape[1] != S ||
      v->shape[2] != width)
    return err_set(e, EXIT_RUNTIME, "%s: output '%s' has type %d and shape [%lld, %lld, %lld], "
                   "expected type %d and [1, %d, %lld]", model, v->name, v->elem_type,
                   (long long)(v->n_dims > 0 ? v->shape[0] : -1),
                   (long long)(v->n_dims > 1 ? v->shape[1] : -1),
                   (long long)(v->n_dims > 2 ? v->shape[2] : -1), elem, S, (long long)width);
  return 0;
}

/* What a run fetches: OUTS_PER_LAYER names per layer, then logits (with_logits). */
typedef struct {
  int layer0, n_layers, with_logits, n_names;
  char (*names)[128];
  const char **np;
  ort_value_out *vals;
} fetch;

static void fetch_free(fetch *f) {
  if (f->vals) ort_outputs_free(f->vals, f->n_names);
  free(f->vals);
  free(f->np);
  free(f->names);
}

/* The names to fetch; the layer outputs and logits must exist, and no layer after the
 * reference's last may (it would compute other logits). */
static int fetch_init(fetch *f, ort_session *s, const gpt_config *c, int layer0, int n_layers,
                      int with_logits, int sub_model, err *e) {
  const char *model = ort_session_path(s);
  const ort_io_info *outs;
  int n_outs;
  ort_session_io(s, NULL, NULL, &outs, &n_outs);
  memset(f, 0, sizeof *f);
  f->layer0 = layer0;
  f->n_layers = n_layers;
  f->with_logits = with_logits;
  f->n_names = OUTS_PER_LAYER * n_layers + (with_logits ? 1 : 0);
  f->names = calloc((size_t)f->n_names, sizeof *f->names);
  f->np = calloc((size_t)f->n_names, sizeof *f->np);
  f->vals = calloc((size_t)f->n_names, sizeof *f->vals);
  if (!f->names || !f->np || !f->vals) return err_set(e, EXIT_RUNTIME, "out of memory");
  for (int l = 0; l < n_layers; l++)
    for (int k = 0; k < OUTS_PER_LAYER; k++)
      snprintf(f->names[OUTS_PER_LAYER * l + k], sizeof f->names[0], out_fmt[k], layer0 + l);
  if (with_logits) snprintf(f->names[OUTS_PER_LAYER * n_layers], sizeof f->names[0], "logits");
  for (int i = 0; i < f->n_names; i++) f->np[i] = f->names[i];
  for (int i = 0; i < f->n_names; i++)
    if (find_io(outs, n_outs, f->names[i]) < 0)
      return err_set(e, EXIT_RUNTIME, "%s: the model has no output '%s': parity needs the routing "
                     "and hidden outputs of layers %d-%d; re-export with `gptoss-mpi export CKPT "
                     "--output DIR --expose routing,hidden%s`", model, f->names[i], layer0,
                     layer0 + n_layers - 1, sub_model ? " --layers A:B" :
                     n_layers < c->n_layers ? " --max-layers N" : "");
  /* a model that goes on after the reference's last layer computes other logits: say so
   * rather than report a failed parity */
  char extra[2][64];
  snprintf(extra[0], 64, out_fmt[OUT_IDX], layer0 + n_layers);
  snprintf(extra[1], 64, out_fmt[OUT_MLP], layer0 + n_layers);
  if (find_io(outs, n_outs, extra[0]) >= 0 || find_io(outs, n_outs, extra[1]) >= 0)
    return err_set(e, EXIT_RUNTIME, "%s: the model runs more layers than the reference (%d-%d): "
                   "export it with `--max-layers %d`, or compare on all layers", model,
                   layer0, layer0 + n_layers - 1, layer0 + n_layers);
  return 0;
}

/* Copy one call's layer outputs and logits (positions [a, a + S)) into the trace. */
static int fetch_store(const fetch *f, const gpt_config *c, int a, int S, trace *out,
                       const char *model, err *e) {
  const int K = c->top_k, E = c->n_experts, D = c->hidden, V = c->vocab;
  if (f->with_logits) {
    const ort_value_out *lg = &f->vals[OUTS_PER_LAYER * f->n_layers];
    if (check_out(lg, ORT_T_FLOAT, S, V, model, e) != 0) return -1;
    memcpy(out->logits + (size_t)a * V, lg->data, (size_t)S * V * sizeof(float));
  }
  for (int l = 0; l < f->n_layers; l++) {
    const ort_value_out *v = &f->vals[OUTS_PER_LAYER * l];
    model_layer_capture *lc = &out->layers[l];
    if (check_out(&v[OUT_IDX], ORT_T_INT64, S, K, model, e) ||
        check_out(&v[OUT_W], ORT_T_FLOAT, S, K, model, e) ||
        check_out(&v[OUT_LOGITS], ORT_T_FLOAT, S, E, model, e) ||
        check_out(&v[OUT_ATTN], ORT_T_FLOAT, S, D, model, e) ||
        check_out(&v[OUT_MLP], ORT_T_FLOAT, S, D, model, e))
      return -1;
    const int64_t *idx = v[OUT_IDX].data;
    for (size_t i = 0; i < (size_t)S * K; i++) {
      if (idx[i] < 0 || idx[i] >= E)
        return err_set(e, EXIT_RUNTIME, "%s: %s holds expert %lld, outside [0, %d)", model,
                       v[OUT_IDX].name, (long long)idx[i], E);
      lc->topk_indices[(size_t)a * K + i] = (int32_t)idx[i];
    }
    memcpy(lc->topk_weights + (size_t)a * K, v[OUT_W].data, (size_t)S * K * sizeof(float));
    memcpy(lc->router_logits + (size_t)a * E, v[OUT_LOGITS].data, (size_t)S * E * sizeof(float));
    memcpy(lc->hidden_after_attn + (size_t)a * D, v[OUT_ATTN].data, (size_t)S * D * sizeof(float));
    memcpy(lc->hidden_after_mlp + (size_t)a * D, v[OUT_MLP].data, (size_t)S * D * sizeof(float));
    for (int t = a; t < a + S; t++)
      for (int j = 0; j < K; j++)
        lc->topk_values[t * K + j] = lc->router_logits[(size_t)t * E + lc->topk_indices[t * K + j]];
  }
  return 0;
}

/* A trace for n_layers layers with only what an ONNX run has (no debug tensors, no embedding or
 * final norm; logits only when asked). */
static int trace_for_run(trace *out, const gpt_config *c, int T, int n_layers, int with_logits,
                         err *e) {
  if (trace_alloc(out, c, T, n_layers, e) != 0) return -1;
  for (int l = 0; l < n_layers; l++) {
    model_layer_capture *lc = &out->layers[l];
    float **dbg[] = {&lc->attn_norm_out, &lc->qkv_out, &lc->sdpa_out, &lc->mlp_norm_out,
                     &lc->mlp1_out, &lc->swiglu_out};
    for (size_t i = 0; i < sizeof dbg / sizeof dbg[0]; i++) {
      free(*dbg[i]);
      *dbg[i] = NULL;
    }
  }
  free(out->embedding_out);
  free(out->final_norm_out);
  out->embedding_out = out->final_norm_out = NULL;
  if (!with_logits) {
    free(out->logits);
    out->logits = NULL;
  }
  return 0;
}

int ort_trace_model_path(const char *arg, char *path, size_t len, err *e) {
  struct stat st;
  if (resume_refuse_partial(arg, e) != 0) return -1; /* an unfinished export (shards/resume.h) */
  if (stat(arg, &st) == 0 && S_ISDIR(st.st_mode)) {
    if ((size_t)snprintf(path, len, "%s/onnx/model.onnx", arg) >= len)
      return err_set(e, EXIT_USAGE, "%s: path too long", arg);
    if (stat(path, &st) != 0)
      return err_errno(e, errno, "%s: no exported model in this directory (%s)", arg, path);
    return 0;
  }
  if ((size_t)snprintf(path, len, "%s", arg) >= len)
    return err_set(e, EXIT_USAGE, "%s: path too long", arg);
  return 0;
}

/* ------------------------------------------------------------------ the decoder, as a client */

int ort_trace_run(ort_runtime *rt, const char *model_path, const gpt_config *c, int n_layers,
                  const int32_t *ids, int T, int n_prefill, int threads, trace *out, err *e) {
  memset(out, 0, sizeof *out);
  if (T < 1 || n_prefill < 1 || n_prefill > T)
    return err_set(e, EXIT_USAGE, "parity: a prefill of %d of %d positions", n_prefill, T);
  ort_session_opts so = ort_session_opts_default();
  so.intra_threads = threads;
  ort_session *s = NULL;
  if (ort_session_open(rt, model_path, &so, &s, e) != 0) return -1;
  ort_decoder *dec = NULL;
  int have_trace = 0;
  fetch f = {0};
  int64_t *ids64 = malloc((size_t)T * sizeof *ids64);
  int rc = ids64 ? 0 : err_set(e, EXIT_RUNTIME, "out of memory");
  if (rc == 0) rc = ort_decoder_open(s, 1, &dec, e);
  if (rc == 0) rc = fetch_init(&f, s, c, 0, n_layers, 1, 0, e);
  if (rc == 0) rc = (have_trace = trace_for_run(out, c, T, n_layers, 1, e) == 0) ? 0 : -1;
  if (rc == 0 && !(out->call = malloc((size_t)T * sizeof *out->call)))
    rc = err_set(e, EXIT_RUNTIME, "out of memory");
  for (int t = 0; rc == 0 && t < T; t++) {
    ids64[t] = ids[t];
    out->call[t] = -1;
  }
  if (rc == 0) memcpy(out->input_ids, ids, (size_t)T * sizeof *ids);
  /* call k covers positions [a, b): the prefill [0, n_prefill), then one position per step */
  for (int k = 0, a = 0; rc == 0 && a < T; k++) {
    const int b = k == 0 ? n_prefill : a + 1;
    char why[160];
    int bad_layer = -1;
    const int r = ort_decoder_run(dec, ids64 + a, b - a, NULL, NULL, f.np, f.n_names, f.vals,
                                  &bad_layer, why, sizeof why, e);
    rc = r < 0 ? -1 : fetch_store(&f, c, a, b - a, out, model_path, e);
    ort_outputs_free(f.vals, f.n_names);
    if (rc != 0) {
      if (k > 0) {
        char ctx[sizeof e->msg];
        snprintf(ctx, sizeof ctx, "%s", e->msg);
        err_clear(e);
        err_set(e, EXIT_RUNTIME, "decode step %d (position %d): %s", k, a, ctx);
      }
      break;
    }
    for (int t = a; t < b; t++) out->call[t] = k;
    if (r == 1) { /* a cache a client cannot feed back: the next call is where it breaks */
      snprintf(out->stop_reason, sizeof out->stop_reason,
               "decode step %d (position %d) would be fed the cache of the %s as its past: %s "
               "(something besides the tokens' keys and values is stored in the cache, e.g. the "
               "sink; a client feeding it back fails here)", k + 1, b,
               k == 0 ? "prefill" : "step before", why);
      out->stop_call = k + 1;
      out->stop_layer = bad_layer;
      break;
    }
    a = b;
  }
  if (rc != 0 && have_trace) trace_free(out);
  ort_decoder_close(dec);
  fetch_free(&f);
  free(ids64);
  ort_session_close(s);
  return rc;
}

/* ------------------------------------------------------------------ sub-models */

int ort_trace_run_stage(ort_runtime *rt, const char *model_path, const gpt_config *c, int layer0,
                        int layer1, int with_logits, const float *hidden_in, int T, int threads,
                        trace *out, err *e) {
  memset(out, 0, sizeof *out);
  const int n_layers = layer1 - layer0;
  ort_session_opts so = ort_session_opts_default();
  so.intra_threads = threads;
  so.disable_prepacking = 1; /* one copy of the weights: per-stage parity runs near a memory budget */
  so.disable_arena = 1;      /* and no arena: its growth steps cost 25 % of a 120b layer (docs/scaling.md) */
  ort_session *s = NULL;
  if (ort_session_open(rt, model_path, &so, &s, e) != 0) return -1;
  fetch f = {0};
  int have_trace = 0;
  int rc = fetch_init(&f, s, c, layer0, n_layers, with_logits, 1, e);
  if (rc == 0) rc = (have_trace = trace_for_run(out, c, T, n_layers, with_logits, e) == 0) ? 0 : -1;
  if (rc == 0) rc = ort_run_hidden(s, hidden_in, 1, T, c->hidden, f.np, f.n_names, f.vals, e);
  if (rc == 0) rc = fetch_store(&f, c, 0, T, out, model_path, e);
  if (rc != 0 && have_trace) trace_free(out);
  fetch_free(&f);
  ort_session_close(s);
  return rc;
}
