/* XXH64 (xxh64.h), written from xxHash's doc/xxhash_spec.md. */
#include "xxh64.h"

#include <string.h>

#define P1 0x9E3779B185EBCA87ull
#define P2 0xC2B2AE3D27D4EB4Full
#define P3 0x165667B19E3779F9ull
#define P4 0x85EBCA77C2B2AE63ull
#define P5 0x27D4EB2F165667C5ull

static inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

/* little-endian loads, whatever the alignment (memcpy: one unaligned load on a little-endian
 * machine, measured 2-2.5x faster than the byte loop there) */
static inline uint64_t rd64(const uint8_t *p) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  uint64_t w;
  memcpy(&w, p, 8);
  return w;
#endif
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}
static inline uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t round1(uint64_t acc, uint64_t lane) {
  acc += lane * P2;
  acc = rotl(acc, 31);
  return acc * P1;
}

static inline uint64_t merge(uint64_t acc, uint64_t v) {
  acc ^= round1(0, v);
  return acc * P1 + P4;
}

/* the 32-byte stripes of p[0..n) (n a multiple of 32) into v */
static void stripes(uint64_t v[4], const uint8_t *p, size_t n) {
  uint64_t a = v[0], b = v[1], c = v[2], d = v[3];
  for (const uint8_t *end = p + n; p < end; p += 32) {
    a = round1(a, rd64(p));
    b = round1(b, rd64(p + 8));
    c = round1(c, rd64(p + 16));
    d = round1(d, rd64(p + 24));
  }
  v[0] = a, v[1] = b, v[2] = c, v[3] = d;
}

/* the tail (< 32 bytes) and the avalanche */
static uint64_t finish(uint64_t acc, const uint8_t *p, size_t n) {
  for (; n >= 8; p += 8, n -= 8) {
    acc ^= round1(0, rd64(p));
    acc = rotl(acc, 27) * P1 + P4;
  }
  if (n >= 4) {
    acc ^= (uint64_t)rd32(p) * P1;
    acc = rotl(acc, 23) * P2 + P3;
    p += 4;
    n -= 4;
  }
  for (; n > 0; p++, n--) {
    acc ^= (uint64_t)*p * P5;
    acc = rotl(acc, 11) * P1;
  }
  acc ^= acc >> 33;
  acc *= P2;
  acc ^= acc >> 29;
  acc *= P3;
  acc ^= acc >> 32;
  return acc;
}

static uint64_t converge(const uint64_t v[4]) {
  uint64_t acc = rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18);
  for (int i = 0; i < 4; i++) acc = merge(acc, v[i]);
  return acc;
}

void xxh64_init(xxh64_state *s, uint64_t seed) {
  memset(s, 0, sizeof *s);
  s->seed = seed;
  s->v[0] = seed + P1 + P2;
  s->v[1] = seed + P2;
  s->v[2] = seed;
  s->v[3] = seed - P1;
}

void xxh64_update(xxh64_state *s, const void *data, size_t n) {
  const uint8_t *p = data;
  s->total += n;
  if (s->n_buf) {
    size_t take = 32 - s->n_buf < n ? 32 - s->n_buf : n;
    memcpy(s->buf + s->n_buf, p, take);
    s->n_buf += (uint32_t)take;
    p += take;
    n -= take;
    if (s->n_buf < 32) return;
    stripes(s->v, s->buf, 32);
    s->n_buf = 0;
  }
  const size_t whole = n / 32 * 32;
  stripes(s->v, p, whole);
  memcpy(s->buf, p + whole, n - whole);
  s->n_buf = (uint32_t)(n - whole);
}

uint64_t xxh64_digest(const xxh64_state *s) {
  uint64_t acc = s->total >= 32 ? converge(s->v) : s->seed + P5;
  acc += s->total;
  return finish(acc, s->buf, s->n_buf);
}

uint64_t xxh64(const void *data, size_t n, uint64_t seed) {
  xxh64_state s;
  xxh64_init(&s, seed);
  xxh64_update(&s, data, n);
  return xxh64_digest(&s);
}
