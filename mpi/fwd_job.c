/* The forward pass as one distributed job (fwd_job.h). */
#include "fwd_job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "log.h"
#include "plan.h"
#include "progress.h"

int fwd_job_opts_init(fwd_job_opts *o, long default_max_tokens, err *e) {
  memset(o, 0, sizeof *o);
  o->max_tokens = default_max_tokens;
  o->reasoning = TOK_REASONING_MEDIUM;
  o->threads = 1;
  o->progress_s = 10.0;
  const char *env = getenv("GPTOSS_THREADS");
  if (env && *env && cli_parse_long(env, "GPTOSS_THREADS", 1, 1024, &o->threads, e) != 0) return -1;
  return 0;
}

int fwd_job_opt(fwd_job_opts *o, int opt, const char *arg, err *e) {
  switch (opt) {
    case FWD_OPT_IDS: o->ids_arg = arg; return 1;
    case FWD_OPT_FILE: o->ids_file = arg; return 1;
    case FWD_OPT_MAXTOK: return cli_parse_long(arg, "--max-tokens", 0, 1000000, &o->max_tokens, e) ? -1 : 1;
    case FWD_OPT_MAXLAYERS: return cli_parse_long(arg, "--max-layers", 1, 1000000, &o->max_layers, e) ? -1 : 1;
    case FWD_OPT_THREADS: return cli_parse_long(arg, "--threads", 1, 1024, &o->threads, e) ? -1 : 1;
    case FWD_OPT_STAGES: return cli_parse_long(arg, "--stages", 1, PLAN_MAX_STAGES, &o->stages, e) ? -1 : 1;
    case FWD_OPT_PROMPT: o->prompt_text = arg; return 1;
    case FWD_OPT_CHAT: o->chat_text = arg; return 1;
    case FWD_OPT_SYSTEM: o->system_text = arg; return 1;
    case FWD_OPT_TOKENIZER:
      if (!*arg) return err_set(e, EXIT_USAGE, "--tokenizer: the path is empty"), -1;
      o->tok_path = arg;
      return 1;
    case FWD_OPT_REASONING: {
      tok_reasoning r;
      if (tok_reasoning_parse(arg, &r) != 0)
        return err_set(e, EXIT_USAGE, "--reasoning: '%s' is not low, medium or high", arg), -1;
      o->reasoning = (int)r;
      o->reasoning_given = 1;
      return 1;
    }
    case FWD_OPT_PREC:
      if (!strcmp(arg, "fp32")) o->precision = MODEL_FP32;
      else if (!strcmp(arg, "bf16")) o->precision = MODEL_BF16;
      else return err_set(e, EXIT_USAGE, "--precision: '%s' is not fp32 or bf16", arg), -1;
      return 1;
    default: return 0;
  }
}

int fwd_job_check_prompt(const fwd_job_opts *o, int needed, err *e) {
  const int n = !!o->ids_arg + !!o->ids_file + !!o->prompt_text + !!o->chat_text;
  if (n > 1 || (needed && n == 0))
    return err_set(e, EXIT_USAGE, "give exactly one of --prompt-ids, --prompt-file, --prompt and "
                   "--chat");
  if (!o->chat_text && (o->system_text || o->reasoning_given))
    return err_set(e, EXIT_USAGE, "--system and --reasoning go with --chat");
  if (o->tok_path && !o->prompt_text && !o->chat_text && !o->want_tokenizer)
    return err_set(e, EXIT_USAGE, "--tokenizer goes with --prompt or --chat (or --print-text)");
  return 0;
}

/* The prompt's ids: parsed (--prompt-ids, --prompt-file) or encoded by the checkpoint's tokenizer
 * (--prompt, --chat), which then stays open in j->tok. Local (every rank does the same). */
