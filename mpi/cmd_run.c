/* run: the forward pass and greedy generation over the ranks of the job, optional HDF5 trace.
 *
 *   MPI up -> parse -> open checkpoint -> ids -> plan -> load (check owned tensors) -> prefill
 *   -> decode steps -> gather the trace on rank 0 -> write it -> print ids -> summary
 *
 * Positions processed: the prompt (one prefill call), then each generated token except the
 * last (one decode call each, using the KV cache). With --max-tokens N the trace therefore
 * holds T = prompt + N - 1 positions (prompt alone for N = 0 or 1). The ranks agree after every
 * phase (dist_agree): one error line from rank 0 naming the failing rank, the same exit code on
 * every rank, no trace file. Collective over MPI_COMM_WORLD. */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic.h"
#include "ckpt.h"
#include "cli.h"
#include "log.h"
#include "model.h"
#include "dist.h"
#include "dist_forward.h"
#include "plan.h"
#include "trace.h"

static const char run_usage[] =
    "usage: gptoss-mpi run CKPT (--prompt-ids 1,2,3 | --prompt-file F) [options]\n"
    "\n"
    "Forward pass over the prompt, then greedy generation with a KV cache. Prints the\n"
    "generated ids on stdout (one line, comma-separated).\n"
    "\n"
    "  --prompt-ids IDS      comma-separated token ids\n"
    "  --prompt-file F       file of token ids (commas and/or whitespace)\n"
    "  --max-tokens N        new tokens to generate (default 16; 0 = prefill only)\n"
    "  --max-layers N        run only the first N layers, then final norm + unembedding\n"
    "  --precision P         fp32 (default) or bf16 (emulates the reference's bf16 rounding)\n"
    "  --trace OUT.h5        write every processed position's tensors (HDF5, atomic)\n"
    "  --stages S            pipeline stages (must divide the rank count; default: see\n"
    "                        'gptoss-mpi plan')\n"
    "  --threads N           matrix-library threads per rank (default: $GPTOSS_THREADS or 1).\n"
    "                        Results are bitwise identical across rank counts for a fixed N\n";

enum { OPT_IDS = CLI_OPT_FIRST_COMMAND_OPT, OPT_FILE, OPT_MAXTOK, OPT_MAXLAYERS, OPT_PREC, OPT_TRACE,
       OPT_STAGES, OPT_THREADS };

typedef struct {
  const char *ckpt, *ids_arg, *ids_file, *trace_path;
  long max_tokens, max_layers;  /* max_layers 0 = all */
  long stages;                  /* 0 = the plan's default */
  long threads;                 /* BLAS threads per rank */
  model_precision precision;
  cli_common cc;
} run_args;

typedef struct {
  double t0, last, every;
  const char *what;
} progress_state;

static void on_layer(void *ctx, int done, int n) {
  progress_state *p = ctx;
  const double now = log_now();
  if (p->every <= 0 || now - p->last < p->every || done == n) return;
  p->last = now;
  const double rate = done / (now - p->t0);
  log_info("%s: %d/%d layers, %.2f layers/s, %.0f s left", p->what, done, n, rate, (n - done) / rate);
}

