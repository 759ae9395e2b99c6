/* bench_qmoe: one MoE layer of a checkpoint at prefill size, computed four ways side by side on
 * the same weights and the same routing (issue 13, "ort target prefill at T=256 at least as fast
 * as our C forward"; bench/README.md "bench_qmoe").
 *
 *   bench_qmoe CKPT WORK_DIR [--layer L] [--T 256] [--reps 5] [--threads 2] [--m 32]
 *                            [--idle-wait S] [--ort-lib PATH]
 *
 * Input: T random token ids, embedded and passed through layer L's attention block (layers
 * before L are skipped: the input is a realistic hidden state, not the model's), then layer L's
 * router (model_router): t = RMSNorm(x) [T, D], the router logits [T, E], the top-k experts and
 * their weights. Every variant computes out[T, D] = sum_j w[t, j] expert_{idx[t, j]}(t[t])
 * (the MoE block without its residual) from the same t and logits:
 *   (a) ONNX Runtime: a one-node model com.microsoft.QMoE exactly as `export --target ort` emits
 *       it (expert_weight_bits 8, block_size 32, interleaved SwiGLU, normalize_routing_weights 1;
 *       inputs t and the raw logits; the MXFP4 experts re-encoded exactly as int8 codes
 *       128 + 2 e2m1 with fp32 block scales 2^(s-127)/2, export_ort.h), written to WORK_DIR
 *       (qmoe.onnx + bench_qmoe.data, ~1 GB), --threads intra-op threads, optimization level all;
 *   (b) the floor of ORT's algorithm in C: for each selected expert, dequantize its weights to
 *       fp32 panels, then multiply its tokens (mlp1 [n_e, D] x [D, 2I], SwiGLU, mlp2), combined
 *       with the routing weights. The dequantization is either a plain C loop
 *       (code - 128) x scale over the int8 codes of (a) ("b8") or our MXFP4 decode (shards/mx4.h,
 *       mx4_decode_row; "b4"), split over the --threads pool threads by rows; the product is
 *       cblas_sgemm on OpenBLAS's --threads threads (b8, b4) or ORT's own Gemm (MLAS sgemm) in a
 *       one-node model whose B is a graph input, so that MLAS packs the fresh panel on every
 *       call as QMoE must (b8m, b4m);
 *   (c) our C MoE (model_experts + model_moe_combine, the kernel choice of the forward pass:
 *       the direct MXFP4 kernel for an expert with at most MODEL_MX4_DIRECT_MAX_T tokens,
 *       decode + sgemm above), and (c-convert) the same with MODEL_KERNELS_CONVERT (every
 *       expert decoded into panels + cblas_sgemm: our own version of b4); the routing (top-k
 *       and weights) is model_router's, computed once before, where (a) computes it inside;
 *   (d) one expert's two matrices (the most used expert) with --m tokens (default 32 =
 *       T x K / E at T=256): mlp1 (N = 2I, K = D) and mlp2 (N = D, K = I) as
 *       com.microsoft.MatMulNBits (bits 8, block_size 32, accuracy_level 0: fp32 activations,
 *       exact; the same int8 codes and scales as (a)), as ORT's fp32 Gemm (transB 1) with the
 *       dequantized weights an initializer (prepacked at session creation) and with them a graph
 *       input (packed per call), as cblas_sgemm of the dequantized weights, as b8's dequant +
 *       cblas_sgemm, as b4m's decode + ORT Gemm, and as our direct MXFP4 kernel
 *       (kern_mx4_nt_par).
 * The variants alternate within each of --reps repetitions (a, b8, b4, b8m, b4m, c, c-convert,
 * then (d));
 * every figure is the median over the repetitions of wall time and of process CPU time
 * (getrusage: user + system of all threads), with 0.2 s of sleep between measurements so that
 * no thread pool's spinning is counted in the next one (ORT's and OpenBLAS's threads spin for a
 * while after a call). Each ORT session runs once untimed first. --idle-wait S: before each
 * measurement, wait up to S seconds for the machine to have no other runnable task (a shared
 * machine; how many measurements started idle is printed). (d) times 10 calls per
 * measurement and prints per call.
 *
 * Equivalence: the max abs difference of (b8), (b4), (c), (c-convert) to (a) and to each other,
 * and of each (d) variant to the cblas_sgemm of the same shape, with max |out| for scale.
 * A per-expert token histogram says what routing was measured. Exit 0 ok, 1 error, 2 usage. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <fcntl.h>

#include "benchutil.h"
#include "ckpt.h"
#include "export_graph.h"
#include "export_ort.h"
#include "kern.h"
#include "log.h"
#include "model.h"
#include "model_impl.h"
#include "mx4.h"
#include "onnx_graph.h"
#include "ort.h"
#include "pool.h"

#undef I /* <complex.h> via cblas.h; I is the intermediate size here */

#define MAX_REPS 32
#define D_CALLS 10 /* calls per (d) measurement */
#define ND 7       /* (d) variants */

static double cpu_now(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)u.ru_utime.tv_sec + 1e-6 * (double)u.ru_utime.tv_usec + (double)u.ru_stime.tv_sec +
         1e-6 * (double)u.ru_stime.tv_usec;
}

static void die(const char *what, const err *e) {
  fprintf(stderr, "bench_qmoe: %s: %s\n", what, e ? e->msg : "out of memory");
  exit(1);
}

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) die("malloc", NULL);
  return p;
}

static float max_abs(const float *a, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; i++) m = fabsf(a[i]) > m ? fabsf(a[i]) : m;
  return m;
}
static float max_diff(const float *a, const float *b, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; i++) {
    const float d = fabsf(a[i] - b[i]);
    if (d > m || d != d) m = d != d ? INFINITY : d;
  }
  return m;
}

/* ---- the int8 re-encoding (export_ort.h) of one layer's experts, in memory ---- */
typedef struct {
  int E, D, I;
  uint8_t *c1, *c2;   /* codes [E, 2I, D], [E, D, I] */
  float *s1, *s2;     /* block scales [E, 2I, D/32], [E, D, I/32] */
  float *b1, *b2;     /* biases [E, 2I], [E, D] (fp32 from bf16) */
} q8_layer;

static void encode_matrix(const ckpt_tensor *bt, const ckpt_tensor *st, int64_t rows, int64_t C,
                          uint8_t *codes, float *scales) {
  uint8_t q8[256][2];
  export_ort_code_table(q8);
  const uint8_t *b = ckpt_tensor_data(bt), *s = ckpt_tensor_data(st);
  for (int64_t i = 0; i < rows * C / 2; i++) {
    codes[2 * i] = q8[b[i]][0];
    codes[2 * i + 1] = q8[b[i]][1];
  }
  for (int64_t i = 0; i < rows * C / 32; i++) scales[i] = ldexpf(1.0f, (int)s[i] - 128);
}

