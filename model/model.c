/* model.c: lifecycle, shared helpers (linear, RMSNorm, weight conversion), embedding, head,
 * KV cache and the single-rank forward chain. Attention is in attn.c, MoE in moe.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "model_impl.h"
#include "mx4.h"
#include "pool.h"

/* ---------------------------------------------------------------- helpers */

void model_round_vec(const model *m, float *v, int64_t n) {
  if (!m->bf16) return;
  for (int64_t i = 0; i < n; i++) v[i] = model_bf16r(v[i]);
}

void model_gemm_nt(const model *m, int M, int N, int Kd, const float *A, int lda, const float *B,
                   int ldb, float *C, int ldc) {
  if (!m->row_stable) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, Kd, 1.0f, A, lda, B, ldb, 0.0f, C,
                ldc);
    return;
  }
  for (int r = 0; r < M; r++)
    cblas_sgemv(CblasRowMajor, CblasNoTrans, N, Kd, 1.0f, B, ldb, A + (int64_t)r * lda, 1, 0.0f,
                C + (int64_t)r * ldc, 1);
}

/* y[T, N] (+ b), rounded once in bf16 mode: the reference adds the bias in fp32 before its
 * single rounding to bf16. */
static void linear_finish(const model *m, int T, int N, const float *b, float *y, int ldy) {
  for (int t = 0; t < T; t++) {
    float *row = y + (int64_t)t * ldy;
    if (b)
      for (int o = 0; o < N; o++) row[o] = model_r(m, row[o] + b[o]);
    else
      model_round_vec(m, row, N);
  }
}

void model_linear(const model *m, const float *x, int T, int Din, const float *W, int N,
                  const float *b, float *y, int ldy, double *secs, double *flop) {
  const double t0 = log_now();
  model_gemm_nt(m, T, N, Din, x, Din, W, Din, y, ldy);
  if (secs) *secs += log_now() - t0;
  if (flop) *flop += 2.0 * T * N * Din;
  linear_finish(m, T, N, b, y, ldy);
}

/* ---------------------------------------------------------------- direct kernels */

int model_use_direct(const model *m, int T, int max_direct) {
  return m->kernels == MODEL_KERNELS_DIRECT || (m->kernels == MODEL_KERNELS_AUTO && T <= max_direct);
}


void model_rmsnorm(const model *m, const float *x, int T, const float *scale, float *y) {
  const int D = m->c.hidden;
  for (int t = 0; t < T; t++) {
    const float *xr = x + (int64_t)t * D;
    float *yr = y + (int64_t)t * D;
    double ss = 0.0;
    for (int i = 0; i < D; i++) ss += (double)(xr[i] * xr[i]); /* t**2 in fp32, as torch */
    const float ms = (float)(ss / D);
    const float inv = 1.0f / sqrtf(ms + 1e-5f);
    for (int i = 0; i < D; i++) yr[i] = model_r(m, (xr[i] * inv) * scale[i]);
  }
}

static const ckpt_tensor *find_tensor(model *m, int layer, ckpt_role role, err *e) {
  const ckpt_tensor *t = ckpt_tensor_find(m->ck, layer, role);
  if (!t) {
    char name[96];
    ckpt_role_name(layer, role, name, sizeof name);
    err_set(e, EXIT_RUNTIME, "%s: tensor missing from the checkpoint", name);
  }
  return t;
}

int model_load_rows(model *m, int layer, ckpt_role role, int64_t row0, int64_t n_rows,
                    float *out, err *e) {
  const ckpt_tensor *t = find_tensor(m, layer, role, e);
  if (!t) return -1;
  const double t0 = log_now();
  int rc = ckpt_tensor_rows_f32(t, row0, n_rows, out, e);
  m->st.bf16_convert_s += log_now() - t0;
  return rc;
}

int model_load_all(model *m, int layer, ckpt_role role, float *out, err *e) {
  const ckpt_tensor *t = find_tensor(m, layer, role, e);
  if (!t) return -1;
  const double t0 = log_now();
  int rc = ckpt_tensor_f32(t, out, e);
  m->st.bf16_convert_s += log_now() - t0;
  return rc;
}