/* 0 ok, 2 usage (message printed), or -1 with *rc set for --help/--version */
static int parse_args(int argc, char **argv, run_args *a, int *rc) {
  static const struct option longopts[] = {
      CLI_COMMON_LONGOPTS,
      {"prompt-ids", required_argument, 0, OPT_IDS},
      {"prompt-file", required_argument, 0, OPT_FILE},
      {"max-tokens", required_argument, 0, OPT_MAXTOK},
      {"max-layers", required_argument, 0, OPT_MAXLAYERS},
      {"precision", required_argument, 0, OPT_PREC},
      {"trace", required_argument, 0, OPT_TRACE},
      {"stages", required_argument, 0, OPT_STAGES},
      {"threads", required_argument, 0, OPT_THREADS},
      {0, 0, 0, 0}};
  memset(a, 0, sizeof *a);
  err e = {0};
  a->max_tokens = 16;
  a->threads = 1;
  const char *env_threads = getenv("GPTOSS_THREADS");
  if (env_threads && *env_threads &&
      cli_parse_long(env_threads, "GPTOSS_THREADS", 1, 1024, &a->threads, &e) != 0)
    return cli_usage_error("run", "%s", e.msg);
  cli_common_init(&a->cc);
  int opt, done = 0;
  optind = 1;
  while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
    if (cli_common_opt(opt, optarg, run_usage, &a->cc, &done, rc)) {
      if (done) return -1;
      continue;
    }
    switch (opt) {
      case OPT_IDS: a->ids_arg = optarg; break;
      case OPT_FILE: a->ids_file = optarg; break;
      case OPT_TRACE: a->trace_path = optarg; break;
      case OPT_MAXTOK:
        if (cli_parse_long(optarg, "--max-tokens", 0, 1000000, &a->max_tokens, &e) != 0)
          return cli_usage_error("run", "%s", e.msg);
        break;
      case OPT_MAXLAYERS:
        if (cli_parse_long(optarg, "--max-layers", 1, 1000000, &a->max_layers, &e) != 0)
          return cli_usage_error("run", "%s", e.msg);
        break;
      case OPT_THREADS:
        if (cli_parse_long(optarg, "--threads", 1, 1024, &a->threads, &e) != 0)
          return cli_usage_error("run", "%s", e.msg);
        break;
      case OPT_STAGES:
        if (cli_parse_long(optarg, "--stages", 1, PLAN_MAX_STAGES, &a->stages, &e) != 0)
          return cli_usage_error("run", "%s", e.msg);
        break;
      case OPT_PREC:
        if (!strcmp(optarg, "fp32")) a->precision = MODEL_FP32;
        else if (!strcmp(optarg, "bf16")) a->precision = MODEL_BF16;
        else return cli_usage_error("run", "--precision: '%s' is not fp32 or bf16", optarg);
        break;
      default: return cli_bad_option("run");
    }
  }
  if (optind != argc - 1) return cli_usage_error("run", "expected one checkpoint directory");
  a->ckpt = argv[optind];
  if (!a->ids_arg == !a->ids_file)
    return cli_usage_error("run", "give exactly one of --prompt-ids and --prompt-file");
  return 0;
}

/* Check the tensors this rank owns before any use (no NaN/inf, no overflowing MXFP4 scale):
 * a corrupt tensor that only one rank reads is reported by that rank. */
static int check_owned(const ckpt *ck, const plan_rank *me, int n_layers, err *e) {
  static const ckpt_role attn_roles[] = {CK_ATTN_NORM, CK_QKV_W, CK_QKV_B, CK_SINKS, CK_OUT_W,
                                         CK_OUT_B, CK_MLP_NORM, CK_GATE_W, CK_GATE_B};
  static const ckpt_role expert_roles[] = {CK_MLP1_SCALES, CK_MLP1_BIAS, CK_MLP2_SCALES, CK_MLP2_BIAS};
  int last = me->layer0 + me->n_layers < n_layers ? me->layer0 + me->n_layers : n_layers;
  for (int l = me->layer0; l < last; l++) {
    for (size_t i = 0; me->leader && i < sizeof attn_roles / sizeof attn_roles[0]; i++) {
      const ckpt_tensor *t = ckpt_tensor_find(ck, l, attn_roles[i]);
      if (ckpt_check_rows(ck, t, 0, t->n_dims ? t->shape[0] : 1, e) != 0) return -1;
    }
    for (size_t i = 0; i < sizeof expert_roles / sizeof expert_roles[0]; i++)
      if (ckpt_check_rows(ck, ckpt_tensor_find(ck, l, expert_roles[i]), me->expert0,
                          me->n_experts, e) != 0)
        return -1;
  }
  if (me->has_head) {
    const ckpt_tensor *n = ckpt_tensor_find(ck, -1, CK_NORM), *u = ckpt_tensor_find(ck, -1, CK_UNEMBEDDING);
    if (ckpt_check_rows(ck, n, 0, n->shape[0], e) != 0 || ckpt_check_rows(ck, u, 0, u->shape[0], e) != 0)
      return -1;
  }
  return 0;
}

