/* The distributed forward pass (dist_forward.h). */
#include "dist_forward.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

/* MPI counts are int: messages are sent in pieces of at most this many bytes. */
#define CHUNK_BYTES ((size_t)1 << 30)

struct dfwd {
  dist *d;
  model *m;
  gpt_config c;
  int n_layers, max_T, max_seq, tracing;
  model_capture *cap;        /* rows = absolute positions; NULL on ranks that capture nothing */
  model_kv kv;               /* leader: its stage's layers (clipped to n_layers) */
  int G;                     /* ranks per stage */
  uint8_t *own;              /* [E] experts of this rank */
  int *expert_group;         /* [E] group owning each expert */
  float *x;                  /* [max_T, D] hidden state on the rank that holds it */
  float *t;                  /* [max_T, D] normalised input of the MoE */
  float *rlogits;            /* [max_T, E] */
  int32_t *idx;              /* [max_T, K] */
  float *val, *w;            /* [max_T, K] */
  float *y;                  /* [max_T, K, D] expert outputs per slot */
  float *logits;             /* [V] head rank, when not capturing: the last position's row */
  /* exchange: leader side */
  int *hdr;                  /* [1 + G] leader status, then tokens per group */
  int *tok;                  /* [G, max_T] tokens sent to each group */
  int *n_tok, *n_own;        /* [G] */
  int *cnt, *dsp;            /* [G] MPI counts and displacements */
  float *send_t;             /* [(G-1) * max_T, D] */
  int32_t *send_idx;         /* [(G-1) * max_T, K] */
  float *recv_y;             /* [max_T * K, D] rows returned by the other ranks */
  float *recv_m1, *recv_sw;  /* [max_T * K, 2I], [max_T * K, I] when tracing */
  /* exchange: member side */
  float *sub_t;              /* [max_T, D] */
  int32_t *sub_idx;          /* [max_T, K] */
  float *sub_y;              /* [max_T, K, D] */
  float *sub_m1, *sub_sw;    /* [max_T, K, 2I], [max_T, K, I] when tracing */
  float *pack_y, *pack_m1, *pack_sw; /* owned slots, packed */
  /* attention and head split over the stage (G > 1; plan_group_share) */
  int u0, u1, d0, d1;        /* this rank's attention units and output-projection rows */
  int64_t v0, v1;            /* its vocabulary rows */
  int *acol, *drow;          /* [G + 1] attention-output column / projection row boundaries */
  int64_t *vrow;             /* [G + 1] vocabulary boundaries */
  int *acnt, *adsp;          /* [G] MPI counts and displacements of the split's exchanges */
  int *ub, *qb;              /* [G + 1] unit boundaries; scratch boundaries */
  float *spack, *sstage;     /* [max_T * max(H*Dh, QKV, D)] packed block, gathered blocks */
  float *qkv_cap;            /* [max_seq, QKV] a member's projection rows when tracing */
  model_layer_capture mcap;  /* a member's capture (qkv_out only) */
  float *lbuf;               /* [rows, v1 - v0] a member's logits */
  dfwd_progress_fn progress;
  void *progress_ctx;
};

static void *xmalloc(size_t n, int *fail) {
  void *p = malloc(n ? n : 1);
  if (!p) *fail = 1;
  return p;
}

