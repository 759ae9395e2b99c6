/* xxh64: the XXH64 hash (xxHash's 64-bit variant, Yann Collet; algorithm as specified in
 * xxHash's doc/xxhash_spec.md), one-shot and streaming. The journal of a resumable export
 * (shards/resume.h) records the XXH64 of every tensor written, so that a resumed job verifies
 * what is on disk before it trusts it. Checked against xxhsum -H64 in tests/resume_test.py.
 * Local (no MPI), no allocation. */
#ifndef GPTOSS_XXH64_H
#define GPTOSS_XXH64_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint64_t v[4];
  uint64_t total;     /* bytes seen */
  uint8_t buf[32];    /* a partial stripe */
  uint32_t n_buf;
  uint64_t seed;
} xxh64_state;

/* XXH64 of data[0..n) with seed. */
uint64_t xxh64(const void *data, size_t n, uint64_t seed);
/* Streaming: init, update any number of times, digest (the state stays usable). */
void xxh64_init(xxh64_state *s, uint64_t seed);
void xxh64_update(xxh64_state *s, const void *data, size_t n);
uint64_t xxh64_digest(const xxh64_state *s);

#endif
