/* test_export_kv: the pieces of issue 11 in one process, so that the sanitizer build covers
 * them (the ONNX Runtime checks of the real export run in the normal build: export_golden,
 * parity_onnx, client_tjs):
 *   - golden/case-a exported as a decoder with export_write_local + export_client_files_write
 *     (the graph builder, the layout, the client files);
 *   - ort_trace_run driving a tiny decoder (tests/ort_models.py decoder.onnx, values exact) as a
 *     client: a prefill of 2, then one step per position; every value checked, so a position,
 *     a cache or a call fed wrong shows; trace.call says which call computed each position;
 *   - a decoder whose cache holds one row too many (decoder_sink.onnx): the run stops after the
 *     prefill, and parity_compare fails at decode step 1, layer 0, comparing only the prefill;
 *   - parity_compare on the good run: pass; one value altered at position 3: fails there, with
 *     its call and layer; the report, summary and chart are written.
 * Usage: test_export_kv MODELS_SCRIPT (ort_models.py) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "compare.h"
#include "export_client.h"
#include "export_layout.h"
#include "export_write.h"
#include "ort.h"
#include "ort_trace.h"
#include "report.h"
#include "testutil.h"
#include "trace.h"

#define T 5
static const int32_t ids[T] = {5, 7, 2, 9, 4};
static char *models;

static const char *mpath(const char *name) {
  static char p[4][4096];
  static int k;
  k = (k + 1) % 4;
  snprintf(p[k], sizeof p[k], "%s/%s", models, name);
  return p[k];
}

/* The tiny decoder's dimensions (ort_models.py): V 3, E 2, K 1, D 2, one layer. */
static gpt_config tiny_config(void) {
  gpt_config c;
  config_defaults(&c);
  c.n_layers = 1;
  c.n_experts = 2;
  c.top_k = 1;
  c.vocab = 3;
  c.hidden = 2;
  c.intermediate = 32;
  c.head_dim = 2;
  c.n_heads = 1;
  c.n_kv_heads = 1;
  return c;
}

/* What decoder.onnx computes for ids with a prefill of P: call ends b(t) = P for the prefill,
 * t + 1 after it; after_mlp = the sum of the ids in the cache after that call. */
static void expected(const gpt_config *c, int P, trace *tr) {
  err e = {0};
  trace_alloc(tr, c, T, 1, &e);
  model_layer_capture *l = &tr->layers[0];
  for (int t = 0; t < T; t++) {
    const int b = t < P ? P : t + 1;
    float sum = 0;
    for (int u = 0; u < b; u++) sum += (float)ids[u];
    tr->input_ids[t] = ids[t];
    for (int v = 0; v < 3; v++) tr->logits[t * 3 + v] = (float)ids[t];
    l->topk_indices[t] = ids[t] % 2;
    l->topk_values[t] = (float)t;
    l->topk_weights[t] = 1;
    for (int k = 0; k < 2; k++) {
      l->router_logits[t * 2 + k] = (float)t;
      l->hidden_after_attn[t * 2 + k] = (float)t;
      l->hidden_after_mlp[t * 2 + k] = sum;
    }
  }
}