int dfwd_init(dist *d, model *m, int n_layers, int max_tokens, int max_seq, int tracing,
              model_capture *cap, dfwd **out, err *e) {
  *out = NULL;
  dfwd *f = calloc(1, sizeof *f);
  if (!f) return err_set(e, EXIT_RUNTIME, "out of memory");
  f->d = d;
  f->m = m;
  f->c = *model_config(m);
  f->n_layers = n_layers;
  f->max_T = max_tokens;
  f->max_seq = max_seq;
  f->tracing = tracing;
  f->cap = cap;
  f->G = d->plan.n_groups;
  const plan_rank *me = d->me;
  const size_t T = max_tokens, D = f->c.hidden, K = f->c.top_k, E = f->c.n_experts;
  const size_t I = f->c.intermediate, V = f->c.vocab, G = f->G;
  /* exchange counts are MPI ints: rows of D (and of 2I when tracing) for every slot */
  if (G > 1 && ((uint64_t)T * K * D > (uint64_t)INT32_MAX ||
                (tracing && (uint64_t)T * K * 2 * I > (uint64_t)INT32_MAX))) {
    free(f);
    return err_set(e, EXIT_RUNTIME, "%zu tokens per call are too many for one exchange", T);
  }
  int fail = 0;
  f->own = calloc(E, 1);
  f->expert_group = xmalloc(E * sizeof(int), &fail);
  f->hdr = xmalloc((1 + G) * sizeof(int), &fail);
  if (!f->own) fail = 1;
  for (int r = 0; r < d->size && !fail; r++) {
    const plan_rank *pr = &d->plan.ranks[r];
    if (pr->stage != me->stage) continue;
    for (int x = pr->expert0; x < pr->expert0 + pr->n_experts; x++) f->expert_group[x] = pr->group;
  }
  if (!fail)
    for (int x = me->expert0; x < me->expert0 + me->n_experts; x++) f->own[x] = 1;
  f->sub_t = NULL;
  const size_t HD = (size_t)f->c.n_heads * f->c.head_dim, QKV = config_qkv_rows(&f->c);
  const size_t Gq = (size_t)f->c.n_heads / f->c.n_kv_heads;
  f->acol = xmalloc((G + 1) * sizeof(int), &fail);
  f->drow = xmalloc((G + 1) * sizeof(int), &fail);
  f->vrow = xmalloc((G + 1) * sizeof(int64_t), &fail);
  f->acnt = xmalloc(G * sizeof(int), &fail);
  f->adsp = xmalloc(G * sizeof(int), &fail);
  f->ub = xmalloc((G + 1) * sizeof(int), &fail);
  f->qb = xmalloc((G + 1) * sizeof(int), &fail);
  for (int g = 0; g < (int)G && !fail; g++) {
    int u0, u1, d0, d1;
    int64_t v0, v1;
    plan_group_share(&f->c, (int)G, g, &u0, &u1, &d0, &d1, &v0, &v1);
    f->ub[g] = u0;
    f->ub[g + 1] = u1;
    f->acol[g] = (int)(u0 * Gq * f->c.head_dim);
    f->acol[g + 1] = (int)(u1 * Gq * f->c.head_dim);
    f->drow[g] = d0;
    f->drow[g + 1] = d1;
    f->vrow[g] = v0;
    f->vrow[g + 1] = v1;
    if (g == me->group) {
      f->u0 = u0, f->u1 = u1, f->d0 = d0, f->d1 = d1, f->v0 = v0, f->v1 = v1;
    }
  }
  if (G > 1) {
    size_t wmax = HD > QKV ? HD : QKV;
    if (D > wmax) wmax = D;
    if ((uint64_t)T * wmax > (uint64_t)INT32_MAX ||
        (tracing && (uint64_t)T * (uint64_t)V > (uint64_t)INT32_MAX)) {
      dfwd_free(f);
      return err_set(e, EXIT_RUNTIME, "%zu tokens per call are too many for one exchange", T);
    }
    f->spack = xmalloc(T * wmax * sizeof(float), &fail);
    f->sstage = xmalloc(T * wmax * sizeof(float), &fail);
    if (!me->leader) {
      f->x = xmalloc(T * D * sizeof(float), &fail);
      if (me->stage == d->plan.n_stages - 1)
        f->lbuf = xmalloc((tracing ? T : 1) * (size_t)(f->v1 - f->v0) * sizeof(float), &fail);
      if (tracing) {
        f->qkv_cap = xmalloc((size_t)max_seq * QKV * sizeof(float), &fail);
        f->mcap.qkv_out = f->qkv_cap;
      }
    }
  }
  if (me->leader) {
    f->x = xmalloc(T * D * sizeof(float), &fail);
    f->t = xmalloc(T * D * sizeof(float), &fail);
    f->rlogits = xmalloc(T * E * sizeof(float), &fail);
    f->idx = xmalloc(T * K * sizeof(int32_t), &fail);
    f->val = xmalloc(T * K * sizeof(float), &fail);
    f->w = xmalloc(T * K * sizeof(float), &fail);
    f->y = xmalloc(T * K * D * sizeof(float), &fail);
    f->tok = xmalloc(G * T * sizeof(int), &fail);
    f->n_tok = xmalloc(G * sizeof(int), &fail);
    f->n_own = xmalloc(G * sizeof(int), &fail);
    f->cnt = xmalloc(G * sizeof(int), &fail);
    f->dsp = xmalloc(G * sizeof(int), &fail);
    if (G > 1) {
      f->send_t = xmalloc((G - 1) * T * D * sizeof(float), &fail);
      f->send_idx = xmalloc((G - 1) * T * K * sizeof(int32_t), &fail);
      f->recv_y = xmalloc(T * K * D * sizeof(float), &fail);
      if (tracing) {
        f->recv_m1 = xmalloc(T * K * 2 * I * sizeof(float), &fail);
        f->recv_sw = xmalloc(T * K * I * sizeof(float), &fail);
      }
    }
    if (me->has_head && !tracing) f->logits = xmalloc(V * sizeof(float), &fail);
  } else {
    f->sub_t = xmalloc(T * D * sizeof(float), &fail);
    f->sub_idx = xmalloc(T * K * sizeof(int32_t), &fail);
    f->sub_y = xmalloc(T * K * D * sizeof(float), &fail);
    f->pack_y = xmalloc(T * K * D * sizeof(float), &fail);
    if (tracing) {
      f->sub_m1 = xmalloc(T * K * 2 * I * sizeof(float), &fail);
      f->sub_sw = xmalloc(T * K * I * sizeof(float), &fail);
      f->pack_m1 = xmalloc(T * K * 2 * I * sizeof(float), &fail);
      f->pack_sw = xmalloc(T * K * I * sizeof(float), &fail);
    }
  }
  if (fail) {
    dfwd_free(f);
    return err_set(e, EXIT_RUNTIME, "out of memory for the forward pass buffers (%zu tokens)", T);
  }
  {
    /* the KV heads of this rank's attention units, on every rank of a stage with layers */
    int first = me->layer0, last = me->layer0 + me->n_layers;
    if (last > n_layers) last = n_layers;
    if (last > first && (me->leader || f->u0 < f->u1) &&
        model_kv_init_heads(&f->c, first, last - first, max_seq, f->u0, f->u1, &f->kv, e) != 0) {
      dfwd_free(f);
      return -1;
    }
  }
  *out = f;
  return 0;
}

