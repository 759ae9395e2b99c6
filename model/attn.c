/* attn.c: the attention block of one layer (spec section 6): RMSNorm, QKV projection, RoPE
 * with YaRN (half-split rotation), GQA with learned sinks and the sliding window on even
 * layers, output projection and residual. Keys/values go through the caller's KV cache so a
 * prefill and the decode steps after it use the same code. */
#include <math.h>
#include <string.h>

#include "log.h"
#include "model_impl.h"

/* Rotate one head vector v[Dh] at table row (cos, sin)[Dh/2] in place. */
static void rope_rotate(const model *m, float *v, const float *cs, const float *sn, int d2) {
  for (int i = 0; i < d2; i++) {
    const float c = model_r(m, cs[i]), s = model_r(m, sn[i]);
    const float x1 = v[i], x2 = v[d2 + i];
    /* each product and the sum/difference are separate rounded tensor ops in the reference */
    v[i] = model_r(m, model_r(m, x1 * c) - model_r(m, x2 * s));
    v[d2 + i] = model_r(m, model_r(m, x2 * c) + model_r(m, x1 * s));
  }
}

/* Softmax of one score row over the visible keys [lo, hi] plus the sink column, in place:
 * row[0..n) holds scores for keys kmin.., entries outside [lo, hi] become 0. */
static void softmax_with_sink(const model *m, float *row, int n, int lo, int hi, float sink) {
  float mx = sink;
  for (int j = lo; j <= hi; j++)
    if (row[j] > mx) mx = row[j];
  float z = expf(sink - mx);
  for (int j = lo; j <= hi; j++) {
    row[j] = expf(row[j] - mx);
    z += row[j];
  }
  const float inv = 1.0f / z;
  for (int j = 0; j < lo; j++) row[j] = 0.0f;
  for (int j = lo; j <= hi; j++) row[j] = model_r(m, row[j] * inv);
  for (int j = hi + 1; j < n; j++) row[j] = 0.0f;
}

float *model_attn_buf(model *m) { return m->att; }