static int prompt_ids(const fwd_job_opts *o, fwd_job *j, const gpt_config *c, int32_t **ids,
                      err *e) {
  if (o->ids_arg || o->ids_file) {
    if (o->want_tokenizer && tok_find(ckpt_dir(j->ck), o->tok_path, &j->tok, e) != 0) return -1;
    return o->ids_arg ? cli_parse_ids(o->ids_arg, "--prompt-ids", c->vocab - 1, ids, &j->n_prompt, e)
                      : cli_read_ids_file(o->ids_file, c->vocab - 1, ids, &j->n_prompt, e);
  }
  if (tok_find(ckpt_dir(j->ck), o->tok_path, &j->tok, e) != 0) return -1;
  tok_ids v = {0};
  int rc;
  if (o->prompt_text) {
    rc = tok_encode(j->tok, "--prompt", o->prompt_text, strlen(o->prompt_text), &v, e);
  } else {
    tok_chat ch;
    tok_chat_init(&ch);
    ch.reasoning = (tok_reasoning)o->reasoning;
    ch.user = o->chat_text;
    ch.user_len = strlen(o->chat_text);
    if (o->system_text) {
      ch.developer = o->system_text;
      ch.developer_len = strlen(o->system_text);
    }
    rc = tok_chat_encode(j->tok, &ch, &v, e);
  }
  if (rc == 0 && v.n == 0) rc = err_set(e, EXIT_USAGE, "--prompt: the text is empty (no tokens)");
  if (rc == 0 && v.n > 0x3fffffff) rc = err_set(e, EXIT_USAGE, "the prompt has too many tokens");
  for (size_t i = 0; rc == 0 && i < v.n; i++)
    if (v.ids[i] >= c->vocab)
      rc = err_set(e, EXIT_USAGE, "%s: the tokenizer gives id %d (token %zu of the prompt), beyond "
                   "the checkpoint's vocabulary of %d (vocab_size in %s)", tok_path(j->tok),
                   v.ids[i], i, c->vocab, ckpt_config_path(j->ck));
  if (rc == 0) {
    *ids = v.ids;
    j->n_prompt = (int)v.n;
  } else {
    tok_ids_free(&v);
  }
  return rc;
}

/* the ranks agree after every layer, so every rank's count is the job's */
static void on_layer(void *ctx, int done, int n) {
  (void)n;
  progress_note(ctx, (uint64_t)done);
}

/* The positions a checkpoint supports (its RoPE tables and exported caches cover them). */
static long context_positions(const gpt_config *c) {
  const double v = (double)c->initial_context_length * c->rope_scaling_factor;
  return v > 2147483647.0 ? 2147483647L : (long)v;
}

/* Check the tensors this rank owns before any use (no NaN/inf, no overflowing MXFP4 scale):
 * a corrupt tensor that only one rank reads is reported by that rank. Attention and head rows
 * as the stage shares them (plan_group_share, mpi/dist_forward.c): the attention units' q/k/v
 * rows, the output-projection rows and the vocabulary rows of this rank's group. */