void dfwd_free(dfwd *f) {
  if (!f) return;
  model_kv_free(&f->kv);
  void *bufs[] = {f->hdr, f->own,    f->expert_group, f->x,       f->t,        f->rlogits, f->idx,
                  f->val,    f->w,            f->y,       f->logits,   f->tok,     f->n_tok,
                  f->n_own,  f->cnt,          f->dsp,     f->send_t,   f->send_idx, f->recv_y,
                  f->recv_m1, f->recv_sw,     f->sub_t,   f->sub_idx,  f->sub_y,   f->sub_m1,
                  f->sub_sw, f->pack_y,       f->pack_m1, f->pack_sw,  f->acol,   f->drow,
                  f->vrow,   f->acnt,         f->adsp,    f->spack,    f->sstage,  f->qkv_cap,
                  f->lbuf,   f->ub,           f->qb};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
  free(f);
}

void dfwd_set_progress(dfwd *f, dfwd_progress_fn fn, void *ctx) {
  f->progress = fn;
  f->progress_ctx = ctx;
}

/* ---------------------------------------------------------------- point to point */

/* n 4-byte words (floats or int32) as raw bytes, in pieces MPI's int counts can hold. */
static int send_words(dfwd *f, const void *p, size_t n, int dest, int tag) {
  const char *b = p;
  for (size_t o = 0, bytes = 4 * n; o < bytes; o += CHUNK_BYTES) {
    int k = (int)(bytes - o < CHUNK_BYTES ? bytes - o : CHUNK_BYTES);
    if (MPI_Send(b + o, k, MPI_BYTE, dest, tag, f->d->world) != MPI_SUCCESS) return -1;
    f->d->bytes_sent += (uint64_t)k;
    f->d->n_messages++;
  }
  return 0;
}

static int recv_words(dfwd *f, void *p, size_t n, int src, int tag) {
  char *b = p;
  for (size_t o = 0, bytes = 4 * n; o < bytes; o += CHUNK_BYTES) {
    int k = (int)(bytes - o < CHUNK_BYTES ? bytes - o : CHUNK_BYTES);
    if (MPI_Recv(b + o, k, MPI_BYTE, src, tag, f->d->world, MPI_STATUS_IGNORE) != MPI_SUCCESS)
      return -1;
  }
  return 0;
}

/* Move the hidden state [T, D] from the rank that holds it to `to` (both know both). */
static int move_hidden(dfwd *f, int from, int to, int T, err *e) {
  if (from == to) return 0;
  const size_t n = (size_t)T * f->c.hidden;
  int rc = 0;
  if (f->d->rank == from) rc = send_words(f, f->x, n, to, 1);
  if (f->d->rank == to) rc = recv_words(f, f->x, n, from, 1);
  return rc ? err_set(e, EXIT_RUNTIME, "MPI transfer of the hidden state %d -> %d failed", from, to) : 0;
}

