/* The MoE block as standard ONNX (docs/toolchain-moe.md section 3, form 1): router, TopK,
 * Softmax over the K values, and a Loop over the distinct selected experts whose body gathers
 * one expert's weights by a run-time index (so ONNX Runtime cannot constant-fold the MXFP4
 * decode, and the work scales with the selected experts, not with E). */
#include <stdio.h>
#include <string.h>

#include "export_graph_impl.h"

/* Expert e's weight matrix [R, C] as float inside the loop body: MXFP4 decode with two LUT
 * Gathers (exact), or a Gather of the fp32 tensor decoded at export time. */
static const char *expert_weight(gctx *x, onnx_graph *body, const char *scope, int layer,
                                 const char *which, const char *e, int64_t R, int64_t C) {
  onnx_node *n;
  char w[96], s[96];
  if (x->L->o.experts_fp32) {
    snprintf(w, sizeof w, "block.%d.mlp.%s_weight", layer, which);
    const char *out = gx_op(x, body, scope, "Gather", "Gather_weight", IN(w, e), &n);
    onnx_node_attr_int(n, "axis", 0);
    return out;
  }
  snprintf(w, sizeof w, "block.%d.mlp.%s_weight.blocks", layer, which);
  snprintf(s, sizeof s, "block.%d.mlp.%s_weight.scales", layer, which);
  const char *b = gx_op(x, body, scope, "Gather", "Gather_blocks", IN(w, e), &n);   /* [R, C/32, 16] u8 */
  onnx_node_attr_int(n, "axis", 0);
  const char *bi = gx_op(x, body, scope, "Cast", "Cast_blocks", IN(b), &n);
  onnx_node_attr_int(n, "to", ONNX_INT32);
  const char *v = gx_op(x, body, scope, "Gather", "Gather_fp4_pairs", IN("mxfp4.lut_fp4_pairs", bi), &n);
  onnx_node_attr_int(n, "axis", 0);                                                 /* [R, C/32, 16, 2] */
  const int64_t s3[3] = {R, C / 32, 32};
  const char *v3 = gx_op(x, body, scope, "Reshape", "Reshape_blocks", IN(v, gx_i64(x, 3, s3)), NULL);
  const char *sc = gx_op(x, body, scope, "Gather", "Gather_scales", IN(s, e), &n);  /* [R, C/32] u8 */
  onnx_node_attr_int(n, "axis", 0);
  const char *si = gx_op(x, body, scope, "Cast", "Cast_scales", IN(sc), &n);
  onnx_node_attr_int(n, "to", ONNX_INT32);
  const char *sf = gx_op(x, body, scope, "Gather", "Gather_e8m0", IN("mxfp4.lut_e8m0", si), &n);
  onnx_node_attr_int(n, "axis", 0);
  const int64_t last = 2;
  const char *sf3 = gx_op(x, body, scope, "Unsqueeze", "Unsqueeze_scales", IN(sf, gx_i64(x, 1, &last)), NULL);
  const char *wv = gx_op(x, body, scope, "Mul", "Mul_scales", IN(v3, sf3), NULL);     /* [R, C/32, 32] */
  const int64_t s2[2] = {R, C};
  return gx_op(x, body, scope, "Reshape", "Reshape_weight", IN(wv, gx_i64(x, 2, s2)), NULL);
}

/* Expert e's bias row [R] as float. */
static const char *expert_bias(gctx *x, onnx_graph *body, const char *scope, const char *tensor,
                               const char *e) {
  onnx_node *n;
  const char *b = gx_op(x, body, scope, "Gather", "Gather_bias", IN(tensor, e), &n);
  onnx_node_attr_int(n, "axis", 0);
  long i = export_layout_find(x->L, tensor);
  if (i >= 0 && x->L->t[i].dtype == ONNX_FLOAT) return b;
  const char *bf = gx_op(x, body, scope, "Cast", "Cast_bias", IN(b), &n);
  onnx_node_attr_int(n, "to", ONNX_FLOAT);
  return bf;
}