static int check_owned(const ckpt *ck, const plan *p, const plan_rank *me, int n_layers, err *e) {
  const gpt_config *c = ckpt_config(ck);
  const int64_t Dh = c->head_dim, HD = (int64_t)c->n_heads * Dh, WA = (int64_t)c->n_kv_heads * Dh;
  const int64_t Gq = c->n_heads / c->n_kv_heads;
  int u0, u1, d0, d1;
  int64_t v0, v1;
  plan_group_share(c, p->n_groups, me->group, &u0, &u1, &d0, &d1, &v0, &v1);
  const int units = u0 < u1;
  struct { ckpt_role role; int own; int64_t r0, r1; } parts[] = {
      {CK_ATTN_NORM, me->leader || units, 0, -1}, {CK_QKV_B, units, 0, -1},
      {CK_SINKS, units, 0, -1},                   {CK_QKV_W, units, u0 * Gq * Dh, u1 * Gq * Dh},
      {CK_QKV_W, units, HD + u0 * Dh, HD + u1 * Dh}, {CK_QKV_W, units, HD + WA + u0 * Dh, HD + WA + u1 * Dh},
      {CK_OUT_B, d0 < d1, 0, -1},                 {CK_OUT_W, d0 < d1, d0, d1},
      {CK_MLP_NORM, me->leader, 0, -1},           {CK_GATE_W, me->leader, 0, -1},
      {CK_GATE_B, me->leader, 0, -1}};
  static const ckpt_role expert_roles[] = {CK_MLP1_SCALES, CK_MLP1_BIAS, CK_MLP2_SCALES, CK_MLP2_BIAS};
  int last = me->layer0 + me->n_layers < n_layers ? me->layer0 + me->n_layers : n_layers;
  for (int l = me->layer0; l < last; l++) {
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
      if (!parts[i].own) continue;
      const ckpt_tensor *t = ckpt_tensor_find(ck, l, parts[i].role);
      const int64_t r1 = parts[i].r1 < 0 ? (t->n_dims ? t->shape[0] : 1) : parts[i].r1;
      if (ckpt_check_rows(ck, t, parts[i].r0, r1 - parts[i].r0, e) != 0) return -1;
    }
    for (size_t i = 0; i < sizeof expert_roles / sizeof expert_roles[0]; i++)
      if (ckpt_check_rows(ck, ckpt_tensor_find(ck, l, expert_roles[i]), me->expert0,
                          me->n_experts, e) != 0)
        return -1;
  }
  if (me->stage == p->n_stages - 1) {
    const ckpt_tensor *n = ckpt_tensor_find(ck, -1, CK_NORM), *u = ckpt_tensor_find(ck, -1, CK_UNEMBEDDING);
    if (ckpt_check_rows(ck, n, 0, n->shape[0], e) != 0 || ckpt_check_rows(ck, u, v0, v1 - v0, e) != 0)
      return -1;
  }
  return 0;
}

