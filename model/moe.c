/* moe.c: the MoE block of one layer (spec section 7): RMSNorm, router, top-k with the ONNX tie
 * rule, softmax over the selected logits, expert MLPs (for an expert with few tokens the direct
 * MXFP4 kernel on the mapping; otherwise MXFP4 decoded into fp32 panels and one sgemm per
 * expert for all its tokens), SwiGLU with clamps, and the weighted sum in fixed slot order. */
#include <math.h>
#include <string.h>

#include "log.h"
#include "mx4.h"
#include "model_impl.h"

/* Top-k of one row of E logits: larger value first, ties to the lower index. idx/val: [K]. */
static void topk_row(const float *lg, int E, int K, int32_t *idx, float *val) {
  for (int j = 0; j < K; j++) {
    int best = -1;
    for (int x = 0; x < E; x++) {
      int taken = 0;
      for (int q = 0; q < j; q++) taken |= idx[q] == x;
      if (taken) continue;
      /* strict > keeps the lower index on ties; a NaN never beats a number */
      if (best < 0 || lg[x] > lg[best] || (isnan(lg[best]) && !isnan(lg[x]))) best = x;
    }
    idx[j] = best;
    val[j] = lg[best];
  }
}

int model_router(model *m, int layer, const float *x, int T, float *t, float *logits,
                 int32_t *idx, float *val, float *w, err *e) {
  const int E = m->c.n_experts, K = m->c.top_k;
  if (model_load_all(m, layer, CK_MLP_NORM, m->vec_a, e) != 0) return -1;
  model_rmsnorm(m, x, T, m->vec_a, t);
  if (model_load_all(m, layer, CK_GATE_B, m->vec_b, e) != 0 ||
      model_linear_w(m, layer, CK_GATE_W, t, T, m->vec_b, E, logits, E, NULL, NULL, e) != 0)
    return -1;
  for (int i = 0; i < T; i++) {
    int32_t *ir = idx + (int64_t)i * K;
    float *vr = val + (int64_t)i * K, *wr = w + (int64_t)i * K;
    topk_row(logits + (int64_t)i * E, E, K, ir, vr);
    /* softmax over the K selected logits (vr[0] is their maximum) */
    float z = 0.0f;
    for (int j = 0; j < K; j++) {
      wr[j] = expf(vr[j] - vr[0]);
      z += wr[j];
    }
    const float inv = 1.0f / z;
    for (int j = 0; j < K; j++) wr[j] = model_r(m, wr[j] * inv);
  }
  return 0;
}

/* u[I] = SwiGLU(h[2I]) with interleaved gate (even) / linear (odd) rows (spec 7.3). */
static void swiglu_row(const model *m, const float *h, int I, float *u) {
  const float limit = model_r(m, (float)m->c.swiglu_limit);
  const float alpha = model_r(m, 1.702f); /* bf16: the CPU reference rounds the scalar too */
  for (int j = 0; j < I; j++) {
    float glu = h[2 * j], lin = h[2 * j + 1];
    glu = glu > limit ? limit : glu;
    lin = lin > limit ? limit : lin < -limit ? -limit : lin;
    const float a = model_r(m, alpha * glu);
    const float sg = model_r(m, 1.0f / (1.0f + expf(-a)));
    const float og = model_r(m, glu * sg);
    u[j] = model_r(m, og * model_r(m, lin + 1.0f));
  }
}

/* y[n, R] = x[n, C] . W[ex]ᵀ for expert ex's MXFP4 matrix (blocks, scales) of R rows: the
 * direct kernel from the mapping (then x is in MXFP4 pair order, kern_mx4_pair_x), or the rows
 * decoded into panel [R, C] and sgemm (x in column order). Timed and counted. */
