/* export: the checkpoint as an ONNX model (graph + external data) written by all ranks.
 *
 *   MPI up -> parse -> open checkpoint, check the output path -> plan -> layout -> make or
 *   resume OUT.partial with its manifest, locked (rank 0) -> read the journals -> every rank
 *   verifies what its journaled pieces hold and writes the rest at their offsets, journaling
 *   each piece -> rank 0 writes model.onnx -> rank 0 publishes OUT.partial as OUT -> summary
 *
 * The library does the work (export/export_write.h, shards/resume.h); this file sequences it and
 * the ranks agree after every phase (dist_agree). Everything goes to OUT.partial first (a
 * sibling of OUT, shards/resume.h); OUT appears only when the export is complete. A stopped
 * (SIGTERM/SIGINT/SIGHUP), killed or MPI-aborted export leaves OUT.partial for `--resume`; a
 * failed one removes it when it made it, and keeps it when it was resuming it. Collective over
 * MPI_COMM_WORLD. */
#define _GNU_SOURCE
#include <getopt.h>
#include <limits.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic.h"
#include "ckpt.h"
#include "cli.h"
#include "dist.h"
#include "export_client.h"
#include "export_graph.h"
#include "export_layout.h"
#include "export_write.h"
#include "guard.h"
#include "log.h"
#include "outpath.h"
#include "progress.h"
#include "resume.h"
#include "strbuf.h"
#include <sys/stat.h>

static const char export_usage[] =
    "usage: gptoss-mpi export CKPT --output DIR [options]\n"
    "\n"
    "Write the checkpoint as an ONNX model (opset 23, IR 11): a decoder with a KV\n"
    "cache, DIR/onnx/model.onnx (graph, no weights) and its external data, written in parallel\n"
    "by every rank, and the files clients read beside it (config.json, generation_config.json,\n"
    "genai_config.json, the checkpoint's tokenizer files). DIR must not exist or be empty; it\n"
    "appears only when the export is complete: until then everything is in DIR.partial, with a\n"
    "manifest and per-rank journals of the checksummed pieces written. An export stopped by a\n"
    "signal (scancel, a time limit) or a lost rank leaves DIR.partial for --resume.\n"
    "\n"
    "  --output DIR          output directory\n"
    "  --target T            standard (default: opset 23 ops only, any ONNX runtime) or ort\n"
    "                        (ONNX Runtime contrib ops: GroupQueryAttention with the sinks and\n"
    "                        windows, QMoE with the MXFP4 experts as exact int8 codes; faster\n"
    "                        in ONNX Runtime, about 2x the experts' bytes; docs/export.md)\n"
    "  --weights W           mxfp4 (default: experts stay MXFP4 bytes, decoded in the graph)\n"
    "                        or fp32 (experts decoded at export time)\n"
    "  --dense D             how bf16 tensors are stored: bf16 (default: bf16 + Cast in the\n"
    "                        graph), fp32 (converted at export time) or auto (fp32 only for a\n"
    "                        tensor whose fp32 copy exceeds ORT's 1 GiB folding limit, i.e. the\n"
    "                        unembedding of the real models); see docs/export.md\n"
    "  --max-layers N        export only the first N layers, then final norm + unembedding\n"
    "  --layers A:B          a prefill-only sub-model of layers [A, B) (no cache): input\n"
    "                        hidden_in and output hidden_out [batch, sequence, D] (+ logits\n"
    "                        when B is the last layer); exposed outputs keep the global layer\n"
    "                        numbers\n"
    "  --expose LIST         extra outputs per layer: routing, hidden or routing,hidden\n"
    "  --data-files F        single (default: one model.onnx.data, identical bytes for every\n"
    "                        rank count) or per-rank (model.onnx.data.<rank>)\n"
    "  --max-positions N     longest sequence (rows of the RoPE caches; default\n"
    "                        initial_context_length x rope_scaling_factor)\n"
    "  --logits-to-keep      add the optional int64 input num_logits_to_keep (Hugging Face's\n"
    "                        logits_to_keep: 0 = every position's logits, k = the last k), so\n"
    "                        a prefill can skip the unembedding of the other positions. An\n"
    "                        overridable initializer: only the ONNX Runtime C/C++/Python APIs\n"
    "                        can feed it (not onnxruntime-node), and ORT logs a warning about\n"
    "                        it at session creation; docs/export.md\n"
    "  --stages S            pipeline stages of the shard plan (must divide the rank count)\n"
    "  --tokenizer F         write tokenizer.json and tokenizer_config.json (harmony chat\n"
    "                        template) made from this vocabulary (tokenizer.json or\n"
    "                        o200k_base.tiktoken); default: copy the checkpoint repository's\n"
    "                        tokenizer files, or make them from an o200k_base.tiktoken there\n"
    "  --resume              continue the export left in DIR.partial (same checkpoint and\n"
    "                        options, any rank count with a single data file): every journaled\n"
    "                        piece is verified by its XXH64, only missing or bad ones are written;\n"
    "                        the result is byte-identical to an uninterrupted export. Without\n"
    "                        DIR.partial it starts from scratch\n";

