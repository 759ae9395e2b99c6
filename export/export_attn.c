/* The standard-ONNX attention core (export_graph_impl.h, docs/export.md "Attention with a
 * cache"): RotaryEmbedding by position, the cache concatenated by the graph itself, the sink as
 * one zero key/value row outside the cache whose mask column holds the sink logit, and the
 * causal / sliding-window / padding mask built once per call from attention_mask.
 *
 * Why the cache is concatenated here and not by Attention's past_key input: whatever is
 * appended to K before Attention would be in present_key, and the sink row must never be in the
 * cache (a client feeds present back as past and sees its length as the cache length).
 *
 * Mask (decoder): key positions kpos = CumSum(attention_mask) - 1 [B, T] (a padded row counts
 * only its real tokens), query positions = the last S of them. Key j is visible from query i
 * when attention_mask[j] = 1 and 0 <= qpos_i - kpos_j (< W on the sliding layers). So a
 * left-padded row computes what its prompt alone computes, a masked key is never seen, and the
 * window is counted in the row's own positions. The sub-model (prefill only) uses
 * positions 0..S-1 for both, no padding. The mask body [B, 1, S, T+1] is built once per call for
 * each kind of layer; per layer only the sinks are added ([1, H, 1, T+1] broadcast). */
#include <math.h>
#include <stdio.h>

#include "export_graph.h"
#include "export_graph_impl.h"

/* body [B|1, S, T] bool visibility -> float [B|1, 1, S, T+1], last column 0 */
static const char *mask_body(gctx *x, const char *leaf, const char *vis) {
  onnx_graph *g = x->root;
  char l2[64];
  const char *f = gx_op(x, g, "/mask", "Where", leaf,
                        IN(vis, gx_f32_scalar(x, 0.0f), gx_f32_scalar(x, -INFINITY)), NULL);
  const int64_t one = 1;
  snprintf(l2, sizeof l2, "%s_heads", leaf);
  const char *f4 = gx_op(x, g, "/mask", "Unsqueeze", l2, IN(f, gx_i64(x, 1, &one)), NULL);
  const int64_t pads[8] = {0, 0, 0, 0, 0, 0, 0, 1};
  snprintf(l2, sizeof l2, "%s_sink_column", leaf);
  return gx_op(x, g, "/mask", "Pad", l2, IN(f4, gx_i64(x, 8, pads)), NULL);
}

const char *export_attn_mask_inputs(gctx *x, const char **negS, const char **T1) {
  onnx_graph *g = x->root;
  const int64_t o = 1, two = 2, big = INT64_MAX;
  const char *m = "attention_mask";
  const char *valid = gx_op_i(x, g, "/mask", "Cast", "valid", "to", ONNX_BOOL, IN(m)); /* [B, T] */
  *negS = gx_op(x, g, "/mask", "Neg", "minus_S", IN(x->S1), NULL);
  /* RoPE positions from position_ids; a padding token's (any value a client sends there)
   * becomes 0 so that it can never be out of the caches' range */
  const char *cur = gx_op(x, g, "/positions", "Slice", "valid_new",
                          IN(valid, *negS, gx_i64(x, 1, &big), gx_i64(x, 1, &o)), NULL);
  x->rope_pos = gx_op(x, g, "/positions", "Where", NULL,
                      IN(cur, "position_ids", gx_i64_scalar(x, 0)), NULL);
  const char *msh = gx_op(x, g, "/mask", "Shape", "mask_shape", IN(m), NULL);
  *T1 = gx_op(x, g, "/mask", "Slice", "total", IN(msh, gx_i64(x, 1, &o), gx_i64(x, 1, &two)), NULL);
  return valid;
}

const char *export_attn_rope(gctx *x, const char *scope, const char *leaf, const char *v,
                             int heads) {
  onnx_node *n;
  const char *out = gx_op(x, x->root, scope, "RotaryEmbedding", leaf,
                          IN(v, "rope.cos_cache", "rope.sin_cache", x->rope_pos), &n);
  onnx_node_attr_int(n, "num_heads", heads);
  onnx_node_attr_int(n, "interleaved", 0);
  return out;
}

/* The values every layer shares: RoPE positions, the two mask bodies, the sink pads and the
 * zero key/value row. */
