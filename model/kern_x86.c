/* kern_x86.c: the AVX2 and AVX-512 versions of the kern.h kernels. Each computes a tile of
 * R_ weight rows x T_ tokens per pass over the columns, so every weight loaded (and, for
 * MXFP4, decoded) is used T_ times from a register; the tile's sums follow exactly the lane
 * order of kern.h, so the results equal the scalar reference bit for bit.
 * Compiled for any x86-64: the functions carry their own target attributes and are called only
 * after kern_isa_supported. */
#include "kern.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <pthread.h>
#include <string.h>

/* 2^(s - 127) as the float bits: s << 23 for s >= 1 (s = 255 gives +inf), the subnormal
 * 2^-127 for s = 0; equal to mx4_scale(s). */
static inline float scale_f32(uint8_t s) {
  const uint32_t u = s ? (uint32_t)s << 23 : 0x00400000u;
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* For every scale byte s, the 16 FP4 values times 2^(s - 127) (the same float products as the
 * scalar reference's mx4_fp4_table[code] * mx4_scale(s)): one 64-byte load per block replaces
 * computing and broadcasting the scale and the multiply. 16 KiB; only the rows of the scale
 * bytes in use get warm in the cache. Built once (pthread_once). */
static float scaled_fp4[256][16] __attribute__((aligned(64)));
static pthread_once_t scaled_fp4_once = PTHREAD_ONCE_INIT;
static void scaled_fp4_init(void) {
  static const float fp4[16] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f,
                                -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};
  for (int s = 0; s < 256; s++)
    for (int i = 0; i < 16; i++) scaled_fp4[s][i] = fp4[i] * scale_f32((uint8_t)s);
}

/* The dispatch from a runtime tile shape (nr <= R_MAX, nt <= T_MAX) to a call with constant
 * shape, so the tile's accumulators live in registers. */
#define TILE_SWITCH4(F, nr, nt, ...)                                                        \
  switch ((nr) * 8 + (nt)) {                                                                \
    case 9: F(1, 1, __VA_ARGS__); break;   case 10: F(1, 2, __VA_ARGS__); break;            \
    case 11: F(1, 3, __VA_ARGS__); break;  case 12: F(1, 4, __VA_ARGS__); break;            \
    case 17: F(2, 1, __VA_ARGS__); break;  case 18: F(2, 2, __VA_ARGS__); break;            \
    case 19: F(2, 3, __VA_ARGS__); break;  case 20: F(2, 4, __VA_ARGS__); break;            \
    case 25: F(3, 1, __VA_ARGS__); break;  case 26: F(3, 2, __VA_ARGS__); break;            \
    case 27: F(3, 3, __VA_ARGS__); break;  case 28: F(3, 4, __VA_ARGS__); break;            \
    case 33: F(4, 1, __VA_ARGS__); break;  case 34: F(4, 2, __VA_ARGS__); break;            \
    case 35: F(4, 3, __VA_ARGS__); break;  case 36: F(4, 4, __VA_ARGS__); break;            \
  }

/* ================================================================ AVX-512 */

#define A512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma"), always_inline)) static inline

A512 float red512(__m512 a) {
  /* b[l] = a[l] + a[l+8], c[l] = b[l] + b[l+4], d[l] = c[l] + c[l+2], d[0] + d[1] */
  const __m256 b = _mm256_add_ps(_mm512_castps512_ps256(a),
                                 _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
  const __m128 c = _mm_add_ps(_mm256_castps256_ps128(b), _mm256_extractf128_ps(b, 1));
  const __m128 d = _mm_add_ps(c, _mm_movehl_ps(c, c));
  return _mm_cvtss_f32(_mm_add_ss(d, _mm_movehdup_ps(d)));
}

/* y[t, r] = the tile's sums. */
A512 void store512(int R_, int T_, __m512 acc[4][4], float *y, int64_t ldy) {
  _Pragma("GCC unroll 4")
  for (int r = 0; r < R_; r++)
    _Pragma("GCC unroll 4")
    for (int t = 0; t < T_; t++) y[t * ldy + r] = red512(acc[r][t]);
}

A512 __m512 bf16_load512(const uint8_t *p) {
  const __m256i h = _mm256_loadu_si256((const __m256i *)p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

A512 __m512 bf16_load512_mask(const uint8_t *p, __mmask16 k) {
  const __m256i h = _mm256_maskz_loadu_epi16(k, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* y[t, r] for R_ rows of w (row stride C bf16) and T_ tokens of x. */
A512 void bf16_tile512(int R_, int T_, const uint8_t *w, int64_t C, const float *x, int64_t ldx,
                       float *y, int64_t ldy) {
  __m512 acc[4][4];
  _Pragma("GCC unroll 4")
  for (int r = 0; r < R_; r++)
    _Pragma("GCC unroll 4")
    for (int t = 0; t < T_; t++) acc[r][t] = _mm512_setzero_ps();
  int64_t c = 0;
  for (; c + 16 <= C; c += 16) {
    __m512 wv[4];
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R_; r++) wv[r] = bf16_load512(w + (r * C + c) * 2);
    _Pragma("GCC unroll 4")
    for (int t = 0; t < T_; t++) {
      const __m512 xv = _mm512_loadu_ps(x + t * ldx + c);
      _Pragma("GCC unroll 4")
      for (int r = 0; r < R_; r++) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
  if (c < C) { /* masked lanes keep their sums untouched, as in the scalar loop */
    const __mmask16 k = (__mmask16)((1u << (C - c)) - 1);
    __m512 wv[4];
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R_; r++) wv[r] = bf16_load512_mask(w + (r * C + c) * 2, k);
    _Pragma("GCC unroll 4")
    for (int t = 0; t < T_; t++) {
      const __m512 xv = _mm512_maskz_loadu_ps(k, x + t * ldx + c);
      _Pragma("GCC unroll 4")
      for (int r = 0; r < R_; r++) acc[r][t] = _mm512_mask3_fmadd_ps(wv[r], xv, acc[r][t], k);
    }
  }
  store512(R_, T_, acc, y, ldy);
}

#define BF16_TILE512(R_, T_, w, C, x, ldx, y, ldy) bf16_tile512(R_, T_, w, C, x, ldx, y, ldy)

__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma"))) void kern_bf16_nt_avx512(
    const void *w, int64_t N, int64_t C, const float *x, int64_t ldx, int T, float *y,
    int64_t ldy) {
  const uint8_t *wb = w;
  if (T == 1) {
    /* a matrix-vector product streams the weights from memory: one row at a time (one
     * sequential stream) ran at 15-16 GB/s here against 10-11 GB/s for 4 interleaved rows
     * (bench: the same matrix from the page cache, one thread; decode step 0.155 s vs 0.199 s
     * on the 2-layer 20b synth). The sums are the same either way. */
    for (int64_t n = 0; n < N; n++) bf16_tile512(1, 1, wb + n * C * 2, C, x, ldx, y + n, ldy);
    return;
  }
  for (int64_t n0 = 0; n0 < N; n0 += 4) {
    const int nr = N - n0 < 4 ? (int)(N - n0) : 4;
    for (int t0 = 0; t0 < T; t0 += 4) {
      const int nt = T - t0 < 4 ? T - t0 : 4;
      const uint8_t *wr = wb + n0 * C * 2;
      const float *xr = x + t0 * ldx;
      float *yr = y + t0 * ldy + n0;
      TILE_SWITCH4(BF16_TILE512, nr, nt, wr, C, xr, ldx, yr, ldy)
    }
  }
}

/* MXFP4: per 32-column block of a row, one 16-byte load widened to 16 dwords; the low nibble
 * of each dword indexes the 16-entry table of the block's scale (scaled_fp4, exact) for column
 * 2j, the high nibble for 2j + 1. */
A512 void mx4_tile512(int R_, int T_, const uint8_t *blocks, const uint8_t *scales, int64_t C,
                      const float *xp, float *y, int64_t ldy) {
  const int64_t G = C / 32;
  __m512 acc[4][4];
  _Pragma("GCC unroll 4")
  for (int r = 0; r < R_; r++)
    _Pragma("GCC unroll 4")
    for (int t = 0; t < T_; t++) acc[r][t] = _mm512_setzero_ps();
  for (int64_t g = 0; g < G; g++) {
    __m512 wl[4], wh[4];
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R_; r++) {
      const __m512 tab = _mm512_load_ps(scaled_fp4[scales[r * G + g]]);
      const __m512i v =
          _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blocks + (r * G + g) * 16)));
      wl[r] = _mm512_permutexvar_ps(v, tab); /* uses index bits 0..3 only */
      wh[r] = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), tab);
    }
    _Pragma("GCC unroll 4")
    for (int t = 0; t < T_; t++) {
      const __m512 xl = _mm512_loadu_ps(xp + t * C + 32 * g);
      const __m512 xh = _mm512_loadu_ps(xp + t * C + 32 * g + 16);
      _Pragma("GCC unroll 4")
      for (int r = 0; r < R_; r++) {
        acc[r][t] = _mm512_fmadd_ps(wl[r], xl, acc[r][t]);
        acc[r][t] = _mm512_fmadd_ps(wh[r], xh, acc[r][t]);
      }
    }
  }
  store512(R_, T_, acc, y, ldy);
}