enum { OPT_OUTPUT = CLI_OPT_FIRST_COMMAND_OPT, OPT_TARGET, OPT_WEIGHTS, OPT_DENSE, OPT_MAXLAYERS, OPT_EXPOSE,
       OPT_DATAFILES, OPT_MAXPOS, OPT_STAGES, OPT_LAYERS, OPT_TOKENIZER, OPT_RESUME,
       OPT_LOGITS_KEEP };

typedef struct {
  const char *ckpt, *output, *tok_path;
  int target, experts_fp32, dense, per_rank, expose_routing, expose_hidden, resume,
      logits_to_keep;
  long max_layers, max_positions, stages;
  long layer_a, layer_b;       /* --layers A:B (layer_b 0 = not given) */
  cli_common cc;
} export_args;

static int parse_expose(const char *s, export_args *a) {
  char buf[64];
  snprintf(buf, sizeof buf, "%s", s);
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    if (!strcmp(tok, "routing")) a->expose_routing = 1;
    else if (!strcmp(tok, "hidden")) a->expose_hidden = 1;
    else return cli_usage_error("export", "--expose: '%s' is not routing or hidden", tok);
  }
  return 0;
}

/* --layers A:B, 0 <= A < B (B checked against the checkpoint later). */
static int parse_layers(const char *s, export_args *a) {
  char buf[64];
  err e = {0};
  snprintf(buf, sizeof buf, "%s", s);
  char *colon = strchr(buf, ':');
  if (!colon) return cli_usage_error("export", "--layers: '%s' is not A:B", s);
  *colon = '\0';
  if (cli_parse_long(buf, "--layers A", 0, 1000000, &a->layer_a, &e) != 0 ||
      cli_parse_long(colon + 1, "--layers B", 1, 1000000, &a->layer_b, &e) != 0)
    return cli_usage_error("export", "%s", e.msg);
  if (a->layer_a >= a->layer_b)
    return cli_usage_error("export", "--layers %ld:%ld: A must be below B", a->layer_a, a->layer_b);
  return 0;
}

