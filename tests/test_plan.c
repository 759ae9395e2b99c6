/* plan: ownership is a partition of the checkpoint (but for the small vectors every rank sharing
 * a stage's attention or head reads), stages are balanced, bad splits refused. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "plan.h"
#include "testutil.h"

static uint64_t role_bytes(const gpt_config *c, ckpt_role r) {
  st_dtype dt;
  int64_t shape[4];
  int n = ckpt_role_shape(c, r, &dt, shape);
  uint64_t b = st_dtype_size(dt);
  for (int i = 0; i < n; i++) b *= (uint64_t)shape[i];
  return b;
}

static void check_partition(const char *what, const gpt_config *c, int P, int S) {
  plan p;
  err e = {0};
  int rc = plan_make(c, P, S, 64, 80, &p, &e);
  TU_CHECK(rc == 0, "%s P=%d S=%d: %s", what, P, S, e.msg);
  if (rc != 0) return;
  ckpt_summary sum;
  ckpt_summary_from_config(c, &sum);
  uint64_t mapped = 0;
  int n_embed = 0, n_head = 0;
  for (int s = 0; s < p.n_stages; s++)
    TU_CHECK(p.stage_layer0[s + 1] > p.stage_layer0[s], "%s: stage %d is empty", what, s);
  TU_CHECK(p.stage_layer0[0] == 0 && p.stage_layer0[p.n_stages] == c->n_layers, "%s: layers", what);
  for (int r = 0; r < P; r++) {
    const plan_rank *x = &p.ranks[r];
    mapped += x->mapped_bytes;
    n_embed += x->has_embedding;
    n_head += x->has_head;
    TU_CHECK(x->n_experts >= 1, "%s: rank %d has no experts", what, r);
    TU_CHECK(x->peak_bytes == x->resident_bytes + x->scratch_bytes + x->kv_bytes + x->base_bytes,
             "%s: peak", what);
    /* resident: mapped, less the blocks of the experts 80 positions do not select */
    const uint64_t read = x->mapped_bytes - x->mapped_expert_bytes +
                          (uint64_t)x->n_layers * plan_experts_read_bytes(c, x->n_experts, 80);
    TU_CHECK(x->resident_bytes <= x->mapped_bytes &&
             (x->has_embedding || x->resident_bytes == read), "%s: resident", what);
    if (x->group + 1 < p.n_groups)
      TU_CHECK(p.ranks[r + 1].expert0 == x->expert0 + x->n_experts, "%s: experts not contiguous", what);
    else
      TU_CHECK(x->expert0 + x->n_experts == c->n_experts, "%s: experts not covered", what);
  }
  /* every checkpoint byte is mapped by exactly one rank, except the vectors of the attention
   * and head split: the attention norm (every group with attention units, and the leader), the
   * qkv bias and sinks (groups with units), the out bias (groups with output rows) and the final
   * norm (every group of the last stage) */
  uint64_t shared = 0;
  int nA = 0, nU = 0, nD = 0;
  for (int g = 0; g < p.n_groups; g++) {
    int u0, u1, d0, d1;
    int64_t v0, v1;
    plan_group_share(c, p.n_groups, g, &u0, &u1, &d0, &d1, &v0, &v1);
    nA += g == 0 || u0 < u1;
    nU += u0 < u1;
    nD += d0 < d1;
  }
  shared += (uint64_t)c->n_layers * ((nA - 1) * role_bytes(c, CK_ATTN_NORM) +
                                     (nU - 1) * (role_bytes(c, CK_QKV_B) + role_bytes(c, CK_SINKS)) +
                                     (nD - 1) * role_bytes(c, CK_OUT_B));
  shared += (uint64_t)(p.n_groups - 1) * role_bytes(c, CK_NORM);
  TU_CHECK(mapped == sum.total_bytes + shared, "%s P=%d S=%d: ranks map %llu bytes, checkpoint has %llu",
           what, P, S, (unsigned long long)mapped, (unsigned long long)sum.total_bytes);
  TU_CHECK(n_embed == 1 && n_head == 1, "%s: embedding/head owners %d/%d", what, n_embed, n_head);
  plan_free(&p);
}

