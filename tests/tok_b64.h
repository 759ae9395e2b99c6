/* tok_b64: standard base64 with padding, for the tokenizer tests that write ranks files
 * (test_tok.c, fuzz/fuzz_tokenizer.c). out holds 4 * ceil(n / 3) + 1 bytes. */
#ifndef GPTOSS_TOK_B64_H
#define GPTOSS_TOK_B64_H

#include <stddef.h>
#include <stdint.h>

static inline void tok_b64_encode(const uint8_t *p, size_t n, char *out) {
  static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t w = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
    out[o++] = a[w >> 18];
    out[o++] = a[(w >> 12) & 63];
    out[o++] = i + 1 < n ? a[(w >> 6) & 63] : '=';
    out[o++] = i + 2 < n ? a[w & 63] : '=';
  }
  out[o] = '\0';
}

#endif