typedef struct {
  double open, load, prefill, decode, trace;
} phase_times;

/* The trace is first written (atomically, by trace_write) under a hidden staging name next to
 * the target, and renamed to the target only after every rank agreed that the whole run
 * succeeded (DESIGN.md "Failure policy"): a failure on any rank, even during the write, leaves
 * no file that looks finished. Local (rank 0). */
static int trace_staging_path(const char *path, char *out, size_t n, err *e) {
  char *dcopy = strdup(path), *bcopy = strdup(path);
  int rc = 0;
  if (!dcopy || !bcopy)
    rc = err_set(e, EXIT_RUNTIME, "%s: out of memory", path);
  else if ((size_t)snprintf(out, n, "%s/.%s.part.%ld", dirname(dcopy), basename(bcopy),
                            (long)getpid()) >= n)
    rc = err_set(e, EXIT_RUNTIME, "%s: path too long", path);
  free(dcopy);
  free(bcopy);
  return rc;
}

/* Rename the staged trace to its target and fsync the directory; on failure nothing is left
 * under the target name. Local (rank 0). */
static int trace_commit(const char *staged, const char *path, err *e) {
  if (rename(staged, path) != 0) return err_errno(e, errno, "%s: rename to %s", staged, path);
  char *dcopy = strdup(path);
  if (!dcopy) {
    unlink(path);
    return err_set(e, EXIT_RUNTIME, "%s: out of memory", path);
  }
  int rc = fs_fsync_dir(dirname(dcopy), e);
  free(dcopy);
  if (rc != 0) unlink(path);
  return rc;
}

/* The whole command on one rank; every return path has agreed with the other ranks, so e is
 * the same job-wide verdict everywhere. */
