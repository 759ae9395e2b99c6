/* ckpt: a checkpoint directory as a catalog of tensors looked up by (layer, role).
 *
 * A checkpoint is a directory with config.json and every `*.safetensors` file in it (names of
 * shards and index files are not relied upon, as in the official loader). If the directory has
 * no safetensors file but an `original/` subdirectory, that subdirectory is read. The layout is
 * detected from the tensor names: `block.N.*` = original, `model.layers.N.*` = Hugging Face
 * (spec section 11); the config.json spelling must match it.
 *
 * Every tensor of spec section 3 must be present exactly once with the dtype and shape the
 * config implies; unknown names are an error. In the Hugging Face layout the q/k/v projections
 * are three tensors that together form the logical `attn.qkv.weight`/`.bias` rows
 * [q | k | v]; a ckpt_tensor then has 3 parts. Names reported (ckpt_tensor.name) are always the
 * original-layout names; ckpt_tensor.part[i]->name is the name in the file.
 *
 * Memory: all files are mapped read-only (st.h); nothing is read until a caller touches a
 * tensor's bytes. Views are valid until ckpt_close. Local (no MPI). */
#ifndef GPTOSS_CKPT_H
#define GPTOSS_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "st.h"

typedef enum {
  /* global (layer = -1) */
  CK_EMBEDDING,      /* embedding.weight            [V, D]          BF16 */
  CK_NORM,           /* norm.scale                  [D]             BF16 */
  CK_UNEMBEDDING,    /* unembedding.weight          [V, D]          BF16 */
  /* per layer */
  CK_ATTN_NORM,      /* block.N.attn.norm.scale     [D]             BF16 */
  CK_QKV_W,          /* block.N.attn.qkv.weight     [Dh*(H+2KV), D] BF16 */
  CK_QKV_B,          /* block.N.attn.qkv.bias       [Dh*(H+2KV)]    BF16 */
  CK_SINKS,          /* block.N.attn.sinks          [H]             BF16 */
  CK_OUT_W,          /* block.N.attn.out.weight     [D, H*Dh]       BF16 */
  CK_OUT_B,          /* block.N.attn.out.bias       [D]             BF16 */
  CK_MLP_NORM,       /* block.N.mlp.norm.scale      [D]             BF16 */
  CK_GATE_W,         /* block.N.mlp.gate.weight     [E, D]          BF16 */
  CK_GATE_B,         /* block.N.mlp.gate.bias       [E]             BF16 */
  CK_MLP1_BLOCKS,    /* block.N.mlp.mlp1_weight.blocks [E, 2I, D/32, 16] U8 */
  CK_MLP1_SCALES,    /* block.N.mlp.mlp1_weight.scales [E, 2I, D/32]     U8 */
  CK_MLP1_BIAS,      /* block.N.mlp.mlp1_bias       [E, 2I]         BF16 */
  CK_MLP2_BLOCKS,    /* block.N.mlp.mlp2_weight.blocks [E, D, I/32, 16]  U8 */
  CK_MLP2_SCALES,    /* block.N.mlp.mlp2_weight.scales [E, D, I/32]      U8 */
  CK_MLP2_BIAS,      /* block.N.mlp.mlp2_bias       [E, D]          BF16 */
  CK_N_ROLES
} ckpt_role;

#define CK_FIRST_LAYER_ROLE CK_ATTN_NORM
#define CK_N_LAYER_ROLES (CK_N_ROLES - CK_FIRST_LAYER_ROLE)

static inline int ckpt_role_is_global(ckpt_role r) { return r < CK_FIRST_LAYER_ROLE; }
/* 1 for the four MXFP4 blocks/scales roles. */
static inline int ckpt_role_is_mxfp4(ckpt_role r) {
  return r == CK_MLP1_BLOCKS || r == CK_MLP1_SCALES || r == CK_MLP2_BLOCKS || r == CK_MLP2_SCALES;
}

typedef struct {
  char name[96];                 /* original-layout name, e.g. "block.1.mlp.gate.weight" */
  ckpt_role role;
  int layer;                     /* -1 for global tensors */
  st_dtype dtype;                /* BF16 or U8 */
  int n_dims;
  int64_t shape[4];              /* logical shape (q/k/v parts concatenated along dim 0) */
  uint64_t n_bytes;              /* logical size in bytes */
  int n_parts;                   /* 1, or 3 for the Hugging Face q/k/v split */
  const st_tensor *part[3];      /* rows [0, r0), [r0, r0+r1), ... in order */
  int file_index[3];             /* index into ckpt_n_files for each part */
} ckpt_tensor;

typedef struct ckpt ckpt;