static int leader_of(const dfwd *f, int stage) { return stage * f->G; }

static int stage_of_layer(const dfwd *f, int layer) {
  int s = 0;
  while (f->d->plan.stage_layer0[s + 1] <= layer) s++;
  return s;
}

/* ---------------------------------------------------------------- one MoE exchange */

/* The stage leader's own experts (all experts when the stage has one rank), into f->y. */
static void leader_experts(dfwd *f, int layer, int T, int pos0, err *e) {
  const int K = f->c.top_k, I = f->c.intermediate;
  model_layer_capture *lc = f->cap && f->cap->layers ? &f->cap->layers[layer] : NULL;
  float *m1 = lc && lc->mlp1_out ? lc->mlp1_out + (size_t)pos0 * K * 2 * I : NULL;
  float *sw = lc && lc->swiglu_out ? lc->swiglu_out + (size_t)pos0 * K * I : NULL;
  if (e->code == 0 && dist_fault(f->d, "experts", e) == 0)
    model_experts(f->m, layer, f->t, T, f->idx, f->G > 1 ? f->own : NULL, f->y, m1, sw, e);
}

/* Collective over the stage. The leader (status = its error so far) sends each other rank the
 * tokens routed to its experts; while they compute theirs, it computes its own; then each sends
 * back the owned slots. */