static void q8_encode(const ckpt *ck, int L, q8_layer *q) {
  const gpt_config *c = ckpt_config(ck);
  const int E = c->n_experts, D = c->hidden, I = c->intermediate;
  err e = {0};
  q->E = E, q->D = D, q->I = I;
  q->c1 = xmalloc((size_t)E * 2 * I * D);
  q->c2 = xmalloc((size_t)E * D * I);
  q->s1 = xmalloc((size_t)E * 2 * I * (D / 32) * sizeof(float));
  q->s2 = xmalloc((size_t)E * D * (I / 32) * sizeof(float));
  q->b1 = xmalloc((size_t)E * 2 * I * sizeof(float));
  q->b2 = xmalloc((size_t)E * D * sizeof(float));
  encode_matrix(ckpt_tensor_find(ck, L, CK_MLP1_BLOCKS), ckpt_tensor_find(ck, L, CK_MLP1_SCALES),
                (int64_t)E * 2 * I, D, q->c1, q->s1);
  encode_matrix(ckpt_tensor_find(ck, L, CK_MLP2_BLOCKS), ckpt_tensor_find(ck, L, CK_MLP2_SCALES),
                (int64_t)E * D, I, q->c2, q->s2);
  if (ckpt_tensor_f32(ckpt_tensor_find(ck, L, CK_MLP1_BIAS), q->b1, &e) != 0 ||
      ckpt_tensor_f32(ckpt_tensor_find(ck, L, CK_MLP2_BIAS), q->b2, &e) != 0)
    die("biases", &e);
}

/* ---- dequantization into fp32 panels, over the pool by row tasks ---- */
#define DQ_ROWS 64
typedef struct {
  const uint8_t *codes;   /* (b8) [R, C] int8 codes */
  const float *scales;    /* (b8) [R, C/32] */
  const uint8_t *blocks;  /* (b4) [R, C/32, 16] MXFP4 */
  const uint8_t *escales; /* (b4) [R, C/32] E8M0 */
  int64_t R, C;
  float *out;             /* [R, C] */
} dq_job;

/* (b8): the plain loop of ORT's 8-bit block dequantization, (code - zero point) x block scale */
static void dq_int8_task(void *ctx, int64_t task) {
  const dq_job *j = ctx;
  const int64_t r1 = (task + 1) * DQ_ROWS < j->R ? (task + 1) * DQ_ROWS : j->R;
  for (int64_t r = task * DQ_ROWS; r < r1; r++) {
    const uint8_t *q = j->codes + r * j->C;
    const float *s = j->scales + r * (j->C / 32);
    float *o = j->out + r * j->C;
    for (int64_t c = 0; c < j->C; c++) o[c] = (float)((int)q[c] - 128) * s[c / 32];
  }
}
/* (b4): our MXFP4 row decode (SIMD where available) */
static void dq_mx4_task(void *ctx, int64_t task) {
  const dq_job *j = ctx;
  const int64_t r1 = (task + 1) * DQ_ROWS < j->R ? (task + 1) * DQ_ROWS : j->R;
  for (int64_t r = task * DQ_ROWS; r < r1; r++)
    mx4_decode_row(j->blocks + r * (j->C / 2), j->escales + r * (j->C / 32), j->C, j->out + r * j->C);
}

typedef struct {
  const ckpt *ck;
  int L;
  const q8_layer *q;
  int mx4;                /* 1: (b4), 0: (b8) */
  float *p1, *p2;         /* panels [2I, D], [D, I] */
  float *xin, *h, *u, *y; /* [T, D], [T, 2I], [T, I], [T, D] */
  ort_session *mlas;      /* NULL: cblas_sgemm; else ORT's Gemm with B an input (MLAS sgemm) */
  double dq_s, gemm_s;    /* split of the last call */
} floor_ctx;

static void ort_gemm(ort_session *s, const float *A, int M, int K, const float *B, int N, float *Y);

/* Y[M, N] = A[M, K] . B[N, K]ᵀ by cblas_sgemm or by the floor's ORT Gemm session */
static void floor_gemm(const floor_ctx *f, int M, int N, int K, const float *A, const float *B, float *Y) {
  if (f->mlas) ort_gemm(f->mlas, A, M, K, B, N, Y);
  else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, B, K, 0.0f, Y, N);
}

static void dequant(floor_ctx *f, int which, int ex, int64_t R, int64_t C, float *out) {
  dq_job j = {.R = R, .C = C, .out = out};
  if (f->mx4) {
    const ckpt_tensor *bt = ckpt_tensor_find(f->ck, f->L, which == 1 ? CK_MLP1_BLOCKS : CK_MLP2_BLOCKS);
    const ckpt_tensor *st = ckpt_tensor_find(f->ck, f->L, which == 1 ? CK_MLP1_SCALES : CK_MLP2_SCALES);
    j.blocks = (const uint8_t *)ckpt_tensor_data(bt) + (size_t)ex * R * (C / 2);
    j.escales = (const uint8_t *)ckpt_tensor_data(st) + (size_t)ex * R * (C / 32);
    pool_run((R + DQ_ROWS - 1) / DQ_ROWS, dq_mx4_task, &j);
  } else {
    j.codes = (which == 1 ? f->q->c1 : f->q->c2) + (size_t)ex * R * C;
    j.scales = (which == 1 ? f->q->s1 : f->q->s2) + (size_t)ex * R * (C / 32);
    pool_run((R + DQ_ROWS - 1) / DQ_ROWS, dq_int8_task, &j);
  }
}

static void swiglu(const float *h, int I, float limit, float *u) {
  for (int j = 0; j < I; j++) {
    float glu = h[2 * j], lin = h[2 * j + 1];
    glu = glu > limit ? limit : glu;
    lin = lin > limit ? limit : lin < -limit ? -limit : lin;
    u[j] = glu * (1.0f / (1.0f + expf(-1.702f * glu))) * (lin + 1.0f);
  }
}

