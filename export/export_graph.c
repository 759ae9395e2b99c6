#include "export_graph.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "export_graph_impl.h"

/* ------------------------------------------------------------------ helpers */

const char *gx_op_named(gctx *x, onnx_graph *g, const char *scope, const char *op,
                        const char *leaf, const char *out, int n_in, const char *const *in,
                        onnx_node **node) {
  const char *name = onnx_graph_strf(x->root, "%s/%s", scope, leaf ? leaf : op);
  onnx_node *n = name && out ? onnx_graph_add_node(g, op, name, n_in, in, 1, &out) : NULL;
  if (node) *node = n;
  return n ? out : NULL;
}

const char *gx_op(gctx *x, onnx_graph *g, const char *scope, const char *op, const char *leaf,
                  int n_in, const char *const *in, onnx_node **node) {
  const char *out = onnx_graph_strf(x->root, "%s/%s_output_0", scope, leaf ? leaf : op);
  return gx_op_named(x, g, scope, op, leaf, out, n_in, in, node);
}

static const char *const_cached(gctx *x, const char *key, int dtype, int n_dims,
                                const int64_t *dims, const void *data, size_t n_bytes) {
  for (int i = 0; i < x->n_consts; i++)
    if (!strcmp(x->consts[i], key)) return onnx_graph_str(x->root, key);
  if (x->n_consts < (int)(sizeof x->consts / sizeof x->consts[0])) {
    snprintf(x->consts[x->n_consts], sizeof x->consts[0], "%s", key);
    x->n_consts++;
  }
  onnx_graph_add_const(x->root, key, dtype, n_dims, dims, data, n_bytes);
  return onnx_graph_str(x->root, key);
}

const char *gx_i64(gctx *x, int n, const int64_t *v) {
  char key[64];
  int k = snprintf(key, sizeof key, "const.i64.");
  for (int i = 0; i < n && k < (int)sizeof key - 24; i++)
    k += snprintf(key + k, sizeof key - (size_t)k, "%s%lld", i ? "_" : "", (long long)v[i]);
  const int64_t dims[1] = {n};
  return const_cached(x, key, ONNX_INT64, 1, dims, v, (size_t)n * sizeof *v);
}

const char *gx_i64_scalar(gctx *x, int64_t v) {
  char key[64];
  snprintf(key, sizeof key, "const.i64s.%lld", (long long)v);
  return const_cached(x, key, ONNX_INT64, 0, NULL, &v, sizeof v);
}

const char *gx_f32_scalar(gctx *x, float v) {
  char key[64];
  snprintf(key, sizeof key, "const.f32.%.9g", v);
  return const_cached(x, key, ONNX_FLOAT, 0, NULL, &v, sizeof v);
}

const char *gx_bool_scalar(gctx *x, int v) {
  const uint8_t b = v ? 1 : 0;
  return const_cached(x, v ? "const.bool.true" : "const.bool.false", ONNX_BOOL, 0, NULL, &b, 1);
}

const char *gx_weight_f32(gctx *x, onnx_graph *g, const char *scope, const char *tensor) {
  long i = export_layout_find(x->L, tensor);
  if (i < 0) return NULL;
  if (x->L->t[i].dtype == ONNX_FLOAT) return onnx_graph_str(x->root, tensor);
  onnx_node *n;
  const char *leaf = onnx_graph_strf(x->root, "Cast_%s", strrchr(tensor, '.') + 1);
  const char *out = gx_op(x, g, scope, "Cast", leaf, IN(tensor), &n);
  onnx_node_attr_int(n, "to", ONNX_FLOAT);
  return out;
}

static const char *shape3(gctx *x, const char *leaf, int64_t last) {
  onnx_node *n;
  const char *out = gx_op(x, x->root, "/shapes", "Concat", leaf,
                          IN(x->B1, x->S1, gx_i64(x, 1, &last)), &n);
  onnx_node_attr_int(n, "axis", 0);
  return out;
}

/* Expose value v [N, X] as graph output `name` [batch, sequence, X]. */
static void expose(gctx *x, const char *scope, const char *leaf, const char *v, const char *shape,
                   const char *name, int elem_type, int64_t last) {
  gx_op_named(x, x->root, scope, "Reshape", leaf, name, IN(v, shape), NULL);
  onnx_dim d[3] = {{0, "batch"}, {0, "sequence"}, {last, NULL}};
  onnx_graph_add_output(x->root, name, elem_type, 3, d);
}

/* ------------------------------------------------------------------ shared values */

