/* plan: which rank owns which layers and experts, and what that costs (DESIGN.md "The shard
 * plan"). A pure function of (config, ranks, stages, token counts): every rank computes the
 * same plan and nothing about it is communicated.
 *
 * Ranks = stages x groups. Stage s owns a contiguous layer range (balanced by checkpoint bytes;
 * the embedding goes with the first stage, final norm + unembedding with the last). Inside a
 * stage, group g (rank s*G + g) owns the expert range [expert0, expert0 + n_experts) of every
 * layer of the stage and its share of the stage's attention and head (plan_group_share);
 * group 0 is the stage leader and also runs the router and the embedding and picks the next
 * token. Every rank's memory is predicted as the checkpoint bytes it reads (file-backed pages
 * it touches: every mapped byte, except that of the embedding only the rows looked up are read) plus the fp32 scratch, KV cache and activations of the forward pass
 * and the exchange buffers (anonymous memory) plus the process baseline. Local (no MPI). */
#ifndef GPTOSS_PLAN_H
#define GPTOSS_PLAN_H

#include <stdint.h>

#include "config.h"
#include "err.h"

typedef struct {
  int rank, stage, group;          /* group 0 = stage leader */
  int layer0, n_layers;            /* layers [layer0, layer0 + n_layers) */
  int expert0, n_experts;          /* experts of each of those layers */
  int leader;                      /* attention + router (+ embedding / head) */
  int has_embedding, has_head;
  uint64_t mapped_global_bytes;    /* embedding / norm / unembedding it reads */
  uint64_t mapped_attn_bytes;      /* attention + router bf16 tensors of its layers */
  uint64_t mapped_expert_bytes;    /* MXFP4 blocks/scales + expert biases of its experts */
  uint64_t mapped_bytes;           /* sum of the three */
  uint64_t resident_bytes;         /* of those, predicted resident: mapped_bytes with the embedding
                                    * counted as max_seq rows of PLAN_EMBED_ROW_RESIDENT bytes and
                                    * of the experts plan_experts_read_bytes for max_seq positions */
  uint64_t scratch_bytes;          /* fp32 scratch: converted weights (the part of the buffer this
                                    * rank writes), decoded panels, activations, exchange buffers
                                    * of the distributed pass, head logits row */
  uint64_t kv_bytes;               /* KV cache of its layers for max_seq positions */
  uint64_t base_bytes;             /* process baseline (PLAN_PROCESS_BYTES) */
  uint64_t anon_bytes;             /* of the peak, anonymous memory: scratch + kv +
                                    * PLAN_PROCESS_ANON_BYTES */
  uint64_t peak_bytes;             /* resident + scratch + kv + base */
} plan_rank;

typedef struct {
  int n_ranks, n_stages, n_groups;
  int max_tokens, max_seq;
  int stage_layer0[1025];          /* stage s = layers [stage_layer0[s], stage_layer0[s+1]) */
  plan_rank *ranks;                /* [n_ranks], owned by the plan */
} plan;

#define PLAN_MAX_STAGES 1024
/* Unembedding rows the forward pass converts to fp32 at a time (model/ uses the same). */
#define PLAN_UNEMB_CHUNK 512
/* Rows of the attention's output projection per block: the groups of a stage share whole blocks
 * (plan_group_share), and small products are computed block by block on every rank count
 * (model/attn.c). */
#define PLAN_OUT_BLOCK 32
/* A looked-up embedding row costs about one page-cache folio of resident memory, not its 2*D
 * bytes: the kernel maps the folio around a fault (Linux 6.18 on ext4: folios up to 2 MiB;
 * measured 0.9-1.6 MiB per row at 20b widths, depending on the folios in the page cache; older
 * kernels map 64 KiB of fault-around). A typical figure, not a bound. */
#define PLAN_EMBED_ROW_RESIDENT (1ull << 20)
/* A selected expert's MXFP4 blocks are two ranges of the file (mlp1, mlp2); reading them maps
 * the page-cache folios around their edges too: resident beyond the blocks, per selected expert,
 * measured 1.1-4.1 MiB (mean 2.6) at 120b widths, 9 positions (docs/scaling.md). Typical, not a
 * bound, like PLAN_EMBED_ROW_RESIDENT. */
#define PLAN_EXPERT_EXTRA_RESIDENT (2ull << 20)
/* Of PLAN_PROCESS_BYTES, the anonymous part (heap and buffers of MPI, OpenBLAS, HDF5, the C
 * runtime; the rest is their code and data, file-backed): RssAnon of the 120b-width ranks at 8
 * and 16 ranks was 3.9-5.8 MiB above their scratch + KV cache (docs/scaling.md). */
