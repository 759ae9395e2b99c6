#include "mx4.h"

#include <math.h>
#include <string.h>

const float mx4_fp4_table[16] = {+0.0f, +0.5f, +1.0f, +1.5f, +2.0f, +3.0f, +4.0f, +6.0f,
                                 -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

float mx4_scale(uint8_t s) { return ldexpf(1.0f, (int)s - 127); }

void mx4_decode_row(const uint8_t *blocks, const uint8_t *scales, int64_t n_cols, float *out) {
  /* A value times a power of two is exact in fp32 (down to the subnormal 2^-128), so the product
   * below introduces no rounding; overflow to inf only for scale bytes >= 253, as in the reference. */
  for (int64_t g = 0; g < n_cols / 32; g++) {
    const float s = mx4_scale(scales[g]);
    const uint8_t *b = blocks + g * 16;
    float *o = out + g * 32;
    for (int j = 0; j < 16; j++) {
      o[2 * j] = mx4_fp4_table[b[j] & 0x0F] * s;
      o[2 * j + 1] = mx4_fp4_table[b[j] >> 4] * s;
    }
  }
}

int mx4_decode_expert_rows(const ckpt_tensor *blocks, const ckpt_tensor *scales, int expert,
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
