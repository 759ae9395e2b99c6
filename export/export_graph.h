/* export_graph: the GPT-OSS forward pass as a standard ONNX graph (opset 23, IR 11), built on
 * onnx_graph with every weight an external initializer of an export_layout.
 *
 * Input `input_ids` int64 [batch, sequence]; output `logits` float [batch, sequence, vocab];
 * with expose_routing / expose_hidden also, per layer n, routing.{n}.topk_indices int64
 * [batch, sequence, K], routing.{n}.topk_weights [batch, sequence, K], routing.{n}.router_logits
 * [batch, sequence, E], hidden.{n}.after_attn / hidden.{n}.after_mlp [batch, sequence, D].
 * A sub-model (export_opts.sub_model, `export --layers A:B`) computes layers [A, B) only: input
 * `hidden_in` float [batch, sequence, D] (the residual stream entering layer A; positions are
 * still 0..sequence-1), output `hidden_out` [batch, sequence, D] (after layer B-1's MLP), plus
 * `logits` when sub_head; exposed outputs keep the global layer numbers.
 *
 * Per layer: RMSNormalization, Gemm (qkv), RotaryEmbedding (half split, caches from the
 * layout), Attention (3D, GQA via q_num_heads/kv_num_heads, scale 1/sqrt(Dh)) with the sinks as
 * one zero key/value row and a mask column, the causal / sliding-window mask built in-graph
 * from the sequence length; then the MoE block: router Gemm, TopK, Softmax over the K values, a
 * Loop over Unique(selected experts) that gathers one expert's weights (MXFP4 bytes decoded with
 * two LUT Gathers, or fp32), SwiGLU on interleaved rows and ScatterND(add) into the token rows
 * (docs/toolchain-moe.md form 1). Node names follow the checkpoint (/block.3/attn/qkv/Gemm).
 * Local (no MPI). */
#ifndef GPTOSS_EXPORT_GRAPH_H
#define GPTOSS_EXPORT_GRAPH_H

#include "err.h"
#include "export_layout.h"
#include "onnx_graph.h"

#define EXPORT_IR_VERSION 11
#define EXPORT_OPSET 23

/* Build the model graph for layout L (its options say weights, layers and exposed outputs).
 * Caller owns *out (onnx_graph_free). */
int export_graph_build(const export_layout *L, onnx_graph **out, err *e);

#endif