#define PLAN_PROCESS_ANON_BYTES (5ull << 20)
/* `export`'s memory per rank, whatever the model's size: the process baseline and one write
 * chunk (export/export_write.c; the MXFP4 blocks go through copy_file_range, other tensors chunk
 * by chunk): measured 39.0-39.5 MiB peak RSS and 4.9-5.0 MiB anonymous after writing at 120b
 * widths on 8 and 16 ranks (docs/scaling.md). */
#define PLAN_EXPORT_CHUNK_BYTES (16ull << 20)
#define PLAN_EXPORT_PEAK_BYTES (PLAN_PROCESS_BYTES + PLAN_EXPORT_CHUNK_BYTES)
/* Resident memory of a rank before it reads or allocates anything: MPI (shared-memory transport),
 * OpenBLAS, HDF5 and the C runtime; VmHWM of runs of the 3 MB case-a checkpoint at 1-4 ranks was
 * 20-24 MiB (docs/distributed.md). */
#define PLAN_PROCESS_BYTES (24ull << 20)

/* Make the plan. n_stages 0 = plan_default_stages. Errors (code 2): n_ranks < 1, stages not
 * dividing n_ranks, more stages than layers, more groups than experts, and (n_stages 0) a rank
 * count with no split at all, naming the nearest counts that have one. Caller owns out->ranks
 * (plan_free). */
int plan_make(const gpt_config *c, int n_ranks, int n_stages, int max_tokens, int max_seq,
              plan *out, err *e);
void plan_free(plan *p);

/* 1 if some split of n_ranks exists: S stages dividing n_ranks, S <= layers (and
 * PLAN_MAX_STAGES), n_ranks / S <= experts. Not every count up to layers x experts has one (for
 * gpt-oss-20b, 24 x 32: 37, 41, 43, 47, ... have none, being prime and above 32). */
int plan_rank_count_valid(const gpt_config *c, int n_ranks);
/* The nearest valid rank counts below and above n_ranks (0 where there is none). */
void plan_nearest_valid(const gpt_config *c, int n_ranks, int *below, int *above);
/* Default stage count for n_ranks: among the valid splits, the one with the smallest largest
 * per-rank peak; ties go to fewer stages (expert groups compute in parallel, stages do not). */
int plan_default_stages(const gpt_config *c, int n_ranks, int max_tokens, int max_seq);

/* Checkpoint bytes of one layer's non-expert part (attention + router + norms) and of one
 * expert of one layer (MXFP4 blocks and scales + biases). */
uint64_t plan_layer_attn_bytes(const gpt_config *c);
uint64_t plan_expert_bytes(const gpt_config *c);
/* Of those, the MXFP4 blocks (mlp1 + mlp2) of one expert: read only for the tokens routed to it. */
uint64_t plan_expert_block_bytes(const gpt_config *c);
/* Experts of n_experts (of one layer) that `positions` tokens select, expected for routing spread
 * evenly (each token picks top_k distinct experts of E): n (1 - (1 - k/E)^positions). Real models
 * route less evenly, so select fewer; a synth checkpoint's random router spreads evenly. */
double plan_experts_selected(const gpt_config *c, int n_experts, int positions);
/* Checkpoint bytes a rank reads of n_experts experts of one layer for `positions` tokens: every
 * expert's scales and biases (checked at load) and the blocks of the selected ones, their expected
 * count rounded up, each with PLAN_EXPERT_EXTRA_RESIDENT (at most every byte of them; measured
 * at 120b widths, 9 positions: docs/scaling.md). */
uint64_t plan_experts_read_bytes(const gpt_config *c, int n_experts, int positions);

/* The routing of one prompt (`plan --routing TRACE`, `parity --per-stage -v`): which experts its
 * positions selected at each layer, from a trace's topk_indices. The plan's expectation for even
 * routing is what a plan can know beforehand; with the routing of a real run the same byte model
 * predicts that run (docs/scaling.md: at 9 positions a rank's share of 64 experts saw 8 to 18
 * selected where 16 were expected). */
typedef struct {
  int n_layers, n_experts;   /* layers 0 .. n_layers-1 described; experts per layer */
  int positions;             /* the trace's positions */
  uint8_t *selected;         /* [n_layers * n_experts]: 1 = some position selected the expert */
} plan_routing;
/* From topk[l] = [T, K] expert ids of layer l (l < n_layers <= c->n_layers). An id outside
 * [0, E) is an error naming the layer and position (code 2). Caller frees (plan_routing_free). */