static int run_dist(dist *d, const run_args *a, err *e) {
  const double t_start = log_now();
  phase_times pt = {0};
  ckpt *ck = NULL;
  model *m = NULL;
  dfwd *fw = NULL;
  trace tr = {0};
  model_capture cap = {0}; /* points into tr; dfwd keeps it until dfwd_free */
  int have_trace = 0;
  char staged[4096] = ""; /* rank 0: the written, not yet committed trace */
  int32_t *ids = NULL, *seq = NULL, *out_ids = NULL;
  int n_prompt = 0, rc = -1;

  model_set_threads((int)a->threads);
  /* open */
  log_info("== open: %s (%d rank%s)", a->ckpt, d->size, d->size > 1 ? "s" : "");
  if (dist_fault(d, "open", e) == 0) ckpt_open(a->ckpt, &ck, e);
  if (dist_agree(d, e) != 0) goto out;
  const gpt_config *c = ckpt_config(ck);
  int id_rc = a->ids_arg ? cli_parse_ids(a->ids_arg, "--prompt-ids", c->vocab - 1, &ids, &n_prompt, e)
                        : cli_read_ids_file(a->ids_file, c->vocab - 1, &ids, &n_prompt, e);
  if (id_rc == 0 && a->max_layers > c->n_layers)
    err_set(e, EXIT_USAGE, "--max-layers %ld: the checkpoint has %d layers", a->max_layers,
            c->n_layers);
  if (dist_agree(d, e) != 0) goto out;
  const int n_layers = a->max_layers ? (int)a->max_layers : c->n_layers;
  const int n_new = (int)a->max_tokens;
  const int T_all = n_prompt + (n_new > 1 ? n_new - 1 : 0); /* positions processed */
  const int tracing = a->trace_path != NULL;

  /* plan */
  dist_setup(d, c, (int)a->stages, n_prompt, T_all, e); /* a bad split: the same usage error everywhere */
  if (dist_agree(d, e) != 0) goto out;
  const plan_rank *me = d->me;
  log_info("== plan: %d stages x %d expert groups; rank 0 holds layers %d-%d, experts %d-%d",
           d->plan.n_stages, d->plan.n_groups, me->layer0, me->layer0 + me->n_layers - 1,
           me->expert0, me->expert0 + me->n_experts - 1);
  pt.open = log_now() - t_start;

  /* load: scratch, owned-tensor check, buffers */
  double t0 = log_now();
  log_info("== load: %d layers of %d, %d prompt tokens, %d new, precision %s", n_layers,
           c->n_layers, n_prompt, n_new, a->precision == MODEL_BF16 ? "bf16" : "fp32");
  model_opts mo = {.max_tokens = n_prompt, .max_seq = T_all, .precision = a->precision};
  const int captures = tracing && (me->leader || d->rank == 0);
  /* "alloc" stands for a failed allocation in the fault tests */
  if (dist_fault(d, "alloc", e) == 0 && dist_fault(d, "load", e) == 0 &&
      check_owned(ck, me, n_layers, e) == 0 && model_open(ck, &mo, &m, e) == 0 &&
      (!captures || (have_trace = trace_alloc(&tr, c, T_all, n_layers, e) == 0))) {
    if (captures) trace_capture(&tr, &cap);
    dfwd_init(d, m, n_layers, n_prompt, T_all, tracing, captures ? &cap : NULL, &fw, e);
  }
  seq = malloc((size_t)T_all * sizeof *seq);
  out_ids = malloc((size_t)(n_new > 0 ? n_new : 1) * sizeof *out_ids);
  if (e->code == 0 && (!seq || !out_ids)) err_set(e, EXIT_RUNTIME, "out of memory");
  if (dist_agree(d, e) != 0) goto out;
  pt.load = log_now() - t0;

  /* prefill */
  memcpy(seq, ids, (size_t)n_prompt * sizeof *seq);
  log_info("== prefill: %d tokens", n_prompt);
  t0 = log_now();
  progress_state ps = {t0, t0, a->cc.progress_s, "prefill"};
  dfwd_set_progress(fw, on_layer, &ps);
  int32_t next;
  if (dfwd_step(fw, seq, n_prompt, 0, tracing, &next, e) != 0) goto out;
  pt.prefill = log_now() - t0;
  log_info("prefill: %d tokens in %.2f s (%.1f tok/s)", n_prompt, pt.prefill, n_prompt / pt.prefill);

  /* greedy decode */
  dfwd_set_progress(fw, NULL, NULL);
  if (n_new > 1) log_info("== decode: %d steps", n_new - 1);
  t0 = log_now();
  double last_report = t0;
  int pos = n_prompt;
  for (int k = 0; k < n_new; k++) {
    out_ids[k] = next;
    if (k == n_new - 1) break;
    seq[pos] = next;
    dist_fault(d, "decode", e); /* dfwd_step skips the work and agrees on the failure */
    if (dfwd_step(fw, seq + pos, 1, pos, tracing, &next, e) != 0) goto out;
    pos++;
    double now = log_now();
    if (a->cc.progress_s > 0 && now - last_report >= a->cc.progress_s) {
      last_report = now;
      double rate = (k + 1) / (now - t0);
      log_info("decode: %d/%d tokens, %.2f tok/s, %.0f s left", k + 1, n_new - 1, rate,
               (n_new - 2 - k) / rate);
    }
  }
  pt.decode = log_now() - t0;
  if (n_new > 1)
    log_info("decode: %d steps in %.2f s (%.2f tok/s)", n_new - 1, pt.decode, (n_new - 1) / pt.decode);

  /* trace: rank 0 gathers every stage's rows and writes the file */
  if (tracing) {
    t0 = log_now();
    log_info("== trace: gathering %d positions, %d layers on rank 0", T_all, n_layers);
    if (dfwd_gather_capture(fw, T_all, e) != 0) goto out;
    if (d->rank == 0 && dist_fault(d, "trace", e) == 0) {
      memcpy(tr.input_ids, seq, (size_t)T_all * sizeof *seq);
      trace_meta meta = {a->precision == MODEL_BF16 ? "bf16" : "fp32", d->size, ckpt_dir(ck), c};
      log_info("trace: writing %s", a->trace_path);
      char path[sizeof staged];
      if (trace_staging_path(a->trace_path, path, sizeof path, e) == 0 &&
          trace_write(&tr, &meta, path, e) == 0)
        memcpy(staged, path, sizeof staged);
    } else if (d->rank != 0) {
      dist_fault(d, "trace", e);
    }
    if (dist_agree(d, e) != 0) goto out;
    if (d->rank == 0 && trace_commit(staged, a->trace_path, e) == 0) staged[0] = '\0';
    if (dist_agree(d, e) != 0) goto out;
    pt.trace = log_now() - t0;
  }

  if (d->rank == 0) {
    for (int k = 0; k < n_new; k++) printf("%s%d", k ? "," : "", out_ids[k]);
    printf("\n");
    fflush(stdout);
  }

  /* summary: time per phase, bytes read and sent, memory */
  const uint64_t my_touched = dist_resident_file_bytes(ckpt_dir(ck)), my_peak = dist_peak_rss();
  uint64_t per_rank[5] = {my_touched, me->mapped_bytes, my_peak, me->peak_bytes, d->bytes_sent};
  uint64_t *all = d->rank == 0 ? malloc((size_t)d->size * sizeof per_rank) : NULL;
  MPI_Gather(per_rank, 5, MPI_UINT64_T, all, 5, MPI_UINT64_T, 0, d->world);
  for (int r = 0; all && r < d->size; r++)
    log_verbose("   rank %d: checkpoint bytes touched %llu (plan: %llu mapped); peak RSS %llu "
                "(plan: %llu); bytes sent %llu", r, (unsigned long long)all[5 * r],
                (unsigned long long)all[5 * r + 1], (unsigned long long)all[5 * r + 2],
                (unsigned long long)all[5 * r + 3], (unsigned long long)all[5 * r + 4]);
  free(all);
  uint64_t touched = dist_sum_u64(d, my_touched);
  uint64_t sent = dist_sum_u64(d, d->bytes_sent);
  uint64_t peak = dist_max_u64(d, my_peak);
  log_info("== summary: open %.2f s, load %.2f s, prefill %.2f s, decode %.2f s, trace %.2f s; "
           "total %.2f s", pt.open, pt.load, pt.prefill, pt.decode, pt.trace, log_now() - t_start);
  log_info("   checkpoint bytes resident over all ranks %.1f MiB; bytes sent between ranks "
           "%.1f MiB; largest peak RSS of a rank %.1f MiB", touched / 1048576.0, sent / 1048576.0,
           peak / 1048576.0);
  rc = 0;
out:
  if (staged[0]) unlink(staged); /* written but not committed: the job failed */
  dfwd_free(fw);
  if (have_trace) trace_free(&tr);
  free(out_ids);
  free(seq);
  free(ids);
  model_close(m);
  ckpt_close(ck);
  return rc;
}

int cmd_run(int argc, char **argv) {
  dist d;
  dist_init(&argc, &argv, &d);
  opterr = d.rank == 0; /* getopt's own messages from rank 0 only */
  run_args a;
  int rc = 0;
  int prc = parse_args(argc, argv, &a, &rc);
  if (prc == 0) {
    err e = {0};
    if (run_dist(&d, &a, &e) != 0) {
      log_error("%s", e.msg);
      rc = e.code ? e.code : EXIT_RUNTIME;
    }
  } else if (prc > 0) {
    rc = prc;
  }
  dist_finalize(&d);
  return rc;
}