static int expert_matmul(model *m, int layer, ckpt_role blocks, ckpt_role scales, int ex,
                         int direct, const float *x, int n, int64_t C, int64_t R, float *panel,
                         float *y, err *e) {
  const ckpt_tensor *b = ckpt_tensor_find(m->ck, layer, blocks);
  const ckpt_tensor *s = ckpt_tensor_find(m->ck, layer, scales);
  if (!b || !s) return err_set(e, EXIT_RUNTIME, "layer %d: MXFP4 expert tensors missing", layer);
  if (b->n_dims != 4 || b->shape[1] != R || b->shape[2] * 32 != C || ex < 0 || ex >= b->shape[0])
    return err_set(e, EXIT_RUNTIME, "%s: expert %d of [%lld, %lld] x %lld columns expected", b->name,
                   ex, (long long)b->shape[0], (long long)R, (long long)C);
  const double bytes = (double)R * (C / 2 + C / 32);
  double t0 = log_now();
  if (direct) {
    const int64_t G = C / 32;
    kern_mx4_nt_par(m->isa, (const uint8_t *)ckpt_tensor_data(b) + (int64_t)ex * R * G * 16,
                    (const uint8_t *)ckpt_tensor_data(s) + (int64_t)ex * R * G, R, C, x, n, y, R);
    m->st.direct_mx4_bytes += bytes;
  } else {
    if (mx4_decode_expert_rows(b, s, ex, 0, R, panel, e) != 0) return -1;
    m->st.mx4_decode_s += log_now() - t0;
    m->st.mx4_decode_bytes += bytes;
    t0 = log_now();
    model_gemm_nt(m, n, (int)R, (int)C, x, (int)C, panel, (int)C, y, (int)R);
  }
  m->st.expert_gemm_s += log_now() - t0;
  m->st.expert_gemm_flop += 2.0 * n * R * C;
  return 0;
}

int model_experts(model *m, int layer, const float *t, int T, const int32_t *idx,
                  const uint8_t *own, float *y, float *mlp1_out, float *swiglu_out, err *e) {
  const int D = m->c.hidden, I = m->c.intermediate, E = m->c.n_experts, K = m->c.top_k;
  if (T < 1 || T > m->max_T)
    return err_set(e, EXIT_RUNTIME, "experts: %d tokens in one call (scratch holds %d)", T,
                   m->max_T);

  /* group the owned (token, slot) pairs by expert, tokens ascending within an expert */
  memset(m->ex_count, 0, (size_t)E * sizeof(int));
  for (int s = 0; s < T * K; s++) {
    const int ex = idx[s];
    if (ex < 0 || ex >= E)
      return err_set(e, EXIT_RUNTIME, "experts: layer %d: slot %d routes to expert %d of %d",
                     layer, s, ex, E);
    if (!own || own[ex]) m->ex_count[ex]++;
  }
  m->ex_start[0] = 0;
  for (int ex = 0; ex < E; ex++) m->ex_start[ex + 1] = m->ex_start[ex] + m->ex_count[ex];
  memset(m->ex_count, 0, (size_t)E * sizeof(int));
  for (int s = 0; s < T * K; s++) {
    const int ex = idx[s];
    if (!own || own[ex]) m->ex_slot[m->ex_start[ex] + m->ex_count[ex]++] = s;
  }

  float *in = m->ex_in;   /* [n, D] tokens routed to ex (pair order for the direct kernel) */
  float *h = m->ex_h;     /* [n, 2I], then u in pair order for the direct kernel */
  float *u = m->ex_u;     /* [n, I] */
  float *out = m->ex_y;   /* [n, D] */
  float *b1 = m->vec_a;   /* [2I] */
  float *b2 = m->vec_b;   /* [D] */
  for (int ex = 0; ex < E; ex++) {
    const int n = m->ex_count[ex];
    if (n == 0) continue;
    const int *slots = m->ex_slot + m->ex_start[ex];
    /* The kernel depends on n, the tokens routed to ex: the same for every rank count. The
     * direct kernel wants its input in pair order: the rows are gathered that way. */
    const int direct = model_use_direct(m, n, MODEL_MX4_DIRECT_MAX_T);
    for (int r = 0; r < n; r++) {
      const float *src = t + (int64_t)(slots[r] / K) * D;
      if (direct) kern_mx4_pair_x(src, D, 1, D, in + (int64_t)r * D);
      else memcpy(in + (int64_t)r * D, src, (size_t)D * sizeof(float));
    }

    /* h = W1[ex] . t + b1[ex]; the reference rounds after the matmul and after the bias */
    if (model_load_rows(m, layer, CK_MLP1_BIAS, ex, 1, b1, e) != 0 ||
        expert_matmul(m, layer, CK_MLP1_BLOCKS, CK_MLP1_SCALES, ex, direct, in, n, D, 2 * (int64_t)I,
                      m->panel1, h, e) != 0)
      return -1;
    for (int r = 0; r < n; r++) {
      float *hr = h + (int64_t)r * 2 * I;
      for (int o = 0; o < 2 * I; o++) hr[o] = model_r(m, model_r(m, hr[o]) + b1[o]);
      swiglu_row(m, hr, I, u + (int64_t)r * I);
      if (mlp1_out) memcpy(mlp1_out + (int64_t)slots[r] * 2 * I, hr, (size_t)2 * I * sizeof(float));
      if (swiglu_out)
        memcpy(swiglu_out + (int64_t)slots[r] * I, u + (int64_t)r * I, (size_t)I * sizeof(float));
    }

    /* y = W2[ex] . u + b2[ex]; for the direct kernel u in pair order, into h (no longer used) */
    const float *u2 = u;
    if (direct) {
      kern_mx4_pair_x(u, I, n, I, h);
      u2 = h;
    }
    if (model_load_rows(m, layer, CK_MLP2_BIAS, ex, 1, b2, e) != 0 ||
        expert_matmul(m, layer, CK_MLP2_BLOCKS, CK_MLP2_SCALES, ex, direct, u2, n, I, D, m->panel2,
                      out, e) != 0)
      return -1;
    if (direct) m->st.experts_direct++;
    else m->st.experts_decoded++;
    for (int r = 0; r < n; r++) {
      const float *orow = out + (int64_t)r * D;
      float *yr = y + (int64_t)slots[r] * D;
      for (int o = 0; o < D; o++) yr[o] = model_r(m, model_r(m, orow[o]) + b2[o]);
    }
  }
  return 0;
}

