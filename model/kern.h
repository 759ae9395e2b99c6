/* kern: matrix kernels that read bf16 and MXFP4 weights in place (from the checkpoint
 * mapping) for a few activation rows: y[t, n] = W[n, :] . x[t, :] for T tokens, W [N, C].
 * No fp32 copy of W is written: each weight is converted in registers and used for every
 * token of the call (docs/forward.md "Kernels").
 *
 * Summation order (the same in every implementation, so the scalar reference, AVX2 and
 * AVX-512 give the same bits, and a token's result never depends on T, on the row range of a
 * call or on the thread that computes it):
 *   16 lane accumulators a[0..15] start at +0; for every column c in ascending order
 *   a[lane(c)] = fma(W[n, c], x[t, c], a[lane(c)]) (one rounding per step); then the pairwise
 *   tree b[l] = a[l] + a[l+8] (l < 8), c[l] = b[l] + b[l+4] (l < 4), d[l] = c[l] + c[l+2]
 *   (l < 2), r = d[0] + d[1].
 *   bf16:  lane(c) = c % 16.
 *   MXFP4: lane(c) = (c % 32) / 2: byte j of a 32-column block holds columns 2j (low nibble)
 *          and 2j+1 (high nibble), both go to lane j, so the kernel never unpacks nibbles into
 *          column order. The activations are passed in that pair order (kern_mx4_pair_x).
 * MXFP4 weights are decoded exactly (FP4 value x 2^(s-127), shards/mx4.h) before the fma.
 *
 * bf16 data may start at any byte offset (safetensors data offsets need not be even): it is
 * only read with memcpy or unaligned loads. Tails (C % 16 != 0 for bf16) use masked loads and
 * leave the masked lanes untouched. Pure functions, thread-safe, no allocation (the _par
 * versions use the pool and are not reentrant). Local. */
#ifndef GPTOSS_KERN_H
#define GPTOSS_KERN_H

#include <stdint.h>

typedef enum { KERN_SCALAR = 0, KERN_AVX2 = 1, KERN_AVX512 = 2 } kern_isa;

/* The best instruction set this CPU supports (__builtin_cpu_supports), lowered by the
 * environment variable GPTOSS_SIMD=scalar|avx2|avx512 (never raised above the CPU's). Read once. */
kern_isa kern_isa_best(void);
const char *kern_isa_name(kern_isa isa);
/* Whether the CPU can run isa (for the tests). */
int kern_isa_supported(kern_isa isa);

/* y[t * ldy + n] = W[n, :] . x[t * ldx + :] for n < N, t < T.
 * w: bf16 [N, C] row-major (C * 2 bytes per row), any byte alignment. */
void kern_bf16_nt(kern_isa isa, const void *w, int64_t N, int64_t C, const float *x, int64_t ldx,
                  int T, float *y, int64_t ldy);

/* xp[t * C + p] = x[t * ldx + c] in MXFP4 pair order: within each 32-column block, the 16 even
 * columns then the 16 odd ones (p = 32g + j <- c = 32g + 2j, p = 32g + 16 + j <- 32g + 2j + 1).
 * C must be a multiple of 32. */
void kern_mx4_pair_x(const float *x, int64_t ldx, int T, int64_t C, float *xp);

/* y[t * ldy + n] = W[n, :] . x[t, :] for n < N, t < T with W the MXFP4 matrix
 * blocks [N, C/32, 16], scales [N, C/32] and xp = kern_mx4_pair_x(x) ([T, C]). */
void kern_mx4_nt(kern_isa isa, const uint8_t *blocks, const uint8_t *scales, int64_t N, int64_t C,
                 const float *xp, int T, float *y, int64_t ldy);

/* The same over the worker threads of pool.h: tasks of KERN_TASK_ROWS output rows (each row's
 * sums are computed by one thread in the order above, so the bits do not depend on the thread
 * count). */
#define KERN_TASK_ROWS 64
void kern_bf16_nt_par(kern_isa isa, const void *w, int64_t N, int64_t C, const float *x,
                      int64_t ldx, int T, float *y, int64_t ldy);
void kern_mx4_nt_par(kern_isa isa, const uint8_t *blocks, const uint8_t *scales, int64_t N,
                     int64_t C, const float *xp, int T, float *y, int64_t ldy);

/* Implementations behind the dispatch (kern_x86.c); exported for kern.c only. */
void kern_bf16_nt_avx2(const void *w, int64_t N, int64_t C, const float *x, int64_t ldx, int T,
                       float *y, int64_t ldy);
void kern_bf16_nt_avx512(const void *w, int64_t N, int64_t C, const float *x, int64_t ldx, int T,
                         float *y, int64_t ldy);
void kern_mx4_nt_avx2(const uint8_t *blocks, const uint8_t *scales, int64_t N, int64_t C,
                      const float *xp, int T, float *y, int64_t ldy);
void kern_mx4_nt_avx512(const uint8_t *blocks, const uint8_t *scales, int64_t N, int64_t C,
                        const float *xp, int T, float *y, int64_t ldy);

#endif
