/* xxh64_tool FILE SEED: the XXH64 of FILE's bytes with SEED (decimal), computed one-shot and
 * streamed in pieces of 1, 3, 31, 32, 33 and 4099 bytes; prints the hash (16 hex digits) when
 * they all agree, exits 1 when they do not (tests/resume_test.py compares it with xxhsum and
 * python3-xxhash). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "xxh64.h"

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: xxh64_tool FILE SEED\n");
    return 2;
  }
  FILE *f = fopen(argv[1], "rb");
  if (!f) {
    perror(argv[1]);
    return 2;
  }
  size_t cap = 1 << 20, n = 0;
  unsigned char *buf = malloc(cap);
  for (size_t r; buf && (r = fread(buf + n, 1, cap - n, f)) > 0;) {
    n += r;
    if (n == cap) buf = realloc(buf, cap *= 2);
  }
  fclose(f);
  if (!buf) return 2;
  const uint64_t seed = strtoull(argv[2], NULL, 10);
  const uint64_t h = xxh64(buf, n, seed);
  static const size_t steps[] = {1, 3, 31, 32, 33, 4099};
  int rc = 0;
  for (size_t k = 0; k < sizeof steps / sizeof *steps; k++) {
    xxh64_state s;
    xxh64_init(&s, seed);
    for (size_t a = 0; a < n; a += steps[k]) xxh64_update(&s, buf + a, n - a < steps[k] ? n - a : steps[k]);
    if (xxh64_digest(&s) != h) {
      fprintf(stderr, "streamed in pieces of %zu: %016" PRIx64 ", one-shot %016" PRIx64 "\n", steps[k],
              xxh64_digest(&s), h);
      rc = 1;
    }
  }
  printf("%016" PRIx64 "\n", h);
  free(buf);
  return rc;
}