static int moe_exchange(dfwd *f, int layer, int T, int pos0, err *e) {
  const int G = f->G, K = f->c.top_k, D = f->c.hidden, I = f->c.intermediate;
  const int leader = f->d->me->leader;
  MPI_Comm sc = f->d->stage;
  int *const hdr = f->hdr, *const hdr_n = f->hdr + 1;
  int mpi_rc = MPI_SUCCESS;

  if (leader) {
    hdr[0] = e->code != 0;
    for (int g = 0; g < G; g++) f->n_tok[g] = f->n_own[g] = 0;
    if (!hdr[0])
      for (int tk = 0; tk < T; tk++)
        for (int j = 0; j < K; j++) {
          const int32_t *row = f->idx + (size_t)tk * K;
          int g = f->expert_group[row[j]], first = 1;
          for (int j2 = 0; j2 < j; j2++) first &= f->expert_group[row[j2]] != g;
          f->n_own[g]++;
          if (g != 0 && first) f->tok[g * f->max_T + f->n_tok[g]++] = tk;
        }
    for (int g = 0; g < G; g++) hdr_n[g] = f->n_tok[g];
  }
  mpi_rc |= MPI_Bcast(hdr, 1 + G, MPI_INT, 0, sc);
  if (hdr[0]) return 0; /* the leader failed: nothing to exchange, the agreement follows */

  /* tokens out: rows of t and of idx, packed per group in token order */
  int n_mine = hdr_n[f->d->me->group];
  if (leader) {
    size_t o = 0;
    f->cnt[0] = f->dsp[0] = 0;
    for (int g = 1; g < G; g++) {
      f->dsp[g] = (int)(o * D);
      for (int i = 0; i < f->n_tok[g]; i++, o++) {
        int tk = f->tok[g * f->max_T + i];
        memcpy(f->send_t + o * D, f->t + (size_t)tk * D, (size_t)D * sizeof(float));
        memcpy(f->send_idx + o * K, f->idx + (size_t)tk * K, (size_t)K * sizeof(int32_t));
      }
      f->cnt[g] = f->n_tok[g] * D;
      f->d->bytes_sent += (uint64_t)f->n_tok[g] * (D * sizeof(float) + K * sizeof(int32_t));
    }
  }
  mpi_rc |= MPI_Scatterv(f->send_t, f->cnt, f->dsp, MPI_FLOAT, leader ? MPI_IN_PLACE : f->sub_t,
                         n_mine * D, MPI_FLOAT, 0, sc);
  if (leader)
    for (int g = 0; g < G; g++) {
      f->cnt[g] = f->n_tok[g] * K;
      f->dsp[g] = g == 0 ? 0 : f->dsp[g - 1] + f->cnt[g - 1];
    }
  mpi_rc |= MPI_Scatterv(f->send_idx, f->cnt, f->dsp, MPI_INT,
                         leader ? MPI_IN_PLACE : f->sub_idx, n_mine * K, MPI_INT, 0, sc);

  /* experts: the leader's own, and on the other ranks theirs, at the same time; those pack the
   * owned slots in (token, slot) order */
  int n_packed = 0;
  if (leader) leader_experts(f, layer, T, pos0, e);
  if (!leader) {
    if (n_mine > 0 && e->code == 0 && dist_fault(f->d, "experts", e) == 0)
      model_experts(f->m, layer, f->sub_t, n_mine, f->sub_idx, f->own, f->sub_y,
                    f->tracing ? f->sub_m1 : NULL, f->tracing ? f->sub_sw : NULL, e);
    for (int tk = 0; tk < n_mine; tk++)
      for (int j = 0; j < K; j++) {
        if (!f->own[f->sub_idx[tk * K + j]]) continue;
        size_t s = (size_t)tk * K + j;
        memcpy(f->pack_y + (size_t)n_packed * D, f->sub_y + s * D, (size_t)D * sizeof(float));
        if (f->tracing) {
          memcpy(f->pack_m1 + (size_t)n_packed * 2 * I, f->sub_m1 + s * 2 * I, (size_t)2 * I * sizeof(float));
          memcpy(f->pack_sw + (size_t)n_packed * I, f->sub_sw + s * I, (size_t)I * sizeof(float));
        }
        n_packed++;
      }
    f->d->bytes_sent += (uint64_t)n_packed * sizeof(float) * (D + (f->tracing ? 3 * I : 0));
  }

  /* rows back */
  const int widths[3] = {D, 2 * I, I};
  float *sendb[3] = {f->pack_y, f->pack_m1, f->pack_sw};
  float *recvb[3] = {f->recv_y, f->recv_m1, f->recv_sw};
  for (int b = 0; b < (f->tracing ? 3 : 1); b++) {
    if (leader) {
      f->cnt[0] = f->dsp[0] = 0;
      for (int g = 1; g < G; g++) {
        f->cnt[g] = f->n_own[g] * widths[b];
        f->dsp[g] = f->dsp[g - 1] + f->cnt[g - 1];
      }
    }
    mpi_rc |= MPI_Gatherv(leader ? MPI_IN_PLACE : sendb[b], n_packed * widths[b], MPI_FLOAT,
                          recvb[b], f->cnt, f->dsp, MPI_FLOAT, 0, sc);
  }
  if (mpi_rc != MPI_SUCCESS) return err_set(e, EXIT_RUNTIME, "MPI expert exchange failed in layer %d", layer);

  /* the leader places every returned row at its (token, slot) */
  if (leader) {
    size_t row = 0;
    for (int g = 1; g < G; g++)
      for (int i = 0; i < f->n_tok[g]; i++) {
        int tk = f->tok[g * f->max_T + i];
        for (int j = 0; j < K; j++) {
          if (f->expert_group[f->idx[tk * K + j]] != g) continue;
          size_t s = (size_t)tk * K + j;
          memcpy(f->y + s * D, f->recv_y + row * D, (size_t)D * sizeof(float));
          if (f->tracing && f->cap && f->cap->layers) {
            model_layer_capture *lc = &f->cap->layers[layer];
            size_t ps = (size_t)(pos0 + tk) * K + j;
            if (lc->mlp1_out) memcpy(lc->mlp1_out + ps * 2 * I, f->recv_m1 + row * 2 * I, (size_t)2 * I * sizeof(float));
            if (lc->swiglu_out) memcpy(lc->swiglu_out + ps * I, f->recv_sw + row * I, (size_t)I * sizeof(float));
          }
          row++;
        }
      }
  }
  return 0;
}

/* ---------------------------------------------------------------- one layer */

/* Columns [c0, c1) of the rows of a [T, ld] matrix, packed into out [T, c1 - c0]. */
static void pack_cols(const float *a, int T, int ld, int c0, int c1, float *out) {
  for (int i = 0; i < T; i++)
    memcpy(out + (size_t)i * (c1 - c0), a + (size_t)i * ld + c0, (size_t)(c1 - c0) * sizeof(float));
}

static void unpack_cols(const float *in, int T, int ld, int c0, int c1, float *a) {
  for (int i = 0; i < T; i++)
    memcpy(a + (size_t)i * ld + c0, in + (size_t)i * (c1 - c0), (size_t)(c1 - c0) * sizeof(float));
}

/* Gather (to the leader, or to every rank with all) the column blocks [b[g], b[g+1]) of a
 * [T, ld] matrix that each group g computed: the other groups' blocks are written into a
 * (a NULL: this rank takes part without data; its block is then sent undefined). */
