/* bench_tokenizer: o200k_harmony encoding throughput of tokenizer/ (tok_encode) on one text.
 *   bench_tokenizer VOCAB TEXT_FILE [REPEAT]
 * Loads the vocabulary (timed), encodes the whole file REPEAT times (default 5) and prints the
 * best and median MB/s (1 MB = 10^6 bytes of UTF-8 input), the ids and bytes per id, and
 * whether the split regex ran JIT-compiled. bench/bench_tokenizer.sh runs it next to tiktoken. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tok.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: bench_tokenizer VOCAB TEXT_FILE [REPEAT]\n");
    return 2;
  }
  int repeat = argc == 4 ? atoi(argv[3]) : 5;
  if (repeat < 1 || repeat > 1000) repeat = 5;
  FILE *f = fopen(argv[2], "rb");
  if (!f) { perror(argv[2]); return 1; }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *text = malloc((size_t)n + 1);
  if (!text || fread(text, 1, (size_t)n, f) != (size_t)n) { fprintf(stderr, "%s: read error\n", argv[2]); return 1; }
  fclose(f);
  err e = {0};
  tok *t;
  double t0 = now();
  if (tok_open(argv[1], &t, &e) != 0) { fprintf(stderr, "bench_tokenizer: %s\n", e.msg); return 1; }
  double load = now() - t0;
  double *mbs = malloc((size_t)repeat * sizeof *mbs);
  size_t n_ids = 0;
  for (int r = 0; r < repeat; r++) {
    tok_ids ids = {0};
    double a = now();
    if (tok_encode(t, argv[2], text, (size_t)n, &ids, &e) != 0) { fprintf(stderr, "bench_tokenizer: %s\n", e.msg); return 1; }
    double s = now() - a;
    mbs[r] = (double)n / 1e6 / s;
    n_ids = ids.n;
    tok_ids_free(&ids);
  }
  qsort(mbs, (size_t)repeat, sizeof *mbs, cmp);
  printf("ours (tokenizer/, C, PCRE2 %s): %.2f MB/s best, %.2f MB/s median of %d; %zu ids, %.2f bytes/id; "
         "vocabulary loaded in %.3f s\n", tok_uses_jit(t) ? "JIT" : "interpreter", mbs[repeat - 1], mbs[repeat / 2],
         repeat, n_ids, (double)n / (double)n_ids, load);
  free(mbs);
  free(text);
  tok_close(t);
  return 0;
}
