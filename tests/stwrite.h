/* stwrite: write small safetensors files from the tests (valid ones, or with a raw header
 * for the corrupt-input matrix). */
#ifndef GPTOSS_TESTS_STWRITE_H
#define GPTOSS_TESTS_STWRITE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  const char *name;
  const char *dtype;        /* safetensors dtype string, written as is */
  int n_dims;
  int64_t shape[8];
  const void *data;         /* n_bytes bytes, written contiguously in the given order */
  size_t n_bytes;
} tw_tensor;

/* Header for the tensors (offsets contiguous from 0) plus optional "__metadata__" JSON object
 * text, padded with spaces to a multiple of 8 plus extra_pad spaces. Caller frees. */
char *tw_header(const tw_tensor *t, size_t n, const char *metadata, size_t extra_pad);
/* Write a valid file: header from tw_header, then the data. 0 ok, -1 error. */
int tw_write(const char *path, const tw_tensor *t, size_t n, const char *metadata,
             size_t extra_pad);
/* Write u64 `claimed_len`, then header_len header bytes, then data_len data bytes. */
int tw_write_raw(const char *path, uint64_t claimed_len, const char *header, size_t header_len,
                 const void *data, size_t data_len);

#endif
