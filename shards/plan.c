/* The shard plan (plan.h): stage boundaries balanced by bytes, expert ranges, memory. */
#include "plan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"

/* Bytes of one role of one layer (the whole tensor) under config c. */
static uint64_t role_bytes(const gpt_config *c, ckpt_role r) {
  st_dtype dt;
  int64_t shape[4];
  int n = ckpt_role_shape(c, r, &dt, shape);
  uint64_t b = st_dtype_size(dt);
  for (int i = 0; i < n; i++) b *= (uint64_t)shape[i];
  return b;
}

uint64_t plan_layer_attn_bytes(const gpt_config *c) {
  static const ckpt_role roles[] = {CK_ATTN_NORM, CK_QKV_W,    CK_QKV_B,   CK_SINKS, CK_OUT_W,
                                    CK_OUT_B,     CK_MLP_NORM, CK_GATE_W, CK_GATE_B};
  uint64_t b = 0;
  for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) b += role_bytes(c, roles[i]);
  return b;
}

uint64_t plan_expert_block_bytes(const gpt_config *c) {
  return (role_bytes(c, CK_MLP1_BLOCKS) + role_bytes(c, CK_MLP2_BLOCKS)) / (uint64_t)c->n_experts;
}

double plan_experts_selected(const gpt_config *c, int n_experts, int positions) {
  const double miss = 1.0 - (double)c->top_k / (double)c->n_experts;
  return (double)n_experts * (1.0 - pow(miss, (double)positions));
}

/* Of n_experts experts of one layer, with sel of them selected: every scale and bias, the
 * blocks of the selected ones and the folios around them (at most everything). */
static uint64_t experts_read_bytes(const gpt_config *c, int n_experts, double sel) {
  const uint64_t all = plan_expert_bytes(c) * (uint64_t)n_experts;
  const uint64_t blocks = plan_expert_block_bytes(c);
  const uint64_t read = (all - blocks * (uint64_t)n_experts) +
                        (uint64_t)(sel * (double)(blocks + PLAN_EXPERT_EXTRA_RESIDENT));
  return read < all ? read : all;
}

uint64_t plan_experts_read_bytes(const gpt_config *c, int n_experts, int positions) {
  /* whole experts */
  return experts_read_bytes(c, n_experts, ceil(plan_experts_selected(c, n_experts, positions)));
}

int plan_routing_from_topk(const gpt_config *c, int n_layers, int T, int K,
                           const int32_t *const *topk, plan_routing *out, err *e) {
  memset(out, 0, sizeof *out);
  if (n_layers < 0 || n_layers > c->n_layers || T < 0 || K < 1)
    return err_set(e, EXIT_USAGE, "routing: %d layers, %d positions and top-%d do not fit the "
                   "checkpoint's %d layers", n_layers, T, K, c->n_layers);
  const size_t E = (size_t)c->n_experts;
  out->selected = calloc((size_t)(n_layers ? n_layers : 1) * E, 1);
  if (!out->selected) return err_set(e, EXIT_RUNTIME, "routing: out of memory");
  for (int l = 0; l < n_layers; l++)
    for (int64_t i = 0; i < (int64_t)T * K; i++) {
      const int32_t x = topk[l][i];
      if (x < 0 || (size_t)x >= E) {
        plan_routing_free(out);
        return err_set(e, EXIT_USAGE, "layer %d, position %lld selects expert %d; the "
                       "checkpoint has %zu experts", l, (long long)(i / K), x, E);
      }
      out->selected[(size_t)l * E + (size_t)x] = 1;
    }
  out->n_layers = n_layers;
  out->n_experts = (int)E;
  out->positions = T;
  return 0;
}

void plan_routing_free(plan_routing *r) {
  if (!r) return;
  free(r->selected);
  memset(r, 0, sizeof *r);
}