static void shared_values(gctx *x) {
  const gpt_config *c = x->c;
  onnx_graph *g = x->root;
  onnx_node *n;
  const int sub = x->L->o.sub_model;
  const char *sh = gx_op(x, g, "/shapes", "Shape", "Shape", IN(sub ? "hidden_in" : "input_ids"), NULL);
  const int64_t z = 0, o = 1, t = 2;
  x->B1 = gx_op(x, g, "/shapes", "Slice", "batch", IN(sh, gx_i64(x, 1, &z), gx_i64(x, 1, &o)), NULL);
  x->S1 = gx_op(x, g, "/shapes", "Slice", "sequence", IN(sh, gx_i64(x, 1, &o), gx_i64(x, 1, &t)), NULL);
  /* a sub-model's input is [B, S, D]: the positions are expanded to its first two dims */
  if (sub)
    sh = gx_op(x, g, "/shapes", "Slice", "batch_sequence", IN(sh, gx_i64(x, 1, &z), gx_i64(x, 1, &t)), NULL);
  x->shape_q = shape3(x, "q", (int64_t)c->n_heads * c->head_dim);
  x->shape_kv = shape3(x, "kv", (int64_t)c->n_kv_heads * c->head_dim);
  x->shape_d = shape3(x, "hidden", c->hidden);
  x->shape_k = shape3(x, "topk", c->top_k);
  x->shape_e = shape3(x, "experts", c->n_experts);
  x->shape_v = shape3(x, "vocab", c->vocab);

  /* positions 0..S-1 of every sequence */
  const char *S = gx_op(x, g, "/positions", "Squeeze", "S", IN(x->S1, gx_i64(x, 1, &z)), NULL);
  const char *pos = gx_op(x, g, "/positions", "Range", NULL,
                          IN(gx_i64_scalar(x, 0), S, gx_i64_scalar(x, 1)), NULL);
  const char *pos_row = gx_op(x, g, "/positions", "Unsqueeze", "row", IN(pos, gx_i64(x, 1, &z)), NULL);
  x->pos_ids = gx_op(x, g, "/positions", "Expand", NULL, IN(pos_row, sh), NULL);

  /* the sink slot: one zero key/value row appended to every sequence */
  const int64_t kvw = (int64_t)c->n_kv_heads * c->head_dim;
  const char *zshape = gx_op(x, g, "/sinks", "Concat", "zero_row_shape",
                             IN(x->B1, gx_i64(x, 1, &o), gx_i64(x, 1, &kvw)), &n);
  onnx_node_attr_int(n, "axis", 0);
  const float zero = 0.0f;
  const int64_t one_dim[1] = {1};
  x->zero_kv = gx_op(x, g, "/sinks", "ConstantOfShape", "zero_row", IN(zshape), &n);
  onnx_node_attr_tensor(n, "value", ONNX_FLOAT, 1, one_dim, &zero, sizeof zero);

  /* masks [1, H, S, S]: key j visible from query i if j <= i (and i - j < W when sliding) */
  const char *qi = gx_op(x, g, "/mask", "Unsqueeze", "query", IN(pos, gx_i64(x, 1, &o)), NULL);
  const char *kj = pos_row;
  const char *causal = gx_op(x, g, "/mask", "LessOrEqual", "causal", IN(kj, qi), NULL);
  const int64_t H = c->n_heads;
  const char *mshape = gx_op(x, g, "/mask", "Concat", "shape",
                             IN(gx_i64(x, 1, &o), gx_i64(x, 1, &H), x->S1, x->S1), &n);
  onnx_node_attr_int(n, "axis", 0);
  const char *zf = gx_f32_scalar(x, 0.0f), *ninf = gx_f32_scalar(x, -INFINITY);
  const char *full = gx_op(x, g, "/mask", "Where", "full", IN(causal, zf, ninf), NULL);
  x->mask_full = gx_op(x, g, "/mask", "Expand", "full_heads", IN(full, mshape), NULL);
  x->mask_slide = NULL;
  if (c->sliding_window > 0) {
    const char *diff = gx_op(x, g, "/mask", "Sub", "distance", IN(qi, kj), NULL);
    const char *inwin = gx_op(x, g, "/mask", "Less", "in_window",
                              IN(diff, gx_i64_scalar(x, c->sliding_window)), NULL);
    const char *vis = gx_op(x, g, "/mask", "And", "sliding_visible", IN(causal, inwin), NULL);
    const char *sl = gx_op(x, g, "/mask", "Where", "sliding", IN(vis, zf, ninf), NULL);
    x->mask_slide = gx_op(x, g, "/mask", "Expand", "sliding_heads", IN(sl, mshape), NULL);
  }
}

/* ------------------------------------------------------------------ attention block */

static const char *rmsnorm(gctx *x, const char *scope, const char *xin, const char *scale_name) {
  onnx_node *n;
  const char *sc = gx_weight_f32(x, x->root, scope, scale_name);
  const char *out = gx_op(x, x->root, scope, "RMSNormalization", NULL, IN(xin, sc), &n);
  onnx_node_attr_int(n, "axis", -1);
  onnx_node_attr_float(n, "epsilon", 1e-5f);
  return out;
}

