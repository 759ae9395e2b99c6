/* gptoss-mpi plan CKPT --ranks P [--stages S] [--tokens T] [--max-seq S] [--mem-per-rank SIZE]
 *                      [--per-stage [--layers N]] [--routing T.h5[:/g]] [--json]
 * Prints the shard plan (shards/plan.h) without MPI: who owns what and the predicted memory. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "cli.h"
#include "log.h"
#include "plan.h"
#include "trace.h"

static const char *usage_text =
    "usage: gptoss-mpi plan CKPT --ranks P [--stages S] [--tokens T] [--max-seq N]\n"
    "                       [--mem-per-rank SIZE] [--per-stage [--layers N]]\n"
    "                       [--routing T.h5[:/g]] [--json]\n"
    "Print which rank owns which layers and experts and the memory each rank needs.\n"
    "  --ranks P          number of MPI ranks\n"
    "  --stages S         pipeline stages (must divide P; default: the split with the\n"
    "                     smallest per-rank peak, fewer stages on ties)\n"
    "  --tokens T         tokens per forward call, e.g. the prompt length (default 256)\n"
    "  --max-seq N        positions kept in the KV cache (default: T + 16)\n"
    "  --mem-per-rank SIZE  warn for every rank whose predicted peak exceeds SIZE\n"
    "                     (bytes, or with K, M, G, T suffix: 1024-based)\n"
    "  --per-stage        also each rank's memory in `parity --per-stage` (the C forward\n"
    "                     pass, then one-layer sub-models in ONNX Runtime, one at a time);\n"
    "                     with --mem-per-rank, a rank above SIZE is an error (exit 1)\n"
    "  --layers N         per-stage: the reference's layers (--max-layers; default all;\n"
    "                     the C forward's figure stays that of all layers)\n"
    "  --routing T.h5[:/g]  the experts a real prompt selected (a trace of `run --trace`,\n"
    "                     e.g. parity's --reference): the experts' resident bytes of its layers\n"
    "                     counted for that routing instead of the expectation for even\n"
    "                     routing; give --tokens/--max-seq of that run\n"
    "  --json             the plan as JSON on stdout\n";

enum { OPT_RANKS = CLI_OPT_FIRST_COMMAND_OPT, OPT_STAGES, OPT_TOKENS, OPT_MAXSEQ, OPT_MEM, OPT_JSON,
       OPT_PERSTAGE, OPT_LAYERS, OPT_ROUTING };

static int parse_size(const char *s, uint64_t *out, err *e) {
  char *end;
  double v = strtod(s, &end);
  double mult = 1;
  if (end == s || v < 0) return err_set(e, EXIT_USAGE, "--mem-per-rank: '%s' is not a size", s);
  switch (*end) {
    case 'k': case 'K': mult = 1024.0; end++; break;
    case 'm': case 'M': mult = 1024.0 * 1024; end++; break;
    case 'g': case 'G': mult = 1024.0 * 1024 * 1024; end++; break;
    case 't': case 'T': mult = 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: break;
  }
  if (*end == 'i' || *end == 'B') end++;
  if (*end == 'B') end++;
  if (*end || !isfinite(v * mult) || v * mult >= 18446744073709551616.0)
    return err_set(e, EXIT_USAGE, "--mem-per-rank: '%s' is not a size", s);
  *out = (uint64_t)(v * mult);
  return 0;
}

/* 1024-based size with a unit, fitting 9 characters: "1.23 GiB", "45.6 MiB". */
static const char *human(uint64_t b, char *buf, size_t len) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = (double)b;
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    u++;
  }
  snprintf(buf, len, u == 0 ? "%.0f %s" : "%.2f %s", v, units[u]);
  return buf;
}

static void print_table(const plan *p, uint64_t mem_limit) {
  printf("plan: %d ranks = %d stages x %d expert groups; %d tokens per call, %d positions\n",
         p->n_ranks, p->n_stages, p->n_groups, p->max_tokens, p->max_seq);
  printf("%5s %5s %5s %9s %9s %5s %11s %11s %11s %11s %11s %11s\n", "rank", "stage", "group",
         "layers", "experts", "role", "global", "attention", "experts", "scratch", "kv cache",
         "peak");
  for (int r = 0; r < p->n_ranks; r++) {
    const plan_rank *x = &p->ranks[r];
    char layers[24], experts[24], role[8];
    snprintf(layers, sizeof layers, "%d-%d", x->layer0, x->layer0 + x->n_layers - 1);
    snprintf(experts, sizeof experts, "%d-%d", x->expert0, x->expert0 + x->n_experts - 1);
    snprintf(role, sizeof role, "%s%s%s", x->leader ? "L" : "-", x->has_embedding ? "E" : "",
             x->has_head ? "H" : "");
    char b[6][24];
    printf("%5d %5d %5d %9s %9s %5s %11s %11s %11s %11s %11s %11s%s\n", r, x->stage, x->group,
           layers, experts, role, human(x->mapped_global_bytes, b[0], 24),
           human(x->mapped_attn_bytes, b[1], 24), human(x->mapped_expert_bytes, b[2], 24),
           human(x->scratch_bytes, b[3], 24), human(x->kv_bytes, b[4], 24),
           human(x->peak_bytes, b[5], 24), mem_limit && x->peak_bytes > mem_limit ? "  OVER" : "");
  }
  printf("role: L = stage leader (router; a stage's ranks share its attention), E = embedding,\n"
         "H = picks the next token (the last stage's ranks share the final norm + unembedding)\n"
         "peak = checkpoint bytes read (page cache, shared by the ranks of a node; of the embedding\n"
         "only the looked-up rows) + scratch + kv + process baseline\n");
}