double plan_routing_selected(const gpt_config *c, const plan_routing *r, int l, int e0, int n,
                             int max_seq) {
  if (!r || l >= r->n_layers) return ceil(plan_experts_selected(c, n, max_seq));
  int k = 0;
  for (int e = e0; e < e0 + n; e++) k += r->selected[(size_t)l * (size_t)r->n_experts + (size_t)e];
  return k;
}

void plan_apply_routing(const gpt_config *c, plan *p, const plan_routing *r) {
  for (int i = 0; i < p->n_ranks; i++) {
    plan_rank *x = &p->ranks[i];
    const uint64_t expected = plan_experts_read_bytes(c, x->n_experts, p->max_seq);
    for (int l = x->layer0; l < x->layer0 + x->n_layers; l++) {
      const double sel = plan_routing_selected(c, r, l, x->expert0, x->n_experts, p->max_seq);
      x->resident_bytes = x->resident_bytes - expected + experts_read_bytes(c, x->n_experts, sel);
    }
    x->peak_bytes = x->resident_bytes + x->scratch_bytes + x->kv_bytes + x->base_bytes;
  }
}

uint64_t plan_expert_bytes(const gpt_config *c) {
  static const ckpt_role roles[] = {CK_MLP1_BLOCKS, CK_MLP1_SCALES, CK_MLP1_BIAS,
                                    CK_MLP2_BLOCKS, CK_MLP2_SCALES, CK_MLP2_BIAS};
  uint64_t b = 0;
  for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) b += role_bytes(c, roles[i]);
  return b / (uint64_t)c->n_experts;
}

/* Mirrors the allocations of model_open (model/model.c); tests/test_plan_model.c checks that
 * the two agree. */
uint64_t plan_scratch_bytes(const gpt_config *c, int max_tokens, int max_seq) {
  const uint64_t D = c->hidden, I = c->intermediate, E = c->n_experts, K = c->top_k;
  const uint64_t HD = (uint64_t)c->n_heads * c->head_dim, QKV = config_qkv_rows(c);
  const uint64_t T = max_tokens, S = max_seq, d2 = c->head_dim / 2, V = c->vocab;
  const uint64_t chunk = V < PLAN_UNEMB_CHUNK ? V : PLAN_UNEMB_CHUNK;
  uint64_t wsz = QKV * D;
  if (D * HD > wsz) wsz = D * HD;
  if (E * D > wsz) wsz = E * D;
  if (chunk * D > wsz) wsz = chunk * D;
  uint64_t vsz = QKV;
  if (D > vsz) vsz = D;
  if (E > vsz) vsz = E;
  if (2 * I > vsz) vsz = 2 * I;
  if ((uint64_t)c->n_heads > vsz) vsz = c->n_heads;
  uint64_t floats = d2 + 2 * S * d2 + wsz + 2 * vsz + T * D * 2 + T * QKV + T * HD + T * S +
                    T * D + T * E + 2 * T * K + T * K * D + 2 * I * D + D * I + T * D +
                    T * 2 * I + T * I + T * D;
  uint64_t ints = T * K + E + (E + 1) + T * K;
  return 4 * (floats + ints);
}

uint64_t plan_exchange_bytes(const gpt_config *c, int max_tokens, int n_groups, int leader,
                             int has_head, int64_t head_rows) {
  const uint64_t T = max_tokens, D = c->hidden, K = c->top_k, E = c->n_experts, G = n_groups;
  const uint64_t HD = (uint64_t)c->n_heads * c->head_dim, QKV = config_qkv_rows(c);
  uint64_t words = E + 1 + G; /* expert_group, hdr (own: E bytes, below) */
  words += 4 * (G + 1) + 2 * (G + 1) + 2 * G; /* split boundaries (vrow: int64), counts */
  if (leader) {
    words += 2 * T * D + T * E + 3 * T * K + T * K * D + G * T + 4 * G;
    if (G > 1) words += (G - 1) * T * D + (G - 1) * T * K + T * K * D;
    if (has_head) words += c->vocab;
  } else {
    words += T * D + T * K + 2 * T * K * D;
    words += T * D + (uint64_t)head_rows; /* hidden state, logits of its vocabulary rows */
  }
  if (G > 1) {
    uint64_t w = HD > QKV ? HD : QKV;
    if (D > w) w = D;
    words += 2 * T * w; /* packed and gathered blocks of the attention split */
  }
  return 4 * words + E;
}

