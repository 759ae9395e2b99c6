/* The per-stage candidate (parity_stage.h). */
#include "parity_stage.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export_layout.h"
#include "guard.h"
#include "export_write.h"
#include "log.h"
#include "ort.h"
#include "ort_trace.h"
#include "plan.h"

/* One layer's check: its sub-model, run on the rank the plan gives it (plan_parity_unit_rank);
 * the last layer the reference ran also carries the head. */
typedef struct {
  int layer;
  int rank;
  int head;   /* also the final norm, unembedding, logits */
} unit;

/* Move n elements of type t from rank `from` (src) to rank `to` (dst); a copy when they are
 * the same rank. Only those two ranks take part; chunks keep every count within int. */
static void move(dist *d, const void *src, void *dst, size_t n, MPI_Datatype t, size_t esize,
                 int from, int to) {
  if (from == to) {
    if (d->rank == from && n) memcpy(dst, src, n * esize);
    return;
  }
  const size_t chunk = (size_t)1 << 26;
  for (size_t off = 0; off < n; off += chunk) {
    const int k = (int)(n - off < chunk ? n - off : chunk);
    if (d->rank == from) {
      MPI_Send((const char *)src + off * esize, k, t, to, 61, d->world);
      d->bytes_sent += (uint64_t)k * esize;
    } else if (d->rank == to) {
      MPI_Recv((char *)dst + off * esize, k, t, from, 61, d->world, MPI_STATUS_IGNORE);
    }
  }
}

/* This rank's work for one layer: its sub-model (exported to a temporary directory, or given)
 * run in ONNX Runtime on hin [T, D]. The checkpoint pages the export read leave the resident set
 * before ONNX Runtime loads the model; the temporary directory is gone when this returns. Local. */
typedef struct {
  double t_export, t_ort;  /* seconds, summed over the rank's layers */
  uint64_t touched;        /* largest checkpoint bytes resident after one layer's export */
  uint64_t peak;           /* largest VmHWM of one layer (reset before each; 0 = not measured) */
} unit_stats;

static int unit_run(const parity_stage_in *in, const unit *u, const parity_stage_opts *o,
                    long pid0, const float *hin, trace *st, char *ort_ver, size_t vl,
                    unit_stats *us, err *e) {
  const gpt_config *c = ckpt_config(in->ck);
  const int l0 = u->layer, l1 = u->layer + 1;
  char dir[PATH_MAX], path[PATH_MAX + 64];
  export_layout L;
  int have_layout = 0, made = 0, rc = 0;
  const int measured = dist_reset_peak_rss() == 0;
  double t0 = log_now();
  if (o->onnx_dir) {
    snprintf(path, sizeof path, "%s/layers-%d-%d/%s", o->onnx_dir, l0, l1, EXPORT_MODEL_FILE);
    if (access(path, R_OK) != 0)
      rc = err_errno(e, errno, "%s: no sub-model of layer %d (make it with `gptoss-mpi "
                     "export CKPT --layers %d:%d --expose routing,hidden --output %s/layers-%d-%d`)",
                     path, l0, l0, l1, o->onnx_dir, l0, l1);
  } else {
    snprintf(dir, sizeof dir, "%s/.parity-layer%d.tmp.%ld", o->tmp_parent, l0, pid0);
    snprintf(path, sizeof path, "%s/%s", dir, EXPORT_MODEL_FILE);
    export_opts eo = {.dense = EXPORT_DENSE_BF16, .layer0 = l0, .n_layers = l1,
                      .sub_model = 1, .sub_head = u->head, .max_positions = in->T,
                      .expose_routing = 1, .expose_hidden = 1};
    if (guard_add_output(dir) != 0) /* removed if the job is stopped */
      rc = err_set(e, EXIT_RUNTIME, "too many outputs staged at once");
    else if (mkdir(dir, 0755) != 0)
      rc = err_errno(e, errno, "%s: cannot create the temporary directory", dir);
    else
      made = 1;
    if (rc != 0 && !made) guard_drop_output(dir);
    if (rc == 0) rc = export_layout_make(in->ck, &eo, NULL, &L, e);
    have_layout = rc == 0;
    if (rc == 0) rc = export_write_local(in->ck, &L, dir, e);
    if (have_layout) export_layout_free(&L);
    const uint64_t touched = dist_resident_file_bytes(ckpt_dir(in->ck));
    if (touched > us->touched) us->touched = touched;
    ckpt_release_pages(in->ck);
  }
  double t1 = log_now();
  us->t_export += t1 - t0;
  ort_runtime *rt = NULL;
  if (rc == 0) rc = ort_open(o->ort_lib, &rt, e);
  if (rc == 0) {
    snprintf(ort_ver, vl, "%s", ort_version(rt));
    rc = ort_trace_run_stage(rt, path, c, l0, l1, u->head, hin, in->T, 0, st, e);
  }
  ort_close(rt);
  us->t_ort += log_now() - t1;
  const uint64_t peak = measured ? dist_peak_rss() : 0;
  if (peak > us->peak) us->peak = peak;
  if (made) {
    guard_remove_tree(dir);
    guard_drop_output(dir);
  }
  return rc;
}

