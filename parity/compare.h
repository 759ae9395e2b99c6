/* compare: routing parity between a reference trace and a candidate trace (DESIGN.md "Parity").
 *
 * Per layer and token: are the top-k expert sets equal (and in the same order), the largest
 * top-k weight difference per expert id (over the experts both selected), the largest router
 * logit difference, the hidden-state errors after attention and after the MLP (max |a - b| over
 * the row divided by max |ref| of the whole layer tensor), and the reference's router margin
 * (k-th minus (k+1)-th largest router logit). An expert-set mismatch whose reference margin is
 * below tie_margin is a near-tie, reported apart and not a failure. A mismatch at a position
 * where an earlier layer already mismatched is marked as following it (the hidden states have
 * diverged there, so it says little about this layer); it still counts. Final logits: max and
 * relative error, top-1 agreement. Candidate tensors that a trace lacks (an ONNX run has no
 * router logits unless exposed) are skipped and reported as absent.
 *
 * A candidate driven like a client (ort_trace.h) says which call computed each position
 * (trace.call); the first failing position is reported with its call (prefill or decode step
 * k) and the lowest layer failing there. A run that stopped early (trace.stop_reason: a cache
 * a client could not feed back) fails with that reason at that call and layer; the positions it
 * did not compute are not compared (compared[t] = 0). Local (no MPI). */
#ifndef GPTOSS_COMPARE_H
#define GPTOSS_COMPARE_H

#include <stdint.h>

#include "err.h"
#include "trace.h"

typedef struct {
  double tie_margin;          /* default 0: no near-ties */
  double min_set_match;       /* fraction of non-near-tie token-layers with equal sets (1.0) */
  double max_weight_diff;     /* top-k weight difference per expert id (1e-4) */
  double max_logits_rel;      /* final logits max |a-b| / max |ref| (1e-4) */
  double max_hidden_rel;      /* hidden states after attention / after the MLP (1e-4), so a
                               * layer whose routing survives but whose output is wrong fails */
} parity_thresholds;

void parity_thresholds_default(parity_thresholds *t);

typedef struct {
  double set_match, order_match;      /* rates over tokens */
  int n_mismatch, n_near_tie;         /* set mismatches: failures and near-ties */
  double weight_max, weight_mean;     /* per expert id, over matched experts */
  double router_max;                  /* max |router logit difference| (NaN if absent) */
  double attn_err, mlp_err;           /* max relative hidden errors (NaN if absent) */
  double margin_min;                  /* smallest reference margin over the tokens */
  double mismatch_margin_max;         /* largest margin among mismatches (0 if none) */
} parity_layer;

typedef struct {
  int T, L, K, E;
  /* per layer x token [L * T] */
  uint8_t *set_match, *order_match, *near_tie;
  uint8_t *after_mismatch;            /* an earlier layer already mismatched at this position */
  float *weight_diff, *router_diff, *attn_err, *mlp_err, *margin;
  parity_layer *layers;               /* [L] */
  /* final logits */
  double logits_max_abs, logits_rel, top1_agree;
  uint8_t *top1_match;                /* [T] */
  int has_router, has_hidden;         /* the candidate had these tensors */
  /* verdict */
  int pass;
  char reasons[1024];                 /* "; "-separated failed checks, "" when pass */
  int first_bad_layer;                /* lowest layer with a failing check, -1 if none */
  /* where the candidate first goes wrong */
  int first_bad_position;             /* lowest position failing a check, -1 if none */
  int first_bad_position_layer;       /* lowest layer failing at that position (-1: logits or
                                       * the whole call) */
  int first_bad_call;                 /* the candidate call of that position: 0 prefill, k decode
                                       * step k; -1 unknown or none */
  uint8_t *compared;                  /* [T] 0 where the candidate has no value (run stopped) */
  int n_compared;
} parity_result;

/* "prefill", "decode step 3", or "" (unknown call) into buf. */
void parity_call_name(int call, char *buf, size_t len);

/* Compare; ref and cand must hold the same input ids and layer count. Caller owns *out
 * (parity_result_free). */
int parity_compare(const trace *ref, const trace *cand, const parity_thresholds *th,
                   parity_result *out, err *e);
void parity_result_free(parity_result *r);

#endif