void model_moe_combine(const model *m, float *x, int T, const float *y, const float *w) {
  const int D = m->c.hidden, K = m->c.top_k;
  for (int i = 0; i < T; i++)
    for (int d = 0; d < D; d++) {
      float acc = 0.0f;
      for (int j = 0; j < K; j++)
        acc += w[(int64_t)i * K + j] * y[((int64_t)i * K + j) * D + d];
      float *xp = x + (int64_t)i * D + d;
      *xp = model_r(m, *xp + model_r(m, acc));
    }
}

int model_moe_block(model *m, int layer, int pos0, int T, float *x, model_layer_capture *cap,
                    err *e) {
  const int D = m->c.hidden, E = m->c.n_experts, K = m->c.top_k, I = m->c.intermediate;
  if (T < 1 || T > m->max_T)
    return err_set(e, EXIT_RUNTIME, "moe: %d tokens in one call (scratch holds %d)", T, m->max_T);
  float *t = m->t; /* [T, D] */
  if (model_router(m, layer, x, T, t, m->rlogits, m->idx, m->val, m->wts, e) != 0) return -1;
  float *mlp1 = NULL, *sw = NULL;
  if (cap) {
    const int64_t p = pos0;
    if (cap->mlp_norm_out) memcpy(cap->mlp_norm_out + p * D, t, (size_t)T * D * sizeof(float));
    if (cap->router_logits)
      memcpy(cap->router_logits + p * E, m->rlogits, (size_t)T * E * sizeof(float));
    if (cap->topk_indices) memcpy(cap->topk_indices + p * K, m->idx, (size_t)T * K * sizeof(int32_t));
    if (cap->topk_values) memcpy(cap->topk_values + p * K, m->val, (size_t)T * K * sizeof(float));
    if (cap->topk_weights) memcpy(cap->topk_weights + p * K, m->wts, (size_t)T * K * sizeof(float));
    if (cap->mlp1_out) mlp1 = cap->mlp1_out + p * K * 2 * I;
    if (cap->swiglu_out) sw = cap->swiglu_out + p * K * I;
  }
  if (model_experts(m, layer, t, T, m->idx, NULL, m->y, mlp1, sw, e) != 0) return -1;
  model_moe_combine(m, x, T, m->y, m->wts);
  if (cap && cap->hidden_after_mlp)
    memcpy(cap->hidden_after_mlp + (int64_t)pos0 * D, x, (size_t)T * D * sizeof(float));
  return 0;
}
