/* test_export_ort: run an exported decoder in ONNX Runtime (parity/ort_decoder.h) on a reference
 * trace's input ids and compare (golden.h5:/fp32, or a trace written by `gptoss-mpi run --trace`).
 *
 *   test_export_ort MODEL.onnx REF.h5 GROUP [--batch B] [--prefill P] [--pad N] [--tol REL]
 *                   [--opt-level N]
 *
 * The ids are fed as a client feeds them: a prefill call on the first P positions (default: all)
 * with an empty cache, then one call per further position with the presents fed back as past.
 * --batch B feeds the ids B times (every row must match). --pad N adds a row that is left-padded
 * by N positions (attention_mask 0, pad id 0 and pad position 1, as transformers.js sends them):
 * its position N + t must equal the reference's position t, i.e. the prompt run alone.
 * Checks: logits within tol x max|ref| (default 2e-5); when the model exposes them, per layer
 * routing.{n}.topk_indices equal to the reference as sets per token, topk_weights per expert id,
 * router_logits and hidden.{n}.after_attn / after_mlp within the same relative tolerance.
 * Prints the worst errors; exit 0 pass, 1 fail. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ort.h"
#include "ort_decoder.h"
#include "trace.h"

static int n_fail;

/* One output assembled over the calls: [B, T, W]. */
typedef struct {
  char name[128];
  int elem_type;
  int64_t W;
  void *data;
} assembled;

static const assembled *find_out(const assembled *o, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (!strcmp(o[i].name, name)) return &o[i];
  return NULL;
}

static float max_abs(const float *v, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; i++) m = fabsf(v[i]) > m ? fabsf(v[i]) : m;
  return m;
}

static int B = 1, T, pad_rows; /* the last pad_rows rows are shifted by pad */
static int pad;

/* Reference position of row b, column c (-1: padding). */
static int ref_pos(int b, int c) {
  const int shift = b >= B - pad_rows ? pad : 0;
  return c - shift;
}

/* o [B, T, W] vs ref [T, W] at every non-padding position; returns the worst relative error */
static double cmp_f32(const char *what, const assembled *o, int W, const float *ref, double tol) {
  if (!o || o->elem_type != ORT_T_FLOAT || o->W != W) {
    printf("FAIL %s: missing or wrong shape/type\n", what);
    n_fail++;
    return INFINITY;
  }
  const float *v = o->data, m = max_abs(ref, (size_t)T * W);
  double worst = 0;
  for (int b = 0; b < B; b++)
    for (int c = 0; c < T; c++) {
      const int t = ref_pos(b, c);
      if (t < 0) continue;
      for (int k = 0; k < W; k++) {
        double d = fabs((double)v[((size_t)b * T + c) * W + k] - ref[(size_t)t * W + k]) / (m > 0 ? m : 1);
        if (!(d <= worst)) worst = d;
      }
    }
  if (!(worst <= tol)) {
    printf("FAIL %s: max|a-b|/max|ref| = %.3g > %.3g\n", what, worst, tol);
    n_fail++;
  }
  return worst;
}

/* Drive the decoder over [B, T] ids: prefill P, then single steps. outs receive every output
 * except the cache, concatenated along the sequence. */