static int gather_cols(dfwd *f, float *a, int T, int ld, const int *b, int all) {
  const int G = f->G, me = f->d->me->group;
  size_t o = 0;
  for (int g = 0; g < G; g++) {
    f->acnt[g] = T * (b[g + 1] - b[g]);
    f->adsp[g] = (int)o;
    o += (size_t)f->acnt[g];
  }
  if (a) pack_cols(a, T, ld, b[me], b[me + 1], f->spack);
  int rc;
  if (all) {
    rc = MPI_Allgatherv(f->spack, f->acnt[me], MPI_FLOAT, f->sstage, f->acnt, f->adsp, MPI_FLOAT,
                        f->d->stage);
    f->d->bytes_sent += (uint64_t)(G - 1) * f->acnt[me] * sizeof(float);
  } else {
    rc = MPI_Gatherv(f->spack, f->acnt[me], MPI_FLOAT, f->sstage, f->acnt, f->adsp, MPI_FLOAT, 0,
                     f->d->stage);
    if (me != 0) f->d->bytes_sent += (uint64_t)f->acnt[me] * sizeof(float);
  }
  if (a && (all || me == 0))
    for (int g = 0; g < G; g++)
      if (g != me) unpack_cols(f->sstage + f->adsp[g], T, ld, b[g], b[g + 1], a);
  return rc;
}

/* Attention of a stage of G > 1 ranks: the leader (status = its error so far) broadcasts the
 * hidden state; every rank computes its units' heads (model_attn_heads); the attention outputs
 * are gathered on every rank; each computes its rows of the output projection and the leader
 * gathers them. Every number is computed by exactly the code and shapes of one rank's
 * model_attn_block (docs/distributed.md "Attention and head split"). */
static void attn_split(dfwd *f, int layer, int T, int pos0, model_layer_capture *lc, err *e) {
  const gpt_config *c = &f->c;
  const int D = c->hidden, HD = c->n_heads * c->head_dim, Dh = c->head_dim;
  const int QKV = (int)config_qkv_rows(c), WA = c->n_kv_heads * Dh, Gq = c->n_heads / c->n_kv_heads;
  const int leader = f->d->me->leader;
  MPI_Comm sc = f->d->stage;
  int rc = MPI_SUCCESS;
  if (leader && e->code == 0) dist_fault(f->d, "attn", e);
  int st = leader ? e->code != 0 : 0;
  rc |= MPI_Bcast(&st, 1, MPI_INT, 0, sc);
  if (st) return; /* the leader failed: the agreement follows */
  rc |= MPI_Bcast(f->x, T * D, MPI_FLOAT, 0, sc);
  if (leader) f->d->bytes_sent += (uint64_t)(f->G - 1) * T * D * sizeof(float);
  model_layer_capture *cap = leader ? lc : f->tracing ? &f->mcap : NULL;
  if ((leader || f->u0 < f->u1) && e->code == 0) /* the leader captures attn_norm_out */
    model_attn_heads(f->m, layer, &f->kv, pos0, T, f->x, f->u0, f->u1, cap, e);
  float *att = model_attn_buf(f->m);
  rc |= gather_cols(f, att, T, HD, f->acol, 1);
  if (lc && lc->sdpa_out) memcpy(lc->sdpa_out + (size_t)pos0 * HD, att, (size_t)T * HD * sizeof(float));
  if (e->code == 0) model_attn_out(f->m, layer, T, f->x, f->d0, f->d1, e);
  rc |= gather_cols(f, f->x, T, D, f->drow, 0);
  if (f->tracing) {
    /* the projection rows before RoPE: each group's q, then k, then v columns */
    float *q = leader ? (lc ? lc->qkv_out : NULL) : f->qkv_cap;
    for (int part = 0; part < 3; part++) {
      const int base = part == 0 ? 0 : part == 1 ? HD : HD + WA, w = part == 0 ? Gq * Dh : Dh;
      for (int g = 0; g <= f->G; g++) f->qb[g] = base + f->ub[g] * w;
      rc |= gather_cols(f, q ? q + (size_t)pos0 * QKV : NULL, T, QKV, f->qb, 0);
    }
  }
  if (rc != MPI_SUCCESS) err_set(e, EXIT_RUNTIME, "MPI attention exchange failed in layer %d", layer);
  if (lc && lc->hidden_after_attn)
    memcpy(lc->hidden_after_attn + (size_t)pos0 * D, f->x, (size_t)T * D * sizeof(float));
}

/* The stage leader's attention (split over the stage when it has more ranks) and router, then
 * the expert exchange, then the combine. */