/* (b): out[T, D] = sum_j w[t, j] expert_{idx[t, j]}(t[t]) by dequantize + sgemm per expert */
static void moe_floor(floor_ctx *f, const float *t, int T, int K, const int32_t *idx, const float *w,
                      float limit, float *out) {
  const q8_layer *q = f->q;
  const int D = q->D, I = q->I, E = q->E;
  memset(out, 0, (size_t)T * D * sizeof(float));
  f->dq_s = f->gemm_s = 0;
  for (int ex = 0; ex < E; ex++) {
    int n = 0;
    for (int s = 0; s < T * K; s++)
      if (idx[s] == ex) memcpy(f->xin + (size_t)n++ * D, t + (size_t)(s / K) * D, (size_t)D * sizeof(float));
    if (!n) continue;
    double t0 = log_now();
    dequant(f, 1, ex, 2 * (int64_t)I, D, f->p1);
    double t1 = log_now();
    floor_gemm(f, n, 2 * I, D, f->xin, f->p1, f->h);
    double t2 = log_now();
    f->dq_s += t1 - t0, f->gemm_s += t2 - t1;
    for (int r = 0; r < n; r++) {
      float *hr = f->h + (size_t)r * 2 * I;
      const float *b1 = q->b1 + (size_t)ex * 2 * I;
      for (int o = 0; o < 2 * I; o++) hr[o] += b1[o];
      swiglu(hr, I, limit, f->u + (size_t)r * I);
    }
    t0 = log_now();
    dequant(f, 2, ex, D, I, f->p2);
    t1 = log_now();
    floor_gemm(f, n, D, I, f->u, f->p2, f->y);
    t2 = log_now();
    f->dq_s += t1 - t0, f->gemm_s += t2 - t1;
    n = 0;
    for (int s = 0; s < T * K; s++) {
      if (idx[s] != ex) continue;
      const float *yr = f->y + (size_t)n++ * D, *b2 = q->b2 + (size_t)ex * D;
      float *o = out + (size_t)(s / K) * D;
      for (int d = 0; d < D; d++) o[d] += w[s] * (yr[d] + b2[d]);
    }
  }
}

/* ---- ONNX models (one node each) sharing one external data file ---- */
typedef struct {
  int fd;
  uint64_t off;
  const char *path;
} data_file;

static uint64_t data_put(data_file *df, const void *p, size_t n) {
  const uint64_t at = df->off;
  const uint8_t *b = p;
  for (size_t done = 0; done < n;) {
    const ssize_t w = pwrite(df->fd, b + done, n - done > (1u << 30) ? (1u << 30) : n - done, (off_t)(at + done));
    if (w <= 0) { perror(df->path); exit(1); }
    done += (size_t)w;
  }
  df->off = (at + n + 4095) & ~(uint64_t)4095;
  return at;
}

static void model_write(onnx_graph *g, const char *path) {
  err e = {0};
  const int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  uint64_t n;
  if (fd < 0) { perror(path); exit(1); }
  if (onnx_model_write_fd(g, EXPORT_IR_VERSION, EXPORT_OPSET, "bench_qmoe", "0", fd, path, &n, &e) != 0)
    die(path, &e);
  close(fd);
  onnx_graph_free(g);
}

#define DATA_NAME "bench_qmoe.data"

static void write_qmoe(const char *dir, const q8_layer *q, const gpt_config *c, const uint64_t off[6]) {
  onnx_graph *g;
  err e = {0};
  if (onnx_graph_init("qmoe", &g, &e) != 0) die("graph", &e);
  const int64_t E = q->E, D = q->D, I = q->I;
  const int64_t d_c1[3] = {E, 2 * I, D}, d_s1[3] = {E, 2 * I, D / 32}, d_b1[2] = {E, 2 * I};
  const int64_t d_c2[3] = {E, D, I}, d_s2[3] = {E, D, I / 32}, d_b2[2] = {E, D};
  onnx_graph_add_external(g, "c1", ONNX_UINT8, 3, d_c1, DATA_NAME, off[0], (uint64_t)E * 2 * I * D);
  onnx_graph_add_external(g, "s1", ONNX_FLOAT, 3, d_s1, DATA_NAME, off[1], (uint64_t)E * 2 * I * (D / 32) * 4);
  onnx_graph_add_external(g, "b1", ONNX_FLOAT, 2, d_b1, DATA_NAME, off[2], (uint64_t)E * 2 * I * 4);
  onnx_graph_add_external(g, "c2", ONNX_UINT8, 3, d_c2, DATA_NAME, off[3], (uint64_t)E * D * I);
  onnx_graph_add_external(g, "s2", ONNX_FLOAT, 3, d_s2, DATA_NAME, off[4], (uint64_t)E * D * (I / 32) * 4);
  onnx_graph_add_external(g, "b2", ONNX_FLOAT, 2, d_b2, DATA_NAME, off[5], (uint64_t)E * D * 4);
  const onnx_dim di[2] = {{0, "T"}, {D, NULL}}, dr[2] = {{0, "T"}, {E, NULL}};
  onnx_graph_add_input(g, "input", ONNX_FLOAT, 2, di);
  onnx_graph_add_input(g, "router_probs", ONNX_FLOAT, 2, dr);
  onnx_graph_add_output(g, "output", ONNX_FLOAT, 2, di);
  const char *in[8] = {"input", "router_probs", "c1", "s1", "b1", "c2", "s2", "b2"}, *out[1] = {"output"};
  onnx_node *n = onnx_graph_add_node(g, "QMoE", "qmoe", 8, in, 1, out);
  export_ort_qmoe_attrs(n, c); /* exactly as `export --target ort` emits it */
  char path[4096];
  snprintf(path, sizeof path, "%s/qmoe.onnx", dir);
  model_write(g, path);
}

/* Y[M, N] = A[M, K] . W[N, K]ᵀ: MatMulNBits (bits 8, block 32, accuracy_level 0) on the codes
 * and scales at off_c / off_s, or (off_s == UINT64_MAX) Gemm transB 1 on fp32 W at off_c. */