/* The model's crossovers (MODEL_BF16_DIRECT_MAX_T and MODEL_MX4_DIRECT_MAX_T in
 * model/model_impl.h; tests/test_plan_model.c checks that the plan follows them): a bf16 matrix
 * multiplied for at most this many tokens, or an expert for at most this many tokens routed to
 * it, is read in place by the direct kernels, so the conversion buffer and the expert panels
 * are never written (their pages stay unallocated). The prediction assumes the default kernel
 * choice (GPTOSS_KERNELS unset). */
#define PLAN_BF16_DIRECT_MAX_T 128
#define PLAN_MX4_DIRECT_MAX_T 128

/* fp32 bytes of the two decoded expert panels (model_open's panel1 [2I, D] + panel2 [D, I]). */
static uint64_t panel_bytes(const gpt_config *c) {
  return 4 * 3 * (uint64_t)c->intermediate * (uint64_t)c->hidden;
}

/* fp32 bytes of model_open's conversion buffer (m->w): all of it (its allocation). */
static uint64_t convert_alloc_bytes(const gpt_config *c) {
  const uint64_t D = c->hidden, HD = (uint64_t)c->n_heads * c->head_dim, V = c->vocab;
  uint64_t w = config_qkv_rows(c) * D;
  if (D * HD > w) w = D * HD;
  if ((uint64_t)c->n_experts * D > w) w = (uint64_t)c->n_experts * D;
  const uint64_t chunk = V < PLAN_UNEMB_CHUNK ? V : PLAN_UNEMB_CHUNK;
  if (chunk * D > w) w = chunk * D;
  return 4 * w;
}

/* The part of it a rank writes: the largest bf16 matrix block it converts. Group g of G: the
 * q/k/v rows of its attention units (one block of all rows with G = 1, else the q rows are
 * the largest), its output-projection rows, the router (leader), an unembedding chunk (last
 * stage). Ranks that convert nothing never touch the buffer, so its pages stay unallocated. */
static uint64_t convert_bytes(const gpt_config *c, int G, int g, int leader, int head) {
  const uint64_t D = c->hidden, HD = (uint64_t)c->n_heads * c->head_dim, V = c->vocab;
  const uint64_t Gq = (uint64_t)(c->n_heads / c->n_kv_heads), Dh = c->head_dim;
  int u0, u1, d0, d1;
  int64_t v0, v1;
  plan_group_share(c, G, g, &u0, &u1, &d0, &d1, &v0, &v1);
  uint64_t w = 0;
  if (u0 < u1) w = G == 1 ? config_qkv_rows(c) * D : (uint64_t)(u1 - u0) * Gq * Dh * D;
  if ((uint64_t)(d1 - d0) * HD > w) w = (uint64_t)(d1 - d0) * HD;
  if (leader && (uint64_t)c->n_experts * D > w) w = (uint64_t)c->n_experts * D;
  const uint64_t chunk = V < PLAN_UNEMB_CHUNK ? V : PLAN_UNEMB_CHUNK;
  if (head && v0 < v1 && chunk * D > w) w = chunk * D;
  return 4 * w;
}

/* Checkpoint bytes of one layer's attention and router that group g of G reads: the attention
 * norm (leader or units), the q/k/v rows of its units with the qkv bias and the sinks, its
 * output-projection rows with the out bias, and (leader) the mlp norm and the router. */