static void print_parity(const plan *p, const plan_parity_rank *pp, int n_layers, int T,
                         uint64_t mem_limit) {
  printf("per-stage parity: %d layers, %d positions; each layer a sub-model in ONNX Runtime on one "
         "rank of its stage\n", n_layers, T);
  printf("%5s %7s %5s %13s %13s %13s %13s\n", "rank", "layers", "head", "largest unit",
         "forward peak", "ORT peak", "peak");
  for (int r = 0; r < p->n_ranks; r++) {
    const plan_parity_rank *x = &pp[r];
    char b[4][24];
    printf("%5d %7d %5s %13s %13s %13s %13s%s\n", r, x->n_units, x->has_head ? "yes" : "-",
           human(x->unit_bytes, b[0], 24), human(x->forward_bytes, b[1], 24),
           human(x->ort_bytes, b[2], 24), human(x->peak_bytes, b[3], 24),
           mem_limit && x->peak_bytes > mem_limit ? "  OVER" : "");
  }
}

static char *plan_json(const plan *p, const plan_parity_rank *pp, int n_layers, const ckpt *ck,
                       const char *routing_arg, const plan_routing *rt) {
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "checkpoint", ckpt_dir(ck));
  if (routing_arg) {
    cJSON_AddStringToObject(root, "routing", routing_arg);
    cJSON_AddNumberToObject(root, "routing_positions", rt->positions);
    cJSON_AddNumberToObject(root, "routing_layers", rt->n_layers);
  }
  cJSON_AddNumberToObject(root, "ranks", p->n_ranks);
  cJSON_AddNumberToObject(root, "stages", p->n_stages);
  cJSON_AddNumberToObject(root, "expert_groups", p->n_groups);
  cJSON_AddNumberToObject(root, "tokens", p->max_tokens);
  cJSON_AddNumberToObject(root, "max_seq", p->max_seq);
  if (pp) cJSON_AddNumberToObject(root, "per_stage_layers", n_layers);
  cJSON *arr = cJSON_AddArrayToObject(root, "per_rank");
  for (int r = 0; r < p->n_ranks; r++) {
    const plan_rank *x = &p->ranks[r];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "rank", x->rank);
    cJSON_AddNumberToObject(o, "stage", x->stage);
    cJSON_AddNumberToObject(o, "group", x->group);
    cJSON_AddNumberToObject(o, "layer0", x->layer0);
    cJSON_AddNumberToObject(o, "n_layers", x->n_layers);
    cJSON_AddNumberToObject(o, "expert0", x->expert0);
    cJSON_AddNumberToObject(o, "n_experts", x->n_experts);
    cJSON_AddBoolToObject(o, "leader", x->leader);
    cJSON_AddBoolToObject(o, "embedding", x->has_embedding);
    cJSON_AddBoolToObject(o, "head", x->has_head);
    cJSON_AddNumberToObject(o, "mapped_global_bytes", (double)x->mapped_global_bytes);
    cJSON_AddNumberToObject(o, "mapped_attn_bytes", (double)x->mapped_attn_bytes);
    cJSON_AddNumberToObject(o, "mapped_expert_bytes", (double)x->mapped_expert_bytes);
    cJSON_AddNumberToObject(o, "mapped_bytes", (double)x->mapped_bytes);
    cJSON_AddNumberToObject(o, "resident_bytes", (double)x->resident_bytes);
    cJSON_AddNumberToObject(o, "scratch_bytes", (double)x->scratch_bytes);
    cJSON_AddNumberToObject(o, "kv_bytes", (double)x->kv_bytes);
    cJSON_AddNumberToObject(o, "base_bytes", (double)x->base_bytes);
    cJSON_AddNumberToObject(o, "peak_bytes", (double)x->peak_bytes);
    cJSON_AddNumberToObject(o, "anon_bytes", (double)x->anon_bytes);
    cJSON_AddNumberToObject(o, "export_peak_bytes", (double)PLAN_EXPORT_PEAK_BYTES);
    cJSON_AddNumberToObject(o, "export_anon_bytes", (double)PLAN_PROCESS_ANON_BYTES);
    if (pp) {
      cJSON *q = cJSON_AddObjectToObject(o, "per_stage");
      cJSON_AddNumberToObject(q, "layers", pp[r].n_units);
      cJSON_AddBoolToObject(q, "head", pp[r].has_head);
      cJSON_AddNumberToObject(q, "unit_bytes", (double)pp[r].unit_bytes);
      cJSON_AddNumberToObject(q, "forward_bytes", (double)pp[r].forward_bytes);
      cJSON_AddNumberToObject(q, "forward_anon_bytes", (double)pp[r].forward_anon_bytes);
      cJSON_AddNumberToObject(q, "ort_bytes", (double)pp[r].ort_bytes);
      cJSON_AddNumberToObject(q, "peak_bytes", (double)pp[r].peak_bytes);
    }
    cJSON_AddItemToArray(arr, o);
  }
  char *s = cJSON_Print(root);
  cJSON_Delete(root);
  return s;
}

