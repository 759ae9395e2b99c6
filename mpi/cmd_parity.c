/* parity: compare a reference with a candidate, layer by layer and token by token, and write the
 * HDF5 report, the Markdown summary and the SVG chart (parity/compare.h, parity/report.h).
 *
 *   MPI up -> parse -> reference trace (file, or the C forward on the prompt) -> candidate
 *   trace (file, or the exported ONNX model in ONNX Runtime) -> compare -> report -> verdict
 *
 * Exit codes: 0 pass, 3 parity failed (the report is still written), 1 runtime error, 2 usage.
 * Collective over MPI_COMM_WORLD (file comparisons are done by rank 0). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "cli.h"
#include "compare.h"
#include "dist.h"
#include "log.h"
#include "report.h"
#include "trace.h"

static const char parity_usage[] =
    "usage: gptoss-mpi parity CKPT (--onnx DIR/model.onnx | --candidate T.h5[:/group])\n"
    "                         [--reference T.h5[:/group]] (--prompt-ids IDS | --prompt-file F)\n"
    "                         --report OUT.h5 [--summary OUT.md] [options]\n"
    "\n"
    "Compare a reference (default: the C forward pass of CKPT on the prompt) with a candidate\n"
    "(a trace file, or an exported ONNX model run in ONNX Runtime): expert sets and order, top-k\n"
    "weights, router logits, hidden states, final logits. Writes the HDF5 report (and with\n"
    "--summary a Markdown summary plus an SVG chart next to it). Exit 0 pass, 3 fail.\n"
    "\n"
    "  --candidate T.h5[:/g]  trace to check (e.g. from `run --trace`, or golden.h5:/bf16)\n"
    "  --reference T.h5[:/g]  reference trace instead of the C forward (e.g. golden.h5:/fp32)\n"
    "  --prompt-ids IDS, --prompt-file F   prompt (needed when a side is computed)\n"
    "  --max-layers N, --max-tokens N      as in `run`\n"
    "  --report OUT.h5        the HDF5 report (schema: docs/parity-report.md)\n"
    "  --summary OUT.md       Markdown summary; the chart goes to OUT.svg\n"
    "  --tie-margin X         expert-set mismatches whose reference margin (k-th minus\n"
    "                         (k+1)-th router logit) is below X are near-ties, not failures\n"
    "                         (default 0)\n"
    "  --min-set-match R      fraction of token-layers with equal expert sets (default 1)\n"
    "  --max-weight-diff X    top-k weight difference per expert id (default 1e-4)\n"
    "  --max-logits-rel X     final logits max |diff| / max |reference| (default 1e-4)\n";

enum { OPT_ONNX = CLI_OPT_FIRST_COMMAND_OPT, OPT_CAND, OPT_REF, OPT_IDS, OPT_FILE, OPT_MAXL,
       OPT_MAXT, OPT_REPORT, OPT_SUMMARY, OPT_TIE, OPT_MINSET, OPT_MAXW, OPT_MAXLOG };

typedef struct {
  const char *ckpt, *onnx, *cand, *ref, *ids_arg, *ids_file, *report, *summary;
  long max_layers, max_tokens;
  parity_thresholds th;
  cli_common cc;
} parity_args;

/* 0 ok, 2 usage (printed), -1 with *rc for --help/--version */
static int parse_args(int argc, char **argv, parity_args *a, int *rc) {
  static const struct option longopts[] = {
      CLI_COMMON_LONGOPTS,
      {"onnx", required_argument, 0, OPT_ONNX},
      {"candidate", required_argument, 0, OPT_CAND},
      {"reference", required_argument, 0, OPT_REF},
      {"prompt-ids", required_argument, 0, OPT_IDS},
      {"prompt-file", required_argument, 0, OPT_FILE},
      {"max-layers", required_argument, 0, OPT_MAXL},
      {"max-tokens", required_argument, 0, OPT_MAXT},
      {"report", required_argument, 0, OPT_REPORT},
      {"summary", required_argument, 0, OPT_SUMMARY},
      {"tie-margin", required_argument, 0, OPT_TIE},
      {"min-set-match", required_argument, 0, OPT_MINSET},
      {"max-weight-diff", required_argument, 0, OPT_MAXW},
      {"max-logits-rel", required_argument, 0, OPT_MAXLOG},
      {0, 0, 0, 0}};
  memset(a, 0, sizeof *a);
  parity_thresholds_default(&a->th);
  a->max_tokens = 1;
  cli_common_init(&a->cc);
  err e = {0};
  int opt, done = 0, prc = 0;
  optind = 1;
  while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
    if (cli_common_opt(opt, optarg, parity_usage, &a->cc, &done, rc)) {
      if (done) return -1;
      continue;
    }
    switch (opt) {
      case OPT_ONNX: a->onnx = optarg; break;
      case OPT_CAND: a->cand = optarg; break;
      case OPT_REF: a->ref = optarg; break;
      case OPT_IDS: a->ids_arg = optarg; break;
      case OPT_FILE: a->ids_file = optarg; break;
      case OPT_REPORT: a->report = optarg; break;
      case OPT_SUMMARY: a->summary = optarg; break;
      case OPT_MAXL: prc = cli_parse_long(optarg, "--max-layers", 1, 1000000, &a->max_layers, &e); break;
      case OPT_MAXT: prc = cli_parse_long(optarg, "--max-tokens", 0, 1000000, &a->max_tokens, &e); break;
      case OPT_TIE: prc = cli_parse_double(optarg, "--tie-margin", 0, 1e30, &a->th.tie_margin, &e); break;
      case OPT_MINSET: prc = cli_parse_double(optarg, "--min-set-match", 0, 1, &a->th.min_set_match, &e); break;
      case OPT_MAXW: prc = cli_parse_double(optarg, "--max-weight-diff", 0, 1e30, &a->th.max_weight_diff, &e); break;
      case OPT_MAXLOG: prc = cli_parse_double(optarg, "--max-logits-rel", 0, 1e30, &a->th.max_logits_rel, &e); break;
      default: return cli_bad_option("parity");
    }
    if (prc != 0) return cli_usage_error("parity", "%s", e.msg);
  }
  if (optind != argc - 1) return cli_usage_error("parity", "expected one checkpoint directory");
  a->ckpt = argv[optind];
  if (!a->onnx == !a->cand) return cli_usage_error("parity", "give exactly one of --onnx and --candidate");
  if (!a->report) return cli_usage_error("parity", "--report OUT.h5 is required");
  if (a->ids_arg && a->ids_file) return cli_usage_error("parity", "give at most one of --prompt-ids and --prompt-file");
  if ((!a->ref || a->onnx) && !a->ids_arg && !a->ids_file)
    return cli_usage_error("parity", "a prompt (--prompt-ids or --prompt-file) is needed to compute the %s",
                           a->onnx ? "candidate" : "reference");
  return 0;
}

