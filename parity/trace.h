/* trace: what a forward pass computed, as one HDF5 group (DESIGN.md "Traces").
 *
 * Layout (exactly the names, shapes and dtypes of a precision group of golden/case-a/golden.h5,
 * so `golden.h5:/fp32` is itself a trace):
 *   input_ids [T] int32, logits [T,V] float32, embedding_out [T,D], final_norm_out [T,D],
 *   layers/<n>/ (attribute sliding_window, 0 = full attention) with
 *     router_logits [T,E], topk_indices [T,K] int32 (descending logit order), topk_values [T,K],
 *     topk_weights [T,K], hidden_after_attn [T,D], hidden_after_mlp [T,D],
 *     attn_norm_out [T,D], qkv_out [T,QKV] (before RoPE), sdpa_out [T,H*Dh], mlp_norm_out [T,D],
 *     mlp1_out [T,K,2I], swiglu_out [T,K,I].
 * T = every processed position (prompt, then generated tokens). Group attributes: tool,
 * version, precision, n_ranks, checkpoint, and every config key (spec section 1 names).
 *
 * trace_write writes the group at the root of a new file through the commit path of
 * shards/atomic.h (built in memory, staged next to the target, fsync, rename, fsync of the
 * directory): a failed write leaves no file under the target name. trace_read loads a group from any file (`input_ids` falls back to the file
 * root, where the golden keeps it; debug tensors are optional and NULL when absent).
 * HDF5 failures become err messages naming the file and the dataset; HDF5's own error stack
 * printing is switched off. Local (no MPI). */
#ifndef GPTOSS_TRACE_H
#define GPTOSS_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "atomic.h"
#include "config.h"
#include "err.h"
#include "model.h"

typedef struct {
  int T, n_layers;           /* positions, layers */
  int V, D, E, K, I, QKV, HD; /* vocab, hidden, experts, top-k, intermediate, Dh*(H+2KV), H*Dh */
  int32_t *input_ids;        /* [T] */
  float *embedding_out;      /* [T, D]  (NULL if absent) */
  float *final_norm_out;     /* [T, D]  (NULL if absent) */
  float *logits;             /* [T, V] */
  model_layer_capture *layers; /* [n_layers]; debug members NULL if absent */
  int *sliding_window;       /* [n_layers] */
  /* How a run driven like a client (ort_trace.h) got each position; not stored in files. */
  int32_t *call;             /* [T] or NULL (unknown): 0 = the prefill call, k = decode step k,
                              * -1 = not computed (the run stopped: stop_reason) */
  int stop_call;             /* the call stop_reason is about (the first one not run) */
  int stop_layer;            /* layer stop_reason is about, -1 none */
  char stop_reason[512];     /* why the run stopped before the last position ("" = it did not) */
} trace;

typedef struct {
  const char *precision;     /* "fp32" or "bf16" */
  int n_ranks;
  const char *checkpoint;    /* directory read */
  const gpt_config *config;
} trace_meta;

/* Allocate every tensor (with the debug tensors) for T positions and n_layers layers of
 * config c; sliding_window filled from c. Caller owns *tr (trace_free). */
int trace_alloc(trace *tr, const gpt_config *c, int T, int n_layers, err *e);
void trace_free(trace *tr);
/* Point a model capture at the trace's buffers (rows = absolute positions). cap->layers is
 * tr->layers (borrowed). */
void trace_capture(trace *tr, model_capture *cap);

/* Write tr as the root group of a new HDF5 file at path, atomically. */
int trace_write(const trace *tr, const trace_meta *meta, const char *path, err *e);
/* The same, staged and sealed but not published (shards/atomic.h): the caller publishes *staged
 * once every rank agreed, or aborts it. */
int trace_stage(const trace *tr, const trace_meta *meta, const char *path, atomic_out **staged,
                err *e);
/* Read the trace in `group` ("/" or e.g. "/fp32") of an HDF5 file. Caller owns *tr. */
int trace_read(const char *path, const char *group, trace *tr, err *e);
/* A command-line argument "T.h5" or "T.h5:/group" -> file, group ("/" when none is given). */
void trace_split_arg(const char *arg, char *file, size_t fl, char *group, size_t gl);
/* trace_read of such an argument. */
int trace_read_arg(const char *arg, trace *tr, err *e);
/* The same, checking every shape but reading only input_ids and each layer's topk_indices (the
 * other tensors stay NULL): what `plan --routing` needs of a trace that may be gigabytes. */
int trace_read_routing_arg(const char *arg, trace *tr, err *e);

#endif