static void attn_shared(gctx *x) {
  const gpt_config *c = x->c;
  onnx_graph *g = x->root;
  const int64_t z = 0, o = 1, two = 2, big = INT64_MAX;
  const char *kpos, *qpos, *valid = NULL, *T1;
  if (x->L->o.sub_model) {
    /* positions 0..S-1 of every sequence */
    const char *S = gx_op(x, g, "/positions", "Squeeze", "S", IN(x->S1, gx_i64(x, 1, &z)), NULL);
    const char *pos = gx_op(x, g, "/positions", "Range", NULL,
                            IN(gx_i64_scalar(x, 0), S, gx_i64_scalar(x, 1)), NULL);
    kpos = qpos = gx_op(x, g, "/positions", "Unsqueeze", "row", IN(pos, gx_i64(x, 1, &z)), NULL);
    const char *bs = gx_op_i(x, g, "/positions", "Concat", "batch_sequence", "axis", 0, IN(x->B1, x->S1));
    x->rope_pos = gx_op(x, g, "/positions", "Expand", NULL, IN(kpos, bs), NULL);
    T1 = x->S1;
  } else {
    const char *negS;
    valid = export_attn_mask_inputs(x, &negS, &T1);
    /* a row's own positions: its real tokens counted from 0 */
    const char *m = "attention_mask";
    const char *cs = gx_op(x, g, "/mask", "CumSum", NULL, IN(m, gx_i64_scalar(x, 1)), NULL);
    kpos = gx_op(x, g, "/mask", "Sub", "key_positions", IN(cs, gx_i64_scalar(x, 1)), NULL);
    qpos = gx_op(x, g, "/mask", "Slice", "query_positions",
                 IN(kpos, negS, gx_i64(x, 1, &big), gx_i64(x, 1, &o)), NULL);         /* [B, S] */
  }
  /* d = qpos_i - kpos_j [B|1, S, T] */
  const char *qi = gx_op(x, g, "/mask", "Unsqueeze", "query", IN(qpos, gx_i64(x, 1, &two)), NULL);
  const char *kj = gx_op(x, g, "/mask", "Unsqueeze", "key", IN(kpos, gx_i64(x, 1, &o)), NULL);
  const char *d = gx_op(x, g, "/mask", "Sub", "distance", IN(qi, kj), NULL);
  const char *vis = gx_op(x, g, "/mask", "GreaterOrEqual", "causal", IN(d, gx_i64_scalar(x, 0)), NULL);
  if (valid) {
    const char *v3 = gx_op(x, g, "/mask", "Unsqueeze", "valid_keys", IN(valid, gx_i64(x, 1, &o)), NULL);
    vis = gx_op(x, g, "/mask", "And", "causal_valid", IN(vis, v3), NULL);
  }
  x->mask_full = mask_body(x, "full", vis);
  x->mask_slide = NULL;
  if (c->sliding_window > 0) {
    const char *inwin = gx_op(x, g, "/mask", "Less", "in_window",
                              IN(d, gx_i64_scalar(x, c->sliding_window)), NULL);
    const char *sv = gx_op(x, g, "/mask", "And", "sliding_visible", IN(vis, inwin), NULL);
    x->mask_slide = mask_body(x, "sliding", sv);
  }
  /* Pad [1, H, 1, 1] -> [1, H, 1, T+1] with the value in the last column */
  const int64_t z3[3] = {0, 0, 0}, z4[4] = {0, 0, 0, 0};
  x->sink_pads = gx_op_i(x, g, "/sinks", "Concat", "pads", "axis", 0,
                         IN(gx_i64(x, 3, z3), T1, gx_i64(x, 4, z4)));
  const int64_t kv = c->n_kv_heads, dh = c->head_dim;
  const char *zshape = gx_op_i(x, g, "/sinks", "Concat", "zero_row_shape", "axis", 0,
                               IN(x->B1, gx_i64(x, 1, &kv), gx_i64(x, 1, &o), gx_i64(x, 1, &dh)));
  onnx_node *n;
  const float zero = 0.0f;
  x->zero_kv = gx_op(x, g, "/sinks", "ConstantOfShape", "zero_row", IN(zshape), &n);
  onnx_node_attr_tensor(n, "value", ONNX_FLOAT, 1, &o, &zero, sizeof zero);
}

