/* kern: the AVX2 and AVX-512 kernels equal the scalar reference bit for bit (kern.h's summation
 * order), for row counts, token counts and column counts that exercise every tile shape and
 * every tail, bf16 data at odd byte offsets, subnormal weights and activations (MXFP4 scale
 * bytes 0 and 1), signed zeros, large values; the scalar reference is a dot product (against
 * a double-precision sum within float32 summation error, and for MXFP4 against mx4_decode_row
 * + the same lane order); a token's result does not depend on how many tokens share the call. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kern.h"
#include "mx4.h"
#include "st.h"
#include "testutil.h"

static uint32_t rng = 12345;
static uint32_t next_u32(void) {
  rng ^= rng << 13;
  rng ^= rng >> 17;
  rng ^= rng << 5;
  return rng;
}
static float uniform(void) { return (float)(next_u32() >> 8) / 16777216.0f * 2.0f - 1.0f; }

/* Activations: mostly uniform, some subnormal, signed zeros and large values. */
static float activation(void) {
  const uint32_t k = next_u32() % 64;
  if (k == 0) return 0.0f;
  if (k == 1) return -0.0f;
  if (k == 2) return uniform() * 1e-39f; /* subnormal */
  if (k == 3) return uniform() * 3e4f;
  return uniform();
}

static uint16_t bf16_weight(void) {
  const uint32_t k = next_u32() % 64;
  if (k == 0) return 0x8000; /* -0 */
  if (k == 1) return (uint16_t)(next_u32() & 0x807f); /* subnormal (or zero) */
  return st_f32_to_bf16(uniform() * (k == 2 ? 100.0f : 0.1f));
}

static int same_bits(const float *a, const float *b, size_t n, size_t *where) {
  for (size_t i = 0; i < n; i++)
    if (memcmp(&a[i], &b[i], sizeof(float)) != 0) {
      *where = i;
      return 0;
    }
  return 1;
}

/* One product to check: bf16 (w) or MXFP4 (blocks, scales; xp in pair order). */
typedef struct {
  const uint8_t *w, *blocks, *scales;
  const float *x; /* bf16: x with row stride ldx; MXFP4: xp with row stride C */
  int64_t N, C, ldx, ldy;
  int T;
  char what[96];
} kcase;

static void run_case(const kcase *k, kern_isa isa, const float *x, int T, float *y) {
  if (k->w) kern_bf16_nt(isa, k->w, k->N, k->C, x, k->ldx, T, y, k->ldy);
  else kern_mx4_nt(isa, k->blocks, k->scales, k->N, k->C, x, T, y, k->ldy);
}

/* Every SIMD version equals ref (the scalar result) bit for bit, and the last token computed
 * alone equals the same token inside the call. */
static void check_isas(const kcase *k, const float *ref, float *got) {
  for (int isa = KERN_AVX2; isa <= KERN_AVX512; isa++) {
    if (!kern_isa_supported((kern_isa)isa)) continue;
    memset(got, 0, (size_t)k->T * k->ldy * sizeof(float));
    run_case(k, (kern_isa)isa, k->x, k->T, got);
    size_t at = 0;
    TU_CHECK(same_bits(ref, got, (size_t)k->T * k->ldy, &at), "%s %s: element %zu %a != scalar %a",
             k->what, kern_isa_name((kern_isa)isa), at, got[at], ref[at]);
  }
  if (k->T > 1) {
    const int t = k->T - 1;
    run_case(k, kern_isa_best(), k->x + t * (k->w ? k->ldx : k->C), 1, got);
    size_t at = 0;
    TU_CHECK(same_bits(ref + t * k->ldy, got, (size_t)k->N, &at), "%s: token %d alone differs at %zu",
             k->what, t, at);
  }
}

static void check_bf16(int64_t N, int64_t C, int T, int offset) {
  uint8_t *raw = malloc((size_t)(N * C * 2 + offset));
  float *x = malloc((size_t)T * (C + 3) * sizeof(float));
  const int64_t ldx = C + 3, ldy = N + 5;
  float *ref = calloc((size_t)T * ldy, sizeof(float)), *got = calloc((size_t)T * ldy, sizeof(float));
  uint8_t *w = raw + offset;
  for (int64_t i = 0; i < N * C; i++) {
    const uint16_t h = bf16_weight();
    memcpy(w + 2 * i, &h, 2);
  }
  for (int64_t i = 0; i < T * ldx; i++) x[i] = activation();
  kern_bf16_nt(KERN_SCALAR, w, N, C, x, ldx, T, ref, ldy);

  /* the reference is a dot product: within n * eps * sum|w x| of a double sum */
  double worst = 0;
  for (int64_t n = 0; n < N; n++)
    for (int t = 0; t < T; t++) {
      double s = 0, sa = 0;
      for (int64_t c = 0; c < C; c++) {
        uint16_t h;
        memcpy(&h, w + 2 * (n * C + c), 2);
        const double p = (double)st_bf16_to_f32(h) * x[t * ldx + c];
        s += p;
        sa += fabs(p);
      }
      const double d = fabs(ref[t * ldy + n] - s), bound = (C + 4) * 0x1p-24 * sa + 1e-44;
      if (d / bound > worst) worst = d / bound;
    }
  TU_CHECK(worst <= 1.0, "bf16 N %lld C %lld T %d: scalar vs double %.3g of the bound",
           (long long)N, (long long)C, T, worst);

  kcase k = {.w = w, .x = x, .N = N, .C = C, .ldx = ldx, .ldy = ldy, .T = T};
  snprintf(k.what, sizeof k.what, "bf16 N %lld C %lld T %d offset %d", (long long)N, (long long)C, T, offset);
  check_isas(&k, ref, got);
  free(raw);
  free(x);
  free(ref);
  free(got);
}

