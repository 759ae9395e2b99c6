/* export: the checkpoint as an ONNX model (graph + external data) written by all ranks.
 *
 *   MPI up -> parse -> open checkpoint -> refuse a finished-looking output -> plan -> layout
 *   -> temp dir + data file(s) (rank 0 creates and sizes) -> every rank writes its tensors at
 *   their offsets, fsyncs -> rank 0 writes model.onnx, fsyncs -> rank 0 renames the temp dir to
 *   the output, fsyncs the parent -> summary
 *
 * The ranks agree after every phase (dist_agree). Everything goes to "<parent>/.<name>.tmp.<pid>"
 * (pid of rank 0) first; a failed export removes it, a killed one leaves only that hidden
 * directory, never the output name. Collective over MPI_COMM_WORLD. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <libgen.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "atomic.h"
#include "ckpt.h"
#include "cli.h"
#include "dist.h"
#include "export_client.h"
#include "export_graph.h"
#include "export_layout.h"
#include "export_write.h"
#include "log.h"

static const char export_usage[] =
    "usage: gptoss-mpi export CKPT --output DIR [options]\n"
    "\n"
    "Write the checkpoint as a standard ONNX model (opset 23, IR 11): a decoder with a KV\n"
    "cache, DIR/onnx/model.onnx (graph, no weights) and its external data, written in parallel\n"
    "by every rank, and the files clients read beside it (config.json, generation_config.json,\n"
    "genai_config.json, the checkpoint's tokenizer files). DIR must not exist or be empty; it\n"
    "appears only when the export is complete.\n"
    "\n"
    "  --output DIR          output directory\n"
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
    "  --stages S            pipeline stages of the shard plan (must divide the rank count)\n";

enum { OPT_OUTPUT = CLI_OPT_FIRST_COMMAND_OPT, OPT_WEIGHTS, OPT_DENSE, OPT_MAXLAYERS, OPT_EXPOSE,
       OPT_DATAFILES, OPT_MAXPOS, OPT_STAGES, OPT_LAYERS };

typedef struct {
  const char *ckpt, *output;
  int experts_fp32, dense, per_rank, expose_routing, expose_hidden;
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
      {"weights", required_argument, 0, OPT_WEIGHTS},
      {"dense", required_argument, 0, OPT_DENSE},
      {"max-layers", required_argument, 0, OPT_MAXLAYERS},
      {"expose", required_argument, 0, OPT_EXPOSE},
      {"data-files", required_argument, 0, OPT_DATAFILES},
      {"max-positions", required_argument, 0, OPT_MAXPOS},
      {"stages", required_argument, 0, OPT_STAGES},
      {"layers", required_argument, 0, OPT_LAYERS},
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
      case OPT_LAYERS:
        if (parse_layers(optarg, a) != 0) return EXIT_USAGE;
        break;
      default: return cli_bad_option("export");
    }
  }
  if (optind != argc - 1) return cli_usage_error("export", "expected one checkpoint directory");
  a->ckpt = argv[optind];
  if (!a->output || !*a->output) return cli_usage_error("export", "--output DIR is required");
  if (a->layer_b && a->max_layers)
    return cli_usage_error("export", "give at most one of --layers and --max-layers");
  return 0;
}

/* Test hook: GPTOSS_FAULT="R:PHASE[:N]" as in dist_fault (mpi/dist.h), for phase names with a
 * dash (export-data, export-graph, export-kill), which dist_fault's scanner does not accept. */
static int export_fault(const dist *d, const char *phase, err *e) {
  const char *f = getenv("GPTOSS_FAULT");
  if (!f || !*f) return 0;
  int rank = -1, nth = 1, used = 0;
  char ph[32] = "";
  if (sscanf(f, "%d:%31[a-z-]%n", &rank, ph, &used) < 2) return 0;
  if (f[used] == ':') nth = atoi(f + used + 1);
  if (rank != d->rank || strcmp(ph, phase) != 0) return 0;
  static int count;
  if (++count != nth) return 0;
  return err_set(e, EXIT_RUNTIME, "injected fault in phase '%s' (GPTOSS_FAULT=%s)", phase, f);
}

/* Output must not exist, or be an empty directory (replaced by the rename). Local. */
static int check_output(const char *out, err *e) {
  struct stat st;
  if (stat(out, &st) != 0) {
    if (errno == ENOENT) return 0;
    return err_errno(e, errno, "--output %s", out);
  }
  if (!S_ISDIR(st.st_mode))
    return err_set(e, EXIT_RUNTIME, "--output %s exists and is not a directory; refusing to "
                   "overwrite it", out);
  DIR *dir = opendir(out);
  if (!dir) return err_errno(e, errno, "--output %s", out);
  struct dirent *de;
  int n = 0;
  while ((de = readdir(dir)))
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
  closedir(dir);
  if (n) return err_set(e, EXIT_RUNTIME, "--output %s exists and is not empty; refusing to "
                        "overwrite it (remove it or choose another directory)", out);
  return 0;
}