static uint64_t group_attn_bytes(const gpt_config *c, int G, int g, int leader) {
  const uint64_t QKV = config_qkv_rows(c), D = c->hidden;
  const uint64_t Gq = (uint64_t)(c->n_heads / c->n_kv_heads), Dh = c->head_dim;
  int u0, u1, d0, d1;
  int64_t v0, v1;
  plan_group_share(c, G, g, &u0, &u1, &d0, &d1, &v0, &v1);
  uint64_t b = 0;
  if (leader || u0 < u1) b += role_bytes(c, CK_ATTN_NORM);
  if (u0 < u1)
    b += role_bytes(c, CK_QKV_B) + role_bytes(c, CK_SINKS) +
         role_bytes(c, CK_QKV_W) / QKV * (uint64_t)(u1 - u0) * (Gq + 2) * Dh;
  if (d0 < d1) b += role_bytes(c, CK_OUT_B) + role_bytes(c, CK_OUT_W) / D * (uint64_t)(d1 - d0);
  if (leader) b += role_bytes(c, CK_MLP_NORM) + role_bytes(c, CK_GATE_W) + role_bytes(c, CK_GATE_B);
  return b;
}

void plan_group_share(const gpt_config *c, int G, int g, int *u0, int *u1, int *d0, int *d1,
                      int64_t *v0, int64_t *v1) {
  const int64_t U = c->n_kv_heads, D = c->hidden, V = c->vocab;
  const int64_t chunks = (V + PLAN_UNEMB_CHUNK - 1) / PLAN_UNEMB_CHUNK;
  *u0 = (int)(U * g / G);
  *u1 = (int)(U * (g + 1) / G);
  const int64_t blocks = (D + PLAN_OUT_BLOCK - 1) / PLAN_OUT_BLOCK;
  *d0 = (int)(blocks * g / G * PLAN_OUT_BLOCK);
  *d1 = (int)(blocks * (g + 1) / G * PLAN_OUT_BLOCK);
  if (*d0 > D) *d0 = (int)D;
  if (*d1 > D) *d1 = (int)D;
  *v0 = chunks * g / G * PLAN_UNEMB_CHUNK;
  *v1 = chunks * (g + 1) / G * PLAN_UNEMB_CHUNK;
  if (*v0 > V) *v0 = V;
  if (*v1 > V) *v1 = V;
}

uint64_t plan_kv_bytes(const gpt_config *c, int n_layers, int max_seq) {
  return 2ull * 4ull * (uint64_t)n_layers * (uint64_t)max_seq * (uint64_t)c->n_kv_heads *
         (uint64_t)c->head_dim;
}

/* Split L layers into S contiguous stages minimising the largest stage's bytes, where stage 0
 * also carries `first` bytes and the last stage `last` bytes. Small DP (L, S <= 1024). */
static void balance_stages(int L, int S, uint64_t layer_bytes, uint64_t first, uint64_t last,
                          int *layer0) {
  /* Binary search on the largest stage cost; for a given cap, filling each stage greedily from
   * the front (keeping one layer for every later stage) succeeds iff some split fits. */
  uint64_t lo = 0, hi = first + last + (uint64_t)L * layer_bytes;
  while (lo < hi) {
    uint64_t cap = lo + (hi - lo) / 2;
    int l = 0, ok = 1;
    for (int s = 0; s < S && ok; s++) {
      uint64_t extra = (s == 0 ? first : 0) + (s == S - 1 ? last : 0);
      int remaining_stages = S - s - 1;
      int n = 0;
      while (l + n < L - remaining_stages && extra + (uint64_t)(n + 1) * layer_bytes <= cap) n++;
      if (s == S - 1) n = L - l;
      if (n < 1 || extra + (uint64_t)n * layer_bytes > cap) ok = 0;
      l += n;
    }
    if (ok && l == L)
      hi = cap;
    else
      lo = cap + 1;
  }
  /* replay at the optimum */
  int l = 0;
  for (int s = 0; s < S; s++) {
    layer0[s] = l;
    uint64_t extra = (s == 0 ? first : 0) + (s == S - 1 ? last : 0);
    int remaining_stages = S - s - 1;
    int n = 0;
    while (l + n < L - remaining_stages && extra + (uint64_t)(n + 1) * layer_bytes <= lo) n++;
    if (s == S - 1) n = L - l;
    l += n;
  }
  layer0[S] = L;
}

