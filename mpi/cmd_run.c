/* run: forward pass and greedy generation on one rank, optional HDF5 trace.
 *
 *   parse -> MPI up (one rank only for now) -> open checkpoint -> ids -> model -> prefill
 *   -> decode steps -> trace -> print ids
 *
 * Positions processed: the prompt (one prefill call), then each generated token except the
 * last (one decode call each, using the KV cache). With --max-tokens N the trace therefore
 * holds T = prompt + N - 1 positions (prompt alone for N = 0 or 1). Collective over
 * MPI_COMM_WORLD (a world size above 1 is refused until the distributed forward exists). */
#include <getopt.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "cli.h"
#include "log.h"
#include "model.h"
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
    "  --trace OUT.h5        write every processed position's tensors (HDF5, atomic)\n";

enum { OPT_IDS = CLI_OPT_FIRST_COMMAND_OPT, OPT_FILE, OPT_MAXTOK, OPT_MAXLAYERS, OPT_PREC, OPT_TRACE };

typedef struct {
  const char *ckpt, *ids_arg, *ids_file, *trace_path;
  long max_tokens, max_layers;  /* max_layers 0 = all */
  model_precision precision;
  cli_common cc;
} run_args;

typedef struct {
  double t0, last, every;
} progress_state;

static void on_layer(void *ctx, int done, int n) {
  progress_state *p = ctx;
  const double now = log_now();
  if (p->every <= 0 || now - p->last < p->every || done == n) return;
  p->last = now;
  const double rate = done / (now - p->t0);
  log_info("prefill: %d/%d layers, %.2f layers/s, %.0f s left", done, n, rate, (n - done) / rate);
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
      {0, 0, 0, 0}};
  memset(a, 0, sizeof *a);
  a->max_tokens = 16;
  cli_common_init(&a->cc);
  err e = {0};
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

