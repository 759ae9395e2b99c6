/* Internal to export/: the graph-building context shared by export_graph.c (embedding,
 * attention, head) and export_moe.c (the MoE block). */
#ifndef GPTOSS_EXPORT_GRAPH_IMPL_H
#define GPTOSS_EXPORT_GRAPH_IMPL_H

#include "export_layout.h"
#include "onnx_graph.h"

typedef struct {
  onnx_graph *root;
  const export_layout *L;
  const gpt_config *c;
  /* names of values shared by all layers */
  const char *B1, *S1;            /* int64 [1]: batch, sequence */
  const char *shape_q, *shape_kv; /* [B, S, H*Dh], [B, S, KV*Dh] */
  const char *shape_d, *shape_k, *shape_e, *shape_v; /* [B, S, D|K|E|V] */
  const char *pos_ids;            /* int64 [B, S] */
  const char *zero_kv;            /* float [B, 1, KV*Dh] */
  const char *mask_full, *mask_slide; /* float [1, H, S, S]: 0 visible, -inf hidden */
  /* small constants already added (name cache) */
  char consts[64][64];
  int n_consts;
} gctx;

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
/* Small constants in the root graph (visible inside Loop bodies), deduplicated by value. */
const char *gx_i64(gctx *x, int n, const int64_t *v);      /* int64 [n] */
const char *gx_i64_scalar(gctx *x, int64_t v);             /* int64 [] */
const char *gx_f32_scalar(gctx *x, float v);               /* float [] */
const char *gx_bool_scalar(gctx *x, int v);                /* bool [] */
/* A layout tensor as float: its name, or a Cast(to FLOAT) of it when stored as bf16. */
const char *gx_weight_f32(gctx *x, onnx_graph *g, const char *scope, const char *tensor);

/* The MoE block of layer n: x [N, D] -> x + MoE(RMSNorm(x)); exposes routing if asked. */
const char *export_moe_block(gctx *x, int layer, const char *xin);

#endif