int plan_make(const gpt_config *c, int n_ranks, int n_stages, int max_tokens, int max_seq,
              plan *out, err *e) {
  memset(out, 0, sizeof *out);
  if (n_ranks < 1) return err_set(e, EXIT_USAGE, "plan: %d ranks: need at least 1", n_ranks);
  if (max_tokens < 1 || max_seq < max_tokens)
    return err_set(e, EXIT_USAGE, "plan: need 1 <= tokens per call (%d) <= positions (%d)",
                   max_tokens, max_seq);
  if (n_stages == 0) n_stages = plan_default_stages(c, n_ranks, max_tokens, max_seq);
  if (n_stages == 0) {
    int below, above;
    plan_nearest_valid(c, n_ranks, &below, &above);
    char near[96];
    if (below && above) snprintf(near, sizeof near, "%d and %d", below, above);
    else snprintf(near, sizeof near, "%d", below ? below : above);
    return err_set(e, EXIT_USAGE, "plan: %d ranks have no split for %d layers x %d experts (ranks = "
                   "stages x expert groups with at most %d stages and %d groups): the nearest rank "
                   "counts that have one are %s", n_ranks, c->n_layers, c->n_experts,
                   c->n_layers < PLAN_MAX_STAGES ? c->n_layers : PLAN_MAX_STAGES, c->n_experts, near);
  }
  if (n_stages < 1 || n_stages > c->n_layers || n_stages > PLAN_MAX_STAGES)
    return err_set(e, EXIT_USAGE, "plan: %d stages for %d layers: need 1..%d stages", n_stages,
                   c->n_layers, c->n_layers < PLAN_MAX_STAGES ? c->n_layers : PLAN_MAX_STAGES);
  if (n_ranks % n_stages != 0)
    return err_set(e, EXIT_USAGE, "plan: %d ranks cannot form %d stages (ranks = stages x "
                   "expert groups, so the stage count must divide the rank count)", n_ranks,
                   n_stages);
  const int G = n_ranks / n_stages;
  if (G > c->n_experts)
    return err_set(e, EXIT_USAGE, "plan: %d ranks in %d stages give %d expert groups per stage, "
                   "more than the %d experts (use more stages or fewer ranks)", n_ranks,
                   n_stages, G, c->n_experts);
  out->ranks = calloc((size_t)n_ranks, sizeof *out->ranks);
  if (!out->ranks) return err_set(e, EXIT_RUNTIME, "plan: out of memory");
  out->n_ranks = n_ranks;
  out->n_stages = n_stages;
  out->n_groups = G;
  out->max_tokens = max_tokens;
  out->max_seq = max_seq;

  const uint64_t V = c->vocab, D = c->hidden;
  const uint64_t embed = 2 * V * D, head = 2 * V * D + 2 * D;
  const uint64_t attn = plan_layer_attn_bytes(c), expert = plan_expert_bytes(c);
  const uint64_t Dh = c->head_dim;
  const uint64_t layer = attn + expert * (uint64_t)c->n_experts;
  balance_stages(c->n_layers, n_stages, layer, embed, head, out->stage_layer0);

  const uint64_t scratch = plan_scratch_bytes(c, max_tokens, max_seq);
  /* only the looked-up rows of the embedding are read (at most max_seq distinct ids) */
  const uint64_t rows = (uint64_t)max_seq < V ? (uint64_t)max_seq : V;
  const uint64_t embed_resident = rows * PLAN_EMBED_ROW_RESIDENT < embed ? rows * PLAN_EMBED_ROW_RESIDENT : embed;
  for (int r = 0; r < n_ranks; r++) {
    plan_rank *pr = &out->ranks[r];
    pr->rank = r;
    pr->stage = r / G;
    pr->group = r % G;
    pr->leader = pr->group == 0;
    pr->layer0 = out->stage_layer0[pr->stage];
    pr->n_layers = out->stage_layer0[pr->stage + 1] - pr->layer0;
    pr->expert0 = (int)((int64_t)pr->group * c->n_experts / G);
    pr->n_experts = (int)((int64_t)(pr->group + 1) * c->n_experts / G) - pr->expert0;
    pr->has_embedding = pr->leader && pr->stage == 0;
    pr->has_head = pr->leader && pr->stage == n_stages - 1;
    /* the attention and the head are shared by the stage's groups (plan_group_share) */
    int u0, u1, d0, d1;
    int64_t v0, v1;
    plan_group_share(c, G, pr->group, &u0, &u1, &d0, &d1, &v0, &v1);
    const int last_stage = pr->stage == n_stages - 1;
    const uint64_t head_share = last_stage ? 2 * D + 2 * D * (uint64_t)(v1 - v0) : 0;
    pr->mapped_global_bytes = (pr->has_embedding ? embed : 0) + head_share;
    pr->mapped_attn_bytes = group_attn_bytes(c, G, pr->group, pr->leader) * (uint64_t)pr->n_layers;
    pr->mapped_expert_bytes = expert * (uint64_t)pr->n_experts * (uint64_t)pr->n_layers;
    pr->mapped_bytes = pr->mapped_global_bytes + pr->mapped_attn_bytes + pr->mapped_expert_bytes;
    pr->resident_bytes = pr->mapped_bytes - (pr->has_embedding ? embed - embed_resident : 0);
    /* the MXFP4 blocks of an expert are read only when a token selects it (the scales and biases
     * of every owned expert are checked at load) */
    pr->resident_bytes -= pr->mapped_expert_bytes -
                          plan_experts_read_bytes(c, pr->n_experts, max_seq) * (uint64_t)pr->n_layers;
    /* a call converts only above the crossover; an expert never gets more than max_tokens */
    const int convert = max_tokens > PLAN_BF16_DIRECT_MAX_T, decode = max_tokens > PLAN_MX4_DIRECT_MAX_T;
    pr->scratch_bytes = scratch - convert_alloc_bytes(c) - panel_bytes(c) +
                        (convert ? convert_bytes(c, G, pr->group, pr->leader, last_stage) : 0) +
                        (decode ? panel_bytes(c) : 0) +
                        plan_exchange_bytes(c, max_tokens, G, pr->leader, pr->has_head,
                                            !pr->leader && last_stage ? v1 - v0 : 0);
    /* the KV heads of its units (the leader's cache exists even without units) */
    pr->kv_bytes = pr->n_layers > 0 && (pr->leader || u0 < u1)
                       ? 2ull * 4ull * (uint64_t)pr->n_layers * (uint64_t)max_seq *
                             (uint64_t)(u1 - u0) * Dh
                       : 0;
    pr->base_bytes = PLAN_PROCESS_BYTES;
    pr->peak_bytes = pr->resident_bytes + pr->scratch_bytes + pr->kv_bytes + pr->base_bytes;
    pr->anon_bytes = pr->scratch_bytes + pr->kv_bytes + PLAN_PROCESS_ANON_BYTES;
  }
  return 0;
}

