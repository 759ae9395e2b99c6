/* st: a safetensors file, mapped read-only, validated before any use.
 *
 * Format (https://github.com/huggingface/safetensors): bytes 0..7 = u64 little-endian header
 * length N; bytes 8..8+N-1 = a UTF-8 JSON object (may be right-padded with spaces); data
 * section from byte 8+N to the end of the file. Each key except "__metadata__" (an object of
 * string values, kept but unused) names a tensor:
 *   {"dtype": "BF16", "shape": [d0, d1, ...], "data_offsets": [begin, end]}
 * with offsets relative to the data section, end - begin = prod(shape) * itemsize, row-major,
 * little-endian.
 *
 * st_file_open validates, with overflow-checked 64-bit arithmetic, before returning: header
 * length within the file (and below ST_HEADER_MAX), the JSON syntax and types, each dtype
 * (known name), each shape (non-negative integers, at most ST_MAX_DIMS dims), shape x itemsize
 * equal to the byte range, each range inside the data section, no two ranges overlapping, no
 * duplicate names. Any failure: -1 and an err naming the file and the tensor.
 *
 * Memory: the file is mmap'd read-only once; tensor views borrow from the mapping (valid until
 * st_file_close). Pages are only read when a caller touches a tensor's bytes, so a rank that
 * uses a few tensors of a large file reads only those. Local (no MPI). */
#ifndef GPTOSS_ST_H
#define GPTOSS_ST_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define ST_MAX_DIMS 8
#define ST_HEADER_MAX (100u * 1024u * 1024u) /* 100 MiB, the limit of the reference library */

typedef enum {
  ST_BOOL, ST_U8, ST_I8, ST_F8_E4M3, ST_F8_E5M2, ST_U16, ST_I16, ST_F16, ST_BF16,
  ST_U32, ST_I32, ST_F32, ST_U64, ST_I64, ST_F64, ST_N_DTYPES
} st_dtype;

/* "BF16" -> ST_BF16; -1 if unknown. */
int st_dtype_parse(const char *s);
const char *st_dtype_name(st_dtype t);
size_t st_dtype_size(st_dtype t);

typedef struct {
  const char *name;          /* owned by the st_file */
  st_dtype dtype;
  int n_dims;
  int64_t shape[ST_MAX_DIMS];
  uint64_t n_elems;          /* prod(shape) */
  uint64_t file_offset;      /* absolute offset in the file */
  uint64_t n_bytes;
  const void *data;          /* borrowed from the mapping: [file_offset, file_offset + n_bytes) */
} st_tensor;

typedef struct st_file st_file;

/* Open, validate and map path. Caller owns *out (st_file_close). */
int st_file_open(const char *path, st_file **out, err *e);
/* Parse and validate a header from memory (no mapping): for tests and the fuzzer.
 * buf holds the JSON header bytes (what follows the 8-byte length, so N = buf_len); file_size
 * is the size of the whole file the header claims to describe. Tensor data pointers are NULL. */
int st_header_parse(const char *path, const uint8_t *buf, size_t buf_len, uint64_t file_size,
                    st_file **out, err *e);
void st_file_close(st_file *f);
/* 0 if the file is still the one opened (same inode, size and modification time), else an error
 * saying that the checkpoint file changed while it was read. Files that were parsed from memory
 * always pass. A truncation under a mapping is also caught at the faulting read (guard.h). */
int st_file_unchanged(const st_file *f, err *e);
/* Drop the file's pages from this process's resident set (madvise MADV_DONTNEED on the read-only
 * mapping): tensor views stay valid, a later read faults the bytes in again from the page cache.
 * For a process that has finished reading and goes on to other memory-heavy work. */
void st_file_release_pages(const st_file *f);

const char *st_file_path(const st_file *f);
uint64_t st_file_size(const st_file *f);
uint64_t st_file_data_start(const st_file *f);   /* 8 + header length */
size_t st_file_n_tensors(const st_file *f);
const st_tensor *st_file_tensor(const st_file *f, size_t i);   /* in header order */
const st_tensor *st_file_find(const st_file *f, const char *name); /* NULL if absent */

/* bf16 -> f32: the 16 bits in the upper half of the word (exact). */
static inline float st_bf16_to_f32(uint16_t h) {
  union { uint32_t u; float f; } v = { (uint32_t)h << 16 };
  return v.f;
}
/* f32 -> bf16, round to nearest even (NaN stays NaN). */
static inline uint16_t st_f32_to_bf16(float f) {
  union { float f; uint32_t u; } v = { f };
  if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40u);
  uint32_t lsb = (v.u >> 16) & 1u;
  return (uint16_t)((v.u + 0x7fffu + lsb) >> 16);
}

#endif
