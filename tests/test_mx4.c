/* mx4: case-a layer 0 decoded bit for bit equal to the official dequantization in golden.h5,
 * plus the FP4 table and the scale edge cases (subnormal 2^-127, 2^-126, s = 255 -> inf). */
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "mx4.h"
#include "testutil.h"

/* Read a float32 dataset of known shape (n floats) from golden.h5; NULL on any mismatch. */
static float *read_h5(const char *file, const char *dset, const hsize_t *dims, int rank) {
  hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return NULL;
  float *buf = NULL;
  hid_t d = H5Dopen2(f, dset, H5P_DEFAULT);
  if (d >= 0) {
    hid_t sp = H5Dget_space(d);
    hsize_t got[8] = {0};
    int r = H5Sget_simple_extent_dims(sp, got, NULL);
    int same = r == rank;
    size_t n = 1;
    for (int i = 0; same && i < rank; i++) {
      same = got[i] == dims[i];
      n *= (size_t)dims[i];
    }
    if (same && (buf = malloc(n * sizeof *buf)) &&
        H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
      free(buf);
      buf = NULL;
    }
    H5Sclose(sp);
    H5Dclose(d);
  }
  H5Fclose(f);
  return buf;
}

static void compare_layer0(const ckpt *c, const char *h5, ckpt_role blocks, ckpt_role scales,
                           const char *dset) {
  const ckpt_tensor *b = ckpt_tensor_find(c, 0, blocks), *s = ckpt_tensor_find(c, 0, scales);
  const int64_t E = b->shape[0], R = b->shape[1], C = b->shape[2] * 32;
  const hsize_t dims[3] = {(hsize_t)E, (hsize_t)R, (hsize_t)C};
  float *ref = read_h5(h5, dset, dims, 3);
  TU_CHECK(ref != NULL, "read %s:%s [%lld, %lld, %lld]", h5, dset, (long long)E, (long long)R,
           (long long)C);
  if (!ref) return;
  float *row = malloc((size_t)C * sizeof *row), *all = malloc((size_t)(R * C) * sizeof *all);
  long long bad_rows = 0, n_sub = 0;
  for (int e = 0; e < E; e++) {
    err er = {0};
    /* Whole expert at once and row by row: both must be exact. */
    TU_CHECK(mx4_decode_expert_rows(b, s, e, 0, R, all, &er) == 0, "decode: %s", er.msg);
    TU_CHECK(memcmp(all, ref + (size_t)e * R * C, (size_t)(R * C) * sizeof *all) == 0,
             "%s expert %d differs", dset, e);
    for (int64_t r = 0; r < R; r++) {
      TU_CHECK(mx4_decode_expert_rows(b, s, e, r, 1, row, &er) == 0, "row: %s", er.msg);
      const float *want = ref + ((size_t)e * R + r) * C;
      if (memcmp(row, want, (size_t)C * sizeof *row) != 0) bad_rows++;
      for (int64_t i = 0; i < C; i++) n_sub += fpclassify(row[i]) == FP_SUBNORMAL;
    }
  }
  TU_CHECK(bad_rows == 0, "%s: %lld of %lld rows differ bitwise", dset, bad_rows, (long long)(E * R));
  printf("%s: %lld experts x %lld rows x %lld cols bit-identical (%lld rows differ, %lld subnormals)\n",
         dset, (long long)E, (long long)R, (long long)C, bad_rows, n_sub);
  err er = {0};
  TU_CHECK(mx4_decode_expert_rows(b, s, (int)E, 0, 1, row, &er) == -1 && strstr(er.msg, "expert"),
           "expert out of range: %s", er.msg);
  err_clear(&er);
  TU_CHECK(mx4_decode_expert_rows(b, s, 0, R - 1, 2, row, &er) == -1, "rows out of range");
  err_clear(&er);
  TU_CHECK(mx4_decode_expert_rows(s, b, 0, 0, 1, row, &er) == -1, "swapped pair rejected");
  free(row);
  free(all);
  free(ref);
}

static void test_golden(void) {
  char dir[1024], h5[1024];
  snprintf(dir, sizeof dir, "%s/original", tu_golden_dir());
  snprintf(h5, sizeof h5, "%s/golden.h5", tu_golden_dir());
  ckpt *c = NULL;
  err e = {0};
  int rc = ckpt_open(dir, &c, &e);
  TU_CHECK(rc == 0, "open case-a: %s", e.msg);
  if (rc) return;
  compare_layer0(c, h5, CK_MLP1_BLOCKS, CK_MLP1_SCALES, "/dequant/block0_mlp1_weight");
  compare_layer0(c, h5, CK_MLP2_BLOCKS, CK_MLP2_SCALES, "/dequant/block0_mlp2_weight");
  ckpt_close(c);
}

