#include "export_graph.h"

#include <stdio.h>
#include <stdlib.h>
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

const char *gx_op_i(gctx *x, onnx_graph *g, const char *scope, const char *op, const char *leaf,
                    const char *attr, int64_t v, int n_in, const char *const *in) {
  onnx_node *n;
  const char *out = gx_op(x, g, scope, op, leaf, n_in, in, &n);
  onnx_node_attr_int(n, attr, v);
  return out;
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

const char *gx_rmsnorm(gctx *x, const char *scope, const char *xin, const char *scale_name) {
  onnx_node *n;
  const char *sc = gx_weight_f32(x, x->root, scope, scale_name);
  const char *out = gx_op(x, x->root, scope, "RMSNormalization", NULL, IN(xin, sc), &n);
  onnx_node_attr_int(n, "axis", -1);
  onnx_node_attr_float(n, "epsilon", GX_RMS_EPS);
  return out;
}

void gx_expose(gctx *x, const char *scope, const char *leaf, const char *v, const char *shape,
               const char *name, int elem_type, int64_t last) {
  gx_op_named(x, x->root, scope, "Reshape", leaf, name, IN(v, shape), NULL);
  onnx_dim d[3] = {{0, EXPORT_DIM_BATCH}, {0, EXPORT_DIM_SEQUENCE}, {last, NULL}};
  onnx_graph_add_output(x->root, name, elem_type, 3, d);
}

static const char *shape3(gctx *x, const char *leaf, int64_t last) {
  return gx_op_i(x, x->root, "/shapes", "Concat", leaf, "axis", 0,
                 IN(x->B1, x->S1, gx_i64(x, 1, &last)));
}

/* ------------------------------------------------------------------ shared values */

/* B and S of this call (from the main input) and the [B, S, X] shapes used by every layer. */
static void shared_shapes(gctx *x) {
  const gpt_config *c = x->c;
  onnx_graph *g = x->root;
  const char *sh = gx_op(x, g, "/shapes", "Shape", "Shape",
                         IN(x->L->o.sub_model ? "hidden_in" : "input_ids"), NULL);
  const int64_t z = 0, o = 1, t = 2;
  x->B1 = gx_op(x, g, "/shapes", "Slice", "batch", IN(sh, gx_i64(x, 1, &z), gx_i64(x, 1, &o)), NULL);
  x->S1 = gx_op(x, g, "/shapes", "Slice", "sequence", IN(sh, gx_i64(x, 1, &o), gx_i64(x, 1, &t)), NULL);
  x->shape_q = shape3(x, "q", (int64_t)c->n_heads * c->head_dim);
  x->shape_kv = shape3(x, "kv", (int64_t)c->n_kv_heads * c->head_dim);
  x->shape_d = shape3(x, "hidden", c->hidden);
  x->shape_k = shape3(x, "topk", c->top_k);
  x->shape_e = shape3(x, "experts", c->n_experts);
  x->shape_v = shape3(x, "vocab", c->vocab);
}

/* ------------------------------------------------------------------ attention block */

static const char *linear(gctx *x, const char *scope, const char *xin, const char *w,
                          const char *b) {
  onnx_node *n;
  const char *wf = gx_weight_f32(x, x->root, scope, w);
  const char *out = b ? gx_op(x, x->root, scope, "Gemm", NULL, IN(xin, wf, gx_weight_f32(x, x->root, scope, b)), &n)
                      : gx_op(x, x->root, scope, "Gemm", NULL, IN(xin, wf), &n);
  onnx_node_attr_int(n, "transB", 1);
  return out;
}

const char *export_add_norm(gctx *x, const char *scope, const char *base, const char *delta,
                            const char *add_scope, const char *scale, const char **sum) {
  *sum = delta ? gx_op(x, x->root, add_scope, "Add", "residual", IN(base, delta), NULL) : base;
  return gx_rmsnorm(x, scope, *sum, scale);
}

/* The residual stream entering layer l is *h + delta (delta from the scope dscope, or NULL):
 * the attention block's output projection out(attention(qkv(RMSNorm(*h + delta)))) [B*S, D];
 * *h becomes the sum. The norm and the residual Add are the target's (fused by the ort target). */
static const char *attn_block(gctx *x, int l, const char **h, const char *delta,
                              const char *dscope) {
  const gpt_config *c = x->c;
  onnx_graph *g = x->root;
  onnx_node *n;
  char scope[64], sub[96], w[96], b[96];
  snprintf(scope, sizeof scope, "/block.%d/attn", l);

  snprintf(sub, sizeof sub, "%s/norm", scope);
  snprintf(w, sizeof w, "block.%d.attn.norm.scale", l);
  const char *xn = x->target->add_norm(x, sub, *h, delta, dscope, w, h);

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
  /* [B*S, X] -> [B, S, X] */
  const char *q3 = gx_op(x, g, sub, "Reshape", "Reshape_q", IN(outs[0], x->shape_q), NULL);
  const char *k3 = gx_op(x, g, sub, "Reshape", "Reshape_k", IN(outs[1], x->shape_kv), NULL);
  const char *v3 = gx_op(x, g, sub, "Reshape", "Reshape_v", IN(outs[2], x->shape_kv), NULL);

  const char *a2 = x->target->attn_core(x, l, q3, k3, v3);   /* [B*S, H*Dh] */

  snprintf(sub, sizeof sub, "%s/out", scope);
  snprintf(w, sizeof w, "block.%d.attn.out.weight", l);
  snprintf(b, sizeof b, "block.%d.attn.out.bias", l);
  return linear(x, sub, a2, w, b);
}

/* The MoE block on *h + delta (delta from layer l's attention): MoE(RMSNorm(*h + delta));
 * *h becomes the sum, hidden.{l}.after_attn. */
static const char *moe_block(gctx *x, int l, const char **h, const char *delta) {
  char scope[64], sub[96], w[96];
  snprintf(scope, sizeof scope, "/block.%d/attn", l);
  snprintf(sub, sizeof sub, "/block.%d/mlp/norm", l);
  snprintf(w, sizeof w, "block.%d.mlp.norm.scale", l);
  const char *t = x->target->add_norm(x, sub, *h, delta, scope, w, h);
  if (x->L->o.expose_hidden)
    gx_expose(x, scope, "expose_after_attn", *h, x->shape_d,
              onnx_graph_strf(x->root, "hidden.%d.after_attn", l), ONNX_FLOAT, x->c->hidden);
  return x->target->moe(x, l, t);
}

/* hidden.{l}.after_mlp, once the sum exists */
static void expose_after_mlp(gctx *x, int l, const char *h) {
  if (!x->L->o.expose_hidden) return;
  char scope[64];
  snprintf(scope, sizeof scope, "/block.%d/mlp", l);
  gx_expose(x, scope, "expose_after_mlp", h, x->shape_d,
            onnx_graph_strf(x->root, "hidden.%d.after_mlp", l), ONNX_FLOAT, x->c->hidden);
}

/* ------------------------------------------------------------------ the head */

/* logits [B*S, V] = x · unembedding.weightᵀ. A bf16 weight whose fp32 copy would exceed ONNX
 * Runtime's constant-folding limit (EXPORT_FOLD_LIMIT: the real models' 201088 x 2880) is used in
 * row chunks under the limit, Slice + Cast each: ORT folds every chunk to fp32 once at session
 * creation, instead of casting the whole table at every call (a second per decode step at 20B
 * widths); the logits are the chunks' Gemms concatenated. The bytes on disk stay bf16. */
static const char *unembedding(gctx *x, const char *hn) {
  const long i = export_layout_find(x->L, "unembedding.weight");
  const exl_tensor *t = i >= 0 ? &x->L->t[i] : NULL;
  const uint64_t f32_bytes = t ? (uint64_t)t->dims[0] * (uint64_t)t->dims[1] * 4 : 0;
  if (!t || t->dtype != ONNX_BFLOAT16 || f32_bytes <= EXPORT_FOLD_LIMIT)
    return linear(x, "/unembedding", hn, "unembedding.weight", NULL);
  onnx_graph *g = x->root;
  const int64_t V = t->dims[0];
  const int n = (int)((f32_bytes + EXPORT_FOLD_LIMIT - 1) / EXPORT_FOLD_LIMIT);
  const int64_t rows = (V + n - 1) / n, zero = 0;
  const char **parts = calloc((size_t)n, sizeof *parts); /* names in the arena; the array here */
  for (int k = 0; parts && k < n; k++) {
    char scope[64];
    snprintf(scope, sizeof scope, "/unembedding/chunk%d", k);
    const int64_t r0 = k * rows, r1 = r0 + rows < V ? r0 + rows : V;
    const char *w = gx_op(x, g, scope, "Slice", NULL,
                          IN("unembedding.weight", gx_i64(x, 1, &r0), gx_i64(x, 1, &r1), gx_i64(x, 1, &zero)), NULL);
    const char *wf = gx_op_i(x, g, scope, "Cast", NULL, "to", ONNX_FLOAT, IN(w));
    onnx_node *nd;
    parts[k] = gx_op(x, g, scope, "Gemm", NULL, IN(hn, wf), &nd);
    onnx_node_attr_int(nd, "transB", 1);
  }
  if (!parts) return NULL;
  const char *name = onnx_graph_strf(g, "/unembedding/Concat");
  const char *out = onnx_graph_strf(g, "/unembedding/Concat_output_0");
  onnx_node *nd = name && out ? onnx_graph_add_node(g, "Concat", name, n, parts, 1, &out) : NULL;
  onnx_node_attr_int(nd, "axis", 1);
  free(parts);
  return nd ? out : NULL;
}

/* The rows of the final norm's output hn [B*S, D] whose logits are computed: of each row of the
 * batch its last k positions, k = max(num_logits_to_keep, 0), all of them when k is 0 or at least
 * S (Slice with starts = -k on the sequence axis: -0 = 0 = all). The norm is per position, so
 * slicing its output equals slicing its input, and the fused norm of the ort target (whose
 * residual sum is exposed as hidden.{L-1}.after_mlp for every position) stays whole; the
 * unembedding, the one costly op of the head, runs over the kept rows only. [B*k, D] */
static const char *kept_rows(gctx *x, const char *hn) {
  onnx_graph *g = x->root;
  const int64_t zero = 0, one = 1, end = INT64_MAX;
  const int64_t flat[2] = {-1, x->c->hidden};
  const char *k = gx_op(x, g, "/logits_to_keep", "Max", NULL,
                        IN(EXPORT_LOGITS_TO_KEEP, gx_i64_scalar(x, 0)), NULL);
  const char *nk = gx_op(x, g, "/logits_to_keep", "Neg", NULL, IN(k), NULL);
  const char *st = gx_op(x, g, "/logits_to_keep", "Unsqueeze", NULL, IN(nk, gx_i64(x, 1, &zero)), NULL);
  const char *h3 = gx_op(x, g, "/logits_to_keep", "Reshape", "Reshape_in", IN(hn, x->shape_d), NULL);
  const char *sl = gx_op(x, g, "/logits_to_keep", "Slice", NULL,
                         IN(h3, st, gx_i64(x, 1, &end), gx_i64(x, 1, &one)), NULL);
  return gx_op(x, g, "/logits_to_keep", "Reshape", "Reshape_out", IN(sl, gx_i64(x, 2, flat)), NULL);
}

/* ------------------------------------------------------------------ the model */

const gx_target export_target_standard = {"standard", export_attn_core, export_moe_block,
                                          export_add_norm};

static void add_initializers(gctx *x) {
  const export_layout *L = x->L;
  char loc[64];
  for (size_t i = 0; i < L->n_tensors; i++) {
    const exl_tensor *t = &L->t[i];
    export_layout_data_location(L, t->file, loc, sizeof loc);
    onnx_graph_add_external(x->root, t->name, t->dtype, t->n_dims, t->dims, loc, t->offset,
                            t->n_bytes);
  }
}

/* The graph's inputs and the outputs every call has (exposed outputs follow as they are
 * built): a decoder with its cache, or a sub-model. */
static void declare_io(gctx *x) {
  const export_layout *L = x->L;
  onnx_graph *g = x->root;
  const onnx_dim bs[3] = {{0, EXPORT_DIM_BATCH}, {0, EXPORT_DIM_SEQUENCE}, {L->c.hidden, NULL}};
  const onnx_dim logits[3] = {{0, EXPORT_DIM_BATCH}, {0, EXPORT_DIM_SEQUENCE}, {L->c.vocab, NULL}};
  if (L->o.sub_model) {
    onnx_graph_add_input(g, "hidden_in", ONNX_FLOAT, 3, bs);
    onnx_graph_add_output(g, "hidden_out", ONNX_FLOAT, 3, bs);
    if (export_layout_has_head(L)) onnx_graph_add_output(g, "logits", ONNX_FLOAT, 3, logits);
    return;
  }
  const onnx_dim total[2] = {{0, EXPORT_DIM_BATCH}, {0, EXPORT_DIM_TOTAL}};
  onnx_graph_add_input(g, "input_ids", ONNX_INT64, 2, bs);
  onnx_graph_add_input(g, "attention_mask", ONNX_INT64, 2, total);
  onnx_graph_add_input(g, "position_ids", ONNX_INT64, 2, bs);
  /* [batch, k or sequence_length, V] (num_logits_to_keep below) */
  const onnx_dim kept[3] = {{0, EXPORT_DIM_BATCH},
                            {0, L->o.logits_to_keep ? EXPORT_DIM_LOGITS : EXPORT_DIM_SEQUENCE},
                            {L->c.vocab, NULL}};
  onnx_graph_add_output(g, "logits", ONNX_FLOAT, 3, kept);
  onnx_dim past[4] = {{0, EXPORT_DIM_BATCH}, {L->c.n_kv_heads, NULL}, {0, EXPORT_DIM_PAST},
                      {L->c.head_dim, NULL}};
  onnx_dim present[4] = {{0, EXPORT_DIM_BATCH}, {L->c.n_kv_heads, NULL}, {0, EXPORT_DIM_TOTAL},
                         {L->c.head_dim, NULL}};
  for (int l = L->o.layer0; l < L->o.n_layers; l++) {
    onnx_graph_add_input(g, onnx_graph_strf(g, EXPORT_PAST_KEY, l), ONNX_FLOAT, 4, past);
    onnx_graph_add_input(g, onnx_graph_strf(g, EXPORT_PAST_VALUE, l), ONNX_FLOAT, 4, past);
    onnx_graph_add_output(g, onnx_graph_strf(g, EXPORT_PRESENT_KEY, l), ONNX_FLOAT, 4, present);
    onnx_graph_add_output(g, onnx_graph_strf(g, EXPORT_PRESENT_VALUE, l), ONNX_FLOAT, 4, present);
  }
  /* --logits-to-keep: a graph input with an initializer of the same name is an overridable
   * default (IR >= 4); a client that does not feed it (ONNX Runtime GenAI, transformers.js) gets
   * every position's logits. Opt-in: ORT warns about such an input at every session creation */
  if (L->o.logits_to_keep) {
    const int64_t all = 0;
    onnx_graph_add_input(g, EXPORT_LOGITS_TO_KEEP, ONNX_INT64, 0, NULL);
    onnx_graph_add_const(g, EXPORT_LOGITS_TO_KEEP, ONNX_INT64, 0, NULL, &all, sizeof all);
  }
}

int export_graph_build(const export_layout *L, onnx_graph **out, err *e) {
  gctx *x = calloc(1, sizeof *x);
  if (!x) return err_set(e, EXIT_RUNTIME, "out of memory (graph context)");
  x->L = L;
  x->c = &L->c;
  x->target = L->o.target == EXPORT_TARGET_ORT ? &export_target_ort : &export_target_standard;
  if (onnx_graph_init("gpt-oss", &x->root, e) != 0) {
    free(x);
    return -1;
  }
  onnx_graph *g = x->root;
  declare_io(x);
  add_initializers(x);
  shared_shapes(x);

  const char *h;
  const int64_t flat2[2] = {-1, L->c.hidden};
  if (L->o.sub_model) {
    /* the residual stream at the boundary, kept 2-D [B*S, D] like everywhere else */
    h = gx_op(x, g, "/hidden_in", "Reshape", NULL, IN("hidden_in", gx_i64(x, 2, flat2)), NULL);
  } else {
    /* embedding: Gather of bf16 rows, then Cast (only the gathered rows are converted) */
    const int64_t flat = -1;
    const char *ids = gx_op(x, g, "/embedding", "Reshape", NULL, IN("input_ids", gx_i64(x, 1, &flat)), NULL);
    const char *rows = gx_op_i(x, g, "/embedding", "Gather", NULL, "axis", 0, IN("embedding.weight", ids));
    h = gx_op_i(x, g, "/embedding", "Cast", NULL, "to", ONNX_FLOAT, IN(rows));
  }

  /* the residual stream is h + delta, delta added (or fused) by the next norm */
  const char *delta = NULL;
  char dscope[64] = "";
  for (int l = L->o.layer0; l < L->o.n_layers; l++) {
    delta = attn_block(x, l, &h, delta, dscope);
    if (l > L->o.layer0) expose_after_mlp(x, l - 1, h);
    delta = moe_block(x, l, &h, delta);
    snprintf(dscope, sizeof dscope, "/block.%d/mlp", l);
  }
  const int last = L->o.n_layers - 1;
  if (export_layout_has_head(L)) {
    const char *hn = x->target->add_norm(x, "/norm", h, delta, dscope, "norm.scale", &h);
    expose_after_mlp(x, last, h);
    if (!L->o.logits_to_keep) {
      const char *lg = unembedding(x, hn);
      gx_op_named(x, g, "/unembedding", "Reshape", NULL, "logits", IN(lg, x->shape_v), NULL);
    } else {
      /* [B*k, V] -> [B, k, V] */
      const int64_t rest = -1, V = x->c->vocab;
      const char *shape = gx_op_i(x, g, "/shapes", "Concat", "logits", "axis", 0,
                                  IN(x->B1, gx_i64(x, 1, &rest), gx_i64(x, 1, &V)));
      const char *lg = unembedding(x, kept_rows(x, hn));
      gx_op_named(x, g, "/unembedding", "Reshape", NULL, "logits", IN(lg, shape), NULL);
    }
  } else {
    h = gx_op(x, g, dscope, "Add", "residual", IN(h, delta), NULL);
    expose_after_mlp(x, last, h);
  }
  if (L->o.sub_model)
    gx_op_named(x, g, "/hidden_out", "Reshape", NULL, "hidden_out", IN(h, x->shape_d), NULL);
  free(x);
  /* a broken graph is reported when it is written; check here to fail early */
  if (onnx_graph_n_nodes(g) == 0) {
    onnx_graph_free(g);
    return err_set(e, EXIT_RUNTIME, "the ONNX graph is empty");
  }
  *out = g;
  return 0;
}
