/* parity: compare a reference with a candidate, layer by layer and token by token, and write the
 * HDF5 report, the Markdown summary and the SVG chart (parity/compare.h, parity/report.h).
 *
 *   MPI up -> parse -> reference trace (file, or the C forward on the prompt) -> candidate
 *   trace (file, or the exported ONNX model in ONNX Runtime, or with --per-stage one sub-model
 *   per pipeline stage run by its leader: mpi/parity_stage.h) -> compare -> report -> verdict
 *
 * Exit codes: 0 pass, 3 parity failed (the report is still written), 1 runtime error, 2 usage.
 * Collective over MPI_COMM_WORLD (file comparisons are done by rank 0). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt.h"
#include "cli.h"
#include "compare.h"
#include "dist.h"
#include "fwd_job.h"
#include "log.h"
#include "tok.h"
#include "outpath.h"
#include "ort.h"
#include "ort_trace.h"
#include "parity_stage.h"
#include "report.h"
#include "trace.h"

static const char parity_usage[] =
    "usage: gptoss-mpi parity CKPT (--onnx DIR | --candidate T.h5[:/group])\n"
    "                         [--reference T.h5[:/group]] (--prompt-ids IDS | --prompt-file F)\n"
    "                         --report OUT.h5 [--summary OUT.md] [options]\n"
    "       gptoss-mpi parity CKPT --per-stage [--onnx DIR] (--prompt-ids IDS | --prompt-file F |\n"
    "                         --reference T.h5[:/group]) --report OUT.h5 [--summary OUT.md] [options]\n"
    "\n"
    "Compare a reference (default: the C forward pass of CKPT on the prompt) with a candidate\n"
    "(a trace file, or an exported ONNX model run in ONNX Runtime): expert sets and order, top-k\n"
    "weights, router logits, hidden states, final logits. Writes the HDF5 report (and with\n"
    "--summary a Markdown summary plus an SVG chart next to it). Exit 0 pass, 3 fail.\n"
    "\n"
    "  --candidate T.h5[:/g]  trace to check (e.g. from `run --trace`, or golden.h5:/bf16)\n"
    "  --reference T.h5[:/g]  reference trace instead of the C forward (e.g. golden.h5:/fp32)\n"
    "  --onnx DIR|M.onnx      exported model (with --expose routing,hidden; DIR = the export\n"
    "                         directory) run in ONNX Runtime as a client runs it: a prefill,\n"
    "                         then one decode step per further position through the KV cache,\n"
    "                         on the reference's token ids\n"
    "  --prefill N            positions in the prefill call (default: the prompt; with\n"
    "                         --reference and no prompt, every position of the trace)\n"
    "  --per-stage            for models too large for one process: every layer is exported as\n"
    "                         a one-layer sub-model (hidden state in and out; the last one with\n"
    "                         the head) and run in ONNX Runtime on the reference state entering\n"
    "                         it, by one of the ranks of its pipeline stage (round-robin, one\n"
    "                         layer at a time: `plan --per-stage` gives each rank's memory);\n"
    "                         rank 0 assembles one report. With --onnx DIR the sub-models are\n"
    "                         DIR/layers-L-(L+1)/onnx/model.onnx (`export --layers L:L+1 --expose\n"
    "                         routing,hidden`) instead of temporary exports. With --reference\n"
    "                         (a trace of this checkpoint, e.g. from `run --trace` or an earlier\n"
    "                         run) the C forward pass is skipped\n"
    "  --ort-lib PATH         libonnxruntime.so.1 to use (default: $ORT_LIB, else the one\n"
    "                         `make setup` installed; docs/onnxruntime.md)\n"
    "  --report OUT.h5        the HDF5 report (schema: docs/parity-report.md)\n"
    "  --summary OUT.md       Markdown summary; the chart goes to OUT.svg\n"
    "  --tie-margin X         expert-set mismatches whose reference margin (k-th minus\n"
    "                         (k+1)-th router logit) is below X are near-ties, not failures\n"
    "                         (default 0)\n"
    "  --min-set-match R      fraction of token-layers with equal expert sets (default 1)\n"
    "  --max-weight-diff X    top-k weight difference per expert id (default 1e-4)\n"
    "  --max-logits-rel X     final logits max |diff| / max |reference| (default 1e-4)\n"
    "  --max-hidden-rel X     hidden states after attention and after the MLP, max |diff| /\n"
    "                         max |reference| of the layer (default 1e-4)\n"
    "\n"
    "The computed reference (no --reference) takes the options of `run`:\n";

enum { OPT_ONNX = CLI_OPT_FIRST_COMMAND_OPT, OPT_CAND, OPT_REF, OPT_REPORT, OPT_SUMMARY,
       OPT_TIE, OPT_MINSET, OPT_MAXW, OPT_MAXLOG, OPT_MAXHID, OPT_ORTLIB, OPT_PERSTAGE,
       OPT_PREFILL };

typedef struct {
  const char *ckpt, *onnx, *cand, *ref, *report, *summary, *ort_lib;
  int per_stage;
  long prefill;                /* --prefill N (0 = default) */
  fwd_job_opts job;            /* the computed reference */
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
      FWD_JOB_LONGOPTS,
      {"ort-lib", required_argument, 0, OPT_ORTLIB},
      {"per-stage", no_argument, 0, OPT_PERSTAGE},
      {"prefill", required_argument, 0, OPT_PREFILL},
      {"report", required_argument, 0, OPT_REPORT},
      {"summary", required_argument, 0, OPT_SUMMARY},
      {"tie-margin", required_argument, 0, OPT_TIE},
      {"min-set-match", required_argument, 0, OPT_MINSET},
      {"max-weight-diff", required_argument, 0, OPT_MAXW},
      {"max-logits-rel", required_argument, 0, OPT_MAXLOG},
      {"max-hidden-rel", required_argument, 0, OPT_MAXHID},
      {0, 0, 0, 0}};
  memset(a, 0, sizeof *a);
  parity_thresholds_default(&a->th);
  err e = {0};
  if (fwd_job_opts_init(&a->job, 1, &e) != 0) return cli_usage_error("parity", "%s", e.msg);
  char usage[8192];
  snprintf(usage, sizeof usage, "%s" FWD_JOB_HELP, parity_usage, "1");
  cli_common_init(&a->cc);
  int opt, done = 0, prc = 0;
  optind = 1;
  while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
    if (cli_common_opt(opt, optarg, usage, &a->cc, &done, rc)) {
      if (done) return -1;
      continue;
    }
    int f = fwd_job_opt(&a->job, opt, optarg, &e);
    if (f < 0) return cli_usage_error("parity", "%s", e.msg);
    if (f > 0) continue;
    switch (opt) {
      case OPT_ONNX: a->onnx = optarg; break;
      case OPT_CAND: a->cand = optarg; break;
      case OPT_REF: a->ref = optarg; break;
      case OPT_ORTLIB:
        if (!*optarg) return cli_usage_error("parity", "--ort-lib: the path is empty (leave the option out to use the default)");
        a->ort_lib = optarg;
        break;
      case OPT_PERSTAGE: a->per_stage = 1; break;
      case OPT_PREFILL: prc = cli_parse_long(optarg, "--prefill", 1, 1L << 24, &a->prefill, &e); break;
      case OPT_REPORT: a->report = optarg; break;
      case OPT_SUMMARY: a->summary = optarg; break;
      case OPT_TIE: prc = cli_parse_double(optarg, "--tie-margin", 0, 1e30, &a->th.tie_margin, &e); break;
      case OPT_MINSET: prc = cli_parse_double(optarg, "--min-set-match", 0, 1, &a->th.min_set_match, &e); break;
      case OPT_MAXW: prc = cli_parse_double(optarg, "--max-weight-diff", 0, 1e30, &a->th.max_weight_diff, &e); break;
      case OPT_MAXLOG: prc = cli_parse_double(optarg, "--max-logits-rel", 0, 1e30, &a->th.max_logits_rel, &e); break;
      case OPT_MAXHID: prc = cli_parse_double(optarg, "--max-hidden-rel", 0, 1e30, &a->th.max_hidden_rel, &e); break;
      default: return cli_bad_option("parity");
    }
    if (prc != 0) return cli_usage_error("parity", "%s", e.msg);
  }
  if (optind != argc - 1) return cli_usage_error("parity", "expected one checkpoint directory");
  a->ckpt = a->job.ckpt = argv[optind];
  a->job.progress_s = a->cc.progress_s;
  a->job.tracing = 1;
  if (a->per_stage && a->cand)
    return cli_usage_error("parity", "--per-stage checks sub-models in ONNX Runtime; it takes no "
                           "--candidate");
  if (a->per_stage && a->ref && (a->job.max_layers || a->job.prompt_text || a->job.chat_text))
    return cli_usage_error("parity", "--per-stage --reference checks the trace's layers and "
                           "positions as they are: it takes no --max-layers, --prompt or --chat "
                           "(--prompt-ids/--prompt-file are checked against the trace's ids)");
  if (a->prefill && (a->per_stage || !a->onnx))
    return cli_usage_error("parity", "--prefill is for --onnx with a whole model");
  if (!a->per_stage && !a->onnx == !a->cand)
    return cli_usage_error("parity", "give exactly one of --onnx and --candidate");
  if (!a->report) return cli_usage_error("parity", "--report OUT.h5 is required");
  if (!a->ref && !a->job.ids_arg && !a->job.ids_file && !a->job.prompt_text && !a->job.chat_text)
    return cli_usage_error("parity", "a prompt (--prompt-ids, --prompt-file, --prompt or --chat) is "
                           "needed to compute the reference (or give --reference T.h5)");
  if (fwd_job_check_prompt(&a->job, 0, &e) != 0) return cli_usage_error("parity", "%s", e.msg);
  return 0;
}