int model_attn_heads(model *m, int layer, model_kv *kv, int pos0, int T, const float *x, int u0,
                     int u1, model_layer_capture *cap, err *e) {
  const gpt_config *c = &m->c;
  const int D = c->hidden, H = c->n_heads, KVH = c->n_kv_heads, Dh = c->head_dim;
  const int G = H / KVH, d2 = Dh / 2, QKV = m->qkv_w, HD = H * Dh, W = kv->width;
  const int WA = KVH * Dh; /* k (or v) columns of the projection: every KV head */
  const int li = layer - kv->layer0;
  if (T < 1 || T > m->max_T || pos0 < 0 || pos0 + T > m->max_seq || pos0 + T > kv->max_seq)
    return err_set(e, EXIT_RUNTIME,
                   "attention: positions [%d, %d) exceed the scratch (%d tokens, %d positions)",
                   pos0, pos0 + T, m->max_T, m->max_seq);
  if (layer < 0 || layer >= c->n_layers || li < 0 || li >= kv->n_layers || kv->n_filled[li] < pos0)
    return err_set(e, EXIT_RUNTIME, "attention: layer %d at position %d: KV cache not filled",
                   layer, pos0);
  if (u0 < kv->head0 || u1 > kv->head0 + kv->n_heads || u0 > u1)
    return err_set(e, EXIT_RUNTIME, "attention: units [%d, %d) outside the KV cache's heads [%d, %d)",
                   u0, u1, kv->head0, kv->head0 + kv->n_heads);

  /* t = RMSNorm(x) */
  float *t = m->t; /* [T, D] */
  if (model_load_all(m, layer, CK_ATTN_NORM, m->vec_a, e) != 0) return -1;
  model_rmsnorm(m, x, T, m->vec_a, t);
  if (cap && cap->attn_norm_out)
    memcpy(cap->attn_norm_out + (int64_t)pos0 * D, t, (size_t)T * D * sizeof(float));

  /* qkv = t . qkv.weightᵀ + qkv.bias: every row at once, or the q, k and v rows of the units
   * (the same sums: a large sgemm's and the direct kernels' per-element sums do not depend on
   * the rows asked). When one unit's k rows would be a small sgemm, unit by unit on every rank
   * count: each block is then the same call whatever the split. */
  float *qkv = m->qkv; /* [T, QKV] */
  if (u0 < u1 && model_load_all(m, layer, CK_QKV_B, m->vec_b, e) != 0) return -1;
  const int blocked = !model_use_direct(m, T, MODEL_BF16_DIRECT_MAX_T) &&
                      (int64_t)T * Dh * D < MODEL_SGEMM_SMALL;
  if (u0 == 0 && u1 == KVH && !blocked) {
    if (model_linear_w(m, layer, CK_QKV_W, t, T, m->vec_b, QKV, qkv, QKV, &m->st.attn_gemm_s,
                       &m->st.attn_gemm_flop, e) != 0)
      return -1;
  } else {
    for (int b0 = u0; b0 < u1; b0 = blocked ? b0 + 1 : u1) {
      const int b1 = blocked ? b0 + 1 : u1;
      const int64_t r[3][2] = {{(int64_t)b0 * G * Dh, (int64_t)b1 * G * Dh},
                               {HD + (int64_t)b0 * Dh, HD + (int64_t)b1 * Dh},
                               {HD + WA + (int64_t)b0 * Dh, HD + WA + (int64_t)b1 * Dh}};
      for (int i = 0; i < 3; i++)
        if (model_linear_rows(m, layer, CK_QKV_W, t, T, m->vec_b, r[i][0], r[i][1], QKV,
                              qkv + r[i][0], QKV, &m->st.attn_gemm_s, &m->st.attn_gemm_flop, e) != 0)
          return -1;
    }
  }
  if (cap && cap->qkv_out)
    memcpy(cap->qkv_out + (int64_t)pos0 * QKV, qkv, (size_t)T * QKV * sizeof(float));
  const int whole = u0 == kv->head0 && u1 == kv->head0 + kv->n_heads; /* every head of kv */
  if (u0 == u1) {
    if (whole) kv->n_filled[li] = pos0 + T;
    return 0;
  }

  /* RoPE on the units' q and k heads; their k and v into the cache */
  const int kh = u0 - kv->head0;                      /* first unit's head in the cache */
  const int nw = (u1 - u0) * Dh;                      /* cache columns of the units */
  float *kc = kv->k + (int64_t)li * kv->max_seq * W; /* [max_seq, W] */
  float *vc = kv->v + (int64_t)li * kv->max_seq * W; /* [max_seq, W] */
  for (int i = 0; i < T; i++) {
    const int p = pos0 + i;
    float *row = qkv + (int64_t)i * QKV;
    const float *cs = m->cos + (int64_t)p * d2, *sn = m->sin + (int64_t)p * d2;
    for (int h = u0 * G; h < u1 * G; h++) rope_rotate(m, row + h * Dh, cs, sn, d2);
    for (int h = u0; h < u1; h++) rope_rotate(m, row + HD + h * Dh, cs, sn, d2);
    memcpy(kc + (int64_t)p * W + kh * Dh, row + HD + u0 * Dh, (size_t)nw * sizeof(float));
    memcpy(vc + (int64_t)p * W + kh * Dh, row + HD + WA + u0 * Dh, (size_t)nw * sizeof(float));
  }
  if (whole) kv->n_filled[li] = pos0 + T;

  /* scores, mask, sinks, softmax, P.v per query head (spec 6.4) */
  const int sliding = config_layer_is_sliding(c, layer);
  const int win = c->sliding_window;
  const int kmin = sliding && pos0 - win + 1 > 0 ? pos0 - win + 1 : 0; /* first key any row sees */
  const int n = pos0 + T - kmin;                                       /* keys kmin.. */
  const float scale = model_r(m, (float)(1.0 / sqrt((double)Dh)));
  if (model_load_all(m, layer, CK_SINKS, m->vec_a, e) != 0) return -1;
  const float *sinks = m->vec_a; /* [H] */
  float *sc = m->scores;         /* [T, n] */
  float *att = m->att;           /* [T, H*Dh] */
  for (int h = u0 * G; h < u1 * G; h++) {
    const int g = h / G - kv->head0; /* its KV head in the cache */
    double t0 = log_now();
    if (!m->row_stable) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, n, Dh, 1.0f, qkv + h * Dh, QKV,
                  kc + (int64_t)kmin * W + g * Dh, W, 0.0f, sc, n);
    } else {
      /* fixed-order dots: independent of how many keys and queries share the call */
      for (int i = 0; i < T; i++)
        for (int j = 0; j < n; j++) {
          const float *q = qkv + (int64_t)i * QKV + h * Dh;
          const float *k = kc + (int64_t)(kmin + j) * W + g * Dh;
          float acc = 0.0f;
          for (int d = 0; d < Dh; d++) acc += q[d] * k[d];
          sc[(int64_t)i * n + j] = acc;
        }
    }
    m->st.attn_gemm_s += log_now() - t0;
    m->st.attn_gemm_flop += 2.0 * T * n * Dh;
    t0 = log_now();
    for (int i = 0; i < T; i++) {
      const int p = pos0 + i;
      const int lo = (sliding && p - win + 1 > 0 ? p - win + 1 : 0) - kmin;
      const int hi = p - kmin;
      float *row = sc + (int64_t)i * n;
      for (int j = lo; j <= hi; j++) row[j] = model_r(m, model_r(m, row[j]) * scale);
      softmax_with_sink(m, row, n, lo, hi, sinks[h]);
      /* o = P . v over the visible keys in ascending order: a plain loop rather than sgemm,
       * because sgemm's summation order depends on the number of keys, and a decode step
       * (few keys) must reproduce the prefill (all keys) */
      float *o = att + (int64_t)i * HD + h * Dh;
      for (int d = 0; d < Dh; d++) o[d] = 0.0f;
      for (int j = lo; j <= hi; j++) {
        const float pj = row[j];
        const float *v = vc + (int64_t)(kmin + j) * W + g * Dh;
        for (int d = 0; d < Dh; d++) o[d] += pj * v[d];
      }
      model_round_vec(m, o, Dh);
      m->st.attn_core_flop += 2.0 * (hi - lo + 1) * Dh;
    }
    m->st.attn_core_s += log_now() - t0;
  }
  return 0;
}

