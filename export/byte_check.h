/* byte_check.h: the checks export applies to the checkpoint bytes it copies, word at a time
 * (the copy is memory-bound; a byte loop was 23 % of an export's time). tests/test_byte_check.c
 * compares them with the byte loops for every value at every position. */
#ifndef GPTOSS_BYTE_CHECK_H
#define GPTOSS_BYTE_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The bf16 value at p (2 bytes, any alignment: a data section may start at an odd offset). */
static inline uint16_t bf16_at(const uint8_t *p) {
  uint16_t h;
  memcpy(&h, p, sizeof h);
  return h;
}

/* 1 if any of the n bf16 values at p is infinite or NaN (word at a time, branch-free). */
static inline int bf16_any_nonfinite(const uint8_t *p, size_t n) {
  /* four little-endian values per 64-bit word: a lane is non-finite when its exponent bits are
   * all set, i.e. when (lane & 0x7f80) ^ 0x7f80 is zero; the zero-lane test is exact for "any" */
  const uint64_t expo = 0x7f807f807f807f80ull, ones = 0x0001000100010001ull,
                 high = 0x8000800080008000ull;
  uint64_t bad = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    uint64_t w;
    memcpy(&w, p + 2 * i, 8);
    const uint64_t v = (w & expo) ^ expo;
    bad |= (v - ones) & ~v & high;
  }
  for (; i < n; i++) bad |= (bf16_at(p + 2 * i) & 0x7f80u) == 0x7f80u;
  return bad != 0;
}

/* 1 if any MXFP4 scale byte overflows fp32 (>= 253, i.e. its complement is < 3). */
static inline int scales_any_overflow(const uint8_t *v, size_t n) {
  const uint64_t lo = 0x0101010101010101ull, high = 0x8080808080808080ull;
  uint64_t bad = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, v + i, 8);
    const uint64_t c = ~w; /* a byte of c is < 3 exactly when the zero-byte-style test fires */
    bad |= (c - 3 * lo) & ~c & high;
  }
  for (; i < n; i++) bad |= v[i] >= 253u;
  return bad != 0;
}

#endif
