/* export_layout: what goes into the external data file(s) of an exported model, where, and
 * which rank writes which bytes (docs/export.md "Data files").
 *
 * The tensor list is a pure function of (checkpoint config, options): the globals (embedding,
 * final norm, unembedding), then every exported layer's tensors in checkpoint role order, then
 * the derived tables. A sub-model (--layers A:B) has layers [A, B) only, no embedding, and the
 * final norm and unembedding only with sub_head (MXFP4 LUTs, RoPE cos/sin caches). Offsets are a pure function of that
 * list: tensors of 1 MiB and more start at a multiple of 64 KiB, smaller ones at a multiple of
 * 64 bytes, in list order. In "single" mode there is one file (model.onnx.data) and the layout
 * does not depend on the rank count at all, so neither do the bytes written. In "per-rank" mode
 * every tensor goes whole into the file of the rank that writes it (model.onnx.data.<rank>),
 * so that split necessarily depends on the plan.
 *
 * Who writes what (a pure function of the shard plan, shards/plan.h): rank 0 the embedding and
 * the derived tables, the head rank (last stage leader) the final norm and the unembedding,
 * each stage leader its layers' attention and router tensors, and every rank of a stage its
 * experts' slice [expert0, expert0 + n_experts) of each expert tensor (expert tensors are
 * [E, ...], so that slice is one contiguous byte range). In per-rank mode an expert tensor is
 * written whole by one rank of its stage (round robin over the stage's ranks).
 *
 * Encodings: checkpoint bytes as they are (U8 MXFP4 blocks/scales, bf16), bf16 -> fp32,
 * MXFP4 -> fp32 (exact, shards/mx4.h), or for the ort target MXFP4 -> int8 codes + fp32 block
 * scales (exact, export_ort.h); all streamed through a caller buffer in bounded chunks,
 * never a whole tensor in memory. Local (no MPI). */
#ifndef GPTOSS_EXPORT_LAYOUT_H
#define GPTOSS_EXPORT_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "ckpt.h"
#include "err.h"
#include "plan.h"

/* bf16 checkpoint tensors (not the embedding, always a bf16 Gather): bf16 + Cast in the graph,
 * fp32 converted at export time, or auto = bf16 + Cast unless the fp32 copy would exceed ONNX
 * Runtime's 1 GiB constant-folding limit (then the Cast would run at every inference), fp32 then. */
enum { EXPORT_DENSE_BF16 = 0, EXPORT_DENSE_FP32 = 1, EXPORT_DENSE_AUTO = 2 };
#define EXPORT_FOLD_LIMIT (1ull << 30)

/* The graph's target (docs/export.md "Targets"): standard ONNX (opset 23 only, any runtime) or
 * ONNX Runtime's contrib ops (GroupQueryAttention, QMoE; the experts as exact int8 codes). */
enum { EXPORT_TARGET_STANDARD = 0, EXPORT_TARGET_ORT = 1 };

typedef struct {
  int target;              /* EXPORT_TARGET_* */
  int experts_fp32;        /* 1: --weights fp32 (experts decoded at export time) */
  int dense;               /* EXPORT_DENSE_*: how bf16 checkpoint tensors are stored */
  int layer0;              /* first exported layer: A of --layers A:B, else 0 */
  int n_layers;            /* end of the exported layers (exclusive): --max-layers N, B of
                            * --layers A:B, or L */
  int sub_model;           /* 1: --layers A:B: input hidden_in and output hidden_out [batch,
                            * sequence, D] instead of input_ids + embedding */
  int sub_head;            /* sub_model only: also the final norm, unembedding and logits
                            * (B is the last layer the caller runs) */
  int max_positions;       /* rows of the RoPE caches = longest sequence the model accepts */
  int per_rank_files;      /* 1: --data-files per-rank */
  int expose_routing, expose_hidden;
  int logits_to_keep;      /* 1: --logits-to-keep: the optional num_logits_to_keep input (not in
                            * a sub-model) */
} export_opts;

