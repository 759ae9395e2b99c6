/* kern.c: the scalar reference kernels (the summation order of kern.h written out plainly) and
 * the dispatch to the SIMD versions in kern_x86.c. */
#include "kern.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mx4.h"
#include "pool.h"
#include "st.h"

/* ---------------------------------------------------------------- instruction set */

int kern_isa_supported(kern_isa isa) {
#if defined(__x86_64__)
  switch (isa) {
    case KERN_SCALAR: return 1;
    case KERN_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case KERN_AVX512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl");
  }
  return 0;
#else
  return isa == KERN_SCALAR;
#endif
}

kern_isa kern_isa_best(void) {
  static int best = -1;
  if (best < 0) {
    kern_isa b = KERN_SCALAR;
    if (kern_isa_supported(KERN_AVX2)) b = KERN_AVX2;
    if (kern_isa_supported(KERN_AVX512)) b = KERN_AVX512;
    const char *env = getenv("GPTOSS_SIMD");
    if (env && !strcmp(env, "scalar")) b = KERN_SCALAR;
    else if (env && !strcmp(env, "avx2") && b > KERN_AVX2) b = KERN_AVX2;
    best = b;
  }
  return (kern_isa)best;
}

const char *kern_isa_name(kern_isa isa) {
  return isa == KERN_AVX512 ? "avx512" : isa == KERN_AVX2 ? "avx2" : "scalar";
}

/* ---------------------------------------------------------------- scalar reference */

static float tree16(const float *a) {
  float b[8], c[4], d[2];
  for (int l = 0; l < 8; l++) b[l] = a[l] + a[l + 8];
  for (int l = 0; l < 4; l++) c[l] = b[l] + b[l + 4];
  for (int l = 0; l < 2; l++) d[l] = c[l] + c[l + 2];
  return d[0] + d[1];
}

static void bf16_nt_scalar(const void *w, int64_t N, int64_t C, const float *x, int64_t ldx,
                           int T, float *y, int64_t ldy) {
  const uint8_t *wb = w;
  for (int64_t n = 0; n < N; n++)
    for (int t = 0; t < T; t++) {
      const float *xr = x + (int64_t)t * ldx;
      const uint8_t *wr = wb + n * C * 2;
      float a[16] = {0};
      for (int64_t c = 0; c < C; c++) {
        uint16_t h;
        memcpy(&h, wr + 2 * c, sizeof h);
        a[c % 16] = fmaf(st_bf16_to_f32(h), xr[c], a[c % 16]);
      }
      y[(int64_t)t * ldy + n] = tree16(a);
    }
}

static void mx4_nt_scalar(const uint8_t *blocks, const uint8_t *scales, int64_t N, int64_t C,
                          const float *xp, int T, float *y, int64_t ldy) {
  const int64_t G = C / 32;
  for (int64_t n = 0; n < N; n++)
    for (int t = 0; t < T; t++) {
      const float *xr = xp + (int64_t)t * C;
      float a[16] = {0};
      for (int64_t g = 0; g < G; g++) {
        const float s = mx4_scale(scales[n * G + g]);
        const uint8_t *b = blocks + (n * G + g) * 16;
        for (int j = 0; j < 16; j++) {
          /* columns 32g + 2j (low nibble) then 32g + 2j + 1, both into lane j */
          a[j] = fmaf(mx4_fp4_table[b[j] & 15] * s, xr[32 * g + j], a[j]);
          a[j] = fmaf(mx4_fp4_table[b[j] >> 4] * s, xr[32 * g + 16 + j], a[j]);
        }
      }
      y[(int64_t)t * ldy + n] = tree16(a);
    }
}

void kern_mx4_pair_x(const float *x, int64_t ldx, int T, int64_t C, float *xp) {
  for (int t = 0; t < T; t++) {
    const float *xr = x + (int64_t)t * ldx;
    float *o = xp + (int64_t)t * C;
    for (int64_t g = 0; g < C; g += 32)
      for (int j = 0; j < 16; j++) {
        o[g + j] = xr[g + 2 * j];
        o[g + 16 + j] = xr[g + 2 * j + 1];
      }
  }
}

/* ---------------------------------------------------------------- dispatch */

void kern_bf16_nt(kern_isa isa, const void *w, int64_t N, int64_t C, const float *x, int64_t ldx,
                  int T, float *y, int64_t ldy) {
#if defined(__x86_64__)
  if (isa == KERN_AVX512) return kern_bf16_nt_avx512(w, N, C, x, ldx, T, y, ldy);
  if (isa == KERN_AVX2) return kern_bf16_nt_avx2(w, N, C, x, ldx, T, y, ldy);
#endif
  bf16_nt_scalar(w, N, C, x, ldx, T, y, ldy);
}

void kern_mx4_nt(kern_isa isa, const uint8_t *blocks, const uint8_t *scales, int64_t N, int64_t C,
                 const float *xp, int T, float *y, int64_t ldy) {
#if defined(__x86_64__)
  if (isa == KERN_AVX512) return kern_mx4_nt_avx512(blocks, scales, N, C, xp, T, y, ldy);
  if (isa == KERN_AVX2) return kern_mx4_nt_avx2(blocks, scales, N, C, xp, T, y, ldy);
#endif
  mx4_nt_scalar(blocks, scales, N, C, xp, T, y, ldy);
}

/* ---------------------------------------------------------------- over the pool */

typedef struct {
  kern_isa isa;
  int mx4;
  const uint8_t *w, *scales;  /* bf16 rows, or MXFP4 blocks + scales */
  int64_t N, C, ldx, ldy;
  const float *x;
  int T;
  float *y;
} par_job;

static void par_task(void *ctx, int64_t task) {
  const par_job *j = ctx;
  const int64_t r0 = task * KERN_TASK_ROWS;
  const int64_t n = j->N - r0 < KERN_TASK_ROWS ? j->N - r0 : KERN_TASK_ROWS;
  if (j->mx4)
    kern_mx4_nt(j->isa, j->w + r0 * (j->C / 2), j->scales + r0 * (j->C / 32), n, j->C, j->x, j->T,
                j->y + r0, j->ldy);
  else
    kern_bf16_nt(j->isa, j->w + r0 * j->C * 2, n, j->C, j->x, j->ldx, j->T, j->y + r0, j->ldy);
}

void kern_bf16_nt_par(kern_isa isa, const void *w, int64_t N, int64_t C, const float *x,
                      int64_t ldx, int T, float *y, int64_t ldy) {
  par_job j = {isa, 0, w, NULL, N, C, ldx, ldy, x, T, y};
  pool_run((N + KERN_TASK_ROWS - 1) / KERN_TASK_ROWS, par_task, &j);
}

void kern_mx4_nt_par(kern_isa isa, const uint8_t *blocks, const uint8_t *scales, int64_t N,
                     int64_t C, const float *xp, int T, float *y, int64_t ldy) {
  par_job j = {isa, 1, blocks, scales, N, C, C, ldy, xp, T, y};
  pool_run((N + KERN_TASK_ROWS - 1) / KERN_TASK_ROWS, par_task, &j);
}