static void check_mx4(int64_t N, int64_t C, int T, int tiny_scales) {
  const int64_t G = C / 32;
  uint8_t *blocks = malloc((size_t)(N * G * 16)), *scales = malloc((size_t)(N * G));
  const int64_t ldx = C + 7, ldy = N + 3;
  float *x = malloc((size_t)T * ldx * sizeof(float)), *xp = malloc((size_t)T * C * sizeof(float));
  float *ref = calloc((size_t)T * ldy, sizeof(float)), *got = calloc((size_t)T * ldy, sizeof(float));
  for (int64_t i = 0; i < N * G * 16; i++) blocks[i] = (uint8_t)next_u32();
  /* scale bytes: around 127 (typical), or 0..3 (subnormal weights), never >= 253 (rejected
   * by the checkpoint check, they overflow fp32) */
  for (int64_t i = 0; i < N * G; i++)
    scales[i] = (uint8_t)(tiny_scales ? next_u32() % 4 : 118 + next_u32() % 16);
  for (int64_t i = 0; i < T * ldx; i++) x[i] = activation();
  kern_mx4_pair_x(x, ldx, T, C, xp);
  kern_mx4_nt(KERN_SCALAR, blocks, scales, N, C, xp, T, ref, ldy);

  /* the reference is the decoded row (mx4_decode_row) times x in the lane order of kern.h */
  float *row = malloc((size_t)C * sizeof(float));
  long long bad = 0;
  for (int64_t n = 0; n < N; n++) {
    mx4_decode_row(blocks + n * G * 16, scales + n * G, C, row);
    for (int t = 0; t < T; t++) {
      float a[16] = {0};
      for (int64_t c = 0; c < C; c++) a[(c % 32) / 2] = fmaf(row[c], x[t * ldx + c], a[(c % 32) / 2]);
      float b[8], cc[4], d[2];
      for (int l = 0; l < 8; l++) b[l] = a[l] + a[l + 8];
      for (int l = 0; l < 4; l++) cc[l] = b[l] + b[l + 4];
      for (int l = 0; l < 2; l++) d[l] = cc[l] + cc[l + 2];
      const float r = d[0] + d[1];
      bad += memcmp(&r, &ref[t * ldy + n], sizeof r) != 0;
    }
  }
  TU_CHECK(bad == 0, "mx4 N %lld C %lld T %d: %lld sums differ from decode + dot", (long long)N,
           (long long)C, T, bad);

  kcase k = {.blocks = blocks, .scales = scales, .x = xp, .N = N, .C = C, .ldy = ldy, .T = T};
  snprintf(k.what, sizeof k.what, "mx4 N %lld C %lld T %d tiny %d", (long long)N, (long long)C, T, tiny_scales);
  check_isas(&k, ref, got);
  free(blocks);
  free(scales);
  free(x);
  free(xp);
  free(ref);
  free(got);
  free(row);
}

int main(void) {
  printf("kern: best instruction set here %s (avx2 %s, avx512 %s)\n", kern_isa_name(kern_isa_best()),
         kern_isa_supported(KERN_AVX2) ? "yes" : "no", kern_isa_supported(KERN_AVX512) ? "yes" : "no");
  const int Ts[] = {1, 2, 3, 4, 5, 7, 9, 17};
  const int64_t Ns[] = {1, 2, 3, 4, 5, 9};
  const int64_t Cs[] = {1, 7, 15, 16, 17, 31, 33, 64, 100, 161};
  for (size_t a = 0; a < sizeof Ns / sizeof Ns[0]; a++)
    for (size_t b = 0; b < sizeof Cs / sizeof Cs[0]; b++)
      for (size_t t = 0; t < sizeof Ts / sizeof Ts[0]; t++)
        check_bf16(Ns[a], Cs[b], Ts[t], (int)((a + b + t) % 2));
  check_bf16(37, 2880, 6, 1); /* the real width, odd offset */

  const int64_t Cm[] = {32, 64, 96, 288};
  for (size_t a = 0; a < sizeof Ns / sizeof Ns[0]; a++)
    for (size_t b = 0; b < sizeof Cm / sizeof Cm[0]; b++)
      for (size_t t = 0; t < sizeof Ts / sizeof Ts[0]; t++)
        check_mx4(Ns[a], Cm[b], Ts[t], (int)((a + b + t) % 3 == 0));
  check_mx4(13, 2880, 6, 0);
  return tu_finish("test_kern");
}