void plan_free(plan *p) {
  if (!p) return;
  free(p->ranks);
  p->ranks = NULL;
}

int plan_rank_count_valid(const gpt_config *c, int n_ranks) {
  for (int s = 1; s <= n_ranks && s <= c->n_layers && s <= PLAN_MAX_STAGES; s++)
    if (n_ranks % s == 0 && n_ranks / s <= c->n_experts) return 1;
  return 0;
}

void plan_nearest_valid(const gpt_config *c, int n_ranks, int *below, int *above) {
  const int64_t max = (int64_t)(c->n_layers < PLAN_MAX_STAGES ? c->n_layers : PLAN_MAX_STAGES) * c->n_experts;
  *below = *above = 0;
  for (int p = n_ranks - 1; p >= 1 && !*below; p--)
    if (plan_rank_count_valid(c, p)) *below = p;
  for (int64_t p = (int64_t)n_ranks + 1; p <= max && p <= INT32_MAX && !*above; p++)
    if (plan_rank_count_valid(c, (int)p)) *above = (int)p;
}

int plan_default_stages(const gpt_config *c, int n_ranks, int max_tokens, int max_seq) {
  int best = 0;
  uint64_t best_peak = UINT64_MAX;
  for (int s = 1; s <= n_ranks && s <= c->n_layers && s <= PLAN_MAX_STAGES; s++) {
    if (n_ranks % s != 0 || n_ranks / s > c->n_experts) continue;
    plan p;
    err e = {0};
    if (plan_make(c, n_ranks, s, max_tokens, max_seq, &p, &e) != 0) continue;
    uint64_t peak = 0;
    for (int r = 0; r < n_ranks; r++)
      if (p.ranks[r].peak_bytes > peak) peak = p.ranks[r].peak_bytes;
    plan_free(&p);
    if (peak < best_peak) {
      best_peak = peak;
      best = s;
    }
  }
  return best;  /* 0 when no split is valid: plan_make then reports why for 1 stage */
}