/* 0 ok, 2 usage (message printed), or -1 with *rc set for --help/--version */
static int parse_args(int argc, char **argv, export_args *a, int *rc) {
  static const struct option longopts[] = {
      CLI_COMMON_LONGOPTS,
      {"output", required_argument, 0, OPT_OUTPUT},
      {"target", required_argument, 0, OPT_TARGET},
      {"weights", required_argument, 0, OPT_WEIGHTS},
      {"dense", required_argument, 0, OPT_DENSE},
      {"max-layers", required_argument, 0, OPT_MAXLAYERS},
      {"expose", required_argument, 0, OPT_EXPOSE},
      {"data-files", required_argument, 0, OPT_DATAFILES},
      {"max-positions", required_argument, 0, OPT_MAXPOS},
      {"stages", required_argument, 0, OPT_STAGES},
      {"layers", required_argument, 0, OPT_LAYERS},
      {"tokenizer", required_argument, 0, OPT_TOKENIZER},
      {"resume", no_argument, 0, OPT_RESUME},
      {"logits-to-keep", no_argument, 0, OPT_LOGITS_KEEP},
      {0, 0, 0, 0}};
  memset(a, 0, sizeof *a);
  a->dense = EXPORT_DENSE_BF16;
  err e = {0};
  cli_common_init(&a->cc);
  int opt, done = 0;
  optind = 1;
  while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
    if (cli_common_opt(opt, optarg, export_usage, &a->cc, &done, rc)) {
      if (done) return -1;
      continue;
    }
    switch (opt) {
      case OPT_OUTPUT: a->output = optarg; break;
      case OPT_TARGET:
        if (!strcmp(optarg, "standard")) a->target = EXPORT_TARGET_STANDARD;
        else if (!strcmp(optarg, "ort")) a->target = EXPORT_TARGET_ORT;
        else return cli_usage_error("export", "--target: '%s' is not standard or ort", optarg);
        break;
      case OPT_WEIGHTS:
        if (!strcmp(optarg, "mxfp4")) a->experts_fp32 = 0;
        else if (!strcmp(optarg, "fp32")) a->experts_fp32 = 1;
        else return cli_usage_error("export", "--weights: '%s' is not mxfp4 or fp32", optarg);
        break;
      case OPT_DENSE:
        if (!strcmp(optarg, "bf16")) a->dense = EXPORT_DENSE_BF16;
        else if (!strcmp(optarg, "fp32")) a->dense = EXPORT_DENSE_FP32;
        else if (!strcmp(optarg, "auto")) a->dense = EXPORT_DENSE_AUTO;
        else return cli_usage_error("export", "--dense: '%s' is not auto, bf16 or fp32", optarg);
        break;
      case OPT_DATAFILES:
        if (!strcmp(optarg, "single")) a->per_rank = 0;
        else if (!strcmp(optarg, "per-rank")) a->per_rank = 1;
        else return cli_usage_error("export", "--data-files: '%s' is not single or per-rank", optarg);
        break;
      case OPT_EXPOSE:
        if (parse_expose(optarg, a) != 0) return EXIT_USAGE;
        break;
      case OPT_MAXLAYERS:
        if (cli_parse_long(optarg, "--max-layers", 1, 1000000, &a->max_layers, &e) != 0)
          return cli_usage_error("export", "%s", e.msg);
        break;
      case OPT_MAXPOS:
        if (cli_parse_long(optarg, "--max-positions", 1, 1L << 24, &a->max_positions, &e) != 0)
          return cli_usage_error("export", "%s", e.msg);
        break;
      case OPT_STAGES:
        if (cli_parse_long(optarg, "--stages", 1, PLAN_MAX_STAGES, &a->stages, &e) != 0)
          return cli_usage_error("export", "%s", e.msg);
        break;
      case OPT_TOKENIZER:
        if (!*optarg) return cli_usage_error("export", "--tokenizer: the path is empty");
        a->tok_path = optarg;
        break;
      case OPT_LAYERS:
        if (parse_layers(optarg, a) != 0) return EXIT_USAGE;
        break;
      case OPT_RESUME: a->resume = 1; break;
      case OPT_LOGITS_KEEP: a->logits_to_keep = 1; break;
      default: return cli_bad_option("export");
    }
  }
  if (optind != argc - 1) return cli_usage_error("export", "expected one checkpoint directory");
  a->ckpt = argv[optind];
  if (!a->output || !*a->output) return cli_usage_error("export", "--output DIR is required");
  if (a->layer_b && a->max_layers)
    return cli_usage_error("export", "give at most one of --layers and --max-layers");
  if (a->layer_b && a->logits_to_keep)
    return cli_usage_error("export", "--logits-to-keep is for the decoder, not a --layers sub-model");
  return 0;
}

/* Progress of the data phase; the kill hook of the fault tests dies in the middle of writing,
 * as a killed job would. */
typedef struct {
  progress pr;
  const dist *d;
} data_progress;

static void on_chunk(void *ctx, uint64_t bytes) {
  data_progress *p = ctx;
  progress_note(&p->pr, bytes);
  err ek = {0};
  if (dist_fault(p->d, "export-kill", &ek) != 0) raise(SIGKILL);
}

/* The identity of this export (shards/resume.h "manifest"): checkpoint files (real path, size,
 * mtime), every option that changes bytes, tool version, and the data layout. Rank 0. */