#define MX4_TILE512(R_, T_, b, s, C, xp, y, ldy) mx4_tile512(R_, T_, b, s, C, xp, y, ldy)

__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma"))) void kern_mx4_nt_avx512(
    const uint8_t *blocks, const uint8_t *scales, int64_t N, int64_t C, const float *xp, int T,
    float *y, int64_t ldy) {
  const int64_t G = C / 32;
  pthread_once(&scaled_fp4_once, scaled_fp4_init);
  for (int64_t n0 = 0; n0 < N; n0 += 4) {
    const int nr = N - n0 < 4 ? (int)(N - n0) : 4;
    const uint8_t *b = blocks + n0 * G * 16, *s = scales + n0 * G;
    for (int t0 = 0; t0 < T; t0 += 4) {
      const int nt = T - t0 < 4 ? T - t0 : 4;
      const float *xr = xp + t0 * C;
      float *yr = y + t0 * ldy + n0;
      TILE_SWITCH4(MX4_TILE512, nr, nt, b, s, C, xr, yr, ldy)
    }
  }
}

/* ================================================================ AVX2 */

/* 16 lanes as two 8-float registers: lo = lanes 0..7, hi = lanes 8..15. */
#define A256 __attribute__((target("avx2,fma"), always_inline)) static inline

