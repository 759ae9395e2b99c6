/* export_graph: the GPT-OSS forward pass as a standard ONNX graph (opset 23, IR 11), built on
 * onnx_graph with every weight an external initializer of an export_layout.
 *
 * The whole model is a decoder with a KV cache in the conventions of the clients that generate
 * text (transformers.js, ONNX Runtime GenAI; docs/export.md "The graph"):
 *   inputs  input_ids int64 [batch_size, sequence_length]
 *           attention_mask int64 [batch_size, total_sequence_length] (1 = token, 0 = padding)
 *           position_ids int64 [batch_size, sequence_length] (RoPE positions)
 *           past_key_values.{n}.key / .value float [batch_size, KV, past_sequence_length, Dh]
 *   outputs logits float [batch_size, sequence_length, V]
 *           present.{n}.key / .value float [batch_size, KV, total_sequence_length, Dh]
 * with total = past + sequence. KV and Dh are numbers, every other dimension symbolic. The
 * causal mask, the sliding window of the even layers, the sinks (never stored in present),
 * padding and RoPE are computed in the graph from attention_mask, position_ids and the cache.
 * With expose_routing / expose_hidden also, per layer n and per call (the sequence_length new
 * tokens), routing.{n}.topk_indices int64 [batch_size, sequence_length, K],
 * routing.{n}.topk_weights [.., K], routing.{n}.router_logits [.., E],
 * hidden.{n}.after_attn / hidden.{n}.after_mlp [.., D].
 *
 * A sub-model (export_opts.sub_model, `export --layers A:B`) is the prefill-only form of
 * layers [A, B): input `hidden_in` float [batch_size, sequence_length, D] (the residual stream
 * entering layer A; positions 0..sequence_length-1, no cache, no padding), output `hidden_out`
 * (after layer B-1's MLP), plus `logits` when sub_head; exposed outputs keep the global layer
 * numbers.
 *
 * Node names follow the checkpoint (/block.3/attn/qkv/Gemm). Local (no MPI). */
#ifndef GPTOSS_EXPORT_GRAPH_H
#define GPTOSS_EXPORT_GRAPH_H

#include "err.h"
#include "export_layout.h"
#include "onnx_graph.h"

#define EXPORT_IR_VERSION 11
#define EXPORT_OPSET 23

/* Graph I/O names (printf templates take the layer) and symbolic dimensions. */
#define EXPORT_PAST_KEY "past_key_values.%d.key"
#define EXPORT_PAST_VALUE "past_key_values.%d.value"
#define EXPORT_PRESENT_KEY "present.%d.key"
#define EXPORT_PRESENT_VALUE "present.%d.value"
#define EXPORT_DIM_BATCH "batch_size"
#define EXPORT_DIM_SEQUENCE "sequence_length"
#define EXPORT_DIM_PAST "past_sequence_length"
#define EXPORT_DIM_TOTAL "total_sequence_length"
/* int64 scalar input with an initializer of the same name (0): an overridable default. 0 = the
 * logits of every position, k > 0 = of the last k (Hugging Face's logits_to_keep). */
#define EXPORT_LOGITS_TO_KEEP "num_logits_to_keep"
#define EXPORT_DIM_LOGITS "logits_sequence_length" /* = sequence_length, or k when fed k in 1..S */

/* Build the model graph for layout L (its options say weights, layers and exposed outputs).
 * Caller owns *out (onnx_graph_free). */
int export_graph_build(const export_layout *L, onnx_graph **out, err *e);

#endif