/* "file.h5:/group" -> file, group ("/" when no group is given). */
static void split_trace_path(const char *arg, char *file, size_t fl, char *group, size_t gl) {
  const char *c = strrchr(arg, ':');
  if (c && c[1] == '/') {
    snprintf(file, fl, "%.*s", (int)(c - arg), arg);
    snprintf(group, gl, "%s", c + 1);
  } else {
    snprintf(file, fl, "%s", arg);
    snprintf(group, gl, "/");
  }
}

static int read_trace_arg(const char *arg, trace *tr, err *e) {
  char file[4096], group[1024];
  split_trace_path(arg, file, sizeof file, group, sizeof group);
  return trace_read(file, group, tr, e);
}

/* Rank 0's work once both traces exist: compare, write the outputs, print the verdict. */
static int compare_and_report(const parity_args *a, const trace *ref, const trace *cand,
                              const parity_meta *m, int *pass, err *e) {
  parity_result r;
  if (parity_compare(ref, cand, &a->th, &r, e) != 0) return -1;
  int rc = parity_report_write(a->report, &r, m, ref, cand, e);
  char svg[4096] = "";
  if (rc == 0 && a->summary) {
    const char *dot = strrchr(a->summary, '.');
    size_t stem = dot && !strchr(dot, '/') ? (size_t)(dot - a->summary) : strlen(a->summary);
    snprintf(svg, sizeof svg, "%.*s.svg", (int)stem, a->summary);
    const char *slash = strrchr(svg, '/');
    rc = parity_chart_write(svg, &r, e);
    if (rc == 0) rc = parity_summary_write(a->summary, slash ? slash + 1 : svg, &r, m, ref, cand, e);
  }
  if (rc == 0) {
    for (int l = 0; l < r.L; l++) {
      const parity_layer *p = &r.layers[l];
      log_verbose("layer %d: sets %.1f %%, order %.1f %%, mismatches %d, near-ties %d, weights %.3g, "
                  "hidden %.3g", l, 100 * p->set_match, 100 * p->order_match, p->n_mismatch,
                  p->n_near_tie, p->weight_max, p->mlp_err);
    }
    log_info("parity: %s: %d positions x %d layers; logits rel. diff %.3g, top-1 agreement %.1f %%",
             r.pass ? "PASS" : "FAIL", r.T, r.L, r.logits_rel, 100 * r.top1_agree);
    if (!r.pass) log_info("parity: failed checks: %s", r.reasons);
    log_info("parity: report %s%s%s%s%s", a->report, a->summary ? ", summary " : "",
             a->summary ? a->summary : "", a->summary ? ", chart " : "", a->summary ? svg : "");
    *pass = r.pass;
  }
  parity_result_free(&r);
  return rc;
}

int cmd_parity(int argc, char **argv) {
  dist d;
  dist_init(&argc, &argv, &d);
  opterr = d.rank == 0;
  parity_args a;
  int rc = 0;
  int prc = parse_args(argc, argv, &a, &rc);
  if (prc != 0) {
    dist_finalize(&d);
    return prc > 0 ? prc : rc;
  }
  err e = {0};
  trace ref = {0}, cand = {0};
  ckpt *ck = NULL;
  int pass = 0, have_ref = 0, have_cand = 0;
  log_info("== parity: reference %s, candidate %s", a.ref ? a.ref : "C forward",
           a.cand ? a.cand : a.onnx);
  if (!a.ref || a.onnx)
    err_set(&e, EXIT_USAGE, "parity: computing the %s is not available in this build; give "
            "--reference and --candidate trace files", a.onnx ? "candidate (--onnx)" : "reference");
  else if (d.rank == 0 && ckpt_open(a.ckpt, &ck, &e) == 0 &&
           (have_ref = read_trace_arg(a.ref, &ref, &e) == 0) &&
           (have_cand = read_trace_arg(a.cand, &cand, &e) == 0)) {
    parity_meta m = {ckpt_dir(ck), a.ref, a.cand, "", d.size, ckpt_config(ck), &a.th};
    compare_and_report(&a, &ref, &cand, &m, &pass, &e);
  }
  if (dist_agree(&d, &e) != 0) {
    log_error("%s", e.msg);
    rc = e.code;
  } else {
    MPI_Bcast(&pass, 1, MPI_INT, 0, d.world);
    rc = pass ? 0 : EXIT_PARITY;
  }
  if (have_ref) trace_free(&ref);
  if (have_cand) trace_free(&cand);
  ckpt_close(ck);
  dist_finalize(&d);
  return rc;
}
