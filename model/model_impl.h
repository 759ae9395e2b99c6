/* model_impl: the model's private state and helpers shared by model.c, attn.c and moe.c.
 * Not part of the API (model.h is). */
#ifndef GPTOSS_MODEL_IMPL_H
#define GPTOSS_MODEL_IMPL_H

#include <cblas.h>
#include <stdint.h>

/* cblas.h pulls in <complex.h>, whose `I` macro would shadow the dimension letter I
 * (intermediate size) used throughout; nothing here uses complex numbers. */
#undef I

#include "kern.h"
#include "model.h"
#include "plan.h"
#include "st.h"

/* Unembedding rows converted per chunk (bounded scratch: UNEMB_CHUNK * D floats). */
#define MODEL_UNEMB_CHUNK PLAN_UNEMB_CHUNK /* one constant for the model and the plan */

/* Crossovers (docs/forward.md "Kernels", measured by bench/bench_kernels.c): a bf16 matrix is
 * multiplied by the direct kernel when the call has at most this many tokens, an expert when
 * at most this many tokens are routed to it; above, convert/decode to fp32 + sgemm. */
#define MODEL_BF16_DIRECT_MAX_T 128
#define MODEL_MX4_DIRECT_MAX_T 128

/* Output-projection rows per block (model_attn_out; the plan shares whole blocks). */
#define MODEL_OUT_BLOCK PLAN_OUT_BLOCK
/* An sgemm of M x N x K under this many multiply-adds may go to BLAS's small-matrix kernels
 * (OpenBLAS: at most 100^3 on SkylakeX), whose sums differ from the large kernels'; the
 * attention's projections are then computed in fixed blocks on every rank count (attn.c).
 * A large sgemm's per-element sums do not depend on N (verified: dist_split_20b). */
#define MODEL_SGEMM_SMALL (1 << 22)

struct model {
  const ckpt *ck;
  gpt_config c;
  int bf16;                  /* 1: round to bf16 at the reference's rounding points */
  int row_stable;            /* 1: per-token products (model_opts.row_stable) */
  model_kernels kernels;     /* resolved: never AUTO with row_stable (then DIRECT) */
  kern_isa isa;              /* of the direct kernels */
  int max_T, max_seq;
  uint64_t scratch_bytes;    /* bytes allocated by model_open (model_scratch_bytes) */
  int qkv_w;                 /* QKV = Dh*(H+2*KV) */
  float concentration;       /* YaRN conc, as float32 (the reference multiplies in fp32) */

  float *inv_freq;           /* [Dh/2] */
  float *cos, *sin;          /* [max_seq, Dh/2] conc folded in */

  /* scratch, sized at model_open */
  float *w;                  /* [max(QKV*D, D*H*Dh, E*D, UNEMB_CHUNK*D)] bf16 -> fp32 weights */
  float *vec_a, *vec_b;      /* [max(QKV, D, E, 2I, H)] small parameter vectors */
  float *x;                  /* [max_T, D]  residual stream of model_forward */
  float *t;                  /* [max_T, D]  normed activations */
  float *qkv;                /* [max_T, QKV] */
  float *att;                /* [max_T, H*Dh] */
  float *scores;             /* [max_T, max_seq] one head's scores / probabilities */
  float *proj;               /* [max_T, D]  out projection */
  float *rlogits;            /* [max_T, E] */
  int32_t *idx;              /* [max_T, K] */
  float *val, *wts;          /* [max_T, K] */
  float *y;                  /* [max_T, K, D] per-slot expert outputs */
  float *panel1;             /* [2I, D] one expert's mlp1 weights, decoded */
  float *panel2;             /* [D, I]  one expert's mlp2 weights, decoded */
  float *ex_in;              /* [max_T, D]  tokens routed to the current expert */
  float *ex_h;               /* [max_T, 2I] */
  float *ex_u;               /* [max_T, I] */
  float *ex_y;               /* [max_T, D] */
  int *ex_count;             /* [E] */
  int *ex_start;             /* [E+1] */
  int *ex_slot;              /* [max_T*K] (t*K + j) grouped by expert */

  model_progress_fn progress;
  void *progress_ctx;
  model_stats st;
};

/* Round to bf16 and back (round to nearest even). */
static inline float model_bf16r(float x) { return st_bf16_to_f32(st_f32_to_bf16(x)); }
/* Round if the model emulates bf16. */
static inline float model_r(const model *m, float x) { return m->bf16 ? model_bf16r(x) : x; }
void model_round_vec(const model *m, float *v, int64_t n);

/* y[T, N] = x[T, Din] . W[N, Din]ᵀ (+ b[N] if b), rounded once in bf16 mode.
 * ldy = row stride of y. Timing goes to *secs / *flop. */
/* C[M, N] = A[M, Kd] . B[N, Kd]ᵀ (lda, ldb, ldc row strides): sgemm, or per row sgemv when
 * the model is row-stable. */
void model_gemm_nt(const model *m, int M, int N, int Kd, const float *A, int lda, const float *B,
                   int ldb, float *C, int ldc);

void model_linear(const model *m, const float *x, int T, int Din, const float *W, int N,
                  const float *b, float *y, int ldy, double *secs, double *flop);

/* y[T, N] = x[T, Din] . W[N, Din]ᵀ (+ b[N] if b) for the bf16 matrix (layer, role) of the
 * checkpoint, rounded once in bf16 mode: the direct kernel from the mapping when T is at most
 * MODEL_BF16_DIRECT_MAX_T (or the model is row-stable), else converted to fp32 into m->w, in
 * chunks of `chunk` rows, and sgemm. x: [T, Din] (row stride Din); y row stride ldy. */
int model_linear_w(model *m, int layer, ckpt_role role, const float *x, int T, const float *b,
                   int64_t chunk, float *y, int ldy, double *secs, double *flop, err *e);

/* The same for the matrix rows [r0, r1) only: y column (r - r0) holds row r; b (if any) is the
 * whole bias, indexed by row. Row chunks start at r0. */
int model_linear_rows(model *m, int layer, ckpt_role role, const float *x, int T, const float *b,
                      int64_t r0, int64_t r1, int64_t chunk, float *y, int ldy, double *secs,
                      double *flop, err *e);

/* Whether a product of T tokens uses the direct kernels (bf16: T of the call; MXFP4: tokens of
 * one expert). */
int model_use_direct(const model *m, int T, int max_direct);

/* y[T, D] = RMSNorm(x[T, D]) * scale[D] (eps 1e-5), output rounded in bf16 mode. */
void model_rmsnorm(const model *m, const float *x, int T, const float *scale, float *y);

/* Rows [row0, row0+n_rows) of a bf16 matrix (viewed as [rows, cols]) to fp32 scratch, timed. */
int model_load_rows(model *m, int layer, ckpt_role role, int64_t row0, int64_t n_rows,
                    float *out, err *e);
/* A whole bf16 tensor (vectors: norm scales, biases, sinks) to fp32 scratch, timed. */
int model_load_all(model *m, int layer, ckpt_role role, float *out, err *e);

#endif