/* [B, S, N*Dh] -> [B, N, S, Dh] */
static const char *to_bnsh(gctx *x, const char *scope, const char *leaf, const char *v, int heads) {
  char l2[64];
  const int64_t s4[4] = {0, 0, heads, x->c->head_dim}, perm[4] = {0, 2, 1, 3};
  snprintf(l2, sizeof l2, "Reshape_%s", leaf);
  const char *r = gx_op(x, x->root, scope, "Reshape", l2, IN(v, gx_i64(x, 4, s4)), NULL);
  snprintf(l2, sizeof l2, "Transpose_%s", leaf);
  onnx_node *n;
  const char *t = gx_op(x, x->root, scope, "Transpose", l2, IN(r), &n);
  onnx_node_attr_ints(n, "perm", 4, perm);
  return t;
}

const char *export_attn_core(gctx *x, int l, const char *q, const char *k, const char *v) {
  const gpt_config *c = x->c;
  onnx_graph *g = x->root;
  onnx_node *n;
  char scope[64], sub[96], w[96];
  if (!x->attn_shared_done) attn_shared(x);
  x->attn_shared_done = 1;
  snprintf(scope, sizeof scope, "/block.%d/attn", l);

  snprintf(sub, sizeof sub, "%s/rope", scope);
  const char *qr = export_attn_rope(x, sub, "RotaryEmbedding_q", q, c->n_heads);
  const char *kr = export_attn_rope(x, sub, "RotaryEmbedding_k", k, c->n_kv_heads);

  /* the cache: present = past ++ new keys/values (after RoPE), [B, KV, T, Dh] */
  snprintf(sub, sizeof sub, "%s/cache", scope);
  const char *k4 = to_bnsh(x, sub, "k", kr, c->n_kv_heads);
  const char *v4 = to_bnsh(x, sub, "v", v, c->n_kv_heads);
  const char *q4 = to_bnsh(x, sub, "q", qr, c->n_heads);
  const char *kc = k4, *vc = v4;
  if (!x->L->o.sub_model) {
    kc = gx_op_named(x, g, sub, "Concat", "Concat_key", onnx_graph_strf(g, EXPORT_PRESENT_KEY, l),
                     IN(onnx_graph_strf(g, EXPORT_PAST_KEY, l), k4), &n);
    onnx_node_attr_int(n, "axis", 2);
    vc = gx_op_named(x, g, sub, "Concat", "Concat_value", onnx_graph_strf(g, EXPORT_PRESENT_VALUE, l),
                     IN(onnx_graph_strf(g, EXPORT_PAST_VALUE, l), v4), &n);
    onnx_node_attr_int(n, "axis", 2);
  }

  /* sinks: a zero key/value row after the cache whose mask column holds sinks[h] */
  snprintf(sub, sizeof sub, "%s/sinks", scope);
  const char *ks = gx_op_i(x, g, sub, "Concat", "Concat_k", "axis", 2, IN(kc, x->zero_kv));
  const char *vs = gx_op_i(x, g, sub, "Concat", "Concat_v", "axis", 2, IN(vc, x->zero_kv));
  snprintf(w, sizeof w, "block.%d.attn.sinks", l);
  const char *sk = gx_weight_f32(x, g, sub, w);
  const int64_t s4[4] = {1, c->n_heads, 1, 1};
  const char *sk4 = gx_op(x, g, sub, "Reshape", NULL, IN(sk, gx_i64(x, 4, s4)), NULL);
  const char *col = gx_op(x, g, sub, "Pad", "column", IN(sk4, x->sink_pads), NULL); /* [1,H,1,T+1] */
  const char *body = config_layer_is_sliding(c, l) ? x->mask_slide : x->mask_full;
  const char *mask = gx_op(x, g, sub, "Add", "mask", IN(body, col), NULL);         /* [B,H,S,T+1] */

  snprintf(sub, sizeof sub, "%s/sdpa", scope);
  const char *att = gx_op(x, g, sub, "Attention", NULL, IN(q4, ks, vs, mask), &n); /* [B,H,S,Dh] */
  onnx_node_attr_float(n, "scale", (float)(1.0 / sqrt((double)c->head_dim)));
  onnx_node_attr_int(n, "is_causal", 0);
  const int64_t perm[4] = {0, 2, 1, 3}, flat[2] = {-1, (int64_t)c->n_heads * c->head_dim};
  const char *bshd = gx_op(x, g, sub, "Transpose", NULL, IN(att), &n);
  onnx_node_attr_ints(n, "perm", 4, perm);
  return gx_op(x, g, sub, "Reshape", NULL, IN(bshd, gx_i64(x, 2, flat)), NULL);
}