/* The chart's path: the summary's with .svg for its extension. */
static void chart_path(const char *summary, char *svg, size_t n) {
  const char *dot = strrchr(summary, '.');
  size_t stem = dot && !strchr(dot, '/') ? (size_t)(dot - summary) : strlen(summary);
  snprintf(svg, n, "%.*s.svg", (int)stem, summary);
}

/* Rank 0's work once both traces exist: compare, stage the outputs (published after the ranks
 * agree), print the verdict. out[0..3): chart, summary, report (the report last: it is the one
 * that says a check was made). */
static int compare_and_stage(const parity_args *a, const trace *ref, const trace *cand,
                             const parity_meta *m, int *pass, atomic_out *out[3], err *e) {
  parity_result r;
  if (parity_compare(ref, cand, &a->th, &r, e) != 0) return -1;
  int rc = 0;
  char svg[4096] = "";
  if (a->summary) {
    chart_path(a->summary, svg, sizeof svg);
    const char *slash = strrchr(svg, '/');
    rc = parity_chart_stage(svg, &r, &out[0], e);
    if (rc == 0) rc = parity_summary_stage(a->summary, slash ? slash + 1 : svg, &r, m, ref, cand, &out[1], e);
  }
  if (rc == 0) rc = parity_report_stage(a->report, &r, m, ref, cand, &out[2], e);
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
    *pass = r.pass;
  }
  parity_result_free(&r);
  return rc;
}

