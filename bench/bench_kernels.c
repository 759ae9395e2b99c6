/* bench_kernels: the direct kernels (model/kern.h) against the convert + sgemm path they
 * replace for few tokens, on the real tensors of a checkpoint (bench/README.md).
 *
 *   bench_kernels CKPT [--threads N] [--reps R] [--T 1,2,4,...] [--unembedding]
 *
 * For each matrix (qkv, out, gate, and with --unembedding the unembedding, all bf16; the
 * experts' mlp1 and mlp2, MXFP4) and each token count T, the median over R repetitions of
 *   direct:  the model's kernel straight from the mapping (MXFP4: activations to pair order
 *            included), over the kernel threads;
 *   convert: what the model does above the crossover: bf16 rows to fp32 (ckpt_tensor_rows_f32)
 *            or MXFP4 decoded into a panel (mx4_decode_expert_rows), then cblas_sgemm;
 * each repetition on another layer's (or expert's) matrix, so the weights come from memory,
 * not from the cache, as in a forward pass (every matrix is read once before the timings, so
 * no figure includes the first-touch page faults of the fresh mapping). It prints the crossover (the first T at which
 * convert is faster) that model_impl.h's MODEL_*_DIRECT_MAX_T should follow.
 * At T = 1 it also prints the same direct kernel with AVX2 and scalar code, a plain read of
 * the same bytes (the bandwidth bound), and for bf16 an experiment with VDPBF16PS (AVX-512
 * BF16 dot products; x split into three bf16 parts hi + mid + lo to keep fp32 accuracy) with
 * its error against the fp32 kernel, to show whether bf16 dot products pay on this CPU. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "benchutil.h"
#include "ckpt.h"
#include "kern.h"
#include "log.h"
#include "model.h"
#include "mx4.h"
#include "pool.h"

#undef I /* <complex.h> via cblas.h */

#define MAX_T 32
#define MAX_REPS 64

/* One matrix to multiply: a bf16 tensor of a layer, or expert `ex` of a MXFP4 pair. */
typedef struct {
  const ckpt_tensor *w, *b, *s; /* bf16 matrix, or MXFP4 blocks + scales */
  int ex;
  int64_t N, C;
} mat;

static double bytes_of(const mat *m) {
  return m->w ? 2.0 * m->N * m->C : (double)m->N * (m->C / 2 + m->C / 32);
}

/* A plain read of the matrix's bytes over the kernel threads; seconds. */
static double plain_read(const mat *m) {
  bench_ranges r = {0};
  if (m->w) {
    bench_ranges_add(&r, ckpt_tensor_data(m->w), (size_t)(2 * m->N * m->C));
  } else {
    bench_ranges_add(&r, (const uint8_t *)ckpt_tensor_data(m->b) + (size_t)m->ex * m->N * m->C / 2,
                     (size_t)(m->N * m->C / 2));
    bench_ranges_add(&r, (const uint8_t *)ckpt_tensor_data(m->s) + (size_t)m->ex * m->N * m->C / 32,
                     (size_t)(m->N * m->C / 32));
  }
  const double t = bench_ranges_read(&r);
  bench_ranges_free(&r);
  return t;
}

static double run_direct(kern_isa isa, const mat *m, const float *x, int T, float *xp, float *y) {
  const double t0 = log_now();
  if (m->w) {
    kern_bf16_nt_par(isa, ckpt_tensor_data(m->w), m->N, m->C, x, m->C, T, y, m->N);
  } else {
    const int64_t G = m->C / 32;
    kern_mx4_pair_x(x, m->C, T, m->C, xp);
    kern_mx4_nt_par(isa, (const uint8_t *)ckpt_tensor_data(m->b) + (int64_t)m->ex * m->N * G * 16,
                    (const uint8_t *)ckpt_tensor_data(m->s) + (int64_t)m->ex * m->N * G, m->N, m->C,
                    xp, T, y, m->N);
  }
  return log_now() - t0;
}