const char *export_moe_router(gctx *x, int l, const char *t, int want_topk, const char **ti,
                              const char **wts) {
  const gpt_config *c = x->c;
  onnx_graph *g = x->root;
  onnx_node *n;
  char sub[96], w[96], b[96];
  const int64_t K = c->top_k;
  snprintf(sub, sizeof sub, "/block.%d/mlp/gate", l);
  snprintf(w, sizeof w, "block.%d.mlp.gate.weight", l);
  snprintf(b, sizeof b, "block.%d.mlp.gate.bias", l);
  const char *gw = gx_weight_f32(x, g, sub, w), *gb = gx_weight_f32(x, g, sub, b);
  const char *logits = gx_op(x, g, sub, "Gemm", NULL, IN(t, gw, gb), &n);
  onnx_node_attr_int(n, "transB", 1);
  *ti = *wts = NULL;
  if (!want_topk && !x->L->o.expose_routing) return logits;

  snprintf(sub, sizeof sub, "/block.%d/mlp/topk", l);
  const char *tk_name = onnx_graph_strf(g, "%s/TopK", sub);
  const char *tk_out[2] = {onnx_graph_strf(g, "%s/values", sub), onnx_graph_strf(g, "%s/indices", sub)};
  const char *tk_in[2] = {logits, gx_i64(x, 1, &K)};
  n = tk_name && tk_out[0] && tk_out[1] ? onnx_graph_add_node(g, "TopK", tk_name, 2, tk_in, 2, tk_out) : NULL;
  onnx_node_attr_int(n, "axis", -1);
  onnx_node_attr_int(n, "largest", 1);
  onnx_node_attr_int(n, "sorted", 1);
  *ti = tk_out[1];
  *wts = gx_op(x, g, sub, "Softmax", NULL, IN(tk_out[0]), &n);
  onnx_node_attr_int(n, "axis", -1);
  if (x->L->o.expose_routing) {
    gx_expose(x, sub, "expose_indices", *ti, x->shape_k,
              onnx_graph_strf(g, "routing.%d.topk_indices", l), ONNX_INT64, K);
    gx_expose(x, sub, "expose_weights", *wts, x->shape_k,
              onnx_graph_strf(g, "routing.%d.topk_weights", l), ONNX_FLOAT, K);
    gx_expose(x, sub, "expose_logits", logits, x->shape_e,
              onnx_graph_strf(g, "routing.%d.router_logits", l), ONNX_FLOAT, c->n_experts);
  }
  return logits;
}