int model_linear_rows(model *m, int layer, ckpt_role role, const float *x, int T, const float *b,
                      int64_t r0, int64_t r1, int64_t chunk, float *y, int ldy, double *secs,
                      double *flop, err *e) {
  const ckpt_tensor *w = find_tensor(m, layer, role, e);
  if (!w) return -1;
  if (w->dtype != ST_BF16 || w->n_dims != 2)
    return err_set(e, EXIT_RUNTIME, "%s: expected a BF16 matrix", w->name);
  const int64_t N = w->shape[0], Din = w->shape[1];
  if (r0 < 0 || r1 > N || r0 > r1)
    return err_set(e, EXIT_RUNTIME, "%s: rows [%lld, %lld) of %lld", w->name, (long long)r0,
                   (long long)r1, (long long)N);
  if (r0 == r1) return 0;
  if (model_use_direct(m, T, MODEL_BF16_DIRECT_MAX_T)) {
    const double t0 = log_now();
    int64_t row = 0; /* the Hugging Face q/k/v parts are consecutive row ranges */
    for (int p = 0; p < w->n_parts; p++) {
      const int64_t n = w->part[p]->shape[0];
      const int64_t a = row > r0 ? row : r0, z = row + n < r1 ? row + n : r1;
      if (a < z)
        kern_bf16_nt_par(m->isa, (const uint8_t *)w->part[p]->data + (a - row) * Din * 2, z - a,
                         Din, x, Din, T, y + (a - r0), ldy);
      row += n;
    }
    if (secs) *secs += log_now() - t0;
    if (flop) *flop += 2.0 * T * (r1 - r0) * Din;
    m->st.direct_bf16_bytes += 2.0 * (r1 - r0) * Din;
    linear_finish(m, T, (int)(r1 - r0), b ? b + r0 : NULL, y, ldy);
    return 0;
  }
  for (int64_t c0 = r0; c0 < r1; c0 += chunk) {
    const int64_t n = r1 - c0 < chunk ? r1 - c0 : chunk;
    if (model_load_rows(m, layer, role, c0, n, m->w, e) != 0) return -1;
    m->st.matrix_convert_bytes += 2.0 * n * Din;
    model_linear(m, x, T, (int)Din, m->w, (int)n, b ? b + c0 : NULL, y + (c0 - r0), ldy, secs, flop);
  }
  return 0;
}

int model_linear_w(model *m, int layer, ckpt_role role, const float *x, int T, const float *b,
                   int64_t chunk, float *y, int ldy, double *secs, double *flop, err *e) {
  const ckpt_tensor *w = find_tensor(m, layer, role, e);
  if (!w) return -1;
  return model_linear_rows(m, layer, role, x, T, b, 0, w->n_dims == 2 ? w->shape[0] : 0, chunk, y,
                           ldy, secs, flop, e);
}

/* ---------------------------------------------------------------- RoPE tables (spec 6.3) */

static int rope_tables_init(model *m, err *e) {
  const gpt_config *c = &m->c;
  const int d2 = c->head_dim / 2;
  /* the reference's float32 tensor arithmetic: angle = float32 product, conc folded in */
  if (config_rope_inv_freq(c, m->inv_freq, &m->concentration, e) != 0) return -1;
  const float conc = m->concentration;
  for (int p = 0; p < m->max_seq; p++)
    for (int i = 0; i < d2; i++) {
      const float angle = (float)p * m->inv_freq[i];
      m->cos[(int64_t)p * d2 + i] = (float)cos((double)angle) * conc;
      m->sin[(int64_t)p * d2 + i] = (float)sin((double)angle) * conc;
    }
  return 0;
}

void model_rope_tables(const model *m, const float **cos_, const float **sin_,
                       const float **inv_freq) {
  *cos_ = m->cos;
  *sin_ = m->sin;
  *inv_freq = m->inv_freq;
}

/* ---------------------------------------------------------------- lifecycle */

static int pool_configured; /* model_set_threads was called */

/* calloc that records failure and counts the bytes asked for (model_scratch_bytes). */
static void *xcalloc(size_t n, size_t size, int *fail, uint64_t *total) {
  void *p = calloc(n ? n : 1, size);
  if (!p) *fail = 1;
  *total += (uint64_t)n * size;
  return p;
}