int plan_parity_unit_rank(const plan *p, int layer) {
  int s = 0;
  while (s + 1 < p->n_stages && p->stage_layer0[s + 1] <= layer) s++;
  return s * p->n_groups + (layer - p->stage_layer0[s]) % p->n_groups;
}

/* Resident bytes of ONNX Runtime running one sub-model of one layer (plus the head) on T
 * positions, without prepacking and without the CPU arena (ort.h), as measured at 120b widths
 * (docs/scaling.md):
 * - the bf16 dense tensors (attention, router, norms) are folded to fp32 at session creation, and
 *   the bf16 initializer and its fp32 copy are both resident: 3 times their bf16 bytes; the
 *   unembedding, folded chunk by chunk: 3.5 times (measured 3.43);
 * - the MXFP4 experts stay in the mapped data file; a run gathers the blocks, scales and biases
 *   of the experts its tokens select only (plan_experts_selected, or the count of a known
 *   routing), each with PLAN_EXPERT_EXTRA_RESIDENT beyond its ranges;
 * - decoding a selected expert to fp32 inside the graph: two [2I, D] fp32 temporaries (what is
 *   left of the largest measured peak of a layer, 1.7, rounded up: the plan is not to be
 *   exceeded; smaller peaks were measured where the kernel reclaimed mapped file pages);
 * - RoPE caches, a few [T, D] / [T, I] rows per node, the logits [T, V] twice (ORT's output and
 *   the trace's copy). */
static uint64_t unit_ort_bytes(const gpt_config *c, int T, int head, double selected) {
  const uint64_t D = c->hidden, V = c->vocab, I = c->intermediate, t = (uint64_t)T;
  const uint64_t dense = 3 * plan_layer_attn_bytes(c) + (head ? 7 * (2 * V * D + 2 * D) / 2 : 0);
  const uint64_t all = plan_expert_bytes(c) * (uint64_t)c->n_experts;
  const uint64_t sel = (uint64_t)(selected * (double)(plan_expert_bytes(c) + PLAN_EXPERT_EXTRA_RESIDENT));
  const uint64_t experts = sel < all ? sel : all;
  const uint64_t decode = 2 * 4 * 2 * I * D;
  const uint64_t rope = 2 * 4 * t * (uint64_t)(c->head_dim / 2);
  const uint64_t act = 4 * t * (16 * D + 8 * I * (uint64_t)c->top_k) + (head ? 2 * 4 * t * V : 0);
  return dense + experts + decode + rope + act;
}

/* One layer's tensors of a trace, per position (parity/trace.c layer_sets), in bytes. */
static uint64_t trace_layer_bytes(const gpt_config *c) {
  const uint64_t D = c->hidden, K = c->top_k, I = c->intermediate;
  return 4 * ((uint64_t)c->n_experts + 3 * K + 4 * D + (uint64_t)config_qkv_rows(c) +
              (uint64_t)c->n_heads * c->head_dim + 2 * K * I + K * I);
}