const char *export_moe_block(gctx *x, int l, const char *t) {
  const gpt_config *c = x->c;
  onnx_graph *g = x->root;
  onnx_node *n;
  char scope[64], sub[96], b[96];
  snprintf(scope, sizeof scope, "/block.%d/mlp", l);
  const int64_t D = c->hidden, I = c->intermediate, K = c->top_k;

  /* router logits [N, E]; top-k and their softmax [N, K] */
  const char *ti, *wts;
  export_moe_router(x, l, t, 1, &ti, &wts);
  snprintf(sub, sizeof sub, "%s/topk", scope);
  const int64_t flat = -1, zero = 0;
  const char *wflat = gx_op(x, g, sub, "Reshape", "Reshape_weights", IN(wts, gx_i64(x, 1, &flat)), NULL);
  const char *iflat = gx_op(x, g, sub, "Reshape", "Reshape_indices", IN(ti, gx_i64(x, 1, &flat)), NULL);

  /* the distinct selected experts and the loop over them */
  snprintf(sub, sizeof sub, "%s/experts", scope);
  const char *uq_name = onnx_graph_strf(g, "%s/Unique", sub);
  const char *uq = onnx_graph_strf(g, "%s/Unique_output_0", sub);
  const char *uq_in[1] = {iflat};
  n = uq_name && uq ? onnx_graph_add_node(g, "Unique", uq_name, 1, uq_in, 1, &uq) : NULL;
  onnx_node_attr_int(n, "sorted", 1);
  const char *ushape = gx_op(x, g, sub, "Shape", NULL, IN(uq), NULL);
  const char *trip = gx_op(x, g, sub, "Squeeze", NULL, IN(ushape, gx_i64(x, 1, &zero)), NULL);
  const char *tshape = gx_op(x, g, sub, "Shape", "Shape_tokens", IN(t), NULL);
  const float zf = 0.0f;
  const int64_t one = 1;
  const char *acc0 = gx_op(x, g, sub, "ConstantOfShape", NULL, IN(tshape), &n);
  onnx_node_attr_tensor(n, "value", ONNX_FLOAT, 1, &one, &zf, sizeof zf);

  char bscope[128];
  snprintf(bscope, sizeof bscope, "%s/loop", sub);
  onnx_graph *body = onnx_graph_sub(g, onnx_graph_strf(g, "%s_body", bscope));
  const char *it = onnx_graph_strf(g, "%s/iteration", bscope);
  const char *cin = onnx_graph_strf(g, "%s/cond_in", bscope);
  const char *ain = onnx_graph_strf(g, "%s/acc_in", bscope);
  onnx_graph_add_input(body, it, ONNX_INT64, 0, NULL);
  onnx_graph_add_input(body, cin, ONNX_BOOL, 0, NULL);
  onnx_graph_add_input(body, ain, ONNX_FLOAT, -1, NULL);

  /* e = uniq[it]: a run-time value, which keeps the decode out of constant folding */
  const char *e = gx_op(x, body, bscope, "Gather", "expert", IN(uq, it), &n);
  onnx_node_attr_int(n, "axis", 0);
  /* the (token, slot) pairs routed to e; TopK never selects an expert twice per token, so the
   * token rows are unique (ScatterND add needs that, toolchain-moe.md gotcha 2) */
  const char *eq = gx_op(x, body, bscope, "Equal", NULL, IN(ti, e), NULL);
  const char *nz = gx_op(x, body, bscope, "NonZero", NULL, IN(eq), NULL);         /* [2, n] */
  const char *tok = gx_op(x, body, bscope, "Gather", "tokens", IN(nz, gx_i64_scalar(x, 0)), &n);
  onnx_node_attr_int(n, "axis", 0);
  const char *slot = gx_op(x, body, bscope, "Gather", "slots", IN(nz, gx_i64_scalar(x, 1)), &n);
  onnx_node_attr_int(n, "axis", 0);
  const char *tk = gx_op(x, body, bscope, "Mul", "token_times_k", IN(tok, gx_i64_scalar(x, K)), NULL);
  const char *fi = gx_op(x, body, bscope, "Add", "flat_slot", IN(tk, slot), NULL);
  const char *ws = gx_op(x, body, bscope, "Gather", "weights", IN(wflat, fi), &n);
  onnx_node_attr_int(n, "axis", 0);
  const char *ws2 = gx_op(x, body, bscope, "Unsqueeze", "weights_column", IN(ws, gx_i64(x, 1, &one)), NULL);
  const char *tok2 = gx_op(x, body, bscope, "Unsqueeze", "token_rows", IN(tok, gx_i64(x, 1, &one)), NULL);
  const char *xe = gx_op(x, body, bscope, "Gather", "inputs", IN(t, tok), &n);      /* [n, D] */
  onnx_node_attr_int(n, "axis", 0);

  char es[160];
  snprintf(es, sizeof es, "%s/mlp1", bscope);
  const char *w1 = expert_weight(x, body, es, l, "mlp1", e, 2 * I, D);
  snprintf(b, sizeof b, "block.%d.mlp.mlp1_bias", l);
  const char *b1 = expert_bias(x, body, es, b, e);
  const char *h = gx_op(x, body, es, "Gemm", NULL, IN(xe, w1, b1), &n);           /* [n, 2I] */
  onnx_node_attr_int(n, "transB", 1);

  /* SwiGLU on interleaved rows: even = gate (clamped above), odd = linear (clamped both ways) */
  snprintf(es, sizeof es, "%s/swiglu", bscope);
  const int64_t pairs[3] = {-1, I, 2};
  const char *hp = gx_op(x, body, es, "Reshape", NULL, IN(h, gx_i64(x, 3, pairs)), NULL);
  const char *glu = gx_op(x, body, es, "Gather", "glu", IN(hp, gx_i64_scalar(x, 0)), &n);
  onnx_node_attr_int(n, "axis", 2);
  const char *lin = gx_op(x, body, es, "Gather", "linear", IN(hp, gx_i64_scalar(x, 1)), &n);
  onnx_node_attr_int(n, "axis", 2);
  const float lim = (float)c->swiglu_limit;
  const char *gl = gx_op(x, body, es, "Min", "clamp_glu", IN(glu, gx_f32_scalar(x, lim)), NULL);
  const char *ln = gx_op(x, body, es, "Clip", "clamp_linear",
                         IN(lin, gx_f32_scalar(x, -lim), gx_f32_scalar(x, lim)), NULL);
  const char *ag = gx_op(x, body, es, "Mul", "alpha_glu", IN(gl, gx_f32_scalar(x, 1.702f)), NULL);
  const char *sg = gx_op(x, body, es, "Sigmoid", NULL, IN(ag), NULL);
  const char *gs = gx_op(x, body, es, "Mul", "glu_sigmoid", IN(gl, sg), NULL);
  const char *l1 = gx_op(x, body, es, "Add", "linear_plus_one", IN(ln, gx_f32_scalar(x, 1.0f)), NULL);
  const char *u = gx_op(x, body, es, "Mul", "out", IN(gs, l1), NULL);              /* [n, I] */

  snprintf(es, sizeof es, "%s/mlp2", bscope);
  const char *w2 = expert_weight(x, body, es, l, "mlp2", e, D, I);
  snprintf(b, sizeof b, "block.%d.mlp.mlp2_bias", l);
  const char *b2 = expert_bias(x, body, es, b, e);
  const char *ye = gx_op(x, body, es, "Gemm", NULL, IN(u, w2, b2), &n);            /* [n, D] */
  onnx_node_attr_int(n, "transB", 1);
  const char *yw = gx_op(x, body, bscope, "Mul", "weighted", IN(ye, ws2), NULL);
  const char *aout = onnx_graph_strf(g, "%s/acc_out", bscope);
  gx_op_named(x, body, bscope, "ScatterND", NULL, aout, IN(ain, tok2, yw), &n);
  onnx_node_attr_string(n, "reduction", "add");
  const char *cout = onnx_graph_strf(g, "%s/cond_out", bscope);
  gx_op_named(x, body, bscope, "Identity", NULL, cout, IN(cin), NULL);
  onnx_graph_add_output(body, cout, ONNX_BOOL, 0, NULL);
  onnx_graph_add_output(body, aout, ONNX_FLOAT, -1, NULL);

  const char *moe = gx_op(x, g, sub, "Loop", NULL, IN(trip, gx_bool_scalar(x, 1), acc0), &n);
  onnx_node_attr_graph(n, "body", body);
  return moe;
}