/* Rank 0: the candidate as a trace, from a file or from ONNX Runtime on the reference's ids. */
static int candidate_trace(const parity_args *a, const ckpt *ck, const trace *ref, int n_prompt,
                           trace *cand, char *desc, size_t dl, err *e) {
  if (a->cand) {
    snprintf(desc, dl, "%s", a->cand);
    return trace_read_arg(a->cand, cand, e);
  }
  char model[4096];
  if (ort_trace_model_path(a->onnx, model, sizeof model, e) != 0) return -1;
  /* a reference file: the prompt, when given, is the prefill (it must start the trace) */
  if (a->ref && (a->job.ids_arg || a->job.ids_file)) {
    int32_t *p = NULL;
    const int64_t max_id = ckpt_config(ck)->vocab - 1;
    if ((a->job.ids_arg ? cli_parse_ids(a->job.ids_arg, "--prompt-ids", max_id, &p, &n_prompt, e)
                        : cli_read_ids_file(a->job.ids_file, max_id, &p, &n_prompt, e)) != 0)
      return -1;
    int prefix = n_prompt <= ref->T;
    for (int t = 0; prefix && t < n_prompt; t++) prefix = p[t] == ref->input_ids[t];
    free(p);
    if (!prefix)
      return err_set(e, EXIT_USAGE, "the prompt (%d ids) is not the start of the reference's %d "
                     "ids", n_prompt, ref->T);
  } else if (a->ref) {
    n_prompt = ref->T;
  }
  const int n_prefill = a->prefill ? (int)a->prefill : n_prompt;
  if (n_prefill > ref->T)
    return err_set(e, EXIT_USAGE, "--prefill %d: the reference has %d positions", n_prefill, ref->T);
  ort_runtime *rt = NULL;
  if (ort_open(a->ort_lib, &rt, e) != 0) return -1;
  snprintf(desc, dl, "ONNX Runtime %s: %s", ort_version(rt), model);
  log_info("== candidate: %s on %d positions", desc, ref->T);
  log_info("   prefill of %d position%s, then %d decode step%s", n_prefill, n_prefill > 1 ? "s" : "",
           ref->T - n_prefill, ref->T - n_prefill == 1 ? "" : "s");
  int rc = ort_trace_run(rt, model, ckpt_config(ck), ref->n_layers, ref->input_ids, ref->T,
                         n_prefill, 0, cand, e);
  ort_close(rt);
  return rc;
}

