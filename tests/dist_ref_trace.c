/* dist_ref_trace: the single-process reference of the distributed tests. Runs the issue-3
 * engine (model_forward on one process holding every tensor, one KV cache for all layers,
 * one BLAS thread) over a prompt with greedy generation, exactly as `run` did before it was
 * distributed, and writes the trace. tests/dist_test.py checks that `mpirun -np P gptoss-mpi run`
 * writes the same bits for every P and split.
 *
 * usage: dist_ref_trace CKPT IDS MAX_TOKENS fp32|bf16 MAX_LAYERS(0 = all) OUT.h5
 * Prints the generated ids (comma-separated) on stdout; exit 0 ok, 1 error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "model.h"
#include "trace.h"

static int parse_ids(const char *s, int32_t **out, int *n) {
  int cap = 16, k = 0;
  int32_t *v = malloc((size_t)cap * sizeof *v);
  while (v && *s) {
    char *end;
    long x = strtol(s, &end, 10);
    if (end == s || x < 0 || x > INT32_MAX) break;
    if (k == cap && !(v = realloc(v, (size_t)(cap *= 2) * sizeof *v))) break;
    v[k++] = (int32_t)x;
    s = *end == ',' ? end + 1 : end;
    if (*end && *end != ',') break;
  }
  if (!v || *s || k == 0) {
    free(v);
    return -1;
  }
  *out = v;
  *n = k;
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: dist_ref_trace CKPT IDS MAX_TOKENS fp32|bf16 MAX_LAYERS OUT.h5\n");
    return 2;
  }
  err e = {0};
  ckpt *ck = NULL;
  model *m = NULL;
  model_kv kv = {0};
  trace tr = {0};
  int32_t *ids = NULL, *seq = NULL;
  int n_prompt = 0, rc = 1, have_trace = 0;
  const int n_new = atoi(argv[3]), bf16 = !strcmp(argv[4], "bf16");
  if (parse_ids(argv[2], &ids, &n_prompt) != 0) {
    fprintf(stderr, "dist_ref_trace: bad ids '%s'\n", argv[2]);
    return 2;
  }
  model_set_threads(1);
  if (ckpt_open(argv[1], &ck, &e) != 0) goto out;
  const gpt_config *c = ckpt_config(ck);
  const int n_layers = atoi(argv[5]) > 0 ? atoi(argv[5]) : c->n_layers;
  const int T_all = n_prompt + (n_new > 1 ? n_new - 1 : 0), V = c->vocab;
  model_opts mo = {.max_tokens = n_prompt, .max_seq = T_all,
                   .precision = bf16 ? MODEL_BF16 : MODEL_FP32};
  if (model_open(ck, &mo, &m, &e) != 0 || model_kv_init(c, 0, n_layers, T_all, &kv, &e) != 0 ||
      trace_alloc(&tr, c, T_all, n_layers, &e) != 0)
    goto out;
  have_trace = 1;
  if (!(seq = malloc((size_t)T_all * sizeof *seq))) goto out;
  memcpy(seq, ids, (size_t)n_prompt * sizeof *seq);
  model_capture cap;
  trace_capture(&tr, &cap);
  cap.logits = NULL; /* written straight into the trace, as issue 3's run did */
  if (model_forward(m, &kv, seq, n_prompt, 0, n_layers, 1, tr.logits, &cap, &e) != 0) goto out;
  int pos = n_prompt;
  for (int k = 0; k < n_new; k++) {
    const float *last = tr.logits + (size_t)(pos - 1) * V;
    int best = 0;
    for (int v = 1; v < V; v++)
      if (last[v] > last[best]) best = v;
    printf("%s%d", k ? "," : "", best);
    if (k == n_new - 1) break;
    seq[pos] = best;
    if (model_forward(m, &kv, seq + pos, 1, pos, n_layers, 1, tr.logits + (size_t)pos * V, &cap,
                      &e) != 0)
      goto out;
    pos++;
  }
  printf("\n");
  memcpy(tr.input_ids, seq, (size_t)T_all * sizeof *seq);
  trace_meta meta = {bf16 ? "bf16" : "fp32", 1, ckpt_dir(ck), c};
  if (trace_write(&tr, &meta, argv[6], &e) != 0) goto out;
  rc = 0;
out:
  if (rc != 0) fprintf(stderr, "dist_ref_trace: %s\n", e.msg[0] ? e.msg : "out of memory");
  if (have_trace) trace_free(&tr);
  model_kv_free(&kv);
  model_close(m);
  ckpt_close(ck);
  free(seq);
  free(ids);
  return rc;
}