typedef struct {
  double t0, last, every;
  uint64_t base, total, cur;
} progress_state;

static void on_chunk(void *ctx, uint64_t bytes) {
  progress_state *p = ctx;
  p->cur = p->base + bytes;
  const double now = log_now();
  if (p->every <= 0 || now - p->last < p->every) return;
  p->last = now;
  const double rate = p->cur / (now - p->t0);
  log_info("data: rank 0 wrote %.1f of %.1f MiB, %.1f MiB/s, %.0f s left", p->cur / 1048576.0,
           p->total / 1048576.0, rate / 1048576.0, rate > 0 ? (p->total - p->cur) / rate : 0.0);
}

static uint64_t rss_anon(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  unsigned long long kb = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "RssAnon: %llu kB", &kb) == 1) break;
  fclose(f);
  return kb * 1024ull;
}

#define EXPORT_CHUNK (16u << 20)

/* This rank's share of the data: open, write, fsync, close. */
static int write_share(dist *d, const ckpt *ck, const export_layout *L, const char *tmp,
                       progress_state *ps, uint64_t *anon, err *e) {
  int fds[2] = {-1, -1};
  char path[PATH_MAX], f[64];
  int file = L->o.per_rank_files ? d->rank : 0;
  export_layout_file_name(L, file, f, sizeof f);
  snprintf(path, sizeof path, "%s/%s", tmp, f);
  const uint64_t mine = export_layout_rank_bytes(L, &d->plan, d->rank);
  if (mine == 0) return 0;
  if (L->o.per_rank_files) {
    fds[0] = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fds[0] >= 0 && ftruncate(fds[0], (off_t)L->file_bytes[file]) != 0) {
      err_errno(e, errno, "%s: cannot size the data file", path);
      close(fds[0]);
      return -1;
    }
  } else {
    fds[0] = open(path, O_WRONLY | O_CLOEXEC);
  }
  if (fds[0] < 0) return err_errno(e, errno, "%s: cannot open the data file", path);
  void *buf = malloc(EXPORT_CHUNK);
  int rc = buf ? 0 : err_set(e, EXIT_RUNTIME, "out of memory (%u MiB write buffer)", EXPORT_CHUNK >> 20);
  for (size_t i = 0; rc == 0 && i < L->n_tensors; i++) {
    uint64_t b0, b1;
    export_layout_share(L, &d->plan, i, d->rank, &b0, &b1);
    if (b0 == b1) continue;
    rc = export_layout_write(L, ck, i, b0, b1, fds[0], path, buf, EXPORT_CHUNK,
                             d->rank == 0 ? on_chunk : NULL, ps, e);
    ps->base += b1 - b0;
    /* test hook: die in the middle of writing, as a killed job would */
    err ek = {0};
    if (export_fault(d, "export-kill", &ek) != 0) raise(SIGKILL);
  }
  *anon = rss_anon();
  free(buf);
  if (rc == 0 && fsync(fds[0]) != 0) rc = err_errno(e, errno, "%s: fsync", path);
  if (close(fds[0]) != 0 && rc == 0) rc = err_errno(e, errno, "%s: close", path);
  return rc;
}

/* Rank 0: temp dir next to the output, and the single data file created at its full size. */
static int make_tmp(const export_args *a, const export_layout *L, char *tmp, size_t len,
                    int *created, err *e) {
  char c1[PATH_MAX], c2[PATH_MAX];
  snprintf(c1, sizeof c1, "%s", a->output);
  snprintf(c2, sizeof c2, "%s", a->output);
  for (size_t n = strlen(c1); n > 1 && c1[n - 1] == '/'; n--) c1[n - 1] = c2[n - 1] = '\0';
  snprintf(tmp, len, "%s/.%s.tmp.%ld", dirname(c1), basename(c2), (long)getpid());
  if (mkdir(tmp, 0755) != 0) return err_errno(e, errno, "%s: cannot create the temporary directory", tmp);
  *created = 1;
  if (export_dir_init(tmp, e) != 0) return -1;
  if (L->o.per_rank_files) return 0;
  char path[PATH_MAX], f[64];
  export_layout_file_name(L, 0, f, sizeof f);
  snprintf(path, sizeof path, "%s/%s", tmp, f);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return err_errno(e, errno, "%s: cannot create", path);
  int rc = ftruncate(fd, (off_t)L->file_bytes[0]) != 0 ? err_errno(e, errno, "%s: cannot size", path) : 0;
  if (close(fd) != 0 && rc == 0) rc = err_errno(e, errno, "%s: close", path);
  return rc;
}

