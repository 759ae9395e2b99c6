/* model: the GPT-OSS forward pass on tensors borrowed from a checkpoint (docs/gpt-oss-spec.md
 * sections 5-9), fp32 with OpenBLAS sgemm, optional bf16 emulation (spec section 9).
 *
 * Dimension letters (STYLE.md): T tokens of this call, S positions of the sequence (cache
 * length), D hidden, H heads, KV kv-heads, Dh head dim, QKV = Dh*(H+2*KV), E experts, K top-k,
 * I intermediate, V vocab.
 *
 * The pieces are separate so a distributed caller can run them on different ranks:
 *   model_embed           ids -> x [T, D]                        (first pipeline stage)
 *   model_attn_block      x += Attention_n(RMSNorm(x)) with a KV cache at positions pos0..
 *   model_router          RMSNorm(x) -> t [T, D], router logits, top-k indices and weights
 *   model_experts         for a subset of experts: y[t, j] = expert_{idx[t,j]}(t[t]) [T, K, D]
 *   model_moe_combine     x[t] += sum_{j=0..K-1} w[t,j] * y[t,j], always in slot order j
 *   model_head            RMSNorm(x) -> logits [T, V]                 (last pipeline stage)
 * and model_forward chains them for one rank holding everything.
 *
 * Weights: nothing is dequantized ahead of time. A call of few tokens (T up to a measured
 * crossover; for an expert, the tokens routed to it) multiplies the bf16 matrices (qkv, out,
 * gate, unembedding) and the MXFP4 experts straight from the mapping with the direct kernels
 * (kern.h: each weight read once, converted in registers, no fp32 copy). Above the crossover a
 * bf16 matrix is converted to fp32 into one scratch buffer (the unembedding in row chunks) and
 * each selected expert's MXFP4 weights are decoded once per call into fp32 panels, both
 * multiplied with sgemm for all the tokens. The choice depends only on T of the call and on the
 * number of tokens routed to an expert, never on how the work is split over ranks
 * (docs/forward.md "Kernels"). Scratch is sized at model_open from max_tokens (tokens per
 * call) and max_seq (positions); no allocation happens inside a forward call.
 *
 * Precision: MODEL_FP32 targets the official fp32 run (golden /fp32). MODEL_BF16 rounds to
 * bf16 exactly where the official code does (golden /bf16), computing in fp32 inside each
 * operation; both are the same code with rounding points switched on.
 *
 * Top-k: larger logit first, ties to the lower expert index (the ONNX TopK rule).
 * Thread-safety: a model is used by one thread at a time (OpenBLAS may use several). No MPI,
 * no file I/O besides reading the mapped checkpoint tensors. Local. */
#ifndef GPTOSS_MODEL_H
#define GPTOSS_MODEL_H

#include <stdint.h>

#include "ckpt.h"
#include "err.h"

typedef enum { MODEL_FP32 = 0, MODEL_BF16 = 1 } model_precision;

typedef struct {
  int max_tokens;            /* largest T of one call (the prompt length for a prefill) */
  int max_seq;               /* positions the RoPE tables and KV caches cover (prompt + new) */
  model_precision precision;
  int row_stable;            /* 1: every matrix product per token (sgemv, fixed-order dots), so a
                              * token's results do not depend on how many tokens share a call
                              * (sgemm's summation order depends on the matrix shape); slower
                              * prefill, used to check the KV cache exactly; with the direct
                              * kernels (kernels != MODEL_KERNELS_CONVERT) it uses them for
                              * every T */
  int kernels;               /* model_kernels; MODEL_KERNELS_AUTO (0) may be overridden by the
                              * environment variable GPTOSS_KERNELS=auto|convert|direct */
} model_opts;

/* Which matrix kernels run. AUTO: direct kernels up to the crossovers, convert + sgemm above.
 * CONVERT: always convert to fp32 + sgemm (the path before the direct kernels; benchmarks
 * measure it as the baseline). DIRECT: always the direct kernels (to measure the crossover). */
typedef enum { MODEL_KERNELS_AUTO = 0, MODEL_KERNELS_CONVERT = 1, MODEL_KERNELS_DIRECT = 2 } model_kernels;

typedef struct model model;

/* Borrow ck (must outlive the model), compute the RoPE tables, allocate all scratch.
 * Caller owns *out (model_close). */
int model_open(const ckpt *ck, const model_opts *o, model **out, err *e);
void model_close(model *m);
const gpt_config *model_config(const model *m);

/* RoPE tables as the model uses them (conc folded in, fp32, spec 6.3); owned by the model.
 * cos, sin: [max_seq, Dh/2]; inv_freq: [Dh/2]. */
void model_rope_tables(const model *m, const float **cos, const float **sin, const float **inv_freq);

