/* test_export_ort: run an exported model in ONNX Runtime (parity/ort.h) on a reference trace's
 * input ids and compare (golden.h5:/fp32, or a trace written by `gptoss-mpi run --trace`).
 *
 *   test_export_ort MODEL.onnx REF.h5 GROUP [--batch B] [--tol REL] [--opt-level N]
 *
 * Checks: logits within tol x max|ref| (default 2e-5); when the model exposes them, per layer
 * routing.{n}.topk_indices equal to the reference as sets per token, topk_weights per expert id,
 * router_logits and hidden.{n}.after_attn / after_mlp within the same relative tolerance.
 * With --batch B the ids are fed B times and every batch row must match. Prints the worst errors;
 * exit 0 pass, 1 fail. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ort.h"
#include "trace.h"

static int n_fail;

static const ort_value_out *find_out(const ort_value_out *o, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (!strcmp(o[i].name, name)) return &o[i];
  return NULL;
}

static float max_abs(const float *v, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; i++) m = fabsf(v[i]) > m ? fabsf(v[i]) : m;
  return m;
}

/* rows [T, W] per batch row vs ref [T, W]; returns the worst relative error */
static double cmp_f32(const char *what, const ort_value_out *o, int B, int T, int W,
                      const float *ref, double tol) {
  if (!o || o->elem_type != ORT_T_FLOAT || o->n_bytes != (size_t)B * T * W * 4) {
    printf("FAIL %s: missing or wrong shape/type\n", what);
    n_fail++;
    return INFINITY;
  }
  const float *v = o->data, m = max_abs(ref, (size_t)T * W);
  double worst = 0;
  for (int b = 0; b < B; b++)
    for (size_t i = 0; i < (size_t)T * W; i++) {
      double d = fabs((double)v[(size_t)b * T * W + i] - ref[i]) / (m > 0 ? m : 1);
      if (!(d <= worst)) worst = d;
    }
  if (!(worst <= tol)) {
    printf("FAIL %s: max|a-b|/max|ref| = %.3g > %.3g\n", what, worst, tol);
    n_fail++;
  }
  return worst;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s MODEL.onnx REF.h5 GROUP [--batch B] [--tol REL] [--opt-level N]\n", argv[0]);
    return 2;
  }
  int B = 1, opt = 99;
  double tol = 2e-5;
  for (int i = 4; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--batch")) B = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--tol")) tol = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--opt-level")) opt = atoi(argv[i + 1]);
  }
  err e = {0};
  trace ref;
  if (trace_read(argv[2], argv[3], &ref, &e) != 0) {
    fprintf(stderr, "FAIL: %s\n", e.msg);
    return 1;
  }
  ort_runtime *rt = NULL;
  ort_session *s = NULL;
  ort_session_opts so = ort_session_opts_default();
  so.intra_threads = 2;
  so.opt_level = opt;
  if (ort_open(NULL, &rt, &e) != 0 || ort_session_open(rt, argv[1], &so, &s, &e) != 0) {
    fprintf(stderr, "FAIL: %s\n", e.msg);
    return 1;
  }
  const ort_io_info *outs_info;
  int n_out;
  ort_session_io(s, NULL, NULL, &outs_info, &n_out);
  const int T = ref.T;
  int64_t *ids = malloc((size_t)B * T * sizeof *ids);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) ids[(size_t)b * T + t] = ref.input_ids[t];
  ort_value_out *o = calloc((size_t)n_out, sizeof *o);
  if (ort_run_ids(s, ids, B, T, NULL, n_out, o, &e) != 0) {
    fprintf(stderr, "FAIL: %s\n", e.msg);
    return 1;
  }
  double w = cmp_f32("logits", find_out(o, n_out, "logits"), B, T, ref.V, ref.logits, tol);
  printf("logits: max|a-b|/max|ref| = %.3g (tolerance %.3g), batch %d, T %d\n", w, tol, B, T);

  int n_layers_seen = 0;
  double worst_h = 0, worst_rl = 0, worst_w = 0;
  long set_mismatch = 0, order_diff = 0;
  for (int l = 0; l < ref.n_layers; l++) {
    char name[96], label[96];
    snprintf(name, sizeof name, "routing.%d.topk_indices", l);
    const ort_value_out *ti = find_out(o, n_out, name);
    snprintf(name, sizeof name, "routing.%d.topk_weights", l);
    const ort_value_out *tw = find_out(o, n_out, name);
    const model_layer_capture *r = &ref.layers[l];
    const int K = ref.K;
    if (ti) {
      n_layers_seen++;
      if (ti->elem_type != ORT_T_INT64 || ti->n_bytes != (size_t)B * T * K * 8 || !tw ||
          tw->n_bytes != (size_t)B * T * K * 4) {
        printf("FAIL layer %d: routing outputs of wrong type or shape\n", l);
        n_fail++;
        continue;
      }
      const int64_t *iv = ti->data;
      const float *wv = tw->data;
      for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
          for (int j = 0; j < K; j++) {
            const int64_t got = iv[((size_t)b * T + t) * K + j];
            int found = -1;
            for (int q = 0; q < K; q++)
              if (r->topk_indices[(size_t)t * K + q] == got) found = q;
            if (found < 0) { set_mismatch++; continue; }
            if (found != j) order_diff++;
            double d = fabs(wv[((size_t)b * T + t) * K + j] - r->topk_weights[(size_t)t * K + found]);
            worst_w = d > worst_w ? d : worst_w;
          }
      snprintf(label, sizeof label, "layer %d router_logits", l);
      snprintf(name, sizeof name, "routing.%d.router_logits", l);
      double d = cmp_f32(label, find_out(o, n_out, name), B, T, ref.E, r->router_logits, tol);
      worst_rl = d > worst_rl ? d : worst_rl;
    }
    snprintf(name, sizeof name, "hidden.%d.after_attn", l);
    const ort_value_out *ha = find_out(o, n_out, name);
    if (ha) {
      snprintf(label, sizeof label, "layer %d hidden_after_attn", l);
      double d = cmp_f32(label, ha, B, T, ref.D, r->hidden_after_attn, tol);
      worst_h = d > worst_h ? d : worst_h;
      snprintf(label, sizeof label, "layer %d hidden_after_mlp", l);
      snprintf(name, sizeof name, "hidden.%d.after_mlp", l);
      d = cmp_f32(label, find_out(o, n_out, name), B, T, ref.D, r->hidden_after_mlp, tol);
      worst_h = d > worst_h ? d : worst_h;
    }
  }
  if (n_layers_seen) {
    printf("routing: %d layers, %ld token-slots outside the reference set (must be 0), %ld in "
           "another order; worst weight difference %.3g; router logits %.3g\n",
           n_layers_seen, set_mismatch, order_diff, worst_w, worst_rl);
    if (set_mismatch) n_fail++;
    if (!(worst_w <= tol)) { printf("FAIL topk_weights: %.3g > %.3g\n", worst_w, tol); n_fail++; }
  }
  if (worst_h > 0) printf("hidden states: worst %.3g (tolerance %.3g)\n", worst_h, tol);
  ort_outputs_free(o, n_out);
  free(o);
  free(ids);
  ort_session_close(s);
  ort_close(rt);
  trace_free(&ref);
  printf("%s\n", n_fail ? "FAIL" : "PASS");
  return n_fail ? 1 : 0;
}
