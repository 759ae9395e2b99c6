/* libFuzzer target: safetensors header validation (st_header_parse).
 * Input: u32 little-endian data-section size, then the header bytes; the claimed file size is
 * 8 + header length + that size, so offsets inside and past the data section are both reached. */
#include <stddef.h>
#include <stdint.h>

#include "st.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4) return 0;
  const uint64_t data_bytes = (uint64_t)data[0] | (uint64_t)data[1] << 8 |
                              (uint64_t)data[2] << 16 | (uint64_t)data[3] << 24;
  const uint8_t *hdr = data + 4;
  const size_t n = size - 4;
  st_file *f = NULL;
  err e = {0};
  if (st_header_parse("fuzz.safetensors", hdr, n, 8 + (uint64_t)n + data_bytes, &f, &e) == 0) {
    /* Touch everything a caller may read; the lookups must agree with the list. */
    for (size_t i = 0; i < st_file_n_tensors(f); i++) {
      const st_tensor *t = st_file_tensor(f, i);
      if (st_file_find(f, t->name) != t) __builtin_trap();
      if (t->file_offset + t->n_bytes > st_file_size(f)) __builtin_trap();
    }
    st_file_close(f);
  } else if (f != NULL || e.code != 1 || e.msg[0] == '\0') {
    __builtin_trap();
  }
  return 0;
}
