/* onnx_graph: a small builder for ONNX graphs on top of our proto2 subset of onnx.proto
 * (export/proto/onnx-subset.proto: the official field numbers, so the bytes are standard ONNX).
 *
 * A graph owns an arena: every string, node, attribute, tensor and sub-graph (Loop bodies) is
 * allocated from it and freed with the root graph. Builder calls never fail loudly: an
 * allocation failure or a duplicate node name marks the graph as broken (sticky), later calls
 * become no-ops, and onnx_model_write reports the first problem as an err. So a caller builds
 * the whole graph and checks once.
 *
 * Weights never go into the proto: large tensors are initializers with data_location EXTERNAL
 * (location, offset, length relative to the model's directory); only small constants (shapes,
 * scalars) are stored inline as raw_data. Local (no MPI). */
#ifndef GPTOSS_ONNX_GRAPH_H
#define GPTOSS_ONNX_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* ONNX TensorProto.DataType values used here. */
enum {
  ONNX_FLOAT = 1, ONNX_UINT8 = 2, ONNX_INT32 = 6, ONNX_INT64 = 7, ONNX_BOOL = 9,
  ONNX_BFLOAT16 = 16
};

typedef struct onnx_graph onnx_graph;
typedef struct onnx_node onnx_node;     /* a node of some graph, owned by its graph's arena */

/* One dimension of a value's shape: a fixed size (param NULL) or a symbolic name. */
typedef struct {
  int64_t value;
  const char *param;
} onnx_dim;

/* A new root graph. Caller owns *out (onnx_graph_free). */
int onnx_graph_init(const char *name, onnx_graph **out, err *e);
/* Free the root graph and everything built in it (sub-graphs included). */
void onnx_graph_free(onnx_graph *g);
/* A sub-graph (e.g. a Loop body) allocated in g's arena; freed with the root. */
onnx_graph *onnx_graph_sub(onnx_graph *g, const char *name);

/* Copy a string into the graph's arena (NULL if broken). */
const char *onnx_graph_str(onnx_graph *g, const char *s);
/* printf into the arena. */
const char *onnx_graph_strf(onnx_graph *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Add a node op_type named `name` (unique in the model) with inputs in[0..n_in) ("" = omitted
 * optional input) and outputs out[0..n_out). Strings are copied. NULL if broken. */
onnx_node *onnx_graph_add_node(onnx_graph *g, const char *op_type, const char *name, int n_in,
                               const char *const *in, int n_out, const char *const *out);
/* The node's operator set domain (e.g. "com.microsoft", version 1); the model then imports it.
 * One extra domain per model. No-op on NULL. */
void onnx_node_set_domain(onnx_node *n, const char *domain, int64_t version);
/* Attributes of a node (no-ops on NULL). */
void onnx_node_attr_int(onnx_node *n, const char *name, int64_t v);
void onnx_node_attr_float(onnx_node *n, const char *name, float v);
void onnx_node_attr_ints(onnx_node *n, const char *name, int n_v, const int64_t *v);
void onnx_node_attr_string(onnx_node *n, const char *name, const char *v);
/* A tensor attribute with inline data (e.g. ConstantOfShape's value). */
void onnx_node_attr_tensor(onnx_node *n, const char *name, int dtype, int n_dims,
                           const int64_t *dims, const void *data, size_t n_bytes);
void onnx_node_attr_graph(onnx_node *n, const char *name, onnx_graph *sub);

/* A small initializer whose bytes (copied) live in the proto. */
void onnx_graph_add_const(onnx_graph *g, const char *name, int dtype, int n_dims,
                          const int64_t *dims, const void *data, size_t n_bytes);
/* An initializer stored in an external data file: location relative to the model's directory. */
void onnx_graph_add_external(onnx_graph *g, const char *name, int dtype, int n_dims,
                             const int64_t *dims, const char *location, uint64_t offset,
                             uint64_t length);

/* Graph inputs/outputs and value infos; n_dims < 0 = shape unknown (no shape field). */
void onnx_graph_add_input(onnx_graph *g, const char *name, int elem_type, int n_dims,
                          const onnx_dim *dims);
void onnx_graph_add_output(onnx_graph *g, const char *name, int elem_type, int n_dims,
                           const onnx_dim *dims);

/* Counts (for tests and logs). */
size_t onnx_graph_n_nodes(const onnx_graph *g);
size_t onnx_graph_n_initializers(const onnx_graph *g);

/* Serialize the model (ir_version, ai.onnx opset, plus the extra domain its nodes use) to fd, streaming (no whole-model buffer);
 * *n_bytes = bytes written. Fails if the graph is broken. */
int onnx_model_write_fd(onnx_graph *g, int64_t ir_version, int64_t opset, const char *producer,
                        const char *producer_version, int fd, const char *path,
                        uint64_t *n_bytes, err *e);

#endif
