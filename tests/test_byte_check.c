/* test_byte_check: export's word-at-a-time data checks (export/byte_check.h) against the plain
 * byte loops, for every bf16 value and every scale byte, at every position within a word and in
 * the tail, at odd addresses, and for lengths ending at and past the position.
 * Usage: test_byte_check */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "byte_check.h"
#include "testutil.h"

static int bf16_ref(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((bf16_at(p + 2 * i) & 0x7f80u) == 0x7f80u) return 1;
  return 0;
}

static int scales_ref(const uint8_t *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (v[i] >= 253u) return 1;
  return 0;
}

int main(void) {
  uint8_t mem[2 * 13 + 1];
  /* every bf16 value at each of 13 positions (three words and a tail), at an odd address, the
   * others a finite value whose exponent is one below all-ones (the nearest miss) or zero */
  for (int odd = 0; odd < 2; odd++) {
    uint8_t *p = mem + odd;
    for (int fill = 0; fill < 2; fill++)
      for (size_t pos = 0; pos < 13; pos++) {
        int bad = 0;
        for (uint32_t v = 0; v < 65536; v++) {
          for (size_t i = 0; i < 13; i++) {
            const uint16_t f = fill ? 0x7f7fu : 0x0000u; /* largest finite, zero */
            memcpy(p + 2 * i, &f, 2);
          }
          const uint16_t h = (uint16_t)v;
          memcpy(p + 2 * pos, &h, 2);
          for (size_t n = pos + 1; n <= 13; n += 4)
            if (bf16_any_nonfinite(p, n) != bf16_ref(p, n)) bad++;
        }
        TU_CHECK(bad == 0, "bf16 at position %zu (odd %d, fill %d): %d disagreements", pos, odd, fill, bad);
      }
  }
  /* every scale byte at each of 19 positions, the others every value below 253 in turn */
  uint8_t s[19 + 1];
  for (size_t pos = 0; pos < 19; pos++) {
    int bad = 0;
    for (uint32_t v = 0; v < 256; v++)
      for (uint32_t o = 0; o < 253; o++) {
        memset(s, (int)o, sizeof s);
        s[pos] = (uint8_t)v;
        const size_t off = o & 1; /* an odd start every other fill */
        for (size_t n = pos + 1; n <= 19; n += 3)
          if (scales_any_overflow(s + off, n - off) != scales_ref(s + off, n - off)) bad++;
      }
    TU_CHECK(bad == 0, "scale byte at position %zu: %d disagreements", pos, bad);
  }
  /* an empty range is clean */
  TU_CHECK(!bf16_any_nonfinite(mem, 0) && !scales_any_overflow(s, 0), "empty ranges are clean");
  return tu_finish("test_byte_check");
}
