/* An ONNX Runtime run as a trace (ort_trace.h). */
#include "ort_trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Output names per layer, in the order fetched. */
enum { OUT_IDX, OUT_W, OUT_LOGITS, OUT_ATTN, OUT_MLP, OUTS_PER_LAYER };
static const char *const out_fmt[OUTS_PER_LAYER] = {
    "routing.%d.topk_indices", "routing.%d.topk_weights", "routing.%d.router_logits",
    "hidden.%d.after_attn", "hidden.%d.after_mlp"};

static int has_output(const ort_io_info *outs, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (!strcmp(outs[i].name, name)) return 1;
  return 0;
}

/* Check an output's type and [1, T, width] shape. */
static int check_out(const ort_value_out *v, int elem, int T, int64_t width, const char *model,
                     err *e) {
  if (v->elem_type != elem || v->n_dims != 3 || v->shape[0] != 1 || v->shape[1] != T ||
      v->shape[2] != width)
    return err_set(e, EXIT_RUNTIME, "%s: output '%s' has type %d and shape [%lld, %lld, %lld], "
                   "expected type %d and [1, %d, %lld]", model, v->name, v->elem_type,
                   (long long)(v->n_dims > 0 ? v->shape[0] : -1),
                   (long long)(v->n_dims > 1 ? v->shape[1] : -1),
                   (long long)(v->n_dims > 2 ? v->shape[2] : -1), elem, T, (long long)width);
  return 0;
}

/* The shared run: layers [layer0, layer0 + n_layers) of the model at model_path on either ids
 * [T] (whole model) or hidden [T, D] (sub-model), logits fetched when with_logits. The trace
 * holds those layers as its layers 0..n_layers-1. */
