/* synth: write a random checkpoint in exactly the official layout (spec sections 2, 3, 11).
 *
 * Original layout: OUT/config.json (the 16 keys), OUT/dtypes.json (every tensor -> "BF16",
 * "FP4" for *.blocks, "UE8" for *.scales) and OUT/model.safetensors, or for the 120b preset
 * shards OUT/model--0000i-of-0000N.safetensors (i from 1; N = total / ~9.4 GB rounded up, 7
 * for the full model as published, split so that the largest shard is as small as possible).
 * Hugging Face layout: OUT/config.json (transformers keys), OUT/model.safetensors.index.json
 * and shards OUT/model-0000i-of-0000N.safetensors numbered from 0 (N = last index, filled up
 * to 5 GB each as transformers does), with the q/k/v projections split (spec section 11).
 * Tensor order in a file: embedding, layers 0..L-1, norm, unembedding (as the official files).
 * Each safetensors header is padded with spaces to a multiple of 8 bytes.
 *
 * Values: a counter-based PRNG keyed by (seed, original tensor name, element index), so the
 * bytes depend only on the seed (the two layouts hold the same logical weights), and a 64K-entry
 * table per tensor turns 16 random bits into a roughly normal bf16 value. Scales keep every
 * dequantized MXFP4 row at rms ~ 1/sqrt(C) and router logits differ by O(1) between experts,
 * so a forward pass stays numerically sane and routing spreads over all experts.
 *
 * Output is streamed (header first, then data in bounded chunks with write(2); memory use does
 * not depend on the model size) into the staged directory .OUT.tmp.<pid> next to OUT
 * (shards/atomic.h); every file and the directory are fsync'd and the directory is renamed to
 * OUT only at the end, so a killed synth leaves no OUT, and a stopped one (SIGTERM, SIGINT,
 * SIGHUP; guard.h) leaves nothing. OUT must be absent or an empty directory a rename can replace
 * (shards/outpath.h). Local (no MPI). */
#ifndef GPTOSS_SYNTH_H
#define GPTOSS_SYNTH_H

#include <stdint.h>

#include "config.h"
#include "err.h"

typedef enum { SYNTH_TINY = 0, SYNTH_20B = 1, SYNTH_120B = 2 } synth_preset;

/* Called after each chunk written: bytes done and total bytes (all files). */
typedef void (*synth_progress_fn)(uint64_t done, uint64_t total, void *arg);

typedef struct {
  synth_preset preset;
  int n_layers;              /* 0 = the preset's */
  int n_experts;             /* 0 = the preset's; top-k is clamped to it */
  int vocab;                 /* 0 = the preset's (e.g. 201088 with the tiny preset: a small model
                              * with the full o200k_harmony vocabulary, for text tests) */
  uint64_t seed;
  ckpt_layout layout;
  int sparse;                /* tests only: write headers, leave data as holes (ftruncate) */
  synth_progress_fn progress; /* may be NULL */
  void *progress_arg;
} synth_opts;

/* Defaults: tiny preset, seed 0, original layout, no progress. */
void synth_opts_init(synth_opts *o);
/* "tiny" | "20b" | "120b" -> preset; -1 if unknown. */
int synth_preset_parse(const char *s, synth_preset *out);
const char *synth_preset_name(synth_preset p);
/* The configuration synth_write would write for o (preset + overrides), validated. */
int synth_config(const synth_opts *o, gpt_config *c, err *e);
/* Total bytes of the safetensors files synth_write would write (headers included). */
int synth_total_bytes(const synth_opts *o, uint64_t *total, err *e);
/* Write the checkpoint to out_dir (must not exist or be empty). */
int synth_write(const char *out_dir, const synth_opts *o, err *e);

#endif