/* Rank 0, --per-stage --reference: the trace must be one of this checkpoint (its widths, at most
 * its layers, ids in its vocabulary) and start with the prompt when one is given. */
static void ref_matches(const parity_args *a, const gpt_config *c, const trace *r, err *e) {
  const struct { const char *what; int64_t have, want; } dims[] = {
      {"hidden size", r->D, c->hidden}, {"vocabulary", r->V, c->vocab},
      {"experts", r->E, c->n_experts}, {"top-k", r->K, c->top_k},
      {"intermediate size", r->I, c->intermediate}, {"qkv rows", r->QKV, config_qkv_rows(c)},
      {"attention width", r->HD, (int64_t)c->n_heads * c->head_dim}};
  for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
    if (dims[i].have != dims[i].want) {
      err_set(e, EXIT_USAGE, "--reference %s: a trace of %s %lld, but the checkpoint %s has %lld: "
              "not a trace of this checkpoint", a->ref, dims[i].what, (long long)dims[i].have,
              a->ckpt, (long long)dims[i].want);
      return;
    }
  if (r->n_layers < 1 || r->n_layers > c->n_layers) {
    err_set(e, EXIT_USAGE, "--reference %s: %d layers, but the checkpoint %s has %d", a->ref,
            r->n_layers, a->ckpt, c->n_layers);
    return;
  }
  if (!r->embedding_out) {
    err_set(e, EXIT_USAGE, "--reference %s: the trace has no embedding_out (the state entering "
            "layer 0), which per-stage parity starts from", a->ref);
    return;
  }
  for (int l = 0; l < r->n_layers; l++)
    if (r->sliding_window && r->sliding_window[l] != (config_layer_is_sliding(c, l) ? c->sliding_window : 0)) {
      err_set(e, EXIT_USAGE, "--reference %s: layer %d has sliding window %d, the checkpoint %s %d",
              a->ref, l, r->sliding_window[l], a->ckpt, (config_layer_is_sliding(c, l) ? c->sliding_window : 0));
      return;
    }
  for (int t = 0; t < r->T; t++)
    if (r->input_ids[t] < 0 || r->input_ids[t] >= c->vocab) {
      err_set(e, EXIT_USAGE, "--reference %s: token id %d at position %d is outside the "
              "checkpoint's vocabulary of %d", a->ref, r->input_ids[t], t, c->vocab);
      return;
    }
  if (a->job.ids_arg || a->job.ids_file) {
    int32_t *p = NULL;
    int n = 0;
    if ((a->job.ids_arg ? cli_parse_ids(a->job.ids_arg, "--prompt-ids", c->vocab - 1, &p, &n, e)
                        : cli_read_ids_file(a->job.ids_file, c->vocab - 1, &p, &n, e)) != 0)
      return;
    int prefix = n <= r->T;
    for (int t = 0; prefix && t < n; t++) prefix = p[t] == r->input_ids[t];
    free(p);
    if (!prefix)
      err_set(e, EXIT_USAGE, "--reference %s: the prompt (%d ids) is not the start of the "
              "reference's %d ids", a->ref, n, r->T);
  }
}

