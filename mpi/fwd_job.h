/* fwd_job: the distributed forward pass as one job (open, plan, load, prefill, greedy decode,
 * trace gathered on rank 0), shared by `run` and by `parity`'s default reference.
 *
 * Positions processed: the prompt (one prefill call), then each generated token except the
 * last (one decode call each, with the KV cache), so a trace holds T = prompt + N - 1 positions
 * for --max-tokens N (the prompt alone for N = 0 or 1). Refused up front: a prompt that with the
 * new tokens exceeds the checkpoint's context (initial_context_length x rope_scaling_factor
 * positions), and outputs that cannot be written (opts.outputs). At the end every rank checks
 * that the checkpoint files are still the ones it read. The ranks agree after every phase
 * (dist_agree): on failure every rank returns -1 with the same error. COLLECTIVE. */
#ifndef GPTOSS_FWD_JOB_H
#define GPTOSS_FWD_JOB_H

#include <getopt.h>

#include "ckpt.h"
#include "dist.h"
#include "outpath.h"
#include "tok.h"
#include "dist_forward.h"
#include "model.h"
#include "trace.h"

typedef struct {
  const char *ckpt, *ids_arg, *ids_file;
  /* text prompts (tokenizer/tok.h): --prompt TEXT (ordinary text) or --chat TEXT (a harmony
   * conversation: system message with --reasoning, optional developer message --system, the user
   * message, then <|start|>assistant); --tokenizer F overrides the vocabulary search */
  const char *prompt_text, *chat_text, *system_text, *tok_path;
  int reasoning;               /* tok_reasoning, default medium */
  int reasoning_given;
  int want_tokenizer;          /* open the tokenizer for an id prompt too (to print text) */
  long max_tokens;             /* new tokens (default 16) */
  long max_layers;             /* 0 = all */
  long stages;                 /* 0 = the plan's default */
  long threads;                /* BLAS threads per rank ($GPTOSS_THREADS or 1) */
  model_precision precision;
  double progress_s;
  int tracing;                 /* gather every intermediate tensor on rank 0 */
  /* the command's outputs and its inputs other than the checkpoint and the prompt file, checked
   * on rank 0 right after the checkpoint is opened, before any work (shards/outpath.h) */
  outpath outputs[4];
  int n_outputs;
  const char *inputs[6];
  int n_inputs;
} fwd_job_opts;

enum { FWD_OPT_IDS = 1200, FWD_OPT_FILE, FWD_OPT_MAXTOK, FWD_OPT_MAXLAYERS, FWD_OPT_PREC,
       FWD_OPT_STAGES, FWD_OPT_THREADS, FWD_OPT_PROMPT, FWD_OPT_CHAT, FWD_OPT_SYSTEM,
       FWD_OPT_REASONING, FWD_OPT_TOKENIZER };

#define FWD_JOB_LONGOPTS                                                                     \
  {"prompt-ids", required_argument, 0, FWD_OPT_IDS},                                         \
      {"prompt-file", required_argument, 0, FWD_OPT_FILE},                                   \
      {"max-tokens", required_argument, 0, FWD_OPT_MAXTOK},                                  \
      {"max-layers", required_argument, 0, FWD_OPT_MAXLAYERS},                               \
      {"precision", required_argument, 0, FWD_OPT_PREC},                                     \
      {"stages", required_argument, 0, FWD_OPT_STAGES},                                      \
      {"threads", required_argument, 0, FWD_OPT_THREADS},                                    \
      {"prompt", required_argument, 0, FWD_OPT_PROMPT},                                      \
      {"chat", required_argument, 0, FWD_OPT_CHAT},                                          \
      {"system", required_argument, 0, FWD_OPT_SYSTEM},                                      \
      {"reasoning", required_argument, 0, FWD_OPT_REASONING},                                \
      {"tokenizer", required_argument, 0, FWD_OPT_TOKENIZER}

#define FWD_JOB_HELP                                                                         \
  "  --prompt-ids IDS      comma-separated token ids\n"                                      \
  "  --prompt-file F       file of token ids (commas and/or whitespace)\n"                   \
  "  --prompt TEXT         text, encoded as ordinary text (o200k_harmony; no special tokens)\n" \
  "  --chat TEXT           a user message in a harmony conversation (default system message,\n" \
  "                        then <|start|>assistant); with --reasoning low|medium|high (default\n" \
  "                        medium) and --system TEXT (a developer message \"# Instructions\")\n" \
  "  --tokenizer F         tokenizer.json or o200k_base.tiktoken (default: found beside the\n"  \
  "                        checkpoint or at its repository root; docs/tokenizer.md)\n"        \
  "  --max-tokens N        new tokens to generate (default %s; 0 = prefill only)\n"          \
  "  --max-layers N        run only the first N layers, then final norm + unembedding\n"     \
  "  --precision P         fp32 (default) or bf16 (emulates the reference's bf16 rounding)\n" \
  "  --stages S            pipeline stages (must divide the rank count; default: see\n"      \
  "                        'gptoss-mpi plan')\n"                                             \
  "  --threads N           matrix-library threads per rank (default: $GPTOSS_THREADS or 1).\n" \
  "                        Results are bitwise identical across rank counts for a fixed N\n"

/* Defaults (threads from $GPTOSS_THREADS). -1 with a usage error if that variable is bad. */
/* The prompt options given: exactly one of --prompt-ids, --prompt-file, --prompt, --chat (0 ok,
 * else -1 with a usage message); --system and --reasoning only with --chat. `needed` 0: no
 * prompt is also fine (parity with --reference). Local. */
int fwd_job_check_prompt(const fwd_job_opts *o, int needed, err *e);
int fwd_job_opts_init(fwd_job_opts *o, long default_max_tokens, err *e);
/* Handle one of FWD_JOB_LONGOPTS: 1 handled, 0 not ours, -1 usage error in e. Local. */
int fwd_job_opt(fwd_job_opts *o, int opt, const char *arg, err *e);

typedef struct {
  double open, load, prefill, decode, gather;
} fwd_job_times;

typedef struct {
  ckpt *ck;                    /* the open checkpoint (every rank) */
  tok *tok;                    /* the tokenizer of a text prompt (every rank), NULL for ids */
  int n_prompt, n_new, T_all, n_layers;
  int n_gen;                   /* ids generated (n_new, or fewer when a text prompt's generation
                                * reached <|return|> or <|call|>); T_done = positions processed */
  int T_done;
  int32_t *seq;                /* [T_all] prompt, then generated ids that were processed */
  int32_t *out_ids;            /* [n_new] generated ids */
  trace tr;                    /* rank 0 with tracing: the whole trace (input_ids filled) */
  int have_trace;
  fwd_job_times times;
  double t_start;
  /* internals */
  model *m;
  dfwd *fw;
  model_capture cap;
} fwd_job;

/* Run the job. On success every rank has out_ids; rank 0 has tr when tracing. Caller frees
 * with fwd_job_free in every case. */
int fwd_job_run(dist *d, const fwd_job_opts *o, fwd_job *j, err *e);
/* The end-of-job summary (time per phase, bytes touched and sent, memory) from rank 0;
 * per-rank figures with -v. */
void fwd_job_summary(dist *d, fwd_job *j);
void fwd_job_free(fwd_job *j);
/* After the run, before other memory-heavy work (per-stage parity): free the model's and the
 * exchange's buffers and drop the checkpoint pages read from the resident set (ckpt_release_pages).
 * ck, tok, the ids and the trace stay. Local. */
void fwd_job_release(fwd_job *j);

#endif