int model_open(const ckpt *ck, const model_opts *o, model **out, err *e) {
  *out = NULL;
  const gpt_config *c = ckpt_config(ck);
  if (o->max_tokens < 1 || o->max_seq < o->max_tokens)
    return err_set(e, EXIT_RUNTIME, "model: need 1 <= max_tokens (%d) <= max_seq (%d)",
                   o->max_tokens, o->max_seq);
  model *m = calloc(1, sizeof *m);
  if (!m) return err_set(e, EXIT_RUNTIME, "model: out of memory");
  m->ck = ck;
  m->c = *c;
  m->bf16 = o->precision == MODEL_BF16;
  m->row_stable = o->row_stable;
  m->kernels = (model_kernels)o->kernels;
  const char *ke = getenv("GPTOSS_KERNELS");
  if (m->kernels == MODEL_KERNELS_AUTO && ke && *ke) {
    if (!strcmp(ke, "convert")) m->kernels = MODEL_KERNELS_CONVERT;
    else if (!strcmp(ke, "direct")) m->kernels = MODEL_KERNELS_DIRECT;
    else if (strcmp(ke, "auto") != 0) {
      free(m);
      return err_set(e, EXIT_USAGE, "GPTOSS_KERNELS=%s: expected auto, convert or direct", ke);
    }
  }
  const char *se = getenv("GPTOSS_SIMD");
  if (se && *se && strcmp(se, "scalar") && strcmp(se, "avx2") && strcmp(se, "avx512")) {
    free(m);
    return err_set(e, EXIT_USAGE, "GPTOSS_SIMD=%s: expected scalar, avx2 or avx512", se);
  }
  /* the direct kernels are row-stable by construction: use them for every T */
  if (m->row_stable && m->kernels == MODEL_KERNELS_AUTO) m->kernels = MODEL_KERNELS_DIRECT;
  m->isa = kern_isa_best();
  (void)mx4_scale(0); /* builds the scale table before any worker thread reads it */
  if (!pool_configured) model_set_threads(openblas_get_num_threads());
  m->max_T = o->max_tokens;
  m->max_seq = o->max_seq;
  m->qkv_w = (int)config_qkv_rows(c);

  const size_t D = c->hidden, I = c->intermediate, E = c->n_experts, K = c->top_k;
  const size_t HD = (size_t)c->n_heads * c->head_dim, QKV = m->qkv_w, T = m->max_T;
  const size_t S = m->max_seq, d2 = c->head_dim / 2;
  const size_t V = c->vocab;
  size_t wsz = QKV * D;
  if (D * HD > wsz) wsz = D * HD;
  if (E * D > wsz) wsz = E * D;
  const size_t chunk = V < MODEL_UNEMB_CHUNK ? V : MODEL_UNEMB_CHUNK;
  if (chunk * D > wsz) wsz = chunk * D;
  size_t vsz = QKV;
  if (D > vsz) vsz = D;
  if (E > vsz) vsz = E;
  if (2 * I > vsz) vsz = 2 * I;
  if ((size_t)c->n_heads > vsz) vsz = c->n_heads;

  int fail = 0;
  m->inv_freq = xcalloc(d2, sizeof(float), &fail, &m->scratch_bytes);
  m->cos = xcalloc(S * d2, sizeof(float), &fail, &m->scratch_bytes);
  m->sin = xcalloc(S * d2, sizeof(float), &fail, &m->scratch_bytes);
  m->w = xcalloc(wsz, sizeof(float), &fail, &m->scratch_bytes);
  m->vec_a = xcalloc(vsz, sizeof(float), &fail, &m->scratch_bytes);
  m->vec_b = xcalloc(vsz, sizeof(float), &fail, &m->scratch_bytes);
  m->x = xcalloc(T * D, sizeof(float), &fail, &m->scratch_bytes);
  m->t = xcalloc(T * D, sizeof(float), &fail, &m->scratch_bytes);
  m->qkv = xcalloc(T * QKV, sizeof(float), &fail, &m->scratch_bytes);
  m->att = xcalloc(T * HD, sizeof(float), &fail, &m->scratch_bytes);
  m->scores = xcalloc(T * S, sizeof(float), &fail, &m->scratch_bytes);
  m->proj = xcalloc(T * D, sizeof(float), &fail, &m->scratch_bytes);
  m->rlogits = xcalloc(T * E, sizeof(float), &fail, &m->scratch_bytes);
  m->idx = xcalloc(T * K, sizeof(int32_t), &fail, &m->scratch_bytes);
  m->val = xcalloc(T * K, sizeof(float), &fail, &m->scratch_bytes);
  m->wts = xcalloc(T * K, sizeof(float), &fail, &m->scratch_bytes);
  m->y = xcalloc(T * K * D, sizeof(float), &fail, &m->scratch_bytes);
  m->panel1 = xcalloc(2 * I * D, sizeof(float), &fail, &m->scratch_bytes);
  m->panel2 = xcalloc(D * I, sizeof(float), &fail, &m->scratch_bytes);
  m->ex_in = xcalloc(T * D, sizeof(float), &fail, &m->scratch_bytes);
  m->ex_h = xcalloc(T * 2 * I, sizeof(float), &fail, &m->scratch_bytes);
  m->ex_u = xcalloc(T * I, sizeof(float), &fail, &m->scratch_bytes);
  m->ex_y = xcalloc(T * D, sizeof(float), &fail, &m->scratch_bytes);
  m->ex_count = xcalloc(E, sizeof(int), &fail, &m->scratch_bytes);
  m->ex_start = xcalloc(E + 1, sizeof(int), &fail, &m->scratch_bytes);
  m->ex_slot = xcalloc(T * K, sizeof(int), &fail, &m->scratch_bytes);
  if (fail) {
    model_close(m);
    return err_set(e, EXIT_RUNTIME, "model: out of memory allocating scratch for %zu tokens, %zu positions",
                   T, S);
  }
  if (rope_tables_init(m, e) != 0) {
    model_close(m);
    return -1;
  }
  *out = m;
  return 0;
}