/* Drop the tensors an ONNX run does not have (debug captures, embedding, final norm). */
static void strip_debug(trace *tr) {
  for (int l = 0; l < tr->n_layers; l++) {
    model_layer_capture *lc = &tr->layers[l];
    float **dbg[] = {&lc->attn_norm_out, &lc->qkv_out, &lc->sdpa_out, &lc->mlp_norm_out,
                     &lc->mlp1_out, &lc->swiglu_out};
    for (size_t i = 0; i < sizeof dbg / sizeof dbg[0]; i++) {
      free(*dbg[i]);
      *dbg[i] = NULL;
    }
  }
  free(tr->embedding_out);
  free(tr->final_norm_out);
  tr->embedding_out = tr->final_norm_out = NULL;
}

/* One layer's results to rank 0: routing and hidden states, and the logits with the head. */
static void gather_unit(dist *d, const unit *u, const trace *st, trace *cand, int T,
                        const gpt_config *c) {
  const size_t K = (size_t)c->top_k, E = (size_t)c->n_experts, D = (size_t)c->hidden;
  const int from = u->rank;
  const model_layer_capture *a = d->rank == from ? &st->layers[0] : NULL;
  model_layer_capture *b = d->rank == 0 ? &cand->layers[u->layer] : NULL;
#define MOVE(m, n, t, sz) move(d, a ? a->m : NULL, b ? b->m : NULL, (size_t)T * (n), t, sz, from, 0)
  MOVE(topk_indices, K, MPI_INT32_T, sizeof(int32_t));
  MOVE(topk_values, K, MPI_FLOAT, sizeof(float));
  MOVE(topk_weights, K, MPI_FLOAT, sizeof(float));
  MOVE(router_logits, E, MPI_FLOAT, sizeof(float));
  MOVE(hidden_after_attn, D, MPI_FLOAT, sizeof(float));
  MOVE(hidden_after_mlp, D, MPI_FLOAT, sizeof(float));
#undef MOVE
  if (u->head)
    move(d, d->rank == from ? st->logits : NULL, d->rank == 0 ? cand->logits : NULL,
         (size_t)T * (size_t)c->vocab, MPI_FLOAT, sizeof(float), from, 0);
}

/* Rank 0: the plan's figures for every rank with the reference's own routing (plan_apply_routing:
 * the experts its positions selected instead of the expectation); NULL if it cannot. */
static plan_parity_rank *routed_plan(const gpt_config *c, const dist *d, const parity_stage_in *in,
                                     uint64_t **resident) {
  const trace *ref = in->ref;
  *resident = NULL;
  if (!ref || ref->n_layers < in->n_layers || ref->T < in->T) return NULL;
  const int32_t **topk = calloc((size_t)in->n_layers + 1, sizeof *topk);
  plan p = d->plan;
  p.ranks = malloc((size_t)d->size * sizeof *p.ranks);
  plan_parity_rank *pp = calloc((size_t)d->size, sizeof *pp);
  uint64_t *res = malloc((size_t)d->size * sizeof *res);
  plan_routing rt;
  err e = {0};
  int ok = topk && p.ranks && pp && res;
  for (int l = 0; ok && l < in->n_layers; l++) topk[l] = ref->layers[l].topk_indices;
  if (ok && plan_routing_from_topk(c, in->n_layers, in->T, ref->K, topk, &rt, &e) == 0) {
    memcpy(p.ranks, d->plan.ranks, (size_t)d->size * sizeof *p.ranks);
    plan_apply_routing(c, &p, &rt);
    plan_parity(c, &p, in->n_layers, in->T, &rt, pp);
    for (int r = 0; r < d->size; r++) res[r] = p.ranks[r].resident_bytes;
    plan_routing_free(&rt);
  } else {
    ok = 0;
  }
  free(topk);
  free(p.ranks);
  if (!ok) {
    free(pp);
    free(res);
    return NULL;
  }
  *resident = res;
  return pp;
}

