/* parity_stage: the candidate of `parity --per-stage`, for models too large for one process.
 *
 * Stage s of the shard plan (layers [A, B) = [stage_layer0[s], stage_layer0[s+1]), clipped to
 * the layers the reference ran) is checked by its leader rank alone: the leader exports the
 * sub-model of those layers (`export --layers A:B --expose routing,hidden`, mxfp4 experts,
 * RoPE caches for the T positions) into a temporary directory next to the report, or takes
 * DIR/layers-A-B/onnx/model.onnx when a directory of sub-models is given, and runs it in ONNX
 * Runtime on the reference's hidden state entering layer A (embedding_out for A = 0, else
 * hidden_after_mlp of layer A-1), sent by rank 0. The stage whose B is the last layer also
 * returns logits. Every leader sends its layers' routing and hidden states to rank 0, which
 * assembles one candidate trace holding all layers (global numbers). So each stage's check
 * starts from the reference state at its boundary: an error inside a stage never leaks into the
 * next one, and no process ever holds more than one stage's weights.
 *
 * COLLECTIVE over the world; the ranks agree after every phase (buffers, stage runs, assembly).
 * Fault injection: GPTOSS_FAULT=R:stage fails rank R's stage run (dist.h). */
#ifndef GPTOSS_PARITY_STAGE_H
#define GPTOSS_PARITY_STAGE_H

#include <stddef.h>

#include "dist.h"
#include "err.h"
#include "fwd_job.h"
#include "trace.h"

typedef struct {
  const char *onnx_dir;   /* directory of sub-models layers-A-B/onnx/model.onnx, NULL = export them */
  const char *ort_lib;    /* --ort-lib, NULL = default */
  const char *tmp_parent; /* where the temporary sub-models go (the report's directory) */
} parity_stage_opts;

/* j: a finished fwd_job with tracing (rank 0 holds the reference trace j->tr). On success
 * every rank returns 0 and rank 0 has *cand (caller frees with trace_free) and a description
 * in desc; on failure every rank returns -1 with the same error and nothing is left behind. */
int parity_stage_candidate(dist *d, const fwd_job *j, const parity_stage_opts *o, trace *cand,
                           char *desc, size_t desc_len, err *e);

#endif