int main(void) {
  gpt_config c20, c120, tiny;
  config_preset_20b(&c20);
  config_preset_120b(&c120);
  config_defaults(&tiny);
  tiny.n_layers = 3; tiny.n_experts = 5; tiny.top_k = 2; tiny.vocab = 1001; tiny.hidden = 64;
  tiny.intermediate = 32; tiny.head_dim = 16; tiny.n_heads = 4; tiny.n_kv_heads = 2;
  const struct { const char *name; const gpt_config *c; } cfgs[] = {{"20b", &c20}, {"120b", &c120}, {"odd", &tiny}};
  for (size_t i = 0; i < 3; i++)
    for (int P = 1; P <= 12; P++)
      for (int S = 1; S <= P; S++)
        if (P % S == 0 && S <= cfgs[i].c->n_layers && P / S <= cfgs[i].c->n_experts)
          check_partition(cfgs[i].name, cfgs[i].c, P, S);

  /* few positions: only the blocks of the experts they select are read (9 positions x top-4 of
   * 128: 31.8 expected, rounded up to 32); many positions read everything */
  {
    plan q;
    err qe = {0};
    TU_CHECK(plan_make(&c120, 8, 8, 8, 9, &q, &qe) == 0, "%s", qe.msg);
    if (q.ranks) {
      const plan_rank *x = &q.ranks[1];
      const double sel = ceil(128 * (1 - pow(1 - 4.0 / 128, 9)));
      const uint64_t blocks = plan_expert_block_bytes(&c120);
      const uint64_t want = x->mapped_attn_bytes +
                            (uint64_t)x->n_layers * (128 * (plan_expert_bytes(&c120) - blocks) +
                                                     (uint64_t)(sel * (double)(blocks + PLAN_EXPERT_EXTRA_RESIDENT)));
      TU_CHECK(sel == 32 && x->resident_bytes == want,
               "120b, 9 positions: resident %llu, expected %llu", (unsigned long long)x->resident_bytes,
               (unsigned long long)want);
    }
    plan_free(&q);
    TU_CHECK(plan_make(&c120, 8, 8, 256, 256, &q, &qe) == 0, "%s", qe.msg);
    if (q.ranks)
      TU_CHECK(q.ranks[1].resident_bytes == q.ranks[1].mapped_bytes, "120b, 256 positions: all read");
    plan_free(&q);
  }
  /* a known routing replaces the expectation: rank 1 of 8 x 2 (layer 1, experts 64-127) with 3
   * of its experts selected reads 3 experts' blocks; a layer the routing does not describe keeps
   * the expectation; per-stage parity counts the layer's selected experts; bad ids are refused */
  {
    gpt_config c8 = c120; /* 8 layers, as bench/bench_scale.sh's synth: one layer per stage */
    c8.n_layers = 8;
    plan q;
    err qe = {0};
    TU_CHECK(plan_make(&c8, 16, 8, 8, 9, &q, &qe) == 0, "%s", qe.msg);
    int32_t t0[9 * 4], t1[9 * 4];
    for (int i = 0; i < 36; i++) {
      t0[i] = i % 4;                    /* layer 0: experts 0-3 only */
      t1[i] = i % 2 ? 64 + i % 3 : 5;   /* layer 1: 5 and 64, 65, 66 */
    }
    const int32_t *topk[2] = {t0, t1};
    plan_routing rt;
    TU_CHECK(plan_routing_from_topk(&c8, 2, 9, 4, topk, &rt, &qe) == 0, "%s", qe.msg);
    TU_CHECK(plan_routing_selected(&c8, &rt, 1, 64, 64, 9) == 3 &&
             plan_routing_selected(&c8, &rt, 1, 0, 64, 9) == 1 &&
             plan_routing_selected(&c8, &rt, 0, 0, 128, 9) == 4 &&
             plan_routing_selected(&c8, &rt, 5, 0, 64, 9) == 16, "routing counts");
    if (q.ranks) {
      plan_rank before[16];
      memcpy(before, q.ranks, sizeof before);
      plan_parity_rank pe[16], pr[16];
      plan_parity(&c8, &q, 8, 9, NULL, pe);
      plan_apply_routing(&c8, &q, &rt);
      plan_parity(&c8, &q, 8, 9, &rt, pr);
      const uint64_t blocks = plan_expert_block_bytes(&c8), fixed = plan_expert_bytes(&c8) - blocks;
      const plan_rank *x = &q.ranks[3]; /* stage 1 (layer 1), group 1 */
      TU_CHECK(x->layer0 == 1 && x->n_layers == 1 && x->expert0 == 64, "rank 3 owns layer %d, experts %d-",
               x->layer0, x->expert0);
      TU_CHECK(x->resident_bytes == x->mapped_attn_bytes + x->mapped_global_bytes + 64 * fixed + 3 * (blocks + PLAN_EXPERT_EXTRA_RESIDENT),
               "rank 3: resident %llu with 3 experts selected", (unsigned long long)x->resident_bytes);
      TU_CHECK(q.ranks[2].resident_bytes == q.ranks[2].mapped_attn_bytes + 64 * fixed + 1 * (blocks + PLAN_EXPERT_EXTRA_RESIDENT),
               "rank 2: 1 expert selected");
      for (int r = 4; r < 16; r++)
        TU_CHECK(q.ranks[r].resident_bytes == before[r].resident_bytes, "rank %d: layer not in the routing", r);
      for (int r = 0; r < 16; r++)
        TU_CHECK(q.ranks[r].peak_bytes == q.ranks[r].resident_bytes + q.ranks[r].scratch_bytes +
                                              q.ranks[r].kv_bytes + q.ranks[r].base_bytes, "rank %d: peak", r);
      /* layer 1's sub-model (rank 2) gathers 4 selected experts instead of 31.8 */
      const double per = (double)(plan_expert_bytes(&c8) + PLAN_EXPERT_EXTRA_RESIDENT);
      const double want = (128 * (1 - pow(1 - 4.0 / 128, 9)) - 4) * per;
      TU_CHECK(fabs((double)(pe[2].ort_bytes - pr[2].ort_bytes) - want) < 2, "rank 2: ORT phase");
      TU_CHECK(pe[4].ort_bytes == pr[4].ort_bytes, "rank 4: layer 2 not in the routing");
    }
    plan_routing_free(&rt);
    plan_free(&q);
    t1[7] = 128;
    memset(&qe, 0, sizeof qe);
    TU_CHECK(plan_routing_from_topk(&c8, 2, 9, 4, topk, &rt, &qe) == -1 && qe.code == 2 &&
             strstr(qe.msg, "layer 1, position 1 selects expert 128"), "bad id: %s", qe.msg);
    TU_CHECK(rt.selected == NULL, "bad id: nothing left allocated");
  }
  /* pipeline of the 20B model over 4 stages: stage bytes within one layer of each other */
  plan p;
  err e = {0};
  TU_CHECK(plan_make(&c20, 4, 4, 64, 80, &p, &e) == 0, "%s", e.msg);
  uint64_t lo = UINT64_MAX, hi = 0;
  for (int r = 0; r < 4; r++) {
    if (p.ranks[r].mapped_bytes < lo) lo = p.ranks[r].mapped_bytes;
    if (p.ranks[r].mapped_bytes > hi) hi = p.ranks[r].mapped_bytes;
  }
  uint64_t layer = plan_layer_attn_bytes(&c20) + plan_expert_bytes(&c20) * 32;
  TU_CHECK(hi - lo <= layer + 2ull * c20.vocab * c20.hidden, "20b 4 stages unbalanced: %llu..%llu",
           (unsigned long long)lo, (unsigned long long)hi);
  printf("20b, 4 stages: layers");
  for (int s = 0; s <= 4; s++) printf(" %d", p.stage_layer0[s]);
  printf("\n");
  plan_free(&p);

  /* per-layer figures agree with spec section 3 (20b: 476,863,552 B per layer) */
  TU_CHECK(plan_layer_attn_bytes(&c20) + 32 * plan_expert_bytes(&c20) == 476863552ull, "20b layer bytes");
  TU_CHECK(plan_layer_attn_bytes(&c120) + 128 * plan_expert_bytes(&c120) == 1748118784ull, "120b layer bytes");

  /* refused splits: usage errors */
  memset(&e, 0, sizeof e);
  TU_CHECK(plan_make(&c20, 6, 4, 64, 80, &p, &e) == -1 && e.code == 2, "6 ranks / 4 stages accepted");
  memset(&e, 0, sizeof e);
  TU_CHECK(plan_make(&c20, 66, 1, 64, 80, &p, &e) == -1 && e.code == 2, "66 groups > 32 experts accepted");
  memset(&e, 0, sizeof e);
  TU_CHECK(plan_make(&c20, 25, 25, 64, 80, &p, &e) == -1 && e.code == 2, "25 stages > 24 layers accepted");
  memset(&e, 0, sizeof e);
  TU_CHECK(plan_make(&c20, 0, 0, 64, 80, &p, &e) == -1 && e.code == 2, "0 ranks accepted");
  /* which rank counts have a split, against a brute-force search over every (stages, groups)
   * pair: the default must find one exactly when one exists, and a count without one must be
   * refused naming the nearest counts that have one */
  gpt_config cv[3] = {c20, c20, c20};
  cv[1].n_layers = 5; cv[1].n_experts = 7;     /* odd layers, prime experts */
  cv[2].n_layers = 36; cv[2].n_experts = 128;  /* 120b */
  int n_invalid = 0;
  for (int k = 0; k < 3; k++) {
    const int L = cv[k].n_layers, E = cv[k].n_experts;
    char *ok = calloc((size_t)(L * E + 10), 1);
    for (int s = 1; s <= L; s++)
      for (int g = 1; g <= E; g++) ok[s * g] = 1;
    const int top = k == 2 ? 1200 : L * E + 5; /* the 120b range sampled up to 1200 ranks */
    for (int P = 1; P <= top; P++) {
      const int valid = P <= L * E && ok[P];
      TU_CHECK(plan_rank_count_valid(&cv[k], P) == valid, "L=%d E=%d P=%d: valid %d", L, E, P, valid);
      int S = plan_default_stages(&cv[k], P, 4, 8);
      TU_CHECK((S > 0) == valid, "L=%d E=%d P=%d: default stages %d, brute force says %s", L, E, P,
               S, valid ? "a split exists" : "none exists");
      if (S > 0) TU_CHECK(P % S == 0 && S <= L && P / S <= E, "L=%d E=%d P=%d: default %d stages is not a split", L, E, P, S);
      memset(&e, 0, sizeof e);
      const int rc = plan_make(&cv[k], P, 0, 4, 8, &p, &e);
      TU_CHECK((rc == 0) == valid, "L=%d E=%d P=%d: plan_make %d: %s", L, E, P, rc, e.msg);
      if (rc == 0) {
        plan_free(&p);
        continue;
      }
      n_invalid++;
      int below = 0, above = 0;
      for (int q = P - 1; q >= 1 && !below; q--) if (q <= L * E && ok[q]) below = q;
      for (int q = P + 1; q <= L * E && !above; q++) if (ok[q]) above = q;
      char want[64];
      if (below && above) snprintf(want, sizeof want, "are %d and %d", below, above);
      else snprintf(want, sizeof want, "are %d", below ? below : above);
      TU_CHECK(e.code == 2 && strstr(e.msg, want), "L=%d E=%d P=%d: message '%s' lacks '%s'", L, E, P, e.msg, want);
    }
    free(ok);
  }
  TU_CHECK(n_invalid > 100, "only %d rank counts without a split were tried", n_invalid);
  memset(&e, 0, sizeof e);
  TU_CHECK(plan_make(&c20, 37, 0, 4, 8, &p, &e) == -1 && strstr(e.msg, "36 and 38"), "20b, 37 ranks: %s", e.msg);
  return tu_finish("test_plan");
}
