/* test_model_check: compare two traces tensor by tensor (golden tests of the forward pass).
 *
 * Every float tensor: max|a - b| <= tol * max|b| (b = reference). Top-k: identical sets per
 * token. Per-slot tensors (topk_values, topk_weights, mlp1_out, swiglu_out) are matched by
 * expert id, since ties inside a selected set may be ordered differently. Prints one line per
 * tensor with the relative error and the tolerance; failures count through TU_CHECK. */
#ifndef GPTOSS_TEST_MODEL_CHECK_H
#define GPTOSS_TEST_MODEL_CHECK_H

#include "trace.h"

/* Compare candidate `a` with reference `b`: the same positions and layers (else a failure), every
 * tensor the reference has (debug tensors with with_debug) must be in the candidate.
 * Returns the worst relative error seen; prints per-tensor lines prefixed with `tag`. */
double model_check_traces(const char *tag, const trace *a, const trace *b, double tol,
                          int with_debug);
/* max|a-b| / max|b| over n values. */
double model_check_rel(const float *a, const float *b, size_t n);

#endif