void model_close(model *m) {
  if (!m) return;
  void *bufs[] = {m->inv_freq, m->cos,    m->sin,    m->w,      m->vec_a,   m->vec_b,
                  m->x,        m->t,      m->qkv,    m->att,    m->scores,  m->proj,
                  m->rlogits,  m->idx,    m->val,    m->wts,    m->y,       m->panel1,
                  m->panel2,   m->ex_in,  m->ex_h,   m->ex_u,   m->ex_y,    m->ex_count,
                  m->ex_start, m->ex_slot};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
  free(m);
}

const gpt_config *model_config(const model *m) { return &m->c; }

void model_set_progress(model *m, model_progress_fn fn, void *ctx) {
  m->progress = fn;
  m->progress_ctx = ctx;
}

void model_stats_get(const model *m, model_stats *s) { *s = m->st; }

uint64_t model_scratch_bytes(const model *m) { return m->scratch_bytes; }

void model_set_threads(int n) {
  openblas_set_num_threads(n > 0 ? n : 1);
  pool_set_threads(n);
  pool_configured = 1;
}

const char *model_kernels_name(const model *m) {
  return m->kernels == MODEL_KERNELS_CONVERT ? "convert" : m->kernels == MODEL_KERNELS_DIRECT ? "direct" : "auto";
}

const char *model_isa_name(const model *m) { return kern_isa_name(m->isa); }

/* ---------------------------------------------------------------- KV cache */

int model_kv_init(const gpt_config *c, int layer0, int n_layers, int max_seq, model_kv *kv,
                  err *e) {
  return model_kv_init_heads(c, layer0, n_layers, max_seq, 0, c->n_kv_heads, kv, e);
}

int model_kv_init_heads(const gpt_config *c, int layer0, int n_layers, int max_seq, int head0,
                        int head1, model_kv *kv, err *e) {
  memset(kv, 0, sizeof *kv);
  if (head0 < 0 || head1 > c->n_kv_heads || head0 > head1)
    return err_set(e, EXIT_RUNTIME, "KV cache: heads [%d, %d) of %d", head0, head1, c->n_kv_heads);
  kv->layer0 = layer0;
  kv->n_layers = n_layers;
  kv->max_seq = max_seq;
  kv->head0 = head0;
  kv->n_heads = head1 - head0;
  kv->width = kv->n_heads * c->head_dim;
  const size_t n = (size_t)(n_layers > 0 ? n_layers : 1) * max_seq * (kv->width > 0 ? kv->width : 1);
  kv->k = malloc(n * sizeof(float));
  kv->v = malloc(n * sizeof(float));
  kv->n_filled = calloc(n_layers > 0 ? n_layers : 1, sizeof(int));
  if (!kv->k || !kv->v || !kv->n_filled) {
    model_kv_free(kv);
    return err_set(e, EXIT_RUNTIME, "KV cache: out of memory (%d layers x %d positions)",
                   n_layers, max_seq);
  }
  return 0;
}