int model_attn_out(model *m, int layer, int T, float *x, int d0, int d1, err *e) {
  const int D = m->c.hidden;
  if (T < 1 || T > m->max_T || d0 < 0 || d1 > D || d0 > d1 || (d0 % MODEL_OUT_BLOCK && d0 != D))
    return err_set(e, EXIT_RUNTIME, "attention output: %d tokens, rows [%d, %d) of %d", T, d0, d1, D);
  if (d0 == d1) return 0;
  /* x = x + (att . out.weightᵀ + out.bias) */
  /* in MODEL_OUT_BLOCK blocks when one would be a small sgemm (as the qkv projection above) */
  float *proj = m->proj; /* [T, D] */
  const int HD = m->c.n_heads * m->c.head_dim;
  const int blocked = !model_use_direct(m, T, MODEL_BF16_DIRECT_MAX_T) &&
                      (int64_t)T * MODEL_OUT_BLOCK * HD < MODEL_SGEMM_SMALL;
  if (model_load_all(m, layer, CK_OUT_B, m->vec_b, e) != 0) return -1;
  for (int b0 = d0; b0 < d1; b0 = blocked ? b0 + MODEL_OUT_BLOCK : d1) {
    const int b1 = blocked && b0 + MODEL_OUT_BLOCK < d1 ? b0 + MODEL_OUT_BLOCK : d1;
    if (model_linear_rows(m, layer, CK_OUT_W, m->att, T, m->vec_b, b0, b1, D, proj + b0, D,
                          &m->st.attn_gemm_s, &m->st.attn_gemm_flop, e) != 0)
      return -1;
  }
  for (int i = 0; i < T; i++)
    for (int d = d0; d < d1; d++) {
      float *xp = x + (int64_t)i * D + d;
      *xp = model_r(m, *xp + proj[(int64_t)i * D + d]);
    }
  return 0;
}

int model_attn_block(model *m, int layer, model_kv *kv, int pos0, int T, float *x,
                     model_layer_capture *cap, err *e) {
  const gpt_config *c = &m->c;
  const int D = c->hidden, HD = c->n_heads * c->head_dim;
  if (model_attn_heads(m, layer, kv, pos0, T, x, 0, c->n_kv_heads, cap, e) != 0) return -1;
  if (cap && cap->sdpa_out)
    memcpy(cap->sdpa_out + (int64_t)pos0 * HD, m->att, (size_t)T * HD * sizeof(float));
  if (model_attn_out(m, layer, T, x, 0, D, e) != 0) return -1;
  if (cap && cap->hidden_after_attn)
    memcpy(cap->hidden_after_attn + (int64_t)pos0 * D, x, (size_t)T * D * sizeof(float));
  return 0;
}
