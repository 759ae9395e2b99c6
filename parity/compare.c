/* Routing parity metrics (compare.h). */
#include "compare.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void parity_thresholds_default(parity_thresholds *t) {
  t->tie_margin = 0.0;
  t->min_set_match = 1.0;
  t->max_weight_diff = 1e-4;
  t->max_logits_rel = 1e-4;
  t->max_hidden_rel = 1e-4;
}

void parity_result_free(parity_result *r) {
  free(r->set_match);
  free(r->order_match);
  free(r->near_tie);
  free(r->after_mismatch);
  free(r->weight_diff);
  free(r->router_diff);
  free(r->attn_err);
  free(r->mlp_err);
  free(r->margin);
  free(r->layers);
  free(r->top1_match);
  free(r->compared);
  memset(r, 0, sizeof *r);
}

void parity_call_name(int call, char *buf, size_t len) {
  if (call == 0) snprintf(buf, len, "prefill");
  else if (call > 0) snprintf(buf, len, "decode step %d", call);
  else snprintf(buf, len, "%s", "");
}

/* Position t fails a check at layer l (-1: the logits): keep the earliest, lowest layer. */
static void bad_at(parity_result *r, const trace *cand, int t, int l) {
  if (r->first_bad_position >= 0 && t > r->first_bad_position) return;
  if (r->first_bad_position == t && r->first_bad_position_layer >= 0 &&
      (l < 0 || l >= r->first_bad_position_layer))
    return;
  r->first_bad_position = t;
  r->first_bad_position_layer = l;
  r->first_bad_call = cand->call ? cand->call[t] : -1;
}

static double max_abs(const float *a, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++)
    if (fabs(a[i]) > m) m = fabs(a[i]);
  return m;
}

/* k-th minus (k+1)-th largest of row[0..E) (+inf when k == E: nothing could take its place). */
static double router_margin(const float *row, int E, int K) {
  if (K >= E) return INFINITY;
  /* the K+1 largest values in descending order (insertion into a short sorted list) */
  double top[1024 + 1];
  int n = 0;
  for (int i = 0; i < E; i++) {
    double v = row[i];
    int p = n < K + 1 ? n++ : K + 1;
    if (p == K + 1 && v <= top[K]) continue;
    if (p == K + 1) p = K;
    while (p > 0 && top[p - 1] < v) {
      top[p] = top[p - 1];
      p--;
    }
    top[p] = v;
  }
  return top[K - 1] - top[K];
}

/* Row error: max |a - b| over n values divided by scale (0 when scale is 0 and equal). */
static double row_err(const float *a, const float *b, size_t n, double scale) {
  double m = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - (double)b[i]);
    if (d > m || isnan(d)) m = isnan(d) ? INFINITY : d;
  }
  return scale > 0 ? m / scale : m;
}

