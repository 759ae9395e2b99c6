/* dist_forward: the forward pass spread over the ranks of the shard plan (DESIGN.md).
 *
 * Hidden states flow stage to stage (stage leader to stage leader). Inside a stage the leader
 * runs attention and the router; each other rank of the stage receives the normalised hidden
 * rows of exactly the tokens routed to its experts (with their top-k indices), computes its
 * experts for them, and sends back one [D] row per owned (token, slot). The leader computes its
 * own experts, places every row at its (token, slot) and sums y over the slots in the fixed order
 * j = 0..K-1 (model_moe_combine), so the result does not depend on the rank count: every expert
 * sees the same tokens in the same order as on one rank, and the sum order never changes.
 * The KV cache of a layer lives with its stage leader. The last stage leader applies the final
 * norm and the unembedding and picks the next token; every rank receives it.
 *
 * After every layer (and at the head) the ranks agree (dist_agree), so a failure on any rank ends
 * the step on every rank with the same error; the exchanges before an agreement always
 * complete, whatever failed. All functions are COLLECTIVE over the world. */
#ifndef GPTOSS_DIST_FORWARD_H
#define GPTOSS_DIST_FORWARD_H

#include "dist.h"
#include "model.h"

typedef void (*dfwd_progress_fn)(void *ctx, int layers_done, int n_layers);

typedef struct dfwd dfwd;

/* Set up for up to max_tokens tokens per call and max_seq positions, running the first
 * n_layers layers. tracing (the same on every rank): capture every intermediate tensor. Then
 * the leader of each stage captures its layers' tensors, rank 0 the embedding and the head
 * rank the final norm and logits, into cap (rows = absolute positions; cap is needed on those
 * ranks only, NULL elsewhere). Caller keeps d, m and cap alive; owns *out (dfwd_free). */
int dfwd_init(dist *d, model *m, int n_layers, int max_tokens, int max_seq, int tracing,
              model_capture *cap, dfwd **out, err *e);
void dfwd_free(dfwd *f);
void dfwd_set_progress(dfwd *f, dfwd_progress_fn fn, void *ctx);

/* One forward call on ids [T] (the same on every rank) at positions pos0..pos0+T-1. On success
 * every rank has *next_id = argmax of the last position's logits (lowest id on ties). With a
 * capture and all_logits, the head rank keeps the logits of every position in cap->logits;
 * otherwise it computes the last position's row only. */
int dfwd_step(dfwd *f, const int32_t *ids, int T, int pos0, int all_logits, int32_t *next_id,
              err *e);

/* After the last step: send every stage's captured rows [0, n_pos) to rank 0 so that rank 0's
 * capture holds the whole trace. */
int dfwd_gather_capture(dfwd *f, int n_pos, err *e);

#endif