static void write_matmul(const char *dir, const char *name, int64_t N, int64_t K, uint64_t off_c, uint64_t off_s) {
  onnx_graph *g;
  err e = {0};
  if (onnx_graph_init(name, &g, &e) != 0) die("graph", &e);
  const onnx_dim da[2] = {{0, "M"}, {K, NULL}}, dy[2] = {{0, "M"}, {N, NULL}};
  onnx_graph_add_input(g, "A", ONNX_FLOAT, 2, da);
  onnx_graph_add_output(g, "Y", ONNX_FLOAT, 2, dy);
  onnx_node *n;
  if (off_s != UINT64_MAX) {
    const int64_t d_b[3] = {N, K / 32, 32}, d_s[1] = {N * (K / 32)};
    onnx_graph_add_external(g, "B", ONNX_UINT8, 3, d_b, DATA_NAME, off_c, (uint64_t)N * K);
    onnx_graph_add_external(g, "scales", ONNX_FLOAT, 1, d_s, DATA_NAME, off_s, (uint64_t)N * (K / 32) * 4);
    const char *in[3] = {"A", "B", "scales"}, *out[1] = {"Y"};
    n = onnx_graph_add_node(g, "MatMulNBits", "mmnb", 3, in, 1, out);
    onnx_node_set_domain(n, "com.microsoft", 1);
    onnx_node_attr_int(n, "K", K);
    onnx_node_attr_int(n, "N", N);
    onnx_node_attr_int(n, "bits", 8);
    onnx_node_attr_int(n, "block_size", 32);
    onnx_node_attr_int(n, "accuracy_level", 0);
  } else {
    const int64_t d_w[2] = {N, K};
    onnx_graph_add_external(g, "W", ONNX_FLOAT, 2, d_w, DATA_NAME, off_c, (uint64_t)N * K * 4);
    const char *in[2] = {"A", "W"}, *out[1] = {"Y"};
    n = onnx_graph_add_node(g, "Gemm", "gemm", 2, in, 1, out);
    onnx_node_attr_int(n, "transB", 1);
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
  model_write(g, path);
}

/* Y[M, N] = Gemm(A[M, K], B[N, K], transB 1) with B a graph input: MLAS sgemm on a matrix it
 * has not seen before (no prepacking), as QMoE multiplies its freshly dequantized panels. */
static void write_gemm_input(const char *dir) {
  onnx_graph *g;
  err e = {0};
  if (onnx_graph_init("gemm_in", &g, &e) != 0) die("graph", &e);
  const onnx_dim da[2] = {{0, "M"}, {0, "K"}}, db[2] = {{0, "N"}, {0, "K"}}, dy[2] = {{0, "M"}, {0, "N"}};
  onnx_graph_add_input(g, "A", ONNX_FLOAT, 2, da);
  onnx_graph_add_input(g, "B", ONNX_FLOAT, 2, db);
  onnx_graph_add_output(g, "Y", ONNX_FLOAT, 2, dy);
  const char *in[2] = {"A", "B"}, *out[1] = {"Y"};
  onnx_node *n = onnx_graph_add_node(g, "Gemm", "gemm", 2, in, 1, out);
  onnx_node_attr_int(n, "transB", 1);
  char path[4096];
  snprintf(path, sizeof path, "%s/gemm_in.onnx", dir);
  model_write(g, path);
}

static ort_session *session(ort_runtime *rt, const char *dir, const char *name, int threads) {
  char path[4096];
  err e = {0};
  ort_session *s;
  ort_session_opts o = ort_session_opts_default();
  o.intra_threads = threads;
  snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
  if (ort_session_open(rt, path, &o, &s, &e) != 0) die(path, &e);
  return s;
}

/* One run of a session: out (n floats) from inputs (1 or 2 fp32 matrices). */
static void ort_call(ort_session *s, int n_in, const char *const *names, const float *const *data,
                     const int64_t (*shape)[2], float *out, size_t n) {
  ort_value_in in[2];
  for (int i = 0; i < n_in; i++)
    in[i] = (ort_value_in){.name = names[i], .elem_type = ORT_T_FLOAT, .n_dims = 2,
                           .shape = {shape[i][0], shape[i][1]}, .data = data[i]};
  ort_value_out o[1];
  memset(o, 0, sizeof o);
  err e = {0};
  const char *on = n_in == 2 ? "output" : "Y";
  if (ort_run(s, n_in, in, &on, 1, o, &e) != 0) die("ort run", &e);
  if (o[0].n_bytes != n * sizeof(float)) { fprintf(stderr, "bench_qmoe: ORT output size %zu\n", o[0].n_bytes); exit(1); }
  memcpy(out, o[0].data, n * sizeof(float));
  ort_outputs_free(o, 1);
}

static void ort_gemm(ort_session *s, const float *A, int M, int K, const float *B, int N, float *Y) {
  ort_value_in in[2] = {{.name = "A", .elem_type = ORT_T_FLOAT, .n_dims = 2, .shape = {M, K}, .data = A},
                        {.name = "B", .elem_type = ORT_T_FLOAT, .n_dims = 2, .shape = {N, K}, .data = B}};
  ort_value_out o[1];
  memset(o, 0, sizeof o);
  err e = {0};
  const char *on = "Y";
  if (ort_run(s, 2, in, &on, 1, o, &e) != 0) die("ort gemm", &e);
  memcpy(Y, o[0].data, (size_t)M * N * sizeof(float));
  ort_outputs_free(o, 1);
}

/* Runnable tasks on the machine now (/proc/stat procs_running; this thread counts 1). */
static int procs_running(void) {
  FILE *f = fopen("/proc/stat", "r");
  char line[256];
  int n = -1;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "procs_running ", 14)) n = atoi(line + 14);
  if (f) fclose(f);
  return n;
}
/* Wait up to max_s seconds for no other runnable task (sampled every 50 ms, 4 samples in a row);
 * 1 if the machine was idle, 0 on time-out. */
static int wait_idle(double max_s) {
  const double t0 = log_now();
  int quiet = 0;
  while (log_now() - t0 < max_s) {
    quiet = procs_running() <= 1 ? quiet + 1 : 0;
    if (quiet >= 4) return 1;
    usleep(50000);
  }
  return 0;
}

/* ---- measurements ---- */
typedef struct {
  const char *name;
  double wall[MAX_REPS], cpu[MAX_REPS];
  int n;
} series;

static void record(series *s, double w, double c) {
  s->wall[s->n] = w;
  s->cpu[s->n] = c;
  s->n++;
}
static double med(const double *v, int n) {
  double t[MAX_REPS];
  memcpy(t, v, (size_t)n * sizeof *t);
  return bench_median(t, n);
}
static void print_series(const series *s, double ref_wall, double ref_cpu, double div, const char *unit) {
  printf("%-44s wall %8.4f s (", s->name, med(s->wall, s->n) / div);
  double lo = 1e30, hi = 0;
  for (int i = 0; i < s->n; i++) lo = s->wall[i] < lo ? s->wall[i] : lo, hi = s->wall[i] > hi ? s->wall[i] : hi;
  printf("%.4f..%.4f)  CPU %8.4f s", lo / div, hi / div, med(s->cpu, s->n) / div);
  if (ref_wall > 0)
    printf("   %s %.2fx wall, %.2fx CPU", unit, med(s->wall, s->n) / ref_wall, med(s->cpu, s->n) / ref_cpu);
  printf("\n");
}

