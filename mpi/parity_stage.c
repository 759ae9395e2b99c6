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

typedef struct {
  int layer0, layer1;     /* layers [layer0, layer1) */
  int leader;             /* rank that runs the stage */
  int head;               /* also the final norm, unembedding, logits */
} stage_range;

/* The stages that hold layers the reference ran, in order. Local. */
static int stage_ranges(const plan *p, int n_layers, stage_range *sr) {
  int n = 0;
  for (int s = 0; s < p->n_stages && p->stage_layer0[s] < n_layers; s++, n++) {
    sr[n].layer0 = p->stage_layer0[s];
    sr[n].layer1 = p->stage_layer0[s + 1] < n_layers ? p->stage_layer0[s + 1] : n_layers;
    sr[n].leader = s * p->n_groups;
    sr[n].head = sr[n].layer1 == n_layers;
  }
  return n;
}

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

/* The leader's work: the stage's sub-model (exported to a temporary directory, or given) run in
 * ONNX Runtime on hin [T, D]. The temporary directory is gone when this returns. Local. */
static int stage_run(const fwd_job *j, const stage_range *sr, int s, const parity_stage_opts *o,
                     long pid0, const float *hin, trace *st, char *ort_ver, size_t vl, err *e) {
  const gpt_config *c = ckpt_config(j->ck);
  char dir[PATH_MAX], path[PATH_MAX + 64];
  export_layout L;
  int have_layout = 0, made = 0, rc = 0;
  if (o->onnx_dir) {
    snprintf(path, sizeof path, "%s/layers-%d-%d/%s", o->onnx_dir, sr->layer0, sr->layer1,
             EXPORT_MODEL_FILE);
    if (access(path, R_OK) != 0)
      rc = err_errno(e, errno, "%s: no sub-model of layers %d-%d (make it with `gptoss-mpi "
                     "export CKPT --layers %d:%d --expose routing,hidden --output %s/layers-%d-%d`)",
                     path, sr->layer0, sr->layer1 - 1, sr->layer0, sr->layer1, o->onnx_dir,
                     sr->layer0, sr->layer1);
  } else {
    snprintf(dir, sizeof dir, "%s/.parity-stage%d.tmp.%ld", o->tmp_parent, s, pid0);
    snprintf(path, sizeof path, "%s/%s", dir, EXPORT_MODEL_FILE);
    export_opts eo = {.dense = EXPORT_DENSE_BF16, .layer0 = sr->layer0, .n_layers = sr->layer1,
                      .sub_model = 1, .sub_head = sr->head, .max_positions = j->T_done,
                      .expose_routing = 1, .expose_hidden = 1};
    if (guard_add_output(dir) != 0) /* removed if the job is stopped */
      rc = err_set(e, EXIT_RUNTIME, "too many outputs staged at once");
    else if (mkdir(dir, 0755) != 0)
      rc = err_errno(e, errno, "%s: cannot create the temporary directory", dir);
    else
      made = 1;
    if (rc != 0 && !made) guard_drop_output(dir);
    if (rc == 0) rc = export_layout_make(j->ck, &eo, NULL, &L, e);
    have_layout = rc == 0;
    if (rc == 0) rc = export_write_local(j->ck, &L, dir, e);
  }
  ort_runtime *rt = NULL;
  if (rc == 0) rc = ort_open(o->ort_lib, &rt, e);
  if (rc == 0) {
    snprintf(ort_ver, vl, "%s", ort_version(rt));
    rc = ort_trace_run_stage(rt, path, c, sr->layer0, sr->layer1, sr->head, hin, j->T_done, 0, st, e);
  }
  ort_close(rt);
  if (made) {
    guard_remove_tree(dir);
    guard_drop_output(dir);
  }
  if (have_layout) export_layout_free(&L);
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

/* Stage results to rank 0: every layer's routing and hidden states, and the logits. */
static void gather_stage(dist *d, const stage_range *sr, const trace *st, trace *cand, int T,
                         const gpt_config *c) {
  const size_t K = (size_t)c->top_k, E = (size_t)c->n_experts, D = (size_t)c->hidden;
  const int from = sr->leader;
  for (int l = sr->layer0; l < sr->layer1; l++) {
    const model_layer_capture *a = d->rank == from ? &st->layers[l - sr->layer0] : NULL;
    model_layer_capture *b = d->rank == 0 ? &cand->layers[l] : NULL;
#define MOVE(m, n, t, sz) move(d, a ? a->m : NULL, b ? b->m : NULL, (size_t)T * (n), t, sz, from, 0)
    MOVE(topk_indices, K, MPI_INT32_T, sizeof(int32_t));
    MOVE(topk_values, K, MPI_FLOAT, sizeof(float));
    MOVE(topk_weights, K, MPI_FLOAT, sizeof(float));
    MOVE(router_logits, E, MPI_FLOAT, sizeof(float));
    MOVE(hidden_after_attn, D, MPI_FLOAT, sizeof(float));
    MOVE(hidden_after_mlp, D, MPI_FLOAT, sizeof(float));
#undef MOVE
  }
  if (sr->head)
    move(d, d->rank == from ? st->logits : NULL, d->rank == 0 ? cand->logits : NULL,
         (size_t)T * (size_t)c->vocab, MPI_FLOAT, sizeof(float), from, 0);
}

int parity_stage_candidate(dist *d, const fwd_job *j, const parity_stage_opts *o, trace *cand,
                           char *desc, size_t desc_len, err *e) {
  const gpt_config *c = ckpt_config(j->ck);
  const int T = j->T_done;
  const size_t D = (size_t)c->hidden;
  stage_range *sr = calloc((size_t)d->plan.n_stages, sizeof *sr);
  float *hin = NULL;
  trace st = {0};
  int have_st = 0, have_cand = 0, my = -1, n_st = 0;
  char ver[64] = "";
  memset(cand, 0, sizeof *cand);

  /* buffers: the boundary state on every leader */
  if (!sr) {
    err_set(e, EXIT_RUNTIME, "out of memory");
  } else {
    n_st = stage_ranges(&d->plan, j->n_layers, sr);
    for (int s = 0; s < n_st; s++)
      if (sr[s].leader == d->rank) my = s;
    /* export adds the head only to a sub-model that ends at the checkpoint's last layer, so
     * prepared sub-models cannot serve a reference cut short with --max-layers */
    if (o->onnx_dir && j->n_layers < c->n_layers)
      err_set(e, EXIT_USAGE, "--per-stage --onnx DIR needs the reference on all %d layers (the "
              "exported sub-models end with the checkpoint's head); drop --max-layers or --onnx "
              "(then each stage exports what it needs)", c->n_layers);
    if (my >= 0 && !(hin = malloc((size_t)T * D * sizeof *hin)))
      err_set(e, EXIT_RUNTIME, "out of memory (%d x %zu boundary state)", T, D);
  }
  if (dist_agree(d, e) != 0) goto out;
  log_info("== per-stage: %d stage%s, each exported and run in ONNX Runtime by its leader on "
           "the reference state at its boundary", n_st, n_st > 1 ? "s" : "");
  for (int s = 0; s < n_st; s++)
    log_verbose("   stage %d: layers %d-%d on rank %d%s", s, sr[s].layer0, sr[s].layer1 - 1,
                sr[s].leader, sr[s].head ? ", with the head" : "");

  /* the reference state entering each stage, from rank 0 to the stage's leader */
  for (int s = 0; s < n_st; s++) {
    const float *src = NULL;
    if (d->rank == 0)
      src = sr[s].layer0 == 0 ? j->tr.embedding_out : j->tr.layers[sr[s].layer0 - 1].hidden_after_mlp;
    move(d, src, s == my ? hin : NULL, (size_t)T * D, MPI_FLOAT, sizeof(float), 0, sr[s].leader);
  }

  /* every leader its stage; temporary sub-models in the report's directory, named by rank 0's pid */
  long pid0 = (long)getpid();
  MPI_Bcast(&pid0, 1, MPI_LONG, 0, d->world);
  if (my >= 0 && dist_fault(d, "stage", e) == 0)
    have_st = stage_run(j, &sr[my], my, o, pid0, hin, &st, ver, sizeof ver, e) == 0;
  if (dist_agree(d, e) != 0) goto out;

  /* one candidate trace on rank 0 */
  if (d->rank == 0 && (have_cand = trace_alloc(cand, c, T, j->n_layers, e) == 0)) {
    strip_debug(cand);
    memcpy(cand->input_ids, j->tr.input_ids, (size_t)T * sizeof *cand->input_ids);
  }
  if (dist_agree(d, e) != 0) goto out;
  for (int s = 0; s < n_st; s++) gather_stage(d, &sr[s], &st, cand, T, c);
  /* the transfers are the stage leaders' last work: agree on it before rank 0 judges anything */
  if (dist_agree(d, e) != 0) goto out;
  snprintf(desc, desc_len, "ONNX Runtime %s: %d sub-model%s (%s), per stage on the reference "
           "state at its boundary", ver, n_st, n_st > 1 ? "s" : "",
           o->onnx_dir ? o->onnx_dir : "exported by the stage leaders");
out:
  if (e->code && have_cand) trace_free(cand);
  if (have_st) trace_free(&st);
  free(hin);
  free(sr);
  return e->code ? -1 : 0;
}
