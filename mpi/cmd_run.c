/* run: the forward pass and greedy generation over the ranks of the job, optional HDF5 trace.
 *
 *   MPI up -> parse -> forward job (open, plan, load, prefill, decode, gather: fwd_job.h)
 *   -> write the trace -> print ids -> summary
 *
 * The trace is written by rank 0 under a hidden staging name and renamed to its target only after
 * every rank agreed that the whole run succeeded (shards/atomic.h): a failure on any rank, a lost
 * rank or a stop signal leaves no file that looks finished (DESIGN.md "Failure policy"). The
 * trace path is checked before any work: not an input, not a device or FIFO. Collective over
 * MPI_COMM_WORLD. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "atomic.h"
#include "cli.h"
#include "dist.h"
#include "fwd_job.h"
#include "log.h"
#include "tok.h"
#include "trace.h"

static const char run_usage_head[] =
    "usage: gptoss-mpi run CKPT (--prompt-ids 1,2,3 | --prompt-file F | --prompt TEXT | --chat TEXT)\n"
    "                      [options]\n"
    "\n"
    "Forward pass over the prompt, then greedy generation with a KV cache. Prints what was\n"
    "generated on stdout: the text for a text prompt (--prompt, --chat; generation stops at\n"
    "<|return|> or <|call|>), the ids (one line, comma-separated) for an id prompt.\n"
    "\n"
    "  --trace OUT.h5        write every processed position's tensors (HDF5, atomic)\n"
    "  --print-ids           print the generated ids, whatever the prompt\n"
    "  --print-text          print the generated text (needs a tokenizer), whatever the prompt\n";

enum { OPT_TRACE = CLI_OPT_FIRST_COMMAND_OPT, OPT_PRINT_IDS, OPT_PRINT_TEXT };

typedef struct {
  const char *trace_path;
  int print_ids, print_text;
  int want_text;             /* print text (else ids) */
  fwd_job_opts job;
  cli_common cc;
} run_args;

/* 0 ok, 2 usage (message printed), or -1 with *rc set for --help/--version */
static int parse_args(int argc, char **argv, run_args *a, int *rc) {
  static const struct option longopts[] = {CLI_COMMON_LONGOPTS, FWD_JOB_LONGOPTS,
                                           {"trace", required_argument, 0, OPT_TRACE},
                                           {"print-ids", no_argument, 0, OPT_PRINT_IDS},
                                           {"print-text", no_argument, 0, OPT_PRINT_TEXT},
                                           {0, 0, 0, 0}};
  char usage[4096];
  snprintf(usage, sizeof usage, "%s" FWD_JOB_HELP, run_usage_head, "16");
  memset(a, 0, sizeof *a);
  err e = {0};
  if (fwd_job_opts_init(&a->job, 16, &e) != 0) return cli_usage_error("run", "%s", e.msg);
  cli_common_init(&a->cc);
  int opt, done = 0;
  optind = 1;
  while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
    if (cli_common_opt(opt, optarg, usage, &a->cc, &done, rc)) {
      if (done) return -1;
      continue;
    }
    int f = fwd_job_opt(&a->job, opt, optarg, &e);
    if (f < 0) return cli_usage_error("run", "%s", e.msg);
    if (f > 0) continue;
    if (opt == OPT_TRACE) a->trace_path = optarg;
    else if (opt == OPT_PRINT_IDS) a->print_ids = 1;
    else if (opt == OPT_PRINT_TEXT) a->print_text = 1;
    else return cli_bad_option("run");
  }
  if (optind != argc - 1) return cli_usage_error("run", "expected one checkpoint directory");
  a->job.ckpt = argv[optind];
  a->job.progress_s = a->cc.progress_s;
  a->job.tracing = a->trace_path != NULL;
  if (a->trace_path) {
    a->job.outputs[0] = (outpath){a->trace_path, "--trace", OUTPATH_FILE};
    a->job.n_outputs = 1;
  }
  a->job.want_tokenizer = a->print_text;
  if (fwd_job_check_prompt(&a->job, 1, &e) != 0) return cli_usage_error("run", "%s", e.msg);
  if (a->print_ids && a->print_text) return cli_usage_error("run", "give at most one of --print-ids and --print-text");
  const int text_prompt = a->job.prompt_text || a->job.chat_text;
  a->want_text = a->print_text || (text_prompt && !a->print_ids);
  return 0;
}

/* Collective: rank 0 stages the trace (written and synced under a hidden name), every rank
 * agrees, rank 0 publishes it, every rank agrees. A rank lost before the first agreement makes it
 * fail, so a trace is published only after the last work of every rank. */
static int write_trace(dist *d, const run_args *a, fwd_job *j, err *e) {
  atomic_out *staged = NULL;
  const double t0 = log_now();
  if (dist_fault(d, "trace", e) == 0 && d->rank == 0) {
    trace_meta meta = {a->job.precision == MODEL_BF16 ? "bf16" : "fp32", d->size,
                       ckpt_dir(j->ck), ckpt_config(j->ck)};
    log_info("trace: writing %s", a->trace_path);
    trace_stage(&j->tr, &meta, a->trace_path, &staged, e);
  }
  dist_pause(d, "trace-staged");
  int rc = dist_agree(d, e);
  if (rc == 0) {
    if (d->rank == 0) atomic_publish(staged, e);
    staged = NULL;
    rc = dist_agree(d, e);
  }
  atomic_abort(staged); /* staged but not published: the job failed */
  j->times.gather += log_now() - t0;
  return rc;
}

/* Rank 0: what was generated, on stdout: text (invalid UTF-8 replaced by U+FFFD, as tiktoken's
 * errors="replace") or the ids. */
static void print_generated(const run_args *a, const fwd_job *j) {
  if (a->want_text && j->tok) {
    tok_buf b = {0};
    err e = {0};
    if (tok_decode(j->tok, j->out_ids, (size_t)j->n_gen, TOK_TEXT_REPLACE, &b, &e) == 0)
      fwrite(b.p ? b.p : "", 1, b.n, stdout);
    else
      log_warn("the generated ids could not be decoded: %s", e.msg);
    tok_buf_free(&b);
  } else {
    for (int k = 0; k < j->n_gen; k++) printf("%s%d", k ? "," : "", j->out_ids[k]);
  }
  printf("\n");
  fflush(stdout);
}

int cmd_run(int argc, char **argv) {
  dist d;
  if (dist_init(&argc, &argv, &d) != 0) {
    dist_finalize(&d);
    return EXIT_RUNTIME;
  }
  opterr = d.rank == 0; /* getopt's own messages from rank 0 only */
  run_args a;
  int rc = 0;
  int prc = parse_args(argc, argv, &a, &rc);
  if (prc == 0) {
    err e = {0};
    fwd_job j;
    if (fwd_job_run(&d, &a.job, &j, &e) == 0 && (!a.trace_path || write_trace(&d, &a, &j, &e) == 0)) {
      if (d.rank == 0) print_generated(&a, &j);
      fwd_job_summary(&d, &j);
    } else {
      log_error("%s", e.msg);
      rc = e.code ? e.code : EXIT_RUNTIME;
    }
    fwd_job_free(&j);
  } else if (prc > 0) {
    rc = prc;
  }
  dist_finalize(&d);
  return rc;
}
