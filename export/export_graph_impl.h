/* Internal to export/: the graph-building context shared by export_graph.c (inputs, embedding,
 * layer skeleton, head), export_attn.c (the attention core) and export_moe.c (the MoE block).
 *
 * A target (gx_target) is the set of blocks that may differ between export targets: the
 * attention core (RoPE, KV cache, sinks, window, softmax) and the MoE block. The skeleton,
 * the graph's inputs and outputs and their names are the same for every target. */
#ifndef GPTOSS_EXPORT_GRAPH_IMPL_H
#define GPTOSS_EXPORT_GRAPH_IMPL_H

#include "export_layout.h"
#include "onnx_graph.h"

typedef struct gctx gctx;

typedef struct {
  const char *name;
  /* Layer l's attention between the qkv projection and the output projection:
   * q [B, S, H*Dh], k and v [B, S, KV*Dh] (projected, before RoPE) -> [B*S, H*Dh]. For a
   * decoder (not a sub-model) it also produces the graph outputs present.{l}.key/value
   * [B, KV, T, Dh] from the graph inputs past_key_values.{l}.key/value [B, KV, P, Dh]. */
  const char *(*attn_core)(gctx *x, int layer, const char *q, const char *k, const char *v);
  /* Layer l's MoE: t = RMSNorm(x) [B*S, D] -> MoE(t) [B*S, D]; exposes routing if asked. */
  const char *(*moe)(gctx *x, int layer, const char *t);
  /* RMSNorm(base + delta) scaled by the layout tensor `scale`, in node scope `scope`; *sum =
   * base + delta (an Add in add_scope, or fused), or base when delta is NULL. */
  const char *(*add_norm)(gctx *x, const char *scope, const char *base, const char *delta,
                          const char *add_scope, const char *scale, const char **sum);
} gx_target;

/* The standard-ONNX target (opset 23 ops only). */
extern const gx_target export_target_standard;
/* The ONNX Runtime target (com.microsoft GroupQueryAttention and QMoE; export_ort_graph.c). */
extern const gx_target export_target_ort;

struct gctx {
  onnx_graph *root;
  const export_layout *L;
  const gpt_config *c;
  const gx_target *target;
  /* names of values shared by all layers */
  const char *B1, *S1;            /* int64 [1]: batch, sequence (new tokens of this call) */
  const char *shape_q, *shape_kv; /* [B, S, H*Dh], [B, S, KV*Dh] */
  const char *shape_d, *shape_k, *shape_e, *shape_v; /* [B, S, D|K|E|V] */
  /* standard attention core: values built once by its first layer (export_attn.c) */
  int attn_shared_done;
  const char *rope_pos;           /* int64 [B, S]: positions fed to RotaryEmbedding */
  const char *mask_full, *mask_slide; /* float [B|1, 1, S, T+1]: 0 visible, -inf hidden; the
                                       * last column (the sink's) 0 */
  const char *sink_pads;          /* int64 [8]: Pad of [1, H, 1, 1] to [1, H, 1, T+1] */
  const char *zero_kv;            /* float [B, KV, 1, Dh]: the sink's key/value row */
  /* ort attention core (export_ort_graph.c) */
  const char *seqlens_k;          /* int32 [B]: T - 1 (the cache slots, padding included) */
  const char *total_len;          /* int32 []: T */
  const char *pad_bias;           /* float [B, 1, S, T]: 0, or -inf at padding keys */
  /* small constants already added (name cache) */
  char consts[256][64];
  int n_consts;
};

/* Every RMSNorm's epsilon (docs/gpt-oss-spec.md: 1e-5 for all norms), in both targets. */
#define GX_RMS_EPS 1e-5f

/* Input-list helper: IN(a, b, c) -> count, array. */
#define IN(...) \
  (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)), (const char *[]){__VA_ARGS__}

/* Node `scope/op` (or `scope/leaf` when leaf is given) in graph g with one output
 * "<node name>_output_0"; returns the output name and the node in *node (may be NULL). */
const char *gx_op(gctx *x, onnx_graph *g, const char *scope, const char *op, const char *leaf,
                  int n_in, const char *const *in, onnx_node **node);
/* Same, with the output name given (graph outputs). */
const char *gx_op_named(gctx *x, onnx_graph *g, const char *scope, const char *op,
                        const char *leaf, const char *out, int n_in, const char *const *in,
                        onnx_node **node);
/* Same as gx_op with one int attribute set (axis, to, perm-free ops...). */
const char *gx_op_i(gctx *x, onnx_graph *g, const char *scope, const char *op, const char *leaf,
                    const char *attr, int64_t v, int n_in, const char *const *in);
/* Small constants in the root graph (visible inside Loop bodies), deduplicated by value. */
const char *gx_i64(gctx *x, int n, const int64_t *v);      /* int64 [n] */
const char *gx_i64_scalar(gctx *x, int64_t v);             /* int64 [] */
const char *gx_f32_scalar(gctx *x, float v);               /* float [] */
const char *gx_bool_scalar(gctx *x, int v);                /* bool [] */
/* A layout tensor as float: its name, or a Cast(to FLOAT) of it when stored as bf16. */
const char *gx_weight_f32(gctx *x, onnx_graph *g, const char *scope, const char *tensor);
/* RMSNormalization(eps 1e-5, last axis) of xin with the layout tensor scale_name. */
const char *gx_rmsnorm(gctx *x, const char *scope, const char *xin, const char *scale_name);
/* Expose value v [B*S, X] as graph output `name` [batch_size, sequence_length, X]. */
void gx_expose(gctx *x, const char *scope, const char *leaf, const char *v, const char *shape,
               const char *name, int elem_type, int64_t last);

/* Layer l's router on t = RMSNorm(x) [N, D]: logits [N, E]; with want_topk (or routing exposed)
 * also the top-k indices *ti [N, K] and their softmax *wts [N, K] (else NULL), and the
 * routing outputs when exposed. */
const char *export_moe_router(gctx *x, int layer, const char *t, int want_topk, const char **ti,
                              const char **wts);
/* The decoder's per-call mask inputs: valid = attention_mask as bool [B, T], *negS = -S [1],
 * *T1 = T [1]; sets x->rope_pos (position_ids, 0 at padding). */
const char *export_attn_mask_inputs(gctx *x, const char **negS, const char **T1);
/* RotaryEmbedding (opset 23, halves rotated) of v [B, S, heads*Dh] at x->rope_pos. */
const char *export_attn_rope(gctx *x, const char *scope, const char *leaf, const char *v,
                             int heads);
/* The standard MoE block (export_moe.c). */
const char *export_moe_block(gctx *x, int layer, const char *t);
/* The standard residual + norm: Add in add_scope ("<add_scope>/residual"), RMSNormalization. */
const char *export_add_norm(gctx *x, const char *scope, const char *base, const char *delta,
                            const char *add_scope, const char *scale, const char **sum);
/* The standard attention core (export_attn.c). */
const char *export_attn_core(gctx *x, int layer, const char *q, const char *k, const char *v);

#endif