/* Per rank (with -v): the C forward's figures, the sub-models' (times, checkpoint bytes an export
 * touched, peak RSS of one layer) and the plan's (plan_parity), both as planned beforehand and
 * with the reference's routing; the largest measured / planned on every run. */
static void report_memory(dist *d, const parity_stage_in *in, const unit_stats *us, double t) {
  const gpt_config *c = ckpt_config(in->ck);
  plan_parity_rank *pp = calloc((size_t)d->size, sizeof *pp);
  if (pp) plan_parity(c, &d->plan, in->n_layers, in->T, NULL, pp);
  const plan_parity_rank *me = pp ? &pp[d->rank] : NULL;
  double v[11] = {(double)in->fwd_peak, (double)in->fwd_anon, (double)in->fwd_touched, us->t_export,
                  us->t_ort, (double)us->touched, (double)us->peak,
                  me ? (double)me->forward_bytes : 0, me ? (double)me->ort_bytes : 0,
                  me ? (double)me->n_units : 0, me ? (double)me->forward_anon_bytes : 0};
  const int nv = (int)(sizeof v / sizeof v[0]);
  double *all = d->rank == 0 ? malloc((size_t)d->size * sizeof v) : NULL;
  int have_all = d->rank != 0 || all;
  MPI_Bcast(&have_all, 1, MPI_INT, 0, d->world);
  if (have_all) MPI_Gather(v, nv, MPI_DOUBLE, all, nv, MPI_DOUBLE, 0, d->world);
  uint64_t *res = NULL;
  plan_parity_rank *rp = all ? routed_plan(c, d, in, &res) : NULL;
  const double M = 1048576.0;
  double worst = 0, worst_routed = 0;
  for (int r = 0; all && r < d->size; r++) {
    const double *x = &all[nv * r];
    char routed[3][48] = {"", "", ""};
    if (rp) {
      snprintf(routed[0], sizeof routed[0], ", with this routing %.1f MiB", (double)rp[r].forward_bytes / M);
      snprintf(routed[1], sizeof routed[1], " (with this routing: resident %.1f MiB)", (double)res[r] / M);
      snprintf(routed[2], sizeof routed[2], ", with this routing %.1f MiB", (double)rp[r].ort_bytes / M);
    }
    log_verbose("   rank %d: forward peak RSS %.1f MiB (plan %.1f MiB%s), anonymous %.1f MiB (plan "
                "%.1f MiB), checkpoint touched %.1f MiB%s; %d layer sub-model%s: export %.2f s, ONNX "
                "Runtime %.2f s, checkpoint touched %.1f MiB, peak RSS %.1f MiB (plan %.1f MiB%s)", r,
                x[0] / M, x[7] / M, routed[0], x[1] / M, x[10] / M, x[2] / M, routed[1], (int)x[9],
                x[9] == 1 ? "" : "s", x[3], x[4], x[5] / M, x[6] / M, x[8] / M, routed[2]);
    const double peak = x[0] > x[6] ? x[0] : x[6], plan = x[7] > x[8] ? x[7] : x[8];
    if (plan > 0 && peak / plan > worst) worst = peak / plan;
    const double rplan = rp ? (double)rp[r].peak_bytes : 0;
    if (rplan > 0 && peak / rplan > worst_routed) worst_routed = peak / rplan;
  }
  if (all && rp)
    log_info("per-stage: sub-models in %.2f s; largest peak RSS / plan of a rank %.3f (with this "
             "routing %.3f)", t, worst, worst_routed);
  else if (all)
    log_info("per-stage: sub-models in %.2f s; largest peak RSS / plan of a rank %.3f", t, worst);
  free(rp);
  free(res);
  free(all);
  free(pp);
}