int fwd_job_run(dist *d, const fwd_job_opts *o, fwd_job *j, err *e) {
  memset(j, 0, sizeof *j);
  j->t_start = log_now();
  int32_t *ids = NULL;
  model_set_threads((int)o->threads);

  /* open */
  log_info("== open: %s (%d rank%s)", o->ckpt, d->size, d->size > 1 ? "s" : "");
  if (dist_fault(d, "open", e) == 0) ckpt_open(o->ckpt, &j->ck, e);
  if (dist_agree(d, e) != 0) return -1;
  const gpt_config *c = ckpt_config(j->ck);
  int id_rc = prompt_ids(o, j, c, &ids, e);
  if (id_rc == 0 && o->max_layers > c->n_layers)
    err_set(e, EXIT_USAGE, "--max-layers %ld: the checkpoint has %d layers", o->max_layers,
            c->n_layers);
  const long ctx = context_positions(c);
  if (id_rc == 0 && (long)j->n_prompt + (o->max_tokens > 1 ? o->max_tokens - 1 : 0) > ctx)
    err_set(e, EXIT_USAGE, "prompt + new tokens (%d + %ld) exceed the context of %ld positions "
            "(initial_context_length x rope_scaling_factor in %s)", j->n_prompt, o->max_tokens,
            ctx, ckpt_config_path(j->ck));
  if (e->code == 0 && d->rank == 0 && o->n_outputs) {
    /* the inputs: the checkpoint (its directories and every file: a hard link is the same
     * file), the prompt file, and the command's own */
    const size_t nf = ckpt_n_files(j->ck), n_max = 4 + nf + (size_t)o->n_inputs;
    const char **in = malloc(n_max * sizeof *in);
    if (!in) {
      err_set(e, EXIT_RUNTIME, "out of memory");
    } else {
      int n_in = 0;
      in[n_in++] = o->ckpt;
      in[n_in++] = o->ids_file;
      n_in += (int)ckpt_input_paths(j->ck, in + n_in, nf + 2);
      for (int i = 0; i < o->n_inputs; i++) in[n_in++] = o->inputs[i];
      outpath_check(o->outputs, o->n_outputs, in, n_in, e);
      free(in);
    }
  }
  if (dist_agree(d, e) != 0) {
    free(ids);
    return -1;
  }
  j->n_layers = o->max_layers ? (int)o->max_layers : c->n_layers;
  j->n_new = (int)o->max_tokens;
  j->T_all = j->n_prompt + (j->n_new > 1 ? j->n_new - 1 : 0);

  /* plan: a bad split is the same usage error everywhere */
  dist_setup(d, c, (int)o->stages, j->n_prompt, j->T_all, e);
  if (dist_agree(d, e) != 0) {
    free(ids);
    return -1;
  }
  const plan_rank *me = d->me;
  log_info("== plan: %d stages x %d expert groups; rank 0 holds layers %d-%d, experts %d-%d",
           d->plan.n_stages, d->plan.n_groups, me->layer0, me->layer0 + me->n_layers - 1,
           me->expert0, me->expert0 + me->n_experts - 1);
  j->times.open = log_now() - j->t_start;

  /* load: owned-tensor check, scratch, buffers */
  double t0 = log_now();
  log_info("== load: %d layers of %d, %d prompt tokens, %d new, precision %s", j->n_layers,
           c->n_layers, j->n_prompt, j->n_new, o->precision == MODEL_BF16 ? "bf16" : "fp32");
  model_opts mo = {.max_tokens = j->n_prompt, .max_seq = j->T_all, .precision = o->precision};
  const int captures = o->tracing && (me->leader || d->rank == 0);
  /* "alloc" stands for a failed allocation in the fault tests */
  if (dist_fault(d, "alloc", e) == 0 && dist_fault(d, "load", e) == 0 &&
      check_owned(j->ck, &d->plan, me, j->n_layers, e) == 0 && model_open(j->ck, &mo, &j->m, e) == 0 &&
      (!captures || (j->have_trace = trace_alloc(&j->tr, c, j->T_all, j->n_layers, e) == 0))) {
    if (captures) trace_capture(&j->tr, &j->cap);
    dfwd_init(d, j->m, j->n_layers, j->n_prompt, j->T_all, o->tracing, captures ? &j->cap : NULL,
              &j->fw, e);
  }
  j->seq = malloc((size_t)j->T_all * sizeof *j->seq);
  j->out_ids = malloc((size_t)(j->n_new > 0 ? j->n_new : 1) * sizeof *j->out_ids);
  if (e->code == 0 && (!j->seq || !j->out_ids)) err_set(e, EXIT_RUNTIME, "out of memory");
  if (j->seq) memcpy(j->seq, ids, (size_t)j->n_prompt * sizeof *ids);
  free(ids);
  if (dist_agree(d, e) != 0) return -1;
  j->times.load = log_now() - t0;

  /* prefill */
  log_info("== prefill: %d tokens", j->n_prompt);
  dist_pause(d, "prefill");
  t0 = log_now();
  progress pr;
  progress_begin(&pr, d, 0, "prefill", "layers", (uint64_t)j->n_layers, o->progress_s);
  dfwd_set_progress(j->fw, on_layer, &pr);
  int32_t next;
  const int prc = dfwd_step(j->fw, j->seq, j->n_prompt, 0, o->tracing, &next, e);
  progress_end(&pr);
  if (prc != 0) return -1;
  j->times.prefill = log_now() - t0;
  log_info("prefill: %d tokens in %.2f s (%.1f tok/s)", j->n_prompt, j->times.prefill,
           j->n_prompt / j->times.prefill);

  /* greedy decode */
  dfwd_set_progress(j->fw, NULL, NULL);
  if (j->n_new > 1) log_info("== decode: %d steps", j->n_new - 1);
  t0 = log_now();
  int pos = j->n_prompt;
  progress_begin(&pr, d, 0, "decode", "tokens", (uint64_t)(j->n_new > 1 ? j->n_new - 1 : 0),
                 o->progress_s);
  j->n_gen = j->n_new;
  for (int k = 0; k < j->n_new; k++) {
    j->out_ids[k] = next;
    /* a text prompt's answer ends at <|return|> or <|call|> (every rank has the same id) */
    if ((o->prompt_text || o->chat_text) && tok_is_stop(next)) {
      j->n_gen = k + 1;
      break;
    }
    if (k == j->n_new - 1) break;
    j->seq[pos] = next;
    dist_fault(d, "decode", e); /* dfwd_step skips the work and agrees on the failure */
    if (dfwd_step(j->fw, j->seq + pos, 1, pos, o->tracing, &next, e) != 0) {
      progress_end(&pr);
      return -1;
    }
    pos++;
    progress_note(&pr, (uint64_t)(k + 1));
  }
  progress_end(&pr);
  j->times.decode = log_now() - t0;
  j->T_done = pos;
  const int steps = pos - j->n_prompt;
  if (steps > 0)
    log_info("decode: %d steps in %.2f s (%.2f tok/s)%s", steps, j->times.decode,
             steps / j->times.decode, j->n_gen < j->n_new ? "; stopped at the end of the answer" : "");

  /* every stage's captured rows to rank 0 (the positions processed: fewer than planned when the
   * answer ended early, so the trace holds exactly those) */
  if (o->tracing) {
    t0 = log_now();
    log_info("== trace: gathering %d positions, %d layers on rank 0", j->T_done, j->n_layers);
    if (dfwd_gather_capture(j->fw, j->T_done, e) != 0) return -1;
    if (d->rank == 0) {
      memcpy(j->tr.input_ids, j->seq, (size_t)j->T_done * sizeof *j->seq);
      j->tr.T = j->T_done; /* the buffers' first T_done rows */
    }
    j->times.gather = log_now() - t0;
  }
  /* what was computed came from the files as they were opened */
  ckpt_unchanged(j->ck, e);
  return dist_agree(d, e);
}