static char *manifest_make(const export_args *a, const ckpt *ck, const export_layout *L,
                           const dist *d, err *e) {
  strbuf b = {0};
  char real[PATH_MAX];
  const export_opts *o = &L->o;
  strbuf_printf(&b, "%s\ntool gptoss-mpi %s\n", RESUME_MANIFEST_MAGIC, GPTOSS_VERSION);
  strbuf_printf(&b, "checkpoint %s\n", realpath(ckpt_dir(ck), real) ? real : ckpt_dir(ck));
  const size_t n_max = ckpt_n_files(ck) + 3;
  const char **in = malloc(n_max * sizeof *in);
  if (!in) {
    err_set(e, EXIT_RUNTIME, "out of memory");
    return NULL;
  }
  const size_t n_in = ckpt_input_paths(ck, in, n_max);
  for (size_t i = 0; i < n_in; i++) {
    struct stat st;
    if (stat(in[i], &st) != 0 || S_ISDIR(st.st_mode)) continue;
    strbuf_printf(&b, "input %s %lld %lld.%09ld\n", realpath(in[i], real) ? real : in[i],
                  (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  }
  free(in);
  strbuf_printf(&b, "options target=%s weights=%s dense=%s layers=%d:%d sub-model=%d head=%d "
                "expose=%s%s data-files=%s max-positions=%d tokenizer=%s\n",
                o->target == EXPORT_TARGET_ORT ? "ort" : "standard", o->experts_fp32 ? "fp32" : "mxfp4",
                o->dense == EXPORT_DENSE_FP32 ? "fp32" : o->dense == EXPORT_DENSE_BF16 ? "bf16" : "auto",
                o->layer0, o->n_layers, o->sub_model, export_layout_has_head(L),
                o->expose_routing ? "routing," : "", o->expose_hidden ? "hidden" : "",
                o->per_rank_files ? "per-rank" : "single", o->max_positions,
                a->tok_path ? (realpath(a->tok_path, real) ? real : a->tok_path) : "-");
  /* per-rank files follow the plan: the rank count and stages are part of the layout then */
  if (o->per_rank_files)
    strbuf_printf(&b, "plan ranks=%d stages=%d groups=%d\n", d->size, d->plan.n_stages, d->plan.n_groups);
  for (int f = 0; f < L->n_files; f++) {
    char name[64];
    export_layout_file_name(L, f, name, sizeof name);
    strbuf_printf(&b, "file %d %s %llu\n", f, name, (unsigned long long)L->file_bytes[f]);
  }
  for (size_t i = 0; i < L->n_tensors; i++)
    strbuf_printf(&b, "tensor %s %d %llu %llu\n", L->t[i].name, L->t[i].file,
                  (unsigned long long)L->t[i].offset, (unsigned long long)L->t[i].n_bytes);
  if (b.oom) {
    strbuf_free(&b);
    err_set(e, EXIT_RUNTIME, "out of memory (manifest)");
    return NULL;
  }
  return b.p;
}

static long env_throttle_ms(void) {
  const char *s = getenv("GPTOSS_EXPORT_THROTTLE");
  long v = s ? strtol(s, NULL, 10) : 0;
  return v > 0 && v < 600000 ? v : 0;
}

static int export_dist(dist *d, const export_args *a, err *e) {
  const double t_start = log_now();
  ckpt *ck = NULL;
  export_layout L = {0};
  resume_dir *rd = NULL;   /* rank 0: OUT.partial, locked */
  char staged[PATH_MAX] = "";
  int have_layout = 0, rc = -1, created = 0, have_journal = 0;
  resume_records done = {0};
  resume_journal jn = {.fd = -1};
  double t_data = 0, t_graph = 0;
  uint64_t graph_bytes = 0;
  size_t n_nodes = 0;

  /* open; the output checked before any work (rank 0 sees what every rank would see) */
  log_info("== open: %s (%d rank%s)", a->ckpt, d->size, d->size > 1 ? "s" : "");
  if (dist_fault(d, "open", e) == 0 && ckpt_open(a->ckpt, &ck, e) == 0 && d->rank == 0) {
    const outpath o = {a->output, "--output", OUTPATH_DIR};
    const size_t n_max = ckpt_n_files(ck) + 3;
    const char **in = malloc(n_max * sizeof *in);
    if (!in) {
      err_set(e, EXIT_RUNTIME, "out of memory");
    } else {
      in[0] = a->ckpt;
      outpath_check(&o, 1, in, 1 + (int)ckpt_input_paths(ck, in + 1, n_max - 1), e);
      free(in);
    }
  }
  if (dist_agree(d, e) != 0) goto out;
  gpt_config c = *ckpt_config(ck);
  if (a->max_layers > c.n_layers)
    err_set(e, EXIT_USAGE, "--max-layers %ld: the checkpoint has %d layers", a->max_layers, c.n_layers);
  if (a->layer_b > c.n_layers)
    err_set(e, EXIT_USAGE, "--layers %ld:%ld: the checkpoint has %d layers", a->layer_a,
            a->layer_b, c.n_layers);
  if (dist_agree(d, e) != 0) goto out;
  export_opts o = {.target = a->target, .experts_fp32 = a->experts_fp32, .dense = a->dense,
                   .n_layers = c.n_layers, .per_rank_files = a->per_rank,
                   .expose_routing = a->expose_routing, .expose_hidden = a->expose_hidden,
                   .logits_to_keep = a->logits_to_keep};
  if (a->max_layers) o.n_layers = c.n_layers = (int)a->max_layers;
  if (a->layer_b) {
    o.sub_model = 1;
    o.sub_head = a->layer_b == c.n_layers;
    o.layer0 = (int)a->layer_a;
    o.n_layers = (int)a->layer_b;
  }
  const double mp = a->max_positions ? (double)a->max_positions
                                     : (double)c.initial_context_length * c.rope_scaling_factor;
  o.max_positions = mp > (double)(1L << 24) ? 1 << 24 : (int)mp;

  /* plan and layout: the same on every rank, nothing communicated */
  if (dist_setup(d, &c, (int)a->stages, 1, 1, e) == 0)
    have_layout = export_layout_make(ck, &o, &d->plan, &L, e) == 0;
  if (dist_agree(d, e) != 0) goto out;
  uint64_t total = 0;
  for (int f = 0; f < L.n_files; f++) total += L.file_bytes[f];
  log_info("== plan: %d stages x %d expert groups; %zu tensors, %.1f MiB of data in %d file%s, "
           "target %s, weights %s, dense %s, layers %d-%d%s, %d positions", d->plan.n_stages,
           d->plan.n_groups, L.n_tensors, total / 1048576.0, L.n_files, L.n_files > 1 ? "s" : "",
           o.target == EXPORT_TARGET_ORT ? "ort" : "standard",
           o.target == EXPORT_TARGET_ORT ? "int8 codes" : o.experts_fp32 ? "fp32" : "mxfp4", o.dense == EXPORT_DENSE_FP32 ? "fp32" : o.dense == EXPORT_DENSE_BF16 ? "bf16" : "auto",
           o.layer0, o.n_layers - 1, o.sub_model ? " (sub-model)" : "", o.max_positions);

  /* OUT.partial (and its data file), made or resumed by rank 0 before anyone opens it; a stop
   * from now on keeps it for --resume */
  if (d->rank == 0) {
    char *manifest = manifest_make(a, ck, &L, d, e);
    if (manifest && resume_dir_open(a->output, manifest, a->resume, &rd, e) == 0) {
      created = resume_dir_created(rd);
      if (export_dir_prepare(&L, resume_dir_path(rd), e) == 0)
        snprintf(staged, sizeof staged, "%s", resume_dir_path(rd));
    }
    free(manifest);
  }
  MPI_Bcast(staged, (int)sizeof staged, MPI_CHAR, 0, d->world);
  MPI_Bcast(&created, 1, MPI_INT, 0, d->world);
  if (dist_agree(d, e) != 0) goto out;
  {
    char note[PATH_MAX + 128];
    snprintf(note, sizeof note, "; export interrupted, %s kept: rerun with --resume to continue it", staged);
    guard_stop_note(note);
  }
  /* what the journals say is written (every rank reads them all: pieces are named by tensor and
   * offset, not by the rank that wrote them), then this rank's own journal to append to */
  if (!created && resume_records_read(staged, &done, e) == 0) {
    uint64_t n_rec = done.n, n_bad = done.n_ignored;
    if (d->rank == 0)
      log_info("== resume: %s: %llu journaled pieces to verify%s", staged, (unsigned long long)n_rec,
               n_bad ? " (and unreadable journal lines, ignored)" : "");
  }
  if (dist_agree(d, e) != 0) goto out;
  have_journal = resume_journal_open(staged, d->rank, &jn, e) == 0;
  if (dist_agree(d, e) != 0) goto out;

  /* data: every rank its share, at offsets fixed by the layout; then the checkpoint must still be
   * the one that was read */
  double t0 = log_now();
  const uint64_t mine = export_layout_rank_bytes(&L, &d->plan, d->rank);
  log_info("== data: %s, %.1f MiB from %d rank%s", staged, total / 1048576.0, d->size,
           d->size > 1 ? "s" : "");
  data_progress dp = {.d = d};
  export_resume res = {.done = created ? NULL : &done, .journal = &jn, .throttle_ms = env_throttle_ms()};
  progress_begin(&dp.pr, d, 1, "data", NULL, total, a->cc.progress_s);
  dist_pause(d, "export-data");
  if (dist_fault(d, "export-data", e) == 0 &&
      export_write_share(ck, &L, &d->plan, d->rank, staged, on_chunk, &dp, &res, e) == 0)
    ckpt_unchanged(ck, e);
  const uint64_t anon = dist_rss_anon();
  progress_end(&dp.pr);
  if (dist_agree(d, e) != 0) goto out;
  t_data = log_now() - t0;
  {
    uint64_t v[5] = {res.n_verified, res.verified_bytes, res.n_written, res.written_bytes, res.n_mismatch}, sum[5];
    MPI_Reduce(v, sum, 5, MPI_UINT64_T, MPI_SUM, 0, d->world);
    if (d->rank == 0)
      log_info("   pieces: %llu verified (%.1f MiB, already written), %llu written (%.1f MiB); "
               "%llu journaled piece%s did not match %s checksum", (unsigned long long)sum[0],
               sum[1] / 1048576.0, (unsigned long long)sum[2], sum[3] / 1048576.0,
               (unsigned long long)sum[4], sum[4] == 1 ? "" : "s", sum[4] == 1 ? "its" : "their");
  }

  /* graph: rank 0, once every rank has written and synced its part */
  t0 = log_now();
  log_info("== graph: %s/%s", staged, EXPORT_MODEL_FILE);
  if (dist_fault(d, "export-graph", e) == 0 && d->rank == 0 &&
      export_graph_write(&L, staged, &graph_bytes, &n_nodes, e) == 0)
    export_client_files_write(&L, ck, staged, a->tok_path, NULL, e);
  if (dist_agree(d, e) != 0) goto out;
  t_graph = log_now() - t0;

  /* publish: after the last work of every rank */
  log_info("== commit: %s", a->output);
  resume_journal_close(&jn); /* the journals go with the publish */
  if (d->rank == 0) {
    resume_dir *r1 = rd;
    rd = NULL;
    resume_dir_publish(r1, e);
  }
  if (dist_agree(d, e) != 0) goto out;
  guard_stop_note(NULL);

  /* summary */
  uint64_t mine_v[3] = {mine, anon, dist_peak_rss()};
  uint64_t *all = d->rank == 0 ? malloc((size_t)d->size * sizeof mine_v) : NULL;
  int have_all = d->rank != 0 || all;
  MPI_Bcast(&have_all, 1, MPI_INT, 0, d->world);
  if (have_all) MPI_Gather(mine_v, 3, MPI_UINT64_T, all, 3, MPI_UINT64_T, 0, d->world);
  for (int r = 0; all && r < d->size; r++)
    log_info("   rank %d: wrote %.1f MiB; anonymous memory after writing %.1f MiB, peak RSS "
             "%.1f MiB", r, all[3 * r] / 1048576.0, all[3 * r + 1] / 1048576.0,
             all[3 * r + 2] / 1048576.0);
  free(all);
  const double t_all = log_now() - t_start;
  log_info("== summary: data %.1f MiB in %.2f s (%.1f MiB/s); graph %zu nodes, %.1f KiB in "
           "%.2f s; total %.2f s", total / 1048576.0, t_data, total / 1048576.0 / (t_data > 0 ? t_data : 1),
           n_nodes, graph_bytes / 1024.0, t_graph, t_all);
  rc = 0;
out:
  if (have_journal) resume_journal_close(&jn);
  resume_records_free(&done);
  if (rc != 0) {
    /* a failure (the ranks agreed on it) removes the OUT.partial this run made, and keeps one
     * it was resuming: the work of earlier jobs is never deleted */
    if (rd && !created) {
      char tail[PATH_MAX + 32];
      snprintf(tail, sizeof tail, " (%s kept for --resume)", resume_dir_path(rd));
      strncat(e->msg, tail, sizeof e->msg - strlen(e->msg) - 1);
    }
    resume_dir_close(rd, created);
    guard_stop_note(NULL);
  }
  if (have_layout) export_layout_free(&L);
  ckpt_close(ck);
  return rc;
}

int cmd_export(int argc, char **argv) {
  dist d;
  if (dist_init(&argc, &argv, &d) != 0) {
    dist_finalize(&d);
    return EXIT_RUNTIME;
  }
  opterr = d.rank == 0;
  export_args a;
  int rc = 0;
  int prc = parse_args(argc, argv, &a, &rc);
  if (prc == 0) {
    err e = {0};
    if (export_dist(&d, &a, &e) != 0) {
      log_error("%s", e.msg);
      rc = e.code ? e.code : EXIT_RUNTIME;
    }
  } else if (prc > 0) {
    rc = prc;
  }
  dist_finalize(&d);
  return rc;
}