int parity_stage_candidate(dist *d, const parity_stage_in *in, const parity_stage_opts *o,
                           trace *cand, char *desc, size_t desc_len, err *e) {
  const gpt_config *c = ckpt_config(in->ck);
  const int T = in->T, nl = in->n_layers;
  const size_t D = (size_t)c->hidden;
  unit *u = calloc((size_t)nl, sizeof *u);
  float **hin = calloc((size_t)nl, sizeof *hin);  /* [layer]: this rank's units only */
  trace *st = calloc((size_t)nl, sizeof *st);     /* [layer]: this rank's results */
  int *have_st = calloc((size_t)nl, sizeof *have_st);
  int have_cand = 0, n_stages = 0;
  char ver[64] = "";
  memset(cand, 0, sizeof *cand);

  /* the units and, on their ranks, the buffers for the reference state entering each */
  if (!u || !hin || !st || !have_st) {
    err_set(e, EXIT_RUNTIME, "out of memory");
  } else {
    for (int l = 0; l < nl; l++) {
      u[l] = (unit){l, plan_parity_unit_rank(&d->plan, l), l == nl - 1};
      if (u[l].rank != d->rank) continue;
      if (!(hin[l] = malloc((size_t)T * D * sizeof *hin[l]))) {
        err_set(e, EXIT_RUNTIME, "out of memory (%d x %zu state entering layer %d)", T, D, l);
        break;
      }
    }
    /* export adds the head only to a sub-model that ends at the checkpoint's last layer, so
     * prepared sub-models cannot serve a reference cut short with --max-layers */
    if (o->onnx_dir && nl < c->n_layers)
      err_set(e, EXIT_USAGE, "--per-stage --onnx DIR needs the reference on all %d layers (the "
              "exported sub-models end with the checkpoint's head); drop --max-layers or --onnx "
              "(then each rank exports what it needs)", c->n_layers);
    if (d->rank == 0 && e->code == 0 && !in->ref->embedding_out)
      err_set(e, EXIT_USAGE, "the reference has no embedding_out (the state entering layer 0), "
              "which per-stage parity starts from");
  }
  if (dist_agree(d, e) != 0) goto out;
  for (int s = 0; s < d->plan.n_stages && d->plan.stage_layer0[s] < nl; s++) n_stages++;
  log_info("== per-stage: %d stage%s, %d layer%s: every layer's sub-model exported and run in ONNX "
           "Runtime by one of its stage's ranks on the reference state entering it", n_stages,
           n_stages > 1 ? "s" : "", nl, nl > 1 ? "s" : "");
  for (int l = 0; l < nl; l++)
    log_verbose("   layer %d on rank %d%s", l, u[l].rank, u[l].head ? ", with the head" : "");

  /* the reference state entering each layer, from rank 0 to the layer's rank */
  for (int l = 0; l < nl; l++) {
    const float *src = NULL;
    if (d->rank == 0) src = l == 0 ? in->ref->embedding_out : in->ref->layers[l - 1].hidden_after_mlp;
    move(d, src, hin[l], (size_t)T * D, MPI_FLOAT, sizeof(float), 0, u[l].rank);
  }

  /* every rank its layers, one at a time; temporary sub-models in the report's directory,
   * named by rank 0's pid */
  long pid0 = (long)getpid();
  MPI_Bcast(&pid0, 1, MPI_LONG, 0, d->world);
  const double t_start = log_now();
  unit_stats us = {0};
  for (int l = 0; l < nl && e->code == 0; l++) {
    if (u[l].rank != d->rank || dist_fault(d, "stage", e) != 0) continue;
    have_st[l] = unit_run(in, &u[l], o, pid0, hin[l], &st[l], ver, sizeof ver, &us, e) == 0;
    free(hin[l]);
    hin[l] = NULL;
  }
  if (dist_agree(d, e) != 0) goto out;

  /* one candidate trace on rank 0 */
  if (d->rank == 0 && (have_cand = trace_alloc(cand, c, T, nl, e) == 0)) {
    strip_debug(cand);
    memcpy(cand->input_ids, in->ref->input_ids, (size_t)T * sizeof *cand->input_ids);
  }
  if (dist_agree(d, e) != 0) goto out;
  for (int l = 0; l < nl; l++) gather_unit(d, &u[l], &st[l], cand, T, c);
  /* the transfers are the ranks' last work: agree on it before rank 0 judges anything */
  if (dist_agree(d, e) != 0) goto out;
  /* the ONNX Runtime version, from the rank of layer 0 (rank 0 may have had no layer) */
  {
    char v0[64];
    memcpy(v0, ver, sizeof v0);
    const int from = u[0].rank;
    move(d, v0, ver, sizeof v0, MPI_CHAR, 1, from, 0);
  }
  report_memory(d, in, &us, log_now() - t_start);
  snprintf(desc, desc_len, "ONNX Runtime %s: %d one-layer sub-model%s (%s) on %d stage%s, each on "
           "the reference state entering its layer", ver, nl, nl > 1 ? "s" : "",
           o->onnx_dir ? o->onnx_dir : "exported by the ranks that ran them", n_stages,
           n_stages > 1 ? "s" : "");
out:
  if (e->code && have_cand) trace_free(cand);
  for (int l = 0; st && l < nl; l++)
    if (have_st && have_st[l]) trace_free(&st[l]);
  for (int l = 0; hin && l < nl; l++) free(hin[l]);
  free(have_st);
  free(st);
  free(hin);
  free(u);
  return e->code ? -1 : 0;
}