/* Rank 0: rename the finished temp dir to the output and sync the parent. */
static int commit(const export_args *a, const char *tmp, err *e) {
  char c1[PATH_MAX];
  snprintf(c1, sizeof c1, "%s", tmp);
  if (fs_fsync_dir(tmp, e) != 0) return -1;
  if (rename(tmp, a->output) != 0)
    return err_errno(e, errno, "cannot rename %s to %s", tmp, a->output);
  if (fs_fsync_dir(dirname(c1), e) != 0) {
    /* the rename is not durable: leave nothing that looks finished */
    if (rename(a->output, tmp) != 0) export_dir_remove(a->output, NULL);
    return -1;
  }
  return 0;
}

static int export_dist(dist *d, const export_args *a, err *e) {
  const double t_start = log_now();
  ckpt *ck = NULL;
  export_layout L = {0};
  char tmp[PATH_MAX] = "";
  int have_layout = 0, have_tmp = 0, rc = -1;
  double t_data = 0, t_graph = 0;
  uint64_t graph_bytes = 0, anon = 0;
  size_t n_nodes = 0;

  log_info("== open: %s (%d rank%s)", a->ckpt, d->size, d->size > 1 ? "s" : "");
  if (dist_fault(d, "open", e) == 0 && ckpt_open(a->ckpt, &ck, e) == 0 && d->rank == 0)
    check_output(a->output, e);
  if (dist_agree(d, e) != 0) goto out;
  gpt_config c = *ckpt_config(ck);
  if (a->max_layers > c.n_layers)
    err_set(e, EXIT_USAGE, "--max-layers %ld: the checkpoint has %d layers", a->max_layers, c.n_layers);
  if (a->layer_b > c.n_layers)
    err_set(e, EXIT_USAGE, "--layers %ld:%ld: the checkpoint has %d layers", a->layer_a,
            a->layer_b, c.n_layers);
  if (dist_agree(d, e) != 0) goto out;
  export_opts o = {.experts_fp32 = a->experts_fp32, .dense = a->dense,
                   .n_layers = c.n_layers, .per_rank_files = a->per_rank,
                   .expose_routing = a->expose_routing, .expose_hidden = a->expose_hidden};
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
           "weights %s, dense %s, layers %d-%d%s, %d positions", d->plan.n_stages, d->plan.n_groups,
           L.n_tensors, total / 1048576.0, L.n_files, L.n_files > 1 ? "s" : "",
           o.experts_fp32 ? "fp32" : "mxfp4", o.dense == EXPORT_DENSE_FP32 ? "fp32" : o.dense == EXPORT_DENSE_BF16 ? "bf16" : "auto",
           o.layer0, o.n_layers - 1, o.sub_model ? " (sub-model)" : "", o.max_positions);

  /* temp dir and data file, created by rank 0 before anyone opens them */
  if (d->rank == 0) make_tmp(a, &L, tmp, sizeof tmp, &have_tmp, e);
  MPI_Bcast(tmp, (int)sizeof tmp, MPI_CHAR, 0, d->world);
  MPI_Bcast(&have_tmp, 1, MPI_INT, 0, d->world);
  if (dist_agree(d, e) != 0) goto out;

  /* data: every rank its share, at offsets fixed by the layout */
  double t0 = log_now();
  const uint64_t mine = export_layout_rank_bytes(&L, &d->plan, d->rank);
  log_info("== data: %s, rank 0 writes %.1f MiB", tmp, mine / 1048576.0);
  progress_state ps = {t0, t0, a->cc.progress_s, 0, mine, 0};
  if (export_fault(d, "export-data", e) == 0) write_share(d, ck, &L, tmp, &ps, &anon, e);
  if (dist_agree(d, e) != 0) goto out;
  t_data = log_now() - t0;

  /* graph: rank 0, once every rank has written and synced its part */
  t0 = log_now();
  log_info("== graph: %s/%s", tmp, EXPORT_MODEL_FILE);
  if (export_fault(d, "export-graph", e) == 0 && d->rank == 0 &&
      export_graph_write(&L, tmp, &graph_bytes, &n_nodes, e) == 0)
    export_client_files_write(&L, ck, tmp, NULL, e);
  if (dist_agree(d, e) != 0) goto out;
  t_graph = log_now() - t0;

  log_info("== commit: %s", a->output);
  if (d->rank == 0 && commit(a, tmp, e) == 0) have_tmp = 0;
  MPI_Bcast(&have_tmp, 1, MPI_INT, 0, d->world);
  if (dist_agree(d, e) != 0) goto out;

  /* summary */
  uint64_t mine_v[3] = {mine, anon, dist_peak_rss()};
  uint64_t *all = d->rank == 0 ? malloc((size_t)d->size * sizeof mine_v) : NULL;
  MPI_Gather(mine_v, 3, MPI_UINT64_T, all, 3, MPI_UINT64_T, 0, d->world);
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
  if (rc != 0 && have_tmp && d->rank == 0) export_dir_remove(tmp, have_layout ? &L : NULL);
  if (have_layout) export_layout_free(&L);
  ckpt_close(ck);
  return rc;
}

int cmd_export(int argc, char **argv) {
  dist d;
  dist_init(&argc, &argv, &d);
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