static void run_layer(dfwd *f, int layer, int T, int pos0, err *e) {
  const int D = f->c.hidden, E = f->c.n_experts, K = f->c.top_k;
  model_layer_capture *lc = f->cap && f->cap->layers ? &f->cap->layers[layer] : NULL;
  if (f->G > 1) attn_split(f, layer, T, pos0, lc, e);
  if (f->d->me->leader && e->code == 0 &&
      (f->G > 1 || (dist_fault(f->d, "attn", e) == 0 &&
                    model_attn_block(f->m, layer, &f->kv, pos0, T, f->x, lc, e) == 0)) &&
      model_router(f->m, layer, f->x, T, f->t, f->rlogits, f->idx, f->val, f->w, e) == 0 && lc) {
    const size_t p = pos0;
    if (lc->mlp_norm_out) memcpy(lc->mlp_norm_out + p * D, f->t, (size_t)T * D * sizeof(float));
    if (lc->router_logits) memcpy(lc->router_logits + p * E, f->rlogits, (size_t)T * E * sizeof(float));
    if (lc->topk_indices) memcpy(lc->topk_indices + p * K, f->idx, (size_t)T * K * sizeof(int32_t));
    if (lc->topk_values) memcpy(lc->topk_values + p * K, f->val, (size_t)T * K * sizeof(float));
    if (lc->topk_weights) memcpy(lc->topk_weights + p * K, f->w, (size_t)T * K * sizeof(float));
  }
  if (f->G > 1)
    moe_exchange(f, layer, T, pos0, e); /* the leader's own experts run inside, overlapped */
  else if (f->d->me->leader)
    leader_experts(f, layer, T, pos0, e);
  if (!f->d->me->leader || e->code != 0) return;
  model_moe_combine(f->m, f->x, T, f->y, f->w);
  if (lc && lc->hidden_after_mlp)
    memcpy(lc->hidden_after_mlp + (size_t)pos0 * D, f->x, (size_t)T * D * sizeof(float));
}

/* ---------------------------------------------------------------- the head */

/* Final norm, unembedding and the next token on the last stage (collective over it). With
 * G > 1 the leader broadcasts its status, the rows and the hidden state; every rank computes
 * its vocabulary rows (plan_group_share: whole chunks of model_head's, so the same bits) and the
 * leader gathers the logits. */
static void head(dfwd *f, int T, int pos0, int all_logits, int32_t *best, err *e) {
  dist *d = f->d;
  const int D = f->c.hidden, V = f->c.vocab, leader = d->me->leader;
  MPI_Comm sc = d->stage;
  int hdr[2] = {0, 1}; /* leader status, rows */
  if (leader) {
    if (e->code == 0) dist_fault(d, "head", e);
    hdr[0] = e->code != 0;
    /* every position's logits only into a capture; otherwise the last row (f->logits is [V]) */
    hdr[1] = all_logits && f->cap && f->cap->logits ? T : 1;
  }
  int rc = MPI_SUCCESS;
  if (f->G > 1) rc |= MPI_Bcast(hdr, 2, MPI_INT, 0, sc);
  if (hdr[0]) return;
  const int rows = hdr[1];
  float *xin = f->x + (size_t)(T - rows) * D;
  if (f->G > 1) {
    rc |= MPI_Bcast(xin, rows * D, MPI_FLOAT, 0, sc);
    if (leader) d->bytes_sent += (uint64_t)(f->G - 1) * rows * D * sizeof(float);
  }
  float *lg = NULL;
  if (leader) {
    float *fno = f->cap && f->cap->final_norm_out ? f->cap->final_norm_out + (size_t)pos0 * D : NULL;
    if (fno && rows != T) fno += (size_t)(T - 1) * D;
    lg = f->cap && f->cap->logits ? f->cap->logits + (size_t)(pos0 + T - rows) * V : f->logits;
    if (e->code == 0) model_head_rows(f->m, xin, rows, fno, 0, f->v1, lg, V, e);
  } else if (e->code == 0) {
    model_head_rows(f->m, xin, rows, NULL, f->v0, f->v1, f->lbuf, f->v1 - f->v0, e);
  }
  if (f->G > 1) {
    const int nv = (int)(f->v1 - f->v0);
    if (!leader) {
      rc |= MPI_Send(f->lbuf, rows * nv, MPI_FLOAT, 0, 300, sc);
      d->bytes_sent += (uint64_t)rows * nv * sizeof(float);
    } else {
      for (int g = 1; g < f->G; g++) {
        MPI_Datatype block;
        rc |= MPI_Type_vector(rows, (int)(f->vrow[g + 1] - f->vrow[g]), V, MPI_FLOAT, &block);
        rc |= MPI_Type_commit(&block);
        rc |= MPI_Recv(lg + f->vrow[g], 1, block, g, 300, sc, MPI_STATUS_IGNORE);
        MPI_Type_free(&block);
      }
    }
  }
  if (rc != MPI_SUCCESS) err_set(e, EXIT_RUNTIME, "MPI exchange of the logits failed");
  if (leader && e->code == 0) {
    const float *last = lg + (size_t)(rows - 1) * V;
    int32_t b = 0;
    for (int v = 1; v < V; v++)
      if (last[v] > last[b]) b = v;
    *best = b;
  }
}

