/* bench_forward: forward-pass throughput and memory on one rank (bench/README.md).
 *
 *   bench_forward CKPT [--prompt N] [--decode N] [--seed S]
 *
 * Prefill of N prompt tokens (random ids), then N decode steps with the KV cache. Reports
 * tokens/s; achieved GFLOP/s of the expert matmuls and of the attention matmuls next to a plain
 * cblas_sgemm of the same shapes measured in the same run (expert shapes from the actual
 * routing of the prefill); MXFP4 decode throughput; peak RSS (VmHWM) against the checkpoint
 * bytes the run actually used (mapped weights: attention/router/norm tensors of the layers run,
 * the MXFP4 bytes of the experts selected, the unembedding and the embedding rows read). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "log.h"
#include "model.h"

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

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_forward CKPT [--prompt N] [--decode N] [--seed S]\n");
    return 2;
  }
  int n_prompt = 256, n_decode = 16;
  unsigned seed = 1;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--prompt")) n_prompt = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--decode")) n_decode = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--seed")) seed = (unsigned)atoi(argv[i + 1]);
    else { fprintf(stderr, "bench_forward: unknown option %s\n", argv[i]); return 2; }
  }
  if (n_prompt < 1 || n_decode < 0) { fprintf(stderr, "bench_forward: bad sizes\n"); return 2; }
  err e = {0};
  ckpt *ck = NULL;
  const double t_open = log_now();
  if (ckpt_open(argv[1], &ck, &e) != 0) { fprintf(stderr, "bench_forward: %s\n", e.msg); return 1; }
  const gpt_config *c = ckpt_config(ck);
  const int L = c->n_layers, E = c->n_experts, K = c->top_k, D = c->hidden, I = c->intermediate;
  const int V = c->vocab, H = c->n_heads, Dh = c->head_dim, QKV = (int)config_qkv_rows(c);
  const int S = n_prompt + n_decode;

  model *m = NULL;
  model_kv kv = {0};
  model_opts o = {.max_tokens = n_prompt, .max_seq = S, .precision = MODEL_FP32};
  int32_t *ids = malloc((size_t)S * sizeof *ids);
  int32_t *topk = malloc((size_t)L * n_prompt * K * sizeof *topk);       /* [L, T, K] */
  model_layer_capture *lc = calloc((size_t)L, sizeof *lc);
  float *logits = malloc((size_t)V * sizeof(float));
  if (!ids || !topk || !lc || !logits || model_open(ck, &o, &m, &e) != 0 ||
      model_kv_init(c, 0, L, S, &kv, &e) != 0) {
    fprintf(stderr, "bench_forward: %s\n", e.msg[0] ? e.msg : "out of memory");
    return 1;
  }
  for (int l = 0; l < L; l++) lc[l].topk_indices = topk + (size_t)l * n_prompt * K;
  model_capture cap = {.layers = lc};
  for (int i = 0; i < n_prompt; i++) ids[i] = rand_r(&seed) % V;
  printf("checkpoint %s: %d layers, E %d, K %d, D %d, I %d, V %d (opened in %.2f s)\n", argv[1], L,
         E, K, D, I, V, log_now() - t_open);

  /* prefill */
  double t0 = log_now();
  if (model_forward(m, &kv, ids, n_prompt, 0, L, 0, logits, &cap, &e) != 0) {
    fprintf(stderr, "bench_forward: %s\n", e.msg);
    return 1;
  }
  const double t_prefill = log_now() - t0;
  model_stats sp;
  model_stats_get(m, &sp);

  /* decode */
  t0 = log_now();
  for (int k = 0; k < n_decode; k++) {
    int best = 0;
    for (int v = 1; v < V; v++)
      if (logits[v] > logits[best]) best = v;
    ids[n_prompt + k] = best;
    if (model_forward(m, &kv, ids + n_prompt + k, 1, n_prompt + k, L, 0, logits, NULL, &e)) {
      fprintf(stderr, "bench_forward: %s\n", e.msg);
      return 1;
    }
  }
  const double t_decode = log_now() - t0;
  model_stats sd;
  model_stats_get(m, &sd);

  printf("prefill: %d tokens in %.2f s = %.1f tok/s\n", n_prompt, t_prefill, n_prompt / t_prefill);
  if (n_decode)
    printf("decode:  %d steps in %.2f s = %.2f tok/s\n", n_decode, t_decode, n_decode / t_decode);

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
      if (lc[l].topk_indices[s] < 1024) cnt[lc[l].topk_indices[s]]++;
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
  const double ex_rate = sp.expert_gemm_flop / sp.expert_gemm_s / 1e9;
  const double ex_plain = plain_ex_f / plain_ex_s / 1e9;
  const double at_rate = sp.attn_gemm_flop / sp.attn_gemm_s / 1e9;
  const double at_plain = plain_at_f / plain_at_s / 1e9;
  printf("prefill expert matmuls:    %.1f GFLOP in %.2f s = %.1f GFLOP/s; plain sgemm same shapes %.1f GFLOP/s (%.0f %%)\n",
         sp.expert_gemm_flop / 1e9, sp.expert_gemm_s, ex_rate, ex_plain, 100 * ex_rate / ex_plain);
  printf("prefill attention matmuls: %.1f GFLOP in %.2f s = %.1f GFLOP/s; plain sgemm same shapes %.1f GFLOP/s (%.0f %%)\n",
         sp.attn_gemm_flop / 1e9, sp.attn_gemm_s, at_rate, at_plain, 100 * at_rate / at_plain);
  printf("prefill attention core (mask, softmax with sinks, P.v loops): %.2f GFLOP in %.2f s\n",
         sp.attn_core_flop / 1e9, sp.attn_core_s);
  printf("prefill unembedding:       %.1f GFLOP in %.2f s = %.1f GFLOP/s\n", sp.head_gemm_flop / 1e9,
         sp.head_gemm_s, sp.head_gemm_flop / sp.head_gemm_s / 1e9);
  printf("MXFP4 decode: %.2f GB in %.2f s = %.2f GB/s of MXFP4 input (%.2f GB/s fp32 output); %lld experts decoded\n",
         sd.mx4_decode_bytes / 1e9, sd.mx4_decode_s, sd.mx4_decode_bytes / sd.mx4_decode_s / 1e9,
         sd.mx4_decode_bytes * 32.0 / 17.0 * 4.0 / sd.mx4_decode_s / 1e9, /* 17 B hold 32 weights */
         sd.experts_decoded);
  printf("bf16 -> fp32 weight conversion: %.2f s (prefill + decode)\n", sd.bf16_convert_s);
  printf("prefill time split: experts sgemm %.2f s, MXFP4 decode %.2f s, attention %.2f s + core %.2f s, unembedding %.2f s, bf16 conversion %.2f s\n",
         sp.expert_gemm_s, sp.mx4_decode_s, sp.attn_gemm_s, sp.attn_core_s, sp.head_gemm_s, sp.bf16_convert_s);

  /* memory: the checkpoint bytes used vs peak RSS */
  const double attn_b = 2.0 * ((double)D * 2 + (double)QKV * D + QKV + H + (double)D * H * Dh + D + (double)E * D + E +
                               (double)E * 2 * I + (double)E * D);
  const double expert_b = (double)2 * I * (D / 2 + D / 32) + (double)D * (I / 2 + I / 32);
  const double used = L * attn_b + distinct * expert_b + 2.0 * V * D + 2.0 * D + 2.0 * S * D;
  const long hwm = status_kb("VmHWM"), rss_file = status_kb("RssFile"), rss_anon = status_kb("RssAnon");
  printf("memory: peak RSS (VmHWM) %.2f GB; checkpoint bytes used %.2f GB (%lld expert panels of %d x %d); "
         "peak - used = %.2f GB (goal <= 1.5); now RssFile %.2f GB, RssAnon %.2f GB\n",
         hwm * 1024.0 / 1e9, used / 1e9, distinct, L, E, (hwm * 1024.0 - used) / 1e9,
         rss_file * 1024.0 / 1e9, rss_anon * 1024.0 / 1e9);
  free(A);
  free(B);
  free(C);
  free(ids);
  free(topk);
  free(lc);
  free(logits);
  model_kv_free(&kv);
  model_close(m);
  ckpt_close(ck);
  return 0;
}
