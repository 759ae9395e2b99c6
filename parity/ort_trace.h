/* ort_trace: run an exported model in ONNX Runtime on token ids and turn its outputs into a
 * trace (trace.h), so that it can be compared with the reference like any other trace.
 *
 * The model must have the routing and hidden outputs of `export --expose routing,hidden`
 * (DESIGN.md "ONNX export"): routing.{n}.topk_indices [1, T, K] int64, routing.{n}.topk_weights
 * and routing.{n}.router_logits [1, T, E|K] float, hidden.{n}.after_attn / after_mlp [1, T, D]
 * float, and logits [1, T, V]. Without them the error says how to re-export. The whole sequence
 * runs in one call (no KV cache); topk_values are taken from the router logits. Debug tensors
 * stay NULL. Local (no MPI). */
#ifndef GPTOSS_ORT_TRACE_H
#define GPTOSS_ORT_TRACE_H

#include "config.h"
#include "err.h"
#include "ort.h"
#include "trace.h"

/* ids [T]; n_layers: layers the reference ran (the model must expose exactly those).
 * threads: ORT intra-op threads (0 = ORT default). Caller owns *out (trace_free). */
int ort_trace_run(ort_runtime *rt, const char *model_path, const gpt_config *c, int n_layers,
                  const int32_t *ids, int T, int threads, trace *out, err *e);

/* A sub-model of layers [layer0, layer1) (`export --layers A:B --expose routing,hidden`) on
 * hidden_in [T, D], the residual stream entering layer0. The trace's layers 0..layer1-layer0-1
 * are the global layers layer0..layer1-1; logits [T, V] only when with_logits (else NULL);
 * input_ids is left zero. Caller owns *out (trace_free). */
int ort_trace_run_stage(ort_runtime *rt, const char *model_path, const gpt_config *c, int layer0,
                        int layer1, int with_logits, const float *hidden_in, int T, int threads,
                        trace *out, err *e);

#endif
