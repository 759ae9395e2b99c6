/* gptoss-mpi: checkpoint -> distributed forward -> ONNX export -> routing-parity report.
 * main() only dispatches; each command reads like a table of contents of its own phases. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "log.h"

static const struct {
  const char *name;
  int (*fn)(int, char **);
  const char *summary;
} commands[] = {
    {"inspect", cmd_inspect, "describe a checkpoint: layout, config, tensors, bytes, parameters"},
    {"synth", cmd_synth, "write a random checkpoint in the official layout"},
    {"plan", cmd_plan, "print which rank owns which layers and experts, and its memory"},
    {"run", cmd_run, "forward pass and greedy generation; optional HDF5 trace"},
    {"export", cmd_export, "write the checkpoint as an ONNX model (graph + external data)"},
    {"parity", cmd_parity, "routing-parity report: reference vs candidate, layer by layer"},
    {"tokenize", cmd_tokenize, "text <-> o200k_harmony token ids, harmony chat prompts (no MPI)"},
};

static void usage(FILE *f) {
  fprintf(f, "usage: gptoss-mpi COMMAND [options]   (gptoss-mpi COMMAND --help for details)\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
  fprintf(f, "\nexit codes: 0 ok, 1 runtime error, 2 usage error, 3 parity failed\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return EXIT_USAGE;
  }
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("gptoss-mpi %s\n", GPTOSS_VERSION);
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
  log_error("unknown command '%s' (see 'gptoss-mpi --help')", argv[1]);
  return EXIT_USAGE;
}
