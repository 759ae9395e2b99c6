/* The ort target's blocks (export_graph_impl.h; docs/export.md "The ort target"): ONNX Runtime's
 * com.microsoft contrib ops where the standard target spells the computation out.
 *
 * Attention: RotaryEmbedding (as the standard target: the positions come from position_ids, so a
 * left-padded row gets its own positions), then GroupQueryAttention with the sinks as head_sink
 * (input 11) and local_window_size = sliding_window on the sliding layers (ORT counts the query
 * itself among the W keys, like the reference's window). GroupQueryAttention's causal mask and
 * window work in cache slots and it has no padding mask of its own: every row's slots are the
 * attention_mask's columns (seqlens_k = T - 1 for every row, total_sequence_length = T), and
 * attention_bias is -inf at the padding keys. A left-padded row's real tokens are then at the
 * same distances from each other as in the prompt alone, so causality and the window are those
 * of the prompt alone; padding keys are never seen; a padding query sees only the sink (0). The
 * cache is concatenated by the kernel (past_present_share_buffer false: present = past ++ new,
 * the sink never in it), under issue 9's I/O names.
 *
 * MoE: QMoE with the experts as exact int8 codes (export_ort.h), expert_weight_bits 8,
 * block_size 32, interleaved SwiGLU (swiglu_fusion 1: even rows gate, odd rows linear),
 * activation_alpha 1.702, activation_beta 1, swiglu_limit; router_probs = the raw router logits
 * (the kernel takes the top k and, normalize_routing_weights 1, the softmax over those k: the
 * reference's routing). TopK and Softmax are built only to expose routing.
 *
 * Norms: the residual Add and the next RMSNorm are one SkipSimplifiedLayerNormalization (every
 * norm but the first layer's). */
#include <math.h>
#include <stdio.h>

#include "export_graph.h"
#include "export_graph_impl.h"
#include "export_ort.h"

#define MS_DOMAIN "com.microsoft"

/* seqlens_k, total_sequence_length and the padding bias, once per call */
static void ort_shared(gctx *x) {
  onnx_graph *g = x->root;
  onnx_node *n;
  const char *negS, *T1;
  const char *valid = export_attn_mask_inputs(x, &negS, &T1);   /* [B, T] bool */
  const int64_t o = 1, z = 0, k4[2] = {1, 2};
  const char *t1m = gx_op(x, g, "/gqa", "Sub", "last_slot", IN(T1, gx_i64(x, 1, &o)), NULL);
  const char *sl = gx_op(x, g, "/gqa", "Expand", "seqlens", IN(t1m, x->B1), NULL);     /* [B] */
  x->seqlens_k = gx_op_i(x, g, "/gqa", "Cast", "seqlens_k", "to", ONNX_INT32, IN(sl));
  const char *ts = gx_op(x, g, "/gqa", "Squeeze", "total", IN(T1, gx_i64(x, 1, &z)), NULL);
  x->total_len = gx_op_i(x, g, "/gqa", "Cast", "total_sequence_length", "to", ONNX_INT32, IN(ts));
  const char *v4 = gx_op(x, g, "/gqa", "Unsqueeze", "valid_keys", IN(valid, gx_i64(x, 2, k4)), NULL);
  const char *f = gx_op(x, g, "/gqa", "Where", "padding",
                        IN(v4, gx_f32_scalar(x, 0.0f), gx_f32_scalar(x, -INFINITY)), NULL); /* [B,1,1,T] */
  const char *shape = gx_op_i(x, g, "/gqa", "Concat", "bias_shape", "axis", 0,
                              IN(x->B1, gx_i64(x, 1, &o), x->S1, T1));
  x->pad_bias = gx_op(x, g, "/gqa", "Expand", "attention_bias", IN(f, shape), &n);    /* [B,1,S,T] */
}