static double g_idle_wait; /* --idle-wait */
static int g_idle, g_timed;  /* measurements started idle, all measurements */

#define TIMED(s, stmt)                               \
  do {                                               \
    usleep(200000);                                  \
    if (g_idle_wait > 0) g_idle += wait_idle(g_idle_wait); \
    g_timed++;                                       \
    const double w0_ = log_now(), c0_ = cpu_now();   \
    stmt;                                            \
    record((s), log_now() - w0_, cpu_now() - c0_);   \
  } while (0)

int main(int argc, char **argv) {
  if (argc < 3 || argv[1][0] == '-') {
    fprintf(stderr, "usage: bench_qmoe CKPT WORK_DIR [--layer L] [--T 256] [--reps 5] [--threads 2] [--m 32] "
                    "[--idle-wait S] [--ort-lib PATH]\n");
    return 2;
  }
  const char *dir = argv[2], *ort_lib = NULL;
  int L = 0, T = 256, reps = 5, threads = 2, M = 32;
  double idle_wait = 0;
  for (int i = 3; i < argc; i++) {
    const char *a = argv[i];
    if (i + 1 >= argc) { fprintf(stderr, "bench_qmoe: %s needs a value\n", a); return 2; }
    if (!strcmp(a, "--layer")) L = atoi(argv[++i]);
    else if (!strcmp(a, "--T")) T = atoi(argv[++i]);
    else if (!strcmp(a, "--reps")) reps = atoi(argv[++i]);
    else if (!strcmp(a, "--threads")) threads = atoi(argv[++i]);
    else if (!strcmp(a, "--m")) M = atoi(argv[++i]);
    else if (!strcmp(a, "--ort-lib")) ort_lib = argv[++i];
    else if (!strcmp(a, "--idle-wait")) idle_wait = atof(argv[++i]);
    else { fprintf(stderr, "bench_qmoe: unknown option %s\n", a); return 2; }
  }
  if (T < 1 || reps < 1 || reps > MAX_REPS || threads < 1 || M < 1 || M > T) {
    fprintf(stderr, "bench_qmoe: bad sizes (1 <= --reps <= %d, 1 <= --m <= --T)\n", MAX_REPS);
    return 2;
  }
  err e = {0};
  ckpt *ck;
  if (ckpt_open(argv[1], &ck, &e) != 0) die(argv[1], &e);
  const gpt_config *c = ckpt_config(ck);
  const int E = c->n_experts, K = c->top_k, D = c->hidden, I = c->intermediate;
  const float limit = (float)c->swiglu_limit;
  if (L < 0 || L >= c->n_layers) { fprintf(stderr, "bench_qmoe: --layer %d of %d\n", L, c->n_layers); return 2; }
  model_set_threads(threads);
  printf("bench_qmoe: %s layer %d: D %d, I %d, E %d, K %d; T %d, %d repetitions, %d threads "
         "(ORT intra-op, OpenBLAS, pool); OPENBLAS_CORETYPE=%s (OpenBLAS core %s); load %s",
         argv[1], L, D, I, E, K, T, reps, threads, getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "(unset)",
         openblas_get_corename(), "");
  {
    FILE *la = fopen("/proc/loadavg", "r");
    char buf[128] = "?\n";
    if (la && fgets(buf, sizeof buf, la)) {}
    if (la) fclose(la);
    printf("%s", buf);
  }

  /* the input: random ids -> embedding -> layer L's attention -> layer L's router */
  model *m = NULL, *mc = NULL;
  model_opts mo = {.max_tokens = T, .max_seq = T, .precision = MODEL_FP32, .kernels = MODEL_KERNELS_AUTO};
  model_opts mco = mo;
  mco.kernels = MODEL_KERNELS_CONVERT;
  if (model_open(ck, &mo, &m, &e) != 0 || model_open(ck, &mco, &mc, &e) != 0) die("model_open", &e);
  model_kv kv = {0};
  if (model_kv_init(c, L, 1, T, &kv, &e) != 0) die("kv", &e);
  int32_t *ids = xmalloc((size_t)T * sizeof *ids), *idx = xmalloc((size_t)T * K * sizeof *idx);
  float *x = xmalloc((size_t)T * D * 4), *t = xmalloc((size_t)T * D * 4), *logits = xmalloc((size_t)T * E * 4);
  float *val = xmalloc((size_t)T * K * 4), *w = xmalloc((size_t)T * K * 4);
  unsigned seed = 1;
  for (int i = 0; i < T; i++) ids[i] = rand_r(&seed) % c->vocab;
  if (model_embed(m, ids, T, x, &e) != 0 || model_attn_block(m, L, &kv, 0, T, x, NULL, &e) != 0 ||
      model_router(m, L, x, T, t, logits, idx, val, w, &e) != 0)
    die("input", &e);
  {
    int cnt[4096] = {0}, lo = T * K, hi = 0, used = 0;
    for (int s = 0; s < T * K; s++) cnt[idx[s]]++;
    printf("routing (layer %d's router on layer %d's attention output of %d random ids): tokens per expert",
           L, L, T);
    for (int ex = 0; ex < E; ex++) {
      printf(" %d", cnt[ex]);
      if (cnt[ex]) used++, lo = cnt[ex] < lo ? cnt[ex] : lo, hi = cnt[ex] > hi ? cnt[ex] : hi;
    }
    int big = 0;
    for (int ex = 0; ex < E; ex++) big += cnt[ex] > MODEL_MX4_DIRECT_MAX_T;
    printf("\n  %d of %d experts used, %d..%d tokens each (mean %.1f); %d with more than %d tokens "
           "(MODEL_MX4_DIRECT_MAX_T: decoded into panels + sgemm by (c), the rest direct)\n", used, E, lo, hi,
           (double)T * K / used, big, MODEL_MX4_DIRECT_MAX_T);
  }

  /* the int8 re-encoding and the ONNX models */
  double t0 = log_now();
  q8_layer q;
  q8_encode(ck, L, &q);
  /* (d): the expert with the most tokens; its weights dequantized to fp32 for the fp32 Gemm */
  int xe = 0;
  {
    int cnt[4096] = {0};
    for (int s = 0; s < T * K; s++) cnt[idx[s]]++;
    for (int ex = 1; ex < E; ex++) xe = cnt[ex] > cnt[xe] ? ex : xe;
  }
  float *w1f = xmalloc((size_t)2 * I * D * 4), *w2f = xmalloc((size_t)D * I * 4);
  {
    dq_job j1 = {.codes = q.c1 + (size_t)xe * 2 * I * D, .scales = q.s1 + (size_t)xe * 2 * I * (D / 32),
                 .R = 2 * I, .C = D, .out = w1f};
    dq_job j2 = {.codes = q.c2 + (size_t)xe * D * I, .scales = q.s2 + (size_t)xe * D * (I / 32), .R = D, .C = I,
                 .out = w2f};
    pool_run((j1.R + DQ_ROWS - 1) / DQ_ROWS, dq_int8_task, &j1);
    pool_run((j2.R + DQ_ROWS - 1) / DQ_ROWS, dq_int8_task, &j2);
  }
  char dpath[4096];
  snprintf(dpath, sizeof dpath, "%s/%s", dir, DATA_NAME);
  data_file df = {open(dpath, O_WRONLY | O_CREAT | O_TRUNC, 0644), 0, dpath};
  if (df.fd < 0) { perror(dpath); return 1; }
  uint64_t off[6];
  off[0] = data_put(&df, q.c1, (size_t)E * 2 * I * D);
  off[1] = data_put(&df, q.s1, (size_t)E * 2 * I * (D / 32) * 4);
  off[2] = data_put(&df, q.b1, (size_t)E * 2 * I * 4);
  off[3] = data_put(&df, q.c2, (size_t)E * D * I);
  off[4] = data_put(&df, q.s2, (size_t)E * D * (I / 32) * 4);
  off[5] = data_put(&df, q.b2, (size_t)E * D * 4);
  const uint64_t off_w1 = data_put(&df, w1f, (size_t)2 * I * D * 4), off_w2 = data_put(&df, w2f, (size_t)D * I * 4);
  close(df.fd);
  write_qmoe(dir, &q, c, off);
  write_matmul(dir, "mmnb1", 2 * I, D, off[0] + (uint64_t)xe * 2 * I * D, off[1] + (uint64_t)xe * 2 * I * (D / 32) * 4);
  write_matmul(dir, "mmnb2", D, I, off[3] + (uint64_t)xe * D * I, off[4] + (uint64_t)xe * D * (I / 32) * 4);
  write_matmul(dir, "gemm1", 2 * I, D, off_w1, UINT64_MAX);
  write_matmul(dir, "gemm2", D, I, off_w2, UINT64_MAX);
  write_gemm_input(dir);
  printf("int8 re-encoding + models written to %s (%.2f GB data) in %.1f s\n", dir, df.off / 1e9, log_now() - t0);

  ort_runtime *rt;
  if (ort_open(ort_lib, &rt, &e) != 0) die("ort_open", &e);
  t0 = log_now();
  ort_session *sq = session(rt, dir, "qmoe", threads);
  const double t_create = log_now() - t0;
  ort_session *sn1 = session(rt, dir, "mmnb1", threads), *sn2 = session(rt, dir, "mmnb2", threads);
  ort_session *sg1 = session(rt, dir, "gemm1", threads), *sg2 = session(rt, dir, "gemm2", threads);
  ort_session *sgi = session(rt, dir, "gemm_in", threads);
  printf("ONNX Runtime %s (%s): QMoE session created in %.2f s\n", ort_version(rt), ort_lib_path(rt), t_create);

  /* buffers */
  const size_t TD = (size_t)T * D;
  float *out_a = xmalloc(TD * 4), *out_b8 = xmalloc(TD * 4), *out_b4 = xmalloc(TD * 4);
  float *out_b8m = xmalloc(TD * 4), *out_b4m = xmalloc(TD * 4);
  float *out_c = xmalloc(TD * 4), *out_cc = xmalloc(TD * 4), *y = xmalloc(TD * K * 4);
  floor_ctx f8 = {.ck = ck, .L = L, .q = &q, .mx4 = 0}, f4;
  f8.p1 = xmalloc((size_t)2 * I * D * 4);
  f8.p2 = xmalloc((size_t)D * I * 4);
  f8.xin = xmalloc(TD * K * 4);
  f8.h = xmalloc((size_t)T * K * 2 * I * 4);
  f8.u = xmalloc((size_t)T * K * I * 4);
  f8.y = xmalloc(TD * K * 4);
  f4 = f8;
  f4.mx4 = 1;
  floor_ctx f8m = f8, f4m = f4;
  f8m.mlas = f4m.mlas = sgi;
  const char *qn[2] = {"input", "router_probs"};
  const float *qd[2] = {t, logits};
  const int64_t qs[2][2] = {{T, D}, {T, E}};
#define RUN_A ort_call(sq, 2, qn, qd, qs, out_a, TD)
#define RUN_C(mm, o)                                                                            \
  do {                                                                                          \
    memset((o), 0, TD * 4);                                                                     \
    if (model_experts((mm), L, t, T, idx, NULL, y, NULL, NULL, &e) != 0) die("model_experts", &e); \
    model_moe_combine((mm), (o), T, y, w);                                                      \
  } while (0)

  /* (d) inputs: the first M rows of t (mlp1) and of a SwiGLU-like activation (mlp2) */
  float *a1 = t, *a2 = xmalloc((size_t)M * I * 4), *ap = xmalloc((size_t)M * D * 4);
  for (size_t i = 0; i < (size_t)M * I; i++) a2[i] = t[i % TD];
  float *yd[ND][2];
  for (int v = 0; v < ND; v++) yd[v][0] = xmalloc((size_t)M * 2 * I * 4), yd[v][1] = xmalloc((size_t)M * D * 4);
  const char *an[1] = {"A"};
  const int64_t as1[1][2] = {{M, D}}, as2[1][2] = {{M, I}};
  const float *ad1[1] = {a1}, *ad2[1] = {a2};
  const uint8_t *mx1b = (const uint8_t *)ckpt_tensor_data(ckpt_tensor_find(ck, L, CK_MLP1_BLOCKS)) + (size_t)xe * 2 * I * D / 2;
  const uint8_t *mx1s = (const uint8_t *)ckpt_tensor_data(ckpt_tensor_find(ck, L, CK_MLP1_SCALES)) + (size_t)xe * 2 * I * D / 32;
  const uint8_t *mx2b = (const uint8_t *)ckpt_tensor_data(ckpt_tensor_find(ck, L, CK_MLP2_BLOCKS)) + (size_t)xe * D * I / 2;
  const uint8_t *mx2s = (const uint8_t *)ckpt_tensor_data(ckpt_tensor_find(ck, L, CK_MLP2_SCALES)) + (size_t)xe * D * I / 32;
  const kern_isa isa = kern_isa_best();
  /* one (d) variant v of shape s (0: mlp1, 1: mlp2): 0 MatMulNBits, 1 ORT Gemm fp32, 2 cblas_sgemm,
   * 3 dequant (b8) + cblas_sgemm, 4 our direct MXFP4 kernel */
  const int dN[2] = {2 * I, D}, dK[2] = {D, I};
  const float *dA[2] = {a1, a2};
  float *dP[2] = {f8.p1, f8.p2};
  const float *dW[2] = {w1f, w2f};
#define RUN_D(v, s)                                                                                        \
  do {                                                                                                     \
    float *yo_ = yd[v][s];                                                                                 \
    if ((v) == 0) ort_call((s) ? sn2 : sn1, 1, an, (s) ? ad2 : ad1, (s) ? as2 : as1, yo_, (size_t)M * dN[s]); \
    else if ((v) == 1) ort_call((s) ? sg2 : sg1, 1, an, (s) ? ad2 : ad1, (s) ? as2 : as1, yo_, (size_t)M * dN[s]); \
    else if ((v) == 2)                                                                                     \
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, dN[s], dK[s], 1.0f, dA[s], dK[s], dW[s], dK[s], 0.0f, yo_, dN[s]); \
    else if ((v) == 3) {                                                                                   \
      dequant(&f8, (s) + 1, xe, dN[s], dK[s], dP[s]);                                                      \
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, dN[s], dK[s], 1.0f, dA[s], dK[s], dP[s], dK[s], 0.0f, yo_, dN[s]); \
    } else if ((v) == 5) {                                                                                 \
      ort_gemm(sgi, dA[s], M, dK[s], dW[s], dN[s], yo_);                                                   \
    } else if ((v) == 6) {                                                                                 \
      dequant(&f4, (s) + 1, xe, dN[s], dK[s], dP[s]);                                                      \
      ort_gemm(sgi, dA[s], M, dK[s], dP[s], dN[s], yo_);                                                   \
    } else {                                                                                               \
      kern_mx4_pair_x(dA[s], dK[s], M, dK[s], ap);                                                         \
      kern_mx4_nt_par(isa, (s) ? mx2b : mx1b, (s) ? mx2s : mx1s, dN[s], dK[s], ap, M, yo_, dN[s]);         \
    }                                                                                                      \
  } while (0)

  /* untimed first calls (ORT's first Run, page-in of the codes and the mapping) */
  RUN_A;
  moe_floor(&f8, t, T, K, idx, w, limit, out_b8);
  moe_floor(&f4, t, T, K, idx, w, limit, out_b4);
  moe_floor(&f8m, t, T, K, idx, w, limit, out_b8m);
  moe_floor(&f4m, t, T, K, idx, w, limit, out_b4m);
  RUN_C(m, out_c);
  RUN_C(mc, out_cc);
  for (int v = 0; v < ND; v++)
    for (int s = 0; s < 2; s++) RUN_D(v, s);

  series sa = {.name = "(a) ORT QMoE node"}, sb8 = {.name = "(b8) int8 dequant loop + cblas_sgemm"},
         sb4 = {.name = "(b4) MXFP4 decode (mx4.h) + cblas_sgemm"},
         sb8m = {.name = "(b8m) int8 dequant loop + ORT Gemm (MLAS)"},
         sb4m = {.name = "(b4m) MXFP4 decode + ORT Gemm (MLAS)"}, sc = {.name = "(c) our C MoE (model_experts, auto)"},
         scc = {.name = "(c-convert) our C MoE, decode panels + sgemm"};
  static const char *dnames[ND] = {"MatMulNBits 8-bit acc 0 (ORT)", "Gemm fp32 initializer (ORT)", "cblas_sgemm fp32",
                                   "int8 dequant + cblas_sgemm", "our direct MXFP4 kernel", "Gemm fp32, B an input (ORT)",
                                   "MXFP4 decode + Gemm B input (ORT)"};
  series sd[ND][2];
  for (int v = 0; v < ND; v++)
    for (int s = 0; s < 2; s++) {
      static char nm[ND][2][96];
      snprintf(nm[v][s], sizeof nm[v][s], "(d) %s %s", s ? "mlp2" : "mlp1", dnames[v]);
      sd[v][s] = (series){.name = nm[v][s]};
    }
  double dq8[MAX_REPS], gm8[MAX_REPS], dq4[MAX_REPS], gm4[MAX_REPS], dq8m[MAX_REPS], gm8m[MAX_REPS],
      dq4m[MAX_REPS], gm4m[MAX_REPS];
  model_stats st0, st1;
  double c_mx4_s[MAX_REPS], c_dec_n[MAX_REPS], cc_dec_s[MAX_REPS], cc_gemm_s[MAX_REPS];
  g_idle_wait = idle_wait;
  for (int r = 0; r < reps; r++) {
    TIMED(&sa, RUN_A);
    TIMED(&sb8, moe_floor(&f8, t, T, K, idx, w, limit, out_b8));
    dq8[r] = f8.dq_s, gm8[r] = f8.gemm_s;
    TIMED(&sb4, moe_floor(&f4, t, T, K, idx, w, limit, out_b4));
    dq4[r] = f4.dq_s, gm4[r] = f4.gemm_s;
    TIMED(&sb8m, moe_floor(&f8m, t, T, K, idx, w, limit, out_b8m));
    dq8m[r] = f8m.dq_s, gm8m[r] = f8m.gemm_s;
    TIMED(&sb4m, moe_floor(&f4m, t, T, K, idx, w, limit, out_b4m));
    dq4m[r] = f4m.dq_s, gm4m[r] = f4m.gemm_s;
    model_stats_get(m, &st0);
    TIMED(&sc, RUN_C(m, out_c));
    model_stats_get(m, &st1);
    c_mx4_s[r] = st1.expert_gemm_s - st0.expert_gemm_s;
    c_dec_n[r] = (double)(st1.experts_decoded - st0.experts_decoded);
    model_stats_get(mc, &st0);
    TIMED(&scc, RUN_C(mc, out_cc));
    model_stats_get(mc, &st1);
    cc_dec_s[r] = st1.mx4_decode_s - st0.mx4_decode_s;
    cc_gemm_s[r] = st1.expert_gemm_s - st0.expert_gemm_s;
    for (int v = 0; v < ND; v++)
      for (int s = 0; s < 2; s++) TIMED(&sd[v][s], for (int k_ = 0; k_ < D_CALLS; k_++) RUN_D(v, s));
  }

  const double aw = med(sa.wall, sa.n), ac = med(sa.cpu, sa.n);
  if (idle_wait > 0)
    printf("\n%d of %d measurements started on an idle machine (waited up to %.0f s before each for no other "
           "runnable task)", g_idle, g_timed, idle_wait);
  printf("\nMoE layer, T = %d (medians over %d alternating repetitions; min..max wall; ratio to (a))\n", T, reps);
  print_series(&sa, 0, 0, 1, "");
  print_series(&sb8, aw, ac, 1, "/(a)");
  printf("%-44s   dequant %.4f s + sgemm %.4f s (medians)\n", "", med(dq8, reps), med(gm8, reps));
  print_series(&sb4, aw, ac, 1, "/(a)");
  printf("%-44s   decode %.4f s + sgemm %.4f s (medians)\n", "", med(dq4, reps), med(gm4, reps));
  print_series(&sb8m, aw, ac, 1, "/(a)");
  printf("%-44s   dequant %.4f s + sgemm %.4f s (medians)\n", "", med(dq8m, reps), med(gm8m, reps));
  print_series(&sb4m, aw, ac, 1, "/(a)");
  printf("%-44s   decode %.4f s + sgemm %.4f s (medians)\n", "", med(dq4m, reps), med(gm4m, reps));
  print_series(&sc, aw, ac, 1, "/(a)");
  printf("%-44s   expert matmuls %.4f s (median), %.0f experts decoded into panels per call\n", "",
         med(c_mx4_s, reps), c_dec_n[0]);
  print_series(&scc, aw, ac, 1, "/(a)");
  printf("%-44s   decode %.4f s + sgemm %.4f s (medians)\n", "", med(cc_dec_s, reps),
         med(cc_gemm_s, reps));
  const double flop = 2.0 * T * K * (2.0 * I * D + (double)D * I);
  printf("expert FLOP per call %.1f GFLOP: (a) %.1f, (b8) %.1f, (b4) %.1f, (c) %.1f GFLOP/s (wall)\n", flop / 1e9,
         flop / aw / 1e9, flop / med(sb8.wall, reps) / 1e9, flop / med(sb4.wall, reps) / 1e9,
         flop / med(sc.wall, reps) / 1e9);

  printf("\none expert (%d, the most used), %d tokens, per call (%d calls per measurement; ratio to cblas_sgemm)\n",
         xe, M, D_CALLS);
  for (int s = 0; s < 2; s++) {
    const double rw = med(sd[2][s].wall, reps), rc = med(sd[2][s].cpu, reps);
    for (int v = 0; v < ND; v++) print_series(&sd[v][s], v == 2 ? 0 : rw, rc, D_CALLS, "/sgemm");
    printf("%-44s   %.1f GFLOP/s for cblas_sgemm, %.1f for MatMulNBits\n", "",
           2.0 * M * dN[s] * dK[s] / (rw / D_CALLS) / 1e9,
           2.0 * M * dN[s] * dK[s] / (med(sd[0][s].wall, reps) / D_CALLS) / 1e9);
  }

  {
    int cnt[4096] = {0}, used = 0;
    for (int s_ = 0; s_ < T * K; s_++) cnt[idx[s_]]++;
    for (int ex = 0; ex < E; ex++) used += cnt[ex] > 0;
    const double per = aw / used, b4m = med(sb4m.wall, reps), cw = med(sc.wall, reps);
    double dsum[ND];
    for (int v = 0; v < ND; v++) dsum[v] = (med(sd[v][0].wall, reps) + med(sd[v][1].wall, reps)) / D_CALLS;
    printf("\nsummary (wall medians): (a) QMoE %.3f s, floor b4m %.3f s (b8m %.3f, b4 %.3f, b8 %.3f), (c) %.3f s:"
           " (a)/(c) %.2fx, b4m/(c) %.2fx, (a)/b4m %.2fx; CPU (a)/(c) %.2fx\n",
           aw, b4m, med(sb8m.wall, reps), med(sb4.wall, reps), med(sb8.wall, reps), cw, aw / cw, b4m / cw, aw / b4m,
           ac / med(sc.cpu, reps));
    printf("per expert (mlp1 + mlp2): (a) QMoE %.1f ms (its median / %d experts used, %.1f tokens each); "
           "%d tokens: MatMulNBits %.1f ms, Gemm fp32 initializer %.1f ms, Gemm B input %.1f ms, cblas_sgemm %.1f ms, "
           "decode + Gemm B input %.1f ms, our direct kernel %.1f ms\n",
           1e3 * per, used, (double)T * K / used, M, 1e3 * dsum[0], 1e3 * dsum[1], 1e3 * dsum[5], 1e3 * dsum[2],
           1e3 * dsum[6], 1e3 * dsum[4]);
  }

  printf("\nequivalence (max abs difference; max |out| of (a) = %.4g)\n", max_abs(out_a, TD));
  printf("  (b8) vs (a) %.3g, (b4) vs (a) %.3g, (c) vs (a) %.3g, (c-convert) vs (a) %.3g\n", max_diff(out_b8, out_a, TD),
         max_diff(out_b4, out_a, TD), max_diff(out_c, out_a, TD), max_diff(out_cc, out_a, TD));
  printf("  (b8m) vs (a) %.3g, (b4m) vs (a) %.3g\n", max_diff(out_b8m, out_a, TD), max_diff(out_b4m, out_a, TD));
  printf("  (b8) vs (b4) %.3g, (b4) vs (c) %.3g, (c) vs (c-convert) %.3g\n", max_diff(out_b8, out_b4, TD),
         max_diff(out_b4, out_c, TD), max_diff(out_c, out_cc, TD));
  for (int s = 0; s < 2; s++) {
    const size_t n = (size_t)M * dN[s];
    printf("  (d) %s vs cblas_sgemm (max |y| %.4g):", s ? "mlp2" : "mlp1", max_abs(yd[2][s], n));
    for (int v = 0; v < ND; v++)
      if (v != 2) printf(" %s %.3g;", dnames[v], max_diff(yd[v][s], yd[2][s], n));
    printf("\n");
  }
  {
    FILE *st = fopen("/proc/self/status", "r");
    char line[256];
    while (st && fgets(line, sizeof line, st))
      if (!strncmp(line, "VmHWM:", 6)) printf("memory: %s", line);
    if (st) fclose(st);
  }
  ort_session_close(sq);
  ort_session_close(sn1);
  ort_session_close(sn2);
  ort_session_close(sg1);
  ort_session_close(sg2);
  ort_session_close(sgi);
  ort_close(rt);
  model_kv_free(&kv);
  model_close(m);
  model_close(mc);
  ckpt_close(ck);
  return 0;
}
