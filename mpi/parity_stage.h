/* parity_stage: the candidate of `parity --per-stage`, for models too large for one process.
 *
 * Every layer l the reference ran is checked alone: the rank the plan gives it
 * (plan_parity_unit_rank: the layers of stage s go round-robin to the stage's G ranks) exports the
 * one-layer sub-model (`export --layers l:l+1 --expose routing,hidden`, mxfp4 experts, RoPE caches
 * for the T positions; the last layer run also carries the final norm + unembedding) into a
 * temporary directory next to the report, or takes DIR/layers-l-(l+1)/onnx/model.onnx when a
 * directory of sub-models is given, and runs it in ONNX Runtime (prepacking off) on the
 * reference's hidden state entering layer l (embedding_out for l = 0, else hidden_after_mlp of
 * layer l-1), sent by rank 0. A rank runs its layers one at a time and drops the checkpoint pages
 * an export read before ONNX Runtime loads the model, so it never holds more than one layer's
 * weights (plan_parity predicts the peak; `plan --per-stage`). Every rank sends its layers'
 * routing and hidden states (and the logits) to rank 0, which assembles one candidate trace
 * holding all layers (global numbers). Each layer's check starts from the reference state
 * entering it: an error inside a layer never leaks into the next one.
 *
 * COLLECTIVE over the world; the ranks agree after every phase (buffers, runs, assembly).
 * Fault injection: GPTOSS_FAULT=R:stage fails rank R's N-th layer run (dist.h). */
#ifndef GPTOSS_PARITY_STAGE_H
#define GPTOSS_PARITY_STAGE_H

#include <stddef.h>

#include "dist.h"
#include "err.h"
#include "ckpt.h"
#include "trace.h"

typedef struct {
  const char *onnx_dir;   /* directory of sub-models layers-L-(L+1)/onnx/model.onnx, NULL = export them */
  const char *ort_lib;    /* --ort-lib, NULL = default */
  const char *tmp_parent; /* where the temporary sub-models go (the report's directory) */
} parity_stage_opts;

/* The reference and what it ran: every rank has ck, T and n_layers; rank 0 has ref (with
 * embedding_out and every layer's hidden_after_mlp). */
typedef struct {
  const ckpt *ck;
  const trace *ref;     /* rank 0 only */
  int T, n_layers;
  /* what the C forward pass used on this rank (reported with -v; 0 = not run) */
  uint64_t fwd_peak, fwd_anon, fwd_touched;
} parity_stage_in;

/* The plan is d->plan (dist_setup). On success
 * every rank returns 0 and rank 0 has *cand (caller frees with trace_free) and a description
 * in desc; on failure every rank returns -1 with the same error and nothing is left behind. */
int parity_stage_candidate(dist *d, const parity_stage_in *in, const parity_stage_opts *o,
                           trace *cand, char *desc, size_t desc_len, err *e);

#endif