/* KV cache for layers [layer0, layer0 + n_layers); plain data owned by the caller via
 * model_kv_init/free. Row p of a layer holds position p's key/value after RoPE. */
typedef struct {
  int layer0, n_layers, max_seq;
  int head0, n_heads;        /* KV heads [head0, head0 + n_heads) (all KV heads: 0, KV) */
  int width;                 /* n_heads*Dh */
  float *k;                  /* [n_layers, max_seq, n_heads*Dh] */
  float *v;                  /* [n_layers, max_seq, n_heads*Dh] */
  int *n_filled;             /* [n_layers] positions written so far (0..n-1 are valid) */
} model_kv;
int model_kv_init(const gpt_config *c, int layer0, int n_layers, int max_seq, model_kv *kv, err *e);
/* The same for KV heads [head0, head1) only (a rank computing those heads' attention). */
int model_kv_init_heads(const gpt_config *c, int layer0, int n_layers, int max_seq, int head0,
                        int head1, model_kv *kv, err *e);
void model_kv_free(model_kv *kv);
/* Forget every position (start a new sequence). */
void model_kv_reset(model_kv *kv);

/* Optional capture of intermediate tensors (the golden's names). Rows are ABSOLUTE
 * positions: a call at pos0 writes rows pos0..pos0+T-1. Any NULL pointer is skipped.
 * Buffers are owned by the caller (e.g. parity/trace.c) and sized for S positions. */
typedef struct {
  float *attn_norm_out;      /* [S, D] */
  float *qkv_out;            /* [S, QKV]   before RoPE */
  float *sdpa_out;           /* [S, H*Dh]  before the out projection */
  float *hidden_after_attn;  /* [S, D] */
  float *mlp_norm_out;       /* [S, D] */
  float *router_logits;      /* [S, E] */
  int32_t *topk_indices;     /* [S, K]     descending logit order */
  float *topk_values;        /* [S, K] */
  float *topk_weights;       /* [S, K] */
  float *mlp1_out;           /* [S, K, 2I] incl. bias, in topk order */
  float *swiglu_out;         /* [S, K, I] */
  float *hidden_after_mlp;   /* [S, D] */
} model_layer_capture;

typedef struct {
  float *embedding_out;      /* [S, D] */
  float *final_norm_out;     /* [S, D] */
  float *logits;             /* [S, V] */
  model_layer_capture *layers; /* [L] or NULL */
} model_capture;

/* ---- pieces (each may be called on its own; shapes are of this call) ---- */

/* x[t] = embedding.weight[ids[t]]. ids: [T] (checked against V); x: [T, D] caller-owned. */
int model_embed(model *m, const int32_t *ids, int T, float *x, err *e);

/* x[t] += Attention_layer(RMSNorm(x[t])) for positions pos0..pos0+T-1, appending their K/V to
 * kv (which must hold positions 0..pos0-1 of this layer already). x: [T, D] in/out.
 * cap: per-layer capture (NULL = none), rows pos0.. */
int model_attn_block(model *m, int layer, model_kv *kv, int pos0, int T, float *x,
                     model_layer_capture *cap, err *e);

/* The attention block in two parts that ranks can share (docs/distributed.md "Attention and
 * head split"); model_attn_block is model_attn_heads over every KV head, then
 * model_attn_out over every output row.
 *
 * model_attn_heads: t = RMSNorm(x), then for the attention units [u0, u1) (unit u = KV head u
 * and its H/KV query heads) the q/k/v projections, RoPE, keys/values into kv (which must hold
 * KV heads [u0, u1)), and the attention of those query heads into the columns
 * [u0*(H/KV)*Dh, u1*(H/KV)*Dh) of model_attn_buf (other columns untouched). Each unit's numbers
 * do not depend on which other units the call computes. cap: attn_norm_out and qkv_out (whole
 * rows of the projection buffer: only the columns of these units are this call's). */
int model_attn_heads(model *m, int layer, model_kv *kv, int pos0, int T, const float *x, int u0,
                     int u1, model_layer_capture *cap, err *e);
/* The attention output [max_T, H*Dh] (rows of this call) that model_attn_out reads, and the
 * projection buffer [max_T, QKV] (before RoPE only inside model_attn_heads' capture). */
float *model_attn_buf(model *m);
/* x[:, d0:d1] += att . out.weight[d0:d1]ᵀ + out.bias[d0:d1] (rounded as the block), from the
 * whole model_attn_buf; d0 a multiple of PLAN_OUT_BLOCK (or D). Each output element's sum is
 * the same for every such [d0, d1). */
int model_attn_out(model *m, int layer, int T, float *x, int d0, int d1, err *e);

/* t = RMSNorm(x) with the layer's mlp norm; logits = t . gateᵀ + b; top-k per token.
 * x, t: [T, D]; logits: [T, E]; idx: [T, K]; val (selected logits), w (softmax of val): [T, K].
 * All outputs caller-owned. */