static int run_trace(ort_runtime *rt, const char *model_path, const gpt_config *c, int layer0,
                     int n_layers, int with_logits, const int32_t *ids, const float *hidden,
                     int T, int threads, trace *out, err *e) {
  memset(out, 0, sizeof *out);
  ort_session_opts so = ort_session_opts_default();
  so.intra_threads = threads;
  ort_session *s = NULL;
  if (ort_session_open(rt, model_path, &so, &s, e) != 0) return -1;
  const ort_io_info *outs;
  int n_outs;
  ort_session_io(s, NULL, NULL, &outs, &n_outs);

  /* the names to fetch: five per layer, then logits; all must exist */
  const int n_names = OUTS_PER_LAYER * n_layers + (with_logits ? 1 : 0);
  const int lg = OUTS_PER_LAYER * n_layers; /* index of logits */
  char (*names)[64] = calloc((size_t)n_names, sizeof *names);
  const char **np = calloc((size_t)n_names, sizeof *np);
  ort_value_out *vals = calloc((size_t)n_names, sizeof *vals);
  int64_t *ids64 = malloc((size_t)T * sizeof *ids64);
  int rc = names && np && vals && ids64 ? 0 : err_set(e, EXIT_RUNTIME, "out of memory");
  if (rc == 0) {
    if (with_logits) snprintf(names[lg], 64, "logits");
    for (int l = 0; l < n_layers; l++)
      for (int k = 0; k < OUTS_PER_LAYER; k++)
        snprintf(names[OUTS_PER_LAYER * l + k], 64, out_fmt[k], layer0 + l);
    for (int i = 0; i < n_names; i++) np[i] = names[i];
    for (int i = 0; i < n_names && rc == 0; i++)
      if (!has_output(outs, n_outs, names[i]))
        rc = err_set(e, EXIT_RUNTIME, "%s: the model has no output '%s': parity needs the routing "
                     "and hidden outputs of layers %d-%d; re-export with `gptoss-mpi export CKPT "
                     "--output DIR --expose routing,hidden%s`", model_path, names[i], layer0,
                     layer0 + n_layers - 1, hidden ? " --layers A:B" :
                     n_layers < c->n_layers ? " --max-layers N" : "");
  }
  /* a model that goes on after the reference's last layer computes other logits: say so
   * rather than report a failed parity */
  if (rc == 0) {
    char extra[2][64];
    snprintf(extra[0], 64, out_fmt[OUT_IDX], layer0 + n_layers);
    snprintf(extra[1], 64, out_fmt[OUT_MLP], layer0 + n_layers);
    if (has_output(outs, n_outs, extra[0]) || has_output(outs, n_outs, extra[1]))
      rc = err_set(e, EXIT_RUNTIME, "%s: the model runs more layers than the reference (%d-%d): "
                   "export it with `--max-layers %d`, or compare on all layers", model_path,
                   layer0, layer0 + n_layers - 1, layer0 + n_layers);
  }
  for (int t = 0; rc == 0 && ids && t < T; t++) ids64[t] = ids[t];
  if (rc == 0)
    rc = hidden ? ort_run_hidden(s, hidden, 1, T, c->hidden, np, n_names, vals, e)
                : ort_run_ids(s, ids64, 1, T, np, n_names, vals, e);
  if (rc == 0) rc = trace_alloc(out, c, T, n_layers, e);
  const int K = c->top_k, E = c->n_experts, D = c->hidden, V = c->vocab;
  if (rc == 0 && with_logits) rc = check_out(&vals[lg], ORT_T_FLOAT, T, V, model_path, e);
  if (rc == 0 && with_logits) memcpy(out->logits, vals[lg].data, (size_t)T * V * sizeof(float));
  if (rc == 0 && ids) memcpy(out->input_ids, ids, (size_t)T * sizeof *ids);
  for (int l = 0; rc == 0 && l < n_layers; l++) {
    const ort_value_out *v = &vals[OUTS_PER_LAYER * l];
    model_layer_capture *lc = &out->layers[l];
    if (check_out(&v[OUT_IDX], ORT_T_INT64, T, K, model_path, e) ||
        check_out(&v[OUT_W], ORT_T_FLOAT, T, K, model_path, e) ||
        check_out(&v[OUT_LOGITS], ORT_T_FLOAT, T, E, model_path, e) ||
        check_out(&v[OUT_ATTN], ORT_T_FLOAT, T, D, model_path, e) ||
        check_out(&v[OUT_MLP], ORT_T_FLOAT, T, D, model_path, e)) {
      rc = -1;
      break;
    }
    const int64_t *idx = v[OUT_IDX].data;
    for (size_t i = 0; i < (size_t)T * K && rc == 0; i++) {
      if (idx[i] < 0 || idx[i] >= E)
        rc = err_set(e, EXIT_RUNTIME, "%s: %s holds expert %lld, outside [0, %d)", model_path,
                     v[OUT_IDX].name, (long long)idx[i], E);
      else
        lc->topk_indices[i] = (int32_t)idx[i];
    }
    if (rc) break;
    memcpy(lc->topk_weights, v[OUT_W].data, (size_t)T * K * sizeof(float));
    memcpy(lc->router_logits, v[OUT_LOGITS].data, (size_t)T * E * sizeof(float));
    memcpy(lc->hidden_after_attn, v[OUT_ATTN].data, (size_t)T * D * sizeof(float));
    memcpy(lc->hidden_after_mlp, v[OUT_MLP].data, (size_t)T * D * sizeof(float));
    for (int t = 0; t < T; t++)
      for (int j = 0; j < K; j++)
        lc->topk_values[t * K + j] = lc->router_logits[(size_t)t * E + lc->topk_indices[t * K + j]];
    /* the debug tensors were allocated by trace_alloc but an ONNX run has none */
    float **dbg[] = {&lc->attn_norm_out, &lc->qkv_out, &lc->sdpa_out, &lc->mlp_norm_out,
                     &lc->mlp1_out, &lc->swiglu_out};
    for (size_t i = 0; i < sizeof dbg / sizeof dbg[0]; i++) {
      free(*dbg[i]);
      *dbg[i] = NULL;
    }
  }
  if (rc == 0) {
    free(out->embedding_out);
    free(out->final_norm_out);
    out->embedding_out = out->final_norm_out = NULL;
    if (!with_logits) {
      free(out->logits);
      out->logits = NULL;
    }
  } else if (out->layers) {
    trace_free(out);
  }
  if (vals) ort_outputs_free(vals, n_names);
  free(vals);
  free(np);
  free(names);
  free(ids64);
  ort_session_close(s);
  return rc;
}

int ort_trace_run(ort_runtime *rt, const char *model_path, const gpt_config *c, int n_layers,
                  const int32_t *ids, int T, int threads, trace *out, err *e) {
  return run_trace(rt, model_path, c, 0, n_layers, 1, ids, NULL, T, threads, out, e);
}

int ort_trace_run_stage(ort_runtime *rt, const char *model_path, const gpt_config *c, int layer0,
                        int layer1, int with_logits, const float *hidden_in, int T, int threads,
                        trace *out, err *e) {
  return run_trace(rt, model_path, c, layer0, layer1 - layer0, with_logits, NULL, hidden_in, T,
                   threads, out, e);
}