static const char *ort_attn_core(gctx *x, int l, const char *q, const char *k, const char *v) {
  const gpt_config *c = x->c;
  onnx_graph *g = x->root;
  onnx_node *n;
  char sub[96], w[96];
  if (!x->attn_shared_done) ort_shared(x);
  x->attn_shared_done = 1;

  snprintf(sub, sizeof sub, "/block.%d/attn/rope", l);
  const char *qr = export_attn_rope(x, sub, "RotaryEmbedding_q", q, c->n_heads);
  const char *kr = export_attn_rope(x, sub, "RotaryEmbedding_k", k, c->n_kv_heads);

  snprintf(sub, sizeof sub, "/block.%d/attn/gqa", l);
  snprintf(w, sizeof w, "block.%d.attn.sinks", l);
  const char *sinks = gx_weight_f32(x, g, sub, w);
  const char *in[12] = {qr, kr, v, onnx_graph_strf(g, EXPORT_PAST_KEY, l),
                        onnx_graph_strf(g, EXPORT_PAST_VALUE, l), x->seqlens_k, x->total_len,
                        "", "", "", x->pad_bias, sinks};
  const char *out[3] = {onnx_graph_strf(g, "%s/GroupQueryAttention_output_0", sub),
                        onnx_graph_strf(g, EXPORT_PRESENT_KEY, l),
                        onnx_graph_strf(g, EXPORT_PRESENT_VALUE, l)};
  const char *name = onnx_graph_strf(g, "%s/GroupQueryAttention", sub);
  n = name && out[0] && out[1] && out[2] ? onnx_graph_add_node(g, "GroupQueryAttention", name, 12, in, 3, out) : NULL;
  onnx_node_set_domain(n, MS_DOMAIN, 1);
  onnx_node_attr_int(n, "num_heads", c->n_heads);
  onnx_node_attr_int(n, "kv_num_heads", c->n_kv_heads);
  onnx_node_attr_float(n, "scale", (float)(1.0 / sqrt((double)c->head_dim)));
  onnx_node_attr_int(n, "local_window_size", config_layer_is_sliding(c, l) ? c->sliding_window : -1);
  onnx_node_attr_int(n, "do_rotary", 0);
  const int64_t flat[2] = {-1, (int64_t)c->n_heads * c->head_dim};
  return gx_op(x, g, sub, "Reshape", NULL, IN(out[0], gx_i64(x, 2, flat)), NULL);
}

void export_ort_qmoe_attrs(onnx_node *n, const gpt_config *c) {
  onnx_node_set_domain(n, MS_DOMAIN, 1);
  onnx_node_attr_int(n, "k", c->top_k);
  onnx_node_attr_int(n, "expert_weight_bits", 8);
  onnx_node_attr_int(n, "block_size", 32);
  onnx_node_attr_string(n, "activation_type", "swiglu");
  onnx_node_attr_int(n, "swiglu_fusion", 1);
  onnx_node_attr_float(n, "activation_alpha", 1.702f);
  onnx_node_attr_float(n, "activation_beta", 1.0f);
  onnx_node_attr_float(n, "swiglu_limit", (float)c->swiglu_limit);
  onnx_node_attr_int(n, "normalize_routing_weights", 1);
}

static const char *ort_moe(gctx *x, int l, const char *t) {
  const gpt_config *c = x->c;
  onnx_graph *g = x->root;
  char sub[96];
  const char *ti, *wts;
  const char *logits = export_moe_router(x, l, t, 0, &ti, &wts);

  snprintf(sub, sizeof sub, "/block.%d/mlp/experts", l);
  char c1[96], s1[96], b1[96], c2[96], s2[96], b2[96];
  snprintf(c1, sizeof c1, "block.%d.mlp.mlp1_weight.codes", l);
  snprintf(s1, sizeof s1, "block.%d.mlp.mlp1_weight.code_scales", l);
  snprintf(b1, sizeof b1, "block.%d.mlp.mlp1_bias", l);
  snprintf(c2, sizeof c2, "block.%d.mlp.mlp2_weight.codes", l);
  snprintf(s2, sizeof s2, "block.%d.mlp.mlp2_weight.code_scales", l);
  snprintf(b2, sizeof b2, "block.%d.mlp.mlp2_bias", l);
  const char *bias1 = gx_weight_f32(x, g, sub, b1), *bias2 = gx_weight_f32(x, g, sub, b2);
  onnx_node *n;
  const char *moe = gx_op(x, g, sub, "QMoE", NULL, IN(t, logits, c1, s1, bias1, c2, s2, bias2), &n);
  export_ort_qmoe_attrs(n, c);
  return moe;
}

/* RMSNorm(base + delta) with the residual Add fused: SkipSimplifiedLayerNormalization(delta,
 * base, scale) -> output 0 the norm, output 3 the sum (the first layer's norm has no Add). */
static const char *ort_add_norm(gctx *x, const char *scope, const char *base, const char *delta,
                                const char *add_scope, const char *scale, const char **sum) {
  if (!delta) return export_add_norm(x, scope, base, delta, add_scope, scale, sum);
  onnx_graph *g = x->root;
  const char *gamma = gx_weight_f32(x, g, scope, scale);
  const char *in[3] = {delta, base, gamma};
  const char *out[4] = {onnx_graph_strf(g, "%s/SkipSimplifiedLayerNormalization_output_0", scope), "", "",
                        onnx_graph_strf(g, "%s/residual_sum", scope)};
  const char *name = onnx_graph_strf(g, "%s/SkipSimplifiedLayerNormalization", scope);
  onnx_node *n = name && out[0] && out[3] && gamma
                     ? onnx_graph_add_node(g, "SkipSimplifiedLayerNormalization", name, 3, in, 4, out) : NULL;
  onnx_node_set_domain(n, MS_DOMAIN, 1);
  onnx_node_attr_float(n, "epsilon", GX_RMS_EPS);
  *sum = n ? out[3] : NULL;
  return n ? out[0] : NULL;
}

const gx_target export_target_ort = {"ort", ort_attn_core, ort_moe, ort_add_norm};
