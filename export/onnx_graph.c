#include "onnx_graph.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic.h"
#include "onnx-subset.pb-c.h"

#define ARENA_BLOCK (256u * 1024u)
#define NODE_MAX_ATTRS 12

typedef struct arena_block {
  struct arena_block *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
} arena_block;

/* A growable array of pointers (nodes, initializers, value infos of one graph). */
typedef struct {
  void **v;
  size_t n, cap;
} ptrvec;

struct onnx_node {
  Onnx__NodeProto p;       /* first: the node list is handed to protobuf-c as NodeProto pointers */
  Onnx__AttributeProto *attrs[NODE_MAX_ATTRS];
  onnx_graph *g;
};
_Static_assert(offsetof(onnx_node, p) == 0, "onnx_node must start with its NodeProto");

struct onnx_graph {
  Onnx__GraphProto p;
  onnx_graph *root;
  ptrvec nodes, inits, inputs, outputs;
  /* root only */
  arena_block *arena;
  ptrvec subs;             /* every sub-graph, to finalize and free */
  char **names;            /* open-addressing set of node names (uniqueness) */
  size_t names_cap, n_names;
  const char *domain;      /* a second operator set some node uses (com.microsoft), or NULL */
  int64_t domain_version;
  int broken;
  char why[256];
};

/* ------------------------------------------------------------------ arena and helpers */

static void mark_broken(onnx_graph *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mark_broken(onnx_graph *g, const char *fmt, ...) {
  onnx_graph *r = g->root;
  if (r->broken) return;
  r->broken = 1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->why, sizeof r->why, fmt, ap);
  va_end(ap);
}

static void *arena_alloc(onnx_graph *g, size_t n) {
  onnx_graph *r = g->root;
  if (r->broken) return NULL;
  n = (n + 15) & ~(size_t)15;
  arena_block *b = r->arena;
  if (!b || b->cap - b->used < n) {
    size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
    arena_block *nb = malloc(sizeof *nb + cap);
    if (!nb) {
      mark_broken(g, "out of memory building the graph");
      return NULL;
    }
    nb->next = b;
    nb->used = 0;
    nb->cap = cap;
    r->arena = b = nb;
  }
  void *p = b->data + b->used;
  b->used += n;
  memset(p, 0, n);
  return p;
}

static int vec_push(onnx_graph *g, ptrvec *v, void *p) {
  if (!p) return -1;
  if (v->n == v->cap) {
    size_t cap = v->cap ? 2 * v->cap : 64;
    void **nv = realloc(v->v, cap * sizeof *nv);
    if (!nv) {
      mark_broken(g, "out of memory building the graph");
      return -1;
    }
    v->v = nv;
    v->cap = cap;
  }
  v->v[v->n++] = p;
  return 0;
}

const char *onnx_graph_str(onnx_graph *g, const char *s) {
  size_t n = strlen(s) + 1;
  char *p = arena_alloc(g, n);
  if (p) memcpy(p, s, n);
  return p;
}

const char *onnx_graph_strf(onnx_graph *g, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof buf) {
    mark_broken(g, "name longer than %zu bytes", sizeof buf);
    return NULL;
  }
  return onnx_graph_str(g, buf);
}

static uint64_t name_hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

/* 0 if new (and recorded), -1 if a duplicate or out of memory */
static int name_claim(onnx_graph *g, const char *name) {
  onnx_graph *r = g->root;
  if (2 * (r->n_names + 1) > r->names_cap) {
    size_t cap = r->names_cap ? 2 * r->names_cap : 1024;
    char **nn = calloc(cap, sizeof *nn);
    if (!nn) {
      mark_broken(g, "out of memory building the graph");
      return -1;
    }
    for (size_t i = 0; i < r->names_cap; i++)
      if (r->names[i]) {
        size_t j = name_hash(r->names[i]) & (cap - 1);
        while (nn[j]) j = (j + 1) & (cap - 1);
        nn[j] = r->names[i];
      }
    free(r->names);
    r->names = nn;
    r->names_cap = cap;
  }
  size_t j = name_hash(name) & (r->names_cap - 1);
  while (r->names[j]) {
    if (!strcmp(r->names[j], name)) {
      mark_broken(g, "duplicate node name '%s'", name);
      return -1;
    }
    j = (j + 1) & (r->names_cap - 1);
  }
  r->names[j] = (char *)name;
  r->n_names++;
  return 0;
}

