/* ort_decoder: drive a decoder-with-past session (`gptoss-mpi export`, docs/export.md) the way
 * a generating client does (transformers.js, ONNX Runtime GenAI; docs/clients.md).
 *
 * The session's inputs must be input_ids, attention_mask (int64 [batch, n]), optionally
 * position_ids, and past_key_values.* (float, rank 4) each with a present.* output of the same
 * suffix; anything else is refused with an error naming it. The first call gets an empty cache
 * made from the inputs' metadata (numeric dimensions kept, `batch_size` = the batch, every other
 * symbolic dimension 0); every call after it gets the present.* outputs of the call before.
 * Local (no MPI); not thread-safe. */
#ifndef GPTOSS_ORT_DECODER_H
#define GPTOSS_ORT_DECODER_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "ort.h"

typedef struct ort_decoder ort_decoder;

/* A decoder over session s (borrowed; must outlive it) for `batch` rows. Caller owns *out. */
int ort_decoder_open(ort_session *s, int batch, ort_decoder **out, err *e);
void ort_decoder_close(ort_decoder *d);
/* Positions in the cache (0 before the first call). */
int ort_decoder_past(const ort_decoder *d);

/* One call on ids [batch, S]. mask [batch, past + S] (NULL: all ones), pos [batch, S] (NULL:
 * past .. past + S - 1). Fetches names[0..n_out) (graph outputs other than the cache) into outs
 * (ort_run's contract), then takes the presents as the next call's past. Each present must be
 * [batch, heads, past + S, head_dim] with the input's fixed dimensions: when one is not, the
 * call returns 1 with *bad_layer = the first number in its name and why = what it holds (outs
 * are filled; the cache is not advanced). 0 ok, -1 error. */
int ort_decoder_run(ort_decoder *d, const int64_t *ids, int S, const int64_t *mask,
                    const int64_t *pos, const char *const *names, int n_out, ort_value_out *outs,
                    int *bad_layer, char *why, size_t why_len, err *e);

#endif