static void test_export(void) {
  char ckdir[4096];
  snprintf(ckdir, sizeof ckdir, "%s", tu_golden_dir());
  err e = {0};
  ckpt *ck = NULL;
  if (ckpt_open(ckdir, &ck, &e) != 0) {
    TU_CHECK(0, "%s", e.msg);
    return;
  }
  char *dir = tu_mkdtemp("export_kv");
  const gpt_config *c = ckpt_config(ck);
  export_opts o = {.dense = EXPORT_DENSE_BF16, .n_layers = c->n_layers, .max_positions = 64,
                   .expose_routing = 1, .expose_hidden = 1};
  export_layout L;
  int rc = export_layout_make(ck, &o, NULL, &L, &e);
  TU_CHECK(rc == 0, "layout: %s", e.msg);
  if (rc == 0) {
    int n_tok = -1;
    TU_CHECK(export_write_local(ck, &L, dir, &e) == 0, "write: %s", e.msg);
    TU_CHECK(export_client_files_write(&L, ck, dir, NULL, &n_tok, &e) == 0 && n_tok == 0,
             "client files: %s (%d tokenizer files)", e.msg, n_tok);
    char p[4300], model[4300];
    snprintf(p, sizeof p, "%s/genai_config.json", dir);
    size_t n = 0;
    char *txt = tu_read_file(p, &n);
    TU_CHECK(txt && strstr(txt, "\"onnx/model.onnx\"") && strstr(txt, "\"gptoss\"") &&
             strstr(txt, "\"present.%d.key\""), "genai_config.json names the decoder");
    free(txt);
    TU_CHECK(ort_trace_model_path(dir, model, sizeof model, &e) == 0 && strstr(model, "/onnx/model.onnx"),
             "export directory -> %s (%s)", model, e.msg);
    export_layout_free(&L);
  }
  ckpt_close(ck);
  tu_rm_rf(dir);
  free(dir);
}

static void test_compare(const trace *ref, trace *cand) {
  parity_thresholds th;
  parity_thresholds_default(&th);
  parity_result r;
  err e = {0};
  int rc = parity_compare(ref, cand, &th, &r, &e);
  TU_CHECK(rc == 0 && r.pass && r.n_compared == T && r.first_bad_position == -1,
           "faithful run: pass %d, compared %d, first bad %d (%s)", r.pass, r.n_compared,
           r.first_bad_position, r.reasons);
  if (rc == 0) {
    char *dir = tu_mkdtemp("export_kv_report");
    char rp[4200], sp[4200], cp[4200];
    snprintf(rp, sizeof rp, "%s/report.h5", dir);
    snprintf(sp, sizeof sp, "%s/report.md", dir);
    snprintf(cp, sizeof cp, "%s/report.svg", dir);
    gpt_config c = tiny_config();
    parity_meta m = {"tiny", "expected values", "decoder.onnx", "", 1, &c, &th, NULL, 0};
    atomic_out *o[3] = {NULL, NULL, NULL};
    TU_CHECK(parity_report_stage(rp, &r, &m, ref, cand, &o[0], &e) == 0 &&
             parity_summary_stage(sp, "report.svg", &r, &m, ref, cand, &o[1], &e) == 0 &&
             parity_chart_stage(cp, &r, &o[2], &e) == 0 && atomic_publish_all(o, 3, &e) == 0,
             "report: %s", e.msg);
    for (int i = 0; i < 3; i++) atomic_abort(o[i]);
    size_t n = 0;
    char *md = tu_read_file(sp, &n);
    TU_CHECK(md && strstr(md, "prefill of positions 0-1, then 3 decode steps"), "summary names the calls");
    free(md);
    tu_rm_rf(dir);
    free(dir);
    parity_result_free(&r);
  }
  /* one hidden value off at position 3 (decode step 2) */
  float *h = &cand->layers[0].hidden_after_attn[3 * 2 + 1];
  const float keep = *h;
  *h += 1.0f;
  rc = parity_compare(ref, cand, &th, &r, &e);
  char name[48] = "";
  if (rc == 0) parity_call_name(r.first_bad_call, name, sizeof name);
  TU_CHECK(rc == 0 && !r.pass && r.first_bad_position == 3 && r.first_bad_call == 2 &&
           r.first_bad_position_layer == 0 && !strcmp(name, "decode step 2"),
           "altered position 3: first bad %d (%s) layer %d", r.first_bad_position, name,
           r.first_bad_position_layer);
  if (rc == 0) parity_result_free(&r);
  *h = keep;
}