/* ------------------------------------------------------------------ graphs */

static void graph_proto_init(onnx_graph *g, const char *name) {
  onnx__graph_proto__init(&g->p);
  g->p.name = (char *)onnx_graph_str(g, name);
}

int onnx_graph_init(const char *name, onnx_graph **out, err *e) {
  onnx_graph *g = calloc(1, sizeof *g);
  if (!g) return err_set(e, EXIT_RUNTIME, "out of memory building the graph");
  g->root = g;
  graph_proto_init(g, name);
  if (g->broken) {
    onnx_graph_free(g);
    return err_set(e, EXIT_RUNTIME, "out of memory building the graph");
  }
  *out = g;
  return 0;
}

static void graph_vecs_free(onnx_graph *g) {
  free(g->nodes.v);
  free(g->inits.v);
  free(g->inputs.v);
  free(g->outputs.v);
}

void onnx_graph_free(onnx_graph *g) {
  if (!g) return;
  for (size_t i = 0; i < g->subs.n; i++) graph_vecs_free(g->subs.v[i]);
  free(g->subs.v);
  graph_vecs_free(g);
  free(g->names);
  for (arena_block *b = g->arena, *nx; b; b = nx) {
    nx = b->next;
    free(b);
  }
  free(g);
}

onnx_graph *onnx_graph_sub(onnx_graph *g, const char *name) {
  onnx_graph *s = arena_alloc(g, sizeof *s);
  if (!s) return NULL;
  s->root = g->root;
  graph_proto_init(s, name);
  if (vec_push(g, &g->root->subs, s) != 0) return NULL;
  return s;
}

size_t onnx_graph_n_nodes(const onnx_graph *g) { return g->nodes.n; }
size_t onnx_graph_n_initializers(const onnx_graph *g) { return g->inits.n; }

/* ------------------------------------------------------------------ nodes and attributes */

onnx_node *onnx_graph_add_node(onnx_graph *g, const char *op_type, const char *name, int n_in,
                               const char *const *in, int n_out, const char *const *out) {
  if (!g || g->root->broken) return NULL;
  onnx_node *n = arena_alloc(g, sizeof *n);
  char **ins = arena_alloc(g, (size_t)(n_in + 1) * sizeof *ins);
  char **outs = arena_alloc(g, (size_t)(n_out + 1) * sizeof *outs);
  if (!n || !ins || !outs) return NULL;
  onnx__node_proto__init(&n->p);
  n->g = g;
  n->p.op_type = (char *)onnx_graph_str(g, op_type);
  n->p.name = (char *)onnx_graph_str(g, name);
  for (int i = 0; i < n_in; i++) {
    if (!in[i]) {
      mark_broken(g, "node '%s': input %d is missing (an earlier step failed)", name, i);
      return NULL;
    }
    ins[i] = (char *)onnx_graph_str(g, in[i]);
  }
  for (int i = 0; i < n_out; i++) outs[i] = (char *)onnx_graph_str(g, out[i]);
  if (g->root->broken || name_claim(g, n->p.name) != 0) return NULL;
  n->p.n_input = (size_t)n_in;
  n->p.input = ins;
  n->p.n_output = (size_t)n_out;
  n->p.output = outs;
  n->p.attribute = n->attrs;
  if (vec_push(g, &g->nodes, n) != 0) return NULL;
  return n;
}

