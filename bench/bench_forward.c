/* bench_forward: forward-pass throughput and memory on one rank, the new kernels next to the
 * old path in the same run (bench/README.md).
 *
 *   bench_forward CKPT [--prompt N] [--decode N] [--baseline-decode N] [--repeat R] [--seed S]
 *                      [--threads N] [--no-baseline] [--no-warm]
 *
 * Two passes over the same random prompt, each a prefill of N tokens then greedy decode steps
 * with the KV cache: "new" (the default kernel choice: direct kernels up to the crossovers,
 * model_impl.h) and "baseline" (MODEL_KERNELS_CONVERT: every bf16 matrix converted to fp32 and
 * every selected expert decoded into a panel, then sgemm, as before the direct kernels). By
 * default every tensor is read once first, so neither pass pays the first-touch page faults of
 * a fresh mapping (that time is printed on its own). With --repeat R the two passes alternate
 * R times (new, baseline, new, ...) and the figures are medians. It prints
 *   - prefill time (median, min, max) and decode time per step (median and mean over all steps)
 *     of both passes and the ratios;
 *   - for the new decode: the weight bytes each step must read (attention and router tensors of
 *     every layer, the experts its token selected, the unembedding, one embedding row), a plain
 *     read of the same bytes timed in the same run over the same threads, and step / read;
 *   - achieved GFLOP/s of the expert matmuls and of the attention matmuls (qkv/out projections,
 *     q.k scores) of each prefill next to a plain cblas_sgemm of the same shapes timed in the
 *     same run (expert shapes from the actual routing of the prefill);
 *   - MXFP4 panel decode throughput, the prefill time split, peak RSS (VmHWM) against the
 *     checkpoint bytes the run used. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"
#include "ckpt.h"
#include "log.h"
#include "model.h"
#include "pool.h"

#undef I /* <complex.h> via cblas.h; I is the intermediate size here */

static long status_kb(const char *key) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long v = -1;
  size_t n = strlen(key);
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, key, n) && line[n] == ':') v = atol(line + n + 1);
  if (f) fclose(f);
  return v;
}

/* Seconds for one plain sgemm C[M,N] = A[M,K] . B[N,K]ᵀ on scratch of the right size. */
static double plain_sgemm(int M, int N, int K, float *A, float *B, float *C) {
  const double t0 = log_now();
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, B, K, 0.0f, C, N);
  return log_now() - t0;
}

static float *rand_buf(size_t n, unsigned *seed) {
  float *p = malloc(n * sizeof(float));
  for (size_t i = 0; p && i < n; i++) p[i] = (float)rand_r(seed) / RAND_MAX - 0.5f;
  return p;
}

/* Every part of a tensor, or rows [r0, r0 + n) of a single-part tensor (by its dim 0). */
static void add_tensor(bench_ranges *r, const ckpt_tensor *t) {
  for (int p = 0; p < t->n_parts; p++) bench_ranges_add(r, t->part[p]->data, t->part[p]->n_bytes);
}
static void add_rows(bench_ranges *r, const ckpt_tensor *t, int64_t r0, int64_t n) {
  const size_t row = t->part[0]->n_bytes / (size_t)t->shape[0];
  bench_ranges_add(r, (const uint8_t *)t->part[0]->data + (size_t)r0 * row, (size_t)n * row);
}

/* The weight bytes of one decode step at position p: ids[p]'s embedding row, every layer's
 * attention + router tensors, the experts topk[l][p] selected, the final norm, the unembedding. */