/* Rank 0, before any work: the outputs against each other and against every input. */
static void check_outputs(const parity_args *a, const ckpt *ck, err *e) {
  char svg[4096] = "";
  if (a->summary) chart_path(a->summary, svg, sizeof svg);
  const outpath out[3] = {{a->report, "--report", OUTPATH_FILE},
                          {a->summary, "--summary", OUTPATH_FILE},
                          {a->summary ? svg : NULL, "the chart (--summary with .svg)", OUTPATH_FILE}};
  char ref[4096] = "", cand[4096] = "", g[1024], data[4200] = "";
  if (a->ref) trace_split_arg(a->ref, ref, sizeof ref, g, sizeof g);
  if (a->cand) trace_split_arg(a->cand, cand, sizeof cand, g, sizeof g);
  if (a->onnx) snprintf(data, sizeof data, "%s.data", a->onnx);
  const char *fixed[] = {a->ckpt, a->job.ids_file, ref[0] ? ref : NULL, cand[0] ? cand : NULL,
                         a->onnx, a->onnx ? data : NULL, a->ort_lib};
  const size_t nf = sizeof fixed / sizeof fixed[0], n_max = nf + ckpt_n_files(ck) + 2;
  const char **in = malloc(n_max * sizeof *in);
  if (!in) {
    err_set(e, EXIT_RUNTIME, "out of memory");
    return;
  }
  memcpy(in, fixed, sizeof fixed);
  outpath_check(out, 3, in, (int)(nf + ckpt_input_paths(ck, in + nf, n_max - nf)), e);
  free(in);
}