int model_router(model *m, int layer, const float *x, int T, float *t, float *logits,
                 int32_t *idx, float *val, float *w, err *e);

/* Expert MLPs for the slots whose expert is in `own` ([E] flags, NULL = all experts):
 * y[t, j] = W2[e] . SwiGLU(W1[e] . t[t] + b1[e]) + b2[e] with e = idx[t, j].
 * t: [T, D]; idx: [T, K]; y: [T, K, D] (only owned slots written). mlp1_out [T, K, 2I] and
 * swiglu_out [T, K, I] are optional captures (NULL = none), same slot rule. Each owned expert
 * with at least one token is decoded once per call. */
int model_experts(model *m, int layer, const float *t, int T, const int32_t *idx,
                  const uint8_t *own, float *y, float *mlp1_out, float *swiglu_out, err *e);

/* x[t] += sum_j w[t, j] * y[t, j], summed in slot order j = 0..K-1 (fixed, rank-count
 * independent). x: [T, D] in/out; y: [T, K, D]; w: [T, K]. */
void model_moe_combine(const model *m, float *x, int T, const float *y, const float *w);

/* Router + all experts + combine on one rank: x += MoE_layer(RMSNorm(x)). x: [T, D];
 * cap rows pos0..pos0+T-1 (pos0 only places the capture). */
int model_moe_block(model *m, int layer, int pos0, int T, float *x, model_layer_capture *cap,
                    err *e);

/* logits = RMSNorm(x, norm.scale) . unembeddingᵀ (in row chunks of the unembedding).
 * x: [T, D]; final_norm_out: [T, D] or NULL; logits: [T, V]; both caller-owned. */
int model_head(model *m, const float *x, int T, float *final_norm_out, float *logits, err *e);
/* The same for vocabulary rows [v0, v1) only: logits[t * ldl + (v - v0)] for v in [v0, v1).
 * v0 a multiple of PLAN_UNEMB_CHUNK (the chunks are then those of model_head, and every logit
 * has model_head's bits). */
int model_head_rows(model *m, const float *x, int T, float *final_norm_out, int64_t v0,
                    int64_t v1, float *logits, int64_t ldl, err *e);

/* The whole forward pass for ids at positions pos0..pos0+T-1 through layers [0, n_layers)
 * then the head. kv covers layers 0..n_layers-1. logits (caller-owned): [T, V] if all_logits,
 * else [1, V] for the last position only. cap: optional capture (rows pos0..; cap->logits is
 * filled only with all_logits and only if it is not `logits` itself). */
int model_forward(model *m, model_kv *kv, const int32_t *ids, int T, int pos0, int n_layers,
                  int all_logits, float *logits, model_capture *cap, err *e);

/* Called after each layer of model_forward (progress display); NULL to disable. */
typedef void (*model_progress_fn)(void *ctx, int layers_done, int n_layers);
void model_set_progress(model *m, model_progress_fn fn, void *ctx);

/* Work counters since model_open (benchmarks and timing lines). */
typedef struct {
  double expert_gemm_s, expert_gemm_flop;   /* mlp1 + mlp2 sgemm */
  double attn_gemm_s, attn_gemm_flop;       /* qkv and out projections, q.k scores (sgemm) */
  double attn_core_s, attn_core_flop;       /* masking, softmax with sinks, P.v (loops) */
  double head_gemm_s, head_gemm_flop;       /* unembedding sgemm */
  double mx4_decode_s, mx4_decode_bytes;    /* MXFP4 bytes (blocks + scales) decoded */
  double bf16_convert_s;                    /* bf16 -> fp32 weight conversion */
  double matrix_convert_bytes;              /* bf16 bytes of weight matrices converted to fp32 */
  double direct_bf16_bytes, direct_mx4_bytes; /* weight bytes read by the direct kernels */
  long long experts_decoded;                /* expert panels decoded (mlp1 + mlp2 = one) */
  long long experts_direct;                 /* expert MLPs run by the direct kernels */
} model_stats;
void model_stats_get(const model *m, model_stats *s);

/* Threads of the matrix library and of the direct kernels for this process. OpenBLAS's sgemm
 * gives different last bits for different thread counts, so results are reproducible only for
 * a fixed count: the commands set it explicitly (never from core counts or bindings). (The
 * direct kernels give the same bits for any count.) Until it is called, the direct kernels use
 * OpenBLAS's own count. Call it outside forward calls. Local, process-wide. */
void model_set_threads(int n);

/* Bytes of scratch model_open allocated (what plan_scratch_bytes predicts). */
uint64_t model_scratch_bytes(const model *m);

/* The kernels in use: "auto", "convert" or "direct", and the instruction set ("avx512", ...). */
const char *model_kernels_name(const model *m);
const char *model_isa_name(const model *m);

#endif