A256 float red256(__m256 lo, __m256 hi) {
  const __m256 b = _mm256_add_ps(lo, hi);
  const __m128 c = _mm_add_ps(_mm256_castps256_ps128(b), _mm256_extractf128_ps(b, 1));
  const __m128 d = _mm_add_ps(c, _mm_movehl_ps(c, c));
  return _mm_cvtss_f32(_mm_add_ss(d, _mm_movehdup_ps(d)));
}

A256 void store256(int R_, int T_, __m256 lo[2][2], __m256 hi[2][2], float *y, int64_t ldy) {
  _Pragma("GCC unroll 4")
  for (int r = 0; r < R_; r++)
    _Pragma("GCC unroll 4")
    for (int t = 0; t < T_; t++) y[t * ldy + r] = red256(lo[r][t], hi[r][t]);
}

A256 __m256 bf16_load256(const uint8_t *p) {
  const __m128i h = _mm_loadu_si128((const __m128i *)p);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* Tiles of at most 2 rows x 2 tokens (16 registers). */
A256 void bf16_tile256(int R_, int T_, const uint8_t *w, int64_t C, const float *x, int64_t ldx,
                       float *y, int64_t ldy) {
  __m256 lo[2][2], hi[2][2];
  _Pragma("GCC unroll 4")
  for (int r = 0; r < R_; r++)
    _Pragma("GCC unroll 4")
    for (int t = 0; t < T_; t++) lo[r][t] = hi[r][t] = _mm256_setzero_ps();
  int64_t c = 0;
  for (; c + 16 <= C; c += 16) {
    __m256 wl[2], wh[2];
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R_; r++) {
      wl[r] = bf16_load256(w + (r * C + c) * 2);
      wh[r] = bf16_load256(w + (r * C + c + 8) * 2);
    }
    _Pragma("GCC unroll 4")
    for (int t = 0; t < T_; t++) {
      const __m256 xl = _mm256_loadu_ps(x + t * ldx + c), xh = _mm256_loadu_ps(x + t * ldx + c + 8);
      _Pragma("GCC unroll 4")
      for (int r = 0; r < R_; r++) {
        lo[r][t] = _mm256_fmadd_ps(wl[r], xl, lo[r][t]);
        hi[r][t] = _mm256_fmadd_ps(wh[r], xh, hi[r][t]);
      }
    }
  }
  if (c < C) { /* tail through zero-padded copies; the blend keeps masked lanes untouched */
    const int rem = (int)(C - c);
    int32_t lane[16];
    for (int l = 0; l < 16; l++) lane[l] = l < rem ? -1 : 0;
    const __m256 ml = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i *)lane));
    const __m256 mh = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i *)(lane + 8)));
    __m256 wl[2], wh[2];
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R_; r++) {
      uint8_t tmp[32] = {0};
      memcpy(tmp, w + (r * C + c) * 2, (size_t)rem * 2);
      wl[r] = bf16_load256(tmp);
      wh[r] = bf16_load256(tmp + 16);
    }
    _Pragma("GCC unroll 4")
    for (int t = 0; t < T_; t++) {
      float xt[16] = {0};
      memcpy(xt, x + t * ldx + c, (size_t)rem * sizeof(float));
      const __m256 xl = _mm256_loadu_ps(xt), xh = _mm256_loadu_ps(xt + 8);
      _Pragma("GCC unroll 4")
      for (int r = 0; r < R_; r++) {
        lo[r][t] = _mm256_blendv_ps(lo[r][t], _mm256_fmadd_ps(wl[r], xl, lo[r][t]), ml);
        hi[r][t] = _mm256_blendv_ps(hi[r][t], _mm256_fmadd_ps(wh[r], xh, hi[r][t]), mh);
      }
    }
  }
  store256(R_, T_, lo, hi, y, ldy);
}

