/* benchutil: helpers shared by the benchmarks (header only): medians, and a plain read of byte
 * ranges of the checkpoint mapping over the kernel threads (the bandwidth reference). */
#ifndef GPTOSS_BENCHUTIL_H
#define GPTOSS_BENCHUTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "log.h"
#include "pool.h"

static int bench_cmp_d(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
/* Median of v[0..n) (sorts v). */
static inline double bench_median(double *v, int n) {
  if (n < 1) return 0.0;
  qsort(v, (size_t)n, sizeof *v, bench_cmp_d);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Sum of the bytes as 64-bit words, 32-byte loads (a read the compiler cannot drop). */
#if defined(__x86_64__)
__attribute__((target("avx2"))) static inline uint64_t bench_sum_bytes(const uint8_t *p, size_t n) {
  __m256i s0 = _mm256_setzero_si256(), s1 = s0;
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    s0 = _mm256_add_epi64(s0, _mm256_loadu_si256((const __m256i *)(p + i)));
    s1 = _mm256_add_epi64(s1, _mm256_loadu_si256((const __m256i *)(p + i + 32)));
  }
  uint64_t v[4];
  _mm256_storeu_si256((__m256i *)v, _mm256_add_epi64(s0, s1));
  for (; i < n; i++) v[0] += p[i];
  return v[0] + v[1] + v[2] + v[3];
}
#else
static inline uint64_t bench_sum_bytes(const uint8_t *p, size_t n) {
  uint64_t s = 0;
  for (size_t i = 0; i < n; i++) s += p[i];
  return s;
}
#endif

/* A list of byte ranges, read in 1 MiB pieces over the pool (pool.h). */
#define BENCH_PIECE ((size_t)1 << 20)
typedef struct {
  const uint8_t **p;
  size_t *n;
  int64_t *first_piece; /* [count + 1] */
  int count, cap;
  uint64_t sum;
} bench_ranges;

static inline void bench_ranges_add(bench_ranges *r, const void *p, size_t n) {
  if (n == 0) return;
  if (r->count == r->cap) {
    r->cap = r->cap ? 2 * r->cap : 64;
    r->p = realloc(r->p, (size_t)r->cap * sizeof *r->p);
    r->n = realloc(r->n, (size_t)r->cap * sizeof *r->n);
    r->first_piece = realloc(r->first_piece, (size_t)(r->cap + 1) * sizeof *r->first_piece);
    if (!r->p || !r->n || !r->first_piece) abort(); /* a benchmark: no recovery */
  }
  if (r->count == 0) r->first_piece[0] = 0;
  r->p[r->count] = p;
  r->n[r->count] = n;
  r->first_piece[r->count + 1] = r->first_piece[r->count] + (int64_t)((n + BENCH_PIECE - 1) / BENCH_PIECE);
  r->count++;
}

static inline double bench_ranges_bytes(const bench_ranges *r) {
  double b = 0;
  for (int i = 0; i < r->count; i++) b += (double)r->n[i];
  return b;
}

static inline void bench_ranges_free(bench_ranges *r) {
  free(r->p);
  free(r->n);
  free(r->first_piece);
  memset(r, 0, sizeof *r);
}

static void bench_read_task(void *ctx, int64_t piece) {
  bench_ranges *r = ctx;
  int lo = 0, hi = r->count - 1; /* the range holding this piece */
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (r->first_piece[mid] <= piece) lo = mid;
    else hi = mid - 1;
  }
  const size_t off = (size_t)(piece - r->first_piece[lo]) * BENCH_PIECE;
  const size_t n = r->n[lo] - off < BENCH_PIECE ? r->n[lo] - off : BENCH_PIECE;
  __atomic_fetch_add(&r->sum, bench_sum_bytes(r->p[lo] + off, n), __ATOMIC_RELAXED);
}

/* Seconds for one plain read of every range over the kernel threads. */
static inline double bench_ranges_read(bench_ranges *r) {
  if (r->count == 0) return 0.0;
  const double t0 = log_now();
  pool_run(r->first_piece[r->count], bench_read_task, r);
  return log_now() - t0;
}

#endif