void fwd_job_summary(dist *d, fwd_job *j) {
  const plan_rank *me = d->me;
  const uint64_t my_touched = dist_resident_file_bytes(ckpt_dir(j->ck)), my_peak = dist_peak_rss();
  uint64_t per_rank[5] = {my_touched, me->mapped_bytes, my_peak, me->peak_bytes, d->bytes_sent};
  uint64_t *all = d->rank == 0 ? malloc((size_t)d->size * sizeof per_rank) : NULL;
  int have_all = d->rank != 0 || all; /* without memory for the table, no per-rank lines */
  MPI_Bcast(&have_all, 1, MPI_INT, 0, d->world);
  if (have_all) MPI_Gather(per_rank, 5, MPI_UINT64_T, all, 5, MPI_UINT64_T, 0, d->world);
  for (int r = 0; all && r < d->size; r++)
    log_verbose("   rank %d: checkpoint bytes touched %llu (plan: %llu mapped); peak RSS %llu "
                "(plan: %llu); bytes sent %llu", r, (unsigned long long)all[5 * r],
                (unsigned long long)all[5 * r + 1], (unsigned long long)all[5 * r + 2],
                (unsigned long long)all[5 * r + 3], (unsigned long long)all[5 * r + 4]);
  free(all);
  uint64_t touched = dist_sum_u64(d, my_touched);
  uint64_t sent = dist_sum_u64(d, d->bytes_sent);
  uint64_t peak = dist_max_u64(d, my_peak);
  const fwd_job_times *t = &j->times;
  log_info("== summary: open %.2f s, load %.2f s, prefill %.2f s, decode %.2f s, trace %.2f s; "
           "total %.2f s", t->open, t->load, t->prefill, t->decode, t->gather, log_now() - j->t_start);
  log_info("   checkpoint bytes resident over all ranks %.1f MiB; bytes sent between ranks "
           "%.1f MiB; largest peak RSS of a rank %.1f MiB", touched / 1048576.0, sent / 1048576.0,
           peak / 1048576.0);
}

void fwd_job_release(fwd_job *j) {
  dfwd_free(j->fw);
  j->fw = NULL;
  model_close(j->m);
  j->m = NULL;
  if (j->ck) ckpt_release_pages(j->ck);
}

void fwd_job_free(fwd_job *j) {
  tok_close(j->tok);
  dfwd_free(j->fw);
  if (j->have_trace) trace_free(&j->tr);
  free(j->out_ids);
  free(j->seq);
  model_close(j->m);
  ckpt_close(j->ck);
  memset(j, 0, sizeof *j);
}
