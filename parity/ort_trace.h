/* ort_trace: run an exported model in ONNX Runtime on token ids and turn its outputs into a
 * trace (trace.h), so that it can be compared with the reference like any other trace.
 *
 * The model must have the routing and hidden outputs of `export --expose routing,hidden`
 * (DESIGN.md "ONNX export"): routing.{n}.topk_indices [1, S, K] int64, routing.{n}.topk_weights
 * and routing.{n}.router_logits [1, S, E|K] float, hidden.{n}.after_attn / after_mlp [1, S, D]
 * float, and logits [1, S, V]. Without them the error says how to re-export. topk_values are
 * taken from the router logits; debug tensors stay NULL.
 *
 * A whole model (a decoder with a KV cache) is driven the way a client drives it
 * (docs/clients.md): one prefill call on the first n_prefill ids with an empty cache (made from
 * the inputs' metadata: numeric dimensions kept, batch_size 1, every other symbolic dimension
 * 0), then one call per further id, each fed attention_mask = ones [1, total], position_ids =
 * its positions and every past_key_values.* input = the present.* output of the call before.
 * The trace records which call computed each position (trace.call). Each present must hold
 * exactly the positions processed so far, [1, KV, total, Dh]: when one does not (something
 * besides the tokens' keys is stored in the cache, so a client feeding it back breaks), the run
 * stops there; the positions after it are marked not computed (call -1) and stop_reason /
 * stop_layer say which call and layer. That is a failed parity, not a runtime error.
 * Local (no MPI). */
#ifndef GPTOSS_ORT_TRACE_H
#define GPTOSS_ORT_TRACE_H

#include "config.h"
#include "err.h"
#include "ort.h"
#include "trace.h"

/* The model file of an --onnx argument: a .onnx file as it is, or an export directory's
 * onnx/model.onnx. */
int ort_trace_model_path(const char *arg, char *path, size_t len, err *e);

/* ids [T]; n_prefill in [1, T]: positions in the prefill call; n_layers: layers the reference ran
 * (the model must expose exactly those). threads: ORT intra-op threads (0 = ORT default).
 * Caller owns *out (trace_free). */
int ort_trace_run(ort_runtime *rt, const char *model_path, const gpt_config *c, int n_layers,
                  const int32_t *ids, int T, int n_prefill, int threads, trace *out, err *e);

/* A sub-model of layers [layer0, layer1) (`export --layers A:B --expose routing,hidden`) on
 * hidden_in [T, D], the residual stream entering layer0, in one call. The trace's layers
 * 0..layer1-layer0-1 are the global layers layer0..layer1-1; logits [T, V] only when
 * with_logits (else NULL); input_ids is left zero. Caller owns *out (trace_free). */
int ort_trace_run_stage(ort_runtime *rt, const char *model_path, const gpt_config *c, int layer0,
                        int layer1, int with_logits, const float *hidden_in, int T, int threads,
                        trace *out, err *e);

#endif