static uint32_t bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static void test_table_and_scales(void) {
  static const float want[16] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f,
                                 -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};
  for (int i = 0; i < 16; i++)
    TU_CHECK(bits(mx4_fp4_table[i]) == bits(want[i]), "fp4[%d] = %g", i, mx4_fp4_table[i]);
  TU_CHECK(bits(mx4_fp4_table[8]) == 0x80000000u, "code 8 is -0.0");
  TU_CHECK(mx4_scale(127) == 1.0f && mx4_scale(128) == 2.0f && mx4_scale(126) == 0.5f, "scale 1, 2, 1/2");
  TU_CHECK(bits(mx4_scale(0)) == 0x00400000u, "s=0: 2^-127 subnormal, bits %08x", bits(mx4_scale(0)));
  TU_CHECK(bits(mx4_scale(1)) == 0x00800000u, "s=1: 2^-126 smallest normal, bits %08x", bits(mx4_scale(1)));
  TU_CHECK(isinf(mx4_scale(255)) && mx4_scale(255) > 0, "s=255: +inf (no NaN special case)");
  TU_CHECK(mx4_scale(254) == ldexpf(1.0f, 127), "s=254: 2^127");

  /* One row of 64 columns: every code at scale 2^-127 (subnormal products down to 2^-128),
   * then every code at scale 255 (inf, NaN for +-0 * inf as in the reference). */
  uint8_t blocks[32], scales[2] = {0, 255};
  for (int j = 0; j < 16; j++) blocks[j] = blocks[16 + j] = (uint8_t)((j & 0xF) | ((15 - j) << 4));
  float out[64];
  mx4_decode_row(blocks, scales, 64, out);
  for (int j = 0; j < 16; j++) {
    float lo = want[j] * ldexpf(1.0f, -127), hi = want[15 - j] * ldexpf(1.0f, -127);
    TU_CHECK(bits(out[2 * j]) == bits(lo) && bits(out[2 * j + 1]) == bits(hi),
             "subnormal group col %d: %a %a", 2 * j, out[2 * j], out[2 * j + 1]);
  }
  TU_CHECK(bits(out[2]) == 0x00200000u, "0.5 * 2^-127 = 2^-128 exactly (bits %08x)", bits(out[2]));
  TU_CHECK(isinf(out[32 + 2]) && out[32 + 2] > 0, "1.0 * inf");
  TU_CHECK(isinf(out[32 + 2 * 9]) && out[32 + 2 * 9] < 0, "-0.5 * inf");
  TU_CHECK(isnan(out[32]), "0 * inf is NaN");
}

/* The dispatched (SIMD) decode equals the scalar reference bit for bit for every scale byte and
 * every block byte (incl. -0.0 of code 8, subnormals, inf and NaN of scale byte 255). */
static void test_simd_equals_reference(void) {
  enum { C = 512 };                         /* 16 blocks of 32 columns */
  if (!mx4_simd_available()) {
    /* the dispatched decode IS the reference here: comparing them would prove nothing */
    printf("test_mx4: SKIPPED the SIMD-vs-scalar comparison: no SIMD decode on this machine (no "
           "AVX2, or GPTOSS_NO_AVX2 set)\n");
    return;
  }
  uint8_t blocks[C / 2], scales[C / 32];
  float a[C], b[C];
  int mismatches = 0;
  for (int s0 = 0; s0 < 256; s0 += C / 32) {
    for (int i = 0; i < C / 32; i++) scales[i] = (uint8_t)(s0 + i);
    for (int rep = 0; rep < 2; rep++) {
      for (int i = 0; i < C / 2; i++) blocks[i] = (uint8_t)(rep ? (i * 37 + 11) : i);
      mx4_decode_row(blocks, scales, C, a);
      mx4_decode_row_reference(blocks, scales, C, b);
      if (memcmp(a, b, sizeof a) != 0) mismatches++;
    }
  }
  TU_CHECK(mismatches == 0, "%d of 32 SIMD decodes differ from the scalar reference", mismatches);
}

int main(void) {
  test_simd_equals_reference();
  test_table_and_scales();
  test_golden();
  return tu_finish("test_mx4");
}