static int run_all(ort_session *s, const int64_t *ids, const int64_t *mask, const int64_t *pos,
                   int P, assembled **outs, int *n_outs, err *e) {
  const ort_io_info *oi;
  int n_o;
  ort_session_io(s, NULL, NULL, &oi, &n_o);
  const char **names = calloc((size_t)n_o, sizeof *names);
  assembled *as = calloc((size_t)n_o, sizeof *as);
  ort_value_out *vals = calloc((size_t)n_o, sizeof *vals);
  int64_t *cid = malloc((size_t)B * T * 8), *cmask = malloc((size_t)B * T * 8), *cpos = malloc((size_t)B * T * 8);
  int n = 0;
  for (int i = 0; i < n_o; i++)
    if (strncmp(oi[i].name, "present.", 8) != 0) {
      names[n] = oi[i].name;
      snprintf(as[n].name, sizeof as[n].name, "%s", oi[i].name);
      n++;
    }
  ort_decoder *d = NULL;
  int rc = ort_decoder_open(s, B, &d, e);
  for (int a = 0; rc == 0 && a < T;) {
    const int b1 = a == 0 ? P : a + 1, S = b1 - a;
    for (int r = 0; r < B; r++) {
      memcpy(cid + (size_t)r * S, ids + (size_t)r * T + a, (size_t)S * 8);
      memcpy(cpos + (size_t)r * S, pos + (size_t)r * T + a, (size_t)S * 8);
      memcpy(cmask + (size_t)r * b1, mask + (size_t)r * T, (size_t)b1 * 8);
    }
    int bad = -1;
    char why[160];
    rc = ort_decoder_run(d, cid, S, cmask, cpos, names, n, vals, &bad, why, sizeof why, e);
    if (rc == 1) {
      printf("FAIL cache after positions [%d, %d): %s (layer %d)\n", a, b1, why, bad);
      n_fail++;
    }
    for (int i = 0; rc == 0 && i < n; i++) {
      const ort_value_out *v = &vals[i];
      if (v->n_dims != 3 || v->shape[0] != B || v->shape[1] != S) {
        rc = err_set(e, EXIT_RUNTIME, "output %s: not [%d, %d, W]", v->name, B, S);
        break;
      }
      const size_t es = ort_elem_size(v->elem_type), W = (size_t)v->shape[2];
      if (!as[i].data) {
        as[i].elem_type = v->elem_type;
        as[i].W = (int64_t)W;
        as[i].data = calloc((size_t)B * T * W, es);
      }
      for (int r = 0; r < B; r++)
        memcpy((char *)as[i].data + ((size_t)r * T + a) * W * es,
               (const char *)v->data + (size_t)r * S * W * es, (size_t)S * W * es);
    }
    ort_outputs_free(vals, n);
    a = b1;
  }
  ort_decoder_close(d);
  free(names);
  free(vals);
  free(cid);
  free(cmask);
  free(cpos);
  *outs = as;
  *n_outs = n;
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s MODEL.onnx REF.h5 GROUP [--batch B] [--prefill P] [--pad N] "
            "[--tol REL] [--opt-level N]\n", argv[0]);
    return 2;
  }
  int opt = 99, P = 0;
  double tol = 2e-5;
  for (int i = 4; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--batch")) B = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--prefill")) P = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--pad")) pad = atoi(argv[i + 1]);
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
  T = ref.T;
  if (P <= 0 || P > T) P = T;
  if (pad > 0) {
    pad_rows = 1;
    B += 1;
  }
  int64_t *ids = malloc((size_t)B * T * 8), *mask = malloc((size_t)B * T * 8), *pos = malloc((size_t)B * T * 8);
  for (int b = 0; b < B; b++)
    for (int c = 0; c < T; c++) {
      const int t = ref_pos(b, c);
      ids[(size_t)b * T + c] = t < 0 ? 0 : ref.input_ids[t];
      mask[(size_t)b * T + c] = t >= 0;
      pos[(size_t)b * T + c] = t < 0 ? 1 : t;
    }
  assembled *o = NULL;
  int n_out = 0;
  if (run_all(s, ids, mask, pos, P, &o, &n_out, &e) != 0) {
    fprintf(stderr, "FAIL: %s\n", e.msg);
    return 1;
  }
  double w = cmp_f32("logits", find_out(o, n_out, "logits"), ref.V, ref.logits, tol);
  printf("logits: max|a-b|/max|ref| = %.3g (tolerance %.3g), batch %d%s, T %d, prefill %d then "
         "%d decode steps\n", w, tol, B, pad ? " (one row left-padded)" : "", T, P, T - P);

  int n_layers_seen = 0;
  double worst_h = 0, worst_rl = 0, worst_w = 0;
  long set_mismatch = 0, order_diff = 0;
  for (int l = 0; l < ref.n_layers; l++) {
    char name[96], label[96];
    snprintf(name, sizeof name, "routing.%d.topk_indices", l);
    const assembled *ti = find_out(o, n_out, name);
    snprintf(name, sizeof name, "routing.%d.topk_weights", l);
    const assembled *tw = find_out(o, n_out, name);
    const model_layer_capture *r = &ref.layers[l];
    const int K = ref.K;
    if (ti) {
      n_layers_seen++;
      if (ti->elem_type != ORT_T_INT64 || ti->W != K || !tw || tw->W != K) {
        printf("FAIL layer %d: routing outputs of wrong type or shape\n", l);
        n_fail++;
        continue;
      }
      const int64_t *iv = ti->data;
      const float *wv = tw->data;
      for (int b = 0; b < B; b++)
        for (int c = 0; c < T; c++) {
          const int t = ref_pos(b, c);
          for (int j = 0; t >= 0 && j < K; j++) {
            const int64_t got = iv[((size_t)b * T + c) * K + j];
            int found = -1;
            for (int q = 0; q < K; q++)
              if (r->topk_indices[(size_t)t * K + q] == got) found = q;
            if (found < 0) { set_mismatch++; continue; }
            if (found != j) order_diff++;
            double d = fabs(wv[((size_t)b * T + c) * K + j] - r->topk_weights[(size_t)t * K + found]);
            worst_w = d > worst_w ? d : worst_w;
          }
        }
      snprintf(label, sizeof label, "layer %d router_logits", l);
      snprintf(name, sizeof name, "routing.%d.router_logits", l);
      double d = cmp_f32(label, find_out(o, n_out, name), ref.E, r->router_logits, tol);
      worst_rl = d > worst_rl ? d : worst_rl;
    }
    snprintf(name, sizeof name, "hidden.%d.after_attn", l);
    const assembled *ha = find_out(o, n_out, name);
    if (ha) {
      snprintf(label, sizeof label, "layer %d hidden_after_attn", l);
      double d = cmp_f32(label, ha, ref.D, r->hidden_after_attn, tol);
      worst_h = d > worst_h ? d : worst_h;
      snprintf(label, sizeof label, "layer %d hidden_after_mlp", l);
      snprintf(name, sizeof name, "hidden.%d.after_mlp", l);
      d = cmp_f32(label, find_out(o, n_out, name), ref.D, r->hidden_after_mlp, tol);
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
  for (int i = 0; i < n_out; i++) free(o[i].data);
  free(o);
  free(ids);
  free(mask);
  free(pos);
  ort_session_close(s);
  ort_close(rt);
  trace_free(&ref);
  printf("%s\n", n_fail ? "FAIL" : "PASS");
  return n_fail ? 1 : 0;
}