static void step_ranges(const ckpt *ck, int L, int K, int32_t id, int32_t *const *topk, int p,
                        bench_ranges *r) {
  static const ckpt_role attn[] = {CK_ATTN_NORM, CK_QKV_W, CK_QKV_B, CK_SINKS, CK_OUT_W,
                                   CK_OUT_B, CK_MLP_NORM, CK_GATE_W, CK_GATE_B};
  static const ckpt_role ex[] = {CK_MLP1_BLOCKS, CK_MLP1_SCALES, CK_MLP1_BIAS,
                                 CK_MLP2_BLOCKS, CK_MLP2_SCALES, CK_MLP2_BIAS};
  add_rows(r, ckpt_tensor_find(ck, -1, CK_EMBEDDING), id, 1);
  for (int l = 0; l < L; l++) {
    for (size_t i = 0; i < sizeof attn / sizeof attn[0]; i++) add_tensor(r, ckpt_tensor_find(ck, l, attn[i]));
    const int32_t *sel = topk[l] + (size_t)p * K;
    for (int j = 0; j < K; j++) {
      int dup = 0;
      for (int q = 0; q < j; q++) dup |= sel[q] == sel[j];
      if (dup) continue;
      for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++) add_rows(r, ckpt_tensor_find(ck, l, ex[i]), sel[j], 1);
    }
  }
  add_tensor(r, ckpt_tensor_find(ck, -1, CK_NORM));
  add_tensor(r, ckpt_tensor_find(ck, -1, CK_UNEMBEDDING));
}

#define MAX_STEPS 4096
#define MAX_REPS 16

typedef struct {
  double prefill_s, step_s[MAX_STEPS];
  int n_steps;
  model_stats sp, sd;          /* after the prefill, after the decode */
  const char *isa;
} pass_result;

/* One pass: prefill n_prompt ids, then n_decode greedy steps (ids[n_prompt..] written). */
static int run_pass(const ckpt *ck, model_kernels kernels, int n_prompt, int n_decode, int32_t *ids,
                    int32_t **topk, float *logits, pass_result *res, err *e) {
  const gpt_config *c = ckpt_config(ck);
  const int L = c->n_layers, V = c->vocab, S = n_prompt + n_decode;
  model *m = NULL;
  model_kv kv = {0};
  model_opts o = {.max_tokens = n_prompt, .max_seq = S, .precision = MODEL_FP32, .kernels = kernels};
  model_layer_capture *lc = calloc((size_t)L, sizeof *lc);
  if (!lc || model_open(ck, &o, &m, e) != 0 || model_kv_init(c, 0, L, S, &kv, e) != 0) {
    free(lc);
    model_close(m);
    return -1;
  }
  for (int l = 0; l < L; l++) lc[l].topk_indices = topk[l];
  model_capture cap = {.layers = lc};
  res->isa = model_isa_name(m);
  double t0 = log_now();
  int rc = model_forward(m, &kv, ids, n_prompt, 0, L, 0, logits, &cap, e);
  res->prefill_s = log_now() - t0;
  model_stats_get(m, &res->sp);
  res->n_steps = 0;
  for (int k = 0; rc == 0 && k < n_decode; k++) {
    int best = 0;
    for (int v = 1; v < V; v++)
      if (logits[v] > logits[best]) best = v;
    ids[n_prompt + k] = best;
    t0 = log_now();
    rc = model_forward(m, &kv, ids + n_prompt + k, 1, n_prompt + k, L, 0, logits, &cap, e);
    res->step_s[res->n_steps++] = log_now() - t0;
  }
  model_stats_get(m, &res->sd);
  model_kv_free(&kv);
  model_close(m);
  free(lc);
  return rc;
}

static double mean(const double *v, int n) {
  double s = 0;
  for (int i = 0; i < n; i++) s += v[i];
  return n ? s / n : 0;
}