static Onnx__AttributeProto *attr_new(onnx_node *n, const char *name,
                                      Onnx__AttributeProto__AttributeType type) {
  if (!n || n->g->root->broken) return NULL;
  if (n->p.n_attribute == NODE_MAX_ATTRS) {
    mark_broken(n->g, "node '%s': more than %d attributes", n->p.name, NODE_MAX_ATTRS);
    return NULL;
  }
  Onnx__AttributeProto *a = arena_alloc(n->g, sizeof *a);
  if (!a) return NULL;
  onnx__attribute_proto__init(a);
  a->name = (char *)onnx_graph_str(n->g, name);
  a->has_type = 1;
  a->type = type;
  n->attrs[n->p.n_attribute++] = a;
  return a;
}

void onnx_node_set_domain(onnx_node *n, const char *domain, int64_t version) {
  if (!n) return;
  onnx_graph *r = n->g->root;
  if (r->domain && strcmp(r->domain, domain)) {
    mark_broken(r, "node '%s': a second extra operator set '%s' (the model has '%s')",
                n->p.name, domain, r->domain);
    return;
  }
  n->p.domain = (char *)onnx_graph_str(r, domain);
  r->domain = n->p.domain;
  r->domain_version = version;
}

void onnx_node_attr_int(onnx_node *n, const char *name, int64_t v) {
  Onnx__AttributeProto *a = attr_new(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
  if (a) { a->has_i = 1; a->i = v; }
}

void onnx_node_attr_float(onnx_node *n, const char *name, float v) {
  Onnx__AttributeProto *a = attr_new(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
  if (a) { a->has_f = 1; a->f = v; }
}

void onnx_node_attr_ints(onnx_node *n, const char *name, int n_v, const int64_t *v) {
  Onnx__AttributeProto *a = attr_new(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
  if (!a) return;
  int64_t *c = arena_alloc(n->g, (size_t)(n_v + 1) * sizeof *c);
  if (!c) return;
  if (n_v > 0) memcpy(c, v, (size_t)n_v * sizeof *c);
  a->n_ints = (size_t)n_v;
  a->ints = c;
}

void onnx_node_attr_string(onnx_node *n, const char *name, const char *v) {
  Onnx__AttributeProto *a = attr_new(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
  if (!a) return;
  const char *c = onnx_graph_str(n->g, v);
  if (!c) return;
  a->has_s = 1;
  a->s.len = strlen(c);
  a->s.data = (uint8_t *)c;
}

static Onnx__TensorProto *tensor_new(onnx_graph *g, const char *name, int dtype, int n_dims,
                                     const int64_t *dims) {
  Onnx__TensorProto *t = arena_alloc(g, sizeof *t);
  int64_t *d = arena_alloc(g, (size_t)(n_dims + 1) * sizeof *d);
  if (!t || !d) return NULL;
  onnx__tensor_proto__init(t);
  if (name) t->name = (char *)onnx_graph_str(g, name);
  t->has_data_type = 1;
  t->data_type = dtype;
  if (n_dims > 0) memcpy(d, dims, (size_t)n_dims * sizeof *d);
  t->n_dims = (size_t)n_dims;
  t->dims = d;
  return t;
}

static Onnx__TensorProto *tensor_inline(onnx_graph *g, const char *name, int dtype, int n_dims,
                                        const int64_t *dims, const void *data, size_t n_bytes) {
  Onnx__TensorProto *t = tensor_new(g, name, dtype, n_dims, dims);
  uint8_t *c = arena_alloc(g, n_bytes + 1);
  if (!t || !c) return NULL;
  memcpy(c, data, n_bytes);
  t->has_raw_data = 1;
  t->raw_data.len = n_bytes;
  t->raw_data.data = c;
  return t;
}

void onnx_node_attr_tensor(onnx_node *n, const char *name, int dtype, int n_dims,
                           const int64_t *dims, const void *data, size_t n_bytes) {
  Onnx__AttributeProto *a = attr_new(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
  if (a) a->t = tensor_inline(n->g, NULL, dtype, n_dims, dims, data, n_bytes);
}

void onnx_node_attr_graph(onnx_node *n, const char *name, onnx_graph *sub) {
  Onnx__AttributeProto *a = attr_new(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH);
  if (a && sub) a->g = &sub->p;
  else if (a) mark_broken(n->g, "node '%s': attribute '%s' has no graph", n->p.name, name);
}

/* ------------------------------------------------------------------ initializers, I/O */

void onnx_graph_add_const(onnx_graph *g, const char *name, int dtype, int n_dims,
                          const int64_t *dims, const void *data, size_t n_bytes) {
  vec_push(g, &g->inits, tensor_inline(g, name, dtype, n_dims, dims, data, n_bytes));
}

static Onnx__StringStringEntryProto *kv_new(onnx_graph *g, const char *k, const char *v) {
  Onnx__StringStringEntryProto *p = arena_alloc(g, sizeof *p);
  if (!p) return NULL;
  onnx__string_string_entry_proto__init(p);
  p->key = (char *)onnx_graph_str(g, k);
  p->value = (char *)onnx_graph_str(g, v);
  return p;
}

void onnx_graph_add_external(onnx_graph *g, const char *name, int dtype, int n_dims,
                             const int64_t *dims, const char *location, uint64_t offset,
                             uint64_t length) {
  Onnx__TensorProto *t = tensor_new(g, name, dtype, n_dims, dims);
  Onnx__StringStringEntryProto **kv = arena_alloc(g, 3 * sizeof *kv);
  if (!t || !kv) return;
  char off[32], len[32];
  snprintf(off, sizeof off, "%llu", (unsigned long long)offset);
  snprintf(len, sizeof len, "%llu", (unsigned long long)length);
  kv[0] = kv_new(g, "location", location);
  kv[1] = kv_new(g, "offset", off);
  kv[2] = kv_new(g, "length", len);
  t->n_external_data = 3;
  t->external_data = kv;
  t->has_data_location = 1;
  t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
  vec_push(g, &g->inits, t);
}

static Onnx__ValueInfoProto *value_info_new(onnx_graph *g, const char *name, int elem_type,
                                            int n_dims, const onnx_dim *dims) {
  Onnx__ValueInfoProto *vi = arena_alloc(g, sizeof *vi);
  Onnx__TypeProto *tp = arena_alloc(g, sizeof *tp);
  Onnx__TypeProto__Tensor *tt = arena_alloc(g, sizeof *tt);
  if (!vi || !tp || !tt) return NULL;
  onnx__value_info_proto__init(vi);
  onnx__type_proto__init(tp);
  onnx__type_proto__tensor__init(tt);
  vi->name = (char *)onnx_graph_str(g, name);
  tt->has_elem_type = 1;
  tt->elem_type = elem_type;
  if (n_dims >= 0) {
    Onnx__TensorShapeProto *sp = arena_alloc(g, sizeof *sp);
    Onnx__TensorShapeProto__Dimension **ds = arena_alloc(g, (size_t)(n_dims + 1) * sizeof *ds);
    if (!sp || !ds) return NULL;
    onnx__tensor_shape_proto__init(sp);
    for (int i = 0; i < n_dims; i++) {
      Onnx__TensorShapeProto__Dimension *d = arena_alloc(g, sizeof *d);
      if (!d) return NULL;
      onnx__tensor_shape_proto__dimension__init(d);
      if (dims[i].param) {
        d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
        d->dim_param = (char *)onnx_graph_str(g, dims[i].param);
      } else {
        d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        d->dim_value = dims[i].value;
      }
      ds[i] = d;
    }
    sp->n_dim = (size_t)n_dims;
    sp->dim = ds;
    tt->shape = sp;
  }
  tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
  tp->tensor_type = tt;
  vi->type = tp;
  return vi;
}

void onnx_graph_add_input(onnx_graph *g, const char *name, int elem_type, int n_dims,
                          const onnx_dim *dims) {
  vec_push(g, &g->inputs, value_info_new(g, name, elem_type, n_dims, dims));
}

void onnx_graph_add_output(onnx_graph *g, const char *name, int elem_type, int n_dims,
                           const onnx_dim *dims) {
  vec_push(g, &g->outputs, value_info_new(g, name, elem_type, n_dims, dims));
}

/* ------------------------------------------------------------------ serialization */

static void graph_finalize(onnx_graph *g) {
  g->p.n_node = g->nodes.n;
  g->p.node = (Onnx__NodeProto **)g->nodes.v; /* an onnx_node starts with its NodeProto */
  g->p.n_initializer = g->inits.n;
  g->p.initializer = (Onnx__TensorProto **)g->inits.v;
  g->p.n_input = g->inputs.n;
  g->p.input = (Onnx__ValueInfoProto **)g->inputs.v;
  g->p.n_output = g->outputs.n;
  g->p.output = (Onnx__ValueInfoProto **)g->outputs.v;
}

typedef struct {
  ProtobufCBuffer base;
  int fd;
  const char *path;
  uint8_t buf[1 << 16];
  size_t used;
  uint64_t total;
  err *e;
} fd_buffer;

static void fd_buffer_flush(fd_buffer *b) {
  if (b->used && !err_isset(b->e)) fs_write_all(b->fd, b->buf, b->used, b->path, b->e);
  b->total += b->used;
  b->used = 0;
}

static void fd_buffer_append(ProtobufCBuffer *base, size_t len, const uint8_t *data) {
  fd_buffer *b = (fd_buffer *)base;
  while (len) {
    size_t n = sizeof b->buf - b->used < len ? sizeof b->buf - b->used : len;
    memcpy(b->buf + b->used, data, n);
    b->used += n;
    data += n;
    len -= n;
    if (b->used == sizeof b->buf) fd_buffer_flush(b);
  }
}

int onnx_model_write_fd(onnx_graph *g, int64_t ir_version, int64_t opset, const char *producer,
                        const char *producer_version, int fd, const char *path,
                        uint64_t *n_bytes, err *e) {
  if (g->root->broken)
    return err_set(e, EXIT_RUNTIME, "%s: cannot build the ONNX graph: %s", path, g->root->why);
  for (size_t i = 0; i < g->subs.n; i++) graph_finalize(g->subs.v[i]);
  graph_finalize(g);
  Onnx__OperatorSetIdProto ops;
  onnx__operator_set_id_proto__init(&ops);
  ops.domain = "";
  ops.has_version = 1;
  ops.version = opset;
  Onnx__OperatorSetIdProto extra;
  onnx__operator_set_id_proto__init(&extra);
  extra.domain = (char *)g->domain;
  extra.has_version = 1;
  extra.version = g->domain_version;
  Onnx__OperatorSetIdProto *opsp[2] = {&ops, &extra};
  Onnx__ModelProto m;
  onnx__model_proto__init(&m);
  m.has_ir_version = 1;
  m.ir_version = ir_version;
  m.n_opset_import = g->domain ? 2 : 1;
  m.opset_import = opsp;
  m.producer_name = (char *)producer;
  m.producer_version = (char *)producer_version;
  m.graph = &g->p;
  fd_buffer *b = malloc(sizeof *b);
  if (!b) return err_set(e, EXIT_RUNTIME, "%s: out of memory", path);
  b->base.append = fd_buffer_append;
  b->fd = fd;
  b->path = path;
  b->used = 0;
  b->total = 0;
  b->e = e;
  protobuf_c_message_pack_to_buffer(&m.base, &b->base);
  fd_buffer_flush(b);
  if (n_bytes) *n_bytes = b->total;
  free(b);
  return err_isset(e) ? -1 : 0;
}