/* Open a checkpoint directory: config, every safetensors file, full validation.
 * Caller owns *out (ckpt_close). */
int ckpt_open(const char *dir, ckpt **out, err *e);
void ckpt_close(ckpt *c);

const gpt_config *ckpt_config(const ckpt *c);
ckpt_layout ckpt_get_layout(const ckpt *c);
const char *ckpt_dir(const ckpt *c);          /* the directory actually read */
const char *ckpt_config_path(const ckpt *c);
/* Keys that took official defaults ("" if none). */
const char *ckpt_defaulted_keys(const ckpt *c);
size_t ckpt_n_files(const ckpt *c);
const st_file *ckpt_file(const ckpt *c, size_t i);
/* The paths a command reads from the checkpoint: the directory, config.json and every safetensors
 * file (an output must be none of them: shards/outpath.h). Borrowed; writes at most cap paths and
 * returns how many it wrote. ckpt_n_files + 2 is always enough. */
size_t ckpt_input_paths(const ckpt *c, const char **out, size_t cap);
/* 0 if every file is still the one opened (st_file_unchanged), else that error. Call it after
 * the reads a result depends on. */
int ckpt_unchanged(const ckpt *c, err *e);
/* st_file_release_pages on every file: the checkpoint bytes read so far leave the resident set. */
void ckpt_release_pages(const ckpt *c);

/* Lookup by layer and role (layer ignored for global roles). Never NULL after a successful
 * ckpt_open for 0 <= layer < n_layers. */
const ckpt_tensor *ckpt_tensor_find(const ckpt *c, int layer, ckpt_role role);
/* All logical tensors in a stable order: globals, then layer 0 roles, layer 1 roles, ... */
size_t ckpt_n_tensors(const ckpt *c);
const ckpt_tensor *ckpt_tensor_at(const ckpt *c, size_t i);

/* Original-layout name of (layer, role) into buf. */
void ckpt_role_name(int layer, ckpt_role role, char *buf, size_t len);
/* Hugging Face name(s) of (layer, role): 1 or 3 names (q, k, v). Returns the count. */
int ckpt_role_hf_names(int layer, ckpt_role role, char names[3][96]);
/* Expected dtype and logical shape of a role under config c. Returns n_dims. */
int ckpt_role_shape(const gpt_config *c, ckpt_role role, st_dtype *dtype, int64_t shape[4]);

/* Convert BF16 rows [row0, row0 + n_rows) of a tensor (viewed as [rows, cols], rows = shape[0],
 * cols = the product of the other dims, 1 for a 1-D tensor) to fp32, crossing q/k/v parts as
 * needed. out: [n_rows, cols]. */
int ckpt_tensor_rows_f32(const ckpt_tensor *t, int64_t row0, int64_t n_rows, float *out, err *e);
/* Whole tensor to fp32 (BF16 only). out: n_elems floats. */
int ckpt_tensor_f32(const ckpt_tensor *t, float *out, err *e);
/* Raw bytes of a single-part tensor (U8 blocks/scales, or BF16 as uint16). */
static inline const void *ckpt_tensor_data(const ckpt_tensor *t) { return t->part[0]->data; }

/* Data check of rows [row0, row0 + n_rows) (dim 0) of a tensor before use: no NaN or infinity
 * in BF16 data, no MXFP4 scale byte that overflows fp32 (>= 253). Error names file and tensor.
 * Touches (reads) exactly those rows. */
int ckpt_check_rows(const ckpt *c, const ckpt_tensor *t, int64_t row0, int64_t n_rows, err *e);

/* Summary for `inspect` (spec section 3 figures). */
typedef struct {
  uint64_t n_tensors;            /* tensors in the files (HF q/k/v count 3) */
  uint64_t layer_bf16_bytes, layer_attn_values, layer_moe_bf16_values;   /* per layer */
  uint64_t layer_mxfp4_bytes, layer_mxfp4_weights;
  uint64_t mlp1_blocks_bytes, mlp1_scales_bytes, mlp2_blocks_bytes, mlp2_scales_bytes;
  uint64_t layer_total_bytes;
  uint64_t global_bf16_values, global_bf16_bytes;
  uint64_t all_bf16_bytes, all_mxfp4_bytes, total_bytes;
  uint64_t n_params;             /* bf16 values + MXFP4 weights (2 per blocks byte) */
  uint64_t layer_experts_bf16_bytes; /* one layer's experts dequantized to bf16 */
} ckpt_summary;
/* Figures computed from a config alone (what a checkpoint of that config must hold). */
void ckpt_summary_from_config(const gpt_config *c, ckpt_summary *s);

#endif