/* ---------------------------------------------------------------- one step */

int dfwd_step(dfwd *f, const int32_t *ids, int T, int pos0, int all_logits, int32_t *next_id,
              err *e) {
  dist *d = f->d;
  const int D = f->c.hidden;
  if (T < 1 || T > f->max_T || pos0 + T > f->max_seq)
    err_set(e, EXIT_RUNTIME, "forward: %d tokens at position %d exceed the buffers (%d tokens, %d positions)",
            T, pos0, f->max_T, f->max_seq);
  int holder = 0; /* rank 0 = leader of stage 0 embeds */
  if (d->me->has_embedding && e->code == 0 && model_embed(f->m, ids, T, f->x, e) == 0 && f->cap &&
      f->cap->embedding_out)
    memcpy(f->cap->embedding_out + (size_t)pos0 * D, f->x, (size_t)T * D * sizeof(float));
  if (dist_agree(d, e) != 0) return -1;

  for (int l = 0; l < f->n_layers; l++) {
    const int s = stage_of_layer(f, l), L = leader_of(f, s);
    move_hidden(f, holder, L, T, e); /* both ends are healthy: they agreed just before */
    holder = L;
    if (d->me->stage == s) run_layer(f, l, T, pos0, e);
    if (dist_agree(d, e) != 0) return -1;
    if (f->progress) f->progress(f->progress_ctx, l + 1, f->n_layers);
  }

  /* head on the last stage's leader */
  const int H = leader_of(f, d->plan.n_stages - 1);
  move_hidden(f, holder, H, T, e);
  int32_t best = 0;
  if (d->me->stage == d->plan.n_stages - 1) head(f, T, pos0, all_logits, &best, e);
  if (dist_agree(d, e) != 0) return -1;
  MPI_Bcast(&best, 1, MPI_INT32_T, H, d->world);
  *next_id = best;
  return 0;
}

/* ---------------------------------------------------------------- trace gathering */

static int move_rows(dfwd *f, void *p, size_t row_elems, int n_pos, int from, int tag) {
  if (from == 0 || !p) return 0;
  size_t n = row_elems * (size_t)n_pos;
  if (f->d->rank == from) return send_words(f, p, n, 0, tag);
  if (f->d->rank == 0) return recv_words(f, p, n, from, tag);
  return 0;
}

int dfwd_gather_capture(dfwd *f, int n_pos, err *e) {
  dist *d = f->d;
  const size_t D = f->c.hidden, E = f->c.n_experts, K = f->c.top_k, I = f->c.intermediate;
  const size_t QKV = config_qkv_rows(&f->c), HD = (size_t)f->c.n_heads * f->c.head_dim;
  int rc = 0;
  for (int l = 0; l < f->n_layers; l++) {
    const int L = leader_of(f, stage_of_layer(f, l));
    if (L == 0 || (d->rank != 0 && d->rank != L)) continue;
    model_layer_capture *lc = &f->cap->layers[l];
    struct { void *p; size_t w; } parts[] = {
        {lc->attn_norm_out, D}, {lc->qkv_out, QKV}, {lc->sdpa_out, HD},
        {lc->hidden_after_attn, D}, {lc->mlp_norm_out, D}, {lc->router_logits, E},
        {lc->topk_indices, K}, {lc->topk_values, K}, {lc->topk_weights, K},
        {lc->mlp1_out, K * 2 * I}, {lc->swiglu_out, K * I}, {lc->hidden_after_mlp, D}};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
      rc |= move_rows(f, parts[i].p, parts[i].w, n_pos, L, 100 + (int)i);
  }
  const int H = leader_of(f, d->plan.n_stages - 1);
  if (d->rank == 0 || d->rank == H) {
    rc |= move_rows(f, f->cap->final_norm_out, D, n_pos, H, 200);
    rc |= move_rows(f, f->cap->logits, f->c.vocab, n_pos, H, 201);
  }
  if (rc) err_set(e, EXIT_RUNTIME, "MPI transfer of the trace to rank 0 failed");
  return dist_agree(d, e);
}
