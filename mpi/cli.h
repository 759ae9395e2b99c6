/* cli: the command table and the options every command shares (DESIGN.md "Command line").
 *
 * Each command is `int cmd_<name>(int argc, char **argv)` (argv[0] = the command name) that
 * parses its own options with getopt_long, including CLI_COMMON_LONGOPTS, and returns the exit
 * code: 0 ok, 1 runtime error, 2 usage error, 3 parity failed. Local unless a command says
 * it is collective. */
#ifndef GPTOSS_CLI_H
#define GPTOSS_CLI_H

#include <getopt.h>
#include <stdint.h>

#include "err.h"

enum { CLI_OPT_PROGRESS = 1000, CLI_OPT_VERSION, CLI_OPT_FIRST_COMMAND_OPT = 1100 };

#define CLI_COMMON_SHORTOPTS "hvq"
#define CLI_COMMON_LONGOPTS                                                                    \
  {"help", no_argument, 0, 'h'}, {"version", no_argument, 0, CLI_OPT_VERSION},                 \
      {"verbose", no_argument, 0, 'v'}, {"quiet", no_argument, 0, 'q'},                         \
      {"progress", required_argument, 0, CLI_OPT_PROGRESS}

#define CLI_COMMON_HELP                                                                        \
  "common options:\n"                                                                          \
  "  -h, --help            this help\n"                                                        \
  "      --version         print the version\n"                                                \
  "  -v, --verbose         more detail (repeat for debug output)\n"                            \
  "  -q, --quiet           no info or progress (errors are always printed)\n"                  \
  "      --progress SECS   progress line every SECS seconds on long work (default 10)\n"

typedef struct {
  int verbose;        /* count of -v */
  int quiet;
  double progress_s;  /* seconds between progress lines */
} cli_common;

void cli_common_init(cli_common *cc);
/* Handle a common option. Returns 1 if opt was common (and, for --help/--version, sets *done
 * and *rc so the command returns at once), 0 if not a common option. Applies -v/-q to log. */
int cli_common_opt(int opt, const char *arg, const char *usage, cli_common *cc, int *done, int *rc);
/* Print "gptoss-mpi: error: <cmd>: <msg>" and the usage hint; returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Option getopt did not recognise (opt == '?' or ':'): one message, returns 2. */
int cli_bad_option(const char *cmd);

/* Strict number parsing: the whole string, within [min, max]; -1 and err (code 2) otherwise. */
int cli_parse_long(const char *s, const char *what, long min, long max, long *out, err *e);
int cli_parse_double(const char *s, const char *what, double min, double max, double *out, err *e);
/* "1,2,3" -> ids (caller frees *ids). Each id in [0, max_id]; max_id < 0 means unchecked. */
int cli_parse_ids(const char *s, const char *what, int64_t max_id, int32_t **ids, int *n, err *e);
/* A file of ids separated by commas and/or whitespace. */
int cli_read_ids_file(const char *path, int64_t max_id, int32_t **ids, int *n, err *e);

/* Commands (mpi/cmd_*.c). */
int cmd_inspect(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_parity(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);

#endif