#define TILE_SWITCH2(F, nr, nt, ...)                                                       \
  switch ((nr) * 8 + (nt)) {                                                               \
    case 9: F(1, 1, __VA_ARGS__); break;  case 10: F(1, 2, __VA_ARGS__); break;            \
    case 17: F(2, 1, __VA_ARGS__); break; case 18: F(2, 2, __VA_ARGS__); break;            \
  }
#define BF16_TILE256(R_, T_, w, C, x, ldx, y, ldy) bf16_tile256(R_, T_, w, C, x, ldx, y, ldy)

__attribute__((target("avx2,fma"))) void kern_bf16_nt_avx2(const void *w, int64_t N, int64_t C,
                                                          const float *x, int64_t ldx, int T,
                                                          float *y, int64_t ldy) {
  const uint8_t *wb = w;
  for (int64_t n0 = 0; n0 < N; n0 += 2) {
    const int nr = N - n0 < 2 ? (int)(N - n0) : 2;
    for (int t0 = 0; t0 < T; t0 += 2) {
      const int nt = T - t0 < 2 ? T - t0 : 2;
      const uint8_t *wr = wb + n0 * C * 2;
      const float *xr = x + t0 * ldx;
      float *yr = y + t0 * ldy + n0;
      TILE_SWITCH2(BF16_TILE256, nr, nt, wr, C, xr, ldx, yr, ldy)
    }
  }
}

/* MXFP4 with AVX2: the 8 magnitudes x scale (scaled_fp4) in one register, indexed by code & 7
 * (the permute uses index bits 0..2), the sign from code bit 3 moved to bit 31. Lanes 0..7 are bytes 0..7
 * of the block, lanes 8..15 bytes 8..15. */
