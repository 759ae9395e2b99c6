#include "test_model_check.h"

#include <math.h>
#include <stdio.h>

#include "testutil.h"

double model_check_rel(const float *a, const float *b, size_t n) {
  double md = 0.0, mb = 0.0;
  for (size_t i = 0; i < n; i++) {
    const double d = fabs((double)a[i] - (double)b[i]);
    if (!(d <= md)) md = d; /* NaN propagates as a failure */
    if (fabs((double)b[i]) > mb) mb = fabs((double)b[i]);
  }
  return mb > 0 ? md / mb : md;
}

static double report(const char *tag, const char *name, double rel, double tol) {
  printf("%-6s %-32s rel %.3e  (tol %.0e)%s\n", tag, name, rel, tol, rel <= tol ? "" : "  FAIL");
  TU_CHECK(rel <= tol, "%s %s: worst relative error %.3e above tolerance %.0e", tag, name, rel,
           tol);
  return rel;
}

/* Slot of expert ex in row r of idx [T, K]; -1 if absent. */
static int slot_of(const int32_t *idx, int K, int r, int ex) {
  for (int j = 0; j < K; j++)
    if (idx[(size_t)r * K + j] == ex) return j;
  return -1;
}

/* Per-slot tensor [T, K, W] compared with slots matched by expert id. */
static double rel_by_expert(const float *a, const float *b, const int32_t *ia, const int32_t *ib,
                            int T, int K, int W) {
  double md = 0.0, mb = 0.0;
  for (int t = 0; t < T; t++)
    for (int j = 0; j < K; j++) {
      const int ja = slot_of(ia, K, t, ib[(size_t)t * K + j]);
      for (int w = 0; w < W; w++) {
        const double bv = b[((size_t)t * K + j) * W + w];
        const double av = ja < 0 ? NAN : a[((size_t)t * K + ja) * W + w];
        const double d = fabs(av - bv);
        if (!(d <= md)) md = d;
        if (fabs(bv) > mb) mb = fabs(bv);
      }
    }
  return mb > 0 ? md / mb : md;
}

double model_check_traces(const char *tag, const trace *a, const trace *b, double tol,
                          int with_debug) {
  const int T = b->T, L = b->n_layers;
  const size_t D = b->D, E = b->E, K = b->K;
  double worst = 0.0, r;
  char name[64];
  /* the whole reference is compared: a candidate with fewer positions or layers fails */
  TU_CHECK(a->T == b->T && a->n_layers == b->n_layers, "%s: %d positions x %d layers, the "
           "reference has %d x %d", tag, a->T, a->n_layers, b->T, b->n_layers);
  if (a->T != b->T || a->n_layers != b->n_layers) return INFINITY;
  TU_CHECK(a->D == b->D && a->E == b->E && a->K == b->K && a->V == b->V,
           "%s: shapes differ (D %d/%d E %d/%d K %d/%d V %d/%d)", tag, a->D, b->D, a->E, b->E,
           a->K, b->K, a->V, b->V);
  if (a->D != b->D || a->E != b->E || a->K != b->K || a->V != b->V) return INFINITY;
  for (int t = 0; t < T; t++)
    TU_CHECK(a->input_ids[t] == b->input_ids[t], "%s: input_ids[%d] %d vs %d", tag, t,
             a->input_ids[t], b->input_ids[t]);
  if (with_debug && b->embedding_out) {
    r = report(tag, "embedding_out", model_check_rel(a->embedding_out, b->embedding_out, T * D), tol);
    worst = fmax(worst, r);
  }
  for (int l = 0; l < L; l++) {
    const model_layer_capture *la = &a->layers[l], *lb = &b->layers[l];
    struct { const char *n; const float *x, *y; size_t w; int debug; } plain[] = {
        {"attn_norm_out", la->attn_norm_out, lb->attn_norm_out, D, 1},
        {"qkv_out", la->qkv_out, lb->qkv_out, (size_t)b->QKV, 1},
        {"sdpa_out", la->sdpa_out, lb->sdpa_out, (size_t)b->HD, 1},
        {"hidden_after_attn", la->hidden_after_attn, lb->hidden_after_attn, D, 0},
        {"mlp_norm_out", la->mlp_norm_out, lb->mlp_norm_out, D, 1},
        {"router_logits", la->router_logits, lb->router_logits, E, 0},
        {"hidden_after_mlp", la->hidden_after_mlp, lb->hidden_after_mlp, D, 0},
    };
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
      if (plain[i].debug && (!with_debug || !plain[i].y)) continue;
      snprintf(name, sizeof name, "layers/%d/%s", l, plain[i].n);
      TU_CHECK(plain[i].x != NULL, "%s %s missing in the candidate", tag, name);
      if (!plain[i].x) continue;
      worst = fmax(worst, report(tag, name, model_check_rel(plain[i].x, plain[i].y, T * plain[i].w), tol));
    }
    int set_diff = 0;
    for (int t = 0; t < T; t++)
      for (size_t j = 0; j < K; j++)
        if (slot_of(la->topk_indices, (int)K, t, lb->topk_indices[t * K + j]) < 0) {
          set_diff++;
          break;
        }
    printf("%-6s layers/%d/topk_indices: %d of %d tokens with a different expert set\n", tag, l,
           set_diff, T);
    TU_CHECK(set_diff == 0, "%s layer %d: %d tokens route to a different expert set", tag, l,
             set_diff);
    struct { const char *n; const float *x, *y; int w; int debug; } slots[] = {
        {"topk_values", la->topk_values, lb->topk_values, 1, 0},
        {"topk_weights", la->topk_weights, lb->topk_weights, 1, 0},
        {"mlp1_out", la->mlp1_out, lb->mlp1_out, 2 * b->I, 1},
        {"swiglu_out", la->swiglu_out, lb->swiglu_out, b->I, 1},
    };
    for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++) {
      if (slots[i].debug && (!with_debug || !slots[i].y)) continue;
      snprintf(name, sizeof name, "layers/%d/%s", l, slots[i].n);
      TU_CHECK(slots[i].x && slots[i].y, "%s %s missing in the %s", tag, name,
               slots[i].x ? "reference" : "candidate");
      if (!slots[i].x || !slots[i].y) continue;
      r = rel_by_expert(slots[i].x, slots[i].y, la->topk_indices, lb->topk_indices, T, (int)K,
                        slots[i].w);
      worst = fmax(worst, report(tag, name, r, tol));
    }
  }
  if (with_debug && b->final_norm_out && a->final_norm_out)
    worst = fmax(worst, report(tag, "final_norm_out",
                               model_check_rel(a->final_norm_out, b->final_norm_out, T * D), tol));
  worst = fmax(worst, report(tag, "logits", model_check_rel(a->logits, b->logits, (size_t)T * b->V), tol));
  return worst;
}