static const char *linear(gctx *x, const char *scope, const char *xin, const char *w,
                          const char *b) {
  onnx_node *n;
  const char *wf = gx_weight_f32(x, x->root, scope, w);
  const char *out = b ? gx_op(x, x->root, scope, "Gemm", NULL, IN(xin, wf, gx_weight_f32(x, x->root, scope, b)), &n)
                      : gx_op(x, x->root, scope, "Gemm", NULL, IN(xin, wf), &n);
  onnx_node_attr_int(n, "transB", 1);
  return out;
}

static const char *attn_block(gctx *x, int l, const char *xin) {
  const gpt_config *c = x->c;
  onnx_graph *g = x->root;
  onnx_node *n;
  char scope[64], sub[96], w[96], b[96];
  snprintf(scope, sizeof scope, "/block.%d/attn", l);

  snprintf(sub, sizeof sub, "%s/norm", scope);
  snprintf(w, sizeof w, "block.%d.attn.norm.scale", l);
  const char *xn = rmsnorm(x, sub, xin, w);

  snprintf(sub, sizeof sub, "%s/qkv", scope);
  snprintf(w, sizeof w, "block.%d.attn.qkv.weight", l);
  snprintf(b, sizeof b, "block.%d.attn.qkv.bias", l);
  const char *qkv = linear(x, sub, xn, w, b);
  const int64_t split[3] = {(int64_t)c->n_heads * c->head_dim, (int64_t)c->n_kv_heads * c->head_dim,
                            (int64_t)c->n_kv_heads * c->head_dim};
  const char *name = onnx_graph_strf(g, "%s/Split", sub);
  const char *outs[3] = {onnx_graph_strf(g, "%s/q", sub), onnx_graph_strf(g, "%s/k", sub),
                         onnx_graph_strf(g, "%s/v", sub)};
  const char *sin[2] = {qkv, gx_i64(x, 3, split)};
  n = name && outs[0] && outs[1] && outs[2] ? onnx_graph_add_node(g, "Split", name, 2, sin, 3, outs) : NULL;
  onnx_node_attr_int(n, "axis", 1);

  snprintf(sub, sizeof sub, "%s/rope", scope);
  const char *q3 = gx_op(x, g, sub, "Reshape", "Reshape_q", IN(outs[0], x->shape_q), NULL);
  const char *k3 = gx_op(x, g, sub, "Reshape", "Reshape_k", IN(outs[1], x->shape_kv), NULL);
  const char *v3 = gx_op(x, g, sub, "Reshape", "Reshape_v", IN(outs[2], x->shape_kv), NULL);
  const char *qr = gx_op(x, g, sub, "RotaryEmbedding", "RotaryEmbedding_q",
                         IN(q3, "rope.cos_cache", "rope.sin_cache", x->pos_ids), &n);
  onnx_node_attr_int(n, "num_heads", c->n_heads);
  onnx_node_attr_int(n, "interleaved", 0);
  const char *kr = gx_op(x, g, sub, "RotaryEmbedding", "RotaryEmbedding_k",
                         IN(k3, "rope.cos_cache", "rope.sin_cache", x->pos_ids), &n);
  onnx_node_attr_int(n, "num_heads", c->n_kv_heads);
  onnx_node_attr_int(n, "interleaved", 0);

  /* sinks: a zero key/value row whose mask column holds sinks[h] */
  snprintf(sub, sizeof sub, "%s/sinks", scope);
  const char *kp = gx_op(x, g, sub, "Concat", "Concat_k", IN(kr, x->zero_kv), &n);
  onnx_node_attr_int(n, "axis", 1);
  const char *vp = gx_op(x, g, sub, "Concat", "Concat_v", IN(v3, x->zero_kv), &n);
  onnx_node_attr_int(n, "axis", 1);
  snprintf(w, sizeof w, "block.%d.attn.sinks", l);
  const char *sk = gx_weight_f32(x, g, sub, w);
  const int64_t s4[4] = {1, c->n_heads, 1, 1}, o = 1;
  const char *sk4 = gx_op(x, g, sub, "Reshape", NULL, IN(sk, gx_i64(x, 4, s4)), NULL);
  const int64_t H = c->n_heads;
  const char *cshape = gx_op(x, g, sub, "Concat", "column_shape",
                             IN(gx_i64(x, 1, &o), gx_i64(x, 1, &H), x->S1, gx_i64(x, 1, &o)), &n);
  onnx_node_attr_int(n, "axis", 0);
  const char *col = gx_op(x, g, sub, "Expand", "column", IN(sk4, cshape), NULL);
  const char *body = config_layer_is_sliding(c, l) ? x->mask_slide : x->mask_full;
  const char *mask = gx_op(x, g, sub, "Concat", "mask", IN(body, col), &n);
  onnx_node_attr_int(n, "axis", 3);

  snprintf(sub, sizeof sub, "%s/sdpa", scope);
  const char *att = gx_op(x, g, sub, "Attention", NULL, IN(qr, kp, vp, mask), &n);
  onnx_node_attr_int(n, "q_num_heads", c->n_heads);
  onnx_node_attr_int(n, "kv_num_heads", c->n_kv_heads);
  onnx_node_attr_float(n, "scale", (float)(1.0 / sqrt((double)c->head_dim)));
  onnx_node_attr_int(n, "is_causal", 0);
  const int64_t flat[2] = {-1, (int64_t)c->n_heads * c->head_dim};
  const char *a2 = gx_op(x, g, sub, "Reshape", NULL, IN(att, gx_i64(x, 2, flat)), NULL);

  snprintf(sub, sizeof sub, "%s/out", scope);
  snprintf(w, sizeof w, "block.%d.attn.out.weight", l);
  snprintf(b, sizeof b, "block.%d.attn.out.bias", l);
  const char *o2 = linear(x, sub, a2, w, b);
  const char *xo = gx_op(x, g, scope, "Add", "residual", IN(xin, o2), NULL);
  if (x->L->o.expose_hidden)
    expose(x, scope, "expose_after_attn", xo, x->shape_d,
           onnx_graph_strf(g, "hidden.%d.after_attn", l), ONNX_FLOAT, c->hidden);
  return xo;
}