A256 void mx4_decode256(__m256 tabm, __m128i bytes8, __m256 *wlo, __m256 *whi) {
  const __m256i v = _mm256_cvtepu8_epi32(bytes8);
  const __m256i sgn = _mm256_set1_epi32((int)0x80000000u);
  const __m256 ml = _mm256_permutevar8x32_ps(tabm, v);
  const __m256 mh = _mm256_permutevar8x32_ps(tabm, _mm256_srli_epi32(v, 4));
  *wlo = _mm256_or_ps(ml, _mm256_castsi256_ps(_mm256_and_si256(_mm256_slli_epi32(v, 28), sgn)));
  *whi = _mm256_or_ps(mh, _mm256_castsi256_ps(_mm256_and_si256(_mm256_slli_epi32(v, 24), sgn)));
}

A256 void mx4_tile256(int R_, int T_, const uint8_t *blocks, const uint8_t *scales, int64_t C,
                      const float *xp, float *y, int64_t ldy) {
  const int64_t G = C / 32;
  __m256 lo[2][2], hi[2][2];
  _Pragma("GCC unroll 4")
  for (int r = 0; r < R_; r++)
    _Pragma("GCC unroll 4")
    for (int t = 0; t < T_; t++) lo[r][t] = hi[r][t] = _mm256_setzero_ps();
  for (int64_t g = 0; g < G; g++) {
    /* w[r][0..1]: lanes 0..7 (low, high nibble); w[r][2..3]: lanes 8..15 */
    __m256 w[2][4];
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R_; r++) {
      const __m256 tabm = _mm256_load_ps(scaled_fp4[scales[r * G + g]]); /* the 8 magnitudes */
      const __m128i b = _mm_loadu_si128((const __m128i *)(blocks + (r * G + g) * 16));
      mx4_decode256(tabm, b, &w[r][0], &w[r][1]);
      mx4_decode256(tabm, _mm_srli_si128(b, 8), &w[r][2], &w[r][3]);
    }
    _Pragma("GCC unroll 4")
    for (int t = 0; t < T_; t++) {
      const float *xg = xp + t * C + 32 * g;
      const __m256 x0 = _mm256_loadu_ps(xg), x1 = _mm256_loadu_ps(xg + 8);
      const __m256 x2 = _mm256_loadu_ps(xg + 16), x3 = _mm256_loadu_ps(xg + 24);
      _Pragma("GCC unroll 4")
      for (int r = 0; r < R_; r++) {
        lo[r][t] = _mm256_fmadd_ps(w[r][0], x0, lo[r][t]);
        lo[r][t] = _mm256_fmadd_ps(w[r][1], x2, lo[r][t]);
        hi[r][t] = _mm256_fmadd_ps(w[r][2], x1, hi[r][t]);
        hi[r][t] = _mm256_fmadd_ps(w[r][3], x3, hi[r][t]);
      }
    }
  }
  store256(R_, T_, lo, hi, y, ldy);
}

#define MX4_TILE256(R_, T_, b, s, C, xp, y, ldy) mx4_tile256(R_, T_, b, s, C, xp, y, ldy)

__attribute__((target("avx2,fma"))) void kern_mx4_nt_avx2(const uint8_t *blocks,
                                                         const uint8_t *scales, int64_t N,
                                                         int64_t C, const float *xp, int T,
                                                         float *y, int64_t ldy) {
  const int64_t G = C / 32;
  pthread_once(&scaled_fp4_once, scaled_fp4_init);
  for (int64_t n0 = 0; n0 < N; n0 += 2) {
    const int nr = N - n0 < 2 ? (int)(N - n0) : 2;
    for (int t0 = 0; t0 < T; t0 += 2) {
      const int nt = T - t0 < 2 ? T - t0 : 2;
      const uint8_t *b = blocks + n0 * G * 16, *s = scales + n0 * G;
      TILE_SWITCH2(MX4_TILE256, nr, nt, b, s, C, xp + t0 * C, y + t0 * ldy + n0, ldy)
    }
  }
}

#endif
