/* mx4: MXFP4 expert weights -> fp32, exactly (docs/gpt-oss-spec.md section 4).
 *
 * A weight matrix W[R, C] (per expert) is stored as blocks[R, C/32, 16] (two FP4 E2M1 codes per
 * byte, LOW nibble = even column) and scales[R, C/32] (E8M0: 2^(s-127), no special case for
 * 255). Every decoded value is exact in fp32 (subnormals down to 2^-128 included, so never build
 * with flush-to-zero). Pure functions without mutable state (the SIMD choice is made once before
 * main), so thread-safe; no allocation. */
#ifndef GPTOSS_MX4_H
#define GPTOSS_MX4_H

#include <stdint.h>

#include "ckpt.h"

/* FP4 E2M1 value of a 4-bit code. */
extern const float mx4_fp4_table[16];

/* 2^(s - 127) as float (s = 0 gives 2^-127, s = 255 gives +inf). */
float mx4_scale(uint8_t s);

/* Decode one row of C columns: blocks = C/2 bytes, scales = C/32 bytes, out = C floats.
 * C must be a multiple of 32. */
void mx4_decode_row(const uint8_t *blocks, const uint8_t *scales, int64_t n_cols, float *out);

/* The plain scalar decode that mx4_decode_row must equal bit for bit (it dispatches to a SIMD
 * version where the processor has one); exported for the tests. */
/* 1 if mx4_decode_row uses a SIMD version here (AVX2 present, $GPTOSS_NO_AVX2 unset). */
int mx4_simd_available(void);
void mx4_decode_row_reference(const uint8_t *blocks, const uint8_t *scales, int64_t n_cols, float *out);

/* Decode rows [row0, row0 + n_rows) of expert e of a (blocks, scales) pair from the catalog
 * (e.g. CK_MLP1_BLOCKS + CK_MLP1_SCALES of one layer). out: [n_rows, C], C = shape[2] * 32. */
int mx4_decode_expert_rows(const ckpt_tensor *blocks, const ckpt_tensor *scales, int expert,
                           int64_t row0, int64_t n_rows, float *out, err *e);

#endif