int cmd_parity(int argc, char **argv) {
  dist d;
  if (dist_init(&argc, &argv, &d) != 0) {
    dist_finalize(&d);
    return EXIT_RUNTIME;
  }
  opterr = d.rank == 0;
  parity_args a;
  int rc = 0;
  int prc = parse_args(argc, argv, &a, &rc);
  if (prc != 0) {
    dist_finalize(&d);
    return prc > 0 ? prc : rc;
  }
  err e = {0};
  fwd_job j = {0};
  trace ref_file = {0}, cand = {0};
  ckpt *ck = NULL;
  const trace *ref = NULL;
  atomic_out *out[3] = {NULL, NULL, NULL};
  int pass = 0, have_ref_file = 0, have_cand = 0;
  char ref_desc[4200], cand_desc[4200];

  /* reference: a trace file (rank 0) or the distributed C forward pass (every rank); the outputs
   * are checked first in both cases */
  if (a.ref) {
    log_info("== reference: %s", a.ref);
    snprintf(ref_desc, sizeof ref_desc, "%s", a.ref);
    /* per-stage: every rank exports from the checkpoint */
    if ((d.rank == 0 || a.per_stage) && ckpt_open(a.ckpt, &ck, &e) == 0 && d.rank == 0) {
      check_outputs(&a, ck, &e);
      if (e.code == 0 && (have_ref_file = trace_read_arg(a.ref, &ref_file, &e) == 0)) ref = &ref_file;
      if (e.code == 0 && a.per_stage) ref_matches(&a, ckpt_config(ck), ref, &e);
    }
    dist_agree(&d, &e);
    if (e.code == 0 && a.per_stage) {
      int tl[2] = {ref ? ref->T : 0, ref ? ref->n_layers : 0};
      MPI_Bcast(tl, 2, MPI_INT, 0, d.world);
      j.ck = ck; /* fwd_job_free closes it */
      ck = NULL;
      j.T_done = tl[0];
      j.n_layers = tl[1];
      dist_setup(&d, ckpt_config(j.ck), (int)a.job.stages, tl[0], tl[0], &e);
      dist_agree(&d, &e);
      if (d.rank == 0) ck = j.ck;
    }
  } else {
    snprintf(ref_desc, sizeof ref_desc, "C forward pass, %s, %d rank%s",
             a.job.precision == MODEL_BF16 ? "bf16" : "fp32", d.size, d.size > 1 ? "s" : "");
    char svg[4096] = "", cfile[4096] = "", g[1024], data[4200] = "";
    if (a.summary) chart_path(a.summary, svg, sizeof svg);
    if (a.cand) trace_split_arg(a.cand, cfile, sizeof cfile, g, sizeof g);
    if (a.onnx) snprintf(data, sizeof data, "%s.data", a.onnx);
    fwd_job_opts *jo = &a.job;
    jo->outputs[0] = (outpath){a.report, "--report", OUTPATH_FILE};
    jo->outputs[1] = (outpath){a.summary, "--summary", OUTPATH_FILE};
    jo->outputs[2] = (outpath){a.summary ? svg : NULL, "the chart (--summary with .svg)", OUTPATH_FILE};
    jo->n_outputs = 3;
    const char *in[] = {cfile[0] ? cfile : NULL, a.onnx, a.onnx ? data : NULL, a.ort_lib};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) jo->inputs[jo->n_inputs++] = in[i];
    if (fwd_job_run(&d, jo, &j, &e) == 0 && d.rank == 0) {
      ref = &j.tr;
      ck = j.ck;
    }
  }
  /* candidate: every stage leader (--per-stage, agreed inside), or rank 0 */
  dist_pause(&d, "candidate");
  if (a.per_stage && e.code == 0) {
    char parent[4096];
    const char *slash = strrchr(a.report, '/');
    snprintf(parent, sizeof parent, "%.*s", !slash ? 1 : slash == a.report ? 1 : (int)(slash - a.report),
             slash ? a.report : ".");
    parity_stage_opts so = {a.onnx, a.ort_lib, parent};
    /* the C forward's buffers and checkpoint pages go before ONNX Runtime loads anything */
    const uint64_t fwd_peak = dist_peak_rss(), fwd_anon = dist_rss_anon(),
                   fwd_touched = j.ck ? dist_resident_file_bytes(ckpt_dir(j.ck)) : 0;
    fwd_job_release(&j);
    const parity_stage_in in = {j.ck, ref, j.T_done, j.n_layers, fwd_peak, fwd_anon, fwd_touched};
    have_cand = parity_stage_candidate(&d, &in, &so, &cand, cand_desc, sizeof cand_desc, &e) == 0 &&
                d.rank == 0;
  } else if (e.code == 0) {
    if (d.rank == 0)
      have_cand = candidate_trace(&a, ck, ref, j.n_prompt, &cand, cand_desc, sizeof cand_desc, &e) == 0;
    dist_agree(&d, &e);
  }
  /* comparison and staged outputs on rank 0, agreed; then published */
  if (e.code == 0 && have_cand) {
    /* text in the summary: the prompt's tokenizer, or one found beside the checkpoint (quietly:
     * a model without a tokenizer just gets no text) */
    tok *found = NULL;
    const tok *tk = j.tok;
    err te = {0};
    if (!tk && tok_find(ckpt_dir(ck), a.job.tok_path, &found, &te) == 0) tk = found;
    parity_meta m = {ckpt_dir(ck), ref_desc, cand_desc,
                     a.ref ? "" : a.job.precision == MODEL_BF16 ? "bf16" : "fp32", d.size,
                     ckpt_config(ck), &a.th, tk, a.ref ? 0 : j.n_prompt};
    log_info("== compare: %d positions x %d layers", ref->T, ref->n_layers);
    compare_and_stage(&a, ref, &cand, &m, &pass, out, &e);
    tok_close(found);
  }
  dist_pause(&d, "report-staged");
  if (e.code == 0 || !e.agreed) dist_agree(&d, &e);
  if (e.code == 0 && d.rank == 0) {
    if (atomic_publish_all(out, 3, &e) == 0)
      log_info("parity: report %s%s%s", a.report, a.summary ? ", summary " : "",
               a.summary ? a.summary : "");
  }
  if (e.code == 0 || !e.agreed) dist_agree(&d, &e);
  for (int i = 0; i < 3; i++) atomic_abort(out[i]); /* left only when the job failed */
  if (e.code != 0) {
    log_error("%s", e.msg);
    rc = e.code;
  } else {
    MPI_Bcast(&pass, 1, MPI_INT, 0, d.world);
    rc = pass ? 0 : EXIT_PARITY;
  }
  if (have_ref_file) trace_free(&ref_file);
  if (have_cand) trace_free(&cand);
  if (a.ref && ck != j.ck) ckpt_close(ck); /* per-stage: moved to j.ck once every rank had it */
  fwd_job_free(&j);
  dist_finalize(&d);
  return rc;
}
