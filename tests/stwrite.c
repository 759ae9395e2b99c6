#include "stwrite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *tw_header(const tw_tensor *t, size_t n, const char *metadata, size_t extra_pad) {
  size_t cap = 256 + (metadata ? strlen(metadata) : 0) + extra_pad;
  for (size_t i = 0; i < n; i++) cap += strlen(t[i].name) + 64 + 24 * (size_t)t[i].n_dims + 64;
  char *h = malloc(cap + 8);
  if (!h) return NULL;
  size_t o = (size_t)snprintf(h, cap, "{");
  if (metadata) o += (size_t)snprintf(h + o, cap - o, "\"__metadata__\":%s%s", metadata, n ? "," : "");
  uint64_t off = 0;
  for (size_t i = 0; i < n; i++) {
    o += (size_t)snprintf(h + o, cap - o, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i ? "," : "",
                          t[i].name, t[i].dtype);
    for (int d = 0; d < t[i].n_dims; d++)
      o += (size_t)snprintf(h + o, cap - o, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
    o += (size_t)snprintf(h + o, cap - o, "],\"data_offsets\":[%llu,%llu]}",
                          (unsigned long long)off, (unsigned long long)(off + t[i].n_bytes));
    off += t[i].n_bytes;
  }
  o += (size_t)snprintf(h + o, cap - o, "}");
  size_t want = (o + 7) / 8 * 8 + extra_pad;
  while (o < want) h[o++] = ' ';
  h[o] = '\0';
  return h;
}

int tw_write_raw(const char *path, uint64_t claimed_len, const char *header, size_t header_len,
                 const void *data, size_t data_len) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  uint8_t len[8];
  for (int i = 0; i < 8; i++) len[i] = (uint8_t)(claimed_len >> (8 * i));
  int ok = fwrite(len, 1, 8, f) == 8 && fwrite(header, 1, header_len, f) == header_len &&
           (data_len == 0 || fwrite(data, 1, data_len, f) == data_len);
  return (fclose(f) == 0 && ok) ? 0 : -1;
}

int tw_write(const char *path, const tw_tensor *t, size_t n, const char *metadata,
             size_t extra_pad) {
  char *h = tw_header(t, n, metadata, extra_pad);
  if (!h) return -1;
  size_t total = 0;
  for (size_t i = 0; i < n; i++) total += t[i].n_bytes;
  uint8_t *data = malloc(total ? total : 1);
  size_t o = 0;
  for (size_t i = 0; data && i < n; i++) {
    if (t[i].n_bytes) memcpy(data + o, t[i].data, t[i].n_bytes);
    o += t[i].n_bytes;
  }
  int rc = data ? tw_write_raw(path, strlen(h), h, strlen(h), data, total) : -1;
  free(data);
  free(h);
  return rc;
}
