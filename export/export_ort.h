/* export_ort: what the ort target (`export --target ort`, docs/export.md "The ort target") needs
 * besides its graph (export_ort_graph.c): the shape checks of ONNX Runtime's contrib kernels and
 * the exact int8 re-encoding of the MXFP4 experts for com.microsoft.QMoE.
 *
 * Re-encoding (docs/toolchain.md 2.4): an MXFP4 block of 32 values v_j = fp4(n_j) x 2^(s-127)
 * (n_j the 4-bit E2M1 code, low nibble first; s the E8M0 scale byte) becomes 32 uint8 codes
 * q_j = 128 + 2 x fp4(n_j) (2 x fp4 is an integer in -12..12) and one fp32 block scale
 * 2^(s-127) / 2. QMoE (expert_weight_bits 8, block_size 32, zero point 128) computes
 * (q_j - 128) x scale = fp4(n_j) x 2^(s-127) = v_j: exact, every fp32 scale included (2^-128 is
 * a subnormal, exact). int4 cannot hold E2M1's non-uniform grid, so nothing is requantized.
 * Codes [E, R, C] (C bytes a row), scales [E, R, C/32] float, in the checkpoint's orientation
 * (QMoE's fc1 [E, 2I, D], fc2 [E, D, I]). Local (no MPI). */
#ifndef GPTOSS_EXPORT_ORT_H
#define GPTOSS_EXPORT_ORT_H

#include <stddef.h>
#include <stdint.h>

#include "ckpt.h"
#include "err.h"
#include "export_layout.h"
#include "onnx_graph.h"

/* 0 if GroupQueryAttention and QMoE hold this model and options; else one error (EXIT_USAGE)
 * saying what cannot be held and why. */
int export_ort_check(const gpt_config *c, const export_opts *o, err *e);

/* The domain and attributes of the ort target's com.microsoft.QMoE node n for config c: top-k,
 * 8-bit codes in blocks of 32, interleaved SwiGLU (alpha 1.702, beta 1, the checkpoint's
 * swiglu_limit), routing weights renormalised over the top k (docs/export.md). */
void export_ort_qmoe_attrs(onnx_node *n, const gpt_config *c);

/* The code of each nibble pair: q8[b] = {128 + 2 fp4(b & 15), 128 + 2 fp4(b >> 4)}. */
void export_ort_code_table(uint8_t q8[256][2]);

/* Write bytes [b0, b1) of tensor t's encoding (EXL_MX4_Q8 codes or EXL_MX4_Q8_SCALES) at
 * t->offset + b0 of fd, streamed row by row from the mapped MXFP4 blocks/scales through buf
 * (buf_bytes >= one row: C bytes of codes or C/8 bytes of scales), never a whole expert in
 * memory. b0, b1: multiples of one expert's bytes. For EXL_MX4_Q8_SCALES the scale bytes are
 * checked first (no overflowing scale, ckpt_check_rows); codes need no check. fn(ctx, bytes
 * done) after every chunk. */
int export_ort_write_q8(const ckpt *ck, const exl_tensor *t, uint64_t b0, uint64_t b1, int fd,
                        const char *path, void *buf, size_t buf_bytes, export_progress_fn fn,
                        void *ctx, err *e);

#endif
