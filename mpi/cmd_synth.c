/* gptoss-mpi synth: write a random checkpoint in the official layout (shards/synth.h).
 * Local: does not initialise MPI. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "guard.h"
#include "log.h"
#include "progress.h"
#include "synth.h"

static const char synth_usage[] =
    "usage: gptoss-mpi synth OUT_DIR [--preset tiny|20b|120b] [--layers N] [--experts N]\n"
    "                        [--vocab N] [--seed S] [--layout original|hf]\n"
    "\n"
    "Write a random checkpoint of real or tiny shape in the official layout (for demos, tests\n"
    "and benchmarks). OUT_DIR must not exist or be empty; it appears only when complete.\n"
    "\n"
    "  --preset P        tiny (default; the shape of golden case-a), 20b or 120b\n"
    "  --layers N        number of layers (default: the preset's)\n"
    "  --experts N       experts per layer (default: the preset's; top-k is clamped to N)\n"
    "  --vocab N         vocabulary size (default: the preset's; 201088 = the full o200k_harmony\n"
    "                    vocabulary, for text prompts on a small model)\n"
    "  --seed S          random seed, 0..2^64-1 (default 0); same seed = same bytes\n"
    "  --layout L        original (default: config.json, dtypes.json, *.safetensors) or hf\n"
    "                    (transformers config, index json, shards numbered from 0)\n";

enum { OPT_PRESET = CLI_OPT_FIRST_COMMAND_OPT, OPT_LAYERS, OPT_EXPERTS, OPT_SEED, OPT_LAYOUT,
       OPT_VOCAB };

static void on_progress(uint64_t done, uint64_t total, void *arg) {
  (void)total;
  progress_note(arg, done);
}

static int parse_seed(const char *s, uint64_t *out) {
  char *end;
  if (!s || !*s || *s == '-' || *s == '+') return -1;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end) return -1;
  *out = v;
  return 0;
}

int cmd_synth(int argc, char **argv) {
  static const struct option longopts[] = {
      CLI_COMMON_LONGOPTS,
      {"preset", required_argument, 0, OPT_PRESET},
      {"layers", required_argument, 0, OPT_LAYERS},
      {"experts", required_argument, 0, OPT_EXPERTS},
      {"seed", required_argument, 0, OPT_SEED},
      {"layout", required_argument, 0, OPT_LAYOUT},
      {"vocab", required_argument, 0, OPT_VOCAB},
      {0, 0, 0, 0}};
  cli_common cc;
  cli_common_init(&cc);
  synth_opts o;
  synth_opts_init(&o);
  err e = {0};
  long v;
  int opt, done = 0, rc = 0;
  optind = 1;
  opterr = 1;
  while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
    if (cli_common_opt(opt, optarg, synth_usage, &cc, &done, &rc)) {
      if (done) return rc;
      continue;
    }
    switch (opt) {
      case OPT_PRESET:
        if (synth_preset_parse(optarg, &o.preset) != 0)
          return cli_usage_error("synth", "--preset: '%s' is not one of tiny, 20b, 120b", optarg);
        break;
      case OPT_LAYERS:
        if (cli_parse_long(optarg, "--layers", 1, 100000, &v, &e) != 0)
          return cli_usage_error("synth", "%s", e.msg);
        o.n_layers = (int)v;
        break;
      case OPT_EXPERTS:
        if (cli_parse_long(optarg, "--experts", 1, 100000, &v, &e) != 0)
          return cli_usage_error("synth", "%s", e.msg);
        o.n_experts = (int)v;
        break;
      case OPT_VOCAB:
        if (cli_parse_long(optarg, "--vocab", 1, 1L << 24, &v, &e) != 0)
          return cli_usage_error("synth", "%s", e.msg);
        o.vocab = (int)v;
        break;
      case OPT_SEED:
        if (parse_seed(optarg, &o.seed) != 0)
          return cli_usage_error("synth", "--seed: '%s' is not an integer in [0, 2^64-1]", optarg);
        break;
      case OPT_LAYOUT:
        if (!strcmp(optarg, "original")) o.layout = LAYOUT_ORIGINAL;
        else if (!strcmp(optarg, "hf")) o.layout = LAYOUT_HF;
        else return cli_usage_error("synth", "--layout: '%s' is not one of original, hf", optarg);
        break;
      default:
        return cli_bad_option("synth");
    }
  }
  if (optind >= argc) return cli_usage_error("synth", "missing OUT_DIR");
  if (optind + 1 < argc) return cli_usage_error("synth", "unexpected argument '%s'", argv[optind + 1]);
  const char *out_dir = argv[optind];

  /* parse: the configuration and size, so a bad override is reported before any file exists */
  gpt_config cfg;
  uint64_t total;
  if (synth_config(&o, &cfg, &e) != 0) return cli_usage_error("synth", "%s", e.msg);
  if (synth_total_bytes(&o, &total, &e) != 0) {
    log_error("%s", e.msg);
    return EXIT_RUNTIME;
  }
  log_info("synth: %s preset, %d layers, %d experts (top-%d), seed %llu, %s layout: %.2f GB to %s",
           synth_preset_name(o.preset), cfg.n_layers, cfg.n_experts, cfg.top_k,
           (unsigned long long)o.seed, o.layout == LAYOUT_HF ? "hf" : "original", total / 1e9, out_dir);

  /* write (a stop signal removes the staged directory: guard.h) */
  guard_install(0, 1);
  progress pr;
  progress_begin(&pr, NULL, 0, "synth", NULL, total, cc.progress_s);
  o.progress = on_progress;
  o.progress_arg = &pr;
  if (synth_write(out_dir, &o, &e) != 0) {
    log_error("%s", e.msg);
    return e.code ? e.code : EXIT_RUNTIME;
  }

  /* report */
  double el = log_now() - pr.t0;
  log_info("synth: wrote %llu bytes (%.2f GB) in %.2f s (%.0f MB/s) to %s", (unsigned long long)total,
           total / 1e9, el, el > 0 ? total / el / 1e6 : 0.0, out_dir);
  return 0;
}