static double run_convert(const mat *m, const float *x, int T, float *panel, float *y, err *e) {
  const double t0 = log_now();
  int rc = m->w ? ckpt_tensor_rows_f32(m->w, 0, m->N, panel, e)
                : mx4_decode_expert_rows(m->b, m->s, m->ex, 0, m->N, panel, e);
  if (rc != 0) return -1;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, (int)m->N, (int)m->C, 1.0f, x, (int)m->C,
              panel, (int)m->C, 0.0f, y, (int)m->N);
  return log_now() - t0;
}

#if defined(__x86_64__)
/* The VDPBF16PS experiment (T = 1): y[n] = W[n] . (xh + xm + xl), three bf16 dot products per
 * 32 columns. C must be a multiple of 32 (it is for the 20b shapes). Not used by the model. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static void dp_task(
    const uint8_t *w, int64_t n0, int64_t n1, int64_t C, const uint16_t *xs, float *y) {
  for (int64_t n = n0; n < n1; n++) {
    __m512 ah = _mm512_setzero_ps(), am = _mm512_setzero_ps(), al = _mm512_setzero_ps();
    for (int64_t c = 0; c < C; c += 32) {
      const __m512i wv = _mm512_loadu_si512((const void *)(w + (n * C + c) * 2));
      const __m512i h = _mm512_loadu_si512((const void *)(xs + c));
      const __m512i m = _mm512_loadu_si512((const void *)(xs + C + c));
      const __m512i l = _mm512_loadu_si512((const void *)(xs + 2 * C + c));
      ah = _mm512_dpbf16_ps(ah, (__m512bh)wv, (__m512bh)h);
      am = _mm512_dpbf16_ps(am, (__m512bh)wv, (__m512bh)m);
      al = _mm512_dpbf16_ps(al, (__m512bh)wv, (__m512bh)l);
    }
    y[n] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(al, am), ah));
  }
}
typedef struct {
  const uint8_t *w;
  int64_t N, C;
  const uint16_t *xs;
  float *y;
} dp_job;
static void dp_run(void *ctx, int64_t task) {
  const dp_job *j = ctx;
  const int64_t n0 = task * KERN_TASK_ROWS, n1 = n0 + KERN_TASK_ROWS < j->N ? n0 + KERN_TASK_ROWS : j->N;
  dp_task(j->w, n0, n1, j->C, j->xs, j->y);
}
#endif

static uint16_t bf16_trunc(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return (uint16_t)(u >> 16);
}
static float bf16_val(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_kernels CKPT [--threads N] [--reps R] [--T 1,2,4,...] [--unembedding]\n");
    return 2;
  }
  int threads = 0, reps = 7, unemb = 0, Ts[MAX_T], nT = 0;
  const char *tl = "1,2,4,8,12,16,24,32,48,64,96,128";
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--T") && i + 1 < argc) tl = argv[++i];
    else if (!strcmp(argv[i], "--unembedding")) unemb = 1;
    else { fprintf(stderr, "bench_kernels: unknown option %s\n", argv[i]); return 2; }
  }
  for (const char *p = tl; *p && nT < MAX_T; p = strchr(p, ',') ? strchr(p, ',') + 1 : p + strlen(p))
    Ts[nT++] = atoi(p);
  if (reps < 1 || reps > MAX_REPS || nT == 0) { fprintf(stderr, "bench_kernels: bad options\n"); return 2; }
  int Tmax = 1;
  for (int i = 0; i < nT; i++) {
    if (Ts[i] < 1) { fprintf(stderr, "bench_kernels: bad T\n"); return 2; }
    if (Ts[i] > Tmax) Tmax = Ts[i];
  }
  if (threads > 0) model_set_threads(threads);
  else pool_set_threads(openblas_get_num_threads());

  err e = {0};
  ckpt *ck = NULL;
  if (ckpt_open(argv[1], &ck, &e) != 0) { fprintf(stderr, "bench_kernels: %s\n", e.msg); return 1; }
  const gpt_config *c = ckpt_config(ck);
  const int L = c->n_layers, E = c->n_experts;
  const int64_t D = c->hidden, I = c->intermediate, V = c->vocab;
  const kern_isa best = kern_isa_best();
  printf("checkpoint %s: %d layers, D %lld, I %lld, E %d, V %lld; %d kernel threads, %d BLAS threads, "
         "kernels %s, OPENBLAS_CORETYPE=%s, %d repetitions (median)\n",
         argv[1], L, (long long)D, (long long)I, E, (long long)V, pool_threads(),
         openblas_get_num_threads(), kern_isa_name(best),
         getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "(unset)", reps);

  /* buffers: the largest panel converted and the activations */
  int64_t big_n = 2 * I, big_c = D;
  const ckpt_tensor *q = ckpt_tensor_find(ck, 0, CK_QKV_W), *o = ckpt_tensor_find(ck, 0, CK_OUT_W);
  int64_t panel_f = q->shape[0] * q->shape[1];
  if (o->shape[0] * o->shape[1] > panel_f) panel_f = o->shape[0] * o->shape[1];
  if (big_n * big_c > panel_f) panel_f = big_n * big_c;
  if (unemb && V * D > panel_f) panel_f = V * D;
  int64_t ymax = V > 2 * I ? V : 2 * I;
  int64_t cmax = o->shape[1] > D ? o->shape[1] : D;
  if (I > cmax) cmax = I;
  float *panel = malloc((size_t)panel_f * sizeof(float));
  float *x = malloc((size_t)Tmax * cmax * sizeof(float)), *xp = malloc((size_t)Tmax * cmax * sizeof(float));
  float *y = malloc((size_t)Tmax * ymax * sizeof(float)), *y2 = malloc((size_t)ymax * sizeof(float));
  uint16_t *xs = malloc((size_t)3 * cmax * sizeof(uint16_t));
  if (!panel || !x || !xp || !y || !y2 || !xs) { fprintf(stderr, "bench_kernels: out of memory\n"); return 1; }
  unsigned seed = 3;
  for (int64_t i = 0; i < Tmax * cmax; i++) x[i] = (float)rand_r(&seed) / RAND_MAX - 0.5f;

  const char *names[] = {"qkv", "out", "gate", "unembedding", "mlp1", "mlp2"};
  const ckpt_role roles[] = {CK_QKV_W, CK_OUT_W, CK_GATE_W, CK_UNEMBEDDING, CK_MLP1_BLOCKS, CK_MLP2_BLOCKS};
  for (int kind = 0; kind < 6; kind++) {
    if (kind == 3 && !unemb) continue;
    const int mx = kind >= 4;
    /* the matrices to rotate over: every layer (bf16), every (layer, expert) (MXFP4) */
    const int n_mats = kind == 3 ? 1 : mx ? L * E : L;
    static mat mats[4096];
    const int nm = n_mats < 4096 ? n_mats : 4096;
    for (int k = 0; k < nm; k++) {
      const int layer = mx ? k / E : k;
      mat *m = &mats[k];
      memset(m, 0, sizeof *m);
      if (mx) {
        m->b = ckpt_tensor_find(ck, layer, roles[kind]);
        m->s = ckpt_tensor_find(ck, layer, roles[kind] + 1);
        m->ex = k % E;
        m->N = m->b->shape[1];
        m->C = m->b->shape[2] * 32;
      } else {
        m->w = ckpt_tensor_find(ck, layer, roles[kind]);
        m->N = m->w->shape[0];
        m->C = m->w->shape[1];
        if (m->w->n_parts != 1) { fprintf(stderr, "bench_kernels: use the original layout\n"); return 2; }
      }
    }
    /* first touch of the fresh mapping (page faults) before any timing */
    for (int k = 0; k < nm; k++) plain_read(&mats[k]);
    printf("\n%s %s [%lld x %lld], %.1f MB per matrix, %d matrices rotating\n", mx ? "MXFP4" : "bf16",
           names[kind], (long long)mats[0].N, (long long)mats[0].C, bytes_of(&mats[0]) / 1e6, nm);
    printf("%6s %12s %14s %10s\n", "T", "direct ms", "convert ms", "conv/dir");
    int cross = 0, rot = 0;
    for (int ti = 0; ti < nT; ti++) {
      const int T = Ts[ti];
      double td[MAX_REPS], tc[MAX_REPS];
      for (int r = 0; r < reps; r++) {
        td[r] = run_direct(best, &mats[rot++ % nm], x, T, xp, y);
        tc[r] = run_convert(&mats[rot++ % nm], x, T, panel, y, &e);
        if (tc[r] < 0) { fprintf(stderr, "bench_kernels: %s\n", e.msg); return 1; }
      }
      const double md = bench_median(td, reps), mc = bench_median(tc, reps);
      printf("%6d %12.3f %14.3f %10.2f\n", T, md * 1e3, mc * 1e3, mc / md);
      if (!cross && mc < md) cross = T;
    }
    if (cross) printf("crossover: convert + sgemm is faster from T = %d\n", cross);
    else printf("crossover: direct is faster for every T measured\n");

    /* T = 1: instruction sets, the bandwidth bound, bf16 dot products */
    double tr[MAX_REPS], tv[3][MAX_REPS];
    for (int r = 0; r < reps; r++) {
      tr[r] = plain_read(&mats[rot++ % nm]);
      for (int isa = 0; isa <= 2; isa++)
        tv[isa][r] = kern_isa_supported((kern_isa)isa) ? run_direct((kern_isa)isa, &mats[rot++ % nm], x, 1, xp, y) : 0;
    }
    const double mr = bench_median(tr, reps), bytes = bytes_of(&mats[0]);
    printf("T = 1: plain read of the same bytes %.3f ms (%.1f GB/s); direct avx512 %.3f ms, avx2 %.3f ms, "
           "scalar %.3f ms; direct / read = %.2f\n",
           mr * 1e3, bytes / mr / 1e9, bench_median(tv[2], reps) * 1e3, bench_median(tv[1], reps) * 1e3,
           bench_median(tv[0], reps) * 1e3, bench_median(tv[best], reps) / mr);
#if defined(__x86_64__)
    if (!mx && mats[0].C % 32 == 0 && __builtin_cpu_supports("avx512bf16")) {
      const int64_t C = mats[0].C;
      for (int64_t i = 0; i < C; i++) { /* x = hi + mid + lo, each a bf16 (truncated) */
        const float hi = bf16_val(bf16_trunc(x[i]));
        const float mid = bf16_val(bf16_trunc(x[i] - hi));
        xs[i] = bf16_trunc(hi);
        xs[C + i] = bf16_trunc(mid);
        xs[2 * C + i] = bf16_trunc(x[i] - hi - mid);
      }
      double tdp[MAX_REPS];
      for (int r = 0; r < reps; r++) {
        const mat *m = &mats[rot++ % nm];
        dp_job j = {ckpt_tensor_data(m->w), m->N, C, xs, y2};
        const double t0 = log_now();
        pool_run((m->N + KERN_TASK_ROWS - 1) / KERN_TASK_ROWS, dp_run, &j);
        tdp[r] = log_now() - t0;
      }
      /* accuracy against the fp32 kernel on the same matrix */
      const mat *m = &mats[0];
      dp_job j = {ckpt_tensor_data(m->w), m->N, C, xs, y2};
      pool_run((m->N + KERN_TASK_ROWS - 1) / KERN_TASK_ROWS, dp_run, &j);
      run_direct(best, m, x, 1, xp, y);
      double worst = 0, ymaxabs = 0;
      for (int64_t n = 0; n < m->N; n++) {
        if (fabs(y[n]) > ymaxabs) ymaxabs = fabs(y[n]);
        if (fabs(y2[n] - y[n]) > worst) worst = fabs(y2[n] - y[n]);
      }
      printf("T = 1: VDPBF16PS with x as 3 bf16 parts %.3f ms (%.2f x the fp32 FMA kernel); largest "
             "difference to it %.2e x max|y|\n",
             bench_median(tdp, reps) * 1e3, bench_median(tdp, reps) / bench_median(tv[best], reps), worst / ymaxabs);
    }
#endif
  }
  free(panel);
  free(x);
  free(xp);
  free(y);
  free(y2);
  free(xs);
  ckpt_close(ck);
  return 0;
}
