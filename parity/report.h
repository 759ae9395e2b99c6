/* report: the parity report as HDF5 (schema in docs/parity-report.md), a Markdown summary and
 * an SVG chart of the per-layer match rate and errors. All files go through the commit path of
 * shards/atomic.h (a report is written whatever the verdict). Local (no MPI). */
#ifndef GPTOSS_REPORT_H
#define GPTOSS_REPORT_H

#include "atomic.h"
#include "compare.h"
#include "config.h"
#include "err.h"
#include "tok.h"
#include "trace.h"

typedef struct {
  const char *checkpoint;     /* directory */
  const char *reference;      /* what produced the reference, e.g. "C forward (4 ranks)" */
  const char *candidate;      /* e.g. "ONNX Runtime 1.30.0: out/model.onnx" */
  const char *precision;      /* of the reference run */
  int n_ranks;
  const gpt_config *config;
  const parity_thresholds *thresholds;
  const tok *tokenizer;       /* NULL: no text; else the summary shows the prompt as text and the
                               * tokens around every mismatch (tokenizer/tok.h, one-line escapes) */
  int n_prompt;               /* positions of the prompt (the rest were generated); 0 = unknown */
} parity_meta;

/* Each writer stages its file next to path and seals it (shards/atomic.h); the caller publishes
 * the three together (atomic_publish_all) once every rank agreed, or aborts them.
 * ref/cand: the compared traces (for the prompt and the expert ids of each mismatch). */
int parity_report_stage(const char *path, const parity_result *r, const parity_meta *m,
                        const trace *ref, const trace *cand, atomic_out **staged, err *e);
/* Markdown summary; svg_name (may be NULL) is the chart's file name, linked from the summary. */
int parity_summary_stage(const char *path, const char *svg_name, const parity_result *r,
                         const parity_meta *m, const trace *ref, const trace *cand,
                         atomic_out **staged, err *e);
int parity_chart_stage(const char *path, const parity_result *r, atomic_out **staged, err *e);

#endif