__attribute__((format(printf, 3, 4))) static void add_reason(parity_result *r, int layer,
                                                             const char *fmt, ...) {
  char buf[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  size_t n = strlen(r->reasons);
  snprintf(r->reasons + n, sizeof r->reasons - n, "%s%s", n ? "; " : "", buf);
  if (layer >= 0 && (r->first_bad_layer < 0 || layer < r->first_bad_layer)) r->first_bad_layer = layer;
}

int parity_compare(const trace *ref, const trace *cand, const parity_thresholds *th,
                   parity_result *r, err *e) {
  memset(r, 0, sizeof *r);
  if (ref->T != cand->T || ref->n_layers != cand->n_layers || ref->K != cand->K ||
      ref->E != cand->E || ref->V != cand->V || ref->D != cand->D)
    return err_set(e, EXIT_RUNTIME, "parity: traces do not match in shape: reference T=%d L=%d "
                   "K=%d E=%d V=%d D=%d, candidate T=%d L=%d K=%d E=%d V=%d D=%d", ref->T,
                   ref->n_layers, ref->K, ref->E, ref->V, ref->D, cand->T, cand->n_layers,
                   cand->K, cand->E, cand->V, cand->D);
  for (int t = 0; t < ref->T; t++)
    if (ref->input_ids[t] != cand->input_ids[t])
      return err_set(e, EXIT_RUNTIME, "parity: the traces saw different token ids at position %d "
                     "(%d vs %d)", t, ref->input_ids[t], cand->input_ids[t]);
  if (ref->K > 1024 || ref->E < 1)
    return err_set(e, EXIT_RUNTIME, "parity: top-k %d is beyond what the report supports", ref->K);
  const int T = ref->T, L = ref->n_layers, K = ref->K, E = ref->E, D = ref->D, V = ref->V;
  const size_t LT = (size_t)L * T;
  r->T = T; r->L = L; r->K = K; r->E = E;
  r->first_bad_layer = r->first_bad_position = r->first_bad_position_layer = r->first_bad_call = -1;
  r->compared = calloc(T ? (size_t)T : 1, 1);
  r->set_match = calloc(LT ? LT : 1, 1);
  r->order_match = calloc(LT ? LT : 1, 1);
  r->near_tie = calloc(LT ? LT : 1, 1);
  r->after_mismatch = calloc(LT ? LT : 1, 1);
  r->weight_diff = calloc(LT ? LT : 1, sizeof(float));
  r->router_diff = calloc(LT ? LT : 1, sizeof(float));
  r->attn_err = calloc(LT ? LT : 1, sizeof(float));
  r->mlp_err = calloc(LT ? LT : 1, sizeof(float));
  r->margin = calloc(LT ? LT : 1, sizeof(float));
  r->layers = calloc(L ? (size_t)L : 1, sizeof *r->layers);
  r->top1_match = calloc(T ? (size_t)T : 1, 1);
  if (!r->set_match || !r->order_match || !r->near_tie || !r->after_mismatch || !r->weight_diff || !r->router_diff ||
      !r->attn_err || !r->mlp_err || !r->margin || !r->layers || !r->top1_match || !r->compared) {
    parity_result_free(r);
    return err_set(e, EXIT_RUNTIME, "parity: out of memory");
  }
  /* a candidate run that stopped has no values after it: those positions are not compared */
  for (int t = 0; t < T; t++) {
    r->compared[t] = !cand->call || cand->call[t] >= 0;
    r->n_compared += r->compared[t];
  }
  const int Tc = r->n_compared;
  r->has_router = 1;
  r->has_hidden = 1;
  for (int l = 0; l < L; l++) {
    const model_layer_capture *a = &ref->layers[l], *b = &cand->layers[l];
    parity_layer *pl = &r->layers[l];
    const int have_router = a->router_logits && b->router_logits;
    const int have_hidden = a->hidden_after_attn && b->hidden_after_attn && a->hidden_after_mlp &&
                            b->hidden_after_mlp;
    r->has_router &= have_router;
    r->has_hidden &= have_hidden;
    const double s_attn = have_hidden ? max_abs(a->hidden_after_attn, (size_t)T * D) : 0;
    const double s_mlp = have_hidden ? max_abs(a->hidden_after_mlp, (size_t)T * D) : 0;
    int n_set = 0, n_order = 0, n_w = 0;
    double w_sum = 0;
    pl->margin_min = INFINITY;
    pl->router_max = have_router ? 0 : NAN;
    pl->attn_err = pl->mlp_err = have_hidden ? 0 : NAN;
    for (int t = 0; t < T; t++) {
      const size_t i = (size_t)l * T + t;
      if (!r->compared[t]) { /* neutral values, errors NaN (docs/parity-report.md) */
        r->set_match[i] = r->order_match[i] = 1;
        r->weight_diff[i] = r->router_diff[i] = r->attn_err[i] = r->mlp_err[i] = r->margin[i] = NAN;
        continue;
      }
      const int32_t *ia = a->topk_indices + (size_t)t * K, *ib = b->topk_indices + (size_t)t * K;
      const float *wa = a->topk_weights + (size_t)t * K, *wb = b->topk_weights + (size_t)t * K;
      int order = 1, set = 1;
      double wmax = 0;
      for (int j = 0; j < K; j++) {
        if (ia[j] != ib[j]) order = 0;
        int found = -1;
        for (int j2 = 0; j2 < K; j2++)
          if (ib[j2] == ia[j]) found = j2;
        if (found < 0) {
          set = 0;
          continue;
        }
        double d = fabs((double)wa[j] - (double)wb[found]);
        if (isnan(d)) d = INFINITY;
        if (d > wmax) wmax = d;
        w_sum += d;
        n_w++;
      }
      const double margin = a->router_logits ? router_margin(a->router_logits + (size_t)t * E, E, K)
                                             : INFINITY;
      r->set_match[i] = (uint8_t)set;
      r->order_match[i] = (uint8_t)order;
      r->weight_diff[i] = (float)wmax;
      r->margin[i] = (float)margin;
      n_set += set;
      n_order += order;
      if (wmax > pl->weight_max) pl->weight_max = wmax;
      if (margin < pl->margin_min) pl->margin_min = margin;
      if (!set) {
        for (int l2 = 0; l2 < l; l2++)
          if (!r->set_match[(size_t)l2 * T + t]) r->after_mismatch[i] = 1;
        if (margin < th->tie_margin) {
          r->near_tie[i] = 1;
          pl->n_near_tie++;
        } else {
          pl->n_mismatch++;
        }
        if (margin > pl->mismatch_margin_max) pl->mismatch_margin_max = margin;
      }
      if (have_router) {
        double d = row_err(a->router_logits + (size_t)t * E, b->router_logits + (size_t)t * E, (size_t)E, 0);
        r->router_diff[i] = (float)d;
        if (d > pl->router_max) pl->router_max = d;
      }
      if (have_hidden) {
        double da = row_err(a->hidden_after_attn + (size_t)t * D, b->hidden_after_attn + (size_t)t * D, (size_t)D, s_attn);
        double dm = row_err(a->hidden_after_mlp + (size_t)t * D, b->hidden_after_mlp + (size_t)t * D, (size_t)D, s_mlp);
        r->attn_err[i] = (float)da;
        r->mlp_err[i] = (float)dm;
        if (da > pl->attn_err) pl->attn_err = da;
        if (dm > pl->mlp_err) pl->mlp_err = dm;
      }
    }
    pl->set_match = Tc ? (double)n_set / Tc : 1;
    pl->order_match = Tc ? (double)n_order / Tc : 1;
    pl->weight_mean = n_w ? w_sum / n_w : 0;
    /* verdict per layer: near-ties count as matches */
    const double set_rate = Tc ? (double)(Tc - pl->n_mismatch) / Tc : 1;
    const int set_fails = set_rate < th->min_set_match;
    if (set_fails)
      add_reason(r, l, "layer %d: expert sets match for %.4g of the tokens (threshold %.4g)", l,
                 set_rate, th->min_set_match);
    /* the positions that fail this layer's checks */
    for (int t = 0; t < T; t++) {
      const size_t i = (size_t)l * T + t;
      if (!r->compared[t]) continue;
      if ((set_fails && !r->set_match[i] && !r->near_tie[i]) ||
          !(r->weight_diff[i] <= th->max_weight_diff) ||
          (have_hidden && !(r->attn_err[i] <= th->max_hidden_rel && r->mlp_err[i] <= th->max_hidden_rel)))
        bad_at(r, cand, t, l);
    }
    if (!(pl->weight_max <= th->max_weight_diff))
      add_reason(r, l, "layer %d: top-k weights differ by %.3g (threshold %.3g)", l,
                 pl->weight_max, th->max_weight_diff);
    if (have_hidden && !(pl->attn_err <= th->max_hidden_rel && pl->mlp_err <= th->max_hidden_rel))
      add_reason(r, l, "layer %d: hidden state differs by %.3g after attention, %.3g after the "
                 "MLP (threshold %.3g)", l, pl->attn_err, pl->mlp_err, th->max_hidden_rel);
  }

  /* final logits */
  const double s = max_abs(ref->logits, (size_t)T * V);
  int agree = 0;
  for (int t = 0; t < T; t++) {
    const float *a = ref->logits + (size_t)t * V, *b = cand->logits + (size_t)t * V;
    int ba = 0, bb = 0;
    double row = 0;
    if (!r->compared[t]) {
      r->top1_match[t] = 1;
      continue;
    }
    for (int v = 0; v < V; v++) {
      double d = fabs((double)a[v] - (double)b[v]);
      if (isnan(d)) d = INFINITY;
      if (d > row) row = d;
      if (a[v] > a[ba]) ba = v;
      if (b[v] > b[bb]) bb = v;
    }
    if (row > r->logits_max_abs) r->logits_max_abs = row;
    if (!((s > 0 ? row / s : row) <= th->max_logits_rel)) bad_at(r, cand, t, -1);
    r->top1_match[t] = (uint8_t)(ba == bb);
    agree += ba == bb;
  }
  r->logits_rel = s > 0 ? r->logits_max_abs / s : r->logits_max_abs;
  r->top1_agree = Tc ? (double)agree / Tc : 1;
  if (!(r->logits_rel <= th->max_logits_rel))
    add_reason(r, -1, "final logits differ by %.3g of max|ref| (threshold %.3g)", r->logits_rel,
               th->max_logits_rel);
  /* a candidate run that stopped: fails there, at the layer it names */
  if (cand->stop_reason[0]) {
    add_reason(r, cand->stop_layer, "%s", cand->stop_reason);
    int t0 = 0;
    while (t0 < T && r->compared[t0]) t0++;
    if (r->first_bad_position < 0 || t0 <= r->first_bad_position) {
      r->first_bad_position = t0 < T ? t0 : -1;
      r->first_bad_position_layer = cand->stop_layer;
      r->first_bad_call = cand->stop_call;
    }
  }
  r->pass = r->reasons[0] == '\0';
  return 0;
}