/* The work of one rank; fills e and returns -1 on failure. */
static int run_local(const run_args *a, err *e) {
  const double t_load = log_now();
  ckpt *ck = NULL;
  model *m = NULL;
  model_kv kv = {0};
  trace tr = {0};
  int32_t *ids = NULL, *seq = NULL;
  float *logits = NULL;
  int n_prompt = 0, rc = -1;

  log_info("run: opening %s", a->ckpt);
  if (ckpt_open(a->ckpt, &ck, e) != 0) goto out;
  const gpt_config *c = ckpt_config(ck);
  if (a->ids_arg ? cli_parse_ids(a->ids_arg, "--prompt-ids", c->vocab - 1, &ids, &n_prompt, e)
                 : cli_read_ids_file(a->ids_file, c->vocab - 1, &ids, &n_prompt, e))
    goto out;
  if (a->max_layers > c->n_layers) {
    err_set(e, EXIT_USAGE, "--max-layers %ld: the checkpoint has %d layers", a->max_layers,
            c->n_layers);
    goto out;
  }
  const int n_layers = a->max_layers ? (int)a->max_layers : c->n_layers;
  const int n_new = (int)a->max_tokens;
  const int T_all = n_prompt + (n_new > 1 ? n_new - 1 : 0); /* positions processed */
  const int V = c->vocab;

  model_opts mo = {.max_tokens = n_prompt, .max_seq = T_all, .precision = a->precision};
  if (model_open(ck, &mo, &m, e) != 0) goto out;
  if (model_kv_init(c, 0, n_layers, T_all, &kv, e) != 0) goto out;
  if (a->trace_path && trace_alloc(&tr, c, T_all, n_layers, e) != 0) goto out;
  seq = malloc((size_t)T_all * sizeof *seq);
  logits = a->trace_path ? NULL : malloc((size_t)V * sizeof(float));
  if (!seq || (!a->trace_path && !logits)) {
    err_set(e, EXIT_RUNTIME, "out of memory");
    goto out;
  }
  memcpy(seq, ids, (size_t)n_prompt * sizeof *seq);
  log_info("run: %d layers of %d, %d prompt tokens, %d new, precision %s; loaded in %.2f s",
           n_layers, c->n_layers, n_prompt, n_new, a->precision == MODEL_BF16 ? "bf16" : "fp32",
           log_now() - t_load);

  model_capture cap = {0}, *capp = NULL;
  if (a->trace_path) {
    trace_capture(&tr, &cap);
    cap.logits = NULL; /* logits are written straight into the trace */
    capp = &cap;
  }
  progress_state ps = {log_now(), log_now(), a->cc.progress_s};
  model_set_progress(m, on_layer, &ps);

  /* prefill */
  log_info("prefill: %d tokens", n_prompt);
  const double t_pre = log_now();
  float *lg = a->trace_path ? tr.logits : logits;
  if (model_forward(m, &kv, seq, n_prompt, 0, n_layers, a->trace_path != NULL, lg, capp, e) != 0)
    goto out;
  const double dt_pre = log_now() - t_pre;
  log_info("prefill: %d tokens in %.2f s (%.1f tok/s)", n_prompt, dt_pre, n_prompt / dt_pre);
  model_set_progress(m, NULL, NULL);

  /* greedy decode: the argmax of the last position, lowest id on ties */
  int32_t *out_ids = malloc((size_t)(n_new > 0 ? n_new : 1) * sizeof *out_ids);
  if (!out_ids) {
    err_set(e, EXIT_RUNTIME, "out of memory");
    goto out;
  }
  const double t_dec = log_now();
  int pos = n_prompt;
  for (int k = 0; k < n_new; k++) {
    const float *last = a->trace_path ? tr.logits + (int64_t)(pos - 1) * V : logits;
    int best = 0;
    for (int v = 1; v < V; v++)
      if (last[v] > last[best]) best = v;
    out_ids[k] = best;
    if (k == n_new - 1) break;
    seq[pos] = best;
    lg = a->trace_path ? tr.logits + (int64_t)pos * V : logits;
    if (model_forward(m, &kv, seq + pos, 1, pos, n_layers, a->trace_path != NULL, lg, capp, e)) {
      free(out_ids);
      goto out;
    }
    pos++;
  }
  const double dt_dec = log_now() - t_dec;
  if (n_new > 1)
    log_info("decode: %d steps in %.2f s (%.2f tok/s)", n_new - 1, dt_dec, (n_new - 1) / dt_dec);

  if (a->trace_path) {
    memcpy(tr.input_ids, seq, (size_t)T_all * sizeof *seq);
    trace_meta meta = {a->precision == MODEL_BF16 ? "bf16" : "fp32", 1, ckpt_dir(ck), c};
    log_info("trace: writing %s (%d positions, %d layers)", a->trace_path, T_all, n_layers);
    if (trace_write(&tr, &meta, a->trace_path, e) != 0) {
      free(out_ids);
      goto out;
    }
  }
  for (int k = 0; k < n_new; k++) printf("%s%d", k ? "," : "", out_ids[k]);
  printf("\n");
  fflush(stdout);
  free(out_ids);
  log_info("run: done in %.2f s", log_now() - t_load);
  rc = 0;
out:
  if (a->trace_path) trace_free(&tr);
  free(logits);
  free(seq);
  free(ids);
  model_kv_free(&kv);
  model_close(m);
  ckpt_close(ck);
  return rc;
}

int cmd_run(int argc, char **argv) {
  run_args a;
  int rc = 0, size = 1, rank = 0;
  int prc = parse_args(argc, argv, &a, &rc);
  if (prc < 0) return rc;
  if (prc != 0) return prc;
  MPI_Init(NULL, NULL);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  log_set_rank(rank);
  if (size > 1) {
    if (rank == 0)
      log_error("run: distributed run: not yet supported, run with 1 rank (world size is %d)",
                size);
    MPI_Finalize();
    return EXIT_USAGE;
  }
  err e = {0};
  rc = 0;
  if (run_local(&a, &e) != 0) {
    log_error("run: %s", e.msg);
    rc = e.code ? e.code : EXIT_RUNTIME;
  }
  MPI_Finalize();
  return rc;
}