typedef enum {
  EXL_RAW,         /* checkpoint bytes unchanged (U8 or BF16) */
  EXL_BF16_F32,    /* checkpoint BF16 -> FLOAT */
  EXL_MX4_F32,     /* MXFP4 blocks + scales -> FLOAT [E, R, C] */
  EXL_MX4_Q8,      /* MXFP4 blocks -> UINT8 codes [E, R, C]: 128 + 2 x e2m1 value (export_ort.h) */
  EXL_MX4_Q8_SCALES, /* MXFP4 scales -> FLOAT [E, R, C/32]: 2^(s - 127) / 2 */
  EXL_LUT_FP4,     /* FLOAT [256, 2]: {fp4(b & 15), fp4(b >> 4)} */
  EXL_LUT_E8M0,    /* FLOAT [256]: 2^(s - 127) */
  EXL_ROPE_COS,    /* FLOAT [max_positions, Dh/2], concentration folded in */
  EXL_ROPE_SIN
} exl_source;

typedef struct {
  char name[96];           /* initializer name (original-layout name for checkpoint tensors) */
  exl_source src;
  int layer;               /* -1 for globals and derived tables */
  int role;                /* ckpt_role, or -1 for derived tables */
  const ckpt_tensor *t;    /* source (the blocks for EXL_MX4_F32) */
  const ckpt_tensor *scales; /* EXL_MX4_F32 and EXL_MX4_Q8* (the source of EXL_MX4_Q8_SCALES) */
  int dtype;               /* ONNX data type of the stored bytes */
  int n_dims;
  int64_t dims[4];
  uint64_t n_bytes;
  int expert_major;        /* 1: dim 0 is the expert index (written in expert slices) */
  int file;                /* data file index */
  uint64_t offset;         /* byte offset in that file */
} exl_tensor;

typedef struct {
  export_opts o;
  gpt_config c;            /* the checkpoint's config with n_layers = o.n_layers */
  exl_tensor *t;           /* [n_tensors] */
  size_t n_tensors;
  int n_files;
  uint64_t *file_bytes;    /* [n_files] size of each data file */
  float *inv_freq;         /* [Dh/2] RoPE inverse frequencies (spec 6.3) */
  float concentration;
} export_layout;

/* The model's files inside an export directory: onnx/model.onnx and its data file(s) beside it
 * (docs/export.md "Files": the layout both transformers.js and ONNX Runtime GenAI load). */
#define EXPORT_MODEL_DIR "onnx"
#define EXPORT_MODEL_FILE EXPORT_MODEL_DIR "/model.onnx"
#define EXPORT_DATA_FILE "model.onnx.data"
#define EXPORT_ALIGN_BIG (64u * 1024u)
#define EXPORT_ALIGN_SMALL 64u
#define EXPORT_BIG_TENSOR (1u << 20)

/* Build the tensor list and offsets. p: the plan the ranks use (per-rank files follow it; may
 * be NULL in single mode). Caller owns L (export_layout_free). */
int export_layout_make(const ckpt *ck, const export_opts *o, const plan *p, export_layout *L,
                       err *e);
void export_layout_free(export_layout *L);
/* 1 if the model ends with the final norm, the unembedding and `logits`. */
int export_layout_has_head(const export_layout *L);
/* Path of data file f relative to the export directory ("onnx/model.onnx.data" or
 * "onnx/model.onnx.data.<f>") into buf. */
void export_layout_file_name(const export_layout *L, int f, char *buf, size_t len);
/* The same relative to the model file (the initializers' `location`: "model.onnx.data..."). */
void export_layout_data_location(const export_layout *L, int f, char *buf, size_t len);
/* Index of a tensor by name, or -1. */
long export_layout_find(const export_layout *L, const char *name);

/* The byte range [*b0, *b1) of tensor i that `rank` writes under plan p (empty: b0 == b1). */
void export_layout_share(const export_layout *L, const plan *p, size_t i, int rank,
                         uint64_t *b0, uint64_t *b1);
/* Bytes `rank` writes in total. */
uint64_t export_layout_rank_bytes(const export_layout *L, const plan *p, int rank);

/* Called after every chunk written with the running byte count of this call. */
typedef void (*export_progress_fn)(void *ctx, uint64_t bytes);

/* Check (no NaN/inf bf16, no overflowing scale byte) and write bytes [b0, b1) of tensor i's
 * encoding at L->t[i].offset + b0 of fd. b0, b1 must be multiples of the encoding's row size
 * (any expert-slice range of export_layout_share is). buf: scratch of buf_bytes (>= 1 MiB),
 * used in chunks. */
int export_layout_write(const export_layout *L, const ckpt *ck, size_t i, uint64_t b0,
                        uint64_t b1, int fd, const char *path, void *buf, size_t buf_bytes,
                        export_progress_fn fn, void *ctx, err *e);

#endif