void model_kv_free(model_kv *kv) {
  free(kv->k);
  free(kv->v);
  free(kv->n_filled);
  kv->k = kv->v = NULL;
  kv->n_filled = NULL;
}

void model_kv_reset(model_kv *kv) {
  for (int i = 0; i < kv->n_layers; i++) kv->n_filled[i] = 0;
}

/* ---------------------------------------------------------------- embedding and head */

int model_embed(model *m, const int32_t *ids, int T, float *x, err *e) {
  const int D = m->c.hidden;
  for (int t = 0; t < T; t++) {
    if (ids[t] < 0 || ids[t] >= m->c.vocab)
      return err_set(e, EXIT_RUNTIME, "token %d: id %d is outside the vocabulary [0, %d)", t,
                     ids[t], m->c.vocab);
    if (model_load_rows(m, -1, CK_EMBEDDING, ids[t], 1, x + (int64_t)t * D, e) != 0) return -1;
  }
  return 0;  /* bf16 values already: the bf16 row copy needs no rounding */
}

int model_head(model *m, const float *x, int T, float *final_norm_out, float *logits, err *e) {
  return model_head_rows(m, x, T, final_norm_out, 0, m->c.vocab, logits, m->c.vocab, e);
}

int model_head_rows(model *m, const float *x, int T, float *final_norm_out, int64_t v0,
                    int64_t v1, float *logits, int64_t ldl, err *e) {
  const int D = m->c.hidden;
  if (v0 % MODEL_UNEMB_CHUNK != 0 || ldl > INT32_MAX)
    return err_set(e, EXIT_RUNTIME, "head: vocabulary rows from %lld (not a multiple of %d)",
                   (long long)v0, MODEL_UNEMB_CHUNK);
  if (model_load_all(m, -1, CK_NORM, m->vec_a, e) != 0) return -1;
  model_rmsnorm(m, x, T, m->vec_a, m->t);
  if (final_norm_out) memcpy(final_norm_out, m->t, (size_t)T * D * sizeof(float));
  return model_linear_rows(m, -1, CK_UNEMBEDDING, m->t, T, NULL, v0, v1, MODEL_UNEMB_CHUNK, logits,
                           (int)ldl, &m->st.head_gemm_s, &m->st.head_gemm_flop, e);
}

/* ---------------------------------------------------------------- single-rank chain */

int model_forward(model *m, model_kv *kv, const int32_t *ids, int T, int pos0, int n_layers,
                  int all_logits, float *logits, model_capture *cap, err *e) {
  const int D = m->c.hidden;
  if (T < 1 || T > m->max_T)
    return err_set(e, EXIT_RUNTIME, "forward: %d tokens in one call (scratch holds %d)", T,
                   m->max_T);
  if (n_layers < 0 || n_layers > m->c.n_layers || n_layers > kv->n_layers || kv->layer0 != 0)
    return err_set(e, EXIT_RUNTIME, "forward: %d layers requested, model has %d, cache %d",
                   n_layers, m->c.n_layers, kv->n_layers);
  float *x = m->x; /* [T, D] */
  if (model_embed(m, ids, T, x, e) != 0) return -1;
  if (cap && cap->embedding_out)
    memcpy(cap->embedding_out + (int64_t)pos0 * D, x, (size_t)T * D * sizeof(float));
  for (int l = 0; l < n_layers; l++) {
    model_layer_capture *lc = cap && cap->layers ? &cap->layers[l] : NULL;
    if (model_attn_block(m, l, kv, pos0, T, x, lc, e) != 0) return -1;
    if (model_moe_block(m, l, pos0, T, x, lc, e) != 0) return -1;
    if (m->progress) m->progress(m->progress_ctx, l + 1, n_layers);
  }
  float *fno = cap && cap->final_norm_out ? cap->final_norm_out + (int64_t)pos0 * D : NULL;
  if (!all_logits) {
    /* only the last position's logits are wanted (generation without a trace) */
    if (model_head(m, x + (int64_t)(T - 1) * D, 1, fno ? fno + (int64_t)(T - 1) * D : NULL,
                   logits, e) != 0)
      return -1;
    return 0;
  }
  if (model_head(m, x, T, fno, logits, e) != 0) return -1;
  float *dst = cap && cap->logits ? cap->logits + (int64_t)pos0 * m->c.vocab : NULL;
  if (dst && dst != logits) memcpy(dst, logits, (size_t)T * m->c.vocab * sizeof(float));
  return 0;
}