/* --routing: the trace's selected experts, checked against the checkpoint (one error naming the
 * trace; exit 2 for a trace of another model, 1 for a file that cannot be read). */
static int load_routing(const char *arg, const gpt_config *cfg, int max_seq, plan_routing *rt) {
  trace tr;
  err e = {0};
  if (trace_read_routing_arg(arg, &tr, &e) != 0) {
    log_error("plan: --routing: %s", e.msg);
    return e.code == EXIT_USAGE ? EXIT_USAGE : EXIT_RUNTIME;
  }
  int rc = 0;
  if (tr.E != cfg->n_experts || tr.K != cfg->top_k || tr.n_layers > cfg->n_layers || tr.n_layers < 1)
    rc = cli_usage_error("plan", "--routing %s: the trace has %d layers of %d experts, top-%d; the "
                         "checkpoint %d layers of %d, top-%d", arg, tr.n_layers, tr.E, tr.K,
                         cfg->n_layers, cfg->n_experts, cfg->top_k);
  const int32_t **topk = rc ? NULL : calloc((size_t)tr.n_layers, sizeof *topk);
  if (!rc && !topk) {
    log_error("plan: out of memory");
    rc = EXIT_RUNTIME;
  }
  for (int l = 0; topk && l < tr.n_layers; l++) topk[l] = tr.layers[l].topk_indices;
  if (topk && plan_routing_from_topk(cfg, tr.n_layers, tr.T, tr.K, topk, rt, &e) != 0) {
    log_error("plan: --routing %s: %s", arg, e.msg);
    rc = e.code;
  }
  if (!rc && tr.T != max_seq)
    log_warn("plan: --routing %s has %d positions, the plan %d (--max-seq): the experts are "
             "counted for the trace's", arg, tr.T, max_seq);
  free(topk);
  trace_free(&tr);
  return rc;
}