int plan_routing_from_topk(const gpt_config *c, int n_layers, int T, int K,
                           const int32_t *const *topk, plan_routing *out, err *e);
void plan_routing_free(plan_routing *r);
/* Experts of [e0, e0 + n) selected at layer l (the expectation for max_seq positions when r does
 * not describe layer l). */
double plan_routing_selected(const gpt_config *c, const plan_routing *r, int l, int e0, int n,
                             int max_seq);
/* Recompute every rank's resident_bytes and peak_bytes with the experts r says were selected at
 * its layers instead of the expectation (layers r does not describe keep it). */
void plan_apply_routing(const gpt_config *c, plan *p, const plan_routing *r);

/* Anonymous memory of the forward pass on one rank (the allocations of model_open for
 * max_tokens tokens per call and max_seq positions), excluding the KV cache. */
uint64_t plan_scratch_bytes(const gpt_config *c, int max_tokens, int max_seq);
/* Buffers of the distributed pass on one rank (mirrors dfwd_init in mpi/dist_forward.c without
 * tracing): hidden state, router outputs and expert rows of the stage leader, token rows and
 * expert outputs exchanged with the other groups, the attention split's blocks (G > 1), one row
 * of logits on the head rank, and head_rows logits on another rank of the last stage. */
uint64_t plan_exchange_bytes(const gpt_config *c, int max_tokens, int n_groups, int leader,
                             int has_head, int64_t head_rows);
/* The attention and head work group g of a stage of G groups shares (docs/distributed.md
 * "Attention and head split"): attention units [u0, u1) (unit u = KV head u and its query heads),
 * rows [d0, d1) of the attention's output projection in whole PLAN_OUT_BLOCK blocks (d0 a
 * multiple of it), and vocabulary rows [v0, v1) of the
 * unembedding in whole PLAN_UNEMB_CHUNK chunks (v0 a multiple of it). Contiguous, balanced,
 * group 0 first; a group may get an empty range when there are fewer units than groups. */
void plan_group_share(const gpt_config *c, int G, int g, int *u0, int *u1, int *d0, int *d1,
                      int64_t *v0, int64_t *v1);

/* A trace of T positions and n_layers layers with its debug tensors (trace_alloc, parity/trace.h):
 * what `parity` holds on rank 0 for its reference. */
uint64_t plan_trace_bytes(const gpt_config *c, int T, int n_layers);

/* KV cache bytes for n_layers layers and max_seq positions. */
uint64_t plan_kv_bytes(const gpt_config *c, int n_layers, int max_seq);

/* Per-stage parity (`parity --per-stage`, mpi/parity_stage.h): every layer the reference ran is
 * checked alone, as a one-layer sub-model run in ONNX Runtime; the layers of stage s go round-robin
 * to the stage's ranks (layer stage_layer0[s] + i on rank s*G + i % G), and the final norm +
 * unembedding go with the last layer run. The rank that checks `layer`: */
int plan_parity_unit_rank(const plan *p, int layer);
/* ONNX Runtime's own resident memory in a process that runs one sub-model: the library, its
 * environment, thread pool and arena. Measured (docs/scaling.md). */
#define PLAN_ORT_BASE_BYTES (48ull << 20)
typedef struct {
  int n_units;              /* layers this rank checks */
  int has_head;             /* one of them carries the final norm + unembedding */
  uint64_t unit_bytes;      /* weights of its largest sub-model (as exported: bf16 dense tensors,
                             * MXFP4 experts, RoPE caches) */
  uint64_t ort_bytes;       /* predicted peak of the ONNX Runtime phase */
  uint64_t forward_bytes;   /* the C forward pass's peak: plan_rank.peak_bytes and what tracing
                             * adds (the captures; rank 0 holds the whole reference trace,
                             * plan_trace_bytes, in both phases) */
  uint64_t forward_anon_bytes; /* of it, anonymous (plan_rank.anon_bytes + the same) */
  uint64_t peak_bytes;      /* max of the two phases (the C forward's memory is released first) */
} plan_parity_rank;
/* Fill out[0..p->n_ranks) for a reference of n_layers layers (<= c->n_layers) and T positions;
 * with routing (NULL = the expectation), a layer it describes counts the experts selected there. */
void plan_parity(const gpt_config *c, const plan *p, int n_layers, int T, const plan_routing *routing,
                 plan_parity_rank *out);

#endif