/* Expert and attention matmul rates of a prefill next to plain sgemm of the same shapes. */
static void matmul_rates(const char *what, const model_stats *sp, double plain_ex_f, double plain_ex_s,
                         double plain_at_f, double plain_at_s) {
  const double ex = sp->expert_gemm_flop / sp->expert_gemm_s / 1e9, exp_ = plain_ex_f / plain_ex_s / 1e9;
  const double at = sp->attn_gemm_flop / sp->attn_gemm_s / 1e9, atp = plain_at_f / plain_at_s / 1e9;
  printf("%s prefill expert matmuls:    %.1f GFLOP in %.2f s = %.1f GFLOP/s; plain sgemm same shapes %.1f GFLOP/s (%.0f %%)\n",
         what, sp->expert_gemm_flop / 1e9, sp->expert_gemm_s, ex, exp_, 100 * ex / exp_);
  printf("%s prefill attention matmuls: %.1f GFLOP in %.2f s = %.1f GFLOP/s; plain sgemm same shapes %.1f GFLOP/s (%.0f %%)\n",
         what, sp->attn_gemm_flop / 1e9, sp->attn_gemm_s, at, atp, 100 * at / atp);
  printf("%s prefill time split: experts %.2f s (%lld direct, %lld decoded into panels: decode %.2f s), attention %.2f s"
         " + core %.2f s, unembedding %.2f s, bf16 conversion %.2f s (%.2f GB of matrices)\n",
         what, sp->expert_gemm_s, sp->experts_direct, sp->experts_decoded, sp->mx4_decode_s, sp->attn_gemm_s,
         sp->attn_core_s, sp->head_gemm_s, sp->bf16_convert_s, sp->matrix_convert_bytes / 1e9);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_forward CKPT [--prompt N] [--decode N] [--baseline-decode N] [--repeat R] "
                    "[--seed S] [--threads N] [--no-baseline] [--no-warm]\n");
    return 2;
  }
  int n_prompt = 256, n_decode = 16, n_base_decode = -1, threads = 0, baseline = 1, warm = 1, reps = 1;
  unsigned seed = 1;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--no-baseline")) baseline = 0;
    else if (!strcmp(a, "--no-warm")) warm = 0;
    else if (v && !strcmp(a, "--prompt")) n_prompt = atoi(argv[++i]);
    else if (v && !strcmp(a, "--decode")) n_decode = atoi(argv[++i]);
    else if (v && !strcmp(a, "--baseline-decode")) n_base_decode = atoi(argv[++i]);
    else if (v && !strcmp(a, "--seed")) seed = (unsigned)atoi(argv[++i]);
    else if (v && !strcmp(a, "--repeat")) reps = atoi(argv[++i]);
    else if (v && !strcmp(a, "--threads")) threads = atoi(argv[++i]);
    else { fprintf(stderr, "bench_forward: unknown option %s\n", a); return 2; }
  }
  if (n_base_decode < 0) n_base_decode = n_decode;
  if (n_prompt < 1 || n_decode < 0 || n_decode > MAX_STEPS || n_base_decode > n_decode || reps < 1 ||
      reps > MAX_REPS) {
    fprintf(stderr, "bench_forward: bad sizes (--baseline-decode <= --decode <= %d, 1 <= --repeat <= %d)\n",
            MAX_STEPS, MAX_REPS);
    return 2;
  }
  if (threads > 0) model_set_threads(threads);
  err e = {0};
  ckpt *ck = NULL;
  const double t_open = log_now();
  if (ckpt_open(argv[1], &ck, &e) != 0) { fprintf(stderr, "bench_forward: %s\n", e.msg); return 1; }
  const gpt_config *c = ckpt_config(ck);
  const int L = c->n_layers, E = c->n_experts, K = c->top_k, D = c->hidden, I = c->intermediate;
  const int V = c->vocab, H = c->n_heads, Dh = c->head_dim, QKV = (int)config_qkv_rows(c);
  const int S = n_prompt + n_decode;

  int32_t *ids = malloc((size_t)S * sizeof *ids), *ids_base = malloc((size_t)S * sizeof *ids);
  int32_t **topk = calloc((size_t)L, sizeof *topk); /* [L][S, K] */
  int32_t **topk_base = calloc((size_t)L, sizeof *topk_base);
  float *logits = malloc((size_t)V * sizeof(float));
  pass_result *rn = calloc(MAX_REPS, sizeof *rn), *rb = calloc(MAX_REPS, sizeof *rb);
  if (!ids || !ids_base || !topk || !topk_base || !logits || !rn || !rb) { fprintf(stderr, "bench_forward: out of memory\n"); return 1; }
  for (int l = 0; l < L; l++) {
    topk[l] = malloc((size_t)S * K * sizeof(int32_t));
    topk_base[l] = malloc((size_t)S * K * sizeof(int32_t));
    if (!topk[l] || !topk_base[l]) { fprintf(stderr, "bench_forward: out of memory\n"); return 1; }
  }
  for (int i = 0; i < n_prompt; i++) ids[i] = ids_base[i] = rand_r(&seed) % V;
  if (threads <= 0) pool_set_threads(openblas_get_num_threads()); /* as model_open would */
  printf("checkpoint %s: %d layers, E %d, K %d, D %d, I %d, V %d (opened in %.2f s); %d threads "
         "(kernels and BLAS), OPENBLAS_CORETYPE=%s\n",
         argv[1], L, E, K, D, I, V, log_now() - t_open, pool_threads(),
         getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "(unset)");

  if (warm) { /* first touch of every tensor: page faults of the fresh mapping */
    bench_ranges all = {0};
    for (size_t i = 0; i < ckpt_n_tensors(ck); i++) add_tensor(&all, ckpt_tensor_at(ck, i));
    const double t = bench_ranges_read(&all), t2 = bench_ranges_read(&all);
    printf("warm-up: every tensor read once, %.2f GB: first touch %.2f s (%.2f GB/s), again %.2f s (%.2f GB/s)\n",
           bench_ranges_bytes(&all) / 1e9, t, bench_ranges_bytes(&all) / t / 1e9, t2, bench_ranges_bytes(&all) / t2 / 1e9);
    bench_ranges_free(&all);
  }

  /* the new kernels, then the baseline on the same prompt, alternating */
  for (int r = 0; r < reps; r++)
    if (run_pass(ck, MODEL_KERNELS_AUTO, n_prompt, n_decode, ids, topk, logits, &rn[r], &e) != 0 ||
        (baseline && run_pass(ck, MODEL_KERNELS_CONVERT, n_prompt, n_base_decode, ids_base, topk_base, logits,
                              &rb[r], &e) != 0)) {
      fprintf(stderr, "bench_forward: %s\n", e.msg);
      return 1;
    }
  /* medians over the repetitions (prefill) and over every step of every repetition (decode) */
  static double sn[MAX_REPS * MAX_STEPS], sb[MAX_REPS * MAX_STEPS];
  double pn[MAX_REPS], pb[MAX_REPS];
  int nsn = 0, nsb = 0;
  for (int r = 0; r < reps; r++) {
    pn[r] = rn[r].prefill_s;
    pb[r] = rb[r].prefill_s;
    for (int k = 0; k < rn[r].n_steps; k++) sn[nsn++] = rn[r].step_s[k];
    for (int k = 0; k < rb[r].n_steps; k++) sb[nsb++] = rb[r].step_s[k];
  }
  const double mn = mean(sn, nsn), mb_ = mean(sb, nsb);
  const double dn = bench_median(sn, nsn), db = bench_median(sb, nsb);
  const double ppn = bench_median(pn, reps), ppb = bench_median(pb, reps);
  printf("\n%-28s %22s %22s %9s   (%d repetition%s, medians; prefill min..max)\n", "", "baseline (convert)",
         "new (direct kernels)", "speed-up", reps, reps > 1 ? "s" : "");
  if (baseline) {
    printf("%-28s %8.3f s %5.2f..%-5.2f %8.3f s %5.2f..%-5.2f %6.2fx\n", "prefill", ppb, pb[0], pb[reps - 1], ppn,
           pn[0], pn[reps - 1], ppb / ppn);
    if (nsb)
      printf("%-28s %15.3f s     %15.3f s     %8.2fx   (%d / %d steps)\n", "decode step (median)", db, dn, db / dn,
             nsb, nsn);
    if (nsb)
      printf("%-28s %15.3f s     %15.3f s     %8.2fx\n", "decode step (mean)", mb_, mn, mb_ / mn);
  } else {
    printf("%-28s %22s %8.3f s %5.2f..%-5.2f\n", "prefill", "-", ppn, pn[0], pn[reps - 1]);
    if (nsn) printf("%-28s %22s %15.3f s\n", "decode step (median)", "-", dn);
  }
  printf("new: prefill %.1f tok/s, decode %.2f tok/s (median step; kernels %s)\n", n_prompt / ppn,
         nsn ? 1.0 / dn : 0.0, rn[0].isa);

  /* the bandwidth reference of the new decode: a plain read of each step's weight bytes */
  if (rn->n_steps) {
    static double rd[MAX_STEPS], by[MAX_STEPS], once[MAX_REPS];
    for (int k = 0; k < rn->n_steps; k++) {
      bench_ranges r = {0};
      step_ranges(ck, L, K, ids[n_prompt + k], topk, n_prompt + k, &r);
      by[k] = bench_ranges_bytes(&r);
      for (int q = 0; q < reps; q++) once[q] = bench_ranges_read(&r);
      rd[k] = bench_median(once, reps);
      bench_ranges_free(&r);
    }
    const double mb = bench_median(by, rn->n_steps), mr = bench_median(rd, rn->n_steps);
    printf("new decode: weight bytes per step %.3f GB (median); plain read of the same bytes %.3f s = %.1f GB/s "
           "(%d threads); step / read = %.2f (medians), i.e. the step runs at %.1f GB/s\n",
           mb / 1e9, mr, mb / mr / 1e9, pool_threads(), dn / mr, mb / dn / 1e9);
  }

  /* the same shapes through plain sgemm: experts with the prefill's routing counts */
  unsigned rs = 7;
  size_t big = (size_t)2 * I * D;
  if ((size_t)QKV * D > big) big = (size_t)QKV * D;
  if ((size_t)D * H * Dh > big) big = (size_t)D * H * Dh;
  float *A = rand_buf((size_t)n_prompt * (QKV > H * Dh ? QKV : H * Dh) + (size_t)n_prompt * 2 * I, &rs);
  float *B = rand_buf(big, &rs);
  float *C = malloc((size_t)n_prompt * (QKV > 2 * I ? QKV : 2 * I) * sizeof(float) + (size_t)n_prompt * S * sizeof(float));
  double plain_ex_s = 0, plain_ex_f = 0, plain_at_s = 0, plain_at_f = 0;
  long long distinct = 0;
  for (int l = 0; l < L; l++) {
    int cnt[1024] = {0};
    for (int s = 0; s < n_prompt * K; s++)
      if (topk[l][s] < 1024) cnt[topk[l][s]]++;
    for (int x = 0; x < E && x < 1024; x++) {
      if (!cnt[x]) continue;
      distinct++;
      plain_ex_s += plain_sgemm(cnt[x], 2 * I, D, A, B, C) + plain_sgemm(cnt[x], D, I, A, B, C);
      plain_ex_f += 2.0 * cnt[x] * 2 * I * D + 2.0 * cnt[x] * D * I;
    }
    plain_at_s += plain_sgemm(n_prompt, QKV, D, A, B, C) + plain_sgemm(n_prompt, D, H * Dh, A, B, C);
    plain_at_f += 2.0 * n_prompt * QKV * D + 2.0 * n_prompt * D * H * Dh;
    for (int h = 0; h < H; h++) { /* scores: [T, Dh] . [T, Dh]ᵀ */
      plain_at_s += plain_sgemm(n_prompt, n_prompt, Dh, A, B, C);
      plain_at_f += 2.0 * n_prompt * n_prompt * Dh;
    }
  }
  /* the matmul rates of the repetition with the median prefill of each pass */
  int kn = 0, kb = 0;
  for (int r = 0; r < reps; r++) {
    if (rn[r].prefill_s == ppn || (reps % 2 == 0 && rn[r].prefill_s == pn[reps / 2])) kn = r;
    if (rb[r].prefill_s == ppb || (reps % 2 == 0 && rb[r].prefill_s == pb[reps / 2])) kb = r;
  }
  printf("\n");
  matmul_rates("new:     ", &rn[kn].sp, plain_ex_f, plain_ex_s, plain_at_f, plain_at_s);
  if (baseline) matmul_rates("baseline:", &rb[kb].sp, plain_ex_f, plain_ex_s, plain_at_f, plain_at_s);
  if (baseline && rb->sd.mx4_decode_s > 0)
    printf("baseline MXFP4 panel decode: %.2f GB in %.2f s = %.2f GB/s of MXFP4 input; %lld panels\n",
           rb->sd.mx4_decode_bytes / 1e9, rb->sd.mx4_decode_s, rb->sd.mx4_decode_bytes / rb->sd.mx4_decode_s / 1e9,
           rb->sd.experts_decoded);
  {
    const model_stats *a = &rn[0].sp, *b = &rn[0].sd;
    const int n = rn[0].n_steps ? rn[0].n_steps : 1;
    double tot = 0;
    for (int k = 0; k < rn[0].n_steps; k++) tot += rn[0].step_s[k];
    printf("new decode time split per step: experts %.4f s, attention matmuls %.4f s + core %.4f s, "
           "unembedding %.4f s, other %.4f s (of %.4f s)\n",
           (b->expert_gemm_s - a->expert_gemm_s) / n, (b->attn_gemm_s - a->attn_gemm_s) / n,
           (b->attn_core_s - a->attn_core_s) / n, (b->head_gemm_s - a->head_gemm_s) / n,
           (tot - (b->expert_gemm_s - a->expert_gemm_s) - (b->attn_gemm_s - a->attn_gemm_s) -
            (b->attn_core_s - a->attn_core_s) - (b->head_gemm_s - a->head_gemm_s)) / n, tot / n);
  }
  printf("new decode: no fp32 weight copies: %.3f GB of bf16 matrices converted, %lld expert panels decoded "
         "during the decode steps\n",
         (rn->sd.matrix_convert_bytes - rn->sp.matrix_convert_bytes) / 1e9, rn->sd.experts_decoded - rn->sp.experts_decoded);

  /* memory: the checkpoint bytes used vs peak RSS */
  const double attn_b = 2.0 * ((double)D * 2 + (double)QKV * D + QKV + H + (double)D * H * Dh + D + (double)E * D + E +
                               (double)E * 2 * I + (double)E * D);
  const double expert_b = (double)2 * I * (D / 2 + D / 32) + (double)D * (I / 2 + I / 32);
  const double used = L * attn_b + distinct * expert_b + 2.0 * V * D + 2.0 * D + 2.0 * S * D;
  const long hwm = status_kb("VmHWM"), rss_file = status_kb("RssFile"), rss_anon = status_kb("RssAnon");
  if (warm)
    printf("memory: peak RSS (VmHWM) %.2f GB (the warm-up maps the whole checkpoint); now RssFile %.2f GB, RssAnon %.2f GB\n",
           hwm * 1024.0 / 1e9, rss_file * 1024.0 / 1e9, rss_anon * 1024.0 / 1e9);
  else
    printf("memory: peak RSS (VmHWM) %.2f GB; checkpoint bytes used %.2f GB (%lld expert panels of %d x %d); "
           "peak - used = %.2f GB (goal <= 1.5); now RssFile %.2f GB, RssAnon %.2f GB\n",
           hwm * 1024.0 / 1e9, used / 1e9, distinct, L, E, (hwm * 1024.0 - used) / 1e9,
           rss_file * 1024.0 / 1e9, rss_anon * 1024.0 / 1e9);
  free(A);
  free(B);
  free(C);
  for (int l = 0; l < L; l++) {
    free(topk[l]);
    free(topk_base[l]);
  }
  free(topk);
  free(topk_base);
  free(ids);
  free(ids_base);
  free(logits);
  free(rn);
  free(rb);
  ckpt_close(ck);
  return 0;
}
