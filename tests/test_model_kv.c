/* KV-cache consistency on golden/case-a (sliding window 8, so decode steps past position 8
 * exercise the window on cached keys):
 *   - each greedy decode step's logits equal the last row of a fresh prefill of the same ids;
 *   - a prefill split into two calls (pos0 > 0, T > 1) equals a single prefill likewise.
 * In the row-stable mode (model_opts.row_stable: the direct kernels for every product, fixed-
 * order q.k dots) a token's arithmetic does not depend on the call at all, so the only
 * difference between the paths is the cache itself: they must be bitwise equal. In the default
 * mode the q.k scores (and, above the kernel crossovers, the matrix products) go through sgemm,
 * whose summation order changes with the matrix shape (~1 ulp per product), so there the same
 * checks use the project's fp32 target, 1e-5. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "model.h"
#include "test_model_check.h"
#include "testutil.h"

#define N_PROMPT 6
#define N_STEPS 20
#define TOL_STABLE 0.0
#define TOL_SGEMM 1e-5

static const int32_t prompt[N_PROMPT] = {37, 297, 214, 493, 138, 380};

/* Fresh model + cache: logits [V] of the last of ids[0..n). */
static int fresh_prefill(const ckpt *ck, int row_stable, const int32_t *ids, int n, float *out,
                         err *e) {
  const gpt_config *c = ckpt_config(ck);
  model *m = NULL;
  model_kv kv = {0};
  model_opts o = {.max_tokens = n, .max_seq = n, .precision = MODEL_FP32, .row_stable = row_stable};
  int rc = model_open(ck, &o, &m, e);
  if (rc == 0) rc = model_kv_init(c, 0, c->n_layers, n, &kv, e);
  if (rc == 0) rc = model_forward(m, &kv, ids, n, 0, c->n_layers, 0, out, NULL, e);
  model_kv_free(&kv);
  model_close(m);
  return rc;
}

static void check_kv(const ckpt *ck, int row_stable, double TOL) {
  const char *mode = row_stable ? "row-stable" : "default";
  err e = {0};
  const gpt_config *c = ckpt_config(ck);
  const int V = c->vocab, S = N_PROMPT + N_STEPS;
  float *lg = malloc((size_t)V * sizeof(float)), *ref = malloc((size_t)S * V * sizeof(float));
  int32_t seq[N_PROMPT + N_STEPS];
  memcpy(seq, prompt, sizeof prompt);

  /* prefill then decode with the cache */
  model *m = NULL;
  model_kv kv = {0};
  model_opts o = {.max_tokens = N_PROMPT, .max_seq = S, .precision = MODEL_FP32, .row_stable = row_stable};
  TU_CHECK(model_open(ck, &o, &m, &e) == 0, "%s", e.msg);
  TU_CHECK(model_kv_init(c, 0, c->n_layers, S, &kv, &e) == 0, "%s", e.msg);
  TU_CHECK(model_forward(m, &kv, seq, N_PROMPT, 0, c->n_layers, 0, lg, NULL, &e) == 0, "%s", e.msg);
  double worst = 0.0;
  for (int pos = N_PROMPT; pos < S; pos++) {
    int best = 0;
    for (int v = 1; v < V; v++)
      if (lg[v] > lg[best]) best = v;
    seq[pos] = best;
    TU_CHECK(model_forward(m, &kv, seq + pos, 1, pos, c->n_layers, 0, lg, NULL, &e) == 0, "%s",
             e.msg);
    TU_CHECK(fresh_prefill(ck, row_stable, seq, pos + 1, ref, &e) == 0, "%s", e.msg);
    const double r = model_check_rel(lg, ref, (size_t)V);
    if (r > worst) worst = r;
    TU_CHECK(r <= TOL, "decode step at position %d: logits differ from a fresh prefill by %.3e (tol %.0e)",
             pos, r, TOL);
  }
  printf("kv %s: %d decode steps, worst relative difference to a fresh prefill %.3e (tol %.0e)\n",
         mode, N_STEPS, worst, TOL);

  /* split prefill: [0, 11) then [11, S) in one call each, all logits */
  model_close(m);
  model_kv_reset(&kv);
  o.max_tokens = S;
  m = NULL;
  TU_CHECK(model_open(ck, &o, &m, &e) == 0, "%s", e.msg);
  float *split = malloc((size_t)S * V * sizeof(float));
  TU_CHECK(model_forward(m, &kv, seq, 11, 0, c->n_layers, 1, split, NULL, &e) == 0, "%s", e.msg);
  TU_CHECK(model_forward(m, &kv, seq + 11, S - 11, 11, c->n_layers, 1, split + (size_t)11 * V,
                         NULL, &e) == 0, "%s", e.msg);
  model_kv_reset(&kv);
  TU_CHECK(model_forward(m, &kv, seq, S, 0, c->n_layers, 1, ref, NULL, &e) == 0, "%s", e.msg);
  const double r = model_check_rel(split, ref, (size_t)S * V);
  printf("kv %s: split prefill (11 + %d) vs one prefill of %d: relative difference %.3e (tol %.0e)\n",
         mode, S - 11, S, r, TOL);
  TU_CHECK(r <= TOL, "split prefill differs by %.3e (tol %.0e)", r, TOL);

  /* a cache that does not hold the earlier positions is refused, not read */
  model_kv_reset(&kv);
  TU_CHECK(model_forward(m, &kv, seq, 1, 5, c->n_layers, 0, lg, NULL, &e) != 0,
           "decode at position 5 with an empty cache must fail");

  free(split);
  free(lg);
  free(ref);
  model_kv_free(&kv);
  model_close(m);
}

int main(void) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/original", tu_golden_dir());
  err e = {0};
  ckpt *ck = NULL;
  if (ckpt_open(dir, &ck, &e) != 0) {
    fprintf(stderr, "cannot open %s: %s\n", dir, e.msg);
    return 1;
  }
  check_kv(ck, 1, TOL_STABLE);
  check_kv(ck, 0, TOL_SGEMM);
  ckpt_close(ck);
  return tu_finish("test_model_kv");
}