/* ------------------------------------------------------------------ the model */

static void add_initializers(gctx *x) {
  const export_layout *L = x->L;
  char loc[64];
  for (size_t i = 0; i < L->n_tensors; i++) {
    const exl_tensor *t = &L->t[i];
    export_layout_file_name(L, t->file, loc, sizeof loc);
    onnx_graph_add_external(x->root, t->name, t->dtype, t->n_dims, t->dims, loc, t->offset,
                            t->n_bytes);
  }
}

int export_graph_build(const export_layout *L, onnx_graph **out, err *e) {
  gctx x;
  memset(&x, 0, sizeof x);
  x.L = L;
  x.c = &L->c;
  if (onnx_graph_init("gpt-oss", &x.root, e) != 0) return -1;
  onnx_graph *g = x.root;
  const onnx_dim in_dims[3] = {{0, "batch"}, {0, "sequence"}, {L->c.hidden, NULL}};
  if (L->o.sub_model) onnx_graph_add_input(g, "hidden_in", ONNX_FLOAT, 3, in_dims);
  else onnx_graph_add_input(g, "input_ids", ONNX_INT64, 2, in_dims);
  add_initializers(&x);
  shared_values(&x);

  const char *h;
  onnx_node *n;
  if (L->o.sub_model) {
    /* the residual stream at the boundary, kept 2-D [B*S, D] like everywhere else */
    const int64_t flat2[2] = {-1, L->c.hidden};
    h = gx_op(&x, g, "/hidden_in", "Reshape", NULL, IN("hidden_in", gx_i64(&x, 2, flat2)), NULL);
  } else {
    /* embedding: Gather of bf16 rows, then Cast (only the gathered rows are converted) */
    const int64_t flat = -1;
    const char *ids = gx_op(&x, g, "/embedding", "Reshape", NULL, IN("input_ids", gx_i64(&x, 1, &flat)), NULL);
    const char *rows = gx_op(&x, g, "/embedding", "Gather", NULL, IN("embedding.weight", ids), &n);
    onnx_node_attr_int(n, "axis", 0);
    h = gx_op(&x, g, "/embedding", "Cast", NULL, IN(rows), &n);
    onnx_node_attr_int(n, "to", ONNX_FLOAT);
  }

  for (int l = L->o.layer0; l < L->o.n_layers; l++) {
    h = attn_block(&x, l, h);
    h = export_moe_block(&x, l, h);
  }

  if (L->o.sub_model)
    expose(&x, "/hidden_out", "Reshape", h, x.shape_d, "hidden_out", ONNX_FLOAT, L->c.hidden);
  if (export_layout_has_head(L)) {
    const char *hn = rmsnorm(&x, "/norm", h, "norm.scale");
    const char *lg = linear(&x, "/unembedding", hn, "unembedding.weight", NULL);
    expose(&x, "/unembedding", "Reshape", lg, x.shape_v, "logits", ONNX_FLOAT, L->c.vocab);
  }
  /* a broken graph is reported when it is written; check here to fail early */
  if (onnx_graph_n_nodes(g) == 0) {
    onnx_graph_free(g);
    return err_set(e, EXIT_RUNTIME, "the ONNX graph is empty");
  }
  *out = g;
  return 0;
}