static void test_driver(void) {
  const gpt_config c = tiny_config();
  ort_runtime *rt = NULL;
  err e = {0};
  if (ort_open(NULL, &rt, &e) != 0) {
    TU_CHECK(0, "ONNX Runtime: %s", e.msg);
    return;
  }
  trace ref, cand;
  expected(&c, 2, &ref);
  int rc = ort_trace_run(rt, mpath("decoder.onnx"), &c, 1, ids, T, 2, 1, &cand, &e);
  TU_CHECK(rc == 0, "ort_trace_run: %s", e.msg);
  if (rc == 0) {
    static const int32_t want_call[T] = {0, 0, 1, 2, 3};
    TU_CHECK(cand.call && !memcmp(cand.call, want_call, sizeof want_call) && !cand.stop_reason[0],
             "calls: prefill 0-1, then steps 1-3 (%s)", cand.stop_reason);
    const model_layer_capture *a = &ref.layers[0], *b = &cand.layers[0];
    int same = !memcmp(ref.logits, cand.logits, T * 3 * sizeof(float)) &&
               !memcmp(a->topk_indices, b->topk_indices, T * sizeof(int32_t)) &&
               !memcmp(a->topk_values, b->topk_values, T * sizeof(float)) &&
               !memcmp(a->router_logits, b->router_logits, T * 2 * sizeof(float)) &&
               !memcmp(a->hidden_after_attn, b->hidden_after_attn, T * 2 * sizeof(float)) &&
               !memcmp(a->hidden_after_mlp, b->hidden_after_mlp, T * 2 * sizeof(float));
    TU_CHECK(same, "every value as predicted (positions, ids, the cache fed back)");
    test_compare(&ref, &cand);
    trace_free(&cand);
  }
  /* a cache one row too long: the run stops after the prefill and fails at step 1 */
  rc = ort_trace_run(rt, mpath("decoder_sink.onnx"), &c, 1, ids, T, 2, 1, &cand, &e);
  TU_CHECK(rc == 0, "ort_trace_run (sink in cache): %s", e.msg);
  if (rc == 0) {
    TU_CHECK(cand.stop_call == 1 && cand.stop_layer == 0 && cand.call[1] == 0 && cand.call[2] == -1 &&
             strstr(cand.stop_reason, "present.0.key [1, 1, 3, 1] holds 3 positions after 2"),
             "stop: call %d layer %d: %s", cand.stop_call, cand.stop_layer, cand.stop_reason);
    parity_thresholds th;
    parity_thresholds_default(&th);
    parity_result r;
    rc = parity_compare(&ref, &cand, &th, &r, &e);
    TU_CHECK(rc == 0 && !r.pass && r.n_compared == 2 && r.first_bad_position == 2 &&
             r.first_bad_call == 1 && r.first_bad_position_layer == 0 && r.first_bad_layer == 0 &&
             isnan(r.mlp_err[3]) && r.compared[3] == 0,
             "stopped run: pass %d, compared %d, first bad %d call %d layer %d: %s", r.pass,
             r.n_compared, r.first_bad_position, r.first_bad_call, r.first_bad_position_layer,
             r.reasons);
    if (rc == 0) parity_result_free(&r);
    trace_free(&cand);
  }
  /* not a decoder: refused with the reason */
  rc = ort_trace_run(rt, mpath("tiny.onnx"), &c, 1, ids, T, 2, 1, &cand, &e);
  TU_CHECK(rc == -1 && strstr(e.msg, "not a decoder with a KV cache"), "tiny.onnx: %s", e.msg);
  trace_free(&ref);
  ort_close(rt);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: test_export_kv MODELS_SCRIPT\n");
    return 2;
  }
  models = tu_mkdtemp("export_kv_models");
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s'", argv[1], models);
  if (system(cmd) != 0) {
    fprintf(stderr, "FAIL: %s did not write the test models\n", cmd);
    return 1;
  }
  test_export();
  test_driver();
  tu_rm_rf(models);
  free(models);
  return tu_finish("test_export_kv");
}