uint64_t plan_trace_bytes(const gpt_config *c, int T, int n_layers) {
  const uint64_t t = (uint64_t)T, D = c->hidden;
  return t * (4 * (1 + 2 * D + (uint64_t)c->vocab) + (uint64_t)n_layers * trace_layer_bytes(c));
}

/* What tracing adds to rank r's anonymous memory in the reference forward pass of `parity`
 * (mpi/fwd_job.c, dfwd_init with tracing), besides rank 0's whole trace: a stage leader captures
 * its layers' tensors for the T positions (the head's rank also every position's logits and the
 * final norm) into a trace of its own, of which only those parts are written; with expert groups
 * the leader receives the other groups' mlp1 and SwiGLU rows of a call's tokens, and a
 * non-leader of the last stage keeps its vocabulary rows' logits of every token of a call. */
static uint64_t trace_capture_bytes(const gpt_config *c, const plan *p, int r, int T, int n_layers) {
  const plan_rank *x = &p->ranks[r];
  const uint64_t t = (uint64_t)T, calls = (uint64_t)p->max_tokens, D = c->hidden;
  const uint64_t K = c->top_k, I = c->intermediate, G = (uint64_t)p->n_groups;
  uint64_t b = 0;
  if (x->leader && r != 0) {
    const int last = x->layer0 + x->n_layers < n_layers ? x->layer0 + x->n_layers : n_layers;
    if (last > x->layer0) b += t * (uint64_t)(last - x->layer0) * trace_layer_bytes(c);
    if (x->has_head) b += 4 * t * ((uint64_t)c->vocab + D);
  }
  if (x->leader && G > 1) b += 4 * calls * K * 3 * I;
  if (!x->leader && x->stage == p->n_stages - 1) {
    int u0, u1, d0, d1;
    int64_t v0, v1;
    plan_group_share(c, p->n_groups, x->group, &u0, &u1, &d0, &d1, &v0, &v1);
    b += 4 * (calls - 1) * (uint64_t)(v1 - v0);
  }
  return b;
}

void plan_parity(const gpt_config *c, const plan *p, int n_layers, int T, const plan_routing *routing,
                 plan_parity_rank *out) {
  memset(out, 0, (size_t)p->n_ranks * sizeof *out);
  const uint64_t tr = plan_trace_bytes(c, T, n_layers);
  for (int r = 0; r < p->n_ranks; r++) {
    const uint64_t add = (r == 0 ? tr : 0) + trace_capture_bytes(c, p, r, T, n_layers);
    out[r].forward_bytes = p->ranks[r].peak_bytes + add;
    out[r].forward_anon_bytes = p->ranks[r].anon_bytes + add;
  }
  for (int l = 0; l < n_layers; l++) {
    plan_parity_rank *x = &out[plan_parity_unit_rank(p, l)];
    const int head = l == n_layers - 1;
    const uint64_t ub = plan_layer_attn_bytes(c) + plan_expert_bytes(c) * (uint64_t)c->n_experts +
                        (head ? 2 * (uint64_t)c->vocab * c->hidden + 2 * (uint64_t)c->hidden : 0) +
                        2 * 4 * (uint64_t)T * (uint64_t)(c->head_dim / 2);
    /* the expectation as it was measured against: not rounded up */
    const double sel = routing && l < routing->n_layers
                           ? plan_routing_selected(c, routing, l, 0, c->n_experts, T)
                           : plan_experts_selected(c, c->n_experts, T);
    const uint64_t ob = PLAN_PROCESS_BYTES + PLAN_ORT_BASE_BYTES + unit_ort_bytes(c, T, head, sel) +
                        (plan_parity_unit_rank(p, l) == 0 ? tr : 0);
    x->n_units++;
    x->has_head |= head;
    if (ub > x->unit_bytes) x->unit_bytes = ub;
    if (ob > x->ort_bytes) x->ort_bytes = ob;
  }
  for (int r = 0; r < p->n_ranks; r++)
    out[r].peak_bytes = out[r].forward_bytes > out[r].ort_bytes ? out[r].forward_bytes : out[r].ort_bytes;
}
