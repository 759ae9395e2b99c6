#include "guard.h"
#include "mx4.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

const float mx4_fp4_table[16] = {+0.0f, +0.5f, +1.0f, +1.5f, +2.0f, +3.0f, +4.0f, +6.0f,
                                 -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

/* 2^(s-127) as float bits, without a table or any state: s in 1..254 is the normal number with
 * biased exponent s, s = 0 the subnormal 2^-127 (mantissa bit 22), s = 255 +inf (2^128
 * overflows; 0 x inf = NaN as in the reference's ldexp). */
static inline float scale_of(uint8_t s) {
  const uint32_t bits = s == 0 ? 0x00400000u : s == 255 ? 0x7f800000u : (uint32_t)s << 23;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

float mx4_scale(uint8_t s) { return scale_of(s); }

/* A value times a power of two is exact in fp32 (down to the subnormal 2^-128), so the products
 * below introduce no rounding; overflow to inf only for scale bytes >= 253, and 0 x 2^128 = NaN for
 * scale byte 255, as in the reference (torch.ldexp). Both versions give identical bits, -0.0 of
 * code 8 included (tests/test_mx4.c checks them against the official decode). */
void mx4_decode_row_reference(const uint8_t *blocks, const uint8_t *scales, int64_t n_cols,
                              float *out) {
  for (int64_t g = 0; g < n_cols / 32; g++) {
    const float s = scale_of(scales[g]);
    const uint8_t *b = blocks + g * 16;
    float *o = out + g * 32;
    for (int j = 0; j < 16; j++) {
      o[2 * j] = mx4_fp4_table[b[j] & 0x0F] * s;
      o[2 * j + 1] = mx4_fp4_table[b[j] >> 4] * s;
    }
  }
}

#if defined(__x86_64__)
/* AVX2: the 8 magnitudes in one register (permute by code & 7), the sign bit from code bit 3. */
__attribute__((target("avx2"))) static void decode_row_avx2(const uint8_t *blocks,
                                                            const uint8_t *scales, int64_t n_cols,
                                                            float *out) {
  const __m256 mag = _mm256_setr_ps(0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f);
  const __m128i nib = _mm_set1_epi8(0x0F);
  const __m256i seven = _mm256_set1_epi32(7), eight = _mm256_set1_epi32(8);
  for (int64_t g = 0; g < n_cols / 32; g++) {
    const __m256 s = _mm256_set1_ps(scale_of(scales[g]));
    const __m128i b = _mm_loadu_si128((const __m128i *)(blocks + g * 16));
    const __m128i lo = _mm_and_si128(b, nib), hi = _mm_and_si128(_mm_srli_epi16(b, 4), nib);
    /* byte j holds columns 2j (low nibble) and 2j+1: interleaving gives column order */
    const __m128i codes[2] = {_mm_unpacklo_epi8(lo, hi), _mm_unpackhi_epi8(lo, hi)};
    for (int h = 0; h < 2; h++)
      for (int q = 0; q < 2; q++) {
        const __m256i code = _mm256_cvtepu8_epi32(q ? _mm_srli_si128(codes[h], 8) : codes[h]);
        __m256 v = _mm256_permutevar8x32_ps(mag, _mm256_and_si256(code, seven));
        const __m256i sign = _mm256_slli_epi32(_mm256_and_si256(code, eight), 28);
        v = _mm256_or_ps(v, _mm256_castsi256_ps(sign));
        _mm256_storeu_ps(out + g * 32 + h * 16 + q * 8, _mm256_mul_ps(v, s));
      }
  }
}
#endif

#if defined(__x86_64__)
/* Chosen once, before main (so before any thread), from the CPU and $GPTOSS_NO_AVX2. */
static int use_avx2;
__attribute__((constructor)) static void mx4_pick(void) {
  __builtin_cpu_init();
  use_avx2 = __builtin_cpu_supports("avx2") && !getenv("GPTOSS_NO_AVX2");
}
#endif

int mx4_simd_available(void) {
#if defined(__x86_64__)
  return use_avx2;
#else
  return 0;
#endif
}

void mx4_decode_row(const uint8_t *blocks, const uint8_t *scales, int64_t n_cols, float *out) {
#if defined(__x86_64__)
  if (use_avx2) {
    decode_row_avx2(blocks, scales, n_cols, out);
    return;
  }
#endif
  mx4_decode_row_reference(blocks, scales, n_cols, out);
}

static int mx4_decode_expert_rows_unguarded(const ckpt_tensor *blocks, const ckpt_tensor *scales, int expert,
                           int64_t row0, int64_t n_rows, float *out, err *e) {
  const int64_t E = blocks->shape[0], R = blocks->shape[1], G = blocks->shape[2];
  if (blocks->n_dims != 4 || scales->n_dims != 3 || blocks->shape[3] != 16 ||
      scales->shape[0] != E || scales->shape[1] != R || scales->shape[2] != G)
    return err_set(e, EXIT_RUNTIME, "%s / %s: not a matching MXFP4 blocks/scales pair",
                   blocks->name, scales->name);
  if (expert < 0 || expert >= E || row0 < 0 || n_rows < 0 || row0 + n_rows > R)
    return err_set(e, EXIT_RUNTIME, "%s: expert %d rows [%lld, %lld) out of range [0, %lld)",
                   blocks->name, expert, (long long)row0, (long long)(row0 + n_rows),
                   (long long)R);
  const uint8_t *b = ckpt_tensor_data(blocks);
  const uint8_t *s = ckpt_tensor_data(scales);
  const int64_t C = G * 32;
  for (int64_t r = 0; r < n_rows; r++) {
    const int64_t row = (int64_t)expert * R + row0 + r;
    mx4_decode_row(b + row * G * 16, s + row * G, C, out + r * C);
  }
  return 0;
}

typedef struct {
  const ckpt_tensor *blocks, *scales;
  int expert;
  int64_t row0, n_rows;
  float *out;
  err *e;
} mx4_decode_expert_rows_args;

static int mx4_decode_expert_rows_call(void *p) {
  mx4_decode_expert_rows_args *a = p;
  return mx4_decode_expert_rows_unguarded(a->blocks, a->scales, a->expert, a->row0, a->n_rows, a->out, a->e);
}

int mx4_decode_expert_rows(const ckpt_tensor *blocks, const ckpt_tensor *scales, int expert,
                           int64_t row0, int64_t n_rows, float *out, err *e) {
  mx4_decode_expert_rows_args a = {blocks, scales, expert, row0, n_rows, out, e};
  const char *bad = NULL;
  const int rc = guard_mapped_call(mx4_decode_expert_rows_call, &a, &bad);
  return rc == -2 ? guard_bus_error(e, bad) : rc;
}