int cmd_plan(int argc, char **argv) {
  static const struct option opts[] = {
      CLI_COMMON_LONGOPTS,
      {"ranks", required_argument, 0, OPT_RANKS},
      {"stages", required_argument, 0, OPT_STAGES},
      {"tokens", required_argument, 0, OPT_TOKENS},
      {"max-seq", required_argument, 0, OPT_MAXSEQ},
      {"mem-per-rank", required_argument, 0, OPT_MEM},
      {"json", no_argument, 0, OPT_JSON},
      {"per-stage", no_argument, 0, OPT_PERSTAGE},
      {"layers", required_argument, 0, OPT_LAYERS},
      {"routing", required_argument, 0, OPT_ROUTING},
      {0, 0, 0, 0}};
  cli_common cc;
  cli_common_init(&cc);
  long ranks = 0, stages = 0, tokens = 256, max_seq = 0, layers = 0;
  uint64_t mem = 0;
  int json = 0, per_stage = 0, opt, done = 0, rc = 0;
  const char *routing_arg = NULL;
  err e = {0};
  optind = 1;
  while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, opts, NULL)) != -1) {
    if (cli_common_opt(opt, optarg, usage_text, &cc, &done, &rc)) {
      if (done) return rc;
      continue;
    }
    int prc = 0;
    switch (opt) {
      case OPT_RANKS: prc = cli_parse_long(optarg, "--ranks", 1, 1 << 20, &ranks, &e); break;
      case OPT_STAGES: prc = cli_parse_long(optarg, "--stages", 1, PLAN_MAX_STAGES, &stages, &e); break;
      case OPT_TOKENS: prc = cli_parse_long(optarg, "--tokens", 1, 1 << 24, &tokens, &e); break;
      case OPT_MAXSEQ: prc = cli_parse_long(optarg, "--max-seq", 1, 1 << 24, &max_seq, &e); break;
      case OPT_MEM: prc = parse_size(optarg, &mem, &e); break;
      case OPT_JSON: json = 1; break;
      case OPT_PERSTAGE: per_stage = 1; break;
      case OPT_LAYERS: prc = cli_parse_long(optarg, "--layers", 1, 1 << 20, &layers, &e); break;
      case OPT_ROUTING: routing_arg = optarg; break;
      default: return cli_bad_option("plan");
    }
    if (prc != 0) return cli_usage_error("plan", "%s", e.msg);
  }
  if (optind + 1 != argc) return cli_usage_error("plan", "expected one checkpoint directory");
  if (ranks == 0) return cli_usage_error("plan", "--ranks is required");
  if (max_seq == 0) max_seq = tokens + 16;
  if (max_seq < tokens) return cli_usage_error("plan", "--max-seq %ld is below --tokens %ld", max_seq, tokens);
  if (layers && !per_stage) return cli_usage_error("plan", "--layers is for --per-stage");

  ckpt *ck;
  if (ckpt_open(argv[optind], &ck, &e) != 0) {
    log_error("%s", e.msg);
    return EXIT_RUNTIME;
  }
  plan p;
  if (plan_make(ckpt_config(ck), (int)ranks, (int)stages, (int)tokens, (int)max_seq, &p, &e) != 0) {
    ckpt_close(ck);
    if (e.code == EXIT_USAGE) return cli_usage_error("plan", "%s", e.msg);
    log_error("%s", e.msg);
    return e.code;
  }
  const gpt_config *cfg = ckpt_config(ck);
  if (layers > cfg->n_layers) {
    const int L = cfg->n_layers;
    plan_free(&p);
    ckpt_close(ck);
    return cli_usage_error("plan", "--layers %ld: the checkpoint has %d", layers, L);
  }
  const int n_layers = layers ? (int)layers : cfg->n_layers;
  plan_routing rt = {0};
  if (routing_arg && (rc = load_routing(routing_arg, cfg, (int)max_seq, &rt)) != 0) {
    plan_free(&p);
    ckpt_close(ck);
    return rc;
  }
  if (routing_arg) plan_apply_routing(cfg, &p, &rt);
  plan_parity_rank *pp = NULL;
  if (per_stage && !(pp = calloc((size_t)p.n_ranks, sizeof *pp))) {
    plan_routing_free(&rt);
    plan_free(&p);
    ckpt_close(ck);
    log_error("plan: out of memory");
    return EXIT_RUNTIME;
  }
  if (pp) plan_parity(cfg, &p, n_layers, (int)max_seq, routing_arg ? &rt : NULL, pp);
  if (json) {
    char *s = plan_json(&p, pp, n_layers, ck, routing_arg, &rt);
    if (!s) {
      log_error("plan: out of memory");
      rc = EXIT_RUNTIME;
    } else {
      printf("%s\n", s);
      free(s);
    }
  } else {
    if (routing_arg)
      printf("routing: %s (%d positions, layers 0-%d); the experts' resident bytes are those of the "
             "experts it selected\n", routing_arg, rt.positions, rt.n_layers - 1);
    print_table(&p, pp ? 0 : mem);
    if (pp) print_parity(&p, pp, n_layers, (int)max_seq, mem);
  }
  for (int r = 0; r < p.n_ranks && mem; r++) {
    const uint64_t need = pp ? pp[r].peak_bytes : p.ranks[r].peak_bytes;
    if (need <= mem) continue;
    char b1[24], b2[24];
    if (pp) {
      if (rc == 0)
        log_error("plan: rank %d would need %s in per-stage parity, more than --mem-per-rank %s "
                  "(%s)", r, human(need, b1, sizeof b1), human(mem, b2, sizeof b2),
                  pp[r].has_head && pp[r].ort_bytes > mem
                      ? "its layer with the final norm + unembedding in ONNX Runtime: one rank "
                        "needs that whatever the split"
                      : "more ranks, or --stages with more expert groups, spread the layers thinner");
      rc = EXIT_RUNTIME;
    } else {
      log_warn("rank %d would need %s, more than --mem-per-rank %s", r, human(need, b1, sizeof b1),
               human(mem, b2, sizeof b2));
    }
  }
  free(pp);
  plan_routing_free(&rt);
  plan_free(&p);
  ckpt_close(ck);
  return rc;
}
